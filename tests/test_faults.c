/*
 * Fault tests: real processes killed and restarted while payments flow.
 *
 * Three workers apply a workload of more than 20,000 payments (100
 * accounts, random pairs and amounts, every tenth payment published twice)
 * that a background publisher sends in chunks, while the test kills a
 * worker, RabbitMQ or PostgreSQL, or stops a worker with SIGTERM.  A chunk
 * whose publish fails is published again: the same ids again are harmless
 * by design.
 *
 * Afterwards, from the user's side: every payment has exactly one stored
 * outcome with the legs it was sent with; each got at least one result
 * event per time it was sent, all of them telling its one stored outcome,
 * and at least one of them says it was processed for the first time
 * (duplicate: false), also when the events of a committed batch were never
 * confirmed (then the first outcome may come again, the same); the balances equal what the stored
 * outcomes add up to (recomputed here from the generated payments), so nothing was applied twice;
 * `ledgerq audit` passes; the work queue is empty with no consumer (nothing was left unacked); and
 * the dead-letter queue holds nothing but the messages that deserve it for reasons of their own.
 *
 * These tests stop and kill the services of the test stack
 * (LEDGERQ_TEST_STACK_SCRIPT): meson runs them alone (is_parallel: false),
 * and each restores the stack when it ends, passed or failed.  Only
 * processes a test started are ever killed: workers by their pid, the
 * services through the stack script that started them.
 */
#include <check.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support.h"
#include "workload.h"

#define N_PAYMENTS      20000
#define DUPLICATE_EVERY 10  /* every tenth payment is published twice, same content */
#define CHUNK           500 /* payments per publisher file */
#define N_WORKERS       3
#define SHUTDOWN_MS     10000
/* Longest wait for the workload to be applied once the publisher is done. */
#define SETTLE_S 180
/* What a worker logs when messages come back from a consumer that went away. */
#define REDELIVERED_LOG "\"msg\":\"redelivered"

typedef struct payment {
    char id[40];
    int debit, credit; /* account index */
    int64_t amount;
    int n_sent;   /* planned publishes of this id (the publisher may repeat some) */
    bool stored;  /* seen in the payments table */
    bool applied; /* its stored outcome */
    char status[16];
    char reason[64];
    char processed_at[64];
    bool has_events; /* its result events were found and checked */
} payment;

/* One test's workload: accounts, payments, publisher files, workers. */
typedef struct workload {
    lqt_ns *ns;
    lqt_workload_account accounts[LQT_WORKLOAD_ACCOUNTS];
    payment *payments;
    size_t n_payments;
    size_t n_messages;
    char **files; /* NULL-terminated */
    lqt_listener *events;
    lqt_publisher *publisher;
    lqt_worker *workers[N_WORKERS];
    char worker_app[N_WORKERS][32]; /* each worker's PGAPPNAME: who holds what in the database */
    int n_started;
    const char *const *worker_env;
} workload;

/* Seeded per run (and logged): the workload and the moments of the faults. */
static uint64_t rng_state;

/* ------------------------------------------------------------ the workload */

/* A growing text, NUL-terminated. */
typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void text_add(text *t, const char *s)
{
    size_t n = strlen(s);

    if (t->len + n + 1 > t->cap) {
        t->cap = 2 * t->cap + n + 65536;
        t->p = realloc(t->p, t->cap);
        ck_assert_msg(t->p != NULL, "out of memory");
    }
    memcpy(t->p + t->len, s, n + 1);
    t->len += n;
}

/* Append payment p's command to a publisher file, one line. */
static void add_payment(text *t, const workload *w, const payment *p)
{
    char line[512];

    lqt_workload_json(line, sizeof(line), p->id, &w->accounts[p->debit], &w->accounts[p->credit],
                      p->amount);
    text_add(t, line);
    text_add(t, "\n");
}

/*
 * Open the accounts, generate n payments (plus the extra lines given, each
 * a JSON command, put in the middle of the stream) and write the
 * publisher's files.  Declares the durable event queue before anything is
 * published.
 */
