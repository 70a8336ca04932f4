/*
 * Unit tests of the ledger module: docs/protocol.md sections 5, 12, 13 and
 * 15, without a database.
 *
 * Commands are built by hand (no message parsing): a test command owns its
 * legs (or its account change) and a made-up canonical text derived from
 * them, so two commands built alike have "the same content".  Held amounts
 * (section 14) are set directly in the book.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/error.h"
#include "ledgerq/ledger.h"

#define NOW     "2026-11-22T10:00:00.123456Z"
#define EARLIER "2026-11-21T09:00:00.000001Z"

typedef struct test_payment {
    lq_command p;
    lq_leg legs[LQ_LEGS_MAX];
    char canonical[LQ_LEGS_MAX * 200];
    char reason[LQ_REASON_MAX + 1];
} test_payment;

/* The book every test works on; set up and released by the fixture. */
static lq_book book;

static void book_setup(void)
{
    memset(&book, 0, sizeof(book));
}

static void book_teardown(void)
{
    lq_book_release(&book);
}

static void pay_init(test_payment *t, const char *id)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->p.id, sizeof(t->p.id), "%s", id);
    t->p.legs = t->legs;
    t->p.canonical = t->canonical;
}

/* Append a leg; the canonical text grows with it. */
static void pay_leg(test_payment *t, const char *debit, const char *credit, int64_t amount,
                    const char *currency)
{
    lq_leg *leg;
    size_t used = strlen(t->canonical);

    ck_assert_uint_lt(t->p.n_legs, LQ_LEGS_MAX);
    leg = &t->legs[t->p.n_legs++];
    snprintf(leg->debit, sizeof(leg->debit), "%s", debit);
    snprintf(leg->credit, sizeof(leg->credit), "%s", credit);
    leg->amount = amount;
    snprintf(leg->currency, sizeof(leg->currency), "%s", currency);
    snprintf(t->canonical + used, sizeof(t->canonical) - used, "%s>%s:%" PRId64 ":%s;", debit,
             credit, amount, currency);
}

/* A one-leg payment. */
static void pay1(test_payment *t, const char *id, const char *debit, const char *credit,
                 int64_t amount, const char *currency)
{
    pay_init(t, id);
    pay_leg(t, debit, credit, amount, currency);
}

static void open_account(const char *id, const char *currency, bool allow_negative, int64_t debits,
                         int64_t credits)
{
    lq_account a;

    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "%s", id);
    snprintf(a.currency, sizeof(a.currency), "%s", currency);
    a.allow_negative = allow_negative;
    a.debits = debits;
    a.credits = credits;
    ck_assert_int_eq(lq_book_add(&book, &a), LQ_OK);
}

/* An account that is not allowed to go negative, holding balance (>= 0). */
static void open_funded(const char *id, const char *currency, int64_t balance)
{
    open_account(id, currency, false, 0, balance);
}

static lq_account *account(const char *id)
{
    lq_account *a = lq_book_find(&book, id);

    ck_assert_msg(a != NULL, "account %s is not in the book", id);
    return a;
}

#define ck_assert_account(id, want_debits, want_credits, want_changed)                             \
    do {                                                                                           \
        const lq_account *a_ = account(id);                                                        \
        ck_assert_int_eq(a_->debits, (want_debits));                                               \
        ck_assert_int_eq(a_->credits, (want_credits));                                             \
        ck_assert_int_eq(a_->changed, (want_changed));                                             \
    } while (0)

#define ck_assert_balance(id, want) ck_assert_int_eq(lq_account_balance(account(id)), (want))

/*
 * An account with a floor of minus overdraft (allow_negative off) and a
 * ceiling of max_balance (0: none), holding balance (negative: debits).
 */
static void open_limited(const char *id, const char *currency, int64_t balance, int64_t overdraft,
                         int64_t max_balance)
{
    lq_account a;

    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "%s", id);
    snprintf(a.currency, sizeof(a.currency), "%s", currency);
    a.overdraft_limit = overdraft;
    a.max_balance = max_balance;
    if (balance >= 0)
        a.credits = balance;
    else
        a.debits = -balance;
    ck_assert_int_eq(lq_book_add(&book, &a), LQ_OK);
}

/* The i-th entry the book holds (from 0), with every value a test names. */
#define ck_assert_entry(i, want_account, want_seq, want_command, want_type, want_leg, want_amount, \
                        want_balance)                                                              \
    do {                                                                                           \
        const lq_entry *e_;                                                                        \
        ck_assert_uint_lt((i), book.n_entries);                                                    \
        e_ = &book.entries[(i)];                                                                   \
        ck_assert_str_eq(e_->account, (want_account));                                             \
        ck_assert_int_eq(e_->seq, (want_seq));                                                     \
        ck_assert_str_eq(e_->command, (want_command));                                             \
        ck_assert_str_eq(e_->type, (want_type));                                                   \
        ck_assert_int_eq(e_->leg, (want_leg));                                                     \
        ck_assert_int_eq(e_->amount, (want_amount));                                               \
        ck_assert_int_eq(e_->balance, (want_balance));                                             \
    } while (0)

/* A copy of the whole book, to show that a rejection left it exactly as it was. */
typedef struct book_snapshot {
    size_t n;
    size_t n_entries;
    size_t n_holds;
    lq_account *accounts;
    lq_entry *entries; /* shallow: the change texts are the book's */
    lq_hold *holds;    /* shallow: the legs are the book's */
} book_snapshot;

static book_snapshot *snapshot(void)
{
    book_snapshot *copy = calloc(1, sizeof(*copy));

    ck_assert_ptr_nonnull(copy);
    copy->n = book.n;
    copy->n_entries = book.n_entries;
    copy->accounts = malloc(book.n * sizeof(*copy->accounts) + 1);
    copy->entries = malloc(book.n_entries * sizeof(*copy->entries) + 1);
    copy->n_holds = book.n_holds;
    copy->holds = malloc(book.n_holds * sizeof(*copy->holds) + 1);
    ck_assert_ptr_nonnull(copy->accounts);
    ck_assert_ptr_nonnull(copy->entries);
    ck_assert_ptr_nonnull(copy->holds);
    if (book.n)
        memcpy(copy->accounts, book.accounts, book.n * sizeof(*copy->accounts));
    if (book.n_entries)
        memcpy(copy->entries, book.entries, book.n_entries * sizeof(*copy->entries));
    if (book.n_holds)
        memcpy(copy->holds, book.holds, book.n_holds * sizeof(*copy->holds));
    return copy;
}

/* Every field of every account, and every entry, as in before (then freed); n accounts. */
static void ck_assert_book_is(book_snapshot *before, size_t n)
{
    ck_assert_uint_eq(before->n, n);
    ck_assert_uint_eq(book.n, n);
    for (size_t i = 0; i < n; i++) {
        const lq_account *a = &book.accounts[i];
        const lq_account *b = &before->accounts[i];

        ck_assert_str_eq(a->id, b->id);
        ck_assert_str_eq(a->currency, b->currency);
        ck_assert_int_eq(a->status, b->status);
        ck_assert_int_eq(a->allow_negative, b->allow_negative);
        ck_assert_int_eq(a->overdraft_limit, b->overdraft_limit);
        ck_assert_int_eq(a->max_balance, b->max_balance);
        ck_assert_int_eq(a->debits, b->debits);
        ck_assert_int_eq(a->credits, b->credits);
        ck_assert_int_eq(a->held_debits, b->held_debits);
        ck_assert_int_eq(a->held_credits, b->held_credits);
        ck_assert_int_eq(a->entries, b->entries);
        ck_assert_str_eq(a->created_at, b->created_at);
        ck_assert_int_eq(a->changed, b->changed);
        ck_assert_int_eq(a->opened, b->opened);
    }
    ck_assert_uint_eq(book.n_entries, before->n_entries);
    for (size_t i = 0; i < before->n_entries; i++) {
        const lq_entry *a = &book.entries[i];
        const lq_entry *b = &before->entries[i];

        ck_assert_str_eq(a->account, b->account);
        ck_assert_int_eq(a->seq, b->seq);
        ck_assert_ptr_eq(a->command, b->command);
        ck_assert_ptr_eq(a->type, b->type);
        ck_assert_int_eq(a->leg, b->leg);
        ck_assert_int_eq(a->amount, b->amount);
        ck_assert_int_eq(a->balance, b->balance);
        ck_assert_int_eq(a->held_debits, b->held_debits);
        ck_assert_int_eq(a->held_credits, b->held_credits);
        ck_assert_ptr_eq(a->change, b->change);
    }
    ck_assert_uint_eq(book.n_holds, before->n_holds);
    for (size_t i = 0; i < before->n_holds; i++) {
        const lq_hold *a = &book.holds[i];
        const lq_hold *b = &before->holds[i];

        ck_assert_str_eq(a->id, b->id);
        ck_assert_int_eq(a->status, b->status);
        ck_assert_int_eq(a->past_expiry, b->past_expiry);
        ck_assert_uint_eq(a->n_legs, b->n_legs);
        ck_assert_ptr_eq(a->legs, b->legs);
        ck_assert_int_eq(a->timeout_s, b->timeout_s);
        ck_assert_ptr_eq(a->resolved_by, b->resolved_by);
        ck_assert_int_eq(a->captured, b->captured);
        ck_assert_int_eq(a->placed, b->placed);
        ck_assert_int_eq(a->changed, b->changed);
    }
    free(before->accounts);
    free(before->entries);
    free(before->holds);
    free(before);
}

/* Apply p and check result and detail; returns nothing, asserts everything. */
static void ck_apply(const test_payment *t, int want, const char *want_detail)
{
    char detail[LQ_DETAIL_MAX];

    memset(detail, 'x', sizeof(detail));
    ck_assert_int_eq(lq_ledger_apply(&book, &t->p, detail, sizeof(detail)), want);
    ck_assert_str_eq(detail, want_detail);
}

/* Append to t's canonical text (account commands: one piece per field given). */
static void canon_add(test_payment *t, const char *piece)
{
    size_t used = strlen(t->canonical);

    snprintf(t->canonical + used, sizeof(t->canonical) - used, "%s;", piece);
}

/* An account.open of acct in currency, with the defaults until a set_* below. */
static void cmd_open(test_payment *t, const char *id, const char *acct, const char *currency)
{
    pay_init(t, id);
    t->p.type = LQ_CMD_ACCOUNT_OPEN;
    snprintf(t->p.change.account, sizeof(t->p.change.account), "%s", acct);
    snprintf(t->p.change.currency, sizeof(t->p.change.currency), "%s", currency);
    canon_add(t, "account.open");
    canon_add(t, acct);
    canon_add(t, currency);
}

/* An account.update of acct, changing nothing until a set_* below. */
static void cmd_update(test_payment *t, const char *id, const char *acct)
{
    pay_init(t, id);
    t->p.type = LQ_CMD_ACCOUNT_UPDATE;
    snprintf(t->p.change.account, sizeof(t->p.change.account), "%s", acct);
    canon_add(t, "account.update");
    canon_add(t, acct);
}

static void set_status(test_payment *t, lq_account_status status)
{
    t->p.change.set_status = true;
    t->p.change.status = status;
    canon_add(t, status == LQ_STATUS_ACTIVE   ? "active"
                 : status == LQ_STATUS_FROZEN ? "frozen"
                                              : "closed");
}

static void set_allow_negative(test_payment *t, bool allow)
{
    t->p.change.set_allow_negative = true;
    t->p.change.allow_negative = allow;
    canon_add(t, allow ? "allow_negative" : "no_negative");
}

static void set_overdraft(test_payment *t, int64_t limit)
{
    char piece[48];

    t->p.change.set_overdraft_limit = true;
    t->p.change.overdraft_limit = limit;
    snprintf(piece, sizeof(piece), "overdraft=%" PRId64, limit);
    canon_add(t, piece);
}

/* 0: no ceiling (account.update's null). */
static void set_max(test_payment *t, int64_t max_balance)
{
    char piece[48];

    t->p.change.set_max_balance = true;
    t->p.change.max_balance = max_balance;
    snprintf(piece, sizeof(piece), "max=%" PRId64, max_balance);
    canon_add(t, piece);
}

static void set_reason(test_payment *t, const char *reason)
{
    snprintf(t->reason, sizeof(t->reason), "%s", reason);
    t->p.change.reason = t->reason;
    canon_add(t, reason);
}

/* Apply t, expecting it applied, and the change text of the entry it appended (the last). */
static void ck_apply_update(const test_payment *t, const char *want_change)
{
    ck_apply(t, LQ_OK, "");
    ck_assert_uint_gt(book.n_entries, 0);
    ck_assert_str_eq(book.entries[book.n_entries - 1].type, "account.update");
    ck_assert_ptr_nonnull(book.entries[book.n_entries - 1].change);
    ck_assert_str_eq(book.entries[book.n_entries - 1].change, want_change);
}

/* ---- accounts and the book ---------------------------------------------- */

START_TEST(test_balance_is_credits_minus_debits)
{
    open_account("acct:a", "EUR", true, 250, 100);
    open_account("acct:max", "EUR", true, INT64_MAX, 0);
    open_account("acct:top", "EUR", false, 0, INT64_MAX);
    ck_assert_balance("acct:a", -150);
    ck_assert_balance("acct:max", -INT64_MAX);
    ck_assert_balance("acct:top", INT64_MAX);
}
END_TEST

START_TEST(test_book_add_keeps_order)
{
    open_funded("acct:m", "EUR", 1);
    open_funded("acct:b", "EUR", 2);
    open_funded("acct:z", "EUR", 3);
    open_funded("acct:a", "EUR", 4);
    ck_assert_uint_eq(book.n, 4);
    ck_assert_str_eq(book.accounts[0].id, "acct:a");
    ck_assert_str_eq(book.accounts[1].id, "acct:b");
    ck_assert_str_eq(book.accounts[2].id, "acct:m");
    ck_assert_str_eq(book.accounts[3].id, "acct:z");
    /* Each entry is a copy of what was added. */
    ck_assert_int_eq(account("acct:z")->credits, 3);
    ck_assert_str_eq(account("acct:z")->currency, "EUR");
}
END_TEST

START_TEST(test_book_add_duplicate_is_exists)
{
    lq_account again;

    open_funded("acct:a", "EUR", 100);
    memset(&again, 0, sizeof(again));
    snprintf(again.id, sizeof(again.id), "acct:a");
    snprintf(again.currency, sizeof(again.currency), "USD");
    ck_assert_int_eq(lq_book_add(&book, &again), LQ_ERR_EXISTS);
    ck_assert_uint_eq(book.n, 1);
    ck_assert_str_eq(account("acct:a")->currency, "EUR");
    ck_assert_int_eq(account("acct:a")->credits, 100);
}
END_TEST

START_TEST(test_book_find_hits_and_misses)
{
    ck_assert_ptr_null(lq_book_find(&book, "acct:a")); /* empty book */
    open_funded("acct:a", "EUR", 1);
    open_funded("acct:c", "EUR", 3);
    ck_assert_str_eq(lq_book_find(&book, "acct:a")->id, "acct:a");
    ck_assert_str_eq(lq_book_find(&book, "acct:c")->id, "acct:c");
    ck_assert_ptr_null(lq_book_find(&book, "acct:b"));
    ck_assert_ptr_null(lq_book_find(&book, "acct:0"));
    ck_assert_ptr_null(lq_book_find(&book, "acct:d"));
    ck_assert_ptr_null(lq_book_find(&book, "acct:"));
    ck_assert_ptr_null(lq_book_find(&book, "acct:aa"));
}
END_TEST

START_TEST(test_book_grows_past_initial_capacity)
{
    enum { N = 1000 };
    size_t order[N];
    char id[32];
    uint64_t rng = 42;

    for (size_t i = 0; i < N; i++)
        order[i] = i;
    /* Fisher-Yates with a fixed LCG: random order, same every run. */
    for (size_t i = N - 1; i > 0; i--) {
        size_t j, tmp;

        rng = rng * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
        j = (size_t)((rng >> 33) % (i + 1));
        tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    for (size_t i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "acct:%zu", order[i]);
        open_funded(id, "EUR", (int64_t)order[i]);
    }
    ck_assert_uint_eq(book.n, N);
    ck_assert_uint_ge(book.cap, N);
    for (size_t i = 1; i < N; i++)
        ck_assert_int_lt(strcmp(book.accounts[i - 1].id, book.accounts[i].id), 0);
    for (size_t i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "acct:%zu", i);
        ck_assert_int_eq(account(id)->credits, (int64_t)i);
    }
    ck_assert_ptr_null(lq_book_find(&book, "acct:1000"));
}
END_TEST

START_TEST(test_book_clear_keeps_allocation)
{
    size_t cap;

    open_funded("acct:a", "EUR", 1);
    open_funded("acct:b", "EUR", 2);
    cap = book.cap;
    lq_book_clear(&book);
    ck_assert_uint_eq(book.n, 0);
    ck_assert_uint_eq(book.cap, cap);
    ck_assert_ptr_null(lq_book_find(&book, "acct:a"));
    open_funded("acct:a", "EUR", 5); /* reusable, no EXISTS from before the clear */
    ck_assert_int_eq(account("acct:a")->credits, 5);
}
END_TEST

/* ---- section 14: the book's holds ------------------------------------------ */

/*
 * Add a hold to the book as the db module loads it: status as given, legs
 * copied from t's (the book owns the copy).  It touches no account.
 */
static void add_hold(const char *id, lq_hold_status status, bool past_expiry, const test_payment *t)
{
    lq_hold h;

    memset(&h, 0, sizeof(h));
    snprintf(h.id, sizeof(h.id), "%s", id);
    h.status = status;
    h.past_expiry = past_expiry;
    h.n_legs = t->p.n_legs;
    h.legs = malloc(t->p.n_legs * sizeof(*h.legs) + 1);
    ck_assert_ptr_nonnull(h.legs);
    memcpy(h.legs, t->p.legs, t->p.n_legs * sizeof(*h.legs));
    ck_assert_int_eq(lq_book_add_hold(&book, &h), LQ_OK);
}

static lq_hold *hold(const char *id)
{
    lq_hold *h = lq_book_find_hold(&book, id);

    ck_assert_msg(h != NULL, "hold %s is not in the book", id);
    return h;
}

START_TEST(test_hold_status_names)
{
    lq_hold_status s = LQ_HOLD_CAPTURED;

    ck_assert_str_eq(lq_hold_status_name(LQ_HOLD_PENDING), "pending");
    ck_assert_str_eq(lq_hold_status_name(LQ_HOLD_CAPTURED), "captured");
    ck_assert_str_eq(lq_hold_status_name(LQ_HOLD_VOIDED), "voided");
    ck_assert_str_eq(lq_hold_status_name(LQ_HOLD_EXPIRED), "expired");
    ck_assert_str_eq(lq_hold_status_name((lq_hold_status)4), "unknown");
    ck_assert_str_eq(lq_hold_status_name((lq_hold_status)-1), "unknown");
    ck_assert(lq_hold_status_parse("pending", &s));
    ck_assert_int_eq(s, LQ_HOLD_PENDING);
    ck_assert(lq_hold_status_parse("voided", &s));
    ck_assert_int_eq(s, LQ_HOLD_VOIDED);
    ck_assert(lq_hold_status_parse("expired", &s));
    ck_assert_int_eq(s, LQ_HOLD_EXPIRED);
    ck_assert(lq_hold_status_parse("captured", &s));
    ck_assert_int_eq(s, LQ_HOLD_CAPTURED);
    /* Exactly the name; *ret untouched otherwise. */
    ck_assert(!lq_hold_status_parse(NULL, &s));
    ck_assert(!lq_hold_status_parse("", &s));
    ck_assert(!lq_hold_status_parse("Pending", &s));
    ck_assert(!lq_hold_status_parse("pending ", &s));
    ck_assert(!lq_hold_status_parse("unknown", &s));
    ck_assert_int_eq(s, LQ_HOLD_CAPTURED);
}
END_TEST

START_TEST(test_book_holds_sorted_and_found)
{
    test_payment t;
    lq_hold again;

    pay1(&t, "x", "acct:a", "acct:b", 10, "EUR");
    ck_assert_ptr_null(lq_book_find_hold(&book, "h1")); /* empty book */
    add_hold("h2", LQ_HOLD_PENDING, false, &t);
    add_hold("h3", LQ_HOLD_VOIDED, false, &t);
    add_hold("h1", LQ_HOLD_CAPTURED, true, &t);
    ck_assert_uint_eq(book.n_holds, 3);
    ck_assert_str_eq(book.holds[0].id, "h1");
    ck_assert_str_eq(book.holds[1].id, "h2");
    ck_assert_str_eq(book.holds[2].id, "h3");
    ck_assert_int_eq(hold("h1")->status, LQ_HOLD_CAPTURED);
    ck_assert(hold("h1")->past_expiry);
    ck_assert_int_eq(hold("h3")->status, LQ_HOLD_VOIDED);
    ck_assert_int_eq(hold("h2")->legs[0].amount, 10);
    ck_assert_ptr_null(lq_book_find_hold(&book, "h0"));
    ck_assert_ptr_null(lq_book_find_hold(&book, "h20"));
    ck_assert_ptr_null(lq_book_find_hold(&book, "h4"));
    /* Accounts and holds are apart: no account "h1", no hold "acct:a". */
    ck_assert_ptr_null(lq_book_find(&book, "h1"));

    /* A second hold with an id: refused, and the caller keeps its legs. */
    memset(&again, 0, sizeof(again));
    snprintf(again.id, sizeof(again.id), "h2");
    again.n_legs = 1;
    again.legs = t.legs;
    ck_assert_int_eq(lq_book_add_hold(&book, &again), LQ_ERR_EXISTS);
    ck_assert_uint_eq(book.n_holds, 3);
    ck_assert_ptr_ne(hold("h2")->legs, t.legs);
}
END_TEST

