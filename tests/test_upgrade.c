/*
 * Upgrades without downtime (docs/upgrades.md): the previous release and
 * this one against one database, as a rolling upgrade has them.
 *
 * The previous release is LEDGERQ_PREV_BIN, built from its commit by
 * deploy/local/previous-release.sh (deploy/local/dev.sh test does it; the
 * suite is skipped without it).  What the user checks afterwards is what the
 * fault tests check: every payment one stored outcome, balances equal to
 * what the outcomes add up to, an event telling each outcome (at least one
 * with duplicate false), audit passing, nothing dead-lettered.
 */
#include <check.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ledgerq/release.h"
#include "support.h"
#include "support_http.h"
#include "workload.h"

#define N_PAYMENTS 20000
#define N_WORKERS  2
/* Per payment in the database: the flow outlasts the upgrade's steps. */
#define SLOW_MS 1

/* What the worker of this release logs while the schema does not fit it. */
#define UNFIT_LOG "consuming nothing until it fits"

static const char *prev_bin(void)
{
    return getenv("LEDGERQ_PREV_BIN");
}

static void need_previous_release(void)
{
    if (prev_bin() == NULL || access(prev_bin(), X_OK) != 0) {
        printf("skipped: LEDGERQ_PREV_BIN names no previous release (deploy/local/dev.sh test "
               "builds it with deploy/local/previous-release.sh)\n");
        exit(77);
    }
}

/* The worker settings of the flow: windows small enough to turn over often. */
static const char *const flow_env[] = {"LEDGERQ_PREFETCH=200", "LEDGERQ_BATCH_MAX=50",
                                       "LEDGERQ_SHUTDOWN_TIMEOUT_MS=10000", NULL};

static long sql_long(lqt_ns *ns, const char *sql)
{
    char *v = lqt_sql_value(ns, sql, NULL);
    long n;

    ck_assert_msg(v != NULL, "no row: %s", sql);
    n = strtol(v, NULL, 10);
    free(v);
    return n;
}

/* A namespace whose database the previous release migrated: schema version 3. */
static lqt_ns *previous_release_ns(void)
{
    lqt_ns *ns;

    lqt_use_binary(prev_bin());
    ns = lqt_ns_create();
    lqt_use_binary(NULL);
    ck_assert_int_eq(sql_long(ns, "SELECT max(version) FROM ledgerq_migrations"), 3);
    return ns;
}

/* `ledgerq migrate` of this release; returns what it printed. */
static char *migrate(lqt_ns *ns)
{
    lqt_output out;
    char *printed;

    ck_assert_msg(lqt_run(ns, &out, "migrate") == 0, "migrate exited %d: %s", out.status, out.err);
    printed = strdup(out.out);
    lqt_output_release(&out);
    ck_assert_ptr_nonnull(printed);
    return printed;
}

/* ------------------------------------------------------------ 1. a rolling upgrade */

START_TEST(test_rolling)
{
    lqt_ns *ns = previous_release_ns();
    lqt_flow f;
    char *printed, want[128];
    long before, old_rows, new_rows;

    /* The previous release imports the accounts, on the schema it migrated. */
    lqt_use_binary(prev_bin());
    lqt_flow_init(&f, ns, N_PAYMENTS, NULL);
    lqt_use_binary(NULL);
    lqt_slow_inserts(ns, SLOW_MS);
    /* Two workers of the previous release apply the flow. */
    lqt_use_binary(prev_bin());
    lqt_flow_start(&f, N_WORKERS, flow_env, 300);
    for (int i = 0; i < N_WORKERS; i++)
        lqt_flow_wait_consuming(f.workers[i]);
    lqt_use_binary(NULL);
    while (lqt_flow_stored(ns) < 1000)
        lqt_sleep_ms(100);
    ck_assert(lqt_flow_flowing(&f));

    /* This release migrates while they run. */
    before = lqt_flow_stored(ns);
    printed = migrate(ns);
    lqt_step("migrated with %ld payments stored: %s", before, printed);
    ck_assert_msg(strstr(printed, "applied migration 004_event_confirms.sql") != NULL, "%s",
                  printed);
    snprintf(want, sizeof(want), "schema at version %d, which releases from 0.1.0 on",
             lq_release_schema_needed());
    ck_assert_msg(strstr(printed, want) != NULL, "%s", printed);
    free(printed);
    /* The checksums of what the previous release applied are recorded now. */
    ck_assert_int_eq(sql_long(ns, "SELECT count(*) FROM ledgerq_migrations"
                                  " WHERE checksum IS NULL OR length(checksum) <> 64"),
                     0);

    /* The previous release's workers go on against the new schema. */
    before = lqt_flow_stored(ns);
    while (lqt_flow_stored(ns) < before + 1000)
        lqt_sleep_ms(100);
    for (int i = 0; i < N_WORKERS; i++)
        ck_assert_msg(lqt_worker_running(f.workers[i]), "old worker %d exited", i);
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->dlq, NULL), 0);

    /* Replaced one at a time: SIGTERM, then this release's worker in its place. */
    for (int i = 0; i < N_WORKERS; i++) {
        ck_assert(lqt_flow_flowing(&f));
        lqt_step("replacing worker %d", i);
        ck_assert_int_eq(lqt_worker_stop(f.workers[i]), 0);
        lqt_flow_start_worker(&f, i);
        lqt_flow_wait_consuming(f.workers[i]);
        before = lqt_flow_stored(ns);
        while (lqt_flow_stored(ns) < before + 500 && lqt_flow_flowing(&f))
            lqt_sleep_ms(100);
    }
    lqt_flow_settle(&f, 0);

    /* Both releases stored outcomes: the previous one without a batch. */
    old_rows = sql_long(ns, "SELECT count(*) FROM payments WHERE batch_id IS NULL");
    new_rows = sql_long(ns, "SELECT count(*) FROM payments WHERE batch_id IS NOT NULL");
    lqt_step("%ld outcomes stored by the previous release, %ld by this one", old_rows, new_rows);
    ck_assert_int_gt(old_rows, 0);
    ck_assert_int_gt(new_rows, 0);
    ck_assert_int_eq(lqt_log_count(ns, UNFIT_LOG), 0);

    lqt_flow_check(&f, NULL);
    lqt_flow_expect_no_dead_letters(&f);
    printed = migrate(ns);
    snprintf(want, sizeof(want), "applied 0 migrations; schema at version %d",
             lq_release_schema_needed());
    ck_assert_msg(strstr(printed, want) != NULL, "%s", printed);
    free(printed);
    lqt_flow_release(&f);
    lqt_ns_destroy(ns);
}
END_TEST

