/*
 * The PostgreSQL ledger.  The only file that includes libpq-fe.h.
 *
 * Batches pass their values as PostgreSQL array literals ({"a","b"}) to
 * statements that unnest them: one statement per table per batch, every
 * value a parameter, never spliced into SQL text.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ledgerq/clock.h"
#include "ledgerq/db.h"
#include "ledgerq/error.h"
#include "ledgerq/json.h"
#include "ledgerq/migrations.h"

/* A timestamptz column as RFC 3339 UTC with microseconds. */
#define SQL_UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* Any fixed number: it only has to differ from other users' advisory locks. */
#define MIGRATION_LOCK "7465627471"

/* How much longer than statement_timeout to wait for a server that says nothing. */
#define SILENCE_MARGIN_MS 5000

struct lq_db {
    PGconn *conn;
    char err[512];
    lq_db_idle_fn idle; /* NULL: blocking calls */
    void *idle_arg;
    int idle_ms;
    int silence_ms; /* longest wait for any answer; 0: no bound */
    bool lost;      /* a statement was abandoned: only closing remains */
};

/* Keep the first line of msg, so that errors stay one line. */
static void set_error(lq_db *db, const char *what, const char *msg)
{
    size_t n;

    /* Never NULL from libpq, but GCC 12 with UBSan cannot tell (-Wformat-truncation). */
    if (msg == NULL)
        msg = "";
    n = strcspn(msg, "\n");
    snprintf(db->err, sizeof(db->err), "%s: %.*s", what, (int)n, msg);
}

/*
 * Classify a failed statement once, here: the worker acts on the class.
 * A unique violation of the payments key means another worker stored the
 * same id first; the batch is run again and then sees it as a duplicate.
 */
static int classify(const lq_db *db, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (db->lost || PQstatus(db->conn) != CONNECTION_OK || state == NULL)
        return LQ_ERR_DB_UNAVAILABLE;
    /* Serialization failure, deadlock, statement or lock timeout. */
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "57014") == 0 ||
        strcmp(state, "55P03") == 0)
        return LQ_ERR_DB_RETRY;
    if (strcmp(state, "23505") == 0) {
        const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
        if (constraint && strcmp(constraint, "payments_pkey") == 0)
            return LQ_ERR_DB_RETRY;
        return LQ_ERR_DB_FAILED;
    }
    /* Connection exceptions, shutdown in progress, too many connections. */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
        strcmp(state, "53300") == 0)
        return LQ_ERR_DB_UNAVAILABLE;
    return LQ_ERR_DB_FAILED;
}

/* Record and classify a failure; consumes res. */
static int fail(lq_db *db, const char *what, PGresult *res)
{
    int r;

    if (db->lost) {
        PQclear(res);
        return LQ_ERR_DB_UNAVAILABLE; /* the error says why already */
    }
    set_error(db, what, res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn));
    r = classify(db, res);
    PQclear(res);
    return r;
}

/*
 * Wait until libpq holds the next result (or knows the connection failed:
 * PQgetResult() then reports it), sending what is left of the queries
 * meanwhile (pipelines run non-blocking) and calling the idle function
 * every idle_ms.  A server silent for longer than silence_ms is given up
 * on: the connection is marked lost and false returned.
 */
static bool wait_result(lq_db *db)
{
    int64_t start = lq_clock_ms(), last_idle = start;

    for (;;) {
        int sending = PQflush(db->conn);
        struct pollfd pfd = {.fd = PQsocket(db->conn), .events = POLLIN};
        int64_t now = lq_clock_ms();
        int wait = db->idle ? db->idle_ms : -1, ready;

        if (sending < 0 || (sending == 0 && !PQisBusy(db->conn)))
            return true;
        if (db->silence_ms > 0 && now - start >= db->silence_ms) {
            snprintf(db->err, sizeof(db->err),
                     "no answer from the database within %d ms: giving up on the connection",
                     db->silence_ms);
            db->lost = true;
            return false;
        }
        if (db->silence_ms > 0 && (wait < 0 || start + db->silence_ms - now < wait))
            wait = (int)(start + db->silence_ms - now);
        if (sending)
            pfd.events |= POLLOUT;
        ready = poll(&pfd, 1, wait);
        if (ready < 0 && errno != EINTR)
            return true;
        if (ready > 0 && (pfd.revents & ~POLLOUT) && !PQconsumeInput(db->conn))
            return true;
        if (db->idle && lq_clock_ms() - last_idle >= db->idle_ms) {
            db->idle(db->idle_arg);
            last_idle = lq_clock_ms();
        }
    }
}

/*
 * Wait for the answer to the statement just sent and return its last
 * result as PQexec() would (NULL when the connection failed or was given
 * up on).
 */
static PGresult *wait_answer(lq_db *db)
{
    PGresult *res, *last = NULL;

    for (;;) {
        if (!wait_result(db)) {
            PQclear(last);
            return NULL;
        }
        res = PQgetResult(db->conn);
        if (res == NULL)
            return last;
        PQclear(last);
        last = res;
    }
}

