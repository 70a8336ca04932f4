/*
 * The RabbitMQ connection.  The only module that includes <amqp.h>.
 *
 * One connection, three channels: one consumes, takes single messages
 * (basic.get) and acks them; one publishes in confirm mode; one carries
 * the other synchronous requests (declarations, counting a queue).  Frames
 * of all three arrive on the one socket; this module reads them all, keeps
 * deliveries that arrive while it waits for confirms, and never blocks
 * longer than asked so that heartbeats are serviced.  Failures: LQ_ERR_AMQP_UNAVAILABLE when the
 * connection or a channel is gone (close the handle and connect again), LQ_ERR_AMQP_NACK when the
 * broker refused a publish.  lq_amqp_error() tells the last one.
 */
#ifndef LEDGERQ_AMQP_H
#define LEDGERQ_AMQP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledgerq/config.h"

typedef struct lq_amqp lq_amqp;

/* One message received from a queue; fields point into memory it owns. */
typedef struct lq_delivery {
    uint64_t tag;
    bool redelivered;
    const char *body; /* not NUL-terminated */
    size_t body_len;
    const char *content_type; /* not NUL-terminated; NULL when absent */
    size_t content_type_len;
    char *exchange; /* NUL-terminated copies; "" when empty */
    char *routing_key;
    char *reply_to;         /* NULL when absent */
    char *message_id;       /* NULL when absent */
    int64_t delivery_count; /* quorum queues' x-delivery-count; 0 when absent */
    void *priv;             /* the module's own */
} lq_delivery;

/* Free a delivery.  Accepts NULL; returns NULL. */
lq_delivery *lq_delivery_free(lq_delivery *d);

/* What to publish. */
typedef struct lq_publish {
    const char *exchange; /* "" is the default exchange */
    const char *routing_key;
    const void *body;
    size_t body_len;
    const char *content_type;   /* NULL for none */
    const char *message_id;     /* NULL for none */
    const char *correlation_id; /* NULL for none */
    const char *reply_to;       /* NULL for none */
    bool mandatory;             /* unroutable: returned, see lq_amqp_returned() */
} lq_publish;

/* Why a message is dead-lettered (the x-ledgerq-* headers). */
typedef struct lq_dead_letter {
    const char *exchange; /* the dead-letter exchange */
    const char *error;    /* a wire code: "invalid_payment", ... */
    const char *detail;   /* one line */
    const char *queue;    /* the queue it was consumed from */
    int attempts;
} lq_dead_letter;

/*
 * Connect to cfg->amqp_url (amqp:// or amqps://), log in with a heartbeat
 * of heartbeat_s seconds (0: none), open the channels and put the
 * publishing one in confirm mode.  For amqps:// it uses cfg's TLS files:
 * the CA certificates that verify the broker (the system's when unset) and
 * an optional client certificate and key; the broker's certificate and host
 * name are always verified, TLS 1.2 or later.  Only those four fields of
 * cfg are read.  On success stores a new handle in *ret (caller closes with
 * lq_amqp_close()).  On failure writes a line without secrets to err.
 */
int lq_amqp_connect_config(const lq_config *cfg, int heartbeat_s, lq_amqp **ret, char *err,
                           size_t err_len);

/*
 * Close channels and connection, politely when possible (not when broken,
 * nor when blocked: the broker reads nothing then).  Accepts NULL; returns
 * NULL.
 */
lq_amqp *lq_amqp_close(lq_amqp *c);

/* The last failure, one line; "" when none.  Valid until the next call. */
const char *lq_amqp_error(const lq_amqp *c);

/*
 * Wait at most timeout_ms (at least 1) for the reply of each later
 * synchronous request, lq_amqp_close()'s included; 30 s after connecting.
 * A request that times out leaves the connection broken.
 */
void lq_amqp_set_rpc_timeout(lq_amqp *c, int timeout_ms);

/* Declare the exchanges, queues and bindings of docs/protocol.md section 3 as cfg names them. */
int lq_amqp_declare_topology(lq_amqp *c, const lq_config *cfg);

/*
 * Declare a server-named, exclusive, auto-delete queue bound to exchange
 * with binding_key, for listening to events.  ret_name (256 bytes) gets
 * its name.
 */
int lq_amqp_declare_listener(lq_amqp *c, const char *exchange, const char *binding_key,
                             char ret_name[256]);

/*
 * Publish a persistent message on the confirm channel.  *ret_seq (may be
 * NULL) gets its confirm sequence number.  Does not wait for the confirm.
 */
int lq_amqp_publish(lq_amqp *c, const lq_publish *p, uint64_t *ret_seq);

/*
 * Republish d unchanged (body and properties) to dl->exchange with the
 * x-ledgerq-* headers of docs/protocol.md section 7 added, as a mandatory publish
 * (lq_amqp_returned() counts it if no queue took it).  Does not wait for
 * the confirm.
 */
int lq_amqp_dead_letter(lq_amqp *c, const lq_delivery *d, const lq_dead_letter *dl,
                        uint64_t *ret_seq);