static void workload_init(workload *w, lqt_ns *ns, size_t n, const char *const *extra)
{
    size_t n_files = 0, files_cap = 0;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    text chunk = {NULL, 0, 0};
    char name[64];

    memset(w, 0, sizeof(*w));
    w->ns = ns;
    rng_state = 0x9E3779B97F4A7C15ULL ^ seed;
    lqt_step("workload of %zu payments, seed %u", n, seed);
    lqt_workload_accounts(ns, w->accounts);

    w->n_payments = n;
    w->payments = calloc(n, sizeof(*w->payments));
    ck_assert_ptr_nonnull(w->payments);
    for (size_t i = 0; i < n; i++) {
        payment *p = &w->payments[i];
        snprintf(p->id, sizeof(p->id), "pay-%05zu", i);
        lqt_workload_payment(&rng_state, &p->debit, &p->credit, &p->amount);
        p->n_sent = 1 + (i % DUPLICATE_EVERY == 0);
    }

    /* Chunks of CHUNK payments; a duplicate goes out two chunks after its original. */
    for (size_t c = 0; c * CHUNK < n + 2 * CHUNK; c++) {
        chunk.len = 0;
        text_add(&chunk, "");
        for (size_t i = c * CHUNK; i < (c + 1) * CHUNK && i < n; i++) {
            add_payment(&chunk, w, &w->payments[i]);
            w->n_messages++;
            if (i == n / 2) {
                for (size_t e = 0; extra && extra[e]; e++) {
                    text_add(&chunk, extra[e]);
                    text_add(&chunk, "\n");
                }
            }
        }
        for (size_t i = c >= 2 ? (c - 2) * CHUNK : n; i < (c - 1) * CHUNK && i < n; i++) {
            if (w->payments[i].n_sent < 2)
                continue;
            add_payment(&chunk, w, &w->payments[i]);
            w->n_messages++;
        }
        if (chunk.len == 0)
            continue;
        if (n_files + 2 > files_cap) {
            files_cap = files_cap ? 2 * files_cap : 64;
            w->files = realloc(w->files, files_cap * sizeof(*w->files));
            ck_assert_ptr_nonnull(w->files);
        }
        snprintf(name, sizeof(name), "chunk-%03zu.jsonl", c);
        w->files[n_files] = strdup(lqt_write_file(ns, name, chunk.p));
        ck_assert_ptr_nonnull(w->files[n_files]);
        w->files[++n_files] = NULL;
    }
    free(chunk.p);
    ck_assert_uint_ge(w->n_messages, n + n / DUPLICATE_EVERY);
    w->events = lqt_listen_durable(ns);
}

static void workload_release(workload *w)
{
    for (size_t i = 0; w->files && w->files[i]; i++)
        free(w->files[i]);
    free(w->files);
    free(w->payments);
}

static void start_worker(workload *w, int slot)
{
    const char *env[16];
    char app[48];
    size_t n = 0;

    for (const char *const *e = w->worker_env; e && *e && n < 14; e++)
        env[n++] = *e;
    snprintf(w->worker_app[slot], sizeof(w->worker_app[slot]), "lqt-w%d", ++w->n_started);
    snprintf(app, sizeof(app), "PGAPPNAME=%s", w->worker_app[slot]);
    env[n++] = app;
    env[n] = NULL;
    w->workers[slot] = lqt_worker_start(w->ns, env);
}

/* Every worker still runs and consumes: n consumers on the work queue, within LQT_WAIT_S. */
static void expect_consuming(workload *w)
{
    int64_t deadline = lqt_now_ms() + LQT_WAIT_S * 1000;
    uint32_t consumers = 0;

    for (int i = 0; i < N_WORKERS; i++)
        ck_assert_msg(lqt_worker_running(w->workers[i]), "worker %d exited", i);
    while (!lqt_queue_exists(w->ns, w->ns->queue, &consumers) || consumers != N_WORKERS) {
        if (lqt_now_ms() >= deadline) {
            lqt_print_logs(w->ns);
            ck_abort_msg("%u consumers on the work queue %d s after the fault, expected %d",
                         consumers, LQT_WAIT_S, N_WORKERS);
        }
        lqt_sleep_ms(100);
    }
    lqt_step("%d workers consuming again", N_WORKERS);
}

/*
 * Wait until the worker has started consuming (its log says so): a signal
 * that comes before it installed its handlers would just end it.
 */
static void wait_consuming(lqt_worker *worker)
{
    lqt_worker_wait_log(worker, "consuming from queue");
}

/* Start the workers and the publisher (pause_ms between files). */
static void workload_start(workload *w, const char *const *worker_env, int pause_ms)
{
    w->worker_env = worker_env;
    for (int i = 0; i < N_WORKERS; i++)
        start_worker(w, i);
    w->publisher = lqt_publisher_start(w->ns, (const char *const *)w->files, pause_ms);
    lqt_step("%d workers and the publisher started (%zu messages in %s...)", N_WORKERS,
             w->n_messages, w->files[0]);
}

static long stored_count(lqt_ns *ns)
{
    char *v = lqt_sql_value(ns, "SELECT count(*) FROM payments", NULL);
    long n = strtol(v, NULL, 10);

    free(v);
    return n;
}

/* Whether the payments are still flowing: the publisher runs, or the queue has a backlog. */
static bool flowing(workload *w)
{
    return !lqt_publisher_done(w->publisher) || lqt_queue_ready(w->ns, w->ns->queue, NULL) > 0 ||
           stored_count(w->ns) < (long)w->n_payments;
}

/*
 * Wait for the publisher, then until every payment (but expect_missing of
 * them) has its stored outcome and the queue is drained; stop every worker
 * with SIGTERM (each must exit 0).
 */
