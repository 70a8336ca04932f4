/*
 * The RabbitMQ connection.  The only file that includes <amqp.h>.
 *
 * Channel 1 consumes, takes single messages (basic.get) and acks them: a
 * delivery is acked on the channel it came on.  Channel 2 publishes in
 * confirm mode.  Channel 3 carries the other synchronous requests
 * (declarations, the passive declare that counts a queue's messages).
 * rabbitmq-c queues frames of other channels while it waits for an RPC
 * reply, so frames are never lost; this file reads everything else itself
 * with amqp_simple_wait_frame_noblock(), which also sends heartbeats.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include "ledgerq/amqp.h"
#include "ledgerq/clock.h"
#include "ledgerq/error.h"
#include "ledgerq/json.h"

#define CH_CONSUME 1
#define CH_PUBLISH 2
#define CH_RPC     3

/* Longest wait for the reply of a synchronous request. */
#define RPC_TIMEOUT_S 30

typedef struct delivery_priv {
    amqp_message_t msg;
    lq_delivery *next; /* in the queue of deliveries kept for lq_amqp_next() */
} delivery_priv;

struct lq_amqp {
    amqp_connection_state_t conn;
    char err[512];
    bool broken;  /* a channel or the connection is gone: only close remains */
    bool blocked; /* connection.blocked received and not yet unblocked */
    amqp_bytes_t consumer_tag;

    /* Publisher confirms: sequence numbers sent and not yet confirmed, ascending. */
    uint64_t next_seq;
    uint64_t *pending;
    size_t n_pending, cap_pending;
    bool nacked;
    uint64_t nacks;
    uint64_t confirms; /* basic.ack and basic.nack frames read */
    uint64_t returned;

    /* Deliveries read while waiting for confirms. */
    lq_delivery *head, *tail;
};

static void set_error(lq_amqp *c, const char *fmt, const char *what, const char *why)
{
    snprintf(c->err, sizeof(c->err), fmt, what, why);
}