/*
 * Wait until the broker has confirmed everything published so far, at most
 * timeout_ms.  Deliveries that arrive meanwhile are kept for
 * lq_amqp_next().  Returns LQ_OK, LQ_ERR_AMQP_NACK (something was refused),
 * LQ_ERR_TIMEOUT or LQ_ERR_AMQP_UNAVAILABLE.
 */
int lq_amqp_wait_confirms(lq_amqp *c, int timeout_ms);

/* Whether the broker has answered (confirmed or refused) every publish up to seq. */
bool lq_amqp_confirmed(const lq_amqp *c, uint64_t seq);

/* The confirm sequence number of the last publish (0 before the first). */
uint64_t lq_amqp_last_seq(const lq_amqp *c);

/*
 * Wait until lq_amqp_confirmed(c, seq), at most timeout_ms; deliveries that
 * arrive meanwhile are kept.  Returns LQ_OK, LQ_ERR_TIMEOUT or
 * LQ_ERR_AMQP_UNAVAILABLE; refusals show in lq_amqp_nacked().
 */
int lq_amqp_wait_confirmed(lq_amqp *c, uint64_t seq, int timeout_ms);

/*
 * Keep the connection alive for timeout_ms without taking anything: answer
 * heartbeats, record confirms, keep deliveries for lq_amqp_next().  With
 * timeout_ms 0, handles what has arrived and sends a heartbeat that is due,
 * without waiting.  Returns LQ_OK, or LQ_ERR_AMQP_UNAVAILABLE when the
 * connection died meanwhile.
 */
int lq_amqp_service(lq_amqp *c, int timeout_ms);

/*
 * Whether the broker has blocked this connection (connection.blocked, a
 * resource alarm): publishing now would stall until it unblocks.
 */
bool lq_amqp_blocked(const lq_amqp *c);

/* How many mandatory publishes the broker returned as unroutable so far. */
uint64_t lq_amqp_returned(const lq_amqp *c);

/* How many publishes the broker refused (basic.nack) so far. */
uint64_t lq_amqp_nacked(const lq_amqp *c);

/* Start consuming queue with manual acks and the given prefetch. */
int lq_amqp_consume(lq_amqp *c, const char *queue, int prefetch);

/* Stop consuming (basic.cancel); deliveries already sent may still arrive. */
int lq_amqp_cancel(lq_amqp *c);

/*
 * The next delivery, waiting at most timeout_ms (0: only what is already
 * here).  On success stores it in *ret (caller frees with
 * lq_delivery_free()).  LQ_ERR_TIMEOUT when none came.
 */
int lq_amqp_next(lq_amqp *c, int timeout_ms, lq_delivery **ret);

/*
 * lq_amqp_next(), but a confirm read while waiting ends the wait too: then
 * it returns LQ_OK with *ret NULL.
 */
int lq_amqp_next_or_confirm(lq_amqp *c, int timeout_ms, lq_delivery **ret);

/* Ack tag (and, with multiple, every earlier unacked tag) on the consuming channel. */
int lq_amqp_ack(lq_amqp *c, uint64_t tag, bool multiple);

/*
 * basic.get one message from queue with manual ack.  LQ_ERR_NOT_FOUND when
 * the queue is empty.  The caller acks it; closing the connection gives
 * back what it did not ack.
 */
int lq_amqp_get(lq_amqp *c, const char *queue, lq_delivery **ret);

/* Look up a header of d: integer or string value.  false when absent or of another type. */
bool lq_delivery_header_int(const lq_delivery *d, const char *name, int64_t *ret);
bool lq_delivery_header_string(const lq_delivery *d, const char *name, char *ret, size_t ret_len);

/*
 * Publish d again, body and properties unchanged but without its
 * x-ledgerq-* and x-death headers, to exchange with routing_key (mandatory:
 * see lq_amqp_returned()).  For replaying dead-lettered messages.  Does not
 * wait for the confirm.
 */
int lq_amqp_republish(lq_amqp *c, const lq_delivery *d, const char *exchange,
                      const char *routing_key, uint64_t *ret_seq);

/*
 * The number of ready messages in queue (a passive declare).  Returns
 * LQ_ERR_NOT_FOUND when the queue does not exist (the connection is then
 * broken: close it).
 */
int lq_amqp_queue_depth(lq_amqp *c, const char *queue, uint32_t *ret_ready);

/* The first (latest) entry of a message's x-death header, set by the broker. */
typedef struct lq_x_death {
    char reason[64]; /* "delivery_limit", "rejected", "expired", "maxlen" */
    int64_t count;
    char queue[256];
    char exchange[256];
    char routing_key[256]; /* the first of routing-keys */
    int64_t time;          /* when, in seconds since the epoch; 0 when absent */
} lq_x_death;

/* Read d's x-death header into *ret; false when it has none. */
bool lq_delivery_x_death(const lq_delivery *d, lq_x_death *ret);

/*
 * d's headers as a JSON object (nested tables and arrays included, x-death
 * for one), for people.  Returns a new string (caller frees), or NULL when
 * out of memory.
 */
char *lq_delivery_headers_json(const lq_delivery *d);

#endif
