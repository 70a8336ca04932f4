/*
 * The worker's HTTP endpoint against a real broker and database (docs/protocol.md
 * section 11): /metrics counts exactly what was published, in Prometheus
 * text format; /readyz goes 503 while the database or the broker is away
 * and 200 again when it is back, with the worker still applying payments.
 *
 * "Away" without disturbing other tests: the database is the namespace's
 * own (its connections refused, the worker's terminated), the broker user
 * is the test's own (deleted, which closes its connections, then re-added).
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support.h"
#include "support_http.h"

/* A loopback port nobody listens on now. */
/* Start a worker serving HTTP on a fresh port; *ret_port gets it. */
static lqt_worker *start_worker(lqt_ns *ns, const char *amqp_url, int *ret_port)
{
    static char addr[64], url[512];
    const char *env[4] = {addr, NULL, NULL, NULL};
    lqt_worker *w;

    *ret_port = lqt_http_free_port();
    snprintf(addr, sizeof(addr), "LEDGERQ_HTTP_ADDR=127.0.0.1:%d", *ret_port);
    if (amqp_url) {
        snprintf(url, sizeof(url), "LEDGERQ_AMQP_URL=%s", amqp_url);
        env[1] = url;
    }
    w = lqt_worker_start(ns, env);
    ck_assert_int_eq(lqt_http_wait_status(*ret_port, "/readyz", 200, LQT_WAIT_S), 200);
    return w;
}

static void open_accounts(lqt_ns *ns)
{
    lqt_run_ok(ns, "account", "open", "bank", "--currency", "EUR", "--allow-negative");
    lqt_run_ok(ns, "account", "open", "alice", "--currency", "EUR");
    lqt_run_ok(ns, "account", "open", "bob", "--currency", "EUR");
}