/* PQexecParams(), answering the idle function while the server works. */
static PGresult *exec_params(lq_db *db, const char *sql, int n_params, const char *const *params)
{
    if (db->lost)
        return NULL;
    if (db->idle == NULL)
        return PQexecParams(db->conn, sql, n_params, NULL, params, NULL, NULL, 0);
    if (!PQsendQueryParams(db->conn, sql, n_params, NULL, params, NULL, NULL, 0))
        return NULL;
    return wait_answer(db);
}

/*
 * Run a parameterised statement (text parameters).  On success stores the
 * result in *ret (caller PQclear()s; ret may be NULL to discard it).
 */
static int run(lq_db *db, const char *what, const char *sql, int n_params,
               const char *const *params, PGresult **ret)
{
    PGresult *res = exec_params(db, sql, n_params, params);
    ExecStatusType st = PQresultStatus(res);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        return fail(db, what, res);
    if (ret)
        *ret = res;
    else
        PQclear(res);
    return LQ_OK;
}

/* One statement of a pipeline. */
typedef struct step {
    const char *what; /* how a failure's message starts */
    const char *sql;
    int n_params;
    const char *const *params;
    PGresult **ret; /* gets the result (caller PQclear()s); NULL: discard it */
} step;

/*
 * Give up on a connection left mid-pipeline: it cannot run a statement
 * before every result is read, so it is good only for closing.
 */
static int pipeline_broken(lq_db *db)
{
    if (!db->lost)
        set_error(db, "the database connection was lost", PQerrorMessage(db->conn));
    db->lost = true;
    return LQ_ERR_DB_UNAVAILABLE;
}

/*
 * The next result of a pipeline: a statement's result, NULL after each
 * statement's results, a PGRES_PIPELINE_SYNC result at the end.  False
 * when the connection failed.
 */
static bool pipeline_result(lq_db *db, PGresult **ret)
{
    if (!wait_result(db))
        return false;
    *ret = PQgetResult(db->conn);
    if (PQstatus(db->conn) != CONNECTION_OK) {
        PQclear(*ret);
        return false;
    }
    return true;
}

/*
 * Run the statements in one round trip: libpq's pipeline mode, the
 * queries sent at once and their results read in order, waiting as run()
 * does.  Every ret gets its statement's result; on failure none does
 * (nothing to clear), and the server skipped the statements after the one
 * that failed, whose error is recorded and classified as run() does.  In
 * an explicit transaction the failure leaves it aborted: the caller rolls
 * back.
 */
static int run_pipeline(lq_db *db, const step *steps, size_t n)
{
    PGresult *res, *failed = NULL;
    const char *failed_what = NULL;
    size_t done = 0;
    int r = LQ_OK;

    for (size_t i = 0; i < n; i++) {
        if (steps[i].ret)
            *steps[i].ret = NULL;
    }
    if (db->lost)
        return LQ_ERR_DB_UNAVAILABLE;
    if (!PQenterPipelineMode(db->conn))
        return fail(db, "could not start a pipeline", NULL);
    /* Non-blocking: results are read while the queries are still sent. */
    if (PQsetnonblocking(db->conn, 1) != 0)
        return pipeline_broken(db);
    for (size_t i = 0; i < n; i++) {
        if (!PQsendQueryParams(db->conn, steps[i].sql, steps[i].n_params, NULL, steps[i].params,
                               NULL, NULL, 0))
            return pipeline_broken(db);
    }
    if (!PQpipelineSync(db->conn))
        return pipeline_broken(db);
    for (; done < n; done++) {
        ExecStatusType st;
        if (!pipeline_result(db, &res) || res == NULL)
            goto broken;
        st = PQresultStatus(res);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            if (steps[done].ret)
                *steps[done].ret = res;
            else
                PQclear(res);
        } else if (st != PGRES_PIPELINE_ABORTED && failed == NULL) {
            failed = res;
            failed_what = steps[done].what;
        } else {
            PQclear(res);
        }
        /* A statement's results end with NULL. */
        if (!pipeline_result(db, &res))
            goto broken;
        if (res != NULL) {
            PQclear(res);
            goto broken;
        }
    }
    if (!pipeline_result(db, &res))
        goto broken;
    if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
        PQclear(res);
        goto broken;
    }
    PQclear(res);
    if (!PQexitPipelineMode(db->conn) || PQsetnonblocking(db->conn, 0) != 0)
        goto broken;
    if (failed)
        r = fail(db, failed_what, failed);
    failed = NULL;
    goto out;
broken:
    r = pipeline_broken(db);
out:
    PQclear(failed);
    if (r != LQ_OK) {
        for (size_t i = 0; i < n; i++) {
            if (steps[i].ret) {
                PQclear(*steps[i].ret);
                *steps[i].ret = NULL;
            }
        }
    }
    return r;
}

/* Abandon the current transaction, if any; errors are moot by then. */
static void rollback(lq_db *db)
{
    /* A lost connection may still be busy: PQexec() would wait for it. */
    if (!db->lost && PQtransactionStatus(db->conn) != PQTRANS_IDLE)
        PQclear(exec_params(db, "ROLLBACK", 0, NULL));
}