static void workload_settle(workload *w, long expect_missing)
{
    int64_t deadline;
    long stored = 0;

    if (w->publisher) {
        int repeats = lqt_publisher_wait(w->publisher, SETTLE_S);
        w->publisher = NULL;
        lqt_step("publisher done (%d publishes repeated)", repeats);
    }
    deadline = lqt_now_ms() + SETTLE_S * 1000;
    while ((stored = stored_count(w->ns)) < (long)w->n_payments - expect_missing ||
           lqt_queue_ready(w->ns, w->ns->queue, NULL) > 0) {
        if (lqt_now_ms() >= deadline) {
            lqt_print_logs(w->ns);
            ck_abort_msg("after %d s, %ld of %zu payments stored, %u messages ready", SETTLE_S,
                         stored, w->n_payments, lqt_queue_ready(w->ns, w->ns->queue, NULL));
        }
        lqt_sleep_ms(200);
    }
    lqt_step("%ld payments stored, queue drained", stored);
    for (int i = 0; i < N_WORKERS; i++) {
        if (w->workers[i]) {
            wait_consuming(w->workers[i]);
            ck_assert_int_eq(lqt_worker_stop(w->workers[i]), 0);
            w->workers[i] = NULL;
        }
    }
}

static int compare_payment_id(const void *key, const void *elem)
{
    return strcmp(key, ((const payment *)elem)->id);
}

/* The payment of the workload with id, or NULL (ids sort as they were made). */
static payment *find_payment(workload *w, const char *id)
{
    return bsearch(id, w->payments, w->n_payments, sizeof(*w->payments), compare_payment_id);
}

/*
 * What the user checks after a scenario: dead is the list of ids that must
 * be in the dead-letter queue instead of the ledger (NULL-terminated, may
 * be NULL); the queue's messages themselves are the caller's to check.
 */
static void workload_check(workload *w, const char *const *dead)
{
    size_t n_dead = 0, n_events, applied = 0;
    const lqt_event **index;
    uint32_t consumers;
    PGresult *res;
    lqt_output out;

    while (dead && dead[n_dead])
        n_dead++;

    /* Nothing left in the work queue, nobody consuming: nothing was left unacked. */
    ck_assert_uint_eq(lqt_queue_ready(w->ns, w->ns->queue, &consumers), 0);
    ck_assert_uint_eq(consumers, 0);

    /* Exactly one stored outcome per payment, with the legs it was sent with. */
    res = PQexec(w->ns->db,
                 "SELECT id, status, coalesce(reason, ''), legs->0->>'debit', legs->0->>'credit',"
                 " (legs->0->>'amount')::bigint, jsonb_array_length(legs),"
                 " to_char(processed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
                 " FROM payments");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    ck_assert_int_eq(PQntuples(res), (int)w->n_payments);
    for (int row = 0; row < PQntuples(res); row++) {
        payment *p = find_payment(w, PQgetvalue(res, row, 0));
        ck_assert_msg(p != NULL, "payments holds an id never sent: %s", PQgetvalue(res, row, 0));
        ck_assert_msg(!p->stored, "payment %s is stored twice", p->id);
        p->stored = true;
        snprintf(p->status, sizeof(p->status), "%s", PQgetvalue(res, row, 1));
        snprintf(p->reason, sizeof(p->reason), "%s", PQgetvalue(res, row, 2));
        snprintf(p->processed_at, sizeof(p->processed_at), "%s", PQgetvalue(res, row, 7));
        p->applied = strcmp(p->status, "applied") == 0;
        ck_assert_str_eq(PQgetvalue(res, row, 3), w->accounts[p->debit].id);
        ck_assert_str_eq(PQgetvalue(res, row, 4), w->accounts[p->credit].id);
        ck_assert_int_eq(strtoll(PQgetvalue(res, row, 5), NULL, 10), p->amount);
        ck_assert_str_eq(PQgetvalue(res, row, 6), "1");
        if (p->applied) {
            w->accounts[p->debit].expected -= p->amount;
            w->accounts[p->credit].expected += p->amount;
            applied++;
        }
    }
    PQclear(res);
    for (size_t i = 0; i < w->n_payments; i++)
        ck_assert_msg(w->payments[i].stored, "payment %s has no stored outcome", w->payments[i].id);
    for (size_t i = 0; i < n_dead; i++) {
        char *v = lqt_sql_value(w->ns, "SELECT status FROM payments WHERE id = $1", dead[i]);
        ck_assert_msg(v == NULL, "%s was stored (%s) but belongs in the dead-letter queue", dead[i],
                      v);
        free(v);
    }
    /* The run exercised both outcomes. */
    ck_assert_uint_gt(applied, w->n_payments / 2);
    ck_assert_uint_lt(applied, w->n_payments);

    /* Balances: what the stored outcomes add up to; nothing applied twice. */
    lqt_workload_check_balances(w->ns, w->accounts);
    ck_assert_msg(lqt_run(w->ns, &out, "audit") == 0, "audit exited %d: %s%s", out.status, out.out,
                  out.err);
    lqt_output_release(&out);

    /*
     * Result events: at least one per message sent, each telling the one
     * stored outcome, and for every payment at least one that says it was
     * processed for the first time (duplicate: false); that one may come
     * more than once, when the broker never confirmed it.
     */
    n_events = lqt_listener_collect(w->events);
    lqt_step("%zu result events for %zu messages", n_events, w->n_messages);
    ck_assert_uint_ge(n_events, w->n_messages);
    index = lqt_events_by_id(w->events);
    {
        /* How many lack a first outcome, for the failure message. */
        size_t lacking = 0, n;
        const char *first_lacking = NULL;
        for (size_t i = 0; i < n_events; i += n) {
            for (n = 1; i + n < n_events && strcmp(index[i + n]->id, index[i]->id) == 0; n++)
                ;
            if (!lqt_has_first_outcome(&index[i], n) && lacking++ == 0)
                first_lacking = index[i]->id;
        }
        ck_assert_msg(lacking == 0,
                      "%zu of %zu payments got no result event that says they were processed for "
                      "the first time (duplicate: false), %s the first of them",
                      lacking, w->n_payments, first_lacking);
    }
    for (size_t i = 0, n; i < n_events; i += n) {
        payment *p = find_payment(w, index[i]->id);
        ck_assert_msg(p != NULL, "an event for an id never sent, or one that must not have one: %s",
                      index[i]->body);
        for (n = 0; i + n < n_events && strcmp(index[i + n]->id, p->id) == 0; n++) {
            const lqt_event *e = index[i + n];
            ck_assert_msg(strcmp(e->status, p->status) == 0 &&
                              strcmp(e->reason_null ? "" : e->reason, p->reason) == 0 &&
                              strcmp(e->processed_at, p->processed_at) == 0,
                          "%s: the event %s differs from the stored outcome %s %s %s", p->id,
                          e->body, p->status, p->reason, p->processed_at);
        }
        ck_assert_msg(n >= (size_t)p->n_sent, "%s: sent %d times, %zu events", p->id, p->n_sent, n);
        lqt_expect_first_outcome(p->id, &index[i], n, NULL);
        p->has_events = true;
    }
    for (size_t i = 0; i < w->n_payments; i++)
        ck_assert_msg(w->payments[i].has_events, "%s: no result event", w->payments[i].id);
    free(index);
}