START_TEST(test_book_holds_grow_past_initial_capacity)
{
    enum { N = 500 };
    test_payment t;
    char id[32];

    pay1(&t, "x", "acct:a", "acct:b", 10, "EUR");
    /* Descending: every add goes first, moving all the others. */
    for (int i = N - 1; i >= 0; i--) {
        snprintf(id, sizeof(id), "h%03d", i);
        add_hold(id, LQ_HOLD_PENDING, false, &t);
    }
    ck_assert_uint_eq(book.n_holds, N);
    ck_assert_uint_ge(book.cap_holds, N);
    for (size_t i = 1; i < N; i++)
        ck_assert_int_lt(strcmp(book.holds[i - 1].id, book.holds[i].id), 0);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "h%03d", i);
        ck_assert_str_eq(hold(id)->id, id);
    }
}
END_TEST

START_TEST(test_book_clear_and_release_free_holds)
{
    test_payment t;
    size_t cap;

    pay1(&t, "x", "acct:a", "acct:b", 10, "EUR");
    add_hold("h1", LQ_HOLD_PENDING, false, &t);
    add_hold("h2", LQ_HOLD_PENDING, false, &t);
    cap = book.cap_holds;
    /* The legs are freed (the sanitizers' leak check sees it), the array is kept. */
    lq_book_clear(&book);
    ck_assert_uint_eq(book.n_holds, 0);
    ck_assert_uint_eq(book.cap_holds, cap);
    ck_assert_ptr_null(lq_book_find_hold(&book, "h1"));
    add_hold("h1", LQ_HOLD_PENDING, false, &t); /* reusable */
    ck_assert_uint_eq(book.n_holds, 1);
    lq_book_release(&book);
    ck_assert_ptr_null(book.holds);
    ck_assert_uint_eq(book.n_holds, 0);
    ck_assert_uint_eq(book.cap_holds, 0);
}
END_TEST

/* ---- one leg: each outcome ------------------------------------------------ */

START_TEST(test_applied_single_leg)
{
    test_payment t;

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:c", "EUR", 7);
    pay1(&t, "p1", "acct:a", "acct:b", 30, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_account("acct:a", 30, 100, true);
    ck_assert_account("acct:b", 0, 30, true);
    ck_assert_account("acct:c", 0, 7, false); /* not named: untouched */
    ck_assert_balance("acct:a", 70);
    ck_assert_balance("acct:b", 30);
}
END_TEST

START_TEST(test_account_not_found_debit)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:b", "EUR", 0);
    before = snapshot();
    pay1(&t, "p1", "acct:x", "acct:b", 10, "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_NOT_FOUND, "leg 1: account \"acct:x\" does not exist");
    ck_assert_book_is(before, 1);
}
END_TEST

START_TEST(test_account_not_found_credit)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 100);
    before = snapshot();
    pay1(&t, "p1", "acct:a", "acct:y", 10, "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_NOT_FOUND, "leg 1: account \"acct:y\" does not exist");
    ck_assert_book_is(before, 1);
}
END_TEST

START_TEST(test_account_not_found_both_names_debit)
{
    test_payment t;

    pay1(&t, "p1", "acct:x", "acct:y", 10, "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_NOT_FOUND, "leg 1: account \"acct:x\" does not exist");
    ck_assert_uint_eq(book.n, 0);
}
END_TEST

START_TEST(test_currency_mismatch_debit_side)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "USD", 0);
    before = snapshot();
    pay1(&t, "p1", "acct:a", "acct:b", 10, "USD");
    ck_apply(&t, LQ_ERR_CURRENCY_MISMATCH,
             "leg 1: currency USD differs from account \"acct:a\" (EUR)");
    ck_assert_book_is(before, 2);
}
END_TEST

START_TEST(test_currency_mismatch_credit_side)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "USD", 0);
    before = snapshot();
    pay1(&t, "p1", "acct:a", "acct:b", 10, "EUR");
    ck_apply(&t, LQ_ERR_CURRENCY_MISMATCH,
             "leg 1: currency EUR differs from account \"acct:b\" (USD)");
    ck_assert_book_is(before, 2);
}
END_TEST

START_TEST(test_insufficient_funds_exactly_zero_is_allowed)
{
    test_payment t;

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    pay1(&t, "p1", "acct:a", "acct:b", 100, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_account("acct:a", 100, 100, true);
    ck_assert_balance("acct:a", 0);
    ck_assert_balance("acct:b", 100);
}
END_TEST

START_TEST(test_insufficient_funds_one_below)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 99);
    open_funded("acct:b", "EUR", 0);
    before = snapshot();
    pay1(&t, "p1", "acct:a", "acct:b", 100, "EUR");
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance 99, cannot be debited 100");
    ck_assert_book_is(before, 2);
}
END_TEST

START_TEST(test_insufficient_funds_empty_account)
{
    test_payment t;

    open_funded("acct:a", "EUR", 0);
    open_funded("acct:b", "EUR", 0);
    pay1(&t, "p1", "acct:a", "acct:b", 1, "EUR");
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance 0, cannot be debited 1");
    ck_assert_account("acct:a", 0, 0, false);
    ck_assert_account("acct:b", 0, 0, false);
}
END_TEST

START_TEST(test_allow_negative_may_go_negative)
{
    test_payment t;

    open_account("acct:bank", "EUR", true, 0, 0);
    open_funded("acct:b", "EUR", 0);
    pay1(&t, "p1", "acct:bank", "acct:b", 500, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_account("acct:bank", 500, 0, true);
    ck_assert_balance("acct:bank", -500);
    /* and further */
    pay1(&t, "p2", "acct:bank", "acct:b", 250, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_balance("acct:bank", -750);
    ck_assert_balance("acct:b", 750);
}
END_TEST

START_TEST(test_amount_overflow_on_credits)
{
    test_payment t;
    book_snapshot *before;

    open_account("acct:a", "EUR", true, 0, 0);
    open_funded("acct:b", "EUR", INT64_MAX - 10);
    before = snapshot();
    pay1(&t, "p1", "acct:a", "acct:b", 11, "EUR");
    ck_apply(&t, LQ_ERR_AMOUNT_OVERFLOW,
             "leg 1: credits of account \"acct:b\" would exceed the 64-bit range");
    ck_assert_book_is(before, 2);
    /* Up to INT64_MAX exactly is fine. */
    pay1(&t, "p2", "acct:a", "acct:b", 10, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_account("acct:b", 0, INT64_MAX, true);
    ck_assert_account("acct:a", 10, 0, true);
}
END_TEST

START_TEST(test_amount_overflow_on_debits_of_allow_negative)
{
    test_payment t;
    book_snapshot *before;

    open_account("acct:a", "EUR", true, INT64_MAX - 5, 0);
    open_funded("acct:b", "EUR", 0);
    before = snapshot();
    pay1(&t, "p1", "acct:a", "acct:b", 6, "EUR");
    ck_apply(&t, LQ_ERR_AMOUNT_OVERFLOW,
             "leg 1: debits of account \"acct:a\" would exceed the 64-bit range");
    ck_assert_book_is(before, 2);
    pay1(&t, "p2", "acct:a", "acct:b", 5, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_account("acct:a", INT64_MAX, 0, true);
    ck_assert_balance("acct:a", -INT64_MAX);
}
END_TEST

START_TEST(test_int64_max_amounts)
{
    test_payment t;
    book_snapshot *before;

    open_account("acct:a", "EUR", true, 0, 0);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:c", "EUR", 0);
    pay1(&t, "p1", "acct:a", "acct:b", INT64_MAX, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_account("acct:a", INT64_MAX, 0, true);
    ck_assert_account("acct:b", 0, INT64_MAX, true);
    ck_assert_balance("acct:b", INT64_MAX);

    /* b can pass all of it on. */
    pay1(&t, "p2", "acct:b", "acct:c", INT64_MAX, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_account("acct:b", INT64_MAX, INT64_MAX, true);
    ck_assert_balance("acct:b", 0);
    ck_assert_balance("acct:c", INT64_MAX);

    /* Two INT64_MAX legs from a fresh d: leg 2 overflows d's debits, nothing of leg 1 stays. */
    open_account("acct:d", "EUR", true, 0, 0);
    open_funded("acct:e", "EUR", 0);
    open_funded("acct:f", "EUR", 0);
    before = snapshot();
    pay_init(&t, "p3");
    pay_leg(&t, "acct:d", "acct:e", INT64_MAX, "EUR");
    pay_leg(&t, "acct:d", "acct:f", INT64_MAX, "EUR");
    ck_apply(&t, LQ_ERR_AMOUNT_OVERFLOW,
             "leg 2: debits of account \"acct:d\" would exceed the 64-bit range");
    ck_assert_book_is(before, 6);
}
END_TEST

/* ---- the order of the checks ---------------------------------------------- */

START_TEST(test_order_currency_mismatch_before_insufficient_funds)
{
    test_payment t;

    open_funded("acct:a", "EUR", 0);
    open_funded("acct:b", "USD", 0);
    pay1(&t, "p1", "acct:a", "acct:b", 100, "USD");
    ck_apply(&t, LQ_ERR_CURRENCY_MISMATCH,
             "leg 1: currency USD differs from account \"acct:a\" (EUR)");
}
END_TEST

START_TEST(test_order_missing_account_beats_everything)
{
    test_payment t;

    /* Debit underfunded and in another currency; the credit account is missing. */
    open_funded("acct:a", "USD", 0);
    pay1(&t, "p1", "acct:a", "acct:x", 100, "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_NOT_FOUND, "leg 1: account \"acct:x\" does not exist");

    /* The credit account would overflow and mismatch; the debit account is missing. */
    open_funded("acct:b", "USD", INT64_MAX);
    pay1(&t, "p2", "acct:y", "acct:b", 100, "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_NOT_FOUND, "leg 1: account \"acct:y\" does not exist");
    ck_assert_account("acct:a", 0, 0, false);
    ck_assert_account("acct:b", 0, INT64_MAX, false);
}
END_TEST

START_TEST(test_order_insufficient_funds_before_overflow)
{
    test_payment t;

    open_funded("acct:a", "EUR", 5);
    open_funded("acct:b", "EUR", INT64_MAX);
    pay1(&t, "p1", "acct:a", "acct:b", 10, "EUR");
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance 5, cannot be debited 10");
}
END_TEST

START_TEST(test_order_debits_overflow_before_credits_overflow)
{
    test_payment t;

    open_account("acct:a", "EUR", true, INT64_MAX, 0);
    open_funded("acct:b", "EUR", INT64_MAX);
    pay1(&t, "p1", "acct:a", "acct:b", 1, "EUR");
    ck_apply(&t, LQ_ERR_AMOUNT_OVERFLOW,
             "leg 1: debits of account \"acct:a\" would exceed the 64-bit range");
}
END_TEST

START_TEST(test_first_failing_leg_decides)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 10);
    open_funded("acct:b", "EUR", 0);
    before = snapshot();
    pay_init(&t, "p1");
    pay_leg(&t, "acct:a", "acct:b", 50, "EUR"); /* underfunded */
    pay_leg(&t, "acct:a", "acct:zz", 1, "EUR"); /* missing account */
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance 10, cannot be debited 50");
    ck_assert_book_is(before, 2);
}
END_TEST

/* ---- several legs ---------------------------------------------------------- */

START_TEST(test_multi_leg_atomicity)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:c", "EUR", 0);
    /* An earlier payment of the batch already changed c: that mark must stay. */
    account("acct:c")->changed = true;
    before = snapshot();
    pay_init(&t, "p1");
    pay_leg(&t, "acct:a", "acct:b", 60, "EUR"); /* ok */
    pay_leg(&t, "acct:a", "acct:c", 60, "EUR"); /* a has only 40 left */
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 2: account \"acct:a\" has balance 40, cannot be debited 60");
    ck_assert_book_is(before, 3);
    ck_assert_account("acct:a", 0, 100, false);
    ck_assert_account("acct:b", 0, 0, false);
    ck_assert_account("acct:c", 0, 0, true);
}
END_TEST

START_TEST(test_multi_leg_applied_all_legs)
{
    test_payment t;

    open_funded("acct:alice", "EUR", 1000);
    open_funded("acct:shop", "EUR", 0);
    open_funded("acct:fees", "EUR", 0);
    pay_init(&t, "split-77");
    pay_leg(&t, "acct:alice", "acct:shop", 900, "EUR");
    pay_leg(&t, "acct:alice", "acct:fees", 100, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_account("acct:alice", 1000, 1000, true);
    ck_assert_account("acct:shop", 0, 900, true);
    ck_assert_account("acct:fees", 0, 100, true);
}
END_TEST

START_TEST(test_later_leg_spends_what_earlier_leg_credited)
{
    test_payment t;

    open_funded("acct:a", "EUR", 0);
    open_funded("acct:b", "EUR", 100);
    open_funded("acct:c", "EUR", 0);
    pay_init(&t, "p1");
    pay_leg(&t, "acct:b", "acct:a", 100, "EUR");
    pay_leg(&t, "acct:a", "acct:c", 100, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_account("acct:a", 100, 100, true);
    ck_assert_account("acct:b", 100, 100, true);
    ck_assert_account("acct:c", 0, 100, true);
}
END_TEST

START_TEST(test_legs_in_order_not_netted)
{
    test_payment t;
    book_snapshot *before;

    /* The same legs the other way round: a is spent before it is funded. */
    open_funded("acct:a", "EUR", 0);
    open_funded("acct:b", "EUR", 100);
    open_funded("acct:c", "EUR", 0);
    before = snapshot();
    pay_init(&t, "p1");
    pay_leg(&t, "acct:a", "acct:c", 100, "EUR");
    pay_leg(&t, "acct:b", "acct:a", 100, "EUR");
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance 0, cannot be debited 100");
    ck_assert_book_is(before, 3);
}
END_TEST

START_TEST(test_same_account_in_several_legs)
{
    test_payment t;

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 20);
    open_funded("acct:c", "EUR", 0);
    pay_init(&t, "p1");
    pay_leg(&t, "acct:a", "acct:b", 30, "EUR"); /* b: 50 */
    pay_leg(&t, "acct:b", "acct:c", 50, "EUR"); /* b: 0, needs leg 1 */
    pay_leg(&t, "acct:a", "acct:b", 10, "EUR"); /* b: 10 */
    pay_leg(&t, "acct:c", "acct:a", 5, "EUR");  /* a: 65 */
    ck_apply(&t, LQ_OK, "");
    ck_assert_account("acct:a", 40, 105, true);
    ck_assert_account("acct:b", 50, 60, true);
    ck_assert_account("acct:c", 5, 50, true);
    ck_assert_balance("acct:a", 65);
    ck_assert_balance("acct:b", 10);
    ck_assert_balance("acct:c", 45);
}
END_TEST

START_TEST(test_same_account_in_several_legs_rolled_back)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 20);
    open_funded("acct:c", "EUR", 0);
    before = snapshot();
    pay_init(&t, "p1");
    pay_leg(&t, "acct:a", "acct:b", 30, "EUR");
    pay_leg(&t, "acct:b", "acct:c", 50, "EUR");
    pay_leg(&t, "acct:a", "acct:b", 10, "EUR");
    pay_leg(&t, "acct:b", "acct:c", 11, "EUR"); /* b has 10 */
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 4: account \"acct:b\" has balance 10, cannot be debited 11");
    ck_assert_book_is(before, 3);
}
END_TEST

START_TEST(test_sixty_four_legs)
{
    test_payment t;

    open_funded("acct:a", "EUR", 64);
    open_funded("acct:b", "EUR", 0);
    pay_init(&t, "p1");
    for (int i = 0; i < LQ_LEGS_MAX; i++)
        pay_leg(&t, "acct:a", "acct:b", 1, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_balance("acct:a", 0);
    ck_assert_balance("acct:b", 64);

    /* The last leg fails: 63 legs undone. */
    lq_book_clear(&book);
    open_funded("acct:a", "EUR", 63);
    open_funded("acct:b", "EUR", 0);
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 64: account \"acct:a\" has balance 0, cannot be debited 1");
    ck_assert_account("acct:a", 0, 63, false);
    ck_assert_account("acct:b", 0, 0, false);
}
END_TEST

START_TEST(test_detail_is_truncated_to_its_buffer)
{
    test_payment t;
    char detail[8];

    pay1(&t, "p1", "acct:x", "acct:y", 1, "EUR");
    ck_assert_int_eq(lq_ledger_apply(&book, &t.p, detail, sizeof(detail)),
                     LQ_ERR_ACCOUNT_NOT_FOUND);
    ck_assert_str_eq(detail, "leg 1: ");
    ck_assert_int_eq(lq_ledger_apply(&book, &t.p, NULL, 0), LQ_ERR_ACCOUNT_NOT_FOUND);
}
END_TEST

START_TEST(test_malformed_payment_is_internal_error)
{
    test_payment t;
    book_snapshot *before;

    /* What lq_command_parse() never produces is a bug, not a business outcome. */
    open_account("acct:a", "EUR", true, 0, 0);
    open_funded("acct:b", "EUR", 0);
    before = snapshot();
    pay_init(&t, "p1");
    pay_leg(&t, "acct:a", "acct:b", 10, "EUR");
    pay_leg(&t, "acct:a", "acct:b", -5, "EUR");
    ck_apply(&t, LQ_ERR_INTERNAL, "leg 2: amount -5 is not positive");
    pay1(&t, "p2", "acct:b", "acct:b", 5, "EUR");
    ck_apply(&t, LQ_ERR_INTERNAL, "leg 1: debits and credits the same account \"acct:b\"");
    pay_init(&t, "p3");
    ck_apply(&t, LQ_ERR_INTERNAL, "payment has 0 legs, not 1 to 64");
    ck_assert_book_is(before, 2);
}
END_TEST

/* ---- section 13: available balance, floors, ceilings, statuses ----------- */

START_TEST(test_available_is_balance_minus_held_debits)
{
    open_funded("acct:a", "EUR", 500);
    account("acct:a")->held_debits = 200;
    account("acct:a")->held_credits = 1000; /* not available until captured */
    ck_assert_int_eq(lq_account_available(account("acct:a")), 300);

    /* Exactly INT64_MIN, and below the range: both INT64_MIN, below any floor. */
    open_account("acct:b", "EUR", true, INT64_MAX, 0);
    account("acct:b")->held_debits = 1;
    ck_assert_int_eq(lq_account_available(account("acct:b")), INT64_MIN);
    account("acct:b")->held_debits = INT64_MAX;
    ck_assert_int_eq(lq_account_available(account("acct:b")), INT64_MIN);
    open_funded("acct:c", "EUR", INT64_MAX);
    account("acct:c")->held_debits = INT64_MAX;
    ck_assert_int_eq(lq_account_available(account("acct:c")), 0);
}
END_TEST