static int64_t get_int64(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static bool get_bool(const PGresult *res, int row, int col)
{
    return PQgetvalue(res, row, col)[0] == 't';
}

static void copy_value(char *dst, size_t len, const PGresult *res, int row, int col)
{
    snprintf(dst, len, "%s", PQgetvalue(res, row, col));
}

/* A PostgreSQL array literal under construction. */
typedef struct pg_array {
    lq_json text; /* used as a growable buffer only */
    bool first;
} pg_array;

static void array_init(pg_array *a)
{
    lq_json_init(&a->text);
    lq_json_append(&a->text, "{", 1);
    a->first = true;
}

static void array_sep(pg_array *a)
{
    if (!a->first)
        lq_json_append(&a->text, ",", 1);
    a->first = false;
}

/* Add a text element, quoted; NULL adds SQL NULL. */
static void array_text(pg_array *a, const char *s)
{
    array_sep(a);
    if (s == NULL) {
        lq_json_append(&a->text, "NULL", 4);
        return;
    }
    lq_json_append(&a->text, "\"", 1);
    while (*s) {
        size_t plain = strcspn(s, "\"\\");
        lq_json_append(&a->text, s, plain);
        s += plain;
        if (*s) {
            lq_json_append(&a->text, "\\", 1);
            lq_json_append(&a->text, s, 1);
            s++;
        }
    }
    lq_json_append(&a->text, "\"", 1);
}

static void array_int(pg_array *a, int64_t v)
{
    char num[24];
    int len = snprintf(num, sizeof(num), "%" PRId64, v);

    array_sep(a);
    lq_json_append(&a->text, num, (size_t)len);
}

/* Close the literal; NULL when an allocation failed.  Owned by a. */
static const char *array_finish(pg_array *a)
{
    lq_json_append(&a->text, "}", 1);
    return a->text.failed ? NULL : a->text.buf;
}

static void array_release(pg_array *a)
{
    lq_json_release(&a->text);
}

/* Settings given before the URL: the URL and PG* variables override them. */
static void add_default(const char **keys, const char **values, int *n, const char *key,
                        const char *env, const char *value)
{
    if (env && getenv(env))
        return;
    keys[*n] = key;
    values[*n] = value;
    (*n)++;
}

/* Server notices ("relation exists, skipping") are not for our users. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int lq_db_connect(const char *url, lq_db **ret, char *err, size_t err_len)
{
    const char *keys[10], *values[10];
    int n = 0;
    lq_db *db = calloc(1, sizeof(*db));

    if (db == NULL) {
        snprintf(err, err_len, "could not connect to the database: out of memory");
        return LQ_ERR_NOMEM;
    }
    add_default(keys, values, &n, "application_name", "PGAPPNAME", "ledgerq");
    add_default(keys, values, &n, "connect_timeout", "PGCONNECT_TIMEOUT", "10");
    /* Notice a dead server on an idle connection within about a minute. */
    add_default(keys, values, &n, "keepalives_idle", NULL, "30");
    add_default(keys, values, &n, "keepalives_interval", NULL, "10");
    /* A server that stops answering mid-statement fails the call instead of hanging it. */
    add_default(keys, values, &n, "tcp_user_timeout", NULL, "20000");
    keys[n] = "dbname";
    values[n] = url;
    n++;
    keys[n] = NULL;
    values[n] = NULL;

    db->conn = PQconnectdbParams(keys, values, 1);
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
        const char *msg = db->conn ? PQerrorMessage(db->conn) : "out of memory";
        size_t len = strcspn(msg, "\n");
        snprintf(err, err_len, "could not connect to the database: %.*s", (int)len, msg);
        lq_db_close(db);
        return LQ_ERR_DB_UNAVAILABLE;
    }
    PQsetNoticeProcessor(db->conn, ignore_notice, NULL);
    *ret = db;
    return LQ_OK;
}

int lq_db_set_timeouts(lq_db *db, int statement_ms, int lock_ms)
{
    char statement[16], lock[16];
    const char *params[2] = {statement, lock};

    snprintf(statement, sizeof(statement), "%d", statement_ms);
    snprintf(lock, sizeof(lock), "%d", lock_ms);
    db->silence_ms = statement_ms > 0 ? statement_ms + SILENCE_MARGIN_MS : 0;
    return run(db, "could not set timeouts",
               "SELECT set_config('statement_timeout', $1, false),"
               " set_config('lock_timeout', $2, false)",
               2, params, NULL);
}

bool lq_db_alive(lq_db *db)
{
    /* Only between transactions: mid-transaction input belongs to a statement. */
    if (PQtransactionStatus(db->conn) == PQTRANS_IDLE && !PQconsumeInput(db->conn))
        set_error(db, "the database connection was lost", PQerrorMessage(db->conn));
    return !db->lost && PQstatus(db->conn) == CONNECTION_OK;
}

