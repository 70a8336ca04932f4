/*
 * ledger: the outcome rules of docs/protocol.md section 5, decided in memory.
 *
 * Nothing here does I/O.  The db module loads a batch's accounts into a book
 * and the stored outcomes into the items, lq_ledger_decide() decides, and the
 * db module writes what changed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/error.h"
#include "ledgerq/ledger.h"

#define BOOK_INITIAL_CAP 64

/* One entry of a payment's undo log: an account's totals before a leg. */
typedef struct undo_entry {
    lq_account *account;
    int64_t debits;
    int64_t credits;
} undo_entry;

int64_t lq_account_balance(const lq_account *a)
{
    /* Both totals are in 0 .. INT64_MAX, so the difference always fits. */
    return a->credits - a->debits;
}

/*
 * The position of id in the book: the index of the account with that id
 * when *ret_found, else where it would be inserted to keep the order.
 */
static size_t book_search(const lq_book *book, const char *id, bool *ret_found)
{
    size_t lo = 0;
    size_t hi = book->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(book->accounts[mid].id, id);

        if (c == 0) {
            *ret_found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *ret_found = false;
    return lo;
}

static int book_reserve(lq_book *book, size_t need)
{
    size_t cap;
    lq_account *accounts;

    if (need <= book->cap)
        return LQ_OK;
    cap = book->cap ? book->cap : BOOK_INITIAL_CAP;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return LQ_ERR_NOMEM;
        cap *= 2;
    }
    if (cap > SIZE_MAX / sizeof(*accounts))
        return LQ_ERR_NOMEM;
    accounts = realloc(book->accounts, cap * sizeof(*accounts));
    if (!accounts)
        return LQ_ERR_NOMEM;
    book->accounts = accounts;
    book->cap = cap;
    return LQ_OK;
}

int lq_book_add(lq_book *book, const lq_account *a)
{
    bool found;
    size_t pos;
    int r;

    pos = book_search(book, a->id, &found);
    if (found)
        return LQ_ERR_EXISTS;
    r = book_reserve(book, book->n + 1);
    if (r != LQ_OK)
        return r;
    memmove(&book->accounts[pos + 1], &book->accounts[pos],
            (book->n - pos) * sizeof(book->accounts[0]));
    book->accounts[pos] = *a;
    /* The search relies on ids being strings: never trust the caller's buffer. */
    book->accounts[pos].id[LQ_ACCOUNT_ID_MAX] = '\0';
    book->accounts[pos].currency[3] = '\0';
    book->n++;
    return LQ_OK;
}

lq_account *lq_book_find(const lq_book *book, const char *id)
{
    bool found;
    size_t pos = book_search(book, id, &found);

    return found ? &book->accounts[pos] : NULL;
}

void lq_book_clear(lq_book *book)
{
    book->n = 0;
}

void lq_book_release(lq_book *book)
{
    if (!book)
        return;
    free(book->accounts);
    book->accounts = NULL;
    book->n = 0;
    book->cap = 0;
}

/*
 * What lq_command_parse() guarantees (docs/protocol.md section 4).  A payment built
 * any other way that breaks it is a bug of the caller, not a business
 * outcome: it would break the database's constraints and the no-overdraft
 * arithmetic below, so it is refused before anything is touched.
 */
static int check_shape(const lq_command *p, char *detail, size_t detail_len)
{
    if (p->n_legs < 1 || p->n_legs > LQ_LEGS_MAX || !p->legs) {
        snprintf(detail, detail_len, "payment has %zu legs, not 1 to %d", p->n_legs, LQ_LEGS_MAX);
        return LQ_ERR_INTERNAL;
    }
    for (size_t i = 0; i < p->n_legs; i++) {
        const lq_leg *leg = &p->legs[i];

        if (leg->amount < 1) {
            snprintf(detail, detail_len, "leg %zu: amount %" PRId64 " is not positive", i + 1,
                     leg->amount);
            return LQ_ERR_INTERNAL;
        }
        if (strcmp(leg->debit, leg->credit) == 0) {
            snprintf(detail, detail_len, "leg %zu: debits and credits the same account \"%s\"",
                     i + 1, leg->debit);
            return LQ_ERR_INTERNAL;
        }
    }
    return LQ_OK;
}

/*
 * Check one leg (number n, from 1) against the book as earlier legs left it,
 * in the order of docs/protocol.md section 5.  On LQ_OK stores the two accounts in *ret_debit
 * and *ret_credit; otherwise writes detail.
 */