START_TEST(test_overdraft_debit_to_exactly_minus_limit_then_one_more)
{
    test_payment t;
    book_snapshot *before;

    open_limited("acct:a", "EUR", 100, 500, 0);
    open_funded("acct:b", "EUR", 0);
    pay1(&t, "p1", "acct:a", "acct:b", 600, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_balance("acct:a", -500);
    before = snapshot();
    pay1(&t, "p2", "acct:a", "acct:b", 1, "EUR");
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance -500, cannot be debited 1 (floor -500)");
    ck_assert_book_is(before, 2);
}
END_TEST

START_TEST(test_overdraft_limit_zero_is_floor_zero)
{
    test_payment t;

    open_limited("acct:a", "EUR", 10, 0, 0);
    open_funded("acct:b", "EUR", 0);
    pay1(&t, "p1", "acct:a", "acct:b", 11, "EUR");
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance 10, cannot be debited 11");
}
END_TEST

START_TEST(test_credit_to_exactly_the_ceiling_then_one_more)
{
    test_payment t;
    book_snapshot *before;

    open_account("acct:a", "EUR", true, 0, 0);
    open_limited("acct:b", "EUR", 900, 0, 1000);
    pay1(&t, "p1", "acct:a", "acct:b", 100, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_balance("acct:b", 1000);
    before = snapshot();
    pay1(&t, "p2", "acct:a", "acct:b", 1, "EUR");
    ck_apply(&t, LQ_ERR_EXCEEDS_MAX_BALANCE,
             "leg 1: account \"acct:b\" has balance 1000, cannot be credited 1 (max balance 1000)");
    ck_assert_book_is(before, 2);
    /* The ceiling binds the credited account only: b can still pay out. */
    pay1(&t, "p3", "acct:b", "acct:a", 1000, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_balance("acct:b", 0);
}
END_TEST

START_TEST(test_ceiling_of_a_negative_account)
{
    test_payment t;

    /* A ceiling is on the balance, not on the credits: -300 + 400 = 100 fits a ceiling of 100. */
    open_limited("acct:a", "EUR", -300, 500, 100);
    open_account("acct:bank", "EUR", true, 0, 0);
    pay1(&t, "p1", "acct:bank", "acct:a", 401, "EUR");
    ck_apply(
        &t, LQ_ERR_EXCEEDS_MAX_BALANCE,
        "leg 1: account \"acct:a\" has balance -300, cannot be credited 401 (max balance 100)");
    pay1(&t, "p2", "acct:bank", "acct:a", 400, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_balance("acct:a", 100);
}
END_TEST

START_TEST(test_held_debits_count_in_available_balance)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 500);
    open_funded("acct:b", "EUR", 0);
    account("acct:a")->held_debits = 200;
    account("acct:a")->held_credits = 1000; /* counts for nothing here */
    before = snapshot();
    pay1(&t, "p1", "acct:a", "acct:b", 301, "EUR");
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance 500 (available 300), cannot be debited 301");
    ck_assert_book_is(before, 2);
    pay1(&t, "p2", "acct:a", "acct:b", 300, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_balance("acct:a", 200);
    ck_assert_int_eq(lq_account_available(account("acct:a")), 0);
    /* The held amounts stay as they were, and show in the entries. */
    ck_assert_int_eq(account("acct:a")->held_debits, 200);
    ck_assert_int_eq(book.entries[0].held_debits, 200);
    ck_assert_int_eq(book.entries[0].held_credits, 1000);
    ck_assert_int_eq(book.entries[1].held_debits, 0);
}
END_TEST

START_TEST(test_held_debits_with_an_overdraft_limit)
{
    test_payment t;

    open_limited("acct:a", "EUR", 500, 100, 0);
    open_funded("acct:b", "EUR", 0);
    account("acct:a")->held_debits = 200;
    pay1(&t, "p1", "acct:a", "acct:b", 401, "EUR");
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance 500 (available 300), cannot be debited 401 "
             "(floor -100)");
    pay1(&t, "p2", "acct:a", "acct:b", 400, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_int_eq(lq_account_available(account("acct:a")), -100);
}
END_TEST

START_TEST(test_held_credits_count_against_the_ceiling)
{
    test_payment t;
    book_snapshot *before;

    open_account("acct:a", "EUR", true, 0, 0);
    open_limited("acct:b", "EUR", 700, 0, 1000);
    account("acct:b")->held_credits = 200;
    account("acct:b")->held_debits = 700; /* counts for nothing here */
    before = snapshot();
    pay1(&t, "p1", "acct:a", "acct:b", 101, "EUR");
    ck_apply(&t, LQ_ERR_EXCEEDS_MAX_BALANCE,
             "leg 1: account \"acct:b\" has balance 700 (held credits 200), cannot be credited "
             "101 (max balance 1000)");
    ck_assert_book_is(before, 2);
    pay1(&t, "p2", "acct:a", "acct:b", 100, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_balance("acct:b", 800);
}
END_TEST

START_TEST(test_frozen_debit_is_rejected_frozen_credit_applies)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 100);
    account("acct:a")->status = LQ_STATUS_FROZEN;
    before = snapshot();
    pay1(&t, "p1", "acct:a", "acct:b", 10, "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_FROZEN, "leg 1: account \"acct:a\" is frozen");
    ck_assert_book_is(before, 2);
    /* Money still comes in. */
    pay1(&t, "p2", "acct:b", "acct:a", 10, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_balance("acct:a", 110);
    ck_assert_balance("acct:b", 90);
    ck_assert_int_eq(account("acct:a")->status, LQ_STATUS_FROZEN);
}
END_TEST

START_TEST(test_frozen_without_a_floor_is_still_frozen)
{
    test_payment t;

    open_account("acct:bank", "EUR", true, 0, 0);
    open_funded("acct:b", "EUR", 0);
    account("acct:bank")->status = LQ_STATUS_FROZEN;
    pay1(&t, "p1", "acct:bank", "acct:b", 1, "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_FROZEN, "leg 1: account \"acct:bank\" is frozen");
}
END_TEST

START_TEST(test_closed_on_either_side)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:c", "EUR", 0);
    account("acct:c")->status = LQ_STATUS_CLOSED;
    before = snapshot();
    pay1(&t, "p1", "acct:a", "acct:c", 10, "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_CLOSED, "leg 1: account \"acct:c\" is closed");
    pay1(&t, "p2", "acct:c", "acct:b", 10, "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_CLOSED, "leg 1: account \"acct:c\" is closed");
    /* Both closed: the debited account is named. */
    account("acct:b")->status = LQ_STATUS_CLOSED;
    before->accounts[1].status = LQ_STATUS_CLOSED;
    pay1(&t, "p3", "acct:c", "acct:b", 10, "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_CLOSED, "leg 1: account \"acct:c\" is closed");
    pay1(&t, "p4", "acct:b", "acct:c", 10, "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_CLOSED, "leg 1: account \"acct:b\" is closed");
    ck_assert_book_is(before, 3);
}
END_TEST

/* ---- section 13: the leg-check order, on several legs ---------------------- */

/*
 * Each test pairs two adjacent checks of section 13 on leg 2 of a command
 * whose leg 1 passes (and is posted, then undone): the earlier check wins,
 * and nothing stays of leg 1.
 */
static void order_setup(void)
{
    open_funded("acct:src", "EUR", 1000);
    open_funded("acct:dst", "EUR", 0);
}

static void order_command(test_payment *t, const char *debit, const char *credit, int64_t amount,
                          const char *currency)
{
    pay_init(t, "order");
    pay_leg(t, "acct:src", "acct:dst", 10, "EUR");
    pay_leg(t, debit, credit, amount, currency);
}

START_TEST(test_order_not_found_before_closed)
{
    test_payment t;
    book_snapshot *before;

    order_setup();
    open_funded("acct:closed", "EUR", 0);
    account("acct:closed")->status = LQ_STATUS_CLOSED;
    before = snapshot();
    order_command(&t, "acct:closed", "acct:x", 1, "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_NOT_FOUND, "leg 2: account \"acct:x\" does not exist");
    order_command(&t, "acct:y", "acct:closed", 1, "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_NOT_FOUND, "leg 2: account \"acct:y\" does not exist");
    ck_assert_book_is(before, 3);
}
END_TEST

START_TEST(test_order_closed_before_currency_mismatch)
{
    test_payment t;
    book_snapshot *before;

    order_setup();
    open_funded("acct:usd", "USD", 100);
    open_funded("acct:closed", "EUR", 0);
    account("acct:closed")->status = LQ_STATUS_CLOSED;
    before = snapshot();
    /* The credited account is closed and in another currency than the leg. */
    order_command(&t, "acct:usd", "acct:closed", 1, "USD");
    ck_apply(&t, LQ_ERR_ACCOUNT_CLOSED, "leg 2: account \"acct:closed\" is closed");
    ck_assert_book_is(before, 4);
}
END_TEST

START_TEST(test_order_currency_mismatch_before_frozen)
{
    test_payment t;
    book_snapshot *before;

    order_setup();
    open_funded("acct:frozen", "EUR", 100);
    account("acct:frozen")->status = LQ_STATUS_FROZEN;
    open_funded("acct:usd", "USD", 0);
    before = snapshot();
    order_command(&t, "acct:frozen", "acct:usd", 1, "EUR");
    ck_apply(&t, LQ_ERR_CURRENCY_MISMATCH,
             "leg 2: currency EUR differs from account \"acct:usd\" (USD)");
    ck_assert_book_is(before, 4);
}
END_TEST

START_TEST(test_order_frozen_before_insufficient_funds)
{
    test_payment t;
    book_snapshot *before;

    order_setup();
    open_funded("acct:frozen", "EUR", 0);
    account("acct:frozen")->status = LQ_STATUS_FROZEN;
    before = snapshot();
    order_command(&t, "acct:frozen", "acct:dst", 50, "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_FROZEN, "leg 2: account \"acct:frozen\" is frozen");
    ck_assert_book_is(before, 3);
}
END_TEST

START_TEST(test_order_insufficient_funds_before_exceeds_max_balance)
{
    test_payment t;
    book_snapshot *before;

    order_setup();
    open_funded("acct:poor", "EUR", 0);
    open_limited("acct:capped", "EUR", 100, 0, 100);
    before = snapshot();
    order_command(&t, "acct:poor", "acct:capped", 1, "EUR");
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 2: account \"acct:poor\" has balance 0, cannot be debited 1");
    ck_assert_book_is(before, 4);
}
END_TEST

START_TEST(test_order_exceeds_max_balance_before_amount_overflow)
{
    test_payment t;
    book_snapshot *before;

    order_setup();
    /* The debited account's debits would overflow; the credited account is full. */
    open_account("acct:bank", "EUR", true, INT64_MAX, 0);
    open_limited("acct:capped", "EUR", 100, 0, 100);
    /* And an account whose credits would overflow while it passes its ceiling. */
    open_limited("acct:busy", "EUR", 10, 0, 15);
    account("acct:busy")->debits = INT64_MAX - 10;
    account("acct:busy")->credits = INT64_MAX;
    before = snapshot();
    order_command(&t, "acct:bank", "acct:capped", 1, "EUR");
    ck_apply(&t, LQ_ERR_EXCEEDS_MAX_BALANCE,
             "leg 2: account \"acct:capped\" has balance 100, cannot be credited 1 (max balance "
             "100)");
    order_command(&t, "acct:src", "acct:busy", 20, "EUR");
    ck_apply(&t, LQ_ERR_EXCEEDS_MAX_BALANCE,
             "leg 2: account \"acct:busy\" has balance 10, cannot be credited 20 (max balance 15)");
    /* Within the ceiling, the overflow of the totals still decides. */
    order_command(&t, "acct:src", "acct:busy", 5, "EUR");
    ck_apply(&t, LQ_ERR_AMOUNT_OVERFLOW,
             "leg 2: credits of account \"acct:busy\" would exceed the 64-bit range");
    ck_assert_book_is(before, 5);
}
END_TEST

START_TEST(test_first_failing_leg_decides_whatever_the_reasons)
{
    test_payment t;
    book_snapshot *before;

    open_account("acct:bank", "EUR", true, INT64_MAX, 0);
    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    open_limited("acct:capped", "EUR", 100, 0, 100);
    open_funded("acct:closed", "EUR", 0);
    account("acct:closed")->status = LQ_STATUS_CLOSED;
    before = snapshot();

    /* Leg 1 fails the last check, leg 2 the first: leg 1 decides. */
    pay_init(&t, "p1");
    pay_leg(&t, "acct:bank", "acct:a", 1, "EUR");
    pay_leg(&t, "acct:a", "acct:missing", 1, "EUR");
    ck_apply(&t, LQ_ERR_AMOUNT_OVERFLOW,
             "leg 1: debits of account \"acct:bank\" would exceed the 64-bit range");

    /* Leg 2 fails a late check, leg 3 an early one: leg 2 decides. */
    pay_init(&t, "p2");
    pay_leg(&t, "acct:a", "acct:b", 10, "EUR");
    pay_leg(&t, "acct:a", "acct:capped", 1, "EUR");
    pay_leg(&t, "acct:closed", "acct:a", 1, "USD");
    ck_apply(&t, LQ_ERR_EXCEEDS_MAX_BALANCE,
             "leg 2: account \"acct:capped\" has balance 100, cannot be credited 1 (max balance "
             "100)");
    ck_assert_book_is(before, 5);
}
END_TEST

START_TEST(test_later_leg_sees_the_ceiling_earlier_legs_reached)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 1000);
    open_limited("acct:b", "EUR", 0, 0, 500);
    before = snapshot();
    pay_init(&t, "p1");
    pay_leg(&t, "acct:a", "acct:b", 300, "EUR");
    pay_leg(&t, "acct:a", "acct:b", 200, "EUR"); /* b: exactly 500 */
    pay_leg(&t, "acct:a", "acct:b", 1, "EUR");
    ck_apply(&t, LQ_ERR_EXCEEDS_MAX_BALANCE,
             "leg 3: account \"acct:b\" has balance 500, cannot be credited 1 (max balance 500)");
    ck_assert_book_is(before, 2);
}
END_TEST

START_TEST(test_int64_edges_of_floors_and_ceilings)
{
    test_payment t;

    /* The lowest floor there is: -INT64_MAX, reached exactly. */
    open_limited("acct:a", "EUR", 0, INT64_MAX, 0);
    open_funded("acct:b", "EUR", 0);
    pay1(&t, "p1", "acct:a", "acct:b", INT64_MAX, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_balance("acct:a", -INT64_MAX);
    pay1(&t, "p2", "acct:a", "acct:b", 1, "EUR");
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance -9223372036854775807, cannot be debited 1 "
             "(floor -9223372036854775807)");
    /* Held debits take the available balance below the range: below the floor still. */
    account("acct:a")->held_debits = 5;
    pay1(&t, "p3", "acct:a", "acct:b", INT64_MAX, "EUR");
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance -9223372036854775807 (available "
             "-9223372036854775808), cannot be debited 9223372036854775807 (floor "
             "-9223372036854775807)");

    /* The highest ceiling there is: INT64_MAX, reached exactly, then passed by a sum that
     * overflows. */
    open_account("acct:bank", "EUR", true, 0, 0);
    open_limited("acct:c", "EUR", 0, 0, INT64_MAX);
    pay1(&t, "p4", "acct:bank", "acct:c", INT64_MAX, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_balance("acct:c", INT64_MAX);
    open_account("acct:bank2", "EUR", true, 0, 0);
    pay1(&t, "p5", "acct:bank2", "acct:c", 1, "EUR");
    ck_apply(&t, LQ_ERR_EXCEEDS_MAX_BALANCE,
             "leg 1: account \"acct:c\" has balance 9223372036854775807, cannot be credited 1 "
             "(max balance 9223372036854775807)");
    /* Held credits that overflow with the balance: above any ceiling. */
    open_limited("acct:d", "EUR", 10, 0, INT64_MAX);
    account("acct:d")->held_credits = INT64_MAX;
    pay1(&t, "p6", "acct:bank2", "acct:d", 1, "EUR");
    ck_apply(&t, LQ_ERR_EXCEEDS_MAX_BALANCE,
             "leg 1: account \"acct:d\" has balance 10 (held credits 9223372036854775807), cannot "
             "be credited 1 (max balance 9223372036854775807)");
}
END_TEST

/*
 * amount_overflow counts held amounts: a pending hold may still be captured
 * in full, so a transfer must leave room for it (section 14).
 */
START_TEST(test_amount_overflow_counts_held_amounts)
{
    test_payment t;
    book_snapshot *before;

    open_account("acct:neg", "EUR", true, INT64_MAX - 100, 0);
    open_account("acct:top", "EUR", false, 0, INT64_MAX - 100);
    open_account("acct:bank", "EUR", true, 0, 0);
    open_funded("acct:b", "EUR", 0);
    account("acct:neg")->held_debits = 60;
    account("acct:top")->held_credits = 60;
    before = snapshot();
    /* Debits plus the amount fit, debits plus held debits plus the amount do not. */
    pay1(&t, "p1", "acct:neg", "acct:b", 41, "EUR");
    ck_apply(&t, LQ_ERR_AMOUNT_OVERFLOW,
             "leg 1: debits of account \"acct:neg\" (with held debits 60) would exceed the "
             "64-bit range");
    pay1(&t, "p2", "acct:bank", "acct:top", 41, "EUR");
    ck_apply(&t, LQ_ERR_AMOUNT_OVERFLOW,
             "leg 1: credits of account \"acct:top\" (with held credits 60) would exceed the "
             "64-bit range");
    /* Held debits that large leave no available balance: insufficient_funds comes first. */
    account("acct:b")->held_debits = INT64_MAX;
    pay1(&t, "p3", "acct:b", "acct:bank", 1, "EUR");
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:b\" has balance 0 (available -9223372036854775807), cannot be "
             "debited 1");
    /* Held credits that alone are at the end of the range. */
    account("acct:b")->held_debits = 0;
    account("acct:b")->held_credits = INT64_MAX;
    pay1(&t, "p4", "acct:bank", "acct:b", 1, "EUR");
    ck_apply(&t, LQ_ERR_AMOUNT_OVERFLOW,
             "leg 1: credits of account \"acct:b\" (with held credits 9223372036854775807) would "
             "exceed the 64-bit range");
    account("acct:b")->held_credits = 0;
    ck_assert_book_is(before, 4);
    /* Up to the edge exactly. */
    pay1(&t, "p5", "acct:neg", "acct:b", 40, "EUR");
    ck_apply(&t, LQ_OK, "");
    pay1(&t, "p6", "acct:bank", "acct:top", 40, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_int_eq(account("acct:neg")->debits, INT64_MAX - 60);
    ck_assert_int_eq(account("acct:top")->credits, INT64_MAX - 60);
}
END_TEST

/* ---- section 15: the entries of transfers ---------------------------------- */

START_TEST(test_entries_of_transfers)
{
    test_payment t1, t2;

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:c", "EUR", 0);
    account("acct:a")->entries = 41; /* as loaded: the history goes on from there */
    pay1(&t1, "p1", "acct:a", "acct:b", 30, "EUR");
    ck_apply(&t1, LQ_OK, "");
    pay1(&t2, "p2", "acct:b", "acct:a", 5, "EUR");
    ck_apply(&t2, LQ_OK, "");

    ck_assert_uint_eq(book.n_entries, 4);
    /* Debit first, signed amounts, the balance just after each. */
    ck_assert_entry(0, "acct:a", 42, "p1", "transfer", 1, -30, 70);
    ck_assert_entry(1, "acct:b", 1, "p1", "transfer", 1, 30, 30);
    ck_assert_entry(2, "acct:b", 2, "p2", "transfer", 1, -5, 25);
    ck_assert_entry(3, "acct:a", 43, "p2", "transfer", 1, 5, 75);
    for (size_t i = 0; i < book.n_entries; i++) {
        ck_assert_ptr_null(book.entries[i].change);
        ck_assert_int_eq(book.entries[i].held_debits, 0);
        ck_assert_int_eq(book.entries[i].held_credits, 0);
    }
    /* The command's id, borrowed. */
    ck_assert_ptr_eq(book.entries[0].command, t1.p.id);
    ck_assert_int_eq(account("acct:a")->entries, 43);
    ck_assert_int_eq(account("acct:b")->entries, 2);
    ck_assert_int_eq(account("acct:c")->entries, 0);
}
END_TEST

START_TEST(test_entries_of_several_legs_on_one_account)
{
    test_payment t;

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 20);
    open_funded("acct:c", "EUR", 0);
    account("acct:a")->entries = 3;
    account("acct:c")->entries = 7;
    pay_init(&t, "p1");
    pay_leg(&t, "acct:a", "acct:b", 30, "EUR");
    pay_leg(&t, "acct:b", "acct:c", 50, "EUR");
    pay_leg(&t, "acct:a", "acct:b", 10, "EUR");
    pay_leg(&t, "acct:c", "acct:a", 5, "EUR");
    ck_apply(&t, LQ_OK, "");

    ck_assert_uint_eq(book.n_entries, 8);
    ck_assert_entry(0, "acct:a", 4, "p1", "transfer", 1, -30, 70);
    ck_assert_entry(1, "acct:b", 1, "p1", "transfer", 1, 30, 50);
    ck_assert_entry(2, "acct:b", 2, "p1", "transfer", 2, -50, 0);
    ck_assert_entry(3, "acct:c", 8, "p1", "transfer", 2, 50, 50);
    ck_assert_entry(4, "acct:a", 5, "p1", "transfer", 3, -10, 60);
    ck_assert_entry(5, "acct:b", 3, "p1", "transfer", 3, 10, 10);
    ck_assert_entry(6, "acct:c", 9, "p1", "transfer", 4, -5, 45);
    ck_assert_entry(7, "acct:a", 6, "p1", "transfer", 4, 5, 65);
    ck_assert_int_eq(account("acct:a")->entries, 6);
    ck_assert_int_eq(account("acct:b")->entries, 3);
    ck_assert_int_eq(account("acct:c")->entries, 9);
}
END_TEST

START_TEST(test_rejected_at_third_leg_appends_nothing)
{
    test_payment t1, t2, t3;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:c", "EUR", 0);
    account("acct:b")->entries = 10;
    pay1(&t1, "p1", "acct:a", "acct:b", 10, "EUR");
    ck_apply(&t1, LQ_OK, "");
    before = snapshot();

    pay_init(&t2, "p2");
    pay_leg(&t2, "acct:a", "acct:b", 20, "EUR");
    pay_leg(&t2, "acct:b", "acct:c", 30, "EUR");
    pay_leg(&t2, "acct:c", "acct:a", 31, "EUR"); /* c holds 30 */
    ck_apply(&t2, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 3: account \"acct:c\" has balance 30, cannot be debited 31");
    /* The entries of p1 as they were, none of p2, every counter back. */
    ck_assert_book_is(before, 3);
    ck_assert_int_eq(account("acct:a")->entries, 1);
    ck_assert_int_eq(account("acct:b")->entries, 11);
    ck_assert_int_eq(account("acct:c")->entries, 0);

    /* The next applied command goes on without a gap. */
    pay1(&t3, "p3", "acct:b", "acct:c", 5, "EUR");
    ck_apply(&t3, LQ_OK, "");
    ck_assert_uint_eq(book.n_entries, 4);
    ck_assert_entry(2, "acct:b", 12, "p3", "transfer", 1, -5, 5);
    ck_assert_entry(3, "acct:c", 1, "p3", "transfer", 1, 5, 5);
}
END_TEST

