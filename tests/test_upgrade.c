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
 *
 * The history (docs/protocol.md section 15.7): migrate back-fills it from a
 * ledger the previous release built, the schema writes it for what the
 * previous release applies afterwards, this release writes its own; every
 * account's statement reads as the order the changes were applied in.
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

/* ------------------------------------------------------------ 5. the history back-filled */

/*
 * The accounts of the back-fill case: opened by the previous release's CLI,
 * but for the last four, opened after migrate (erin by the previous
 * release's `account open`, gina and hank by its `account import`, frank by
 * an account.open this release's worker applies).
 */
static const struct {
    const char *id;
    const char *currency;
    bool allow_negative;
    const char *opening; /* the command of its opening; NULL: cli-open-<id> */
} bf_accounts[] = {
    {"bank", "EUR", true, NULL},     {"alice", "EUR", false, NULL},
    {"bob", "EUR", false, NULL},     {"carol", "EUR", false, NULL},
    {"usd:bank", "USD", true, NULL}, {"dave", "USD", false, NULL},
    {"erin", "EUR", false, NULL},    {"frank", "EUR", false, "open-frank"},
    {"gina", "EUR", false, NULL},    {"hank", "EUR", true, NULL},
};
#define BF_ACCOUNTS   (sizeof(bf_accounts) / sizeof(bf_accounts[0]))
#define BF_OPENED_OLD 6 /* opened before migrate */
#define BF_LEGS_MAX   3
#define BF_COMMANDS   1000

/* A command the case sent, and its outcome. */
typedef struct bf_command {
    char id[32];
    int phase;          /* 1: previous release before migrate, 2: after, 3: this release */
    const char *update; /* an account.update's status, NULL for a transfer or an opening */
    int account;        /* an account command's account, else -1 */
    size_t n_legs;
    struct {
        int debit, credit;
        int64_t amount;
    } legs[BF_LEGS_MAX];
    const lqt_event *event;
} bf_command;

typedef struct bf_case {
    lqt_ns *ns;
    lqt_listener *events;
    size_t awaited;
    uint64_t rng;
    bf_command commands[BF_COMMANDS];
    size_t n;
} bf_case;

/* Queue a transfer of phase with the legs given (triples debit, credit, amount). */
static bf_command *bf_transfer(bf_case *c, int phase, size_t n_legs, const int64_t *legs)
{
    bf_command *t = &c->commands[c->n];
    char body[1024];
    size_t len;

    ck_assert_uint_lt(c->n, BF_COMMANDS);
    memset(t, 0, sizeof(*t));
    /* Ids whose order differs from the order sent: the back-fill's tie-break shows. */
    snprintf(t->id, sizeof(t->id), "p%d-%03zu", phase, (c->n * 7919) % 1000);
    t->phase = phase;
    t->account = -1;
    t->n_legs = n_legs;
    len = (size_t)snprintf(body, sizeof(body), "{\"id\":\"%s\",\"legs\":[", t->id);
    for (size_t l = 0; l < n_legs; l++) {
        t->legs[l].debit = (int)legs[3 * l];
        t->legs[l].credit = (int)legs[3 * l + 1];
        t->legs[l].amount = legs[3 * l + 2];
        len += (size_t)snprintf(
            body + len, sizeof(body) - len,
            "%s{\"debit\":\"%s\",\"credit\":\"%s\",\"amount\":%" PRId64 ",\"currency\":\"%s\"}",
            l ? "," : "", bf_accounts[t->legs[l].debit].id, bf_accounts[t->legs[l].credit].id,
            t->legs[l].amount, bf_accounts[t->legs[l].debit].currency);
    }
    snprintf(body + len, sizeof(body) - len, "]}");
    lqt_send(c->ns, &(lqt_msg){.body = body});
    c->n++;
    return t;
}

/*
 * Queue n random single-leg transfers of phase among the first n_accounts
 * accounts: mostly within a currency, sometimes across (currency_mismatch),
 * and enough from accounts without a floor that some lack funds.
 */
