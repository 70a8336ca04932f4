/*
 * ledger: the outcome rules of docs/protocol.md sections 5, 12 to 15,
 * decided in memory.  This file holds the book (accounts, holds and history
 * entries), the undo log of one command, the dispatch on its type and the
 * batch loop (idempotency); the rules of each type are in
 * ledger_transfer.c, ledger_hold.c and ledger_account.c.
 *
 * Nothing here does I/O.  The db module loads a batch's accounts into a book
 * and the stored outcomes into the items, lq_ledger_decide() decides, and the
 * db module writes what changed.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/error.h"
#include "ledgerq/ledger.h"
#include "ledger_internal.h"

#define BOOK_INITIAL_CAP    64
#define HOLDS_INITIAL_CAP   16
#define ENTRIES_INITIAL_CAP 128

static const char *const hold_status_names[] = {
    [LQ_HOLD_PENDING] = "pending",
    [LQ_HOLD_CAPTURED] = "captured",
    [LQ_HOLD_VOIDED] = "voided",
    [LQ_HOLD_EXPIRED] = "expired",
};

#define N_HOLD_STATUSES (sizeof(hold_status_names) / sizeof(hold_status_names[0]))

const char *lq_hold_status_name(lq_hold_status s)
{
    if ((unsigned)s >= N_HOLD_STATUSES)
        return "unknown";
    return hold_status_names[s];
}

bool lq_hold_status_parse(const char *name, lq_hold_status *ret)
{
    if (!name)
        return false;
    for (size_t i = 0; i < N_HOLD_STATUSES; i++) {
        if (strcmp(name, hold_status_names[i]) == 0) {
            *ret = (lq_hold_status)i;
            return true;
        }
    }
    return false;
}

int64_t lq_account_balance(const lq_account *a)
{
    /* Both totals are in 0 .. INT64_MAX, so the difference always fits. */
    return a->credits - a->debits;
}

int64_t lq_account_available(const lq_account *a)
{
    int64_t available;

    /* Only a balance near -INT64_MAX with held debits gets here: below any floor. */
    if (__builtin_sub_overflow(lq_account_balance(a), a->held_debits, &available))
        return INT64_MIN;
    return available;
}

/*
 * The position of id among the n elements of size bytes at base, sorted by
 * the string at id_offset in each: the index of the element with that id
 * when *ret_found, else where it would be inserted to keep the order.
 * Accounts and holds share it.
 */