/* The dead-letter queue holds nothing. */
static void check_no_dead_letters(workload *w)
{
    lqt_death d;
    size_t n = lqt_dead_letters(w->ns, w->ns->dlq, &d, 1);

    ck_assert_msg(n == 0, "%zu messages were dead-lettered, the first (%s%s) %s", n, d.error,
                  d.reason, d.body);
}

/* The worker settings of the flowing scenarios: windows small enough to turn over often. */
static const char *const flow_env[] = {"LEDGERQ_PREFETCH=200", "LEDGERQ_BATCH_MAX=50",
                                       "LEDGERQ_SHUTDOWN_TIMEOUT_MS=10000", NULL};

/*
 * Per payment in the database (lqt_slow_inserts()), so that a backlog
 * builds up and the workers always hold payments when a fault strikes.
 * Batches lock the accounts they touch, so with 100 accounts the workers
 * mostly take turns: 22,000 messages take them about 25 s, and the
 * publisher stays ahead.
 */
#define SLOW_MS 1

/*
 * The flowing scenario: N_PAYMENTS payments, slow inserts, the workers and
 * the publisher started (300 ms between files), the faults to come.
 */
static void workload_flow(workload *w, lqt_ns *ns)
{
    workload_init(w, ns, N_PAYMENTS, NULL);
    lqt_slow_inserts(ns, SLOW_MS);
    workload_start(w, flow_env, 300);
}

/*
 * After workload_settle(): what the user checks when nothing deserved the
 * dead-letter queue, then free the workload and destroy its namespace.
 */
static void workload_finish(workload *w)
{
    workload_check(w, NULL);
    check_no_dead_letters(w);
    workload_release(w);
    lqt_ns_destroy(w->ns);
}

/* ------------------------------------------------------------ 1. kill -9 a worker */

START_TEST(test_worker_crashes)
{
    lqt_ns *ns = lqt_ns_create();
    workload w;

    workload_flow(&w, ns);
    /* Five crashes at random moments while payments flow, each worker restarted at once. */
    for (int kill = 1; kill <= 5; kill++) {
        int victim = (int)(lqt_rng(&rng_state) % N_WORKERS);
        lqt_sleep_ms(1000 + (int)(lqt_rng(&rng_state) % 3000));
        ck_assert_msg(flowing(&w), "the payments stopped flowing before crash %d", kill);
        lqt_step("kill -9 worker %d (pid %d)", victim, (int)lqt_worker_pid(w.workers[victim]));
        lqt_worker_kill(w.workers[victim]);
        start_worker(&w, victim);
    }
    workload_settle(&w, 0);
    /* The crashes hit workers holding payments: the broker redelivered them. */
    ck_assert_uint_gt(lqt_log_count(ns, REDELIVERED_LOG), 0);
    workload_finish(&w);
}
END_TEST

/* ------------------------------------------------------------ 2. RabbitMQ killed, stopped */

