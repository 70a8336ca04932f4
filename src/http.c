/*
 * The health and metrics endpoint, on libmicrohttpd's own thread: it reads
 * the atomics of lq_metrics and never touches the worker's connections.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "ledgerq/error.h"
#include "ledgerq/http.h"

/* /healthz fails when the loop has not gone round for this long. */
#define ALIVE_MAX_AGE_MS 60000

struct lq_http {
    struct MHD_Daemon *daemon;
    lq_metrics *metrics;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, const char *type,
                             char *body, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *res = MHD_create_response_from_buffer(strlen(body), body, mode);
    enum MHD_Result ret;

    if (res == NULL)
        return MHD_NO;
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    ret = MHD_queue_response(conn, status, res);
    MHD_destroy_response(res);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    lq_http *h = cls;

    (void)version;
    (void)upload;
    (void)upload_size;
    (void)state;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "method not allowed\n",
                     MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/healthz") == 0) {
        bool alive = lq_metrics_alive(h->metrics, ALIVE_MAX_AGE_MS);
        return reply(conn, alive ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain",
                     alive ? "ok\n" : "the worker loop is stuck\n", MHD_RESPMEM_PERSISTENT);
    }
    if (strcmp(url, "/readyz") == 0) {
        bool ready = lq_metrics_ready(h->metrics);
        return reply(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain",
                     ready ? "ready\n"
                           : "not ready: not connected to the broker and the "
                             "database, or not consuming\n",
                     MHD_RESPMEM_PERSISTENT);
    }
    if (strcmp(url, "/metrics") == 0) {
        char *text = lq_metrics_render(h->metrics);
        if (text == NULL)
            return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", "out of memory\n",
                         MHD_RESPMEM_PERSISTENT);
        return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text,
                     MHD_RESPMEM_MUST_FREE);
    }
    return reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", "not found\n", MHD_RESPMEM_PERSISTENT);
}

/* Split "host:port" or "[v6]:port" into host and port. */
static bool split_addr(const char *addr, char *host, size_t host_len, char *port, size_t port_len)
{
    const char *colon;

    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return false;
        snprintf(host, host_len, "%.*s", (int)(close - addr - 1), addr + 1);
        snprintf(port, port_len, "%s", close + 2);
        return true;
    }
    colon = strrchr(addr, ':');
    if (colon == NULL)
        return false;
    snprintf(host, host_len, "%.*s", (int)(colon - addr), addr);
    snprintf(port, port_len, "%s", colon + 1);
    return true;
}

int lq_http_start(const char *addr, lq_metrics *metrics, lq_http **ret, char *err, size_t err_len)
{
    struct addrinfo hints, *ai = NULL;
    char host[256], port[16];
    lq_http *h = NULL;
    int r = LQ_ERR_CONFIG, gai;

    if (!split_addr(addr, host, sizeof(host), port, sizeof(port))) {
        snprintf(err, err_len, "invalid HTTP address \"%s\" (expected host:port)", addr);
        goto out;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, err_len, "could not resolve HTTP address \"%s\": %s", addr,
                 gai_strerror(gai));
        goto out;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    h->metrics = metrics;
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0), 0, NULL,
        NULL, handle, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)10, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64, MHD_OPTION_END);
    if (h->daemon == NULL) {
        snprintf(err, err_len, "could not listen for HTTP on %s (address in use?)", addr);
        goto out;
    }
    *ret = h;
    h = NULL;
    r = LQ_OK;
out:
    if (ai)
        freeaddrinfo(ai);
    free(h);
    return r;
}

lq_http *lq_http_stop(lq_http *h)
{
    if (h == NULL)
        return NULL;
    MHD_stop_daemon(h->daemon);
    free(h);
    return NULL;
}