/* ------------------------------------------------------------ 2. a worker before migrate */

/* Publish n transfers from bank to alice, one EUR each. */
static void publish_transfers(lqt_ns *ns, const char *prefix, int n)
{
    char json[256];

    for (int i = 0; i < n; i++) {
        snprintf(json, sizeof(json),
                 "{\"id\":\"%s-%d\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":1,"
                 "\"currency\":\"EUR\"}",
                 prefix, i);
        lqt_send(ns, &(lqt_msg){.body = json});
    }
    lqt_confirm(ns);
}

/*
 * Opened by the previous release: this release's `account open` writes only
 * to a schema it fits (the one it migrated), and stores its commands.
 */
static void open_accounts(lqt_ns *ns)
{
    lqt_use_binary(prev_bin());
    lqt_run_ok(ns, "account", "open", "bank", "--currency", "EUR", "--allow-negative");
    lqt_run_ok(ns, "account", "open", "alice", "--currency", "EUR");
    lqt_use_binary(NULL);
}

/*
 * Start this release's worker with its HTTP endpoint on a fresh port
 * (*ret_port); ready tells whether it must become ready.
 */
static lqt_worker *start_worker(lqt_ns *ns, int *ret_port)
{
    static char addr[64];
    const char *env[] = {addr, "LEDGERQ_LOG_LEVEL=debug", NULL};

    *ret_port = lqt_http_free_port();
    snprintf(addr, sizeof(addr), "LEDGERQ_HTTP_ADDR=127.0.0.1:%d", *ret_port);
    return lqt_worker_start(ns, env);
}

/*
 * The worker stays unready and the queue keeps its n messages, with no
 * consumer, over several of the worker's checks.
 */
static void expect_untouched(lqt_ns *ns, lqt_worker *w, int port, uint32_t n)
{
    uint32_t consumers = 99;

    lqt_worker_wait_log(w, UNFIT_LOG);
    ck_assert_int_eq(lqt_http_wait_status(port, "/healthz", 200, LQT_WAIT_S), 200);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(lqt_http_wait_status(port, "/readyz", 503, 1), 503);
        ck_assert_uint_eq(lqt_queue_ready(ns, ns->queue, &consumers), n);
        ck_assert_uint_eq(consumers, 0);
        lqt_sleep_ms(1000);
    }
    ck_assert_msg(lqt_worker_running(w), "the worker exited");
    ck_assert_int_eq(sql_long(ns, "SELECT count(*) FROM payments"), 0);
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->dlq, NULL), 0);
    /* One line says why, however many times it checked. */
    ck_assert_int_eq(lqt_log_count(ns, UNFIT_LOG), 1);
}

START_TEST(test_worker_before_migrate)
{
    lqt_ns *ns = previous_release_ns();
    lqt_listener *events = lqt_listen(ns);
    lqt_worker *w;
    int port;
    char *printed, want[256];

    open_accounts(ns);
    publish_transfers(ns, "early", 5);
    w = start_worker(ns, &port);
    expect_untouched(ns, w, port, 5);
    snprintf(want, sizeof(want),
             "the database schema is at version 3, ledgerq " LEDGERQ_VERSION
             " needs version %d: run `ledgerq migrate` with this release",
             lq_release_schema_needed());
    ck_assert_uint_eq(lqt_log_count(ns, want), 1);

    /* Once migrated, it goes on by itself. */
    printed = migrate(ns);
    free(printed);
    lqt_wait_events(events, 5);
    for (int i = 0; i < 5; i++) {
        char id[32];
        snprintf(id, sizeof(id), "early-%d", i);
        ck_assert_msg(lqt_event_find(events, id, 0) != NULL, "no event for %s", id);
        ck_assert_str_eq(lqt_event_find(events, id, 0)->status, "applied");
    }
    ck_assert_int_eq(lqt_http_wait_status(port, "/readyz", 200, LQT_WAIT_S), 200);
    ck_assert_uint_eq(lqt_log_count(ns, "fits ledgerq " LEDGERQ_VERSION " now: going on"), 1);
    ck_assert_int_eq(lqt_balance(ns, "alice"), 5);
    ck_assert_int_eq(lqt_worker_stop(w), 0);
    lqt_ns_destroy(ns);
}
END_TEST