void lq_db_set_idle(lq_db *db, lq_db_idle_fn idle, void *arg, int interval_ms)
{
    db->idle = idle;
    db->idle_arg = arg;
    db->idle_ms = interval_ms > 0 ? interval_ms : 100;
}

lq_db *lq_db_close(lq_db *db)
{
    if (db == NULL)
        return NULL;
    PQfinish(db->conn);
    free(db);
    return NULL;
}

const char *lq_db_error(const lq_db *db)
{
    return db ? db->err : "";
}

/* Apply one migration in its own transaction, recording it. */
static int apply_migration(lq_db *db, const lq_migration *m)
{
    char version[16];
    const char *params[2] = {version, m->name};
    PGresult *res;
    int r;

    snprintf(version, sizeof(version), "%d", m->version);
    r = run(db, "begin migration", "BEGIN", 0, NULL, NULL);
    if (r != LQ_OK)
        return r;
    /* The simple protocol runs a file of several statements in one call. */
    res = PQexec(db->conn, m->sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        char what[128];
        snprintf(what, sizeof(what), "migration %03d_%s", m->version, m->name);
        r = fail(db, what, res);
        goto out;
    }
    PQclear(res);
    r = run(db, "record migration",
            "INSERT INTO ledgerq_migrations (version, name) VALUES ($1::int, $2)", 2, params, NULL);
    if (r != LQ_OK)
        goto out;
    r = run(db, "commit migration", "COMMIT", 0, NULL, NULL);
out:
    if (r != LQ_OK)
        rollback(db);
    return r;
}

int lq_db_migrate(lq_db *db, int *ret_applied)
{
    int applied = 0, r;
    PGresult *res = NULL;

    /* Many pods may run `migrate` at once: one at a time. */
    r = run(db, "take the migration lock", "SELECT pg_advisory_lock(" MIGRATION_LOCK ")", 0, NULL,
            NULL);
    if (r != LQ_OK)
        return r;
    r = run(db, "create the migrations table",
            "CREATE TABLE IF NOT EXISTS ledgerq_migrations ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())",
            0, NULL, NULL);
    if (r != LQ_OK)
        goto out;
    r = run(db, "read applied migrations", "SELECT version FROM ledgerq_migrations", 0, NULL, &res);
    if (r != LQ_OK)
        goto out;
    for (size_t i = 0; i < lq_migrations_count; i++) {
        bool done = false;
        for (int row = 0; row < PQntuples(res); row++)
            done = done || get_int64(res, row, 0) == lq_migrations[i].version;
        if (done)
            continue;
        r = apply_migration(db, &lq_migrations[i]);
        if (r != LQ_OK)
            goto out;
        applied++;
    }
out:
    PQclear(res);
    PQclear(PQexec(db->conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")"));
    if (r == LQ_OK && ret_applied)
        *ret_applied = applied;
    return r;
}

int lq_db_account_open(lq_db *db, const lq_account *a)
{
    const char *params[3] = {a->id, a->currency, a->allow_negative ? "true" : "false"};
    PGresult *res = PQexecParams(db->conn,
                                 "INSERT INTO accounts (id, currency, allow_negative)"
                                 " VALUES ($1, $2, $3::boolean)",
                                 3, NULL, params, NULL, NULL, 0);
    const char *state;

    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        return LQ_OK;
    }
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state && strcmp(state, "23505") == 0) {
        snprintf(db->err, sizeof(db->err), "account \"%s\" already exists", a->id);
        PQclear(res);
        return LQ_ERR_EXISTS;
    }
    return fail(db, "could not open the account", res);
}

int lq_db_account_import(lq_db *db, const lq_account *accounts, size_t n, size_t *ret_failed)
{
    pg_array ids, currencies, negatives;
    const char *params[3];
    PGresult *res = NULL;
    int r;

    array_init(&ids);
    array_init(&currencies);
    array_init(&negatives);
    for (size_t i = 0; i < n; i++) {
        array_text(&ids, accounts[i].id);
        array_text(&currencies, accounts[i].currency);
        array_text(&negatives, accounts[i].allow_negative ? "t" : "f");
    }
    params[0] = array_finish(&ids);
    params[1] = array_finish(&currencies);
    params[2] = array_finish(&negatives);
    if (!params[0] || !params[1] || !params[2]) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    r = run(db, "could not import accounts",
            "INSERT INTO accounts (id, currency, allow_negative)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[])",
            3, params, NULL);
    if (r == LQ_ERR_DB_FAILED) {
        /* Name an id that is taken, if that is what failed. */
        if (run(db, "could not import accounts",
                "SELECT id FROM accounts WHERE id = ANY($1::text[]) ORDER BY id LIMIT 1", 1, params,
                &res) == LQ_OK &&
            PQntuples(res) == 1) {
            for (size_t i = 0; i < n; i++) {
                if (strcmp(accounts[i].id, PQgetvalue(res, 0, 0)) == 0) {
                    snprintf(db->err, sizeof(db->err), "account \"%s\" already exists",
                             accounts[i].id);
                    if (ret_failed)
                        *ret_failed = i;
                    r = LQ_ERR_EXISTS;
                    break;
                }
            }
        }
    }
out:
    PQclear(res);
    array_release(&ids);
    array_release(&currencies);
    array_release(&negatives);
    return r;
}

