/*
 * Unit tests of the metrics and the HTTP endpoint: what Prometheus and a
 * Kubernetes probe would see.  The endpoint is exercised over real loopback
 * HTTP.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ledgerq/error.h"
#include "ledgerq/http.h"
#include "ledgerq/metrics.h"

/* The value of the sample whose name and labels are exactly series, or -1. */
static double sample(const char *text, const char *series)
{
    size_t len = strlen(series);
    const char *p = text;

    while ((p = strstr(p, series)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[len] == ' ')
            return strtod(p + len + 1, NULL);
        p += len;
    }
    return -1;
}

START_TEST(counters_count_each_outcome)
{
    lq_metrics *m = lq_metrics_new();
    char *text;

    lq_metrics_count(m, LQ_METRICS_APPLIED, 3);
    lq_metrics_count(m, LQ_METRICS_REJECTED, 2);
    lq_metrics_count(m, LQ_METRICS_DUPLICATE, 1);
    lq_metrics_count(m, LQ_METRICS_DEAD_LETTERED, 4);
    lq_metrics_count(m, LQ_METRICS_APPLIED, 1);
    lq_metrics_count_reconnect(m, LQ_METRICS_DB);
    text = lq_metrics_render(m);
    ck_assert_double_eq(sample(text, "ledgerq_messages_total{outcome=\"applied\"}"), 4);
    ck_assert_double_eq(sample(text, "ledgerq_messages_total{outcome=\"rejected\"}"), 2);
    ck_assert_double_eq(sample(text, "ledgerq_messages_total{outcome=\"duplicate\"}"), 1);
    ck_assert_double_eq(sample(text, "ledgerq_messages_total{outcome=\"dead_lettered\"}"), 4);
    ck_assert_double_eq(sample(text, "ledgerq_reconnects_total{target=\"db\"}"), 1);
    ck_assert_double_eq(sample(text, "ledgerq_reconnects_total{target=\"amqp\"}"), 0);
    free(text);
    lq_metrics_free(m);
}
END_TEST

START_TEST(histograms_are_cumulative_with_sum_and_count)
{
    lq_metrics *m = lq_metrics_new();
    char *text;

    lq_metrics_observe_batch(m, 1);
    lq_metrics_observe_batch(m, 3);   /* le=5 */
    lq_metrics_observe_batch(m, 500); /* le=500: bounds are inclusive */
    lq_metrics_observe_batch(m, 20000);
    lq_metrics_observe_commit_us(m, 1500); /* 1.5 ms: le=0.0025 */
    lq_metrics_observe_commit_us(m, 3000000);
    text = lq_metrics_render(m);
    ck_assert_double_eq(sample(text, "ledgerq_batch_size_bucket{le=\"1\"}"), 1);
    ck_assert_double_eq(sample(text, "ledgerq_batch_size_bucket{le=\"2\"}"), 1);
    ck_assert_double_eq(sample(text, "ledgerq_batch_size_bucket{le=\"5\"}"), 2);
    ck_assert_double_eq(sample(text, "ledgerq_batch_size_bucket{le=\"500\"}"), 3);
    ck_assert_double_eq(sample(text, "ledgerq_batch_size_bucket{le=\"10000\"}"), 3);
    ck_assert_double_eq(sample(text, "ledgerq_batch_size_bucket{le=\"+Inf\"}"), 4);
    ck_assert_double_eq(sample(text, "ledgerq_batch_size_count"), 4);
    ck_assert_double_eq(sample(text, "ledgerq_batch_size_sum"), 20504);
    ck_assert_double_eq(sample(text, "ledgerq_db_commit_duration_seconds_bucket{le=\"0.001000\"}"),
                        0);
    ck_assert_double_eq(sample(text, "ledgerq_db_commit_duration_seconds_bucket{le=\"0.002500\"}"),
                        1);
    ck_assert_double_eq(sample(text, "ledgerq_db_commit_duration_seconds_bucket{le=\"+Inf\"}"), 2);
    ck_assert_double_eq_tol(sample(text, "ledgerq_db_commit_duration_seconds_sum"), 3.0015, 1e-9);
    ck_assert_double_eq(sample(text, "ledgerq_message_duration_seconds_count"), 0);
    free(text);
    lq_metrics_free(m);
}
END_TEST