START_TEST(test_broker_restarts)
{
    lqt_ns *ns = lqt_ns_create();
    workload w;

    workload_flow(&w, ns);
    lqt_sleep_ms(3000);
    ck_assert(flowing(&w));
    lqt_stack("kill", "amqp");
    lqt_step("RabbitMQ killed");
    lqt_sleep_ms(2000);
    lqt_stack("start", "amqp");
    lqt_step("RabbitMQ started again");
    expect_consuming(&w);
    lqt_sleep_ms(3000);
    ck_assert(flowing(&w));
    lqt_stack("stop", "amqp");
    lqt_step("RabbitMQ stopped");
    lqt_sleep_ms(2000);
    lqt_stack("start", "amqp");
    lqt_step("RabbitMQ started again");
    expect_consuming(&w);
    lqt_ns_reconnect(ns);
    workload_settle(&w, 0);
    workload_finish(&w);
}
END_TEST

/* ------------------------------------------------------------ 3. PostgreSQL restarted, down */

START_TEST(test_database_restarts)
{
    lqt_ns *ns = lqt_ns_create();
    workload w;
    uint32_t consumers;

    workload_flow(&w, ns);

    lqt_sleep_ms(3000);
    ck_assert(flowing(&w));
    lqt_stack("stop", "pg");
    lqt_stack("start", "pg");
    lqt_step("PostgreSQL restarted (-m fast)");
    lqt_ns_reconnect(ns);

    lqt_sleep_ms(3000);
    ck_assert(flowing(&w));
    lqt_stack_pg_immediate();
    lqt_stack("start", "pg");
    lqt_step("PostgreSQL restarted (-m immediate, crash recovery)");
    lqt_ns_reconnect(ns);

    lqt_sleep_ms(3000);
    ck_assert(flowing(&w));
    lqt_stack("stop", "pg");
    lqt_step("PostgreSQL down for 20 s");
    lqt_sleep_ms(5000);
    /* SIGTERM during the outage: what it holds cannot be finished, but it exits in time. */
    {
        int64_t took;
        int code;
        lqt_worker_signal(w.workers[2], SIGTERM);
        code = lqt_worker_wait(w.workers[2], SHUTDOWN_MS + 5000, &took);
        lqt_step("worker 2: SIGTERM during the outage, exit %d after %" PRId64 " ms", code, took);
        ck_assert_int_eq(code, 0);
        ck_assert_int_lt(took, SHUTDOWN_MS);
        start_worker(&w, 2);
    }
    lqt_sleep_ms(15000);
    /* The workers wait with the payments in hand: none is dead-lettered, none dies. */
    for (int i = 0; i < N_WORKERS; i++)
        ck_assert_msg(lqt_worker_running(w.workers[i]), "worker %d exited", i);
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->dlq, NULL), 0);
    ck_assert(lqt_queue_exists(ns, ns->queue, &consumers));
    ck_assert_uint_eq(consumers, N_WORKERS);
    lqt_stack("start", "pg");
    lqt_step("PostgreSQL up again");
    lqt_ns_reconnect(ns);

    workload_settle(&w, 0);
    workload_finish(&w);
}
END_TEST

/* ------------------------------------------------------------ 4. SIGTERM while working */

START_TEST(test_sigterm_each)
{
    lqt_ns *ns = lqt_ns_create();
    workload w;
    lqt_worker *impatient;
    int64_t took;
    int code;

    workload_flow(&w, ns);
    /*
     * Each worker in turn, with a full window in hand: it drains, acks what
     * it holds, exits 0 in time.  (What the broker had already sent it but
     * it had not received yet comes back to the queue when it cancels:
     * another worker applies that.)
     */
    for (int i = 0; i < N_WORKERS; i++) {
        /* SIGINT (Ctrl-C) for one of them: the same graceful stop. */
        int sig = i == 1 ? SIGINT : SIGTERM;
        char log[600];
        lqt_sleep_ms(2000);
        ck_assert_msg(lqt_queue_ready(ns, ns->queue, NULL) > 0,
                      "no backlog: worker %d would not be working when stopped", i);
        wait_consuming(w.workers[i]);
        snprintf(log, sizeof(log), "%s", lqt_worker_log_path(w.workers[i]));
        lqt_worker_signal(w.workers[i], sig);
        code = lqt_worker_wait(w.workers[i], SHUTDOWN_MS + 5000, &took);
        lqt_step("worker %d: %s, exit %d after %" PRId64 " ms", i,
                 sig == SIGINT ? "SIGINT" : "SIGTERM", code, took);
        ck_assert_int_eq(code, 0);
        ck_assert_int_lt(took, SHUTDOWN_MS);
        /* It says it finished what it held: nothing left unacked, nothing given up on. */
        ck_assert_uint_eq(lqt_file_count(log, "\"msg\":\"stopping: finishing"), 1);
        ck_assert_uint_eq(lqt_file_count(log, "\"msg\":\"stopped\""), 1);
        ck_assert_uint_eq(lqt_file_count(log, "left unacked"), 0);
        ck_assert_uint_eq(lqt_file_count(log, "not applied"), 0);
        ck_assert_uint_eq(lqt_file_count(log, "connection lost"), 0);
        ck_assert_uint_eq(lqt_file_count(log, "\"level\":\"error\""), 0);
        start_worker(&w, i);
    }

    /* A second signal ends a worker at once; what it held is redelivered, not lost. */
    lqt_sleep_ms(1000);
    ck_assert(lqt_queue_ready(ns, ns->queue, NULL) > 0);
    impatient = w.workers[0];
    wait_consuming(impatient);
    lqt_worker_signal(impatient, SIGTERM);
    lqt_sleep_ms(20);
    lqt_worker_signal(impatient, SIGTERM);
    code = lqt_worker_wait(impatient, 2000, &took);
    lqt_step("worker 0: SIGTERM twice, exit %d after %" PRId64 " ms", code, took);
    ck_assert_int_ne(code, 0);
    ck_assert_int_lt(took, 1000);
    start_worker(&w, 0);

    workload_settle(&w, 0);
    workload_finish(&w);
}
END_TEST

