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
 * Holds expiring under crashes (case holds_expiring): two workers, 2,700
 * holds of timeout_s 1 to 3 over five accounts, one worker killed (-9) every
 * second or two while they come and expire; the last 200 expire while the
 * broker blocks publishing, and both workers are killed with their events
 * unsent.  Afterwards, with workers running again: every hold was released
 * once (one expiry entry per leg on each account the leg names, `audit`
 * passes), not before its expiry time and within 5 s of it while a worker
 * could publish, and none is left pending; every expired hold got its
 * hold.expired event with duplicate false, the lost ones published again
 * by the workers started afterwards (60 s after they were last published).
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

#define N_PAYMENTS  20000
#define N_WORKERS   3
#define SHUTDOWN_MS 10000
/* What a worker logs when messages come back from a consumer that went away. */
#define REDELIVERED_LOG "\"msg\":\"redelivered"

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
static void workload_flow(lqt_flow *w, lqt_ns *ns)
{
    lqt_flow_init(w, ns, N_PAYMENTS, NULL);
    lqt_slow_inserts(ns, SLOW_MS);
    lqt_flow_start(w, N_WORKERS, flow_env, 300);
}

/*
 * After lqt_flow_settle(): what the user checks when nothing deserved the
 * dead-letter queue, then free the workload and destroy its namespace.
 */
static void workload_finish(lqt_flow *w)
{
    lqt_flow_check(w, NULL);
    lqt_flow_expect_no_dead_letters(w);
    lqt_flow_release(w);
    lqt_ns_destroy(w->ns);
}

/* ------------------------------------------------------------ 1. kill -9 a worker */

START_TEST(test_worker_crashes)
{
    lqt_ns *ns = lqt_ns_create();
    lqt_flow w;

    workload_flow(&w, ns);
    /* Five crashes at random moments while payments flow, each worker restarted at once. */
    for (int kill = 1; kill <= 5; kill++) {
        int victim = (int)(lqt_rng(&w.rng) % N_WORKERS);
        lqt_sleep_ms(1000 + (int)(lqt_rng(&w.rng) % 3000));
        ck_assert_msg(lqt_flow_flowing(&w), "the payments stopped lqt_flow_flowing before crash %d",
                      kill);
        lqt_step("kill -9 worker %d (pid %d)", victim, (int)lqt_worker_pid(w.workers[victim]));
        lqt_worker_kill(w.workers[victim]);
        lqt_flow_start_worker(&w, victim);
    }
    lqt_flow_settle(&w, 0);
    /* The crashes hit workers holding payments: the broker redelivered them. */
    ck_assert_uint_gt(lqt_log_count(ns, REDELIVERED_LOG), 0);
    workload_finish(&w);
}
END_TEST

/* ------------------------------------------------------------ 2. RabbitMQ killed, stopped */

START_TEST(test_broker_restarts)
{
    lqt_ns *ns = lqt_ns_create();
    lqt_flow w;

    workload_flow(&w, ns);
    lqt_sleep_ms(3000);
    ck_assert(lqt_flow_flowing(&w));
    lqt_stack("kill", "amqp");
    lqt_step("RabbitMQ killed");
    lqt_sleep_ms(2000);
    lqt_stack("start", "amqp");
    lqt_step("RabbitMQ started again");
    lqt_flow_expect_consuming(&w);
    lqt_sleep_ms(3000);
    ck_assert(lqt_flow_flowing(&w));
    lqt_stack("stop", "amqp");
    lqt_step("RabbitMQ stopped");
    lqt_sleep_ms(2000);
    lqt_stack("start", "amqp");
    lqt_step("RabbitMQ started again");
    lqt_flow_expect_consuming(&w);
    lqt_ns_reconnect(ns);
    lqt_flow_settle(&w, 0);
    workload_finish(&w);
}
END_TEST

/* ------------------------------------------------------------ 3. PostgreSQL restarted, down */