static int check_leg(const lq_book *book, const lq_leg *leg, size_t n, lq_account **ret_debit,
                     lq_account **ret_credit, char *detail, size_t detail_len)
{
    lq_account *debit = lq_book_find(book, leg->debit);
    lq_account *credit = lq_book_find(book, leg->credit);
    int64_t sum;

    if (!debit || !credit) {
        snprintf(detail, detail_len, "leg %zu: account \"%s\" does not exist", n,
                 debit ? leg->credit : leg->debit);
        return LQ_ERR_ACCOUNT_NOT_FOUND;
    }
    if (strcmp(leg->currency, debit->currency) != 0 ||
        strcmp(leg->currency, credit->currency) != 0) {
        const lq_account *other = strcmp(leg->currency, debit->currency) != 0 ? debit : credit;

        snprintf(detail, detail_len, "leg %zu: currency %s differs from account \"%s\" (%s)", n,
                 leg->currency, other->id, other->currency);
        return LQ_ERR_CURRENCY_MISMATCH;
    }
    /* balance - amount < 0, written so that it cannot overflow. */
    if (!debit->allow_negative && lq_account_balance(debit) < leg->amount) {
        snprintf(detail, detail_len,
                 "leg %zu: account \"%s\" has balance %" PRId64 ", cannot be debited %" PRId64, n,
                 debit->id, lq_account_balance(debit), leg->amount);
        return LQ_ERR_INSUFFICIENT_FUNDS;
    }
    if (__builtin_add_overflow(debit->debits, leg->amount, &sum)) {
        snprintf(detail, detail_len,
                 "leg %zu: debits of account \"%s\" would exceed the 64-bit range", n, debit->id);
        return LQ_ERR_AMOUNT_OVERFLOW;
    }
    if (__builtin_add_overflow(credit->credits, leg->amount, &sum)) {
        snprintf(detail, detail_len,
                 "leg %zu: credits of account \"%s\" would exceed the 64-bit range", n, credit->id);
        return LQ_ERR_AMOUNT_OVERFLOW;
    }
    *ret_debit = debit;
    *ret_credit = credit;
    return LQ_OK;
}

int lq_ledger_apply(lq_book *book, const lq_command *p, char *detail, size_t detail_len)
{
    /*
     * The legs are posted to the book as they are checked, so that a later
     * leg sees what earlier legs did, even when several legs touch the same
     * account.  The undo log (two entries a leg) puts the book back when a
     * leg fails: no copy of the book per payment.
     */
    undo_entry undo[2 * LQ_LEGS_MAX];
    size_t n_undo = 0;
    char scratch[1];
    int r;

    if (!detail || detail_len == 0) {
        detail = scratch;
        detail_len = sizeof(scratch);
    }
    detail[0] = '\0';

    r = check_shape(p, detail, detail_len);
    if (r != LQ_OK)
        goto out;

    for (size_t i = 0; i < p->n_legs; i++) {
        const lq_leg *leg = &p->legs[i];
        lq_account *debit;
        lq_account *credit;

        r = check_leg(book, leg, i + 1, &debit, &credit, detail, detail_len);
        if (r != LQ_OK)
            goto out;
        undo[n_undo++] = (undo_entry){debit, debit->debits, debit->credits};
        undo[n_undo++] = (undo_entry){credit, credit->debits, credit->credits};
        /* check_leg() proved that neither sum overflows. */
        debit->debits += leg->amount;
        credit->credits += leg->amount;
    }
    for (size_t i = 0; i < n_undo; i++)
        undo[i].account->changed = true;
    r = LQ_OK;

out:
    if (r != LQ_OK) {
        /* Newest first, so an account touched by several legs ends at its oldest totals. */
        while (n_undo > 0) {
            n_undo--;
            undo[n_undo].account->debits = undo[n_undo].debits;
            undo[n_undo].account->credits = undo[n_undo].credits;
        }
    }
    return r;
}

/*
 * The payment ids of a batch's first occurrences (the items decided against
 * the book, and stored outcomes published again as first outcomes), in an
 * open-addressing table of item indices.  It spares a scan
 * of all earlier items for every item.
 */
typedef struct id_table {
    size_t *slots; /* item index, or SIZE_MAX when empty */
    size_t mask;   /* slot count - 1; the count is a power of two */
} id_table;

#define SLOT_EMPTY SIZE_MAX

/* FNV-1a: short ids, no adversary that matters here (a collision only costs a compare). */
static size_t hash_id(const char *id)
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (const unsigned char *s = (const unsigned char *)id; *s; s++) {
        h ^= *s;
        h *= UINT64_C(1099511628211);
    }
    return (size_t)h;
}

/* Room for n ids at most half full.  False on allocation failure (then slots is NULL). */
static bool id_table_init(id_table *t, size_t n)
{
    size_t count = 16;

    t->slots = NULL;
    t->mask = 0;
    if (n > SIZE_MAX / 4)
        return false;
    while (count < n * 2) {
        if (count > SIZE_MAX / 2 / sizeof(*t->slots))
            return false;
        count *= 2;
    }
    t->slots = malloc(count * sizeof(*t->slots));
    if (!t->slots)
        return false;
    for (size_t i = 0; i < count; i++)
        t->slots[i] = SLOT_EMPTY;
    t->mask = count - 1;
    return true;
}