/* ------------------------------------------------------------ 5. a poison payment */

START_TEST(test_poison)
{
    const char *const env[] = {"LEDGERQ_MAX_ATTEMPTS=3", NULL};
    const char *poison = "{\"id\":\"poison\",\"debit\":\"acct:001\",\"credit\":\"acct:003\","
                         "\"amount\":1,\"currency\":\"USD\"}";
    const char *const extra[] = {poison, NULL}, *const dead[] = {"poison", NULL};
    lqt_ns *ns = lqt_ns_create();
    lqt_death d;
    workload w;

    workload_init(&w, ns, N_PAYMENTS, extra);
    /* It fails in the database every time, for a reason that is not an outage. */
    lqt_poison(ns, "poison");
    workload_start(&w, env, 100);
    workload_settle(&w, 0);
    workload_check(&w, dead);
    ck_assert_uint_eq(lqt_dead_letters(ns, ns->dlq, &d, 1), 1);
    ck_assert_str_eq(d.body, poison);
    ck_assert_str_eq(d.error, "processing_failed");
    ck_assert_msg(strstr(d.detail, "lqt poison pill poison") != NULL, "detail: %s", d.detail);
    ck_assert_str_eq(d.reason, "");
    workload_release(&w);
    lqt_ns_destroy(ns);
}
END_TEST

/* ------------------------------------------------------------ 6. a payment that kills workers */

#define DELIVERY_LIMIT 3

START_TEST(test_crash_loop)
{
    const char *const ns_env[] = {"LEDGERQ_DELIVERY_LIMIT=3", NULL}; /* DELIVERY_LIMIT */
    const char *crasher = "{\"id\":\"crasher\",\"debit\":\"acct:002\",\"credit\":\"acct:004\","
                          "\"amount\":1,\"currency\":\"EUR\"}";
    const char *const extra[] = {crasher, NULL}, *const dead[] = {"crasher", NULL};
    lqt_ns *ns = lqt_ns_create_env(ns_env);
    lqt_death d;
    workload w;
    int kills = 0;
    int64_t deadline;

    workload_init(&w, ns, 2000, extra);
    /*
     * Whoever processes it hangs in the database: the test then kills that
     * worker, as if the payment had crashed it, and starts another.
     */
    lqt_sql(ns, "CREATE FUNCTION lqt_hang() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$");
    lqt_sql(ns, "CREATE TRIGGER lqt_hang BEFORE INSERT ON payments FOR EACH ROW "
                "WHEN (NEW.id = 'crasher') EXECUTE FUNCTION lqt_hang()");
    workload_start(&w, flow_env, 100);
    deadline = lqt_now_ms() + 120 * 1000;
    while (lqt_queue_ready(ns, ns->dlq, NULL) == 0) {
        char *app = lqt_sql_value(ns,
                                  "SELECT application_name FROM pg_stat_activity"
                                  " WHERE datname = current_database() AND wait_event = 'PgSleep'"
                                  " AND application_name LIKE 'lqt-w%' LIMIT 1",
                                  NULL);
        ck_assert_msg(lqt_now_ms() < deadline, "the crasher is not dead-lettered after %d kills",
                      kills);
        if (app == NULL) {
            lqt_sleep_ms(50);
            continue;
        }
        for (int i = 0; i < N_WORKERS; i++) {
            if (strcmp(w.worker_app[i], app) != 0)
                continue;
            lqt_step("kill -9 worker %d (%s), in the database with the crasher", i, app);
            lqt_worker_kill(w.workers[i]);
            /* Its session would sleep on, holding locks: end it as the crash would, soon. */
            free(lqt_sql_value(ns,
                               "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity"
                               " WHERE application_name = $1",
                               app));
            start_worker(&w, i);
            kills++;
        }
        free(app);
    }
    lqt_step("the crasher reached the dead-letter queue after %d kills", kills);
    /* Delivered DELIVERY_LIMIT + 1 times: returned more often than the limit allows. */
    ck_assert_int_eq(kills, DELIVERY_LIMIT + 1);
    workload_settle(&w, 0);
    workload_check(&w, dead);
    ck_assert_uint_eq(lqt_dead_letters(ns, ns->dlq, &d, 1), 1);
    ck_assert_str_eq(d.body, crasher);
    ck_assert_str_eq(d.reason, "delivery_limit");
    ck_assert_str_eq(d.queue, ns->queue);
    ck_assert_int_eq(d.count, 1);
    ck_assert_str_eq(d.error, "");
    workload_release(&w);
    lqt_ns_destroy(ns);
}
END_TEST

