/*
 * The PostgreSQL connection: connecting, running statements and pipelines
 * while the broker connection is kept alive (the idle function),
 * classifying failures once, and the array literals that carry a batch's
 * values.  The db*.c files are the only ones that include libpq-fe.h; what
 * they share is in db_internal.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "ledgerq/clock.h"
#include "ledgerq/error.h"

/* How much longer than statement_timeout to wait for a server that says nothing. */
#define SILENCE_MARGIN_MS 5000

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
        /*
         * Another worker stored the same command id first, or opened the same
         * account: run the batch again, it then sees a duplicate, or an
         * account that exists.
         */
        if (constraint &&
            (strcmp(constraint, "payments_pkey") == 0 || strcmp(constraint, "accounts_pkey") == 0))
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
int lq_db_fail(lq_db *db, const char *what, PGresult *res)
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
int lq_db_run(lq_db *db, const char *what, const char *sql, int n_params, const char *const *params,
              PGresult **ret)
{
    PGresult *res = exec_params(db, sql, n_params, params);
    ExecStatusType st = PQresultStatus(res);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        return lq_db_fail(db, what, res);
    if (ret)
        *ret = res;
    else
        PQclear(res);
    return LQ_OK;
}

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
 * queries sent at once and their results read in order, waiting as lq_db_run()
 * does.  Every ret gets its statement's result; on failure none does
 * (nothing to clear), and the server skipped the statements after the one
 * that failed, whose error is recorded and classified as lq_db_run() does.  In
 * an explicit transaction the failure leaves it aborted: the caller rolls
 * back.
 */
int lq_db_pipeline(lq_db *db, const lq_db_step *steps, size_t n)
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
        return lq_db_fail(db, "could not start a pipeline", NULL);
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
    if (db->sent) {
        /* On its way (what the socket does not take yet goes out while the results are awaited). */
        if (PQflush(db->conn) < 0)
            return pipeline_broken(db);
        db->sent(db->sent_arg);
    }
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
        r = lq_db_fail(db, failed_what, failed);
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
void lq_db_rollback(lq_db *db)
{
    /* A lost connection may still be busy: PQexec() would wait for it. */
    if (!db->lost && PQtransactionStatus(db->conn) != PQTRANS_IDLE)
        PQclear(exec_params(db, "ROLLBACK", 0, NULL));
}

int64_t lq_db_int64(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

bool lq_db_bool(const PGresult *res, int row, int col)
{
    return PQgetvalue(res, row, col)[0] == 't';
}

void lq_db_copy(char *dst, size_t len, const PGresult *res, int row, int col)
{
    snprintf(dst, len, "%s", PQgetvalue(res, row, col));
}

void lq_db_array_init(lq_db_array *a)
{
    lq_json_init(&a->text);
    lq_json_append(&a->text, "{", 1);
    a->first = true;
}

static void array_sep(lq_db_array *a)
{
    if (!a->first)
        lq_json_append(&a->text, ",", 1);
    a->first = false;
}

/* Add a text element, quoted; NULL adds SQL NULL. */
void lq_db_array_text(lq_db_array *a, const char *s)
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

void lq_db_array_int(lq_db_array *a, int64_t v)
{
    array_sep(a);
    lq_json_append_int(&a->text, v);
}

/* Close the literal; NULL when an allocation failed.  Owned by a. */
const char *lq_db_array_finish(lq_db_array *a)
{
    lq_json_append(&a->text, "}", 1);
    return a->text.failed ? NULL : a->text.buf;
}

void lq_db_array_release(lq_db_array *a)
{
    lq_json_release(&a->text);
}

char *lq_db_strdup(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : strdup(PQgetvalue(res, row, col));
}

void lq_db_read_account(const PGresult *res, int row, lq_account *a, char *created_at)
{
    memset(a, 0, sizeof(*a));
    lq_db_copy(a->id, sizeof(a->id), res, row, 0);
    lq_db_copy(a->currency, sizeof(a->currency), res, row, 1);
    if (!lq_account_status_parse(PQgetvalue(res, row, 2), &a->status))
        a->status = LQ_STATUS_CLOSED; /* unknown to this release: touch nothing of it */
    a->allow_negative = lq_db_bool(res, row, 3);
    a->overdraft_limit = lq_db_int64(res, row, 4);
    a->max_balance = lq_db_int64(res, row, 5);
    a->debits = lq_db_int64(res, row, 6);
    a->credits = lq_db_int64(res, row, 7);
    a->held_debits = lq_db_int64(res, row, 8);
    a->held_credits = lq_db_int64(res, row, 9);
    a->entries = lq_db_int64(res, row, 10);
    if (PQnfields(res) < 12)
        return;
    lq_db_copy(a->created_at, sizeof(a->created_at), res, row, 11);
    if (created_at)
        lq_db_copy(created_at, LQ_TIMESTAMP_MAX, res, row, 11);
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
    return lq_db_run(db, "could not set timeouts",
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

void lq_db_set_sent(lq_db *db, lq_db_idle_fn sent, void *arg)
{
    db->sent = sent;
    db->sent_arg = arg;
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