#define ACCOUNT_COLUMNS "id, currency, allow_negative, debits, credits, " SQL_UTC("created_at")

static void read_account(const PGresult *res, int row, lq_account *a, char *created_at)
{
    memset(a, 0, sizeof(*a));
    copy_value(a->id, sizeof(a->id), res, row, 0);
    copy_value(a->currency, sizeof(a->currency), res, row, 1);
    a->allow_negative = get_bool(res, row, 2);
    a->debits = get_int64(res, row, 3);
    a->credits = get_int64(res, row, 4);
    if (created_at)
        copy_value(created_at, LQ_TIMESTAMP_MAX, res, row, 5);
}

int lq_db_account_get(lq_db *db, const char *id, lq_account *ret,
                      char ret_created_at[LQ_TIMESTAMP_MAX])
{
    PGresult *res = NULL;
    int r = run(db, "could not read the account",
                "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE id = $1", 1, &id, &res);

    if (r != LQ_OK)
        return r;
    if (PQntuples(res) == 0) {
        snprintf(db->err, sizeof(db->err), "account \"%s\" does not exist", id);
        r = LQ_ERR_NOT_FOUND;
    } else {
        read_account(res, 0, ret, ret_created_at);
    }
    PQclear(res);
    return r;
}

int lq_db_account_list(lq_db *db, lq_db_account_fn fn, void *arg)
{
    PGresult *res = NULL;
    int r =
        run(db, "could not list accounts",
            "SELECT " ACCOUNT_COLUMNS " FROM accounts ORDER BY id COLLATE \"C\"", 0, NULL, &res);

    if (r != LQ_OK)
        return r;
    for (int row = 0; row < PQntuples(res); row++) {
        lq_account a;
        char created_at[LQ_TIMESTAMP_MAX];
        read_account(res, row, &a, created_at);
        fn(&a, created_at, arg);
    }
    PQclear(res);
    return LQ_OK;
}

static char *dup_value(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : strdup(PQgetvalue(res, row, col));
}

int lq_db_payment_get(lq_db *db, const char *id, lq_payment_record *ret)
{
    PGresult *res = NULL, *legs = NULL;
    lq_payment_record rec;
    int r;

    memset(&rec, 0, sizeof(rec));
    r = run(db, "could not read the payment",
            "SELECT id, status, reason, detail, " SQL_UTC(
                "processed_at") ", reference,"
                                " metadata::text FROM payments WHERE id = $1",
            1, &id, &res);
    if (r != LQ_OK)
        goto out;
    if (PQntuples(res) == 0) {
        snprintf(db->err, sizeof(db->err), "payment \"%s\" is unknown", id);
        r = LQ_ERR_NOT_FOUND;
        goto out;
    }
    copy_value(rec.id, sizeof(rec.id), res, 0, 0);
    rec.outcome.result = strcmp(PQgetvalue(res, 0, 1), "applied") == 0
                             ? LQ_OK
                             : lq_error_from_code(PQgetvalue(res, 0, 2));
    copy_value(rec.outcome.detail, sizeof(rec.outcome.detail), res, 0, 3);
    copy_value(rec.outcome.processed_at, sizeof(rec.outcome.processed_at), res, 0, 4);
    rec.reference = dup_value(res, 0, 5);
    rec.metadata = dup_value(res, 0, 6);
    /* jsonb keeps amounts as exact numerics: ->> gives their digits. */
    r = run(db, "could not read the payment's legs",
            "SELECT l->>'debit', l->>'credit', l->>'amount', l->>'currency'"
            " FROM payments, jsonb_array_elements(legs) WITH ORDINALITY AS e(l, n)"
            " WHERE id = $1 ORDER BY n",
            1, &id, &legs);
    if (r != LQ_OK)
        goto out;
    rec.n_legs = (size_t)PQntuples(legs);
    rec.legs = calloc(rec.n_legs ? rec.n_legs : 1, sizeof(*rec.legs));
    if (rec.legs == NULL) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < rec.n_legs; i++) {
        copy_value(rec.legs[i].debit, sizeof(rec.legs[i].debit), legs, (int)i, 0);
        copy_value(rec.legs[i].credit, sizeof(rec.legs[i].credit), legs, (int)i, 1);
        rec.legs[i].amount = get_int64(legs, (int)i, 2);
        copy_value(rec.legs[i].currency, sizeof(rec.legs[i].currency), legs, (int)i, 3);
    }
    *ret = rec;
    memset(&rec, 0, sizeof(rec));
out:
    lq_payment_record_release(&rec);
    PQclear(legs);
    PQclear(res);
    return r;
}

void lq_payment_record_release(lq_payment_record *r)
{
    free(r->legs);
    free(r->reference);
    free(r->metadata);
    r->legs = NULL;
    r->reference = NULL;
    r->metadata = NULL;
}