START_TEST(test_sixty_four_legs_of_entries)
{
    test_payment t;

    open_funded("acct:a", "EUR", 64);
    open_funded("acct:b", "EUR", 0);
    pay_init(&t, "p1");
    for (int i = 0; i < LQ_LEGS_MAX; i++)
        pay_leg(&t, "acct:a", "acct:b", 1, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_uint_eq(book.n_entries, 2 * LQ_LEGS_MAX);
    for (int i = 0; i < LQ_LEGS_MAX; i++) {
        ck_assert_entry(2 * i, "acct:a", i + 1, "p1", "transfer", i + 1, -1, 63 - i);
        ck_assert_entry(2 * i + 1, "acct:b", i + 1, "p1", "transfer", i + 1, 1, i + 1);
    }
}
END_TEST

START_TEST(test_book_clear_and_release_free_entries)
{
    test_payment t;
    size_t cap;

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    pay1(&t, "p1", "acct:a", "acct:b", 1, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_uint_eq(book.n_entries, 2);
    cap = book.cap_entries;
    lq_book_clear(&book);
    ck_assert_uint_eq(book.n, 0);
    ck_assert_uint_eq(book.n_entries, 0);
    ck_assert_uint_eq(book.cap_entries, cap);
    lq_book_release(&book);
    ck_assert_ptr_null(book.entries);
    ck_assert_ptr_null(book.accounts);
    ck_assert_uint_eq(book.n_entries, 0);
    lq_book_release(NULL);
}
END_TEST

/* ---- section 13: account.open ----------------------------------------------- */

START_TEST(test_open_adds_an_active_account)
{
    test_payment t;
    const lq_account *a;

    open_funded("acct:b", "EUR", 0);
    cmd_open(&t, "open-1", "acct:a", "USD");
    ck_apply(&t, LQ_OK, "");
    ck_assert_uint_eq(book.n, 2);
    ck_assert_str_eq(book.accounts[0].id, "acct:a"); /* still sorted */
    a = account("acct:a");
    ck_assert_str_eq(a->currency, "USD");
    ck_assert_int_eq(a->status, LQ_STATUS_ACTIVE);
    ck_assert(!a->allow_negative);
    ck_assert_int_eq(a->overdraft_limit, 0);
    ck_assert_int_eq(a->max_balance, 0);
    ck_assert_int_eq(a->debits, 0);
    ck_assert_int_eq(a->credits, 0);
    ck_assert_int_eq(a->held_debits, 0);
    ck_assert_int_eq(a->held_credits, 0);
    ck_assert_int_eq(a->entries, 1);
    ck_assert_str_eq(a->created_at, "");
    ck_assert(a->opened);
    ck_assert(a->changed);
    ck_assert_account("acct:b", 0, 0, false);

    ck_assert_uint_eq(book.n_entries, 1);
    ck_assert_entry(0, "acct:a", 1, "open-1", "account.open", 0, 0, 0);
    ck_assert_int_eq(book.entries[0].held_debits, 0);
    ck_assert_int_eq(book.entries[0].held_credits, 0);
    ck_assert_ptr_null(book.entries[0].change);
}
END_TEST

START_TEST(test_open_with_limits)
{
    test_payment t, p;

    cmd_open(&t, "o1", "acct:neg", "EUR");
    set_allow_negative(&t, true);
    ck_apply(&t, LQ_OK, "");
    ck_assert(account("acct:neg")->allow_negative);
    ck_assert_int_eq(account("acct:neg")->overdraft_limit, 0);

    cmd_open(&t, "o2", "acct:od", "EUR");
    set_overdraft(&t, 500);
    set_max(&t, 1000);
    ck_apply(&t, LQ_OK, "");
    ck_assert(!account("acct:od")->allow_negative);
    ck_assert_int_eq(account("acct:od")->overdraft_limit, 500);
    ck_assert_int_eq(account("acct:od")->max_balance, 1000);

    cmd_open(&t, "o3", "acct:od2", "EUR");
    set_allow_negative(&t, false);
    set_overdraft(&t, 300);
    ck_apply(&t, LQ_OK, "");
    ck_assert(!account("acct:od2")->allow_negative);
    ck_assert_int_eq(account("acct:od2")->overdraft_limit, 300);

    cmd_open(&t, "o4", "acct:max", "EUR");
    set_overdraft(&t, INT64_MAX);
    set_max(&t, INT64_MAX);
    ck_apply(&t, LQ_OK, "");
    ck_assert_int_eq(account("acct:max")->overdraft_limit, INT64_MAX);
    ck_assert_int_eq(account("acct:max")->max_balance, INT64_MAX);

    /* The limits hold from the first transfer on. */
    pay1(&p, "p1", "acct:od", "acct:max", 501, "EUR");
    ck_apply(&p, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:od\" has balance 0, cannot be debited 501 (floor -500)");
    pay1(&p, "p2", "acct:max", "acct:od", 1001, "EUR");
    ck_apply(
        &p, LQ_ERR_EXCEEDS_MAX_BALANCE,
        "leg 1: account \"acct:od\" has balance 0, cannot be credited 1001 (max balance 1000)");
    pay1(&p, "p3", "acct:max", "acct:od", 1000, "EUR");
    ck_apply(&p, LQ_OK, "");
    ck_assert_balance("acct:max", -1000);
}
END_TEST

START_TEST(test_open_of_an_existing_account_is_account_exists)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 10);
    open_funded("acct:gone", "EUR", 0);
    account("acct:gone")->status = LQ_STATUS_CLOSED;
    cmd_open(&t, "open-b", "acct:b", "EUR");
    ck_apply(&t, LQ_OK, "");
    before = snapshot();

    /* Loaded, closed (it still exists), or opened by this batch: whatever the currency. */
    cmd_open(&t, "open-a", "acct:a", "USD");
    ck_apply(&t, LQ_ERR_ACCOUNT_EXISTS, "account \"acct:a\" exists already");
    cmd_open(&t, "open-gone", "acct:gone", "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_EXISTS, "account \"acct:gone\" exists already");
    cmd_open(&t, "open-b-again", "acct:b", "EUR");
    ck_apply(&t, LQ_ERR_ACCOUNT_EXISTS, "account \"acct:b\" exists already");
    ck_assert_book_is(before, 3);
}
END_TEST

START_TEST(test_malformed_account_commands_are_internal_errors)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 0);
    before = snapshot();
    cmd_open(&t, "o1", "acct:b", "eur");
    ck_apply(&t, LQ_ERR_INTERNAL, "account.open of \"acct:b\" has no valid currency");
    cmd_open(&t, "o2", "", "EUR");
    ck_apply(&t, LQ_ERR_INTERNAL, "account.open names no valid account");
    cmd_open(&t, "o3", "acct:b", "EUR");
    set_status(&t, LQ_STATUS_FROZEN);
    ck_apply(&t, LQ_ERR_INTERNAL, "account.open of \"acct:b\" has a status or a reason");
    cmd_open(&t, "o4", "acct:b", "EUR");
    set_allow_negative(&t, true);
    set_overdraft(&t, 1);
    ck_apply(&t, LQ_ERR_INTERNAL,
             "account.open of \"acct:b\" sets both allow_negative and overdraft_limit");
    cmd_open(&t, "o5", "acct:b", "EUR");
    set_max(&t, -1);
    ck_apply(&t, LQ_ERR_INTERNAL, "account.open of \"acct:b\" has a negative limit");

    cmd_update(&t, "u1", "acct:a");
    ck_apply(&t, LQ_ERR_INTERNAL, "account.update of \"acct:a\" changes nothing");
    set_reason(&t, "a reason alone changes nothing");
    ck_apply(&t, LQ_ERR_INTERNAL, "account.update of \"acct:a\" changes nothing");
    cmd_update(&t, "u2", "acct:a");
    set_allow_negative(&t, true);
    set_overdraft(&t, 0);
    ck_apply(&t, LQ_ERR_INTERNAL,
             "account.update of \"acct:a\" sets both allow_negative and overdraft_limit");
    cmd_update(&t, "u3", "acct:a");
    set_overdraft(&t, -1);
    ck_apply(&t, LQ_ERR_INTERNAL, "account.update of \"acct:a\" has a negative limit");
    cmd_update(&t, "u4", "acct:a");
    set_status(&t, (lq_account_status)7);
    ck_apply(&t, LQ_ERR_INTERNAL, "account.update of \"acct:a\" has unknown status 7");

    pay_init(&t, "t1");
    t.p.type = (lq_command_type)42;
    ck_apply(&t, LQ_ERR_INTERNAL, "command has unknown type 42");
    ck_assert_book_is(before, 1);
}
END_TEST

/* ---- section 13: account.update ----------------------------------------------- */

START_TEST(test_update_of_a_missing_account)
{
    test_payment t;

    open_funded("acct:a", "EUR", 0);
    cmd_update(&t, "u1", "acct:x");
    set_status(&t, LQ_STATUS_FROZEN);
    ck_apply(&t, LQ_ERR_ACCOUNT_NOT_FOUND, "account \"acct:x\" does not exist");
    ck_assert_uint_eq(book.n_entries, 0);
}
END_TEST

START_TEST(test_update_of_a_closed_account_is_account_closed)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 0);
    account("acct:a")->status = LQ_STATUS_CLOSED;
    before = snapshot();
    /* Whatever the update, even one that changes nothing, even one that would break a limit. */
    cmd_update(&t, "u1", "acct:a");
    set_status(&t, LQ_STATUS_ACTIVE);
    ck_apply(&t, LQ_ERR_ACCOUNT_CLOSED, "account \"acct:a\" is closed");
    cmd_update(&t, "u2", "acct:a");
    set_status(&t, LQ_STATUS_CLOSED);
    ck_apply(&t, LQ_ERR_ACCOUNT_CLOSED, "account \"acct:a\" is closed");
    cmd_update(&t, "u3", "acct:a");
    set_allow_negative(&t, true);
    ck_apply(&t, LQ_ERR_ACCOUNT_CLOSED, "account \"acct:a\" is closed");
    cmd_update(&t, "u4", "acct:a");
    set_max(&t, 0);
    set_reason(&t, "reopen");
    ck_apply(&t, LQ_ERR_ACCOUNT_CLOSED, "account \"acct:a\" is closed");
    ck_assert_book_is(before, 1);
}
END_TEST

START_TEST(test_close_order_not_empty_then_holds_then_limits)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 5);
    account("acct:a")->held_debits = 3;
    open_account("acct:neg", "EUR", true, 5, 0);
    open_funded("acct:held", "EUR", 0);
    account("acct:held")->held_debits = 10;
    open_funded("acct:in", "EUR", 0);
    account("acct:in")->held_credits = 7;
    before = snapshot();

    /* A balance and holds: not_empty. */
    cmd_update(&t, "u1", "acct:a");
    set_status(&t, LQ_STATUS_CLOSED);
    ck_apply(&t, LQ_ERR_ACCOUNT_NOT_EMPTY, "account \"acct:a\" has balance 5, cannot be closed");
    /* A negative balance and a floor it breaks: not_empty. */
    cmd_update(&t, "u2", "acct:neg");
    set_status(&t, LQ_STATUS_CLOSED);
    set_allow_negative(&t, false);
    ck_apply(&t, LQ_ERR_ACCOUNT_NOT_EMPTY, "account \"acct:neg\" has balance -5, cannot be closed");
    /* Holds and a floor the available balance breaks: has_holds. */
    cmd_update(&t, "u3", "acct:held");
    set_status(&t, LQ_STATUS_CLOSED);
    set_overdraft(&t, 0);
    ck_apply(&t, LQ_ERR_ACCOUNT_HAS_HOLDS,
             "account \"acct:held\" has held debits 10 and held credits 0, cannot be closed");
    cmd_update(&t, "u4", "acct:in");
    set_status(&t, LQ_STATUS_CLOSED);
    ck_apply(&t, LQ_ERR_ACCOUNT_HAS_HOLDS,
             "account \"acct:in\" has held debits 0 and held credits 7, cannot be closed");
    /* The same limits without closing: balance_outside_limits. */
    cmd_update(&t, "u5", "acct:held");
    set_overdraft(&t, 0);
    ck_apply(&t, LQ_ERR_BALANCE_OUTSIDE_LIMITS,
             "account \"acct:held\" has balance 0 (available -10), below the new floor 0");
    ck_assert_book_is(before, 4);

    /* Freezing is no closing: a balance and holds are fine. */
    cmd_update(&t, "u6", "acct:a");
    set_status(&t, LQ_STATUS_FROZEN);
    ck_apply_update(&t, "{\"status\":\"frozen\"}");
}
END_TEST

START_TEST(test_close_is_final)
{
    test_payment t, p;

    open_funded("acct:a", "EUR", 0);
    open_funded("acct:b", "EUR", 100);
    account("acct:a")->entries = 4;
    cmd_update(&t, "close-a", "acct:a");
    set_status(&t, LQ_STATUS_CLOSED);
    set_reason(&t, "customer left");
    ck_apply_update(&t, "{\"status\":\"closed\",\"reason\":\"customer left\"}");
    ck_assert_int_eq(account("acct:a")->status, LQ_STATUS_CLOSED);
    ck_assert(account("acct:a")->changed);
    ck_assert_entry(0, "acct:a", 5, "close-a", "account.update", 0, 0, 0);

    pay1(&p, "p1", "acct:b", "acct:a", 1, "EUR");
    ck_apply(&p, LQ_ERR_ACCOUNT_CLOSED, "leg 1: account \"acct:a\" is closed");
    cmd_update(&t, "reopen-a", "acct:a");
    set_status(&t, LQ_STATUS_ACTIVE);
    ck_apply(&t, LQ_ERR_ACCOUNT_CLOSED, "account \"acct:a\" is closed");
    ck_assert_uint_eq(book.n_entries, 1);
}
END_TEST

START_TEST(test_update_overdraft_limit_against_a_negative_balance)
{
    test_payment t;
    book_snapshot *before;

    open_limited("acct:a", "EUR", -400, 500, 0);
    before = snapshot();
    cmd_update(&t, "u1", "acct:a");
    set_overdraft(&t, 300);
    ck_apply(&t, LQ_ERR_BALANCE_OUTSIDE_LIMITS,
             "account \"acct:a\" has balance -400, below the new floor -300");
    cmd_update(&t, "u2", "acct:a");
    set_overdraft(&t, 399);
    ck_apply(&t, LQ_ERR_BALANCE_OUTSIDE_LIMITS,
             "account \"acct:a\" has balance -400, below the new floor -399");
    /* allow_negative false alone: the floor is 0. */
    cmd_update(&t, "u3", "acct:a");
    set_allow_negative(&t, false);
    ck_apply(&t, LQ_ERR_BALANCE_OUTSIDE_LIMITS,
             "account \"acct:a\" has balance -400, below the new floor 0");
    ck_assert_book_is(before, 1);

    /* Exactly at the new floor is inside. */
    cmd_update(&t, "u4", "acct:a");
    set_overdraft(&t, 400);
    ck_apply_update(&t, "{\"overdraft_limit\":400}");
    ck_assert_int_eq(account("acct:a")->overdraft_limit, 400);
    ck_assert(!account("acct:a")->allow_negative);
    ck_assert_entry(0, "acct:a", 1, "u4", "account.update", 0, 0, -400);
}
END_TEST

START_TEST(test_update_held_debits_against_a_new_floor)
{
    test_payment t;

    open_limited("acct:a", "EUR", 100, 100, 0);
    account("acct:a")->held_debits = 150;
    cmd_update(&t, "u1", "acct:a");
    set_overdraft(&t, 49);
    ck_apply(&t, LQ_ERR_BALANCE_OUTSIDE_LIMITS,
             "account \"acct:a\" has balance 100 (available -50), below the new floor -49");
    cmd_update(&t, "u2", "acct:a");
    set_overdraft(&t, 50);
    ck_apply_update(&t, "{\"overdraft_limit\":50}");
    ck_assert_int_eq(book.entries[0].held_debits, 150);
    ck_assert_int_eq(book.entries[0].balance, 100);
}
END_TEST

START_TEST(test_update_allow_negative_and_overdraft_limit)
{
    test_payment t, p;

    open_limited("acct:a", "EUR", -400, 500, 0);
    open_funded("acct:b", "EUR", 0);

    /* allow_negative true: no floor, and the overdraft limit no longer matters (0). */
    cmd_update(&t, "u1", "acct:a");
    set_allow_negative(&t, true);
    ck_apply_update(&t, "{\"allow_negative\":true}");
    ck_assert(account("acct:a")->allow_negative);
    ck_assert_int_eq(account("acct:a")->overdraft_limit, 0);
    pay1(&p, "p1", "acct:a", "acct:b", 10000, "EUR");
    ck_apply(&p, LQ_OK, "");
    ck_assert_balance("acct:a", -10400);

    /* An overdraft limit turns allow_negative off; the balance must fit the new floor. */
    cmd_update(&t, "u2", "acct:a");
    set_overdraft(&t, 10000);
    ck_apply(&t, LQ_ERR_BALANCE_OUTSIDE_LIMITS,
             "account \"acct:a\" has balance -10400, below the new floor -10000");
    ck_assert(account("acct:a")->allow_negative);
    cmd_update(&t, "u3", "acct:a");
    set_overdraft(&t, 20000);
    ck_apply_update(&t, "{\"overdraft_limit\":20000}");
    ck_assert(!account("acct:a")->allow_negative);
    ck_assert_int_eq(account("acct:a")->overdraft_limit, 20000);
    pay1(&p, "p2", "acct:a", "acct:b", 9601, "EUR");
    ck_apply(&p, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance -10400, cannot be debited 9601 (floor -20000)");

    /* allow_negative false with an overdraft limit: that floor. */
    cmd_update(&t, "u4", "acct:a");
    set_allow_negative(&t, false);
    set_overdraft(&t, 10400);
    ck_apply_update(&t, "{\"allow_negative\":false,\"overdraft_limit\":10400}");
    ck_assert(!account("acct:a")->allow_negative);
    ck_assert_int_eq(account("acct:a")->overdraft_limit, 10400);

    /* allow_negative false alone, on an account with an overdraft limit at 0 balance: floor 0. */
    open_limited("acct:c", "EUR", 0, 700, 0);
    cmd_update(&t, "u5", "acct:c");
    set_allow_negative(&t, false);
    ck_apply_update(&t, "{\"allow_negative\":false}");
    ck_assert(!account("acct:c")->allow_negative);
    ck_assert_int_eq(account("acct:c")->overdraft_limit, 0);
}
END_TEST

START_TEST(test_update_max_balance)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 900);
    before = snapshot();
    cmd_update(&t, "u1", "acct:a");
    set_max(&t, 899);
    ck_apply(&t, LQ_ERR_BALANCE_OUTSIDE_LIMITS,
             "account \"acct:a\" has balance 900, above the new max balance 899");
    ck_assert_book_is(before, 1);
    cmd_update(&t, "u2", "acct:a");
    set_max(&t, 900);
    ck_apply_update(&t, "{\"max_balance\":900}");
    ck_assert_int_eq(account("acct:a")->max_balance, 900);
    /* null: no ceiling. */
    cmd_update(&t, "u3", "acct:a");
    set_max(&t, 0);
    ck_apply_update(&t, "{\"max_balance\":null}");
    ck_assert_int_eq(account("acct:a")->max_balance, 0);

    /* Held credits count. */
    account("acct:a")->held_credits = 50;
    cmd_update(&t, "u4", "acct:a");
    set_max(&t, 949);
    ck_apply(&t, LQ_ERR_BALANCE_OUTSIDE_LIMITS,
             "account \"acct:a\" has balance 900 (held credits 50), above the new max balance 949");
    cmd_update(&t, "u5", "acct:a");
    set_max(&t, 950);
    ck_apply_update(&t, "{\"max_balance\":950}");
    ck_assert_uint_eq(book.n_entries, 3);
    ck_assert_int_eq(book.entries[2].held_credits, 50);
}
END_TEST

START_TEST(test_update_limits_at_int64_edges)
{
    test_payment t;

    open_account("acct:low", "EUR", true, INT64_MAX, 0);
    cmd_update(&t, "u1", "acct:low");
    set_overdraft(&t, INT64_MAX);
    ck_apply_update(&t, "{\"overdraft_limit\":9223372036854775807}");
    account("acct:low")->held_debits = 1; /* available INT64_MIN: below the lowest floor */
    cmd_update(&t, "u2", "acct:low");
    set_overdraft(&t, INT64_MAX);
    ck_apply(&t, LQ_ERR_BALANCE_OUTSIDE_LIMITS,
             "account \"acct:low\" has balance -9223372036854775807 (available "
             "-9223372036854775808), below the new floor -9223372036854775807");

    open_funded("acct:high", "EUR", INT64_MAX);
    cmd_update(&t, "u3", "acct:high");
    set_max(&t, INT64_MAX);
    ck_apply_update(&t, "{\"max_balance\":9223372036854775807}");
    account("acct:high")->held_credits =
        1; /* the sum leaves the range: above the highest ceiling */
    cmd_update(&t, "u4", "acct:high");
    set_max(&t, INT64_MAX);
    ck_apply(&t, LQ_ERR_BALANCE_OUTSIDE_LIMITS,
             "account \"acct:high\" has balance 9223372036854775807 (held credits 1), above the "
             "new max balance 9223372036854775807");
}
END_TEST

START_TEST(test_update_status_again_is_applied_and_recorded)
{
    test_payment f1, f2, a1; /* the entries borrow their ids */

    open_funded("acct:a", "EUR", 10);
    account("acct:a")->entries = 2;
    cmd_update(&f1, "f1", "acct:a");
    set_status(&f1, LQ_STATUS_FROZEN);
    ck_apply_update(&f1, "{\"status\":\"frozen\"}");
    cmd_update(&f2, "f2", "acct:a");
    set_status(&f2, LQ_STATUS_FROZEN);
    ck_apply_update(&f2, "{\"status\":\"frozen\"}");
    cmd_update(&a1, "a1", "acct:a");
    set_status(&a1, LQ_STATUS_ACTIVE);
    ck_apply_update(&a1, "{\"status\":\"active\"}");
    ck_assert_int_eq(account("acct:a")->status, LQ_STATUS_ACTIVE);
    ck_assert_uint_eq(book.n_entries, 3);
    ck_assert_entry(0, "acct:a", 3, "f1", "account.update", 0, 0, 10);
    ck_assert_entry(1, "acct:a", 4, "f2", "account.update", 0, 0, 10);
    ck_assert_entry(2, "acct:a", 5, "a1", "account.update", 0, 0, 10);
    ck_assert_int_eq(account("acct:a")->entries, 5);
}
END_TEST

START_TEST(test_update_change_json)
{
    test_payment t;

    open_funded("acct:a", "EUR", 0);
    cmd_update(&t, "u1", "acct:a");
    set_status(&t, LQ_STATUS_FROZEN);
    set_reason(&t, "fraud review");
    ck_apply_update(&t, "{\"status\":\"frozen\",\"reason\":\"fraud review\"}");
    cmd_update(&t, "u2", "acct:a");
    set_overdraft(&t, 500);
    ck_apply_update(&t, "{\"overdraft_limit\":500}");
    cmd_update(&t, "u3", "acct:a");
    set_max(&t, 0);
    ck_apply_update(&t, "{\"max_balance\":null}");
    cmd_update(&t, "u4", "acct:a");
    set_allow_negative(&t, true);
    ck_apply_update(&t, "{\"allow_negative\":true}");
    cmd_update(&t, "u5", "acct:a");
    set_overdraft(&t, 0);
    ck_apply_update(&t, "{\"overdraft_limit\":0}");
    /* Every field, in the order of the contract whatever the order they were set in. */
    cmd_update(&t, "u6", "acct:a");
    set_reason(&t, "say \"hi\"\n");
    set_max(&t, INT64_MAX);
    set_overdraft(&t, INT64_MAX);
    set_allow_negative(&t, false);
    set_status(&t, LQ_STATUS_ACTIVE);
    ck_apply_update(&t, "{\"status\":\"active\",\"allow_negative\":false,"
                        "\"overdraft_limit\":9223372036854775807,"
                        "\"max_balance\":9223372036854775807,\"reason\":\"say \\\"hi\\\"\\n\"}");
    ck_assert_uint_eq(book.n_entries, 6);
}
END_TEST

