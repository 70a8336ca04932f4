/*
 * The PostgreSQL ledger.  The only module that includes libpq-fe.h.
 *
 * Every statement is parameterised; the schema lives in sql/ and is
 * embedded in the binary (lq_db_migrate()).  Failures are classified once
 * here: LQ_ERR_DB_UNAVAILABLE (the connection is gone or refused: reconnect),
 * LQ_ERR_DB_RETRY (deadlock, serialization failure, a concurrent first
 * insert of the same payment id: run the transaction again) and
 * LQ_ERR_DB_FAILED (anything else).  lq_db_error() tells the last failure in
 * one line.
 */
#ifndef LEDGERQ_DB_H
#define LEDGERQ_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledgerq/ledger.h"

typedef struct lq_db lq_db;

/*
 * Connect to url (a libpq URI or conninfo).  On success stores a new handle
 * in *ret (caller closes with lq_db_close()).  Returns LQ_ERR_DB_UNAVAILABLE
 * with a line (no password) in err when the server cannot be reached or
 * refuses.
 */
int lq_db_connect(const char *url, lq_db **ret, char *err, size_t err_len);

/*
 * Bound every later statement of this session: statement_ms for any one
 * statement, lock_ms for waiting on a row lock.  A statement cut short
 * fails with LQ_ERR_DB_RETRY.  With an idle function set (below), a server
 * that sends no answer at all for statement_ms plus a few seconds (it
 * hangs, or the network dropped it silently) fails the statement with
 * LQ_ERR_DB_UNAVAILABLE, and the connection is then good only for
 * lq_db_close().
 */
int lq_db_set_timeouts(lq_db *db, int statement_ms, int lock_ms);

typedef void (*lq_db_idle_fn)(void *arg);

/*
 * While a statement of this session waits for the server, call idle(arg)
 * every interval_ms.  The worker answers the broker's heartbeats there:
 * rabbitmq-c only does so inside its own calls.  idle NULL (the default):
 * statements block without calling anything.  arg is borrowed and must
 * outlive the setting.
 */
void lq_db_set_idle(lq_db *db, lq_db_idle_fn idle, void *arg, int interval_ms);

/*
 * Call sent(arg) once each time a pipeline of statements (a batch's load
 * or store) has been sent, before its results are awaited: the worker does
 * there what need not wait for them, while the server works.  sent must
 * not use this connection.  NULL (the default): nothing.
 */
void lq_db_set_sent(lq_db *db, lq_db_idle_fn sent, void *arg);

/*
 * Whether the connection still looks usable, without waiting: reads what
 * the server may have sent (a termination notice, a closed socket) and
 * says false once libpq marks the connection bad.  For an idle worker,
 * which would otherwise learn of a lost database only with its next batch.
 */
bool lq_db_alive(lq_db *db);

/* Close the connection.  Accepts NULL; returns NULL. */
lq_db *lq_db_close(lq_db *db);

/* The last failure, one line; "" when none.  Valid until the next call. */
const char *lq_db_error(const lq_db *db);

/* A progress line of a long operation, for people (no trailing newline). */
typedef void (*lq_db_notice_fn)(const char *line, void *arg);

/*
 * Apply the embedded migrations not yet applied, in order, each in its own
 * transaction, under an advisory lock so that concurrent callers are safe.
 * A migration that cannot get a table lock within a short lock timeout
 * (another transaction holds the table) is rolled back and tried again a
 * while later, so that the workers' batches do not queue behind it.
 * First refuses (LQ_ERR_DB_FAILED, naming the file) when an applied
 * migration's recorded checksum differs from the embedded file's.  notice
 * (may be NULL) gets a line per migration applied and per retry.
 * *ret_applied (may be NULL) gets how many were applied now.
 */
int lq_db_migrate(lq_db *db, lq_db_notice_fn notice, void *arg, int *ret_applied);

/* What the database says of its schema (docs/upgrades.md). */
typedef struct lq_schema_state {
    int version;             /* the newest applied migration; 0 when none */
    char oldest_release[32]; /* the oldest release that may run against it; "" when none set */
} lq_schema_state;

/* Read the schema state into *ret (an unmigrated database gives version 0). */
int lq_db_schema_state(lq_db *db, lq_schema_state *ret);

/*
 * Insert n accounts (zero totals, no limits) in one statement: all or none.
 * This goes around the batch path: no command is stored, and the schema's
 * trigger for older releases' writes gives each account its opening entry.
 * `ledgerq bench` sets up its accounts with it; `ledgerq account import`
 * goes through the batch path instead.  On LQ_ERR_EXISTS *ret_failed (may
 * be NULL) gets the index of an account whose id is taken.
 */