START_TEST(test_database_restarts)
{
    lqt_ns *ns = lqt_ns_create();
    lqt_flow w;
    uint32_t consumers;

    workload_flow(&w, ns);

    lqt_sleep_ms(3000);
    ck_assert(lqt_flow_flowing(&w));
    lqt_stack("stop", "pg");
    lqt_stack("start", "pg");
    lqt_step("PostgreSQL restarted (-m fast)");
    lqt_ns_reconnect(ns);

    lqt_sleep_ms(3000);
    ck_assert(lqt_flow_flowing(&w));
    lqt_stack_pg_immediate();
    lqt_stack("start", "pg");
    lqt_step("PostgreSQL restarted (-m immediate, crash recovery)");
    lqt_ns_reconnect(ns);

    lqt_sleep_ms(3000);
    ck_assert(lqt_flow_flowing(&w));
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
        lqt_flow_start_worker(&w, 2);
    }
    lqt_sleep_ms(15000);
    /*
     * The workers wait with the payments in hand: none is dead-lettered,
     * none dies.  The one started during the outage has not checked the
     * schema yet: it takes nothing until the database answers.
     */
    for (int i = 0; i < N_WORKERS; i++)
        ck_assert_msg(lqt_worker_running(w.workers[i]), "worker %d exited", i);
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->dlq, NULL), 0);
    ck_assert(lqt_queue_exists(ns, ns->queue, &consumers));
    ck_assert_uint_eq(consumers, N_WORKERS - 1);
    lqt_stack("start", "pg");
    lqt_step("PostgreSQL up again");
    lqt_ns_reconnect(ns);

    lqt_flow_settle(&w, 0);
    workload_finish(&w);
}
END_TEST

/* ------------------------------------------------------------ 4. SIGTERM while working */

START_TEST(test_sigterm_each)
{
    lqt_ns *ns = lqt_ns_create();
    lqt_flow w;
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
        lqt_flow_wait_consuming(w.workers[i]);
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
        lqt_flow_start_worker(&w, i);
    }

    /* A second signal ends a worker at once; what it held is redelivered, not lost. */
    lqt_sleep_ms(1000);
    ck_assert(lqt_queue_ready(ns, ns->queue, NULL) > 0);
    impatient = w.workers[0];
    lqt_flow_wait_consuming(impatient);
    lqt_worker_signal(impatient, SIGTERM);
    lqt_sleep_ms(20);
    lqt_worker_signal(impatient, SIGTERM);
    code = lqt_worker_wait(impatient, 2000, &took);
    lqt_step("worker 0: SIGTERM twice, exit %d after %" PRId64 " ms", code, took);
    ck_assert_int_ne(code, 0);
    ck_assert_int_lt(took, 1000);
    lqt_flow_start_worker(&w, 0);

    lqt_flow_settle(&w, 0);
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
    lqt_flow w;

    lqt_flow_init(&w, ns, N_PAYMENTS, extra);
    /* It fails in the database every time, for a reason that is not an outage. */
    lqt_poison(ns, "poison");
    lqt_flow_start(&w, N_WORKERS, env, 100);
    lqt_flow_settle(&w, 0);
    lqt_flow_check(&w, dead);
    ck_assert_uint_eq(lqt_dead_letters(ns, ns->dlq, &d, 1), 1);
    ck_assert_str_eq(d.body, poison);
    ck_assert_str_eq(d.error, "processing_failed");
    ck_assert_msg(strstr(d.detail, "lqt poison pill poison") != NULL, "detail: %s", d.detail);
    ck_assert_str_eq(d.reason, "");
    lqt_flow_release(&w);
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
    lqt_flow w;
    int kills = 0;
    int64_t deadline;

    lqt_flow_init(&w, ns, 2000, extra);
    /*
     * Whoever processes it hangs in the database: the test then kills that
     * worker, as if the payment had crashed it, and starts another.
     */
    lqt_sql(ns, "CREATE FUNCTION lqt_hang() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$");
    lqt_sql(ns, "CREATE TRIGGER lqt_hang BEFORE INSERT ON payments FOR EACH ROW "
                "WHEN (NEW.id = 'crasher') EXECUTE FUNCTION lqt_hang()");
    lqt_flow_start(&w, N_WORKERS, flow_env, 100);
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
            lqt_flow_start_worker(&w, i);
            kills++;
        }
        free(app);
    }
    lqt_step("the crasher reached the dead-letter queue after %d kills", kills);
    /* Delivered DELIVERY_LIMIT + 1 times: returned more often than the limit allows. */
    ck_assert_int_eq(kills, DELIVERY_LIMIT + 1);
    lqt_flow_settle(&w, 0);
    lqt_flow_check(&w, dead);
    ck_assert_uint_eq(lqt_dead_letters(ns, ns->dlq, &d, 1), 1);
    ck_assert_str_eq(d.body, crasher);
    ck_assert_str_eq(d.reason, "delivery_limit");
    ck_assert_str_eq(d.queue, ns->queue);
    ck_assert_int_eq(d.count, 1);
    ck_assert_str_eq(d.error, "");
    lqt_flow_release(&w);
    lqt_ns_destroy(ns);
}
END_TEST

