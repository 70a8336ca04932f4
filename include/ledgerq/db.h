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

/* Open one account (debits and credits start at 0).  LQ_ERR_EXISTS if the id is taken. */
int lq_db_account_open(lq_db *db, const lq_account *a);

/*
 * Open n accounts in one transaction: all or none.  On LQ_ERR_EXISTS
 * *ret_failed (may be NULL) gets the index of an account whose id is taken.
 */
int lq_db_account_import(lq_db *db, const lq_account *accounts, size_t n, size_t *ret_failed);

/*
 * Read one account into *ret and its creation time (RFC 3339 UTC) into
 * ret_created_at.  LQ_ERR_NOT_FOUND when there is none.
 */
int lq_db_account_get(lq_db *db, const char *id, lq_account *ret,
                      char ret_created_at[LQ_TIMESTAMP_MAX]);

typedef void (*lq_db_account_fn)(const lq_account *a, const char *created_at, void *arg);

/* Call fn for every account, in id order. */
int lq_db_account_list(lq_db *db, lq_db_account_fn fn, void *arg);

/* A stored payment outcome, for `payment show`. */
typedef struct lq_payment_record {
    char id[LQ_ID_MAX + 1];
    lq_outcome outcome; /* result, detail, processed_at; duplicate is false */
    size_t n_legs;
    lq_leg *legs;    /* owned: the requested legs, applied or not */
    char *reference; /* owned, NULL when absent */
    char *metadata;  /* owned JSON text, NULL when absent */
} lq_payment_record;

/* Read a payment's stored outcome.  LQ_ERR_NOT_FOUND when the id is unknown. */
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
 * whether its content matches and its first event was confirmed), lock
 * every existing account that the items name (stored ones too), in id
 * order, and load them into book (cleared first).  ret_now gets the
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

#endif