int lq_db_account_import(lq_db *db, const lq_account *accounts, size_t n, size_t *ret_failed);

/*
 * Read one account into *ret (created_at included) and its creation time
 * (RFC 3339 UTC) into ret_created_at.  LQ_ERR_NOT_FOUND when there is none.
 */
int lq_db_account_get(lq_db *db, const char *id, lq_account *ret,
                      char ret_created_at[LQ_TIMESTAMP_MAX]);

typedef void (*lq_db_account_fn)(const lq_account *a, const char *created_at, void *arg);

/* Call fn for every account, in id order. */
int lq_db_account_list(lq_db *db, lq_db_account_fn fn, void *arg);

/* An account as of a time: its last history entry then (docs/protocol.md section 15). */
typedef struct lq_account_point {
    char id[LQ_ACCOUNT_ID_MAX + 1];
    char currency[4];
    char at[LQ_TIMESTAMP_MAX]; /* the time asked about, RFC 3339 UTC with microseconds */
    int64_t seq;               /* the last entry with at not after it; 0: none (opened later) */
    int64_t balance, held_debits, held_credits; /* that entry's values; 0 without one */
    char entry_at[LQ_TIMESTAMP_MAX];            /* that entry's time; "" without one */
    char opened_at[LQ_TIMESTAMP_MAX];           /* the time of the first entry; "" when none */
} lq_account_point;

/*
 * Read account id as of time at (a timestamp PostgreSQL reads exactly, such
 * as RFC 3339 UTC) into *ret: a binary search over the account's entries
 * (ledgerq_entry_seq_at()), a few index probes however long its history.
 * An account without an entry that early is found with ret->seq 0.
 * LQ_ERR_NOT_FOUND when there is no such account.
 */
int lq_db_account_at(lq_db *db, const char *id, const char *at, lq_account_point *ret);

/* The most entries one page of `account history` may ask for. */
#define LQ_HISTORY_PAGE_MAX 1000

/* Which entries of an account's history to read. */
typedef struct lq_history_query {
    int64_t after;     /* only entries with a larger seq; 0: from the first */
    int limit;         /* at most this many, 1 .. LQ_HISTORY_PAGE_MAX */
    const char *since; /* NULL, or only entries at or after this time (as for lq_db_account_at) */
    const char *until; /* NULL, or only entries at or before this time */
} lq_history_query;

/*
 * One entry as read: e->command, e->type and e->change (compact JSON, or
 * NULL) and at (RFC 3339 UTC) are borrowed for the call; e->account is "".
 */
typedef void (*lq_db_entry_fn)(const lq_entry *e, const char *at, void *arg);

/*
 * Call fn for a page of account id's history (docs/protocol.md section 15)
 * in seq order: the entries after q->after within the time bounds, at most
 * q->limit of them.  The bounds become seq bounds by binary searches
 * (entries' times never decrease along an account), so that a page costs a
 * few index probes however long the history.  *ret_next gets the seq to
 * read the next page after: the last entry's when another entry follows
 * within the bounds, else 0.  LQ_ERR_NOT_FOUND when there is no such
 * account; LQ_ERR_USAGE when q->limit is out of range.
 */
int lq_db_account_history(lq_db *db, const char *id, const lq_history_query *q, lq_db_entry_fn fn,
                          void *arg, int64_t *ret_next);

/* A stored command outcome, of any type, for `payment show`. */
typedef struct lq_payment_record {
    char id[LQ_ID_MAX + 1];
    char type[32];      /* as stored: "transfer", "account.open", "account.update", ... */
    lq_outcome outcome; /* result, detail, processed_at; duplicate is false */
    size_t n_legs;
    lq_leg *legs;    /* owned: the requested legs, applied or not; none for account commands */
    char *reference; /* owned, NULL when absent */
    char *metadata;  /* owned JSON text, NULL when absent */
    char account[LQ_ACCOUNT_ID_MAX + 1]; /* an account command's account; "" for transfers */
    char *change; /* owned compact JSON of what an account command set; NULL for transfers */
    char hold[LQ_ID_MAX + 1]; /* a capture's or void's hold; "" for the others */
    /* A hold applied: where it stands, and when it expires ("" when never); else "" and "". */
    char hold_status[16];
    char expires_at[LQ_TIMESTAMP_MAX];
} lq_payment_record;

/* Read a command's stored outcome.  LQ_ERR_NOT_FOUND when the id is unknown. */
int lq_db_payment_get(lq_db *db, const char *id, lq_payment_record *ret);

/* Release what a record owns. */
void lq_payment_record_release(lq_payment_record *r);

typedef void (*lq_db_violation_fn)(const char *invariant, const char *detail, void *arg);