/* ------------------------------------------------------------ 7. the queue deleted under the
 * workers */

START_TEST(test_consumer_cancelled)
{
    lqt_ns *ns = lqt_ns_create();
    lqt_publisher *second;
    workload w;
    size_t half;

    workload_init(&w, ns, 4000, NULL);
    for (half = 0; w.files[half]; half++)
        ;
    half /= 2;
    {
        /* The first half of the files now, the rest after the queue came back. */
        char *rest = w.files[half];
        w.files[half] = NULL;
        workload_start(&w, flow_env, 0);
        lqt_publisher_wait(w.publisher, 60);
        w.files[half] = rest;
    }
    while (stored_count(ns) < (long)(half * CHUNK) || lqt_queue_ready(ns, ns->queue, NULL) > 0)
        lqt_sleep_ms(100);
    /* The broker cancels every consumer: the workers declare the queue again and consume. */
    lqt_delete_queue(ns, ns->queue);
    lqt_step("work queue deleted");
    expect_consuming(&w);
    second = lqt_publisher_start(ns, (const char *const *)&w.files[half], 0);
    w.publisher = second;
    workload_settle(&w, 0);
    workload_finish(&w);
}
END_TEST

/* ------------------------------------------------------------ 8. deadlocks and locks held
 * elsewhere */

static long deadlocks(lqt_ns *ns)
{
    char *v = lqt_sql_value(
        ns, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()", NULL);
    long n = strtol(v, NULL, 10);

    free(v);
    return n;
}

START_TEST(test_deadlock)
{
    lqt_ns *ns = lqt_ns_create();
    workload w;
    long before, during, deadlocks_before = deadlocks(ns);
    int64_t deadline;

    workload_init(&w, ns, 4000, NULL);
    lqt_slow_inserts(ns, SLOW_MS);
    workload_start(&w, flow_env, 100);
    while (stored_count(ns) < 500)
        lqt_sleep_ms(50);
    /*
     * Another transaction takes the account the workers lock last, waits
     * until a worker waits for it (holding accounts that come before), and
     * asks for every account in turn: a deadlock.  With a long
     * deadlock_timeout of its own, the worker is the one PostgreSQL aborts;
     * its batch must be retried.
     */
    lqt_sql(ns, "BEGIN");
    lqt_sql(ns, "SET LOCAL deadlock_timeout = '60s'");
    lqt_sql(ns, "SELECT id FROM accounts WHERE id = 'acct:099' FOR UPDATE");
    deadline = lqt_now_ms() + LQT_WAIT_S * 1000;
    for (;;) {
        char *waiting = lqt_sql_value(ns,
                                      "SELECT count(*) FROM pg_stat_activity"
                                      " WHERE application_name LIKE 'lqt-w%'"
                                      " AND pg_backend_pid() = ANY(pg_blocking_pids(pid))",
                                      NULL);
        bool found = strcmp(waiting, "0") != 0;
        free(waiting);
        if (found)
            break;
        ck_assert_msg(lqt_now_ms() < deadline, "no worker waited for acct:099 within %d s",
                      LQT_WAIT_S);
        lqt_sleep_ms(20);
    }
    lqt_sql(ns, "SELECT id FROM accounts ORDER BY id COLLATE \"C\" FOR UPDATE");
    /*
     * Now it holds every account for longer than the workers' lock
     * timeout: their batches time out on the locks and are retried, nothing
     * is dead-lettered, and they go on when the locks are released.
     */
    before = stored_count(ns);
    lqt_step("every account locked by another transaction, %ld payments stored", before);
    lqt_sleep_ms(12000);
    during = stored_count(ns);
    for (int i = 0; i < N_WORKERS; i++)
        ck_assert_msg(lqt_worker_running(w.workers[i]), "worker %d exited", i);
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->dlq, NULL), 0);
    lqt_sql(ns, "COMMIT");
    lqt_step("locks released, %ld payments stored meanwhile", during - before);
    /* Only duplicates, which take no lock, could be answered meanwhile: none was stored. */
    ck_assert_int_eq(during, before);
    workload_settle(&w, 0);
    /* PostgreSQL counted the deadlock (its statistics may lag a little). */
    deadline = lqt_now_ms() + LQT_WAIT_S * 1000;
    while (deadlocks(ns) == deadlocks_before) {
        ck_assert_msg(lqt_now_ms() < deadline, "PostgreSQL counted no deadlock");
        lqt_sleep_ms(200);
    }
    lqt_step("%ld deadlocks, all retried", deadlocks(ns) - deadlocks_before);
    workload_finish(&w);
}
END_TEST

/* ------------------------------------------------------------ 9. the broker blocks publishing */

static void clear_alarm(void)
{
    /* Back to RabbitMQ's default watermark, in case the test ended while it was lowered. */
    lqt_stack_ctl_try("set_vm_memory_high_watermark", "0.4");
}