/*
 * The index of the first occurrence of items[i]'s id among items[0 .. i-1],
 * or SIZE_MAX.  Without a table (allocation failed) the earlier items are
 * scanned: slower, same answer.
 */
static size_t first_occurrence(const id_table *t, const lq_item *items, size_t i)
{
    const char *id = items[i].command->id;

    if (!t->slots) {
        for (size_t j = 0; j < i; j++) {
            /*
             * The first item with an id that was decided against the book,
             * or that published a stored outcome again, is always its first
             * occurrence.
             */
            bool first = !items[j].stored || (items[j].stored_same && !items[j].outcome.duplicate);
            if (first && strcmp(items[j].command->id, id) == 0)
                return j;
        }
        return SIZE_MAX;
    }
    for (size_t s = hash_id(id) & t->mask;; s = (s + 1) & t->mask) {
        size_t j = t->slots[s];

        if (j == SLOT_EMPTY)
            return SIZE_MAX;
        if (strcmp(items[j].command->id, id) == 0)
            return j;
    }
}

/* Remember items[i] as the first occurrence of its id.  No-op without a table. */
static void id_table_put(id_table *t, const lq_item *items, size_t i)
{
    if (!t->slots)
        return;
    /* At most half full (init), so an empty slot is always found. */
    for (size_t s = hash_id(items[i].command->id) & t->mask;; s = (s + 1) & t->mask) {
        if (t->slots[s] == SLOT_EMPTY) {
            t->slots[s] = i;
            return;
        }
    }
}

static void set_conflict(lq_item *item, const char *now)
{
    item->outcome.result = LQ_ERR_IDEMPOTENCY_CONFLICT;
    item->outcome.duplicate = false;
    snprintf(item->outcome.detail, sizeof(item->outcome.detail),
             "id was first used with other content");
    snprintf(item->outcome.processed_at, sizeof(item->outcome.processed_at), "%s", now);
    item->insert = false;
}

void lq_ledger_decide(lq_item *items, size_t n, lq_book *book, const char *now)
{
    id_table seen;

    if (!now)
        now = "";
    /* On failure seen has no slots and first_occurrence() scans instead. */
    (void)id_table_init(&seen, n);

    for (size_t i = 0; i < n; i++) {
        lq_item *item = &items[i];
        size_t first;

        memset(&item->outcome, 0, sizeof(item->outcome));
        item->insert = false;

        if (item->stored) {
            if (!item->stored_same) {
                set_conflict(item, now);
                continue;
            }
            item->outcome = item->stored_outcome;
            /*
             * A first outcome whose event the broker never confirmed is
             * published again as the first outcome, once per batch.
             */
            item->outcome.duplicate = item->stored_published;
            if (!item->stored_published) {
                item->outcome.duplicate = first_occurrence(&seen, items, i) != SIZE_MAX;
                if (!item->outcome.duplicate)
                    id_table_put(&seen, items, i);
            }
            continue;
        }

        first = first_occurrence(&seen, items, i);
        if (first != SIZE_MAX) {
            if (strcmp(items[first].command->canonical, item->command->canonical) == 0) {
                item->outcome = items[first].outcome;
                item->outcome.duplicate = true;
            } else {
                set_conflict(item, now);
            }
            continue;
        }

        item->outcome.result = lq_ledger_apply(book, item->command, item->outcome.detail,
                                               sizeof(item->outcome.detail));
        item->outcome.duplicate = false;
        snprintf(item->outcome.processed_at, sizeof(item->outcome.processed_at), "%s", now);
        /*
         * Only business outcomes are stored; LQ_ERR_INTERNAL (a malformed
         * payment, see check_shape()) is a bug to report, not a final
         * outcome of the id.
         */
        item->insert = lq_error_classify(item->outcome.result) == LQ_CLASS_OK ||
                       lq_error_classify(item->outcome.result) == LQ_CLASS_REJECTED;
        id_table_put(&seen, items, i);
    }

    free(seen.slots);
}

void lq_outcome_json(lq_json *j, const lq_outcome *o)
{
    lq_json_key(j, "status");
    lq_json_string(j, o->result == LQ_OK ? "applied" : "rejected");
    lq_json_key(j, "reason");
    lq_json_string(j, o->result == LQ_OK ? NULL : lq_error_code(o->result));
    lq_json_key(j, "detail");
    lq_json_string(j, o->detail[0] ? o->detail : NULL);
}