/* One invariant of contract section 8: a query listing its violations. */
typedef struct audit_check {
    const char *invariant;
    const char *sql; /* each row: one column, the violation's detail */
} audit_check;

/*
 * postings is a view of the legs of applied payments (sql/002): an applied
 * payment has exactly its legs posted and a rejected one none by
 * construction.  What the postings table's constraints enforced before is
 * checked here instead.
 */
static const audit_check audit_checks[] = {
    {"posting_balanced",
     "SELECT format('posting %s leg %s: %s', p.payment_id, p.leg,"
     "  CASE WHEN p.debit IS NULL OR p.credit IS NULL OR p.currency IS NULL"
     "         THEN 'the leg lacks a debit, credit or currency'"
     "       WHEN p.amount IS NULL THEN 'the amount is not a whole number of minor units'"
     "       WHEN p.amount <= 0 THEN 'amount ' || p.amount || ' is not positive'"
     "       WHEN p.debit = p.credit THEN 'debits and credits the same account'"
     "       WHEN d.id IS NULL THEN format('debit account %s does not exist', p.debit)"
     "       WHEN c.id IS NULL THEN format('credit account %s does not exist', p.credit)"
     "       ELSE format('currency %s differs from account %s (%s) or %s (%s)',"
     "                   p.currency, d.id, d.currency, c.id, c.currency) END)"
     " FROM postings p LEFT JOIN accounts d ON d.id = p.debit"
     " LEFT JOIN accounts c ON c.id = p.credit"
     " WHERE p.debit IS NULL OR p.credit IS NULL OR p.currency IS NULL OR p.amount IS NULL"
     "    OR p.amount <= 0 OR p.debit = p.credit OR d.id IS NULL OR c.id IS NULL"
     "    OR d.currency <> p.currency OR c.currency <> p.currency"
     " ORDER BY p.payment_id, p.leg LIMIT 1000"},
    {"currency_sums_to_zero",
     "SELECT format('currency %s: balances sum to %s', currency, sum(credits - debits))"
     " FROM accounts GROUP BY currency HAVING sum(credits - debits) <> 0 ORDER BY currency"},
    {"totals_match_postings",
     "SELECT format('account %s: stored debits %s credits %s, postings debit %s credit %s',"
     "              a.id, a.debits, a.credits, coalesce(d.total, 0), coalesce(c.total, 0))"
     " FROM accounts a"
     " LEFT JOIN (SELECT debit AS id, sum(amount) AS total FROM postings GROUP BY debit) d"
     "   ON d.id = a.id"
     " LEFT JOIN (SELECT credit AS id, sum(amount) AS total FROM postings GROUP BY credit) c"
     "   ON c.id = a.id"
     " WHERE a.debits <> coalesce(d.total, 0) OR a.credits <> coalesce(c.total, 0)"
     " ORDER BY a.id LIMIT 1000"},
    {"no_forbidden_overdraft",
     "SELECT format('account %s: balance %s without allow_negative', id, credits - debits)"
     " FROM accounts WHERE NOT allow_negative AND credits < debits ORDER BY id LIMIT 1000"},
    {"one_outcome_per_payment",
     "SELECT format('payment %s: %s stored outcomes', id, count(*))"
     " FROM payments GROUP BY id HAVING count(*) <> 1 ORDER BY id LIMIT 1000"},
};

int lq_db_audit(lq_db *db, lq_db_violation_fn fn, void *arg, size_t *ret_violations)
{
    size_t violations = 0;
    int r;

    /* One snapshot for all checks: sums and postings seen at the same instant. */
    r = run(db, "could not start the audit", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0,
            NULL, NULL);
    if (r != LQ_OK)
        return r;
    for (size_t i = 0; i < sizeof(audit_checks) / sizeof(audit_checks[0]); i++) {
        PGresult *res = NULL;
        r = run(db, audit_checks[i].invariant, audit_checks[i].sql, 0, NULL, &res);
        if (r != LQ_OK)
            goto out;
        for (int row = 0; row < PQntuples(res); row++) {
            fn(audit_checks[i].invariant, PQgetvalue(res, row, 0), arg);
            violations++;
        }
        PQclear(res);
    }
    r = run(db, "could not finish the audit", "COMMIT", 0, NULL, NULL);
out:
    rollback(db);
    if (r == LQ_OK && ret_violations)
        *ret_violations = violations;
    return r;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Every account the items name, each once, as an array literal in ids.
 * Stored items too: which are stored is known only once the look-up ran,
 * in the same round trip as the lock.  Locking a redelivered payment's
 * accounts as well costs little, and keeps the one lock order.
 */
static int account_ids(const lq_item *items, size_t n, pg_array *ids)
{
    const char **names = NULL;
    size_t n_names = 0, cap = 0;

    for (size_t i = 0; i < n; i++)
        cap += 2 * items[i].payment->n_legs;
    names = malloc((cap ? cap : 1) * sizeof(*names));
    if (names == NULL)
        return LQ_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const lq_payment *p = items[i].payment;
        for (size_t l = 0; l < p->n_legs; l++) {
            names[n_names++] = p->legs[l].debit;
            names[n_names++] = p->legs[l].credit;
        }
    }
    qsort(names, n_names, sizeof(*names), compare_strings);
    for (size_t i = 0; i < n_names; i++) {
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
            array_text(ids, names[i]);
    }
    free(names);
    return LQ_OK;
}