/*
 * Check the ledger invariants of docs/protocol.md section 8 in one read-only
 * snapshot, calling fn once per violation found.  *ret_violations gets the
 * count.  Returns LQ_OK when the check ran (whatever it found).
 */
int lq_db_audit(lq_db *db, lq_db_violation_fn fn, void *arg, size_t *ret_violations);

/*
 * Result events the broker confirmed, not yet recorded in the database: the
 * batches whose events were all confirmed, and single payments whose first
 * outcome was published again (their batch lost its confirms) and then
 * confirmed.  A redelivered command whose first event is recorded as
 * confirmed is answered as a duplicate; otherwise its first outcome is
 * published again (docs/protocol.md section 6).
 */
typedef struct lq_confirmations {
    int64_t *batches; /* owned */
    size_t n_batches, cap_batches;
    char (*payments)[LQ_ID_MAX + 1]; /* owned */
    size_t n_payments, cap_payments;
} lq_confirmations;

/* Add a batch or a payment id.  LQ_ERR_NOMEM when it cannot grow. */
int lq_confirmations_add_batch(lq_confirmations *c, int64_t batch_id);
int lq_confirmations_add_payment(lq_confirmations *c, const char *payment_id);

/* Add everything from into c, and empty from.  LQ_ERR_NOMEM leaves both as they were. */
int lq_confirmations_move(lq_confirmations *c, lq_confirmations *from);

/* Forget every entry, keeping the memory. */
void lq_confirmations_clear(lq_confirmations *c);

/* Release the memory.  Accepts a zeroed struct. */
void lq_confirmations_release(lq_confirmations *c);

/* Whether c holds nothing. */
bool lq_confirmations_empty(const lq_confirmations *c);

/* Record c's confirmations in a transaction of their own. */
int lq_db_record_confirmations(lq_db *db, const lq_confirmations *c);

/*
 * First half of a batch, one round trip to the server: begin a
 * transaction, record the confirmations c (may be NULL or empty; they are
 * durable once the batch commits), fill each item's stored outcome (and
 * whether its content matches and its first event was confirmed), lock the
 * applied holds that the items' captures and voids name, in id order, then
 * every existing account that the items name (stored ones too) or that
 * those holds' legs name, in id order, and load them into book (cleared
 * first): a hold with its legs, its status and whether its expiry time is
 * not after the transaction's.  ret_now gets the
 * transaction's time and *ret_batch_id the number under which the batch
 * stores its outcomes.  On failure the transaction is rolled back.
 */
int lq_db_batch_load(lq_db *db, lq_item *items, size_t n, const lq_confirmations *c, lq_book *book,
                     char ret_now[LQ_TIMESTAMP_MAX], int64_t *ret_batch_id);

/* Roll back a batch loaded by lq_db_batch_load() and not stored. */
void lq_db_batch_abort(lq_db *db);

/*
 * Second half, one round trip: store the items marked insert (outcome and
 * legs: the legs of an applied payment are its postings) under batch_id,
 * insert the accounts the batch opened, write back the accounts it changed,
 * append the book's history entries (with the time of this statement), and
 * commit.  On
 * failure the transaction is rolled back.
 */
int lq_db_batch_store(lq_db *db, const lq_item *items, size_t n, const lq_book *book,
                      int64_t batch_id);

/* A hold released at its expiry, whose hold.expired event is to be published. */
typedef struct lq_expiry {
    char id[LQ_ID_MAX + 1];             /* the hold's id */
    char released_at[LQ_TIMESTAMP_MAX]; /* the event's processed_at */
} lq_expiry;

/* The expiries of one sweep, to publish under batch_id. */
typedef struct lq_expiries {
    lq_expiry *list; /* owned */
    size_t n, cap;
    int64_t batch_id; /* their confirms are recorded under it (ops_confirmed_batches) */
} lq_expiries;

/* Release the memory.  Accepts a zeroed struct. */
void lq_expiries_release(lq_expiries *e);

/*
 * The expiry sweep (docs/protocol.md section 14), a transaction of its
 * own: forget the expiries whose events were recorded as confirmed; take
 * up to limit pending holds past their expiry that no other transaction
 * has locked (FOR UPDATE SKIP LOCKED: workers share the sweep, none
 * releases a hold another holds), lock their accounts in id order, release
 * them in book (cleared first) with lq_ledger_expire(), store that and
 * commit.  Also takes up to limit expiries whose event was published more
 * than republish_s seconds ago and never recorded as confirmed (their
 * worker died): they are published again.  Fills out (emptied first) with
 * every event to publish, in that order, under one new batch number.
 * Returns LQ_OK (out->n may be 0) or a database failure, rolled back.
 */
int lq_db_expire_holds(lq_db *db, lq_book *book, size_t limit, int republish_s, lq_expiries *out);

#endif
