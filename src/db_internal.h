/*
 * What the db*.c files share: the connection handle and the machinery that
 * runs statements on it.  Private to the db module (src/db*.c), which is the
 * only code that includes libpq-fe.h; nothing outside src/db*.c includes
 * this file.
 *
 *   db.c          connecting, classifying failures, running statements and
 *                 pipelines, array literals
 *   db_batch.c    the worker's batch: load and lock, then store and commit
 *   db_query.c    the CLI's reads: accounts, history pages, stored commands
 *   db_audit.c    the ledger invariants
 *   db_migrate.c  the embedded migrations and the schema version check
 */
#ifndef LEDGERQ_DB_INTERNAL_H
#define LEDGERQ_DB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "ledgerq/db.h"
#include "ledgerq/json.h"

/* A timestamptz column as RFC 3339 UTC with microseconds. */
#define SQL_UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

struct lq_db {
    PGconn *conn;
    char err[512];
    lq_db_idle_fn idle; /* NULL: blocking calls */
    void *idle_arg;
    int idle_ms;
    lq_db_idle_fn sent; /* NULL: none */
    void *sent_arg;
    int silence_ms; /* longest wait for any answer; 0: no bound */
    bool lost;      /* a statement was abandoned: only closing remains */
};

/*
 * Record a failed statement's error (what: how the message starts) and
 * classify it: LQ_ERR_DB_UNAVAILABLE, LQ_ERR_DB_RETRY or LQ_ERR_DB_FAILED.
 * Consumes res (may be NULL: the connection's error is used).
 */
int lq_db_fail(lq_db *db, const char *what, PGresult *res);

/*
 * Run a parameterised statement (text parameters), answering the idle
 * function while the server works.  On success stores the result in *ret
 * (caller PQclear()s; ret may be NULL to discard it); on failure records
 * and classifies it as lq_db_fail() does.
 */
int lq_db_run(lq_db *db, const char *what, const char *sql, int n_params, const char *const *params,
              PGresult **ret);

/* One statement of a pipeline. */
typedef struct lq_db_step {
    const char *what; /* how a failure's message starts */
    const char *sql;
    int n_params;
    const char *const *params;
    PGresult **ret; /* gets the result (caller PQclear()s); NULL: discard it */
} lq_db_step;

/*
 * Run the statements in one round trip (libpq's pipeline mode), waiting as
 * lq_db_run() does.  Every ret gets its statement's result; on failure none
 * does (nothing to clear), and the server skipped the statements after the
 * one that failed, whose error is recorded and classified.  In an explicit
 * transaction the failure leaves it aborted: the caller rolls back.
 */
int lq_db_pipeline(lq_db *db, const lq_db_step *steps, size_t n);

/* Abandon the current transaction, if any; errors are moot by then. */
void lq_db_rollback(lq_db *db);

/* A column of a result row as a number, a boolean, a copy, a new string. */
int64_t lq_db_int64(const PGresult *res, int row, int col);
bool lq_db_bool(const PGresult *res, int row, int col);
void lq_db_copy(char *dst, size_t len, const PGresult *res, int row, int col);
/* NULL for SQL NULL; otherwise a copy the caller frees (NULL when out of memory too). */
char *lq_db_strdup(const PGresult *res, int row, int col);

/*
 * A PostgreSQL array literal under construction ({"a","b"}), the way a
 * batch passes many values in one parameter: never spliced into SQL text.
 */
typedef struct lq_db_array {
    lq_json text; /* used as a growable buffer only */
    bool first;
} lq_db_array;

void lq_db_array_init(lq_db_array *a);
/* Add a text element, quoted; NULL adds SQL NULL. */
void lq_db_array_text(lq_db_array *a, const char *s);
void lq_db_array_int(lq_db_array *a, int64_t v);
/* Close the literal; NULL when an allocation failed.  Owned by a. */
const char *lq_db_array_finish(lq_db_array *a);
void lq_db_array_release(lq_db_array *a);

/*
 * The columns lq_db_read_account() reads, in its order.  A batch leaves
 * out the creation time: formatting it costs more than the rest of the row.
 */
#define LQ_DB_BATCH_ACCOUNT_COLUMNS                                                                \
    "id, currency, status, allow_negative, overdraft_limit, coalesce(max_balance, 0), debits, "    \
    "credits, held_debits, held_credits, entries"
#define LQ_DB_ACCOUNT_COLUMNS LQ_DB_BATCH_ACCOUNT_COLUMNS ", " SQL_UTC("created_at")

/*
 * Read an account row (LQ_DB_ACCOUNT_COLUMNS, or LQ_DB_BATCH_ACCOUNT_COLUMNS:
 * created_at then empty); created_at may be NULL.
 */
void lq_db_read_account(const PGresult *res, int row, lq_account *a, char *created_at);

/*
 * now() is the transaction's start: the processed_at of every new outcome,
 * and the time against which holds' expiries are judged; the batch number
 * labels the outcomes.  The batch's joins all go through primary keys, a
 * few hundred probes whatever the tables' sizes; with small tables the
 * planner would rather hash a whole table per batch (the account totals
 * update): keep it to nested loops for this transaction.
 */
#define LQ_DB_BATCH_NOW                                                                            \
    "SELECT " SQL_UTC("now()") ", nextval('payments_batch_id_seq'),"                               \
                               " set_config('enable_hashjoin', 'off', true), "                     \
                               "set_config('enable_mergejoin', 'off', true),"                      \
                               " set_config('ledgerq.writes_history', 'on', true)"

/*
 * The accounts named by $1 (text[]) and by the legs of the holds named by
 * $2 (text[]), locked in id order.  The ids are gathered into one array
 * first: the look-up stays a few index probes.
 */
#define LQ_DB_LOCK_ACCOUNTS_AND_HOLDS                                                              \
    "SELECT " LQ_DB_BATCH_ACCOUNT_COLUMNS " FROM accounts WHERE id = ANY(ARRAY("                   \
    "SELECT unnest($1::text[]) UNION SELECT x FROM payments p"                                     \
    " CROSS JOIN LATERAL jsonb_array_elements(p.legs) AS e(l)"                                     \
    " CROSS JOIN LATERAL (VALUES (e.l ->> 'debit'), (e.l ->> 'credit')) AS v(x)"                   \
    " WHERE p.id = ANY($2::text[]) AND p.type = 'hold'))"                                          \
    " ORDER BY id COLLATE \"C\" FOR UPDATE"

/*
 * Add the holds of res to book: rows of (id, status, past expiry, leg
 * number, debit, credit, amount, currency), a row per leg, each hold's
 * rows together and in leg order.
 */
int lq_db_read_holds(const PGresult *res, lq_book *book);

/* Load the account rows of res (LQ_DB_ACCOUNT_COLUMNS) into book. */
int lq_db_read_accounts(const PGresult *res, lq_book *book);

#endif