START_TEST(test_update_entries_carry_the_running_values)
{
    test_payment t, p;

    open_funded("acct:a", "EUR", 250);
    open_funded("acct:b", "EUR", 0);
    account("acct:a")->held_debits = 20;
    account("acct:a")->held_credits = 30;
    account("acct:a")->entries = 9;
    pay1(&p, "p1", "acct:a", "acct:b", 50, "EUR");
    ck_apply(&p, LQ_OK, "");
    cmd_update(&t, "u1", "acct:a");
    set_max(&t, 1000);
    ck_apply_update(&t, "{\"max_balance\":1000}");
    ck_assert_entry(0, "acct:a", 10, "p1", "transfer", 1, -50, 200);
    ck_assert_entry(2, "acct:a", 11, "u1", "account.update", 0, 0, 200);
    ck_assert_int_eq(book.entries[2].held_debits, 20);
    ck_assert_int_eq(book.entries[2].held_credits, 30);
    ck_assert_ptr_eq(book.entries[2].command, t.p.id);
    ck_assert_ptr_null(book.entries[0].change);
}
END_TEST

/* ---- deciding a batch ----------------------------------------------------- */

static void item_init(lq_item *item, const test_payment *t)
{
    memset(item, 0, sizeof(*item));
    item->command = &t->p;
    /* Garbage the decision must overwrite. */
    item->insert = true;
    item->outcome.result = 12345;
    item->outcome.duplicate = true;
    snprintf(item->outcome.detail, sizeof(item->outcome.detail), "stale");
    snprintf(item->outcome.processed_at, sizeof(item->outcome.processed_at), "stale");
    item->outcome.amount = 12345;
}

/*
 * The look-up found item's id stored (with the same content or not), and
 * the broker had confirmed the first outcome's event.
 */
static void item_stored(lq_item *item, bool same, int result, const char *detail,
                        const char *processed_at)
{
    item->stored = true;
    item->stored_same = same;
    item->stored_published = true;
    item->stored_outcome.result = result;
    item->stored_outcome.duplicate = false;
    snprintf(item->stored_outcome.detail, sizeof(item->stored_outcome.detail), "%s", detail);
    snprintf(item->stored_outcome.processed_at, sizeof(item->stored_outcome.processed_at), "%s",
             processed_at);
}

#define ck_assert_outcome(item, want_result, want_duplicate, want_insert, want_detail, want_at)    \
    do {                                                                                           \
        ck_assert_int_eq((item)->outcome.result, (want_result));                                   \
        ck_assert_int_eq((item)->outcome.duplicate, (want_duplicate));                             \
        ck_assert_int_eq((item)->insert, (want_insert));                                           \
        ck_assert_str_eq((item)->outcome.detail, (want_detail));                                   \
        ck_assert_str_eq((item)->outcome.processed_at, (want_at));                                 \
    } while (0)

START_TEST(test_decide_first_time_applied_and_rejected)
{
    test_payment t1, t2;
    lq_item items[2];

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    pay1(&t1, "p1", "acct:a", "acct:b", 70, "EUR");
    pay1(&t2, "p2", "acct:a", "acct:b", 70, "EUR");
    item_init(&items[0], &t1);
    item_init(&items[1], &t2);
    lq_ledger_decide(items, 2, &book, NOW);
    ck_assert_outcome(&items[0], LQ_OK, false, true, "", NOW);
    ck_assert_outcome(&items[1], LQ_ERR_INSUFFICIENT_FUNDS, false, true,
                      "leg 1: account \"acct:a\" has balance 30, cannot be debited 70", NOW);
    ck_assert_account("acct:a", 70, 100, true);
    ck_assert_account("acct:b", 0, 70, true);
}
END_TEST

START_TEST(test_decide_stored_same_is_duplicate_of_stored_outcome)
{
    test_payment t1, t2;
    lq_item items[2];

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    /* Stored applied: not applied again although it still could be. */
    pay1(&t1, "p1", "acct:a", "acct:b", 10, "EUR");
    item_init(&items[0], &t1);
    item_stored(&items[0], true, LQ_OK, "", EARLIER);
    /* Stored rejected: stays rejected although it would now pass. */
    pay1(&t2, "p2", "acct:a", "acct:b", 50, "EUR");
    item_init(&items[1], &t2);
    item_stored(&items[1], true, LQ_ERR_INSUFFICIENT_FUNDS,
                "leg 1: account \"acct:a\" has balance 0, cannot be debited 50", EARLIER);
    lq_ledger_decide(items, 2, &book, NOW);
    ck_assert_outcome(&items[0], LQ_OK, true, false, "", EARLIER);
    ck_assert_outcome(&items[1], LQ_ERR_INSUFFICIENT_FUNDS, true, false,
                      "leg 1: account \"acct:a\" has balance 0, cannot be debited 50", EARLIER);
    ck_assert_account("acct:a", 0, 100, false);
    ck_assert_account("acct:b", 0, 0, false);
}
END_TEST

START_TEST(test_decide_stored_other_content_is_conflict)
{
    test_payment t;
    lq_item item;

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    pay1(&t, "p1", "acct:a", "acct:b", 10, "EUR");
    item_init(&item, &t);
    item_stored(&item, false, LQ_OK, "", EARLIER);
    lq_ledger_decide(&item, 1, &book, NOW);
    ck_assert_outcome(&item, LQ_ERR_IDEMPOTENCY_CONFLICT, false, false,
                      "id was first used with other content", NOW);
    ck_assert_account("acct:a", 0, 100, false);
    ck_assert_account("acct:b", 0, 0, false);
}
END_TEST

START_TEST(test_decide_stored_twice_in_batch)
{
    test_payment t;
    lq_item items[2];

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    pay1(&t, "p1", "acct:a", "acct:b", 10, "EUR");
    item_init(&items[0], &t);
    item_init(&items[1], &t);
    item_stored(&items[0], true, LQ_OK, "", EARLIER);
    item_stored(&items[1], true, LQ_OK, "", EARLIER);
    lq_ledger_decide(items, 2, &book, NOW);
    ck_assert_outcome(&items[0], LQ_OK, true, false, "", EARLIER);
    ck_assert_outcome(&items[1], LQ_OK, true, false, "", EARLIER);
    ck_assert_account("acct:a", 0, 100, false);
}
END_TEST

/* The worker that stored it died before the broker confirmed its event. */
START_TEST(test_decide_stored_unconfirmed_is_first_outcome_again)
{
    test_payment t1, t2;
    lq_item items[2];

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    pay1(&t1, "p1", "acct:a", "acct:b", 10, "EUR");
    item_init(&items[0], &t1);
    item_stored(&items[0], true, LQ_OK, "", EARLIER);
    items[0].stored_published = false;
    pay1(&t2, "p2", "acct:a", "acct:b", 500, "EUR");
    item_init(&items[1], &t2);
    item_stored(&items[1], true, LQ_ERR_INSUFFICIENT_FUNDS, "leg 1: no", EARLIER);
    items[1].stored_published = false;
    lq_ledger_decide(items, 2, &book, NOW);
    /* Not a duplicate, not stored again, not applied again: the first outcome, as it was. */
    ck_assert_outcome(&items[0], LQ_OK, false, false, "", EARLIER);
    ck_assert_outcome(&items[1], LQ_ERR_INSUFFICIENT_FUNDS, false, false, "leg 1: no", EARLIER);
    ck_assert_account("acct:a", 0, 100, false);
    ck_assert_account("acct:b", 0, 0, false);
}
END_TEST

START_TEST(test_decide_stored_unconfirmed_twice_in_batch)
{
    test_payment t, other;
    lq_item items[3];

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    pay1(&t, "p1", "acct:a", "acct:b", 10, "EUR");
    pay1(&other, "p1", "acct:a", "acct:b", 11, "EUR");
    for (int i = 0; i < 3; i++) {
        item_init(&items[i], i == 1 ? &other : &t);
        item_stored(&items[i], i != 1, LQ_OK, "", EARLIER);
        items[i].stored_published = false;
    }
    lq_ledger_decide(items, 3, &book, NOW);
    /* Published again once; the copy after it is a duplicate of it; other content conflicts. */
    ck_assert_outcome(&items[0], LQ_OK, false, false, "", EARLIER);
    ck_assert_outcome(&items[1], LQ_ERR_IDEMPOTENCY_CONFLICT, false, false,
                      "id was first used with other content", NOW);
    ck_assert_outcome(&items[2], LQ_OK, true, false, "", EARLIER);
    ck_assert_account("acct:a", 0, 100, false);
}
END_TEST

START_TEST(test_decide_batch_duplicate_of_applied)
{
    test_payment t1, t2;
    lq_item items[2];

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    pay1(&t1, "p1", "acct:a", "acct:b", 40, "EUR");
    pay1(&t2, "p1", "acct:a", "acct:b", 40, "EUR"); /* redelivered: same content */
    item_init(&items[0], &t1);
    item_init(&items[1], &t2);
    lq_ledger_decide(items, 2, &book, NOW);
    ck_assert_outcome(&items[0], LQ_OK, false, true, "", NOW);
    ck_assert_outcome(&items[1], LQ_OK, true, false, "", NOW);
    /* Moved once. */
    ck_assert_account("acct:a", 40, 100, true);
    ck_assert_account("acct:b", 0, 40, true);
}
END_TEST

START_TEST(test_decide_batch_duplicate_of_rejected)
{
    test_payment t1, t2;
    lq_item items[2];
    const char *detail = "leg 1: account \"acct:a\" has balance 10, cannot be debited 40";

    open_funded("acct:a", "EUR", 10);
    open_funded("acct:b", "EUR", 0);
    pay1(&t1, "p1", "acct:a", "acct:b", 40, "EUR");
    pay1(&t2, "p1", "acct:a", "acct:b", 40, "EUR");
    item_init(&items[0], &t1);
    item_init(&items[1], &t2);
    lq_ledger_decide(items, 2, &book, NOW);
    ck_assert_outcome(&items[0], LQ_ERR_INSUFFICIENT_FUNDS, false, true, detail, NOW);
    ck_assert_outcome(&items[1], LQ_ERR_INSUFFICIENT_FUNDS, true, false, detail, NOW);
    ck_assert_account("acct:a", 0, 10, false);
    ck_assert_account("acct:b", 0, 0, false);
}
END_TEST

START_TEST(test_decide_batch_conflict)
{
    test_payment t1, t2, t3;
    lq_item items[3];

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    pay1(&t1, "p1", "acct:a", "acct:b", 40, "EUR");
    pay1(&t2, "p1", "acct:a", "acct:b", 41, "EUR"); /* same id, other content */
    pay1(&t3, "p1", "acct:a", "acct:b", 40, "EUR"); /* the first content again */
    item_init(&items[0], &t1);
    item_init(&items[1], &t2);
    item_init(&items[2], &t3);
    lq_ledger_decide(items, 3, &book, NOW);
    ck_assert_outcome(&items[0], LQ_OK, false, true, "", NOW);
    ck_assert_outcome(&items[1], LQ_ERR_IDEMPOTENCY_CONFLICT, false, false,
                      "id was first used with other content", NOW);
    /* Compared with the first occurrence, not with the conflict. */
    ck_assert_outcome(&items[2], LQ_OK, true, false, "", NOW);
    ck_assert_account("acct:a", 40, 100, true);
    ck_assert_account("acct:b", 0, 40, true);
}
END_TEST

START_TEST(test_decide_rejected_stays_rejected_when_funds_arrive)
{
    test_payment t1, fund, t2;
    lq_item items[3];
    const char *detail = "leg 1: account \"acct:a\" has balance 0, cannot be debited 50";

    open_funded("acct:a", "EUR", 0);
    open_funded("acct:b", "EUR", 0);
    open_account("acct:bank", "EUR", true, 0, 0);
    pay1(&t1, "p1", "acct:a", "acct:b", 50, "EUR");
    pay1(&fund, "fund", "acct:bank", "acct:a", 50, "EUR");
    pay1(&t2, "p1", "acct:a", "acct:b", 50, "EUR");
    item_init(&items[0], &t1);
    item_init(&items[1], &fund);
    item_init(&items[2], &t2);
    lq_ledger_decide(items, 3, &book, NOW);
    ck_assert_outcome(&items[0], LQ_ERR_INSUFFICIENT_FUNDS, false, true, detail, NOW);
    ck_assert_outcome(&items[1], LQ_OK, false, true, "", NOW);
    ck_assert_outcome(&items[2], LQ_ERR_INSUFFICIENT_FUNDS, true, false, detail, NOW);
    /* Only the funding moved. */
    ck_assert_account("acct:a", 0, 50, true);
    ck_assert_account("acct:b", 0, 0, false);
    ck_assert_account("acct:bank", 50, 0, true);
}
END_TEST

START_TEST(test_decide_earlier_payment_funds_later_one)
{
    enum { N = 100 };
    test_payment *t = calloc(N, sizeof(*t));
    lq_item items[N];
    char from[32], to[32], id[32];

    ck_assert_ptr_nonnull(t);
    /* A chain: acct:0 holds 1000, payment i moves it from acct:i to acct:i+1. */
    for (int i = 0; i <= N; i++) {
        snprintf(id, sizeof(id), "acct:%d", i);
        open_funded(id, "EUR", i == 0 ? 1000 : 0);
    }
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "p%d", i);
        snprintf(from, sizeof(from), "acct:%d", i);
        snprintf(to, sizeof(to), "acct:%d", i + 1);
        pay1(&t[i], id, from, to, 1000, "EUR");
        item_init(&items[i], &t[i]);
    }
    lq_ledger_decide(items, N, &book, NOW);
    for (int i = 0; i < N; i++)
        ck_assert_outcome(&items[i], LQ_OK, false, true, "", NOW);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "acct:%d", i);
        ck_assert_account(id, 1000, 1000, true);
        ck_assert_balance(id, 0);
    }
    snprintf(id, sizeof(id), "acct:%d", N);
    ck_assert_account(id, 0, 1000, true);
    free(t);
}
END_TEST

START_TEST(test_decide_large_batch_with_duplicates)
{
    /* Enough ids to fill several hash slots chains; every id three times. */
    enum { IDS = 1500, N = 3 * IDS };
    test_payment *t = calloc(IDS, sizeof(*t));
    test_payment other;
    lq_item *items = calloc(N, sizeof(*items));
    char id[32];

    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_nonnull(items);
    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    pay1(&other, "x", "acct:a", "acct:b", 2, "EUR");
    for (int i = 0; i < IDS; i++) {
        snprintf(id, sizeof(id), "pay-%d", i);
        pay1(&t[i], id, "acct:a", "acct:b", 1, "EUR");
    }
    for (int i = 0; i < IDS; i++) {
        item_init(&items[i], &t[i]);
        item_init(&items[IDS + i], &t[IDS - 1 - i]);
        item_init(&items[2 * IDS + i], &t[i]);
    }
    /* One conflicting content in the middle. */
    snprintf(other.p.id, sizeof(other.p.id), "pay-7");
    item_init(&items[IDS + 3], &other);
    lq_ledger_decide(items, N, &book, NOW);
    for (int i = 0; i < 1000; i++)
        ck_assert_outcome(&items[i], LQ_OK, false, true, "", NOW);
    for (int i = 1000; i < IDS; i++) {
        ck_assert_int_eq(items[i].outcome.result, LQ_ERR_INSUFFICIENT_FUNDS);
        ck_assert(items[i].insert);
    }
    for (int i = IDS; i < N; i++) {
        const lq_item *first;

        if (i == IDS + 3) {
            ck_assert_outcome(&items[i], LQ_ERR_IDEMPOTENCY_CONFLICT, false, false,
                              "id was first used with other content", NOW);
            continue;
        }
        first = &items[i < 2 * IDS ? N / 3 - 1 - (i - IDS) : i - 2 * IDS];
        ck_assert_str_eq(items[i].command->id, first->command->id);
        ck_assert_outcome(&items[i], first->outcome.result, true, false, first->outcome.detail,
                          NOW);
    }
    ck_assert_account("acct:a", 1000, 1000, true);
    ck_assert_account("acct:b", 0, 1000, true);
    free(items);
    free(t);
}
END_TEST

START_TEST(test_decide_open_then_transfer_in_one_batch)
{
    test_payment early, open, pay, open_again, open_dup, spend;
    lq_item items[6];

    open_account("acct:bank", "EUR", true, 0, 0);
    /* A transfer into the account before it is opened gets a final rejection. */
    pay1(&early, "early", "acct:bank", "acct:new", 50, "EUR");
    cmd_open(&open, "open-new", "acct:new", "EUR");
    set_max(&open, 100);
    pay1(&pay, "pay", "acct:bank", "acct:new", 100, "EUR");
    cmd_open(&open_again, "open-new-2", "acct:new", "EUR");
    cmd_open(&open_dup, "open-new", "acct:new", "EUR");
    set_max(&open_dup, 100);
    pay1(&spend, "spend", "acct:new", "acct:bank", 101, "EUR");
    item_init(&items[0], &early);
    item_init(&items[1], &open);
    item_init(&items[2], &pay);
    item_init(&items[3], &open_again);
    item_init(&items[4], &open_dup);
    item_init(&items[5], &spend);
    lq_ledger_decide(items, 6, &book, NOW);

    ck_assert_outcome(&items[0], LQ_ERR_ACCOUNT_NOT_FOUND, false, true,
                      "leg 1: account \"acct:new\" does not exist", NOW);
    ck_assert_outcome(&items[1], LQ_OK, false, true, "", NOW);
    ck_assert_outcome(&items[2], LQ_OK, false, true, "", NOW);
    ck_assert_outcome(&items[3], LQ_ERR_ACCOUNT_EXISTS, false, true,
                      "account \"acct:new\" exists already", NOW);
    ck_assert_outcome(&items[4], LQ_OK, true, false, "", NOW); /* opened once */
    ck_assert_outcome(&items[5], LQ_ERR_INSUFFICIENT_FUNDS, false, true,
                      "leg 1: account \"acct:new\" has balance 100, cannot be debited 101", NOW);

    ck_assert_uint_eq(book.n, 2);
    ck_assert(account("acct:new")->opened);
    ck_assert_account("acct:new", 0, 100, true);
    ck_assert_uint_eq(book.n_entries, 3);
    ck_assert_entry(0, "acct:new", 1, "open-new", "account.open", 0, 0, 0);
    ck_assert_entry(1, "acct:bank", 1, "pay", "transfer", 1, -100, -100);
    ck_assert_entry(2, "acct:new", 2, "pay", "transfer", 1, 100, 100);
}
END_TEST

START_TEST(test_decide_freeze_and_unfreeze_in_one_batch)
{
    test_payment freeze, out1, in, freeze_dup, unfreeze, out2;
    lq_item items[6];

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 100);
    cmd_update(&freeze, "freeze-a", "acct:a");
    set_status(&freeze, LQ_STATUS_FROZEN);
    set_reason(&freeze, "fraud review");
    pay1(&out1, "out1", "acct:a", "acct:b", 10, "EUR");
    pay1(&in, "in", "acct:b", "acct:a", 10, "EUR");
    cmd_update(&freeze_dup, "freeze-a", "acct:a");
    set_status(&freeze_dup, LQ_STATUS_FROZEN);
    set_reason(&freeze_dup, "fraud review");
    cmd_update(&unfreeze, "unfreeze-a", "acct:a");
    set_status(&unfreeze, LQ_STATUS_ACTIVE);
    pay1(&out2, "out2", "acct:a", "acct:b", 10, "EUR");
    item_init(&items[0], &freeze);
    item_init(&items[1], &out1);
    item_init(&items[2], &in);
    item_init(&items[3], &freeze_dup);
    item_init(&items[4], &unfreeze);
    item_init(&items[5], &out2);
    lq_ledger_decide(items, 6, &book, NOW);

    ck_assert_outcome(&items[0], LQ_OK, false, true, "", NOW);
    ck_assert_outcome(&items[1], LQ_ERR_ACCOUNT_FROZEN, false, true,
                      "leg 1: account \"acct:a\" is frozen", NOW);
    ck_assert_outcome(&items[2], LQ_OK, false, true, "", NOW);
    ck_assert_outcome(&items[3], LQ_OK, true, false, "", NOW);
    ck_assert_outcome(&items[4], LQ_OK, false, true, "", NOW);
    ck_assert_outcome(&items[5], LQ_OK, false, true, "", NOW);
    ck_assert_int_eq(account("acct:a")->status, LQ_STATUS_ACTIVE);
    ck_assert_balance("acct:a", 100);

    /* a's history: freeze, credit, unfreeze, debit; no debit between freeze and unfreeze. */
    ck_assert_uint_eq(book.n_entries, 6);
    ck_assert_entry(0, "acct:a", 1, "freeze-a", "account.update", 0, 0, 100);
    ck_assert_str_eq(book.entries[0].change, "{\"status\":\"frozen\",\"reason\":\"fraud review\"}");
    ck_assert_entry(1, "acct:b", 1, "in", "transfer", 1, -10, 90);
    ck_assert_entry(2, "acct:a", 2, "in", "transfer", 1, 10, 110);
    ck_assert_entry(3, "acct:a", 3, "unfreeze-a", "account.update", 0, 0, 110);
    ck_assert_str_eq(book.entries[3].change, "{\"status\":\"active\"}");
    ck_assert_entry(4, "acct:a", 4, "out2", "transfer", 1, -10, 100);
    ck_assert_entry(5, "acct:b", 2, "out2", "transfer", 1, 10, 100);
}
END_TEST

START_TEST(test_decide_same_id_across_types_is_conflict)
{
    test_payment pay, upd;
    lq_item items[2];

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    pay1(&pay, "x1", "acct:a", "acct:b", 10, "EUR");
    cmd_update(&upd, "x1", "acct:a");
    set_status(&upd, LQ_STATUS_FROZEN);
    item_init(&items[0], &pay);
    item_init(&items[1], &upd);
    lq_ledger_decide(items, 2, &book, NOW);
    ck_assert_outcome(&items[0], LQ_OK, false, true, "", NOW);
    ck_assert_outcome(&items[1], LQ_ERR_IDEMPOTENCY_CONFLICT, false, false,
                      "id was first used with other content", NOW);
    ck_assert_int_eq(account("acct:a")->status, LQ_STATUS_ACTIVE);
    ck_assert_uint_eq(book.n_entries, 2);
}
END_TEST