/* Describe an RPC failure in one line and mark the connection broken. */
static int rpc_error(lq_amqp *c, const char *what, amqp_rpc_reply_t reply)
{
    char why[300];

    switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return LQ_OK;
    case AMQP_RESPONSE_NONE:
        snprintf(why, sizeof(why), "no reply from the broker");
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(why, sizeof(why), "%s", amqp_error_string2(reply.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = reply.reply.decoded;
            snprintf(why, sizeof(why), "connection closed by the broker: %d %.*s", m->reply_code,
                     (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = reply.reply.decoded;
            snprintf(why, sizeof(why), "channel closed by the broker: %d %.*s", m->reply_code,
                     (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else {
            snprintf(why, sizeof(why), "unexpected method 0x%08x from the broker", reply.reply.id);
        }
        break;
    }
    set_error(c, "%s: %s", what, why);
    c->broken = true;
    return LQ_ERR_AMQP_UNAVAILABLE;
}

static int status_error(lq_amqp *c, const char *what, int status)
{
    if (status == AMQP_STATUS_TIMEOUT)
        return LQ_ERR_TIMEOUT;
    set_error(c, "%s: %s", what, amqp_error_string2(status));
    c->broken = true;
    return LQ_ERR_AMQP_UNAVAILABLE;
}

static char *bytes_strdup(amqp_bytes_t b)
{
    char *s = malloc(b.len + 1);
    if (s) {
        if (b.len)
            memcpy(s, b.bytes, b.len);
        s[b.len] = '\0';
    }
    return s;
}

static amqp_bytes_t cstring(const char *s)
{
    return amqp_cstring_bytes(s ? s : "");
}

lq_delivery *lq_delivery_free(lq_delivery *d)
{
    if (d == NULL)
        return NULL;
    if (d->priv) {
        delivery_priv *p = d->priv;
        amqp_destroy_message(&p->msg);
        free(p);
    }
    free(d->exchange);
    free(d->routing_key);
    free(d->reply_to);
    free(d->message_id);
    free(d);
    return NULL;
}

static const amqp_table_entry_t *find_header(const lq_delivery *d, const char *name)
{
    const delivery_priv *p = d->priv;
    const amqp_basic_properties_t *props = &p->msg.properties;
    size_t len = strlen(name);

    if (!(props->_flags & AMQP_BASIC_HEADERS_FLAG))
        return NULL;
    for (int i = 0; i < props->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &props->headers.entries[i];
        if (e->key.len == len && memcmp(e->key.bytes, name, len) == 0)
            return e;
    }
    return NULL;
}

bool lq_delivery_header_int(const lq_delivery *d, const char *name, int64_t *ret)
{
    const amqp_table_entry_t *e = find_header(d, name);

    if (e == NULL)
        return false;
    switch (e->value.kind) {
    case AMQP_FIELD_KIND_I8:
        *ret = e->value.value.i8;
        return true;
    case AMQP_FIELD_KIND_U8:
        *ret = e->value.value.u8;
        return true;
    case AMQP_FIELD_KIND_I16:
        *ret = e->value.value.i16;
        return true;
    case AMQP_FIELD_KIND_U16:
        *ret = e->value.value.u16;
        return true;
    case AMQP_FIELD_KIND_I32:
        *ret = e->value.value.i32;
        return true;
    case AMQP_FIELD_KIND_U32:
        *ret = e->value.value.u32;
        return true;
    case AMQP_FIELD_KIND_I64:
        *ret = e->value.value.i64;
        return true;
    default:
        return false;
    }
}

bool lq_delivery_header_string(const lq_delivery *d, const char *name, char *ret, size_t ret_len)
{
    const amqp_table_entry_t *e = find_header(d, name);

    if (e == NULL ||
        (e->value.kind != AMQP_FIELD_KIND_UTF8 && e->value.kind != AMQP_FIELD_KIND_BYTES))
        return false;
    snprintf(ret, ret_len, "%.*s", (int)e->value.value.bytes.len,
             (const char *)e->value.value.bytes.bytes);
    return true;
}

/*
 * Build a delivery from a message just read.  exchange and routing_key
 * come from the deliver or get-ok method; the message is taken over.
 */
static int make_delivery(uint64_t tag, bool redelivered, amqp_bytes_t exchange,
                         amqp_bytes_t routing_key, amqp_message_t *msg, lq_delivery **ret)
{
    lq_delivery *d = calloc(1, sizeof(*d));
    delivery_priv *p = calloc(1, sizeof(*p));
    const amqp_basic_properties_t *props;

    if (d == NULL || p == NULL) {
        free(d);
        free(p);
        amqp_destroy_message(msg);
        return LQ_ERR_NOMEM;
    }
    p->msg = *msg;
    d->priv = p;
    props = &p->msg.properties;
    d->tag = tag;
    d->redelivered = redelivered;
    d->body = p->msg.body.bytes;
    d->body_len = p->msg.body.len;
    if (props->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) {
        d->content_type = props->content_type.bytes;
        d->content_type_len = props->content_type.len;
    }
    d->exchange = bytes_strdup(exchange);
    d->routing_key = bytes_strdup(routing_key);
    if (props->_flags & AMQP_BASIC_REPLY_TO_FLAG)
        d->reply_to = bytes_strdup(props->reply_to);
    if (props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        d->message_id = bytes_strdup(props->message_id);
    if (!d->exchange || !d->routing_key ||
        ((props->_flags & AMQP_BASIC_REPLY_TO_FLAG) && !d->reply_to) ||
        ((props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) && !d->message_id)) {
        lq_delivery_free(d);
        return LQ_ERR_NOMEM;
    }
    if (!lq_delivery_header_int(d, "x-delivery-count", &d->delivery_count))
        d->delivery_count = 0;
    *ret = d;
    return LQ_OK;
}

static void confirm(lq_amqp *c, uint64_t tag, bool multiple, bool nack)
{
    size_t keep = 0;

    for (size_t i = 0; i < c->n_pending; i++) {
        uint64_t seq = c->pending[i];
        if (seq == tag || (multiple && seq < tag)) {
            c->nacks += nack;
            continue;
        }
        c->pending[keep++] = seq;
    }
    c->n_pending = keep;
    c->confirms++;
    if (nack)
        c->nacked = true;
}

static void enqueue(lq_amqp *c, lq_delivery *d)
{
    ((delivery_priv *)d->priv)->next = NULL;
    if (c->tail)
        ((delivery_priv *)c->tail->priv)->next = d;
    else
        c->head = d;
    c->tail = d;
}

/*
 * Read one frame, waiting at most timeout_ms, and act on it: deliveries are
 * queued, confirms recorded, closes answered.  Returns LQ_OK (something was
 * handled), LQ_ERR_TIMEOUT, or LQ_ERR_AMQP_UNAVAILABLE.
 */
static int pump(lq_amqp *c, int timeout_ms)
{
    amqp_frame_t frame;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    int status, r = LQ_OK;

    if (c->broken)
        return LQ_ERR_AMQP_UNAVAILABLE;
    amqp_maybe_release_buffers(c->conn);
    status = amqp_simple_wait_frame_noblock(c->conn, &frame, &tv);
    if (status != AMQP_STATUS_OK)
        return status_error(c, "could not read from the broker", status);
    if (frame.frame_type != AMQP_FRAME_METHOD)
        return LQ_OK; /* stray content of a message we do not track */

    switch (frame.payload.method.id) {
    case AMQP_BASIC_DELIVER_METHOD: {
        amqp_basic_deliver_t *m = frame.payload.method.decoded;
        amqp_message_t msg;
        amqp_rpc_reply_t reply;
        lq_delivery *d = NULL;
        /* The method's strings live in the frame pool: read_message may reuse it. */
        uint64_t tag = m->delivery_tag;
        bool redelivered = m->redelivered;
        char *exchange = bytes_strdup(m->exchange), *routing_key = bytes_strdup(m->routing_key);

        if (!exchange || !routing_key) {
            free(exchange);
            free(routing_key);
            return LQ_ERR_NOMEM;
        }
        reply = amqp_read_message(c->conn, frame.channel, &msg, 0);
        if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
            r = rpc_error(c, "could not read a delivery", reply);
        } else {
            r = make_delivery(tag, redelivered, amqp_cstring_bytes(exchange),
                              amqp_cstring_bytes(routing_key), &msg, &d);
            if (r == LQ_OK)
                enqueue(c, d);
        }
        free(exchange);
        free(routing_key);
        return r;
    }
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *m = frame.payload.method.decoded;
        confirm(c, m->delivery_tag, m->multiple, false);
        return LQ_OK;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *m = frame.payload.method.decoded;
        confirm(c, m->delivery_tag, m->multiple, true);
        return LQ_OK;
    }
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_message_t msg;
        amqp_rpc_reply_t reply = amqp_read_message(c->conn, frame.channel, &msg, 0);
        if (reply.reply_type != AMQP_RESPONSE_NORMAL)
            return rpc_error(c, "could not read a returned message", reply);
        amqp_destroy_message(&msg);
        c->returned++;
        return LQ_OK;
    }
    case AMQP_BASIC_CANCEL_METHOD:
        /* The broker cancelled our consumer (queue deleted, node down). */
        set_error(c, "%s: %s", "consumer cancelled by the broker",
                  "the queue was deleted or moved");
        c->broken = true;
        return LQ_ERR_AMQP_UNAVAILABLE;
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *m = frame.payload.method.decoded;
        amqp_channel_close_ok_t ok;
        snprintf(c->err, sizeof(c->err), "channel %d closed by the broker: %d %.*s", frame.channel,
                 m->reply_code, (int)m->reply_text.len, (char *)m->reply_text.bytes);
        amqp_send_method(c->conn, frame.channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        c->broken = true;
        return LQ_ERR_AMQP_UNAVAILABLE;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *m = frame.payload.method.decoded;
        amqp_connection_close_ok_t ok;
        snprintf(c->err, sizeof(c->err), "connection closed by the broker: %d %.*s", m->reply_code,
                 (int)m->reply_text.len, (char *)m->reply_text.bytes);
        amqp_send_method(c->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        c->broken = true;
        return LQ_ERR_AMQP_UNAVAILABLE;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD:
        c->blocked = true;
        return LQ_OK;
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        c->blocked = false;
        return LQ_OK;
    default:
        return LQ_OK;
    }
}

/* Open channel ch. */
static int open_channel(lq_amqp *c, amqp_channel_t ch)
{
    amqp_channel_open(c->conn, ch);
    return rpc_error(c, "could not open a channel", amqp_get_rpc_reply(c->conn));
}

/* Used when no CA file is configured: Debian's bundle of the system's trusted CAs. */
#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

typedef struct tls_files {
    const char *ca, *cert, *key;
} tls_files;

/* Verify the broker: certificate chain and host name, TLS 1.2 or later. */
static amqp_socket_t *tls_socket(amqp_connection_state_t conn, const tls_files *tls, char *err,
                                 size_t err_len)
{
    amqp_socket_t *socket = amqp_ssl_socket_new(conn);
    const char *ca = tls && tls->ca ? tls->ca : SYSTEM_CA_FILE;

    if (socket == NULL) {
        snprintf(err, err_len, "could not set up TLS for the broker connection");
        return NULL;
    }
    amqp_ssl_socket_set_verify_peer(socket, 1);
    amqp_ssl_socket_set_verify_hostname(socket, 1);
    if (amqp_ssl_socket_set_ssl_versions(socket, AMQP_TLSv1_2, AMQP_TLSvLATEST) != AMQP_STATUS_OK) {
        snprintf(err, err_len, "could not require TLS 1.2 or later for the broker connection");
        return NULL;
    }
    if (amqp_ssl_socket_set_cacert(socket, ca) != AMQP_STATUS_OK) {
        snprintf(err, err_len, "could not load CA certificates from \"%s\"", ca);
        return NULL;
    }
    if (tls && (tls->cert || tls->key)) {
        if (!tls->cert || !tls->key) {
            snprintf(err, err_len, "a client certificate needs both a certificate and a key file");
            return NULL;
        }
        /* An encrypted key is not supported: fail rather than prompt on a terminal. */
        amqp_ssl_socket_set_key_passwd(socket, "");
        if (amqp_ssl_socket_set_key(socket, tls->cert, tls->key) != AMQP_STATUS_OK) {
            snprintf(err, err_len,
                     "could not load the client certificate \"%s\" and key \"%s\" (PEM files, "
                     "the key not encrypted)",
                     tls->cert, tls->key);
            return NULL;
        }
    }
    return socket;
}

/* Why opening the socket failed, saying what to check for the TLS failures. */
static void open_error(int status, const struct amqp_connection_info *info, const tls_files *tls,
                       char *why, size_t why_len)
{
    switch (status) {
    case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
        snprintf(why, why_len,
                 "certificate verification failed: the broker's certificate could not be verified "
                 "with the CA certificates in \"%s\" (check LEDGERQ_AMQP_CA_FILE)",
                 tls && tls->ca ? tls->ca : SYSTEM_CA_FILE);
        break;
    case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
        snprintf(why, why_len,
                 "host name verification failed: the broker's certificate is not valid for \"%s\" "
                 "(connect by a host name that the certificate lists)",
                 info->host);
        break;
    case AMQP_STATUS_SSL_CONNECTION_FAILED:
        snprintf(why, why_len, "TLS handshake failed (is %d the broker's TLS port? %s)", info->port,
                 tls && tls->cert ? "does it accept the client certificate?"
                                  : "does it require a client certificate?");
        break;
    default:
        snprintf(why, why_len, "%s", amqp_error_string2(status));
        break;
    }
}

static int connect_tls(const char *url, const tls_files *tls, int heartbeat_s, lq_amqp **ret,
                       char *err, size_t err_len)
{
    struct amqp_connection_info info;
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    struct timeval rpc_tv = {.tv_sec = RPC_TIMEOUT_S, .tv_usec = 0};
    amqp_socket_t *socket;
    char *buf = strdup(url);
    lq_amqp *c = calloc(1, sizeof(*c));
    amqp_table_entry_t caps[2], props[2];
    amqp_table_t client_props;
    int status, r = LQ_ERR_AMQP_UNAVAILABLE;

    if (buf == NULL || c == NULL) {
        snprintf(err, err_len, "could not connect to the broker: out of memory");
        r = LQ_ERR_NOMEM;
        goto out;
    }
    c->next_seq = 1;
    amqp_default_connection_info(&info);
    if (amqp_parse_url(buf, &info) != AMQP_STATUS_OK) {
        snprintf(err, err_len, "invalid broker URL (expected amqp://user:pass@host:port/vhost)");
        r = LQ_ERR_CONFIG;
        goto out;
    }
    c->conn = amqp_new_connection();
    if (c->conn == NULL) {
        snprintf(err, err_len, "could not connect to the broker: out of memory");
        r = LQ_ERR_NOMEM;
        goto out;
    }
    if (info.ssl) {
        socket = tls_socket(c->conn, tls, err, err_len);
        if (socket == NULL)
            goto out;
    } else {
        socket = amqp_tcp_socket_new(c->conn);
        if (socket == NULL) {
            snprintf(err, err_len, "could not create a socket for the broker");
            goto out;
        }
    }
    status = amqp_socket_open_noblock(socket, info.host, info.port, &tv);
    if (status != AMQP_STATUS_OK) {
        char why[400];
        open_error(status, &info, tls, why, sizeof(why));
        snprintf(err, err_len, "could not connect to the broker at %s:%d%s: %s", info.host,
                 info.port, info.ssl ? " over TLS" : "", why);
        goto out;
    }
    amqp_set_rpc_timeout(c->conn, &rpc_tv);

    /* Ask to be told when the broker cancels our consumer. */
    caps[0].key = amqp_cstring_bytes("consumer_cancel_notify");
    caps[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[0].value.value.boolean = 1;
    caps[1].key = amqp_cstring_bytes("connection.blocked");
    caps[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[1].value.value.boolean = 1;
    props[0].key = amqp_cstring_bytes("capabilities");
    props[0].value.kind = AMQP_FIELD_KIND_TABLE;
    props[0].value.value.table.num_entries = 2;
    props[0].value.value.table.entries = caps;
    props[1].key = amqp_cstring_bytes("connection_name");
    props[1].value.kind = AMQP_FIELD_KIND_UTF8;
    props[1].value.value.bytes = amqp_cstring_bytes("ledgerq");
    client_props.num_entries = 2;
    client_props.entries = props;

    {
        amqp_rpc_reply_t reply = amqp_login_with_properties(
            c->conn, info.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, heartbeat_s, &client_props,
            AMQP_SASL_METHOD_PLAIN, info.user, info.password);
        if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
            /* TLS 1.3: the broker checks a client certificate after the handshake. */
            bool tls_failed = info.ssl && reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                              reply.library_error == AMQP_STATUS_SSL_ERROR;
            rpc_error(c, "could not log in to the broker", reply);
            snprintf(err, err_len, "%s (user \"%s\", vhost \"%s\")%s", c->err, info.user,
                     info.vhost,
                     tls_failed ? ": the broker ended the TLS session (it may have refused the "
                                  "client certificate, or required one)"
                                : "");
            goto out;
        }
    }
    if (open_channel(c, CH_CONSUME) != LQ_OK || open_channel(c, CH_PUBLISH) != LQ_OK ||
        open_channel(c, CH_RPC) != LQ_OK) {
        snprintf(err, err_len, "%s", c->err);
        goto out;
    }
    amqp_confirm_select(c->conn, CH_PUBLISH);
    if (rpc_error(c, "could not enable publisher confirms", amqp_get_rpc_reply(c->conn)) != LQ_OK) {
        snprintf(err, err_len, "%s", c->err);
        goto out;
    }
    *ret = c;
    c = NULL;
    r = LQ_OK;
out:
    if (c) {
        c->broken = true;
        lq_amqp_close(c);
    }
    free(buf);
    return r;
}

int lq_amqp_connect_config(const lq_config *cfg, int heartbeat_s, lq_amqp **ret, char *err,
                           size_t err_len)
{
    tls_files tls = {cfg->amqp_ca_file, cfg->amqp_cert_file, cfg->amqp_key_file};
    return connect_tls(cfg->amqp_url, &tls, heartbeat_s, ret, err, err_len);
}

lq_amqp *lq_amqp_close(lq_amqp *c)
{
    if (c == NULL)
        return NULL;
    if (c->conn) {
        /* A blocked connection is not read: a polite close would wait for nothing. */
        if (!c->broken && !c->blocked)
            amqp_connection_close(c->conn, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(c->conn);
    }
    while (c->head) {
        lq_delivery *next = ((delivery_priv *)c->head->priv)->next;
        lq_delivery_free(c->head);
        c->head = next;
    }
    amqp_bytes_free(c->consumer_tag);
    free(c->pending);
    free(c);
    return NULL;
}

const char *lq_amqp_error(const lq_amqp *c)
{
    return c ? c->err : "";
}

void lq_amqp_set_rpc_timeout(lq_amqp *c, int timeout_ms)
{
    struct timeval tv;

    if (timeout_ms < 1)
        timeout_ms = 1;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    amqp_set_rpc_timeout(c->conn, &tv);
}

static int declare_exchange(lq_amqp *c, const char *name, const char *type)
{
    amqp_exchange_declare(c->conn, CH_RPC, cstring(name), cstring(type), 0, 1, 0, 0,
                          amqp_empty_table);
    return rpc_error(c, "could not declare an exchange", amqp_get_rpc_reply(c->conn));
}

static int declare_queue(lq_amqp *c, const char *name, amqp_table_t args)
{
    amqp_queue_declare(c->conn, CH_RPC, cstring(name), 0, 1, 0, 0, args);
    return rpc_error(c, "could not declare a queue", amqp_get_rpc_reply(c->conn));
}

static int bind_queue(lq_amqp *c, const char *queue, const char *exchange, const char *key)
{
    amqp_queue_bind(c->conn, CH_RPC, cstring(queue), cstring(exchange), cstring(key),
                    amqp_empty_table);
    return rpc_error(c, "could not bind a queue", amqp_get_rpc_reply(c->conn));
}

static amqp_table_entry_t string_entry(const char *key, const char *value)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = cstring(value);
    return e;
}

static amqp_table_entry_t int_entry(const char *key, int64_t value)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_I64;
    e.value.value.i64 = value;
    return e;
}

int lq_amqp_declare_topology(lq_amqp *c, const lq_config *cfg)
{
    amqp_table_entry_t args[5];
    amqp_table_t table = {.num_entries = 5, .entries = args};
    int r;

    /*
     * At-least-once dead-lettering needs reject-publish overflow: the broker
     * then keeps a message until the dead-letter queue has confirmed it.
     */
    args[0] = string_entry("x-queue-type", "quorum");
    args[1] = string_entry("x-dead-letter-exchange", cfg->dlx);
    args[2] = string_entry("x-dead-letter-strategy", "at-least-once");
    args[3] = string_entry("x-overflow", "reject-publish");
    args[4] = int_entry("x-delivery-limit", cfg->delivery_limit);

    if ((r = declare_exchange(c, cfg->exchange, "topic")) != LQ_OK ||
        (r = declare_exchange(c, cfg->dlx, "fanout")) != LQ_OK ||
        (r = declare_exchange(c, cfg->results_exchange, "topic")) != LQ_OK ||
        (r = declare_queue(c, cfg->queue, table)) != LQ_OK ||
        (r = bind_queue(c, cfg->queue, cfg->exchange, "payment.#")) != LQ_OK ||
        (r = bind_queue(c, cfg->queue, cfg->exchange, "account.#")) != LQ_OK ||
        (r = declare_queue(c, cfg->dlq, amqp_empty_table)) != LQ_OK ||
        (r = bind_queue(c, cfg->dlq, cfg->dlx, "")) != LQ_OK)
        return r;
    return LQ_OK;
}

int lq_amqp_declare_listener(lq_amqp *c, const char *exchange, const char *binding_key,
                             char ret_name[256])
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c->conn, CH_RPC, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    int r = rpc_error(c, "could not declare a listener queue", amqp_get_rpc_reply(c->conn));

    if (r != LQ_OK)
        return r;
    snprintf(ret_name, 256, "%.*s", (int)ok->queue.len, (char *)ok->queue.bytes);
    if (exchange && *exchange)
        return bind_queue(c, ret_name, exchange, binding_key);
    return LQ_OK;
}

static int track(lq_amqp *c, uint64_t *ret_seq)
{
    if (c->n_pending == c->cap_pending) {
        size_t cap = c->cap_pending ? 2 * c->cap_pending : 64;
        uint64_t *p = realloc(c->pending, cap * sizeof(*p));
        if (p == NULL)
            return LQ_ERR_NOMEM;
        c->pending = p;
        c->cap_pending = cap;
    }
    c->pending[c->n_pending++] = c->next_seq;
    if (ret_seq)
        *ret_seq = c->next_seq;
    c->next_seq++;
    return LQ_OK;
}

static int publish(lq_amqp *c, const char *exchange, const char *routing_key, bool mandatory,
                   const amqp_basic_properties_t *props, amqp_bytes_t body, uint64_t *ret_seq)
{
    int status, r;

    if (c->broken)
        return LQ_ERR_AMQP_UNAVAILABLE;
    /* Reserve the slot first: a publish that went out must be awaited. */
    r = track(c, ret_seq);
    if (r != LQ_OK)
        return r;
    status = amqp_basic_publish(c->conn, CH_PUBLISH, cstring(exchange), cstring(routing_key),
                                mandatory, 0, props, body);
    if (status != AMQP_STATUS_OK)
        return status_error(c, "could not publish", status);
    return LQ_OK;
}

int lq_amqp_publish(lq_amqp *c, const lq_publish *p, uint64_t *ret_seq)
{
    amqp_basic_properties_t props;
    amqp_bytes_t body = {.len = p->body_len, .bytes = (void *)p->body};

    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    if (p->content_type) {
        props._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props.content_type = amqp_cstring_bytes(p->content_type);
    }
    if (p->message_id) {
        props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        props.message_id = amqp_cstring_bytes(p->message_id);
    }
    if (p->correlation_id) {
        props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        props.correlation_id = amqp_cstring_bytes(p->correlation_id);
    }
    if (p->reply_to) {
        props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
        props.reply_to = amqp_cstring_bytes(p->reply_to);
    }
    return publish(c, p->exchange, p->routing_key, p->mandatory, &props, body, ret_seq);
}

static bool key_is(amqp_bytes_t key, const char *name)
{
    size_t len = strlen(name);
    return key.len == len && memcmp(key.bytes, name, len) == 0;
}

int lq_amqp_dead_letter(lq_amqp *c, const lq_delivery *d, const lq_dead_letter *dl,
                        uint64_t *ret_seq)
{
    static const char *const ours[] = {
        "x-ledgerq-error",
        "x-ledgerq-error-detail",
        "x-ledgerq-original-exchange",
        "x-ledgerq-original-routing-key",
        "x-ledgerq-original-queue",
        "x-ledgerq-failed-at",
        "x-ledgerq-attempts",
    };
    const delivery_priv *p = d->priv;
    amqp_basic_properties_t props = p->msg.properties;
    const amqp_table_t *old = &props.headers;
    int n_old = (props._flags & AMQP_BASIC_HEADERS_FLAG) ? old->num_entries : 0;
    amqp_table_entry_t *entries = calloc((size_t)n_old + 7, sizeof(*entries));
    char failed_at[LQ_RFC3339_MAX];
    int n = 0, r;

    if (entries == NULL)
        return LQ_ERR_NOMEM;
    /* Keep the message's headers, but not an earlier failure's x-ledgerq-*. */
    for (int i = 0; i < n_old; i++) {
        bool replaced = false;
        for (size_t k = 0; k < sizeof(ours) / sizeof(ours[0]); k++)
            replaced = replaced || key_is(old->entries[i].key, ours[k]);
        if (!replaced)
            entries[n++] = old->entries[i];
    }
    lq_clock_rfc3339(failed_at);
    entries[n++] = string_entry("x-ledgerq-error", dl->error);
    entries[n++] = string_entry("x-ledgerq-error-detail", dl->detail);
    entries[n++] = string_entry("x-ledgerq-original-exchange", d->exchange);
    entries[n++] = string_entry("x-ledgerq-original-routing-key", d->routing_key);
    entries[n++] = string_entry("x-ledgerq-original-queue", dl->queue);
    entries[n++] = string_entry("x-ledgerq-failed-at", failed_at);
    entries[n++] = int_entry("x-ledgerq-attempts", dl->attempts);
    props._flags |= AMQP_BASIC_HEADERS_FLAG;
    props.headers.num_entries = n;
    props.headers.entries = entries;

    /* Mandatory: a dead-letter exchange with no queue must not swallow it. */
    r = publish(c, dl->exchange, d->routing_key, true, &props, p->msg.body, ret_seq);
    free(entries);
    return r;
}

bool lq_amqp_confirmed(const lq_amqp *c, uint64_t seq)
{
    return c->n_pending == 0 || c->pending[0] > seq;
}

uint64_t lq_amqp_last_seq(const lq_amqp *c)
{
    return c->next_seq - 1;
}

int lq_amqp_wait_confirmed(lq_amqp *c, uint64_t seq, int timeout_ms)
{
    int64_t start = lq_clock_ms();
    int r;

    while (!lq_amqp_confirmed(c, seq)) {
        int64_t elapsed = lq_clock_ms() - start;
        if (elapsed >= timeout_ms)
            return LQ_ERR_TIMEOUT;
        r = pump(c, (int)(timeout_ms - elapsed));
        if (r != LQ_OK && r != LQ_ERR_TIMEOUT)
            return r;
    }
    return LQ_OK;
}

int lq_amqp_wait_confirms(lq_amqp *c, int timeout_ms)
{
    int r = lq_amqp_wait_confirmed(c, UINT64_MAX, timeout_ms);

    if (r != LQ_OK)
        return r;
    if (c->nacked) {
        c->nacked = false;
        snprintf(c->err, sizeof(c->err), "the broker refused to confirm a publish");
        return LQ_ERR_AMQP_NACK;
    }
    return LQ_OK;
}

bool lq_amqp_blocked(const lq_amqp *c)
{
    return c->blocked;
}

uint64_t lq_amqp_returned(const lq_amqp *c)
{
    return c->returned;
}

uint64_t lq_amqp_nacked(const lq_amqp *c)
{
    return c->nacks;
}

int lq_amqp_service(lq_amqp *c, int timeout_ms)
{
    int64_t end = lq_clock_ms() + timeout_ms;

    /* At least one pass, also with timeout_ms 0: that is when a due heartbeat goes out. */
    for (;;) {
        int64_t left = end - lq_clock_ms();
        int r = pump(c, left > 0 ? (int)left : 0);
        if (r == LQ_ERR_TIMEOUT && left <= 0)
            return LQ_OK;
        if (r != LQ_OK && r != LQ_ERR_TIMEOUT)
            return r;
    }
}

int lq_amqp_consume(lq_amqp *c, const char *queue, int prefetch)
{
    amqp_basic_consume_ok_t *ok;
    int r;

    amqp_basic_qos(c->conn, CH_CONSUME, 0, (uint16_t)prefetch, 0);
    r = rpc_error(c, "could not set the prefetch", amqp_get_rpc_reply(c->conn));
    if (r != LQ_OK)
        return r;
    ok = amqp_basic_consume(c->conn, CH_CONSUME, cstring(queue), amqp_empty_bytes, 0, 0, 0,
                            amqp_empty_table);
    r = rpc_error(c, "could not start consuming", amqp_get_rpc_reply(c->conn));
    if (r != LQ_OK)
        return r;
    amqp_bytes_free(c->consumer_tag);
    c->consumer_tag = amqp_bytes_malloc_dup(ok->consumer_tag);
    return LQ_OK;
}

int lq_amqp_cancel(lq_amqp *c)
{
    if (c->consumer_tag.bytes == NULL)
        return LQ_OK;
    amqp_basic_cancel(c->conn, CH_CONSUME, c->consumer_tag);
    amqp_bytes_free(c->consumer_tag);
    c->consumer_tag = amqp_empty_bytes;
    return rpc_error(c, "could not stop consuming", amqp_get_rpc_reply(c->conn));
}

/* lq_amqp_next(); with until_confirm, also returns (LQ_OK, *ret NULL) once a confirm is read. */
static int next_delivery(lq_amqp *c, int timeout_ms, bool until_confirm, lq_delivery **ret)
{
    int64_t start = lq_clock_ms();
    uint64_t confirms = c->confirms;
    int r;

    *ret = NULL;
    while (c->head == NULL) {
        if (until_confirm && c->confirms != confirms)
            return LQ_OK;
        int64_t elapsed = lq_clock_ms() - start;
        if (elapsed > timeout_ms)
            return LQ_ERR_TIMEOUT;
        r = pump(c, (int)(timeout_ms - elapsed));
        if (r == LQ_ERR_TIMEOUT && timeout_ms == 0)
            return r;
        if (r != LQ_OK && r != LQ_ERR_TIMEOUT)
            return r;
    }
    *ret = c->head;
    c->head = ((delivery_priv *)c->head->priv)->next;
    if (c->head == NULL)
        c->tail = NULL;
    return LQ_OK;
}

int lq_amqp_next(lq_amqp *c, int timeout_ms, lq_delivery **ret)
{
    return next_delivery(c, timeout_ms, false, ret);
}

int lq_amqp_next_or_confirm(lq_amqp *c, int timeout_ms, lq_delivery **ret)
{
    return next_delivery(c, timeout_ms, true, ret);
}

int lq_amqp_ack(lq_amqp *c, uint64_t tag, bool multiple)
{
    int status;

    if (c->broken)
        return LQ_ERR_AMQP_UNAVAILABLE;
    status = amqp_basic_ack(c->conn, CH_CONSUME, tag, multiple);
    return status == AMQP_STATUS_OK ? LQ_OK : status_error(c, "could not ack", status);
}

int lq_amqp_get(lq_amqp *c, const char *queue, lq_delivery **ret)
{
    amqp_rpc_reply_t reply = amqp_basic_get(c->conn, CH_CONSUME, cstring(queue), 0);
    amqp_basic_get_ok_t *ok;
    amqp_message_t msg;
    uint64_t tag;
    bool redelivered;
    char *exchange = NULL, *routing_key = NULL;
    int r;

    r = rpc_error(c, "could not get a message", reply);
    if (r != LQ_OK)
        return r;
    if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
        return LQ_ERR_NOT_FOUND;
    ok = reply.reply.decoded;
    tag = ok->delivery_tag;
    redelivered = ok->redelivered;
    exchange = bytes_strdup(ok->exchange);
    routing_key = bytes_strdup(ok->routing_key);
    if (!exchange || !routing_key) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    reply = amqp_read_message(c->conn, CH_CONSUME, &msg, 0);
    r = rpc_error(c, "could not read a message", reply);
    if (r != LQ_OK)
        goto out;
    r = make_delivery(tag, redelivered, amqp_cstring_bytes(exchange),
                      amqp_cstring_bytes(routing_key), &msg, ret);
out:
    free(exchange);
    free(routing_key);
    return r;
}

static bool has_prefix(amqp_bytes_t key, const char *prefix)
{
    size_t len = strlen(prefix);
    return key.len >= len && memcmp(key.bytes, prefix, len) == 0;
}

int lq_amqp_republish(lq_amqp *c, const lq_delivery *d, const char *exchange,
                      const char *routing_key, uint64_t *ret_seq)
{
    const delivery_priv *p = d->priv;
    amqp_basic_properties_t props = p->msg.properties;
    int n_old = (props._flags & AMQP_BASIC_HEADERS_FLAG) ? props.headers.num_entries : 0;
    amqp_table_entry_t *entries = calloc((size_t)n_old + 1, sizeof(*entries));
    int n = 0, r;

    if (entries == NULL)
        return LQ_ERR_NOMEM;
    /* The failure's marks, ours and the broker's, go: a replayed message starts clean. */
    for (int i = 0; i < n_old; i++) {
        amqp_bytes_t key = props.headers.entries[i].key;
        if (has_prefix(key, "x-ledgerq-") || key_is(key, "x-death") ||
            has_prefix(key, "x-first-death-") || has_prefix(key, "x-last-death-"))
            continue;
        entries[n++] = props.headers.entries[i];
    }
    props.headers.num_entries = n;
    props.headers.entries = entries;
    r = publish(c, exchange, routing_key, true, &props, p->msg.body, ret_seq);
    free(entries);
    return r;
}

int lq_amqp_queue_depth(lq_amqp *c, const char *queue, uint32_t *ret_ready)
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c->conn, CH_RPC, cstring(queue), 1, 0, 0, 0, amqp_empty_table);
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(c->conn);

    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
        ((amqp_channel_close_t *)reply.reply.decoded)->reply_code == AMQP_NOT_FOUND) {
        rpc_error(c, "no such queue", reply);
        return LQ_ERR_NOT_FOUND;
    }
    if (rpc_error(c, "could not look up a queue", reply) != LQ_OK)
        return LQ_ERR_AMQP_UNAVAILABLE;
    *ret_ready = ok->message_count;
    return LQ_OK;
}

static void copy_bytes(char *dst, size_t len, amqp_bytes_t b)
{
    snprintf(dst, len, "%.*s", (int)b.len, (const char *)b.bytes);
}

static const amqp_field_value_t *table_get(const amqp_table_t *t, const char *key)
{
    for (int i = 0; i < t->num_entries; i++) {
        if (key_is(t->entries[i].key, key))
            return &t->entries[i].value;
    }
    return NULL;
}

bool lq_delivery_x_death(const lq_delivery *d, lq_x_death *ret)
{
    const amqp_table_entry_t *e = find_header(d, "x-death");
    const amqp_table_t *t;
    const amqp_field_value_t *v;

    if (e == NULL || e->value.kind != AMQP_FIELD_KIND_ARRAY ||
        e->value.value.array.num_entries < 1 ||
        e->value.value.array.entries[0].kind != AMQP_FIELD_KIND_TABLE)
        return false;
    t = &e->value.value.array.entries[0].value.table;
    memset(ret, 0, sizeof(*ret));
    if ((v = table_get(t, "reason")) &&
        (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES))
        copy_bytes(ret->reason, sizeof(ret->reason), v->value.bytes);
    if ((v = table_get(t, "count")) && v->kind == AMQP_FIELD_KIND_I64)
        ret->count = v->value.i64;
    if ((v = table_get(t, "queue")) &&
        (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES))
        copy_bytes(ret->queue, sizeof(ret->queue), v->value.bytes);
    if ((v = table_get(t, "exchange")) &&
        (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES))
        copy_bytes(ret->exchange, sizeof(ret->exchange), v->value.bytes);
    if ((v = table_get(t, "time")) && v->kind == AMQP_FIELD_KIND_TIMESTAMP)
        ret->time = (int64_t)v->value.u64;
    if ((v = table_get(t, "routing-keys")) && v->kind == AMQP_FIELD_KIND_ARRAY &&
        v->value.array.num_entries > 0 &&
        (v->value.array.entries[0].kind == AMQP_FIELD_KIND_UTF8 ||
         v->value.array.entries[0].kind == AMQP_FIELD_KIND_BYTES))
        copy_bytes(ret->routing_key, sizeof(ret->routing_key),
                   v->value.array.entries[0].value.bytes);
    return true;
}

static void field_json(lq_json *j, const amqp_field_value_t *v);

static void table_json(lq_json *j, const amqp_table_t *t)
{
    lq_json_object_begin(j);
    for (int i = 0; i < t->num_entries; i++) {
        char key[256];
        copy_bytes(key, sizeof(key), t->entries[i].key);
        lq_json_key(j, key);
        field_json(j, &t->entries[i].value);
    }
    lq_json_object_end(j);
}

static void field_json(lq_json *j, const amqp_field_value_t *v)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
        lq_json_bool(j, v->value.boolean);
        break;
    case AMQP_FIELD_KIND_I8:
        lq_json_int(j, v->value.i8);
        break;
    case AMQP_FIELD_KIND_U8:
        lq_json_int(j, v->value.u8);
        break;
    case AMQP_FIELD_KIND_I16:
        lq_json_int(j, v->value.i16);
        break;
    case AMQP_FIELD_KIND_U16:
        lq_json_int(j, v->value.u16);
        break;
    case AMQP_FIELD_KIND_I32:
        lq_json_int(j, v->value.i32);
        break;
    case AMQP_FIELD_KIND_U32:
        lq_json_int(j, v->value.u32);
        break;
    case AMQP_FIELD_KIND_I64:
        lq_json_int(j, v->value.i64);
        break;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        lq_json_uint(j, v->value.u64);
        break;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        lq_json_string_len(j, v->value.bytes.bytes, v->value.bytes.len);
        break;
    case AMQP_FIELD_KIND_ARRAY:
        lq_json_array_begin(j);
        for (int i = 0; i < v->value.array.num_entries; i++)
            field_json(j, &v->value.array.entries[i]);
        lq_json_array_end(j);
        break;
    case AMQP_FIELD_KIND_TABLE:
        table_json(j, &v->value.table);
        break;
    default:
        /* Floats and decimals: not used by RabbitMQ or ledgerq in headers. */
        lq_json_null(j);
        break;
    }
}

char *lq_delivery_headers_json(const lq_delivery *d)
{
    const delivery_priv *p = d->priv;
    static const amqp_table_t empty = {0, NULL};
    lq_json j;

    lq_json_init(&j);
    table_json(&j, (p->msg.properties._flags & AMQP_BASIC_HEADERS_FLAG) ? &p->msg.properties.headers
                                                                        : &empty);
    return lq_json_steal(&j);
}