static void bf_random_transfers(bf_case *c, int phase, int n, int n_accounts)
{
    for (int i = 0; i < n; i++) {
        int64_t leg[3];
        leg[0] = lqt_rng(&c->rng) % (uint32_t)n_accounts;
        do {
            leg[1] = lqt_rng(&c->rng) % (uint32_t)n_accounts;
        } while (leg[1] == leg[0] ||
                 (strcmp(bf_accounts[leg[0]].currency, bf_accounts[leg[1]].currency) != 0 &&
                  lqt_rng(&c->rng) % 20 != 0));
        leg[2] = 1 + lqt_rng(&c->rng) % 1000;
        bf_transfer(c, phase, 1, leg);
    }
}

/* Queue an account command (JSON body; id, account and update as sent). */
static void bf_account_command(bf_case *c, int phase, const char *id, int account,
                               const char *update, const char *body)
{
    bf_command *t = &c->commands[c->n++];

    memset(t, 0, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->phase = phase;
    t->account = account;
    t->update = update;
    lqt_send(c->ns, &(lqt_msg){.body = body, .routing_key = "account.x"});
}

/*
 * Have the commands of phase applied by w, or (w NULL) by a worker of the
 * binary set now, started once they are all queued; wait for their events.
 */
static void bf_run(bf_case *c, int phase, lqt_worker *w)
{
    /* Batches of 50: transfers share a processed_at, and there are several of them. */
    const char *const env[] = {"LEDGERQ_BATCH_MAX=50", NULL};
    size_t n_phase = 0;

    lqt_confirm(c->ns);
    if (w == NULL)
        w = lqt_worker_start(c->ns, env);
    for (size_t i = 0; i < c->n; i++)
        n_phase += c->commands[i].phase == phase;
    c->awaited += n_phase;
    lqt_wait_events(c->events, c->awaited);
    ck_assert_int_eq(lqt_worker_stop(w), 0);
    for (size_t i = 0; i < c->n; i++) {
        bf_command *t = &c->commands[i];
        /* The listener's array of events moves as it grows: every pointer taken again. */
        t->event = lqt_event_find(c->events, t->id, 0);
        if (t->phase != phase)
            continue;
        ck_assert_msg(lqt_event_count_id(c->events, t->id) == 1, "%s: %zu events", t->id,
                      lqt_event_count_id(c->events, t->id));
        ck_assert_msg(!t->event->duplicate, "%s: %s", t->id, t->event->body);
        if (strcmp(t->event->status, "applied") != 0)
            ck_assert_msg(strcmp(t->event->reason, "insufficient_funds") == 0 ||
                              strcmp(t->event->reason, "currency_mismatch") == 0 ||
                              strcmp(t->event->reason, "account_frozen") == 0,
                          "%s: %s", t->id, t->event->body);
    }
}

static bool bf_applied(const bf_command *t)
{
    return t->event && strcmp(t->event->status, "applied") == 0;
}

/* The order the back-fill writes phase 1's transfers in: processed_at, then id. */
static int bf_backfill_order(const void *a, const void *b)
{
    const bf_command *x = *(const bf_command *const *)a, *y = *(const bf_command *const *)b;
    int r = strcmp(x->event->processed_at, y->event->processed_at);

    return r ? r : strcmp(x->id, y->id);
}

/* What an entry must be. */
typedef struct bf_entry {
    const bf_command *command;
    int leg; /* 0 for an account command */
    int64_t amount;
} bf_entry;

/*
 * The history of account k, read with this release's CLI, is: its opening
 * under opening_command (at created_at when at_created), then exactly the
 * entries expected, in that order, each with its running balance; and it
 * is whole (lqt_expect_history_consistent()).  Entries of the phases
 * after 1 are written when applied: not before their transaction began.
 */
static void bf_expect_history(lqt_ns *ns, size_t k, const char *opening_command, bool at_created,
                              const bf_entry *expected, size_t n_expected)
{
    const char *id = bf_accounts[k].id;
    lqt_history h;
    lqt_account a;
    int64_t balance = 0;

    lqt_history_all(ns, id, &h);
    lqt_expect_history_consistent(ns, id, &h);
    lqt_account_show(ns, id, &a);
    ck_assert_msg(h.n == 1 + n_expected, "account %s: %zu entries, expected %zu", id, h.n,
                  1 + n_expected);
    ck_assert_msg(strcmp(h.entries[0].type, "account.open") == 0 &&
                      strcmp(h.entries[0].command, opening_command) == 0,
                  "account %s: entry 1 is %s %s, expected the opening %s", id, h.entries[0].type,
                  h.entries[0].command, opening_command);
    if (at_created)
        ck_assert_msg(strcmp(h.entries[0].at, a.created_at) == 0,
                      "account %s: the opening at %s, created at %s", id, h.entries[0].at,
                      a.created_at);
    for (size_t i = 0; i < n_expected; i++) {
        const lqt_entry *e = &h.entries[i + 1];
        const bf_entry *x = &expected[i];
        const char *type = x->command->update   ? "account.update"
                           : x->command->n_legs ? "transfer"
                                                : "account.open";
        balance += x->amount;
        ck_assert_msg(strcmp(e->command, x->command->id) == 0 && strcmp(e->type, type) == 0 &&
                          e->leg == x->leg && e->amount == x->amount && e->balance == balance &&
                          e->held_debits == 0 && e->held_credits == 0,
                      "account %s entry %" PRId64 ": %s %s leg %d amount %" PRId64
                      " balance %" PRId64 ", expected %s %s leg %d amount %" PRId64
                      " balance %" PRId64,
                      id, e->seq, e->command, e->type, e->leg, e->amount, e->balance,
                      x->command->id, type, x->leg, x->amount, balance);
        if (x->command->phase == 1)
            ck_assert_msg(strcmp(e->at, x->command->event->processed_at) == 0,
                          "account %s entry %" PRId64 ": at %s, its transfer's processed_at %s", id,
                          e->seq, e->at, x->command->event->processed_at);
        else
            ck_assert_msg(strcmp(e->at, x->command->event->processed_at) >= 0,
                          "account %s entry %" PRId64 ": at %s, before its command's "
                          "processed_at %s",
                          id, e->seq, e->at, x->command->event->processed_at);
        if (x->command->update) {
            char want[64];
            snprintf(want, sizeof(want), "{\"status\":\"%s\"}", x->command->update);
            ck_assert_msg(strcmp(e->change, want) == 0, "account %s entry %" PRId64 ": change %s",
                          id, e->seq, e->change);
        }
    }
    ck_assert_int_eq(balance, a.balance);
    lqt_history_release(&h);
}

/* Append the entries the applied commands (in that order) make on account k. */
static size_t bf_entries_of(size_t k, const bf_command *const *commands, size_t n, bf_entry *ret,
                            size_t n_ret)
{
    for (size_t i = 0; i < n; i++) {
        const bf_command *t = commands[i];
        if (!bf_applied(t))
            continue;
        if (t->account >= 0) {
            /* An opening is the account's first entry, checked apart. */
            if ((size_t)t->account == k && t->update)
                ret[n_ret++] = (bf_entry){t, 0, 0};
            continue;
        }
        for (size_t l = 0; l < t->n_legs; l++) {
            if ((size_t)t->legs[l].debit == k)
                ret[n_ret++] = (bf_entry){t, (int)l + 1, -t->legs[l].amount};
            if ((size_t)t->legs[l].credit == k)
                ret[n_ret++] = (bf_entry){t, (int)l + 1, t->legs[l].amount};
        }
    }
    return n_ret;
}

START_TEST(test_backfill)
{
    static bf_case c;
    static const bf_command *order[BF_COMMANDS];
    static bf_entry expected[4 * BF_COMMANDS];
    lqt_output out;
    char *printed;
    size_t n_phase1 = 0, applied = 0;
    long old_entries;
    lqt_worker *w;

    memset(&c, 0, sizeof(c));
    c.ns = previous_release_ns();
    c.events = lqt_listen(c.ns);
    c.rng = 0x9E3779B97F4A7C15ULL;

    /* The previous release opens the accounts and applies a few hundred transfers. */
    lqt_use_binary(prev_bin());
    for (size_t k = 0; k < BF_OPENED_OLD; k++) {
        if (bf_accounts[k].allow_negative)
            lqt_run_ok(c.ns, "account", "open", bf_accounts[k].id, "--currency",
                       bf_accounts[k].currency, "--allow-negative");
        else
            lqt_run_ok(c.ns, "account", "open", bf_accounts[k].id, "--currency",
                       bf_accounts[k].currency);
    }
    bf_random_transfers(&c, 1, 150, BF_OPENED_OLD);
    {
        /* Several legs, one account twice, a later leg spending what an earlier one brought. */
        const int64_t legs[] = {0, 1, 500, 1, 2, 200, 1, 3, 100};
        bf_transfer(&c, 1, 3, legs);
    }
    bf_random_transfers(&c, 1, 150, BF_OPENED_OLD);
    /* Queued before the worker starts: large batches, many transfers sharing a processed_at. */
    bf_run(&c, 1, NULL);
    lqt_use_binary(NULL);
    n_phase1 = c.n;
    for (size_t i = 0; i < n_phase1; i++)
        applied += bf_applied(&c.commands[i]);
    lqt_step("%zu of %zu transfers applied by the previous release", applied, n_phase1);
    ck_assert_uint_gt(applied, n_phase1 / 2);
    ck_assert_uint_lt(applied, n_phase1);
    ck_assert_msg(bf_applied(&c.commands[150]), "the multi-leg transfer: %s",
                  c.commands[150].event->body);

    /* This release's migrate writes the history from the payments. */
    printed = migrate(c.ns);
    ck_assert_msg(strstr(printed, "applied migration 005_accounts_and_history.sql") != NULL, "%s",
                  printed);
    free(printed);
    for (size_t i = 0; i < n_phase1; i++)
        order[i] = &c.commands[i];
    qsort(order, n_phase1, sizeof(*order), bf_backfill_order);
    {
        /* Several transfers a batch, so that the order by id within a processed_at counts. */
        size_t batches = 1;
        for (size_t i = 1; i < n_phase1; i++)
            batches +=
                strcmp(order[i]->event->processed_at, order[i - 1]->event->processed_at) != 0;
        lqt_step("the previous release applied them in %zu batches", batches);
        ck_assert_uint_gt(batches, 2);
        ck_assert_uint_lt(batches, n_phase1 / 2);
    }
    for (size_t k = 0; k < BF_OPENED_OLD; k++) {
        char opening[96];
        size_t n = bf_entries_of(k, order, n_phase1, expected, 0);
        snprintf(opening, sizeof(opening), "cli-open-%s", bf_accounts[k].id);
        bf_expect_history(c.ns, k, opening, true, expected, n);
    }
    ck_assert_msg(lqt_run(c.ns, &out, "audit") == 0, "audit after migrate exited %d: %s%s",
                  out.status, out.out, out.err);
    lqt_output_release(&out);
    /* The openings back-filled have no command behind them. */
    ck_assert_int_eq(lqt_payment_show(c.ns, "cli-open-alice", &(lqt_payment){0}, NULL), 1);
    old_entries = sql_long(c.ns, "SELECT count(*) FROM account_entries");

    /*
     * The previous release goes on against the new schema: its CLI opens an
     * account, its worker applies transfers; the schema writes their
     * history.
     */
    lqt_use_binary(prev_bin());
    lqt_run_ok(c.ns, "account", "open", "erin", "--currency", "EUR");
    lqt_run_ok(c.ns, "account", "import", "--file",
               lqt_write_file(c.ns, "accounts.jsonl",
                              "{\"id\":\"gina\",\"currency\":\"EUR\"}\n"
                              "{\"id\":\"hank\",\"currency\":\"EUR\",\"allow_negative\":true}\n"));
    bf_random_transfers(&c, 2, 50, BF_OPENED_OLD + 1);
    {
        const int64_t legs[] = {0, 6, 300, 6, 1, 100, 1, 6, 50};
        bf_transfer(&c, 2, 3, legs);
    }
    bf_random_transfers(&c, 2, 50, BF_OPENED_OLD + 1);
    bf_run(&c, 2, NULL);
    lqt_use_binary(NULL);
    ck_assert_msg(bf_applied(&c.commands[n_phase1 + 50]), "the multi-leg transfer: %s",
                  c.commands[n_phase1 + 50].event->body);

    /*
     * Then this release's worker (which binds account.# as it starts): an
     * opening, transfers, a freeze and an unfreeze.
     */
    w = lqt_worker_start(c.ns, NULL);
    lqt_worker_wait_log(w, "consuming from queue");
    bf_account_command(&c, 3, "open-frank", 7, NULL,
                       "{\"type\":\"account.open\",\"id\":\"open-frank\",\"account\":\"frank\","
                       "\"currency\":\"EUR\"}");
    bf_random_transfers(&c, 3, 50, BF_ACCOUNTS);
    bf_account_command(&c, 3, "freeze-carol", 3, "frozen",
                       "{\"type\":\"account.update\",\"id\":\"freeze-carol\",\"account\":"
                       "\"carol\",\"status\":\"frozen\"}");
    bf_random_transfers(&c, 3, 50, BF_ACCOUNTS);
    bf_account_command(&c, 3, "unfreeze-carol", 3, "active",
                       "{\"type\":\"account.update\",\"id\":\"unfreeze-carol\",\"account\":"
                       "\"carol\",\"status\":\"active\"}");
    bf_random_transfers(&c, 3, 50, BF_ACCOUNTS);
    bf_run(&c, 3, w);
    for (size_t i = n_phase1; i < c.n; i++)
        ck_assert_msg(c.commands[i].account < 0 || bf_applied(&c.commands[i]), "%s: %s",
                      c.commands[i].id, c.commands[i].event->body);
    lqt_step("%ld entries after migrate, %ld now", old_entries,
             sql_long(c.ns, "SELECT count(*) FROM account_entries"));

    /*
     * Every history: the back-filled part as before, then the later
     * commands in the order one worker at a time applied them (the order
     * sent), whichever release wrote the entries.
     */
    for (size_t i = 0; i < c.n - n_phase1; i++)
        order[n_phase1 + i] = &c.commands[n_phase1 + i];
    for (size_t k = 0; k < BF_ACCOUNTS; k++) {
        char opening[96];
        size_t n = 0;
        if (k < BF_OPENED_OLD)
            n = bf_entries_of(k, order, n_phase1, expected, 0);
        n = bf_entries_of(k, order + n_phase1, c.n - n_phase1, expected, n);
        if (bf_accounts[k].opening)
            snprintf(opening, sizeof(opening), "%s", bf_accounts[k].opening);
        else
            snprintf(opening, sizeof(opening), "cli-open-%s", bf_accounts[k].id);
        bf_expect_history(c.ns, k, opening, k < BF_OPENED_OLD, expected, n);
    }
    ck_assert_uint_eq(lqt_expect_histories_consistent(c.ns), BF_ACCOUNTS);
    ck_assert_msg(lqt_run(c.ns, &out, "audit") == 0, "audit exited %d: %s%s", out.status, out.out,
                  out.err);
    lqt_output_release(&out);
    lqt_ns_destroy(c.ns);
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
        LQT_CASE("backfill", test_backfill),
    };
    const lqt_suite suite = {
        .name = "upgrade",
        .timeout_s = 600,
        .prepare = need_previous_release,
    };

    return LQT_MAIN(suite, cases);
}
