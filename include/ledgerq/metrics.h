/*
 * The worker's health and metrics (docs/protocol.md section 11), shared between
 * the worker loop (which writes) and the HTTP thread (which reads).
 * Every function is thread-safe: the state is atomics only.
 */
#ifndef LEDGERQ_METRICS_H
#define LEDGERQ_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lq_metrics lq_metrics;

/* What happened to one message, for ledgerq_messages_total{outcome=...}. */
typedef enum lq_metrics_outcome {
    LQ_METRICS_APPLIED = 0,
    LQ_METRICS_REJECTED,
    LQ_METRICS_DUPLICATE,
    LQ_METRICS_DEAD_LETTERED,
    LQ_METRICS_OUTCOMES,
} lq_metrics_outcome;

typedef enum lq_metrics_target {
    LQ_METRICS_AMQP = 0,
    LQ_METRICS_DB,
    LQ_METRICS_TARGETS,
} lq_metrics_target;

/* A new, zeroed set of metrics; caller frees with lq_metrics_free().  NULL when out of memory. */
lq_metrics *lq_metrics_new(void);

/* Accepts NULL; returns NULL. */
lq_metrics *lq_metrics_free(lq_metrics *m);

/* Count n messages with outcome o. */
void lq_metrics_count(lq_metrics *m, lq_metrics_outcome o, uint64_t n);

/* Record a batch of size payments (ledgerq_batch_size). */
void lq_metrics_observe_batch(lq_metrics *m, size_t size);

/* Record one message's time from receipt to ack, in microseconds. */
void lq_metrics_observe_message_us(lq_metrics *m, int64_t us);

/* Record one database commit's duration, in microseconds. */
void lq_metrics_observe_commit_us(lq_metrics *m, int64_t us);

/* Count a reconnect to target (after a lost or refused connection). */
void lq_metrics_count_reconnect(lq_metrics *m, lq_metrics_target target);

/* Whether each connection is up and the consumer is active; ready means all three. */
void lq_metrics_set_connected(lq_metrics *m, lq_metrics_target target, bool up);
void lq_metrics_set_consuming(lq_metrics *m, bool consuming);

/* The queue's ready messages (from the broker) and the messages this worker holds unacked. */
void lq_metrics_set_queue(lq_metrics *m, uint64_t ready, uint64_t in_hand);

/* The loop went round: /healthz stays 200 while this happens often enough. */
void lq_metrics_tick(lq_metrics *m);

/* The loop ticked within the last max_age_ms. */
bool lq_metrics_alive(const lq_metrics *m, int64_t max_age_ms);

/* Connected to both and consuming. */
bool lq_metrics_ready(const lq_metrics *m);

/*
 * The metrics in the Prometheus text exposition format (version 0.0.4).
 * Returns a new string (caller frees with free()), NULL when out of memory.
 */
char *lq_metrics_render(const lq_metrics *m);

#endif