START_TEST(test_blocked_broker)
{
    lqt_ns *ns = lqt_ns_create();
    workload w;
    int64_t took;
    int code;

    workload_init(&w, ns, 2000, NULL);
    w.publisher = lqt_publisher_start(ns, (const char *const *)w.files, 0);
    lqt_publisher_wait(w.publisher, 60);
    /* A memory alarm: the broker blocks every connection that publishes. */
    lqt_stack_ctl("set_vm_memory_high_watermark", "0.000001");
    lqt_step("memory alarm raised");
    w.worker_env = flow_env;
    for (int i = 0; i < N_WORKERS; i++)
        start_worker(&w, i);
    lqt_worker_wait_log(w.workers[0], "blocked publishing");
    lqt_step("the workers are blocked");
    /* Longer than the confirm timeout: a blocked broker is waited for, not given up on. */
    lqt_sleep_ms(35000);
    for (int i = 0; i < N_WORKERS; i++)
        ck_assert_msg(lqt_worker_running(w.workers[i]), "worker %d exited", i);
    ck_assert_uint_eq(lqt_log_count(ns, "connection lost"), 0);
    /* A blocked broker reads nothing: SIGTERM still ends the worker in time. */
    lqt_worker_signal(w.workers[0], SIGTERM);
    code = lqt_worker_wait(w.workers[0], SHUTDOWN_MS + 5000, &took);
    lqt_step("worker 0: SIGTERM while blocked, exit %d after %" PRId64 " ms", code, took);
    ck_assert_int_eq(code, 0);
    ck_assert_int_lt(took, SHUTDOWN_MS);
    start_worker(&w, 0);
    lqt_stack_ctl("set_vm_memory_high_watermark", "0.4");
    lqt_step("memory alarm cleared");
    w.publisher = NULL;
    workload_settle(&w, 0);
    workload_finish(&w);
}
END_TEST

/* ------------------------------------------------------------ 10. committed, never confirmed */

START_TEST(test_lost_confirm)
{
    lqt_ns *ns = lqt_ns_create();
    workload w;
    long committed = 0, last = -1;
    int64_t deadline;

    workload_init(&w, ns, 2000, NULL);
    w.publisher = lqt_publisher_start(ns, (const char *const *)w.files, 0);
    lqt_publisher_wait(w.publisher, 60);
    w.publisher = NULL;
    /*
     * A memory alarm before any worker runs: the broker blocks a connection
     * that publishes and reads nothing more from it.  The worker commits a
     * batch, then cannot publish its events, or publishes them where the
     * broker does not read: none of them is confirmed.
     */
    lqt_stack_ctl("set_vm_memory_high_watermark", "0");
    lqt_step("memory alarm raised");
    w.worker_env = flow_env;
    start_worker(&w, 0);
    lqt_worker_wait_log(w.workers[0], "blocked publishing");
    /* What it committed is in the payments table, and stays as it is: it waits, blocked. */
    deadline = lqt_now_ms() + LQT_WAIT_S * 1000;
    while ((committed = stored_count(ns)) == 0 || committed != last) {
        ck_assert_msg(lqt_now_ms() < deadline, "worker 0 stored %ld payments, still changing",
                      committed);
        last = committed;
        lqt_sleep_ms(1000);
    }
    ck_assert_msg(lqt_worker_running(w.workers[0]), "worker 0 exited while blocked");
    lqt_step("worker 0 committed %ld payments and is blocked; %u events reached the broker",
             committed, lqt_queue_ready(ns, lqt_listener_queue(w.events), NULL));
    lqt_worker_kill(w.workers[0]);
    w.workers[0] = NULL;
    lqt_step("kill -9 worker 0");
    lqt_stack_ctl("set_vm_memory_high_watermark", "0.4");
    lqt_step("memory alarm cleared");
    for (int i = 0; i < N_WORKERS; i++)
        start_worker(&w, i);
    /* Its payments come back, committed already: each must still get its first outcome. */
    workload_settle(&w, 0);
    workload_finish(&w);
}
END_TEST

/* ------------------------------------------------------------ the suite */

int main(void)
{
    const lqt_suite suite = {.name = "faults", .timeout_s = 300, .stops_stack = true};
    const lqt_case cases[] = {
        LQT_CASE("worker_crashes", test_worker_crashes),
        LQT_CASE("broker_restarts", test_broker_restarts, .timeout_s = 400),
        LQT_CASE("database_restarts", test_database_restarts, .timeout_s = 400),
        LQT_CASE("sigterm_each", test_sigterm_each),
        LQT_CASE("poison", test_poison),
        LQT_CASE("crash_loop", test_crash_loop),
        LQT_CASE("consumer_cancelled", test_consumer_cancelled),
        LQT_CASE("deadlock", test_deadlock),
        LQT_CASE("blocked_broker", test_blocked_broker, .after = clear_alarm),
        LQT_CASE("lost_confirm", test_lost_confirm, .after = clear_alarm),
    };

    return LQT_MAIN(suite, cases);
}