static size_t search_id(const void *base, size_t n, size_t size, size_t id_offset, const char *id,
                        bool *ret_found)
{
    size_t lo = 0;
    size_t hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp((const char *)base + mid * size + id_offset, id);

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

static size_t book_search(const lq_book *book, const char *id, bool *ret_found)
{
    return search_id(book->accounts, book->n, sizeof(*book->accounts), offsetof(lq_account, id), id,
                     ret_found);
}

static size_t hold_search(const lq_book *book, const char *id, bool *ret_found)
{
    return search_id(book->holds, book->n_holds, sizeof(*book->holds), offsetof(lq_hold, id), id,
                     ret_found);
}

/*
 * Grow *array (of *cap elements of size bytes) to hold need elements,
 * doubling from initial.  Returns LQ_OK or LQ_ERR_NOMEM (then nothing
 * changed).
 */
static int grow(void **array, size_t *cap, size_t need, size_t size, size_t initial)
{
    size_t new_cap;
    void *p;

    if (need <= *cap)
        return LQ_OK;
    new_cap = *cap ? *cap : initial;
    while (new_cap < need) {
        if (new_cap > SIZE_MAX / 2)
            return LQ_ERR_NOMEM;
        new_cap *= 2;
    }
    if (new_cap > SIZE_MAX / size)
        return LQ_ERR_NOMEM;
    p = realloc(*array, new_cap * size);
    if (!p)
        return LQ_ERR_NOMEM;
    *array = p;
    *cap = new_cap;
    return LQ_OK;
}

int lq_book_add(lq_book *book, const lq_account *a)
{
    void *accounts = book->accounts;
    bool found;
    size_t pos;
    int r;

    pos = book_search(book, a->id, &found);
    if (found)
        return LQ_ERR_EXISTS;
    r = grow(&accounts, &book->cap, book->n + 1, sizeof(*book->accounts), BOOK_INITIAL_CAP);
    book->accounts = accounts;
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

/* Take the account id out of the book (a rollback of the command that added it). */
static void book_remove(lq_book *book, const char *id)
{
    bool found;
    size_t pos = book_search(book, id, &found);

    if (!found)
        return;
    memmove(&book->accounts[pos], &book->accounts[pos + 1],
            (book->n - pos - 1) * sizeof(book->accounts[0]));
    book->n--;
}

int lq_book_add_hold(lq_book *book, const lq_hold *h)
{
    void *holds = book->holds;
    bool found;
    size_t pos;
    int r;

    pos = hold_search(book, h->id, &found);
    if (found)
        return LQ_ERR_EXISTS;
    r = grow(&holds, &book->cap_holds, book->n_holds + 1, sizeof(*book->holds), HOLDS_INITIAL_CAP);
    book->holds = holds;
    if (r != LQ_OK)
        return r;
    memmove(&book->holds[pos + 1], &book->holds[pos],
            (book->n_holds - pos) * sizeof(book->holds[0]));
    book->holds[pos] = *h;
    /* The search relies on ids being strings: never trust the caller's buffer. */
    book->holds[pos].id[LQ_ID_MAX] = '\0';
    book->n_holds++;
    return LQ_OK;
}

lq_hold *lq_book_find_hold(const lq_book *book, const char *id)
{
    bool found;
    size_t pos = hold_search(book, id, &found);

    return found ? &book->holds[pos] : NULL;
}

/* Take the hold id out of the book and free its legs (a rollback of the command that added it). */
static void book_remove_hold(lq_book *book, const char *id)
{
    bool found;
    size_t pos = hold_search(book, id, &found);

    if (!found)
        return;
    free(book->holds[pos].legs);
    memmove(&book->holds[pos], &book->holds[pos + 1],
            (book->n_holds - pos - 1) * sizeof(book->holds[0]));
    book->n_holds--;
}

/* Forget every hold, freeing its legs. */
static void holds_clear(lq_book *book)
{
    while (book->n_holds > 0) {
        book->n_holds--;
        free(book->holds[book->n_holds].legs);
        book->holds[book->n_holds].legs = NULL;
    }
}

/* Drop the entries from index keep on, freeing what they own. */
static void entries_truncate(lq_book *book, size_t keep)
{
    while (book->n_entries > keep) {
        book->n_entries--;
        free(book->entries[book->n_entries].change);
        book->entries[book->n_entries].change = NULL;
    }
}

void lq_book_clear(lq_book *book)
{
    entries_truncate(book, 0);
    holds_clear(book);
    book->n = 0;
}

void lq_book_release(lq_book *book)
{
    if (!book)
        return;
    entries_truncate(book, 0);
    holds_clear(book);
    free(book->entries);
    free(book->holds);
    free(book->accounts);
    memset(book, 0, sizeof(*book));
}

int lq_ledger_reserve_entries(lq_book *book, size_t extra)
{
    void *entries = book->entries;
    size_t need;
    int r;

    if (__builtin_add_overflow(book->n_entries, extra, &need))
        return LQ_ERR_NOMEM;
    r = grow(&entries, &book->cap_entries, need, sizeof(*book->entries), ENTRIES_INITIAL_CAP);
    book->entries = entries;
    return r;
}

int lq_ledger_append_entry(lq_book *book, lq_account *a, const char *command, const char *type,
                           int leg, int64_t amount, char *change)
{
    lq_entry *e;
    int64_t seq;
    int r;

    if (__builtin_add_overflow(a->entries, 1, &seq)) {
        free(change);
        return LQ_ERR_INTERNAL;
    }
    r = lq_ledger_reserve_entries(book, 1);
    if (r != LQ_OK) {
        free(change);
        return r;
    }
    e = &book->entries[book->n_entries++];
    memset(e, 0, sizeof(*e));
    snprintf(e->account, sizeof(e->account), "%s", a->id);
    e->seq = seq;
    e->command = command;
    e->type = type;
    e->leg = leg;
    e->amount = amount;
    e->balance = lq_account_balance(a);
    e->held_debits = a->held_debits;
    e->held_credits = a->held_credits;
    e->change = change;
    a->entries = seq;
    return LQ_OK;
}

bool lq_ledger_below_floor(int64_t available, int64_t debit, bool allow_negative,
                           int64_t overdraft_limit)
{
    int64_t after;

    if (allow_negative)
        return false;
    if (__builtin_sub_overflow(available, debit, &after))
        return true;
    /* A negative limit is no lower floor than 0 (and -INT64_MIN would not fit). */
    return after < (overdraft_limit > 0 ? -overdraft_limit : 0);
}

bool lq_ledger_above_ceiling(int64_t balance, int64_t held_credits, int64_t credit,
                             int64_t max_balance)
{
    int64_t sum;

    if (max_balance <= 0)
        return false;
    if (__builtin_add_overflow(balance, held_credits, &sum) ||
        __builtin_add_overflow(sum, credit, &sum))
        return true;
    return sum > max_balance;
}

/* ---- the undo log of one command ----------------------------------------- */

void lq_ledger_undo_begin(lq_undo *undo, lq_book *book)
{
    undo->book = book;
    undo->n_entries = book->n_entries;
    undo->n_saved = 0;
    undo->added = false;
    undo->added_id[0] = '\0';
    undo->hold_saved = false;
    undo->hold_added = false;
    undo->hold_added_id[0] = '\0';
}

int lq_ledger_undo_save(lq_undo *undo, const lq_account *a)
{
    /* The first copy is the one to go back to; accounts are told apart by id (pointers move). */
    for (size_t i = 0; i < undo->n_saved; i++) {
        if (strcmp(undo->saved[i].id, a->id) == 0)
            return LQ_OK;
    }
    if (undo->n_saved == LQ_UNDO_MAX)
        return LQ_ERR_INTERNAL;
    undo->saved[undo->n_saved++] = *a;
    return LQ_OK;
}

void lq_ledger_undo_added(lq_undo *undo, const char *id)
{
    undo->added = true;
    snprintf(undo->added_id, sizeof(undo->added_id), "%s", id);
}

int lq_ledger_undo_save_hold(lq_undo *undo, const lq_hold *h)
{
    if (undo->hold_saved)
        return strcmp(undo->saved_hold.id, h->id) == 0 ? LQ_OK : LQ_ERR_INTERNAL;
    undo->saved_hold = *h;
    undo->hold_saved = true;
    return LQ_OK;
}

void lq_ledger_undo_added_hold(lq_undo *undo, const char *id)
{
    undo->hold_added = true;
    snprintf(undo->hold_added_id, sizeof(undo->hold_added_id), "%s", id);
}

void lq_ledger_undo_rollback(lq_undo *undo)
{
    lq_book *book = undo->book;

    entries_truncate(book, undo->n_entries);
    for (size_t i = 0; i < undo->n_saved; i++) {
        lq_account *a = lq_book_find(book, undo->saved[i].id);

        if (a)
            *a = undo->saved[i];
    }
    if (undo->added)
        book_remove(book, undo->added_id);
    if (undo->hold_saved) {
        lq_hold *h = lq_book_find_hold(book, undo->saved_hold.id);

        /* The copy shares the legs with the book's hold: the legs never change. */
        if (h)
            *h = undo->saved_hold;
    }
    if (undo->hold_added)
        book_remove_hold(book, undo->hold_added_id);
    undo->n_saved = 0;
    undo->added = false;
    undo->hold_saved = false;
    undo->hold_added = false;
}

int lq_ledger_apply(lq_book *book, const lq_command *c, char *detail, size_t detail_len)
{
    /* About 24 KiB of stack: a copy of each account 64 legs can name. */
    lq_undo undo;
    char scratch[1];
    int r;

    if (!detail || detail_len == 0) {
        detail = scratch;
        detail_len = sizeof(scratch);
    }
    detail[0] = '\0';
    lq_ledger_undo_begin(&undo, book);

    switch (c->type) {
    case LQ_CMD_TRANSFER:
        r = lq_ledger_apply_transfer(book, c, &undo, detail, detail_len);
        break;
    case LQ_CMD_ACCOUNT_OPEN:
        r = lq_ledger_apply_account_open(book, c, &undo, detail, detail_len);
        break;
    case LQ_CMD_ACCOUNT_UPDATE:
        r = lq_ledger_apply_account_update(book, c, &undo, detail, detail_len);
        break;
    case LQ_CMD_HOLD:
        r = lq_ledger_apply_hold(book, c, &undo, detail, detail_len);
        break;
    case LQ_CMD_CAPTURE:
        r = lq_ledger_apply_capture(book, c, &undo, detail, detail_len);
        break;
    case LQ_CMD_VOID:
        r = lq_ledger_apply_void(book, c, &undo, detail, detail_len);
        break;
    default:
        snprintf(detail, detail_len, "command has unknown type %d", (int)c->type);
        r = LQ_ERR_INTERNAL;
        break;
    }
    if (r != LQ_OK)
        lq_ledger_undo_rollback(&undo);
    if (r == LQ_ERR_NOMEM && detail[0] == '\0')
        snprintf(detail, detail_len, "out of memory");
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

/*
 * What an applied command's outcome tells beyond its status: for a capture
 * of a single-leg hold, the amount it posted (docs/protocol.md section 12).
 */
static int64_t applied_amount(const lq_book *book, const lq_command *c)
{
    const lq_hold *h;

    if (c->type != LQ_CMD_CAPTURE)
        return 0;
    h = lq_book_find_hold(book, c->hold);
    return h && h->n_legs == 1 ? h->captured : 0;
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
        if (item->outcome.result == LQ_OK)
            item->outcome.amount = applied_amount(book, item->command);
        snprintf(item->outcome.processed_at, sizeof(item->outcome.processed_at), "%s", now);
        /*
         * Only business outcomes are stored; LQ_ERR_INTERNAL (a command no
         * parser makes) and LQ_ERR_NOMEM are failures of this processing,
         * not a final outcome of the id: the worker fails the batch.
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