/* ------------------------------------------------------------ 7. the queue deleted under the
 * workers */

START_TEST(test_consumer_cancelled)
{
    lqt_ns *ns = lqt_ns_create();
    lqt_publisher *second;
    lqt_flow w;
    size_t half;

    lqt_flow_init(&w, ns, 4000, NULL);
    for (half = 0; w.files[half]; half++)
        ;
    half /= 2;
    {
        /* The first half of the files now, the rest after the queue came back. */
        char *rest = w.files[half];
        w.files[half] = NULL;
        lqt_flow_start(&w, N_WORKERS, flow_env, 0);
        lqt_publisher_wait(w.publisher, 60);
        w.files[half] = rest;
    }
    while (lqt_flow_stored(ns) < (long)(half * LQT_FLOW_CHUNK) ||
           lqt_queue_ready(ns, ns->queue, NULL) > 0)
        lqt_sleep_ms(100);
    /* The broker cancels every consumer: the workers declare the queue again and consume. */
    lqt_delete_queue(ns, ns->queue);
    lqt_step("work queue deleted");
    lqt_flow_expect_consuming(&w);
    second = lqt_publisher_start(ns, (const char *const *)&w.files[half], 0);
    w.publisher = second;
    lqt_flow_settle(&w, 0);
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
    lqt_flow w;
    long before, during, deadlocks_before = deadlocks(ns);
    int64_t deadline;

    lqt_flow_init(&w, ns, 4000, NULL);
    lqt_slow_inserts(ns, SLOW_MS);
    lqt_flow_start(&w, N_WORKERS, flow_env, 100);
    while (lqt_flow_stored(ns) < 500)
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
    before = lqt_flow_stored(ns);
    lqt_step("every account locked by another transaction, %ld payments stored", before);
    lqt_sleep_ms(12000);
    during = lqt_flow_stored(ns);
    for (int i = 0; i < N_WORKERS; i++)
        ck_assert_msg(lqt_worker_running(w.workers[i]), "worker %d exited", i);
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->dlq, NULL), 0);
    lqt_sql(ns, "COMMIT");
    lqt_step("locks released, %ld payments stored meanwhile", during - before);
    /* Only duplicates, which take no lock, could be answered meanwhile: none was stored. */
    ck_assert_int_eq(during, before);
    lqt_flow_settle(&w, 0);
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
    lqt_flow w;
    int64_t took;
    int code;

    lqt_flow_init(&w, ns, 2000, NULL);
    w.publisher = lqt_publisher_start(ns, (const char *const *)w.files, 0);
    lqt_publisher_wait(w.publisher, 60);
    /* A memory alarm: the broker blocks every connection that publishes. */
    lqt_stack_ctl("set_vm_memory_high_watermark", "0.000001");
    lqt_step("memory alarm raised");
    w.worker_env = flow_env;
    for (int i = 0; i < N_WORKERS; i++)
        lqt_flow_start_worker(&w, i);
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
    lqt_flow_start_worker(&w, 0);
    lqt_stack_ctl("set_vm_memory_high_watermark", "0.4");
    lqt_step("memory alarm cleared");
    w.publisher = NULL;
    lqt_flow_settle(&w, 0);
    workload_finish(&w);
}
END_TEST