/* Fill the items' stored outcomes from the look-up's rows. */
static int read_stored(const PGresult *res, lq_item *items, size_t n)
{
    for (int row = 0; row < PQntuples(res); row++) {
        int64_t ord = get_int64(res, row, 0);
        lq_item *it;
        if (ord < 1 || (size_t)ord > n)
            return LQ_ERR_INTERNAL;
        it = &items[ord - 1];
        it->stored = true;
        it->stored_same = get_bool(res, row, 5);
        memset(&it->stored_outcome, 0, sizeof(it->stored_outcome));
        it->stored_outcome.result = strcmp(PQgetvalue(res, row, 1), "applied") == 0
                                        ? LQ_OK
                                        : lq_error_from_code(PQgetvalue(res, row, 2));
        copy_value(it->stored_outcome.detail, sizeof(it->stored_outcome.detail), res, row, 3);
        copy_value(it->stored_outcome.processed_at, sizeof(it->stored_outcome.processed_at), res,
                   row, 4);
    }
    return LQ_OK;
}

enum { LOAD_BEGIN, LOAD_NOW, LOAD_LOOKUP, LOAD_LOCK, LOAD_N };

int lq_db_batch_load(lq_db *db, lq_item *items, size_t n, lq_book *book,
                     char ret_now[LQ_TIMESTAMP_MAX])
{
    pg_array ids, canons, accounts;
    const char *params[2], *account_param;
    PGresult *now = NULL, *found = NULL, *locked = NULL;
    int r;

    lq_book_clear(book);
    array_init(&ids);
    array_init(&canons);
    array_init(&accounts);
    for (size_t i = 0; i < n; i++) {
        items[i].stored = false;
        items[i].stored_same = false;
        array_text(&ids, items[i].payment->id);
        array_text(&canons, items[i].payment->canonical);
    }
    r = account_ids(items, n, &accounts);
    if (r != LQ_OK)
        goto out;
    params[0] = array_finish(&ids);
    params[1] = array_finish(&canons);
    account_param = array_finish(&accounts);
    if (!params[0] || !params[1] || !account_param) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    {
        const step steps[LOAD_N] = {
            [LOAD_BEGIN] = {"could not begin a batch", "BEGIN", 0, NULL, NULL},
            /*
             * now() is the transaction's start: the processed_at of every
             * new outcome.  The batch's joins all go through primary keys,
             * a few hundred probes whatever the tables' sizes; with small
             * tables the planner would rather hash a whole table per batch
             * (the account totals update): keep it to nested loops for
             * this transaction.
             */
            [LOAD_NOW] = {"could not read the time",
                          "SELECT " SQL_UTC("now()") ", set_config('enable_hashjoin', 'off', true),"
                                                     " set_config('enable_mergejoin', 'off', true)",
                          0, NULL, &now},
            /*
             * One index probe per id: a lateral subquery with LIMIT is
             * never flattened into a join, which the planner could
             * otherwise run as a hash join over the whole (ever growing)
             * payments table.
             */
            [LOAD_LOOKUP] = {"could not look up payment ids",
                             "SELECT c.ord, p.status, p.reason, coalesce(p.detail, ''), " SQL_UTC(
                                 "p.processed_at") ","
                                                   " p.fingerprint = sha256(convert_to(c.canon, "
                                                   "'UTF8'))"
                                                   " FROM unnest($1::text[], $2::text[])"
                                                   " WITH ORDINALITY AS c(id, canon, ord)"
                                                   " CROSS JOIN LATERAL (SELECT * FROM payments"
                                                   " WHERE payments.id = c.id LIMIT 1) AS p",
                             2, params, &found},
            /*
             * Every worker locks in the same (C collation) order, so two
             * batches never wait for each other in a cycle.  Rows are
             * locked as the sorted output is produced.
             */
            [LOAD_LOCK] = {"could not lock accounts",
                           "SELECT id, currency, allow_negative, debits, credits FROM accounts"
                           " WHERE id = ANY($1::text[]) ORDER BY id COLLATE \"C\" FOR UPDATE",
                           1, &account_param, &locked},
        };
        /* One round trip. */
        r = run_pipeline(db, steps, LOAD_N);
    }
    if (r != LQ_OK)
        goto out;
    copy_value(ret_now, LQ_TIMESTAMP_MAX, now, 0, 0);
    r = read_stored(found, items, n);
    if (r != LQ_OK)
        goto out;
    for (int row = 0; row < PQntuples(locked); row++) {
        lq_account a;
        read_account(locked, row, &a, NULL);
        r = lq_book_add(book, &a);
        if (r != LQ_OK)
            goto out;
    }
out:
    PQclear(locked);
    PQclear(found);
    PQclear(now);
    array_release(&accounts);
    array_release(&canons);
    array_release(&ids);
    if (r != LQ_OK)
        rollback(db);
    return r;
}