/* ------------------------------------------------------------ 3. a worker too old */

START_TEST(test_worker_too_old)
{
    lqt_ns *ns = lqt_ns_create();
    lqt_worker *w;
    lqt_output out;
    int port, future = lq_release_schema_needed() + 1;
    char sql[256], want[256], newer[64];

    open_accounts(ns);
    /* A later release's migration, which no release before 99.0.0 may run against. */
    snprintf(sql, sizeof(sql),
             "INSERT INTO ledgerq_migrations (version, name, checksum, oldest_release)"
             " VALUES (%d, 'from_the_future', repeat('f', 64), '99.0.0')",
             future);
    lqt_sql(ns, sql);
    publish_transfers(ns, "waiting", 7);
    w = start_worker(ns, &port);
    expect_untouched(ns, w, port, 7);
    snprintf(want, sizeof(want),
             "the database schema (version %d) needs ledgerq 99.0.0 or later, this is "
             "ledgerq " LEDGERQ_VERSION,
             future);
    ck_assert_uint_eq(lqt_log_count(ns, want), 1);
    /* SIGTERM while it waits: it exits cleanly, the messages are still there. */
    ck_assert_int_eq(lqt_worker_stop(w), 0);
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->queue, NULL), 7);

    /* migrate of this release applies nothing to a newer schema, and says so. */
    ck_assert_int_eq(lqt_run(ns, &out, "migrate"), 0);
    snprintf(want, sizeof(want), "applied 0 migrations; schema at version %d", future);
    snprintf(newer, sizeof(newer), "newer than this release's %d", future - 1);
    ck_assert_msg(strstr(out.out, want) != NULL && strstr(out.out, newer) != NULL, "%s", out.out);
    lqt_output_release(&out);
    lqt_ns_destroy(ns);
}
END_TEST

/* ------------------------------------------------------------ 4. migrate's own rules */

START_TEST(test_migrate_refuses_a_changed_migration)
{
    lqt_ns *ns = lqt_ns_create();
    lqt_output out;

    lqt_sql(ns, "UPDATE ledgerq_migrations SET checksum = repeat('0', 64) WHERE version = 2");
    ck_assert_int_eq(lqt_run(ns, &out, "migrate"), 1);
    ck_assert_msg(lqt_one_line(out.err), "%s", out.err);
    ck_assert_msg(strstr(out.err, "sql/002_postings_view.sql was changed after it was applied") !=
                      NULL,
                  "%s", out.err);
    lqt_output_release(&out);
    lqt_ns_destroy(ns);
}
END_TEST

START_TEST(test_migrate_waits_for_locks)
{
    lqt_ns *ns = previous_release_ns();
    const char *args[] = {"migrate", NULL};
    char log[512];
    int status;
    pid_t pid;

    /* A long transaction holds the payments table (a report, a backup). */
    lqt_sql(ns, "BEGIN");
    lqt_sql(ns, "LOCK TABLE payments IN ACCESS SHARE MODE");
    snprintf(log, sizeof(log), "%s", lqt_write_file(ns, "migrate.log", ""));
    pid = lqt_start(ns, log, args);
    /* It gives up its lock request in time, and says it will try again. */
    while (lqt_file_count(log, "trying again") < 2)
        lqt_sleep_ms(100);
    ck_assert_uint_eq(lqt_file_count(log, "migration 004_event_confirms.sql: "), 2);
    ck_assert_int_eq(sql_long(ns, "SELECT max(version) FROM ledgerq_migrations"), 3);
    lqt_sql(ns, "COMMIT");
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "migrate ended with %d", status);
    ck_assert_uint_eq(lqt_file_count(log, "applied migration 004_event_confirms.sql"), 1);
    ck_assert_int_eq(sql_long(ns, "SELECT max(version) FROM ledgerq_migrations"),
                     lq_release_schema_needed());
    lqt_ns_destroy(ns);
}
END_TEST

int main(void)
{
    const lqt_case cases[] = {
        LQT_CASE("rolling", test_rolling),
        LQT_CASE("worker_before_migrate", test_worker_before_migrate),
        LQT_CASE("worker_too_old", test_worker_too_old),
        LQT_CASE("migrate_refuses_a_changed_migration", test_migrate_refuses_a_changed_migration),
        LQT_CASE("migrate_waits_for_locks", test_migrate_waits_for_locks),
    };
    const lqt_suite suite = {
        .name = "upgrade",
        .timeout_s = 600,
        .prepare = need_previous_release,
    };

    return LQT_MAIN(suite, cases);
}
