/*
 * HTTP from the tests: a GET on loopback, and the samples of a Prometheus
 * text exposition.  Nothing of the broker or the database: unit suites
 * link it too.
 */
#ifndef LEDGERQ_TESTS_SUPPORT_HTTP_H
#define LEDGERQ_TESTS_SUPPORT_HTTP_H

#include <stddef.h>

/*
 * GET path from 127.0.0.1:port over HTTP/1.0.  Returns the status code, or
 * -1 when nothing listens there; the body goes to ret_body (body_len
 * bytes, cut to fit, NUL-terminated).  Fails the test when the request
 * cannot be sent.
 */
int lqt_http_get(int port, const char *path, char *ret_body, size_t body_len);

/* The value of the sample whose name and labels are exactly series, or -1 when absent. */
double lqt_http_sample(const char *text, const char *series);

/* A TCP port on 127.0.0.1 that nothing listens on now. */
int lqt_http_free_port(void);

/* Poll path until it answers want, at most seconds; returns the last status. */
int lqt_http_wait_status(int port, const char *path, int want, int seconds);

#endif