START_TEST(metrics_count_what_was_published)
{
    lqt_ns *ns = lqt_ns_create();
    lqt_listener *events = lqt_listen(ns);
    static char body[65536];
    char json[256];
    regex_t line_re;
    int port;
    lqt_worker *w;

    open_accounts(ns);
    w = start_worker(ns, NULL, &port);
    ck_assert_int_eq(lqt_http_get(port, "/healthz", body, sizeof(body)), 200);

    /* 5 applied, 3 rejected, 2 duplicates, 2 dead-lettered: 12 messages. */
    for (int i = 0; i < 5; i++) {
        snprintf(json, sizeof(json),
                 "{\"id\":\"ok-%d\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":10,"
                 "\"currency\":\"EUR\"}",
                 i);
        lqt_pay(ns, json);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(json, sizeof(json),
                 "{\"id\":\"no-%d\",\"debit\":\"bob\",\"credit\":\"alice\",\"amount\":10,"
                 "\"currency\":\"EUR\"}",
                 i);
        lqt_pay(ns, json);
    }
    lqt_pay(ns, "{\"id\":\"ok-0\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":10,"
                "\"currency\":\"EUR\"}");
    lqt_pay(ns, "{\"id\":\"ok-1\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":10,"
                "\"currency\":\"EUR\"}");
    lqt_pay(ns, "not json");
    lqt_pay(ns, "{\"id\":\"bad\",\"amount\":1}");
    lqt_wait_events(events, 10);
    lqt_deliveries_free(lqt_get_n(ns, ns->dlq, 2, false), 2);

    /* Counted after the ack: wait until the last one shows, then compare all. */
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(lqt_http_get(port, "/metrics", body, sizeof(body)), 200);
        if (lqt_http_sample(body, "ledgerq_message_duration_seconds_count") == 12)
            break;
        usleep(100000);
    }
    ck_assert_double_eq(lqt_http_sample(body, "ledgerq_messages_total{outcome=\"applied\"}"), 5);
    ck_assert_double_eq(lqt_http_sample(body, "ledgerq_messages_total{outcome=\"rejected\"}"), 3);
    ck_assert_double_eq(lqt_http_sample(body, "ledgerq_messages_total{outcome=\"duplicate\"}"), 2);
    ck_assert_double_eq(lqt_http_sample(body, "ledgerq_messages_total{outcome=\"dead_lettered\"}"),
                        2);
    ck_assert_double_eq(lqt_http_sample(body, "ledgerq_message_duration_seconds_count"), 12);
    /* The 10 valid ones went through the database, in one or more batches. */
    ck_assert_double_eq(lqt_http_sample(body, "ledgerq_batch_size_sum"), 10);
    ck_assert_double_ge(lqt_http_sample(body, "ledgerq_db_commit_duration_seconds_count"), 1);
    ck_assert_double_eq(lqt_http_sample(body, "ledgerq_ready"), 1);
    ck_assert_double_eq(lqt_http_sample(body, "ledgerq_reconnects_total{target=\"db\"}"), 0);
    ck_assert_double_ge(lqt_http_sample(body, "ledgerq_queue_messages{state=\"ready\"}"), 0);

    /* Every line is a comment or a sample of the text exposition format. */
    ck_assert_int_eq(regcomp(&line_re,
                             "^(# (HELP|TYPE) [a-z_]+ .+|[a-zA-Z_:][a-zA-Z0-9_:]*"
                             "(\\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\\})? "
                             "([0-9]+(\\.[0-9]+)?|\\+Inf))$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    for (char *save = NULL, *line = strtok_r(body, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
        ck_assert_msg(regexec(&line_re, line, 0, NULL, 0) == 0, "not Prometheus text: \"%s\"",
                      line);
    regfree(&line_re);
    ck_assert_int_eq(lqt_http_get(port, "/nope", body, sizeof(body)), 404);
    ck_assert_int_eq(lqt_worker_stop(w), 0);
    lqt_ns_destroy(ns);
}
END_TEST

/* Run SQL on the admin database (not the namespace's: that one is being locked out). */
static void admin_sql(const char *sql, const char *param)
{
    PGconn *c = PQconnectdb(getenv("LEDGERQ_TEST_DATABASE_URL"));
    PGresult *res;

    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    res = PQexecParams(c, sql, param ? 1 : 0, NULL, &param, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK,
                  "%s", PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
}

START_TEST(readiness_follows_the_database)
{
    lqt_ns *ns = lqt_ns_create();
    lqt_listener *events = lqt_listen(ns);
    static char body[65536], sql[256];
    int port;
    lqt_worker *w;

    open_accounts(ns);
    w = start_worker(ns, NULL, &port);

    /* The database goes away: new connections refused, the worker's ended. */
    snprintf(sql, sizeof(sql), "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS false", ns->db_name);
    admin_sql(sql, NULL);
    admin_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
              " WHERE datname = $1 AND application_name = 'ledgerq'",
              ns->db_name);
    ck_assert_int_eq(lqt_http_wait_status(port, "/readyz", 503, LQT_WAIT_S), 503);
    ck_assert_int_eq(lqt_http_get(port, "/healthz", body, sizeof(body)), 200);
    ck_assert_int_eq(lqt_http_get(port, "/metrics", body, sizeof(body)), 200);
    ck_assert_double_eq(lqt_http_sample(body, "ledgerq_ready"), 0);
    ck_assert_double_eq(lqt_http_sample(body, "ledgerq_connected{target=\"db\"}"), 0);

    /* A payment sent meanwhile waits: it is not dead-lettered because of the outage. */
    lqt_pay(ns, "{\"id\":\"during\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":7,"
                "\"currency\":\"EUR\"}");

    /* And comes back. */
    snprintf(sql, sizeof(sql), "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS true", ns->db_name);
    admin_sql(sql, NULL);
    ck_assert_int_eq(lqt_http_wait_status(port, "/readyz", 200, LQT_WAIT_S), 200);
    lqt_wait_events(events, 1);
    ck_assert_str_eq(lqt_event_at(events, 0)->status, "applied");
    ck_assert_int_eq(lqt_balance(ns, "alice"), 7);
    ck_assert_int_eq(lqt_http_get(port, "/metrics", body, sizeof(body)), 200);
    ck_assert_double_ge(lqt_http_sample(body, "ledgerq_reconnects_total{target=\"db\"}"), 1);
    ck_assert_double_eq(lqt_http_sample(body, "ledgerq_messages_total{outcome=\"dead_lettered\"}"),
                        0);
    ck_assert_int_eq(lqt_worker_stop(w), 0);
    lqt_ns_destroy(ns);
}
END_TEST

START_TEST(readiness_follows_the_broker)
{
    lqt_ns *ns;
    lqt_listener *events;
    static char body[65536], user[64], url[512];
    const char *admin = getenv("LEDGERQ_TEST_AMQP_URL");
    const char *at = strrchr(admin, '@');
    int port;
    lqt_worker *w;

    if (!getenv("LEDGERQ_TEST_STACK_SCRIPT")) {
        printf("skipped: LEDGERQ_TEST_STACK_SCRIPT is not set (rabbitmqctl needed)\n");
        return;
    }
    ns = lqt_ns_create();
    events = lqt_listen(ns);
    open_accounts(ns);
    /* A broker user of this test's own: deleting it closes only our worker's connection. */
    snprintf(user, sizeof(user), "lqt_%d", (int)getpid());
    lqt_stack_ctl("add_user", user, "pw");
    lqt_stack_ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*");
    ck_assert_ptr_nonnull(at);
    snprintf(url, sizeof(url), "amqp://%s:pw%s", user, at);
    w = start_worker(ns, url, &port);

    lqt_stack_ctl("delete_user", user);
    ck_assert_int_eq(lqt_http_wait_status(port, "/readyz", 503, LQT_WAIT_S), 503);
    ck_assert_int_eq(lqt_http_get(port, "/healthz", body, sizeof(body)), 200);
    ck_assert_int_eq(lqt_http_get(port, "/metrics", body, sizeof(body)), 200);
    ck_assert_double_eq(lqt_http_sample(body, "ledgerq_connected{target=\"amqp\"}"), 0);

    lqt_stack_ctl("add_user", user, "pw");
    lqt_stack_ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*");
    ck_assert_int_eq(lqt_http_wait_status(port, "/readyz", 200, LQT_WAIT_S), 200);
    lqt_pay(ns, "{\"id\":\"after\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":3,"
                "\"currency\":\"EUR\"}");
    lqt_wait_events(events, 1);
    ck_assert_str_eq(lqt_event_at(events, 0)->status, "applied");
    ck_assert_int_eq(lqt_http_get(port, "/metrics", body, sizeof(body)), 200);
    ck_assert_double_ge(lqt_http_sample(body, "ledgerq_reconnects_total{target=\"amqp\"}"), 1);
    ck_assert_int_eq(lqt_worker_stop(w), 0);
    lqt_stack_ctl_try("delete_user", user);
    lqt_ns_destroy(ns);
}
END_TEST

int main(void)
{
    const lqt_suite suite = {.name = "http", .timeout_s = 120};
    const lqt_case cases[] = {
        LQT_CASE("metrics", metrics_count_what_was_published),
        LQT_CASE("readiness_database", readiness_follows_the_database),
        LQT_CASE("readiness_broker", readiness_follows_the_broker),
    };

    return LQT_MAIN(suite, cases);
}