/* The requested legs as the JSON stored in payments.legs. */
static char *legs_json(const lq_payment *p)
{
    lq_json w;

    lq_json_init(&w);
    lq_json_array_begin(&w);
    for (size_t l = 0; l < p->n_legs; l++) {
        lq_json_object_begin(&w);
        lq_json_key(&w, "debit");
        lq_json_string(&w, p->legs[l].debit);
        lq_json_key(&w, "credit");
        lq_json_string(&w, p->legs[l].credit);
        lq_json_key(&w, "amount");
        lq_json_int(&w, p->legs[l].amount);
        lq_json_key(&w, "currency");
        lq_json_string(&w, p->legs[l].currency);
        lq_json_object_end(&w);
    }
    lq_json_array_end(&w);
    return lq_json_steal(&w);
}

enum { PAY_ID, PAY_CANON, PAY_STATUS, PAY_REASON, PAY_DETAIL, PAY_LEGS, PAY_REF, PAY_META, PAY_N };
enum { ACC_ID, ACC_DEBITS, ACC_CREDITS, ACC_N };

int lq_db_batch_store(lq_db *db, const lq_item *items, size_t n, const lq_book *book)
{
    pg_array pay[PAY_N], acc[ACC_N];
    const char *pay_params[PAY_N], *acc_params[ACC_N];
    size_t n_pay = 0, n_acc = 0;
    int r = LQ_OK;

    for (int k = 0; k < PAY_N; k++)
        array_init(&pay[k]);
    for (int k = 0; k < ACC_N; k++)
        array_init(&acc[k]);

    for (size_t i = 0; i < n; i++) {
        const lq_item *it = &items[i];
        const lq_payment *p = it->payment;
        bool applied = it->outcome.result == LQ_OK;
        char *legs;
        if (!it->insert)
            continue;
        legs = legs_json(p);
        if (legs == NULL) {
            r = LQ_ERR_NOMEM;
            goto out;
        }
        array_text(&pay[PAY_ID], p->id);
        array_text(&pay[PAY_CANON], p->canonical);
        array_text(&pay[PAY_STATUS], applied ? "applied" : "rejected");
        array_text(&pay[PAY_REASON], applied ? NULL : lq_error_code(it->outcome.result));
        array_text(&pay[PAY_DETAIL], it->outcome.detail[0] ? it->outcome.detail : NULL);
        array_text(&pay[PAY_LEGS], legs);
        array_text(&pay[PAY_REF], p->reference);
        array_text(&pay[PAY_META], p->metadata);
        free(legs);
        n_pay++;
    }
    for (size_t i = 0; i < book->n; i++) {
        const lq_account *a = &book->accounts[i];
        if (!a->changed)
            continue;
        array_text(&acc[ACC_ID], a->id);
        array_int(&acc[ACC_DEBITS], a->debits);
        array_int(&acc[ACC_CREDITS], a->credits);
        n_acc++;
    }
    for (int k = 0; k < PAY_N; k++)
        pay_params[k] = array_finish(&pay[k]);
    for (int k = 0; k < ACC_N; k++)
        acc_params[k] = array_finish(&acc[k]);
    for (int k = 0; k < PAY_N; k++)
        r = pay_params[k] ? r : LQ_ERR_NOMEM;
    for (int k = 0; k < ACC_N; k++)
        r = acc_params[k] ? r : LQ_ERR_NOMEM;
    if (r != LQ_OK)
        goto out;

    {
        step steps[3];
        size_t n_steps = 0;

        if (n_pay > 0)
            steps[n_steps++] = (step){
                "could not store outcomes",
                "INSERT INTO payments (id, fingerprint, status, reason, detail, legs, reference,"
                " metadata, processed_at)"
                " SELECT id, sha256(convert_to(canon, 'UTF8')), status, reason, detail,"
                " legs::jsonb, reference, metadata::jsonb, now()"
                " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
                " $6::text[], $7::text[], $8::text[])"
                " AS t(id, canon, status, reason, detail, legs, reference, metadata)",
                PAY_N, pay_params, NULL};
        if (n_acc > 0)
            steps[n_steps++] = (step){
                "could not update account totals",
                "UPDATE accounts AS a SET debits = u.debits, credits = u.credits"
                " FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(id, debits, credits)"
                " WHERE a.id = u.id",
                ACC_N, acc_params, NULL};
        steps[n_steps++] = (step){"could not commit the batch", "COMMIT", 0, NULL, NULL};
        /* One round trip: a failure skips the rest, COMMIT included. */
        r = run_pipeline(db, steps, n_steps);
    }
out:
    for (int k = 0; k < PAY_N; k++)
        array_release(&pay[k]);
    for (int k = 0; k < ACC_N; k++)
        array_release(&acc[k]);
    if (r != LQ_OK)
        rollback(db);
    return r;
}