START_TEST(test_decide_internal_error_is_not_stored)
{
    test_payment bad, good;
    lq_item items[2];

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    cmd_update(&bad, "bad", "acct:a"); /* changes nothing: no parser makes that */
    pay1(&good, "good", "acct:a", "acct:b", 10, "EUR");
    item_init(&items[0], &bad);
    item_init(&items[1], &good);
    lq_ledger_decide(items, 2, &book, NOW);
    ck_assert_outcome(&items[0], LQ_ERR_INTERNAL, false, false,
                      "account.update of \"acct:a\" changes nothing", NOW);
    ck_assert_outcome(&items[1], LQ_OK, false, true, "", NOW);
    ck_assert_uint_eq(book.n_entries, 2);
    ck_assert_int_eq(account("acct:a")->entries, 1);
}
END_TEST

START_TEST(test_decide_empty_batch)
{
    lq_ledger_decide(NULL, 0, &book, NOW);
    ck_assert_uint_eq(book.n, 0);
}
END_TEST

/* ---- section 14: hold, capture, void, expiry --------------------------------- */

/* A hold with no legs yet (pay_leg() adds them), expiring timeout_s after it is applied (0: never).
 */
static void cmd_hold(test_payment *t, const char *id, int64_t timeout_s)
{
    char piece[48];

    pay_init(t, id);
    t->p.type = LQ_CMD_HOLD;
    t->p.timeout_s = timeout_s;
    snprintf(piece, sizeof(piece), "hold:%" PRId64, timeout_s);
    canon_add(t, piece);
}

/* A one-leg hold in EUR that never expires. */
static void hold1(test_payment *t, const char *id, const char *debit, const char *credit,
                  int64_t amount)
{
    cmd_hold(t, id, 0);
    pay_leg(t, debit, credit, amount, "EUR");
}

/* A capture of hold_id, of amount (0: none given, the full held amount). */
static void cmd_capture(test_payment *t, const char *id, const char *hold_id, int64_t amount)
{
    char piece[LQ_ID_MAX + 48];

    pay_init(t, id);
    t->p.type = LQ_CMD_CAPTURE;
    snprintf(t->p.hold, sizeof(t->p.hold), "%s", hold_id);
    t->p.amount = amount;
    snprintf(piece, sizeof(piece), "capture:%s:%" PRId64, hold_id, amount);
    canon_add(t, piece);
}

static void cmd_void(test_payment *t, const char *id, const char *hold_id)
{
    char piece[LQ_ID_MAX + 16];

    pay_init(t, id);
    t->p.type = LQ_CMD_VOID;
    snprintf(t->p.hold, sizeof(t->p.hold), "%s", hold_id);
    snprintf(piece, sizeof(piece), "void:%s", hold_id);
    canon_add(t, piece);
}

/* An account's held amounts and its available balance. */
#define ck_assert_held(id, want_held_debits, want_held_credits, want_available)                    \
    do {                                                                                           \
        const lq_account *h_ = account(id);                                                        \
        ck_assert_int_eq(h_->held_debits, (want_held_debits));                                     \
        ck_assert_int_eq(h_->held_credits, (want_held_credits));                                   \
        ck_assert_int_eq(lq_account_available(h_), (want_available));                              \
    } while (0)

/* The held values of the i-th entry. */
#define ck_assert_entry_held(i, want_held_debits, want_held_credits)                               \
    do {                                                                                           \
        ck_assert_uint_lt((i), book.n_entries);                                                    \
        ck_assert_int_eq(book.entries[(i)].held_debits, (want_held_debits));                       \
        ck_assert_int_eq(book.entries[(i)].held_credits, (want_held_credits));                     \
    } while (0)

/* How a decision left a hold. */
#define ck_assert_hold(id, want_status, want_placed, want_changed, want_captured)                  \
    do {                                                                                           \
        const lq_hold *k_ = hold(id);                                                              \
        ck_assert_int_eq(k_->status, (want_status));                                               \
        ck_assert_int_eq(k_->placed, (want_placed));                                               \
        ck_assert_int_eq(k_->changed, (want_changed));                                             \
        ck_assert_int_eq(k_->captured, (want_captured));                                           \
    } while (0)

START_TEST(test_hold_applied_reserves_and_posts_nothing)
{
    test_payment t, t2, t3;
    const lq_hold *h;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:c", "EUR", 5);
    account("acct:a")->entries = 4;
    cmd_hold(&t, "h1", 3600);
    pay_leg(&t, "acct:a", "acct:b", 300, "EUR");
    ck_apply(&t, LQ_OK, "");
    /* Nothing posted: the totals stay, the held amounts grow. */
    ck_assert_account("acct:a", 0, 1000, true);
    ck_assert_account("acct:b", 0, 0, true);
    ck_assert_account("acct:c", 0, 5, false);
    ck_assert_held("acct:a", 300, 0, 700);
    ck_assert_held("acct:b", 0, 300, 0);
    /* A "hold" entry on each account, the debited one first, amount 0. */
    ck_assert_uint_eq(book.n_entries, 2);
    ck_assert_entry(0, "acct:a", 5, "h1", "hold", 1, 0, 1000);
    ck_assert_entry_held(0, 300, 0);
    ck_assert_entry(1, "acct:b", 1, "h1", "hold", 1, 0, 0);
    ck_assert_entry_held(1, 0, 300);
    ck_assert_ptr_eq(book.entries[0].command, t.p.id);
    /* The hold joins the book: placed, pending, with a copy of its legs. */
    h = hold("h1");
    ck_assert_hold("h1", LQ_HOLD_PENDING, true, false, 0);
    ck_assert(!h->past_expiry);
    ck_assert_int_eq(h->timeout_s, 3600);
    ck_assert_ptr_null(h->resolved_by);
    ck_assert_uint_eq(h->n_legs, 1);
    ck_assert_ptr_ne(h->legs, t.legs);
    ck_assert_str_eq(h->legs[0].debit, "acct:a");
    ck_assert_str_eq(h->legs[0].credit, "acct:b");
    ck_assert_int_eq(h->legs[0].amount, 300);
    ck_assert_str_eq(h->legs[0].currency, "EUR");

    /* The rest of the available balance, exactly; then nothing more. */
    hold1(&t2, "h2", "acct:a", "acct:b", 700);
    ck_apply(&t2, LQ_OK, "");
    ck_assert_held("acct:a", 1000, 0, 0);
    ck_assert_held("acct:b", 0, 1000, 0);
    ck_assert_int_eq(hold("h2")->timeout_s, 0);
    ck_assert_entry(2, "acct:a", 6, "h2", "hold", 1, 0, 1000);
    ck_assert_entry_held(2, 1000, 0);
    hold1(&t3, "h3", "acct:a", "acct:b", 1);
    ck_apply(&t3, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance 1000 (available 0), cannot be debited 1");
    ck_assert_uint_eq(book.n_holds, 2);
    ck_assert_uint_eq(book.n_entries, 4);
}
END_TEST

START_TEST(test_hold_rejected_for_each_leg_reason)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:closed", "EUR", 0);
    account("acct:closed")->status = LQ_STATUS_CLOSED;
    open_funded("acct:usd", "USD", 0);
    open_funded("acct:frozen", "EUR", 1000);
    account("acct:frozen")->status = LQ_STATUS_FROZEN;
    open_limited("acct:capped", "EUR", 0, 0, 100);
    open_account("acct:neg", "EUR", true, INT64_MAX - 10, 0);
    account("acct:a")->held_debits = 400;
    account("acct:capped")->held_credits = 60;
    before = snapshot();
    hold1(&t, "h1", "acct:a", "acct:x", 10);
    ck_apply(&t, LQ_ERR_ACCOUNT_NOT_FOUND, "leg 1: account \"acct:x\" does not exist");
    hold1(&t, "h2", "acct:a", "acct:closed", 10);
    ck_apply(&t, LQ_ERR_ACCOUNT_CLOSED, "leg 1: account \"acct:closed\" is closed");
    hold1(&t, "h3", "acct:a", "acct:usd", 10);
    ck_apply(&t, LQ_ERR_CURRENCY_MISMATCH,
             "leg 1: currency EUR differs from account \"acct:usd\" (USD)");
    hold1(&t, "h4", "acct:frozen", "acct:b", 10);
    ck_apply(&t, LQ_ERR_ACCOUNT_FROZEN, "leg 1: account \"acct:frozen\" is frozen");
    /* On the available balance: 1000 - 400. */
    hold1(&t, "h5", "acct:a", "acct:b", 601);
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance 1000 (available 600), cannot be debited 601");
    /* Held credits count against the ceiling. */
    hold1(&t, "h6", "acct:a", "acct:capped", 41);
    ck_apply(
        &t, LQ_ERR_EXCEEDS_MAX_BALANCE,
        "leg 1: account \"acct:capped\" has balance 0 (held credits 60), cannot be credited 41 "
        "(max balance 100)");
    hold1(&t, "h7", "acct:neg", "acct:b", 11);
    ck_apply(&t, LQ_ERR_AMOUNT_OVERFLOW,
             "leg 1: debits of account \"acct:neg\" would exceed the 64-bit range");
    /* The order of section 13: closed before currency, frozen before insufficient funds. */
    hold1(&t, "h8", "acct:usd", "acct:closed", 10);
    ck_apply(&t, LQ_ERR_ACCOUNT_CLOSED, "leg 1: account \"acct:closed\" is closed");
    hold1(&t, "h9", "acct:frozen", "acct:b", 5000);
    ck_apply(&t, LQ_ERR_ACCOUNT_FROZEN, "leg 1: account \"acct:frozen\" is frozen");
    ck_assert_book_is(before, 7);
    ck_assert_uint_eq(book.n_holds, 0);
    /* Each just within its limit. */
    hold1(&t, "h10", "acct:a", "acct:frozen", 560); /* a frozen account may be credited */
    ck_apply(&t, LQ_OK, "");
    hold1(&t, "h11", "acct:a", "acct:capped", 40);
    ck_apply(&t, LQ_OK, "");
    hold1(&t, "h12", "acct:neg", "acct:b", 10);
    ck_apply(&t, LQ_OK, "");
    ck_assert_held("acct:a", 1000, 0, 0);
    ck_assert_held("acct:capped", 0, 100, 0);
    ck_assert_held("acct:neg", 10, 0, -INT64_MAX);
    ck_assert_uint_eq(book.n_holds, 3);
}
END_TEST

/* A capture must never overflow: a hold leaves room for its capture in the totals. */
START_TEST(test_hold_amount_overflow_counts_held_totals)
{
    test_payment t;

    open_account("acct:neg", "EUR", true, INT64_MAX - 100, 0);
    open_account("acct:top", "EUR", false, 0, INT64_MAX - 100);
    open_account("acct:bank", "EUR", true, 0, 0);
    open_funded("acct:b", "EUR", 0);
    hold1(&t, "h1", "acct:neg", "acct:b", 60);
    ck_apply(&t, LQ_OK, "");
    hold1(&t, "h2", "acct:neg", "acct:b", 41);
    ck_apply(&t, LQ_ERR_AMOUNT_OVERFLOW,
             "leg 1: debits of account \"acct:neg\" (with held debits 60) would exceed the "
             "64-bit range");
    hold1(&t, "h3", "acct:bank", "acct:top", 60);
    ck_apply(&t, LQ_OK, "");
    hold1(&t, "h4", "acct:bank", "acct:top", 41);
    ck_apply(&t, LQ_ERR_AMOUNT_OVERFLOW,
             "leg 1: credits of account \"acct:top\" (with held credits 60) would exceed the "
             "64-bit range");
    hold1(&t, "h5", "acct:neg", "acct:b", 40);
    ck_apply(&t, LQ_OK, "");
    hold1(&t, "h6", "acct:bank", "acct:top", 40);
    ck_apply(&t, LQ_OK, "");
    ck_assert_held("acct:neg", 100, 0, -INT64_MAX);
    ck_assert_held("acct:top", 0, 100, INT64_MAX - 100);
    /* Every hold can be captured: the totals reach the end of the range exactly. */
    cmd_capture(&t, "c1", "h1", 0);
    ck_apply(&t, LQ_OK, "");
    cmd_capture(&t, "c3", "h3", 0);
    ck_apply(&t, LQ_OK, "");
    cmd_capture(&t, "c5", "h5", 0);
    ck_apply(&t, LQ_OK, "");
    cmd_capture(&t, "c6", "h6", 0);
    ck_apply(&t, LQ_OK, "");
    ck_assert_account("acct:neg", INT64_MAX, 0, true);
    ck_assert_account("acct:top", 0, INT64_MAX, true);
    ck_assert_held("acct:neg", 0, 0, -INT64_MAX);
    ck_assert_held("acct:top", 0, 0, INT64_MAX);
}
END_TEST

START_TEST(test_multi_leg_hold_later_legs_see_earlier_holds)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:c", "EUR", 0);
    before = snapshot();
    cmd_hold(&t, "h1", 0);
    pay_leg(&t, "acct:a", "acct:b", 600, "EUR");
    pay_leg(&t, "acct:a", "acct:c", 500, "EUR");
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 2: account \"acct:a\" has balance 1000 (available 400), cannot be debited 500");
    ck_assert_book_is(before, 3);
    ck_assert_ptr_null(lq_book_find_hold(&book, "h1"));

    cmd_hold(&t, "h2", 0);
    pay_leg(&t, "acct:a", "acct:b", 600, "EUR");
    pay_leg(&t, "acct:a", "acct:c", 400, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_held("acct:a", 1000, 0, 0);
    ck_assert_held("acct:b", 0, 600, 0);
    ck_assert_held("acct:c", 0, 400, 0);
    ck_assert_uint_eq(book.n_entries, 4);
    ck_assert_entry(0, "acct:a", 1, "h2", "hold", 1, 0, 1000);
    ck_assert_entry_held(0, 600, 0);
    ck_assert_entry(1, "acct:b", 1, "h2", "hold", 1, 0, 0);
    ck_assert_entry_held(1, 0, 600);
    ck_assert_entry(2, "acct:a", 2, "h2", "hold", 2, 0, 1000);
    ck_assert_entry_held(2, 1000, 0);
    ck_assert_entry(3, "acct:c", 1, "h2", "hold", 2, 0, 0);
    ck_assert_entry_held(3, 0, 400);
    ck_assert_uint_eq(hold("h2")->n_legs, 2);
    ck_assert_int_eq(hold("h2")->legs[1].amount, 400);
}
END_TEST

/* The undo log: a hold rejected at its third leg leaves no trace, among earlier holds and entries.
 */
START_TEST(test_rejected_hold_leaves_book_and_entries_untouched)
{
    test_payment h1, p1, h2, h3;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 1000);
    open_limited("acct:c", "EUR", 0, 0, 500);
    hold1(&h1, "h1", "acct:a", "acct:b", 100);
    ck_apply(&h1, LQ_OK, "");
    pay1(&p1, "p1", "acct:a", "acct:c", 200, "EUR");
    ck_apply(&p1, LQ_OK, "");
    before = snapshot();
    cmd_hold(&h2, "h2", 60);
    pay_leg(&h2, "acct:a", "acct:b", 100, "EUR");
    pay_leg(&h2, "acct:a", "acct:c", 200, "EUR");
    pay_leg(&h2, "acct:b", "acct:c", 101, "EUR"); /* c: 200 + 200 held + 101 > 500 */
    ck_apply(&h2, LQ_ERR_EXCEEDS_MAX_BALANCE,
             "leg 3: account \"acct:c\" has balance 200 (held credits 200), cannot be credited 101 "
             "(max balance 500)");
    ck_assert_book_is(before, 3);
    ck_assert_ptr_null(lq_book_find_hold(&book, "h2"));
    ck_assert_hold("h1", LQ_HOLD_PENDING, true, false, 0);
    /* The seqs go on from where they were. */
    hold1(&h3, "h3", "acct:a", "acct:c", 10);
    ck_apply(&h3, LQ_OK, "");
    ck_assert_entry(4, "acct:a", 3, "h3", "hold", 1, 0, 800);
    ck_assert_entry_held(4, 110, 0);
    ck_assert_entry(5, "acct:c", 2, "h3", "hold", 1, 0, 200);
    ck_assert_entry_held(5, 0, 10);
}
END_TEST