/* Every line of text is a complete sample, HELP or TYPE line, and the text ends with a newline. */
static void assert_prometheus_text(const char *text)
{
    char *copy = strdup(text), *save = NULL, *line;
    regex_t sample_re, meta_re;

    ck_assert_ptr_nonnull(copy);
    ck_assert_int_eq(regcomp(&sample_re,
                             "^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*"
                             "\\})? [-+]?([0-9]+(\\.[0-9]+)?|\\+Inf)$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    ck_assert_int_eq(regcomp(&meta_re, "^# (HELP|TYPE) [a-z_]+ .+$", REG_EXTENDED | REG_NOSUB), 0);
    ck_assert(text[0] != '\0' && text[strlen(text) - 1] == '\n');
    for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        const regex_t *re = line[0] == '#' ? &meta_re : &sample_re;
        ck_assert_msg(regexec(re, line, 0, NULL, 0) == 0, "not Prometheus text: \"%s\"", line);
    }
    regfree(&sample_re);
    regfree(&meta_re);
    free(copy);
}

START_TEST(render_is_prometheus_text_format)
{
    lq_metrics *m = lq_metrics_new();
    char *text;

    lq_metrics_observe_message_us(m, 12345);
    lq_metrics_set_queue(m, 7, 3);
    text = lq_metrics_render(m);
    assert_prometheus_text(text);
    ck_assert_double_eq(sample(text, "ledgerq_queue_messages{state=\"ready\"}"), 7);
    ck_assert_double_eq(sample(text, "ledgerq_queue_messages{state=\"unacked\"}"), 3);
    ck_assert_ptr_nonnull(strstr(text, "# TYPE ledgerq_batch_size histogram\n"));
    ck_assert_ptr_nonnull(strstr(text, "# TYPE ledgerq_ready gauge\n"));
    free(text);
    lq_metrics_free(m);
}
END_TEST

/*
 * The widest numbers every series can show: each line is still whole (a
 * fixed line buffer once cut the queue block, 244 bytes before its numbers).
 */
START_TEST(render_keeps_the_widest_numbers_whole)
{
    lq_metrics *m = lq_metrics_new();
    char *text;

    for (int o = 0; o < LQ_METRICS_OUTCOMES; o++)
        lq_metrics_count(m, (lq_metrics_outcome)o, UINT64_MAX);
    lq_metrics_observe_commit_us(m, INT64_MAX);
    lq_metrics_set_queue(m, UINT64_MAX, UINT64_MAX);
    text = lq_metrics_render(m);
    assert_prometheus_text(text);
    ck_assert_ptr_nonnull(
        strstr(text, "\nledgerq_messages_total{outcome=\"dead_lettered\"} 18446744073709551615\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "\nledgerq_queue_messages{state=\"ready\"} 18446744073709551615\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "\nledgerq_queue_messages{state=\"unacked\"} 18446744073709551615\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nledgerq_db_commit_duration_seconds_sum "
                                       "9223372036854.775807\n"));
    free(text);
    lq_metrics_free(m);
}
END_TEST

START_TEST(ready_needs_both_connections_and_consuming)
{
    lq_metrics *m = lq_metrics_new();

    ck_assert(!lq_metrics_ready(m));
    lq_metrics_set_connected(m, LQ_METRICS_AMQP, true);
    lq_metrics_set_connected(m, LQ_METRICS_DB, true);
    ck_assert(!lq_metrics_ready(m));
    lq_metrics_set_consuming(m, true);
    ck_assert(lq_metrics_ready(m));
    lq_metrics_set_connected(m, LQ_METRICS_DB, false);
    ck_assert(!lq_metrics_ready(m));
    ck_assert(lq_metrics_alive(m, 60000));
    lq_metrics_free(m);
}
END_TEST

/* GET path from 127.0.0.1:port; returns the status code, body in ret_body (4 KiB). */
static int http_get(int port, const char *path, char *ret_body)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    char req[256], buf[16384];
    size_t got = 0;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0), status = -1;
    char *body;

    ck_assert_int_ge(fd, 0);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    sscanf(buf, "HTTP/1.%*d %d", &status);
    body = strstr(buf, "\r\n\r\n");
    snprintf(ret_body, 4096, "%s", body ? body + 4 : "");
    return status;
}

START_TEST(endpoint_serves_health_readiness_and_metrics)
{
    lq_metrics *m = lq_metrics_new();
    lq_http *h = NULL;
    char addr[32], err[256], body[4096];
    int port = 0, r = LQ_ERR_CONFIG;

    /* A free port: try a few in a range tests elsewhere do not use. */
    for (int i = 0; i < 50 && r != LQ_OK; i++) {
        port = 41000 + (int)(getpid() % 1000) * 7 + i;
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
        r = lq_http_start(addr, m, &h, err, sizeof(err));
    }
    ck_assert_msg(r == LQ_OK, "%s", err);
    ck_assert_int_eq(http_get(port, "/healthz", body), 200);
    ck_assert_int_eq(http_get(port, "/readyz", body), 503);
    lq_metrics_set_connected(m, LQ_METRICS_AMQP, true);
    lq_metrics_set_connected(m, LQ_METRICS_DB, true);
    lq_metrics_set_consuming(m, true);
    ck_assert_int_eq(http_get(port, "/readyz", body), 200);
    lq_metrics_count(m, LQ_METRICS_APPLIED, 42);
    ck_assert_int_eq(http_get(port, "/metrics", body), 200);
    ck_assert_double_eq(sample(body, "ledgerq_messages_total{outcome=\"applied\"}"), 42);
    ck_assert_double_eq(sample(body, "ledgerq_ready"), 1);
    ck_assert_int_eq(http_get(port, "/nope", body), 404);
    /* The same port twice: a clear error, not a crash. */
    {
        lq_http *again = NULL;
        ck_assert_int_eq(lq_http_start(addr, m, &again, err, sizeof(err)), LQ_ERR_CONFIG);
        ck_assert_ptr_nonnull(strstr(err, addr));
    }
    lq_http_stop(h);
    lq_metrics_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    TCase *http = tcase_create("http");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, counters_count_each_outcome);
    tcase_add_test(tc, histograms_are_cumulative_with_sum_and_count);
    tcase_add_test(tc, render_is_prometheus_text_format);
    tcase_add_test(tc, render_keeps_the_widest_numbers_whole);
    tcase_add_test(tc, ready_needs_both_connections_and_consuming);
    tcase_add_test(http, endpoint_serves_health_readiness_and_metrics);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, http);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