/* ------------------------------------------------------------ 10. committed, never confirmed */

START_TEST(test_lost_confirm)
{
    lqt_ns *ns = lqt_ns_create();
    lqt_flow w;
    long committed = 0, last = -1;
    int64_t deadline;

    lqt_flow_init(&w, ns, 2000, NULL);
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
    lqt_flow_start_worker(&w, 0);
    lqt_worker_wait_log(w.workers[0], "blocked publishing");
    /* What it committed is in the payments table, and stays as it is: it waits, blocked. */
    deadline = lqt_now_ms() + LQT_WAIT_S * 1000;
    while ((committed = lqt_flow_stored(ns)) == 0 || committed != last) {
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
        lqt_flow_start_worker(&w, i);
    /* Its payments come back, committed already: each must still get its first outcome. */
    lqt_flow_settle(&w, 0);
    workload_finish(&w);
}
END_TEST

/* ------------------------------------------------------------ 11. holds expiring under crashes */

/* A few accounts, so that the holds and the sweeps contend for them. */
#define EXPIRING_ACCOUNTS 5
/* Holds of timeout_s 1 to 3, published while workers are killed... */
#define N_EXPIRING 2500
/* ...then holds that expire while the broker blocks publishing, when both workers are killed. */
#define N_LATE         200
#define LATE_TIMEOUT_S 8
#define EXPIRING_CHUNK 250
#define N_EXPIRING_ALL (N_EXPIRING + N_LATE)
/*
 * An expiry whose event went with a killed worker is published again 60 s
 * after it was last published (docs/protocol.md section 14.7): waited for,
 * this long at most after the workers were started again.
 */
#define REPUBLISH_WAIT_S 90
/* While a worker runs, an expiry is released within this of its time (section 14). */
#define RELEASED_WITHIN_US (5 * 1000000LL)

/* A hold of the scenario, and what its events and the histories told. */
typedef struct expiring {
    char id[16]; /* "xh-0000" */
    int timeout_s;
    int n_legs;
    int debit[2], credit[2]; /* account indexes */
    int64_t amount[2];
    int n_hold_events;
    bool applied;
    int64_t expires_us; /* the hold's processed_at + timeout_s */
    int n_expired_events;
    char released_at[64]; /* the first hold.expired event's processed_at */
    int64_t released_us;
    bool owed_at_kill; /* its expiry's event was not seen confirmed when both workers died */
    int entries[EXPIRING_ACCOUNTS][2]; /* per account: hold entries, expiry entries */
} expiring;

typedef struct expiring_run {
    lqt_flow w; /* its workers only: no transfer workload */
    lqt_listener *events;
    expiring holds[N_EXPIRING_ALL];
    size_t seen;
    size_t n_placed;  /* holds with their command's event */
    size_t n_expired; /* holds with a hold.expired event */
} expiring_run;

static expiring *expiring_find(expiring_run *run, const char *id)
{
    int k = -1;

    ck_assert_msg(sscanf(id, "xh-%d", &k) == 1 && k >= 0 && k < N_EXPIRING_ALL,
                  "an event or entry for an id never sent: %s", id);
    return &run->holds[k];
}

/* Receive for ms milliseconds, and count what came. */
static void expiring_receive(expiring_run *run, int ms)
{
    lqt_drain_events(run->events, ms);
    for (; run->seen < lqt_event_count(run->events); run->seen++) {
        const lqt_event *e = lqt_event_at(run->events, run->seen);
        expiring *h = expiring_find(run, e->id);
        int64_t at;
        ck_assert_msg(lqt_parse_utc_us(e->processed_at, &at), "%s", e->body);
        if (strcmp(e->routing_key, "hold.expired") == 0) {
            if (h->n_expired_events++ == 0) {
                snprintf(h->released_at, sizeof(h->released_at), "%s", e->processed_at);
                h->released_us = at;
                run->n_expired++;
            }
        } else if (h->n_hold_events++ == 0) {
            h->applied = strcmp(e->status, "applied") == 0;
            h->expires_us = at + h->timeout_s * 1000000LL;
            run->n_placed++;
        }
    }
}

/* The publisher's files (the flow's): chunks of holds, the late ones last. */
static void expiring_files(expiring_run *run)
{
    size_t n_files = 0, len = 0;
    char *text = malloc((size_t)EXPIRING_CHUNK * 512);

    run->w.files = calloc(N_EXPIRING_ALL / EXPIRING_CHUNK + 3, sizeof(*run->w.files));
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(run->w.files);
    for (int i = 0; i < N_EXPIRING_ALL; i++) {
        const expiring *h = &run->holds[i];
        len += (size_t)sprintf(text + len, "{\"type\":\"hold\",\"id\":\"%s\",\"timeout_s\":%d,",
                               h->id, h->timeout_s);
        if (h->n_legs == 1) {
            len += (size_t)sprintf(text + len,
                                   "\"debit\":\"hx:%d\",\"credit\":\"hx:%d\",\"amount\":%" PRId64
                                   ",\"currency\":\"EUR\"}\n",
                                   h->debit[0], h->credit[0], h->amount[0]);
        } else {
            len += (size_t)sprintf(text + len, "\"legs\":[");
            for (int l = 0; l < h->n_legs; l++)
                len += (size_t)sprintf(
                    text + len,
                    "%s{\"debit\":\"hx:%d\",\"credit\":\"hx:%d\",\"amount\":%" PRId64
                    ",\"currency\":\"EUR\"}",
                    l ? "," : "", h->debit[l], h->credit[l], h->amount[l]);
            len += (size_t)sprintf(text + len, "]}\n");
        }
        if (i + 1 == N_EXPIRING || i + 1 == N_EXPIRING_ALL ||
            (i < N_EXPIRING && (i + 1) % EXPIRING_CHUNK == 0)) {
            char name[32];
            snprintf(name, sizeof(name), "holds-%02zu.jsonl", n_files);
            run->w.files[n_files] = strdup(lqt_write_file(run->w.ns, name, text));
            ck_assert_ptr_nonnull(run->w.files[n_files]);
            run->w.files[++n_files] = NULL;
            len = 0;
        }
    }
    free(text);
}

/*
 * How many expiries released since the wall-clock time us (the database's
 * clock is the same) owe their event: published while the broker blocked
 * publishing, they cannot have been confirmed.
 */
static long expiries_owed_since(lqt_ns *ns, int64_t us)
{
    char since[32], *v;
    long n;

    snprintf(since, sizeof(since), "%.6f", (double)us / 1e6);
    v = lqt_sql_value(ns,
                      "SELECT count(*) FROM ops_hold_expiry_events"
                      " WHERE released_at >= to_timestamp($1::double precision)",
                      since);
    n = strtol(v, NULL, 10);
    free(v);
    return n;
}

/* Every entry of every account's history, counted per hold; each history whole. */
static void expiring_histories(expiring_run *run)
{
    for (int k = 0; k < EXPIRING_ACCOUNTS; k++) {
        char id[16];
        lqt_history h;
        snprintf(id, sizeof(id), "hx:%d", k);
        lqt_history_all(run->w.ns, id, &h);
        lqt_expect_history_consistent(run->w.ns, id, &h);
        for (size_t i = 1; i < h.n; i++) {
            const lqt_entry *e = &h.entries[i];
            expiring *x = expiring_find(run, e->command);
            bool expiry = strcmp(e->type, "expiry") == 0;
            ck_assert_msg(expiry || strcmp(e->type, "hold") == 0,
                          "account %s entry %" PRId64 ": type %s of %s", id, e->seq, e->type,
                          e->command);
            ck_assert_msg(e->leg >= 1 && e->leg <= x->n_legs &&
                              (x->debit[e->leg - 1] == k || x->credit[e->leg - 1] == k),
                          "account %s entry %" PRId64 ": leg %d of %s does not name it", id, e->seq,
                          e->leg, x->id);
            x->entries[k][expiry]++;
            if (expiry) {
                int64_t at;
                /* Written by the sweep that released it, a moment after it began. */
                ck_assert(lqt_parse_utc_us(e->at, &at));
                ck_assert_msg(at >= x->released_us,
                              "account %s entry %" PRId64
                              ": the expiry of %s at %s, released at %s",
                              id, e->seq, x->id, e->at, x->released_at);
            }
        }
        lqt_history_release(&h);
    }
}

START_TEST(test_holds_expiring)
{
    static expiring_run run;
    const char *const worker_env[] = {"LEDGERQ_PREFETCH=200", "LEDGERQ_BATCH_MAX=50", NULL};
    char accounts[EXPIRING_ACCOUNTS * 80] = "";
    const lqt_event **index;
    int kills = 0;
    size_t n_events, owed = 0, late = 0, duplicates = 0;
    int64_t deadline, alarm_us, restart_us;
    lqt_output out;

    memset(&run, 0, sizeof(run));
    run.w.ns = lqt_ns_create();
    run.w.rng = 0x9E3779B97F4A7C15ULL ^ (unsigned)time(NULL) ^ (unsigned)getpid();
    run.events = lqt_listen(run.w.ns);
    lqt_step("%d holds over %d accounts, rng %" PRIu64, N_EXPIRING_ALL, EXPIRING_ACCOUNTS,
             run.w.rng);
    for (int k = 0; k < EXPIRING_ACCOUNTS; k++)
        snprintf(accounts + strlen(accounts), sizeof(accounts) - strlen(accounts),
                 "{\"id\":\"hx:%d\",\"currency\":\"EUR\",\"allow_negative\":true}\n", k);
    lqt_run_ok(run.w.ns, "account", "import", "--file",
               lqt_write_file(run.w.ns, "accounts.jsonl", accounts));
    for (int i = 0; i < N_EXPIRING_ALL; i++) {
        expiring *h = &run.holds[i];
        snprintf(h->id, sizeof(h->id), "xh-%04d", i);
        h->timeout_s = i < N_EXPIRING ? 1 + (int)(lqt_rng(&run.w.rng) % 3) : LATE_TIMEOUT_S;
        /* One in eight of two legs, the first account debited by both. */
        h->n_legs = i % 8 == 0 ? 2 : 1;
        for (int l = 0; l < h->n_legs; l++) {
            h->debit[l] = l ? h->debit[0] : (int)(lqt_rng(&run.w.rng) % EXPIRING_ACCOUNTS);
            do
                h->credit[l] = (int)(lqt_rng(&run.w.rng) % EXPIRING_ACCOUNTS);
            while (h->credit[l] == h->debit[l]);
            h->amount[l] = 1 + lqt_rng(&run.w.rng) % 1000;
        }
    }
    expiring_files(&run);

    /*
     * Two workers; one of them killed every second or two while the holds
     * come (the publisher pauses 1.5 s between chunks) and expire.
     */
    lqt_flow_start(&run.w, 2, worker_env, 1500);
    while (!lqt_publisher_done(run.w.publisher)) {
        int victim = (int)(lqt_rng(&run.w.rng) % 2);
        expiring_receive(&run, 500 + (int)(lqt_rng(&run.w.rng) % 1500));
        lqt_flow_wait_consuming(run.w.workers[victim]);
        lqt_step("kill -9 worker %d (pid %d); %zu holds placed, %zu expiries seen", victim,
                 (int)lqt_worker_pid(run.w.workers[victim]), run.n_placed, run.n_expired);
        lqt_worker_kill(run.w.workers[victim]);
        lqt_flow_start_worker(&run.w, victim);
        kills++;
    }
    lqt_publisher_wait(run.w.publisher, 60);
    run.w.publisher = NULL;
    ck_assert_int_ge(kills, 5);
    deadline = lqt_now_ms() + LQT_WAIT_S * 1000;
    while (run.n_placed < N_EXPIRING_ALL) {
        ck_assert_msg(lqt_now_ms() < deadline, "%zu of %d holds have their event", run.n_placed,
                      N_EXPIRING_ALL);
        expiring_receive(&run, 100);
    }

    /*
     * The late holds expire while the broker blocks publishing (a memory
     * alarm): the sweeps release them, but their events cannot go out.
     * Both workers are then killed: those events are lost with them, and
     * owed.
     */
    lqt_stack_ctl("set_vm_memory_high_watermark", "0");
    alarm_us = lqt_wall_us();
    lqt_step("memory alarm raised, %zu holds placed, %zu expiries seen", run.n_placed,
             run.n_expired);
    deadline = lqt_now_ms() + LQT_WAIT_S * 1000;
    {
        long released = 0, last = -1;
        /* Until the sweeps released some since, and stopped (blocked) or ran out of holds. */
        while ((released = expiries_owed_since(run.w.ns, alarm_us)) == 0 || released != last) {
            ck_assert_msg(lqt_now_ms() < deadline,
                          "%ld holds released while the broker blocks, still changing", released);
            last = released;
            expiring_receive(&run, 2000);
        }
        lqt_step("%ld holds released while the broker blocks", released);
    }
    {
        PGresult *res =
            PQexec(run.w.ns->db, "SELECT x.hold_id FROM ops_hold_expiry_events x"
                                 " WHERE NOT EXISTS (SELECT FROM ops_confirmed_batches b"
                                 " WHERE b.batch_id = x.batch_id)");
        ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
        for (int row = 0; row < PQntuples(res); row++) {
            expiring_find(&run, PQgetvalue(res, row, 0))->owed_at_kill = true;
            owed++;
        }
        PQclear(res);
    }
    for (int i = 0; i < 2; i++) {
        lqt_step("kill -9 worker %d (pid %d)", i, (int)lqt_worker_pid(run.w.workers[i]));
        lqt_worker_kill(run.w.workers[i]);
    }
    lqt_stack_ctl("set_vm_memory_high_watermark", "0.4");
    lqt_step("memory alarm cleared; %zu expiries owed their event", owed);
    ck_assert_uint_gt(owed, 0);
    for (int i = 0; i < 2; i++)
        lqt_flow_start_worker(&run.w, i);
    restart_us = lqt_wall_us();

    /* Every expired hold gets its event, the lost ones published again: bounded. */
    deadline = lqt_now_ms() + REPUBLISH_WAIT_S * 1000;
    while (run.n_expired < N_EXPIRING_ALL) {
        if (lqt_now_ms() >= deadline) {
            for (int i = 0; i < N_EXPIRING_ALL; i++)
                if (run.holds[i].n_expired_events == 0)
                    fprintf(stderr, "%s: no hold.expired event%s\n", run.holds[i].id,
                            run.holds[i].owed_at_kill ? " (owed when the workers died)" : "");
            lqt_print_logs(run.w.ns);
            ck_abort_msg("%d s after the workers were started again, %zu of %d holds got their "
                         "hold.expired event",
                         REPUBLISH_WAIT_S, run.n_expired, N_EXPIRING_ALL);
        }
        expiring_receive(&run, 500);
    }
    lqt_step("every hold got its hold.expired event, %.1f s after the restart",
             (double)(lqt_wall_us() - restart_us) / 1e6);
    /* None left pending, a worker running. */
    {
        char *pending = lqt_sql_value(run.w.ns,
                                      "SELECT count(*) FROM holds"
                                      " WHERE status = 'pending'",
                                      NULL);
        ck_assert_str_eq(pending, "0");
        free(pending);
    }
    expiring_receive(&run, 1000);
    lqt_flow_settle(&run.w, 0);

    /*
     * Each hold: applied once, released once (its hold.expired events all
     * the same, duplicate false), not before its expiry time, and within
     * 5 s of it while a worker could publish.
     */
    n_events = lqt_event_count(run.events);
    index = lqt_events_by_id(run.events);
    for (size_t i = 0, n; i < n_events; i += n) {
        expiring *h = expiring_find(&run, index[i]->id);
        const lqt_event *commands[64], *first = NULL;
        size_t n_commands = 0;
        for (n = 0; i + n < n_events && strcmp(index[i + n]->id, h->id) == 0; n++) {
            const lqt_event *e = index[i + n];
            if (strcmp(e->routing_key, "hold.expired") != 0) {
                ck_assert_msg(n_commands < 64, "%s: too many events", h->id);
                commands[n_commands++] = e;
                continue;
            }
            ck_assert_msg(strcmp(e->type, "hold") == 0 && strcmp(e->status, "expired") == 0 &&
                              e->reason_null && e->detail_null && !e->duplicate &&
                              strcmp(e->correlation_id, h->id) == 0 &&
                              strcmp(e->processed_at, h->released_at) == 0,
                          "%s: %s, the first said %s", h->id, e->body, h->released_at);
        }
        first = lqt_expect_first_outcome(h->id, commands, n_commands, NULL);
        ck_assert_msg(strcmp(first->status, "applied") == 0 &&
                          strcmp(first->routing_key, "hold.applied") == 0,
                      "%s: %s", h->id, first->body);
        duplicates += (size_t)h->n_expired_events - 1;
        ck_assert_msg(h->released_us >= h->expires_us, "%s: released at %s, before its expiry time",
                      h->id, h->released_at);
        if (h->expires_us >= alarm_us - RELEASED_WITHIN_US && h->expires_us <= restart_us) {
            /* The sweeps stopped, blocked, or no worker ran: excused. */
            late++;
            continue;
        }
        ck_assert_msg(h->released_us <= h->expires_us + RELEASED_WITHIN_US,
                      "%s: released at %s, %" PRId64 " ms after its expiry time", h->id,
                      h->released_at, (h->released_us - h->expires_us) / 1000);
    }
    free(index);
    lqt_step("%zu hold.expired events published again; %zu holds expired while no worker could "
             "publish",
             duplicates, late);

    /* Released once: one expiry entry per leg on each account the leg names, as hold entries. */
    expiring_histories(&run);
    for (int i = 0; i < N_EXPIRING_ALL; i++) {
        const expiring *h = &run.holds[i];
        for (int k = 0; k < EXPIRING_ACCOUNTS; k++) {
            int legs = 0;
            for (int l = 0; l < h->n_legs; l++)
                legs += (h->debit[l] == k) + (h->credit[l] == k);
            ck_assert_msg(h->entries[k][0] == legs && h->entries[k][1] == legs,
                          "%s on hx:%d: %d hold entries, %d expiry entries, its legs name it %d "
                          "times",
                          h->id, k, h->entries[k][0], h->entries[k][1], legs);
        }
    }
    /* payment show says so, for a sample. */
    for (int i = 0; i < N_EXPIRING_ALL; i += 50) {
        const expiring *h = &run.holds[i];
        lqt_payment p;
        int64_t expires;
        ck_assert_int_eq(lqt_payment_show(run.w.ns, h->id, &p, NULL), 0);
        ck_assert_msg(strcmp(p.hold_status, "expired") == 0 &&
                          lqt_parse_utc_us(p.expires_at, &expires) && expires == h->expires_us,
                      "%s: %s", h->id, p.raw);
    }
    /* Nothing held, nothing posted; the invariants hold; nothing dead-lettered. */
    for (int k = 0; k < EXPIRING_ACCOUNTS; k++) {
        char id[16];
        lqt_account a;
        snprintf(id, sizeof(id), "hx:%d", k);
        lqt_account_show(run.w.ns, id, &a);
        ck_assert_msg(a.balance == 0 && a.held_debits == 0 && a.held_credits == 0, "%s", a.raw);
    }
    ck_assert_msg(lqt_run(run.w.ns, &out, "audit") == 0, "audit exited %d: %s%s", out.status,
                  out.out, out.err);
    lqt_output_release(&out);
    lqt_flow_expect_no_dead_letters(&run.w);
    lqt_flow_release(&run.w);
    lqt_ns_destroy(run.w.ns);
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
        LQT_CASE("holds_expiring", test_holds_expiring, .after = clear_alarm),
    };

    return LQT_MAIN(suite, cases);
}