START_TEST(test_transfer_refused_because_of_a_hold_accepted_after_void)
{
    test_payment h, p1, v, p2;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:shop", "EUR", 0);
    hold1(&h, "h1", "acct:a", "acct:shop", 800);
    ck_apply(&h, LQ_OK, "");
    pay1(&p1, "p1", "acct:a", "acct:b", 300, "EUR");
    ck_apply(&p1, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance 1000 (available 200), cannot be debited 300");
    cmd_void(&v, "v1", "h1");
    ck_apply(&v, LQ_OK, "");
    ck_assert_held("acct:a", 0, 0, 1000);
    ck_assert_held("acct:shop", 0, 0, 0);
    pay1(&p2, "p2", "acct:a", "acct:b", 300, "EUR");
    ck_apply(&p2, LQ_OK, "");
    ck_assert_account("acct:a", 300, 1000, true);
    ck_assert_account("acct:shop", 0, 0, true);
    ck_assert_held("acct:a", 0, 0, 700);
}
END_TEST

START_TEST(test_holds_count_against_the_ceiling)
{
    test_payment t;

    open_account("acct:bank", "EUR", true, 0, 0);
    open_limited("acct:b", "EUR", 500, 0, 1000);
    hold1(&t, "h1", "acct:bank", "acct:b", 400);
    ck_apply(&t, LQ_OK, "");
    ck_assert_held("acct:b", 0, 400, 500);
    hold1(&t, "h2", "acct:bank", "acct:b", 101);
    ck_apply(&t, LQ_ERR_EXCEEDS_MAX_BALANCE,
             "leg 1: account \"acct:b\" has balance 500 (held credits 400), cannot be credited 101 "
             "(max balance 1000)");
    pay1(&t, "p1", "acct:bank", "acct:b", 101, "EUR");
    ck_apply(&t, LQ_ERR_EXCEEDS_MAX_BALANCE,
             "leg 1: account \"acct:b\" has balance 500 (held credits 400), cannot be credited 101 "
             "(max balance 1000)");
    /* Up to the ceiling exactly, held credits included. */
    hold1(&t, "h3", "acct:bank", "acct:b", 100);
    ck_apply(&t, LQ_OK, "");
    ck_assert_held("acct:b", 0, 500, 500);
    /* A capture needs no room: the hold made it. */
    cmd_capture(&t, "c1", "h1", 0);
    ck_apply(&t, LQ_OK, "");
    ck_assert_balance("acct:b", 900);
    ck_assert_held("acct:b", 0, 100, 900);
    pay1(&t, "p2", "acct:bank", "acct:b", 1, "EUR");
    ck_apply(&t, LQ_ERR_EXCEEDS_MAX_BALANCE,
             "leg 1: account \"acct:b\" has balance 900 (held credits 100), cannot be credited 1 "
             "(max balance 1000)");
    /* A void gives the room back. */
    cmd_void(&t, "v3", "h3");
    ck_apply(&t, LQ_OK, "");
    ck_assert_held("acct:b", 0, 0, 900);
    pay1(&t, "p3", "acct:bank", "acct:b", 100, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_balance("acct:b", 1000);
}
END_TEST

START_TEST(test_capture_in_full_of_a_single_leg_hold)
{
    test_payment h, c;
    const lq_hold *k;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    account("acct:a")->entries = 2;
    hold1(&h, "h1", "acct:a", "acct:b", 300);
    ck_apply(&h, LQ_OK, "");
    cmd_capture(&c, "c1", "h1", 0);
    ck_apply(&c, LQ_OK, "");
    ck_assert_account("acct:a", 300, 1000, true);
    ck_assert_account("acct:b", 0, 300, true);
    ck_assert_held("acct:a", 0, 0, 700);
    ck_assert_held("acct:b", 0, 0, 300);
    /* A "capture" entry on each account: the amount posted, the held amounts released. */
    ck_assert_uint_eq(book.n_entries, 4);
    ck_assert_entry(2, "acct:a", 4, "c1", "capture", 1, -300, 700);
    ck_assert_entry_held(2, 0, 0);
    ck_assert_entry(3, "acct:b", 2, "c1", "capture", 1, 300, 300);
    ck_assert_entry_held(3, 0, 0);
    ck_assert_ptr_eq(book.entries[2].command, c.p.id);
    /* Placed and resolved in this book: both marks. */
    ck_assert_hold("h1", LQ_HOLD_CAPTURED, true, true, 300);
    k = hold("h1");
    ck_assert_ptr_eq(k->resolved_by, c.p.id);
}
END_TEST

START_TEST(test_partial_capture_releases_the_rest)
{
    test_payment h, c, p, c2;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    hold1(&h, "h1", "acct:a", "acct:b", 1000);
    ck_apply(&h, LQ_OK, "");
    ck_assert_held("acct:a", 1000, 0, 0);
    cmd_capture(&c, "c1", "h1", 600);
    ck_apply(&c, LQ_OK, "");
    ck_assert_account("acct:a", 600, 1000, true);
    ck_assert_account("acct:b", 0, 600, true);
    ck_assert_held("acct:a", 0, 0, 400);
    ck_assert_held("acct:b", 0, 0, 600);
    ck_assert_entry(2, "acct:a", 2, "c1", "capture", 1, -600, 400);
    ck_assert_entry_held(2, 0, 0);
    ck_assert_entry(3, "acct:b", 2, "c1", "capture", 1, 600, 600);
    ck_assert_entry_held(3, 0, 0);
    ck_assert_hold("h1", LQ_HOLD_CAPTURED, true, true, 600);
    /* The rest is free to move. */
    pay1(&p, "p1", "acct:a", "acct:b", 400, "EUR");
    ck_apply(&p, LQ_OK, "");
    /* Captured once and for all: not the remainder either. */
    before = snapshot();
    cmd_capture(&c2, "c2", "h1", 400);
    ck_apply(&c2, LQ_ERR_HOLD_ALREADY_CAPTURED, "hold \"h1\" was already captured");
    ck_assert_book_is(before, 2);
}
END_TEST

START_TEST(test_capture_of_exactly_the_held_amount_then_one_more)
{
    test_payment h, c;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 5000);
    open_funded("acct:b", "EUR", 0);
    hold1(&h, "h1", "acct:a", "acct:b", 1000);
    ck_apply(&h, LQ_OK, "");
    before = snapshot();
    cmd_capture(&c, "c1", "h1", 1001);
    ck_apply(&c, LQ_ERR_EXCEEDS_HOLD_AMOUNT, "capture of 1001 exceeds hold \"h1\" of 1000");
    cmd_capture(&c, "c2", "h1", INT64_MAX);
    ck_apply(&c, LQ_ERR_EXCEEDS_HOLD_AMOUNT,
             "capture of 9223372036854775807 exceeds hold \"h1\" of 1000");
    ck_assert_book_is(before, 2);
    cmd_capture(&c, "c3", "h1", 1000);
    ck_apply(&c, LQ_OK, "");
    ck_assert_hold("h1", LQ_HOLD_CAPTURED, true, true, 1000);
    ck_assert_account("acct:a", 1000, 5000, true);
    ck_assert_held("acct:a", 0, 0, 4000);
}
END_TEST

/*
 * Every leg posted in full; each entry's held values already show the
 * release of the whole hold (section 15), even where a later leg names the
 * same account.
 */
START_TEST(test_multi_leg_hold_captured_in_full)
{
    test_payment h, c;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:c", "EUR", 0);
    open_funded("acct:d", "EUR", 100);
    cmd_hold(&h, "h1", 0);
    pay_leg(&h, "acct:a", "acct:b", 100, "EUR");
    pay_leg(&h, "acct:a", "acct:c", 50, "EUR");
    pay_leg(&h, "acct:d", "acct:b", 25, "EUR");
    ck_apply(&h, LQ_OK, "");
    ck_assert_held("acct:a", 150, 0, 850);
    ck_assert_held("acct:b", 0, 125, 0);
    ck_assert_held("acct:c", 0, 50, 0);
    ck_assert_held("acct:d", 25, 0, 75);
    ck_assert_uint_eq(book.n_entries, 6);
    ck_assert_entry(5, "acct:b", 2, "h1", "hold", 3, 0, 0);
    ck_assert_entry_held(5, 0, 125);

    cmd_capture(&c, "c1", "h1", 0);
    ck_apply(&c, LQ_OK, "");
    ck_assert_account("acct:a", 150, 1000, true);
    ck_assert_account("acct:b", 0, 125, true);
    ck_assert_account("acct:c", 0, 50, true);
    ck_assert_account("acct:d", 25, 100, true);
    ck_assert_held("acct:a", 0, 0, 850);
    ck_assert_held("acct:b", 0, 0, 125);
    ck_assert_held("acct:c", 0, 0, 50);
    ck_assert_held("acct:d", 0, 0, 75);
    ck_assert_uint_eq(book.n_entries, 12);
    ck_assert_entry(6, "acct:a", 3, "c1", "capture", 1, -100, 900);
    ck_assert_entry_held(6, 0, 0);
    ck_assert_entry(7, "acct:b", 3, "c1", "capture", 1, 100, 100);
    ck_assert_entry_held(7, 0, 0);
    ck_assert_entry(8, "acct:a", 4, "c1", "capture", 2, -50, 850);
    ck_assert_entry_held(8, 0, 0);
    ck_assert_entry(9, "acct:c", 2, "c1", "capture", 2, 50, 50);
    ck_assert_entry_held(9, 0, 0);
    ck_assert_entry(10, "acct:d", 2, "c1", "capture", 3, -25, 75);
    ck_assert_entry_held(10, 0, 0);
    ck_assert_entry(11, "acct:b", 4, "c1", "capture", 3, 25, 125);
    ck_assert_entry_held(11, 0, 0);
    ck_assert_hold("h1", LQ_HOLD_CAPTURED, true, true, 175);
}
END_TEST

START_TEST(test_partial_capture_of_several_legs_is_not_supported)
{
    test_payment h, c;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:c", "EUR", 0);
    cmd_hold(&h, "h1", 0);
    pay_leg(&h, "acct:a", "acct:b", 100, "EUR");
    pay_leg(&h, "acct:a", "acct:c", 50, "EUR");
    ck_apply(&h, LQ_OK, "");
    before = snapshot();
    cmd_capture(&c, "c1", "h1", 100);
    ck_apply(&c, LQ_ERR_PARTIAL_CAPTURE_NOT_SUPPORTED,
             "capture of 100 names an amount, hold \"h1\" of 2 legs is captured in full only");
    /* Any amount at all, the whole sum or more than it included. */
    cmd_capture(&c, "c2", "h1", 150);
    ck_apply(&c, LQ_ERR_PARTIAL_CAPTURE_NOT_SUPPORTED,
             "capture of 150 names an amount, hold \"h1\" of 2 legs is captured in full only");
    cmd_capture(&c, "c3", "h1", 1000);
    ck_apply(&c, LQ_ERR_PARTIAL_CAPTURE_NOT_SUPPORTED,
             "capture of 1000 names an amount, hold \"h1\" of 2 legs is captured in full only");
    ck_assert_book_is(before, 3);
    cmd_capture(&c, "c4", "h1", 0);
    ck_apply(&c, LQ_OK, "");
    ck_assert_hold("h1", LQ_HOLD_CAPTURED, true, true, 150);
}
END_TEST

/*
 * Every reason of a capture and a void, each where the earlier ones do not
 * apply, then where several do: the first in the order of section 14 wins.
 */
START_TEST(test_capture_and_void_rejections_in_order)
{
    static const struct {
        const char *hold;
        int result;
        const char *detail;
    } cases[] = {
        {"nope", LQ_ERR_HOLD_NOT_FOUND, "hold \"nope\" does not exist"},
        {"p1", LQ_ERR_HOLD_NOT_FOUND, "hold \"p1\" does not exist"},       /* a transfer */
        {"h-rej", LQ_ERR_HOLD_NOT_FOUND, "hold \"h-rej\" does not exist"}, /* rejected */
        {"h-cap", LQ_ERR_HOLD_ALREADY_CAPTURED, "hold \"h-cap\" was already captured"},
        {"h-cap-past", LQ_ERR_HOLD_ALREADY_CAPTURED, "hold \"h-cap-past\" was already captured"},
        {"h-void", LQ_ERR_HOLD_ALREADY_VOIDED, "hold \"h-void\" was already voided"},
        {"h-void-past", LQ_ERR_HOLD_ALREADY_VOIDED, "hold \"h-void-past\" was already voided"},
        {"h-exp", LQ_ERR_HOLD_EXPIRED, "hold \"h-exp\" expired"},
        {"h-past", LQ_ERR_HOLD_EXPIRED, "hold \"h-past\" is past its expiry"},
    };
    test_payment t, legs, two;
    book_snapshot *before;
    char id[32];

    open_funded("acct:a", "EUR", 10000);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:c", "EUR", 0);
    pay1(&t, "p1", "acct:a", "acct:b", 10, "EUR");
    ck_apply(&t, LQ_OK, "");
    hold1(&t, "h-rej", "acct:a", "acct:b", 100000);
    ck_apply(&t, LQ_ERR_INSUFFICIENT_FUNDS,
             "leg 1: account \"acct:a\" has balance 9990, cannot be debited 100000");
    hold1(&t, "h-cap", "acct:a", "acct:b", 100);
    ck_apply(&t, LQ_OK, "");
    cmd_capture(&t, "c-cap", "h-cap", 0);
    ck_apply(&t, LQ_OK, "");
    hold1(&t, "h-void", "acct:a", "acct:b", 100);
    ck_apply(&t, LQ_OK, "");
    cmd_void(&t, "v-void", "h-void");
    ck_apply(&t, LQ_OK, "");
    /* As the db module loads them: resolved long ago, or pending with the held amounts. */
    pay1(&legs, "x", "acct:a", "acct:b", 100, "EUR");
    add_hold("h-cap-past", LQ_HOLD_CAPTURED, true, &legs);
    add_hold("h-void-past", LQ_HOLD_VOIDED, true, &legs);
    add_hold("h-exp", LQ_HOLD_EXPIRED, true, &legs);
    add_hold("h-past", LQ_HOLD_PENDING, true, &legs);
    pay_init(&two, "x");
    pay_leg(&two, "acct:a", "acct:b", 100, "EUR");
    pay_leg(&two, "acct:a", "acct:c", 100, "EUR");
    add_hold("h-past2", LQ_HOLD_PENDING, true, &two);
    account("acct:a")->held_debits = 300;
    account("acct:b")->held_credits = 200;
    account("acct:c")->held_credits = 100;

    before = snapshot();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(id, sizeof(id), "c%zu", i);
        cmd_capture(&t, id, cases[i].hold, 0);
        ck_apply(&t, cases[i].result, cases[i].detail);
        snprintf(id, sizeof(id), "v%zu", i);
        cmd_void(&t, id, cases[i].hold);
        ck_apply(&t, cases[i].result, cases[i].detail);
    }
    /* Resolved or expired before exceeds_hold_amount and partial_capture_not_supported. */
    cmd_capture(&t, "c-a", "h-cap", 1000000);
    ck_apply(&t, LQ_ERR_HOLD_ALREADY_CAPTURED, "hold \"h-cap\" was already captured");
    cmd_capture(&t, "c-b", "h-void", 1000000);
    ck_apply(&t, LQ_ERR_HOLD_ALREADY_VOIDED, "hold \"h-void\" was already voided");
    cmd_capture(&t, "c-c", "h-past", 1000000);
    ck_apply(&t, LQ_ERR_HOLD_EXPIRED, "hold \"h-past\" is past its expiry");
    cmd_capture(&t, "c-d", "h-past2", 5);
    ck_apply(&t, LQ_ERR_HOLD_EXPIRED, "hold \"h-past2\" is past its expiry");
    ck_assert_book_is(before, 3);
}
END_TEST

START_TEST(test_void_releases_and_posts_nothing)
{
    test_payment h, v;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:c", "EUR", 0);
    cmd_hold(&h, "h1", 60);
    pay_leg(&h, "acct:a", "acct:b", 300, "EUR");
    pay_leg(&h, "acct:a", "acct:c", 200, "EUR");
    ck_apply(&h, LQ_OK, "");
    ck_assert_held("acct:a", 500, 0, 500);
    cmd_void(&v, "v1", "h1");
    ck_apply(&v, LQ_OK, "");
    ck_assert_account("acct:a", 0, 1000, true);
    ck_assert_account("acct:b", 0, 0, true);
    ck_assert_account("acct:c", 0, 0, true);
    ck_assert_held("acct:a", 0, 0, 1000);
    ck_assert_held("acct:b", 0, 0, 0);
    ck_assert_held("acct:c", 0, 0, 0);
    /* A "void" entry (amount 0) per leg on each account, the whole hold released. */
    ck_assert_uint_eq(book.n_entries, 8);
    ck_assert_entry(4, "acct:a", 3, "v1", "void", 1, 0, 1000);
    ck_assert_entry_held(4, 0, 0);
    ck_assert_entry(5, "acct:b", 2, "v1", "void", 1, 0, 0);
    ck_assert_entry_held(5, 0, 0);
    ck_assert_entry(6, "acct:a", 4, "v1", "void", 2, 0, 1000);
    ck_assert_entry_held(6, 0, 0);
    ck_assert_entry(7, "acct:c", 2, "v1", "void", 2, 0, 0);
    ck_assert_entry_held(7, 0, 0);
    ck_assert_ptr_eq(book.entries[4].command, v.p.id);
    ck_assert_hold("h1", LQ_HOLD_VOIDED, true, true, 0);
    ck_assert_ptr_eq(hold("h1")->resolved_by, v.p.id);
    /* Voided once and for all. */
    cmd_capture(&v, "c1", "h1", 0);
    ck_apply(&v, LQ_ERR_HOLD_ALREADY_VOIDED, "hold \"h1\" was already voided");
}
END_TEST

START_TEST(test_frozen_accounts_do_not_stop_capture_or_void)
{
    test_payment t;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    hold1(&t, "h1", "acct:a", "acct:b", 300);
    ck_apply(&t, LQ_OK, "");
    hold1(&t, "h2", "acct:a", "acct:b", 200);
    ck_apply(&t, LQ_OK, "");
    cmd_update(&t, "u1", "acct:a");
    set_status(&t, LQ_STATUS_FROZEN);
    ck_apply(&t, LQ_OK, "");
    cmd_update(&t, "u2", "acct:b");
    set_status(&t, LQ_STATUS_FROZEN);
    ck_apply(&t, LQ_OK, "");
    /* The money was reserved before the freeze: it leaves all the same. */
    cmd_capture(&t, "c1", "h1", 0);
    ck_apply(&t, LQ_OK, "");
    cmd_void(&t, "v2", "h2");
    ck_apply(&t, LQ_OK, "");
    ck_assert_account("acct:a", 300, 1000, true);
    ck_assert_account("acct:b", 0, 300, true);
    ck_assert_held("acct:a", 0, 0, 700);
    ck_assert_held("acct:b", 0, 0, 300);
    /* A new hold from the frozen account is refused. */
    hold1(&t, "h3", "acct:a", "acct:b", 1);
    ck_apply(&t, LQ_ERR_ACCOUNT_FROZEN, "leg 1: account \"acct:a\" is frozen");
}
END_TEST

