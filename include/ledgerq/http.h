/*
 * The worker's HTTP endpoint (docs/protocol.md section 11): GET /healthz, /readyz
 * and /metrics, served by libmicrohttpd on a thread of its own so that it
 * never blocks the consumer loop.
 */
#ifndef LEDGERQ_HTTP_H
#define LEDGERQ_HTTP_H

#include <stddef.h>

#include "ledgerq/metrics.h"

typedef struct lq_http lq_http;

/*
 * Serve on addr ("host:port" or "[ipv6]:port") from metrics, which must
 * outlive the server.  On success stores a new server in *ret (caller stops
 * it with lq_http_stop()).  Returns LQ_ERR_CONFIG with a line in err when
 * the address cannot be used (bad host, port taken).
 */
int lq_http_start(const char *addr, lq_metrics *metrics, lq_http **ret, char *err, size_t err_len);

/* Stop serving and free the server.  Accepts NULL; returns NULL. */
lq_http *lq_http_stop(lq_http *h);

#endif