START_TEST(test_capture_and_void_after_expiry)
{
    test_payment t;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    cmd_hold(&t, "h1", 60);
    pay_leg(&t, "acct:a", "acct:b", 300, "EUR");
    ck_apply(&t, LQ_OK, "");
    cmd_hold(&t, "h2", 60);
    pay_leg(&t, "acct:a", "acct:b", 200, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_int_eq(lq_ledger_expire(&book, "h1"), LQ_OK);
    /* h2's time has come too, but the sweep has not released it yet. */
    hold("h2")->past_expiry = true;
    before = snapshot();
    cmd_capture(&t, "c1", "h1", 0);
    ck_apply(&t, LQ_ERR_HOLD_EXPIRED, "hold \"h1\" expired");
    cmd_void(&t, "v1", "h1");
    ck_apply(&t, LQ_ERR_HOLD_EXPIRED, "hold \"h1\" expired");
    cmd_capture(&t, "c2", "h2", 100);
    ck_apply(&t, LQ_ERR_HOLD_EXPIRED, "hold \"h2\" is past its expiry");
    cmd_void(&t, "v2", "h2");
    ck_apply(&t, LQ_ERR_HOLD_EXPIRED, "hold \"h2\" is past its expiry");
    ck_assert_book_is(before, 2);
    ck_assert_held("acct:a", 200, 0, 800);
}
END_TEST

START_TEST(test_capture_of_a_loaded_hold)
{
    test_payment legs, c;

    /* As the db module loads it: the hold, and its amounts held on the accounts. */
    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    account("acct:a")->held_debits = 250;
    account("acct:a")->entries = 7;
    account("acct:b")->held_credits = 250;
    account("acct:b")->entries = 3;
    pay1(&legs, "x", "acct:a", "acct:b", 250, "EUR");
    add_hold("h1", LQ_HOLD_PENDING, false, &legs);
    cmd_capture(&c, "c1", "h1", 100);
    ck_apply(&c, LQ_OK, "");
    ck_assert_hold("h1", LQ_HOLD_CAPTURED, false, true, 100);
    ck_assert_account("acct:a", 100, 1000, true);
    ck_assert_held("acct:a", 0, 0, 900);
    ck_assert_held("acct:b", 0, 0, 100);
    ck_assert_entry(0, "acct:a", 8, "c1", "capture", 1, -100, 900);
    ck_assert_entry(1, "acct:b", 4, "c1", "capture", 1, 100, 100);
}
END_TEST

/*
 * The undo log restores a hold a failed command changed: a book that
 * disagrees with its hold is an internal error, and nothing of it stays.
 */
START_TEST(test_failed_capture_restores_the_hold)
{
    test_payment h, t, legs;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:c", "EUR", 0);
    cmd_hold(&h, "h1", 0);
    pay_leg(&h, "acct:a", "acct:b", 100, "EUR");
    pay_leg(&h, "acct:a", "acct:c", 50, "EUR");
    ck_apply(&h, LQ_OK, "");
    /* c's held credits are not what the hold says: leg 1 is released before leg 2 fails. */
    account("acct:c")->held_credits = 10;
    before = snapshot();
    cmd_capture(&t, "c1", "h1", 0);
    ck_apply(&t, LQ_ERR_INTERNAL,
             "hold \"h1\" leg 2: account \"acct:c\" has held debits 0 and held credits 10, cannot "
             "release 50");
    cmd_void(&t, "v1", "h1");
    ck_apply(&t, LQ_ERR_INTERNAL,
             "hold \"h1\" leg 2: account \"acct:c\" has held debits 0 and held credits 10, cannot "
             "release 50");
    ck_assert_int_eq(lq_ledger_expire(&book, "h1"), LQ_ERR_INTERNAL);
    ck_assert_book_is(before, 3);
    ck_assert_hold("h1", LQ_HOLD_PENDING, true, false, 0);
    ck_assert_ptr_null(hold("h1")->resolved_by);

    /* A hold whose account is not in the book. */
    pay_init(&legs, "x");
    pay_leg(&legs, "acct:a", "acct:b", 5, "EUR");
    pay_leg(&legs, "acct:a", "acct:gone", 5, "EUR");
    add_hold("h2", LQ_HOLD_PENDING, false, &legs);
    account("acct:a")->held_debits += 10;
    account("acct:b")->held_credits += 5;
    before = snapshot();
    cmd_capture(&t, "c2", "h2", 0);
    ck_apply(&t, LQ_ERR_INTERNAL, "hold \"h2\" leg 2: account \"acct:gone\" is not in the book");
    ck_assert_int_eq(lq_ledger_expire(&book, "h2"), LQ_ERR_INTERNAL);
    ck_assert_book_is(before, 3);

    /* A capture whose posting would overflow: the hold-time check would never have let it be. */
    open_account("acct:neg", "EUR", true, INT64_MAX, 0);
    account("acct:neg")->held_debits = 10;
    account("acct:b")->held_credits += 10;
    pay1(&legs, "x", "acct:neg", "acct:b", 10, "EUR");
    add_hold("h3", LQ_HOLD_PENDING, false, &legs);
    before = snapshot();
    cmd_capture(&t, "c3", "h3", 0);
    ck_apply(&t, LQ_ERR_INTERNAL,
             "hold \"h3\" leg 1: debits 9223372036854775807 of account \"acct:neg\" cannot take a "
             "capture of 10");
    ck_assert_book_is(before, 4);
    ck_assert_hold("h3", LQ_HOLD_PENDING, false, false, 0);
}
END_TEST

START_TEST(test_malformed_hold_commands_are_internal_errors)
{
    test_payment t, legs;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    hold1(&t, "h1", "acct:a", "acct:b", 10);
    ck_apply(&t, LQ_OK, "");
    pay1(&legs, "x", "acct:a", "acct:b", 10, "EUR");
    add_hold("h-odd", (lq_hold_status)9, false, &legs);
    before = snapshot();
    cmd_hold(&t, "h2", -1);
    pay_leg(&t, "acct:a", "acct:b", 10, "EUR");
    ck_apply(&t, LQ_ERR_INTERNAL, "hold has timeout_s -1, not 0 to 31536000");
    cmd_hold(&t, "h3", LQ_TIMEOUT_MAX + 1);
    pay_leg(&t, "acct:a", "acct:b", 10, "EUR");
    ck_apply(&t, LQ_ERR_INTERNAL, "hold has timeout_s 31536001, not 0 to 31536000");
    cmd_hold(&t, "h4", 0);
    ck_apply(&t, LQ_ERR_INTERNAL, "payment has 0 legs, not 1 to 64");
    cmd_hold(&t, "h5", 0);
    pay_leg(&t, "acct:a", "acct:a", 10, "EUR");
    ck_apply(&t, LQ_ERR_INTERNAL, "leg 1: debits and credits the same account \"acct:a\"");
    /* An id already applied is stored: lq_ledger_decide() never applies it again. */
    hold1(&t, "h1", "acct:a", "acct:b", 10);
    ck_apply(&t, LQ_ERR_INTERNAL, "hold \"h1\" is in the book already");
    cmd_capture(&t, "c1", "h1", -1);
    ck_apply(&t, LQ_ERR_INTERNAL, "capture has amount -1, not positive or absent");
    cmd_void(&t, "v1", "h1");
    t.p.amount = 5;
    ck_apply(&t, LQ_ERR_INTERNAL, "void has amount 5, a void has none");
    cmd_capture(&t, "c2", "", 0);
    ck_apply(&t, LQ_ERR_INTERNAL, "capture names no hold");
    cmd_void(&t, "v2", "");
    ck_apply(&t, LQ_ERR_INTERNAL, "void names no hold");
    cmd_capture(&t, "c3", "h-odd", 0);
    ck_apply(&t, LQ_ERR_INTERNAL, "hold \"h-odd\" has unknown status 9");
    ck_assert_book_is(before, 2);
    /* The longest timeout is fine. */
    cmd_hold(&t, "h6", LQ_TIMEOUT_MAX);
    pay_leg(&t, "acct:a", "acct:b", 10, "EUR");
    ck_apply(&t, LQ_OK, "");
    ck_assert_int_eq(hold("h6")->timeout_s, LQ_TIMEOUT_MAX);
}
END_TEST

START_TEST(test_expire_releases_with_expiry_entries)
{
    test_payment h;
    const lq_hold *k;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    open_funded("acct:c", "EUR", 0);
    cmd_hold(&h, "h1", 60);
    pay_leg(&h, "acct:a", "acct:b", 100, "EUR");
    pay_leg(&h, "acct:a", "acct:c", 50, "EUR");
    ck_apply(&h, LQ_OK, "");
    ck_assert_int_eq(lq_ledger_expire(&book, "h1"), LQ_OK);
    ck_assert_account("acct:a", 0, 1000, true);
    ck_assert_account("acct:b", 0, 0, true);
    ck_assert_held("acct:a", 0, 0, 1000);
    ck_assert_held("acct:b", 0, 0, 0);
    ck_assert_held("acct:c", 0, 0, 0);
    k = hold("h1");
    ck_assert_hold("h1", LQ_HOLD_EXPIRED, true, true, 0);
    ck_assert_ptr_null(k->resolved_by);
    ck_assert_uint_eq(book.n_entries, 8);
    ck_assert_entry(4, "acct:a", 3, "h1", "expiry", 1, 0, 1000);
    ck_assert_entry_held(4, 0, 0);
    ck_assert_entry(5, "acct:b", 2, "h1", "expiry", 1, 0, 0);
    ck_assert_entry_held(5, 0, 0);
    ck_assert_entry(6, "acct:a", 4, "h1", "expiry", 2, 0, 1000);
    ck_assert_entry_held(6, 0, 0);
    ck_assert_entry(7, "acct:c", 2, "h1", "expiry", 2, 0, 0);
    ck_assert_entry_held(7, 0, 0);
    /* The command of an expiry entry is the hold's id in the book, not a command's. */
    ck_assert_ptr_eq(book.entries[4].command, k->id);
    ck_assert_ptr_eq(book.entries[7].command, k->id);
    /* Released once. */
    ck_assert_int_eq(lq_ledger_expire(&book, "h1"), LQ_ERR_INTERNAL);
    ck_assert_uint_eq(book.n_entries, 8);
}
END_TEST

START_TEST(test_expire_of_loaded_holds)
{
    test_payment legs;
    book_snapshot *before;

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    account("acct:a")->held_debits = 70;
    account("acct:a")->entries = 5;
    account("acct:b")->held_credits = 70;
    account("acct:b")->entries = 9;
    pay1(&legs, "x", "acct:a", "acct:b", 70, "EUR");
    add_hold("h-cap", LQ_HOLD_CAPTURED, true, &legs);
    add_hold("h-void", LQ_HOLD_VOIDED, true, &legs);
    add_hold("h-exp", LQ_HOLD_EXPIRED, true, &legs);
    add_hold("h1", LQ_HOLD_PENDING, true, &legs);
    before = snapshot();
    ck_assert_int_eq(lq_ledger_expire(&book, NULL), LQ_ERR_NOT_FOUND);
    ck_assert_int_eq(lq_ledger_expire(&book, "nope"), LQ_ERR_NOT_FOUND);
    ck_assert_int_eq(lq_ledger_expire(&book, "h-cap"), LQ_ERR_INTERNAL);
    ck_assert_int_eq(lq_ledger_expire(&book, "h-void"), LQ_ERR_INTERNAL);
    ck_assert_int_eq(lq_ledger_expire(&book, "h-exp"), LQ_ERR_INTERNAL);
    ck_assert_book_is(before, 2);
    ck_assert_int_eq(lq_ledger_expire(&book, "h1"), LQ_OK);
    ck_assert_hold("h1", LQ_HOLD_EXPIRED, false, true, 0);
    ck_assert_held("acct:a", 0, 0, 1000);
    ck_assert_held("acct:b", 0, 0, 0);
    ck_assert_account("acct:a", 0, 1000, true);
    ck_assert_uint_eq(book.n_entries, 2);
    ck_assert_entry(0, "acct:a", 6, "h1", "expiry", 1, 0, 1000);
    ck_assert_entry(1, "acct:b", 10, "h1", "expiry", 1, 0, 0);
    /* The others are as they were. */
    ck_assert_hold("h-cap", LQ_HOLD_CAPTURED, false, false, 0);
    ck_assert_hold("h-exp", LQ_HOLD_EXPIRED, false, false, 0);
}
END_TEST

/* ---- section 14: holds in a batch ---------------------------------------------- */

START_TEST(test_decide_hold_and_capture_in_one_batch)
{
    test_payment h, c1, c2, v, p;
    lq_item items[5];

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    hold1(&h, "h1", "acct:a", "acct:b", 500);
    cmd_capture(&c1, "c1", "h1", 200);
    cmd_capture(&c2, "c2", "h1", 0);
    cmd_void(&v, "v1", "h1");
    pay1(&p, "p1", "acct:a", "acct:b", 800, "EUR"); /* the 300 not captured are back */
    item_init(&items[0], &h);
    item_init(&items[1], &c1);
    item_init(&items[2], &c2);
    item_init(&items[3], &v);
    item_init(&items[4], &p);
    lq_ledger_decide(items, 5, &book, NOW);
    ck_assert_outcome(&items[0], LQ_OK, false, true, "", NOW);
    ck_assert_outcome(&items[1], LQ_OK, false, true, "", NOW);
    ck_assert_outcome(&items[2], LQ_ERR_HOLD_ALREADY_CAPTURED, false, true,
                      "hold \"h1\" was already captured", NOW);
    ck_assert_outcome(&items[3], LQ_ERR_HOLD_ALREADY_CAPTURED, false, true,
                      "hold \"h1\" was already captured", NOW);
    ck_assert_outcome(&items[4], LQ_OK, false, true, "", NOW);
    /* Only the applied capture of a single-leg hold carries an amount. */
    ck_assert_int_eq(items[0].outcome.amount, 0);
    ck_assert_int_eq(items[1].outcome.amount, 200);
    ck_assert_int_eq(items[2].outcome.amount, 0);
    ck_assert_int_eq(items[3].outcome.amount, 0);
    ck_assert_int_eq(items[4].outcome.amount, 0);
    /* Placed and resolved in the batch: the db module inserts it captured. */
    ck_assert_hold("h1", LQ_HOLD_CAPTURED, true, true, 200);
    ck_assert_ptr_eq(hold("h1")->resolved_by, c1.p.id);
    ck_assert_account("acct:a", 1000, 1000, true);
    ck_assert_account("acct:b", 0, 1000, true);
    ck_assert_held("acct:a", 0, 0, 0);
    ck_assert_uint_eq(book.n_entries, 6);
}
END_TEST

START_TEST(test_decide_capture_amounts)
{
    test_payment h1, h2, h3, c1, c2, c3, v3;
    lq_item items[7];

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    hold1(&h1, "h1", "acct:a", "acct:b", 300);
    cmd_hold(&h2, "h2", 0);
    pay_leg(&h2, "acct:a", "acct:b", 100, "EUR");
    pay_leg(&h2, "acct:a", "acct:b", 50, "EUR");
    hold1(&h3, "h3", "acct:a", "acct:b", 10);
    cmd_capture(&c1, "c1", "h1", 0);  /* no amount: all of it */
    cmd_capture(&c2, "c2", "h2", 0);  /* several legs: null */
    cmd_capture(&c3, "c3", "h9", 10); /* rejected: null */
    cmd_void(&v3, "v3", "h3");
    item_init(&items[0], &h1);
    item_init(&items[1], &h2);
    item_init(&items[2], &h3);
    item_init(&items[3], &c1);
    item_init(&items[4], &c2);
    item_init(&items[5], &c3);
    item_init(&items[6], &v3);
    lq_ledger_decide(items, 7, &book, NOW);
    ck_assert_outcome(&items[3], LQ_OK, false, true, "", NOW);
    ck_assert_int_eq(items[3].outcome.amount, 300);
    ck_assert_outcome(&items[4], LQ_OK, false, true, "", NOW);
    ck_assert_int_eq(items[4].outcome.amount, 0);
    ck_assert_hold("h2", LQ_HOLD_CAPTURED, true, true, 150);
    ck_assert_outcome(&items[5], LQ_ERR_HOLD_NOT_FOUND, false, true, "hold \"h9\" does not exist",
                      NOW);
    ck_assert_int_eq(items[5].outcome.amount, 0);
    ck_assert_outcome(&items[6], LQ_OK, false, true, "", NOW);
    ck_assert_int_eq(items[6].outcome.amount, 0);
    ck_assert_account("acct:a", 450, 1000, true);
}
END_TEST

/* A capture published before its hold's result arrived gets a final hold_not_found (section 12). */
START_TEST(test_decide_capture_before_its_hold_or_of_a_rejected_one)
{
    test_payment c1, h1, h2, c2;
    lq_item items[4];

    open_funded("acct:a", "EUR", 100);
    open_funded("acct:b", "EUR", 0);
    cmd_capture(&c1, "c1", "h1", 0);
    hold1(&h1, "h1", "acct:a", "acct:b", 60);
    hold1(&h2, "h2", "acct:a", "acct:b", 60); /* 40 left */
    cmd_capture(&c2, "c2", "h2", 0);
    item_init(&items[0], &c1);
    item_init(&items[1], &h1);
    item_init(&items[2], &h2);
    item_init(&items[3], &c2);
    lq_ledger_decide(items, 4, &book, NOW);
    ck_assert_outcome(&items[0], LQ_ERR_HOLD_NOT_FOUND, false, true, "hold \"h1\" does not exist",
                      NOW);
    ck_assert_outcome(&items[1], LQ_OK, false, true, "", NOW);
    ck_assert_outcome(&items[2], LQ_ERR_INSUFFICIENT_FUNDS, false, true,
                      "leg 1: account \"acct:a\" has balance 100 (available 40), cannot be "
                      "debited 60",
                      NOW);
    ck_assert_outcome(&items[3], LQ_ERR_HOLD_NOT_FOUND, false, true, "hold \"h2\" does not exist",
                      NOW);
    ck_assert_hold("h1", LQ_HOLD_PENDING, true, false, 0);
    ck_assert_uint_eq(book.n_holds, 1);
    ck_assert_held("acct:a", 60, 0, 40);
}
END_TEST

START_TEST(test_decide_duplicates_get_the_stored_amount)
{
    test_payment h2, c1, c1_unconfirmed, c2, c2_again, c2_other;
    lq_item items[6];

    open_funded("acct:a", "EUR", 1000);
    open_funded("acct:b", "EUR", 0);
    /* c1 was applied in an earlier batch, posting 700. */
    cmd_capture(&c1, "c1", "h1", 700);
    item_init(&items[0], &c1);
    item_stored(&items[0], true, LQ_OK, "", EARLIER);
    items[0].stored_outcome.amount = 700;
    /* And again, its first event never confirmed: the first outcome again, amount included. */
    cmd_capture(&c1_unconfirmed, "c1", "h1", 700);
    item_init(&items[1], &c1_unconfirmed);
    item_stored(&items[1], true, LQ_OK, "", EARLIER);
    items[1].stored_outcome.amount = 700;
    items[1].stored_published = false;
    hold1(&h2, "h2", "acct:a", "acct:b", 400);
    item_init(&items[2], &h2);
    cmd_capture(&c2, "c2", "h2", 250);
    item_init(&items[3], &c2);
    cmd_capture(&c2_again, "c2", "h2", 250);
    item_init(&items[4], &c2_again);
    cmd_capture(&c2_other, "c2", "h2", 1);
    item_init(&items[5], &c2_other);
    lq_ledger_decide(items, 6, &book, NOW);
    ck_assert_outcome(&items[0], LQ_OK, true, false, "", EARLIER);
    ck_assert_int_eq(items[0].outcome.amount, 700);
    ck_assert_outcome(&items[1], LQ_OK, false, false, "", EARLIER);
    ck_assert_int_eq(items[1].outcome.amount, 700);
    ck_assert_outcome(&items[3], LQ_OK, false, true, "", NOW);
    ck_assert_int_eq(items[3].outcome.amount, 250);
    ck_assert_outcome(&items[4], LQ_OK, true, false, "", NOW);
    ck_assert_int_eq(items[4].outcome.amount, 250);
    ck_assert_outcome(&items[5], LQ_ERR_IDEMPOTENCY_CONFLICT, false, false,
                      "id was first used with other content", NOW);
    ck_assert_int_eq(items[5].outcome.amount, 0);
    /* Captured once. */
    ck_assert_account("acct:a", 250, 1000, true);
    ck_assert_uint_eq(book.n_entries, 4);
}
END_TEST

static Suite *ledger_suite(void)
{
    Suite *s = suite_create("ledger");
    TCase *tc;

    tc = tcase_create("book");
    tcase_add_checked_fixture(tc, book_setup, book_teardown);
    tcase_add_test(tc, test_balance_is_credits_minus_debits);
    tcase_add_test(tc, test_book_add_keeps_order);
    tcase_add_test(tc, test_book_add_duplicate_is_exists);
    tcase_add_test(tc, test_book_find_hits_and_misses);
    tcase_add_test(tc, test_book_grows_past_initial_capacity);
    tcase_add_test(tc, test_book_clear_keeps_allocation);
    tcase_add_test(tc, test_available_is_balance_minus_held_debits);
    tcase_add_test(tc, test_book_clear_and_release_free_entries);
    suite_add_tcase(s, tc);

    tc = tcase_create("book holds");
    tcase_add_checked_fixture(tc, book_setup, book_teardown);
    tcase_add_test(tc, test_hold_status_names);
    tcase_add_test(tc, test_book_holds_sorted_and_found);
    tcase_add_test(tc, test_book_holds_grow_past_initial_capacity);
    tcase_add_test(tc, test_book_clear_and_release_free_holds);
    suite_add_tcase(s, tc);

    tc = tcase_create("outcomes");
    tcase_add_checked_fixture(tc, book_setup, book_teardown);
    tcase_add_test(tc, test_applied_single_leg);
    tcase_add_test(tc, test_account_not_found_debit);
    tcase_add_test(tc, test_account_not_found_credit);
    tcase_add_test(tc, test_account_not_found_both_names_debit);
    tcase_add_test(tc, test_currency_mismatch_debit_side);
    tcase_add_test(tc, test_currency_mismatch_credit_side);
    tcase_add_test(tc, test_insufficient_funds_exactly_zero_is_allowed);
    tcase_add_test(tc, test_insufficient_funds_one_below);
    tcase_add_test(tc, test_insufficient_funds_empty_account);
    tcase_add_test(tc, test_allow_negative_may_go_negative);
    tcase_add_test(tc, test_amount_overflow_on_credits);
    tcase_add_test(tc, test_amount_overflow_on_debits_of_allow_negative);
    tcase_add_test(tc, test_int64_max_amounts);
    tcase_add_test(tc, test_detail_is_truncated_to_its_buffer);
    tcase_add_test(tc, test_malformed_payment_is_internal_error);
    suite_add_tcase(s, tc);

    tc = tcase_create("check order");
    tcase_add_checked_fixture(tc, book_setup, book_teardown);
    tcase_add_test(tc, test_order_currency_mismatch_before_insufficient_funds);
    tcase_add_test(tc, test_order_missing_account_beats_everything);
    tcase_add_test(tc, test_order_insufficient_funds_before_overflow);
    tcase_add_test(tc, test_order_debits_overflow_before_credits_overflow);
    tcase_add_test(tc, test_first_failing_leg_decides);
    tcase_add_test(tc, test_order_not_found_before_closed);
    tcase_add_test(tc, test_order_closed_before_currency_mismatch);
    tcase_add_test(tc, test_order_currency_mismatch_before_frozen);
    tcase_add_test(tc, test_order_frozen_before_insufficient_funds);
    tcase_add_test(tc, test_order_insufficient_funds_before_exceeds_max_balance);
    tcase_add_test(tc, test_order_exceeds_max_balance_before_amount_overflow);
    tcase_add_test(tc, test_first_failing_leg_decides_whatever_the_reasons);
    tcase_add_test(tc, test_later_leg_sees_the_ceiling_earlier_legs_reached);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits and statuses");
    tcase_add_checked_fixture(tc, book_setup, book_teardown);
    tcase_add_test(tc, test_overdraft_debit_to_exactly_minus_limit_then_one_more);
    tcase_add_test(tc, test_overdraft_limit_zero_is_floor_zero);
    tcase_add_test(tc, test_credit_to_exactly_the_ceiling_then_one_more);
    tcase_add_test(tc, test_ceiling_of_a_negative_account);
    tcase_add_test(tc, test_held_debits_count_in_available_balance);
    tcase_add_test(tc, test_held_debits_with_an_overdraft_limit);
    tcase_add_test(tc, test_held_credits_count_against_the_ceiling);
    tcase_add_test(tc, test_frozen_debit_is_rejected_frozen_credit_applies);
    tcase_add_test(tc, test_frozen_without_a_floor_is_still_frozen);
    tcase_add_test(tc, test_closed_on_either_side);
    tcase_add_test(tc, test_int64_edges_of_floors_and_ceilings);
    tcase_add_test(tc, test_amount_overflow_counts_held_amounts);
    suite_add_tcase(s, tc);

    tc = tcase_create("transfer entries");
    tcase_add_checked_fixture(tc, book_setup, book_teardown);
    tcase_add_test(tc, test_entries_of_transfers);
    tcase_add_test(tc, test_entries_of_several_legs_on_one_account);
    tcase_add_test(tc, test_rejected_at_third_leg_appends_nothing);
    tcase_add_test(tc, test_sixty_four_legs_of_entries);
    suite_add_tcase(s, tc);

    tc = tcase_create("legs");
    tcase_add_checked_fixture(tc, book_setup, book_teardown);
    tcase_add_test(tc, test_multi_leg_atomicity);
    tcase_add_test(tc, test_multi_leg_applied_all_legs);
    tcase_add_test(tc, test_later_leg_spends_what_earlier_leg_credited);
    tcase_add_test(tc, test_legs_in_order_not_netted);
    tcase_add_test(tc, test_same_account_in_several_legs);
    tcase_add_test(tc, test_same_account_in_several_legs_rolled_back);
    tcase_add_test(tc, test_sixty_four_legs);
    suite_add_tcase(s, tc);

    tc = tcase_create("account.open");
    tcase_add_checked_fixture(tc, book_setup, book_teardown);
    tcase_add_test(tc, test_open_adds_an_active_account);
    tcase_add_test(tc, test_open_with_limits);
    tcase_add_test(tc, test_open_of_an_existing_account_is_account_exists);
    tcase_add_test(tc, test_malformed_account_commands_are_internal_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("account.update");
    tcase_add_checked_fixture(tc, book_setup, book_teardown);
    tcase_add_test(tc, test_update_of_a_missing_account);
    tcase_add_test(tc, test_update_of_a_closed_account_is_account_closed);
    tcase_add_test(tc, test_close_order_not_empty_then_holds_then_limits);
    tcase_add_test(tc, test_close_is_final);
    tcase_add_test(tc, test_update_overdraft_limit_against_a_negative_balance);
    tcase_add_test(tc, test_update_held_debits_against_a_new_floor);
    tcase_add_test(tc, test_update_allow_negative_and_overdraft_limit);
    tcase_add_test(tc, test_update_max_balance);
    tcase_add_test(tc, test_update_limits_at_int64_edges);
    tcase_add_test(tc, test_update_status_again_is_applied_and_recorded);
    tcase_add_test(tc, test_update_change_json);
    tcase_add_test(tc, test_update_entries_carry_the_running_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("decide");
    tcase_add_checked_fixture(tc, book_setup, book_teardown);
    tcase_add_test(tc, test_decide_first_time_applied_and_rejected);
    tcase_add_test(tc, test_decide_stored_same_is_duplicate_of_stored_outcome);
    tcase_add_test(tc, test_decide_stored_other_content_is_conflict);
    tcase_add_test(tc, test_decide_stored_twice_in_batch);
    tcase_add_test(tc, test_decide_stored_unconfirmed_is_first_outcome_again);
    tcase_add_test(tc, test_decide_stored_unconfirmed_twice_in_batch);
    tcase_add_test(tc, test_decide_batch_duplicate_of_applied);
    tcase_add_test(tc, test_decide_batch_duplicate_of_rejected);
    tcase_add_test(tc, test_decide_batch_conflict);
    tcase_add_test(tc, test_decide_rejected_stays_rejected_when_funds_arrive);
    tcase_add_test(tc, test_decide_earlier_payment_funds_later_one);
    tcase_add_test(tc, test_decide_large_batch_with_duplicates);
    tcase_add_test(tc, test_decide_empty_batch);
    tcase_add_test(tc, test_decide_open_then_transfer_in_one_batch);
    tcase_add_test(tc, test_decide_freeze_and_unfreeze_in_one_batch);
    tcase_add_test(tc, test_decide_same_id_across_types_is_conflict);
    tcase_add_test(tc, test_decide_internal_error_is_not_stored);
    suite_add_tcase(s, tc);

    tc = tcase_create("holds");
    tcase_add_checked_fixture(tc, book_setup, book_teardown);
    tcase_add_test(tc, test_hold_applied_reserves_and_posts_nothing);
    tcase_add_test(tc, test_hold_rejected_for_each_leg_reason);
    tcase_add_test(tc, test_hold_amount_overflow_counts_held_totals);
    tcase_add_test(tc, test_multi_leg_hold_later_legs_see_earlier_holds);
    tcase_add_test(tc, test_rejected_hold_leaves_book_and_entries_untouched);
    tcase_add_test(tc, test_transfer_refused_because_of_a_hold_accepted_after_void);
    tcase_add_test(tc, test_holds_count_against_the_ceiling);
    tcase_add_test(tc, test_malformed_hold_commands_are_internal_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("capture and void");
    tcase_add_checked_fixture(tc, book_setup, book_teardown);
    tcase_add_test(tc, test_capture_in_full_of_a_single_leg_hold);
    tcase_add_test(tc, test_partial_capture_releases_the_rest);
    tcase_add_test(tc, test_capture_of_exactly_the_held_amount_then_one_more);
    tcase_add_test(tc, test_multi_leg_hold_captured_in_full);
    tcase_add_test(tc, test_partial_capture_of_several_legs_is_not_supported);
    tcase_add_test(tc, test_capture_and_void_rejections_in_order);
    tcase_add_test(tc, test_void_releases_and_posts_nothing);
    tcase_add_test(tc, test_frozen_accounts_do_not_stop_capture_or_void);
    tcase_add_test(tc, test_capture_and_void_after_expiry);
    tcase_add_test(tc, test_capture_of_a_loaded_hold);
    tcase_add_test(tc, test_failed_capture_restores_the_hold);
    suite_add_tcase(s, tc);

    tc = tcase_create("expiry");
    tcase_add_checked_fixture(tc, book_setup, book_teardown);
    tcase_add_test(tc, test_expire_releases_with_expiry_entries);
    tcase_add_test(tc, test_expire_of_loaded_holds);
    suite_add_tcase(s, tc);

    tc = tcase_create("holds in a batch");
    tcase_add_checked_fixture(tc, book_setup, book_teardown);
    tcase_add_test(tc, test_decide_hold_and_capture_in_one_batch);
    tcase_add_test(tc, test_decide_capture_amounts);
    tcase_add_test(tc, test_decide_capture_before_its_hold_or_of_a_rejected_one);
    tcase_add_test(tc, test_decide_duplicates_get_the_stored_amount);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ledger_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
