/*
 * Health and metrics: atomics written by the worker loop, read by the HTTP
 * thread.  Histogram buckets are counted one by one and made cumulative
 * when rendered, as Prometheus wants them.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/clock.h"
#include "ledgerq/metrics.h"

#define MAX_BUCKETS 16

typedef struct histogram {
    const char *name;
    const char *help;
    const int64_t *bounds; /* upper bounds, in the unit observed */
    size_t n_bounds;
    int64_t scale; /* observed units per rendered unit: 1e6 for microseconds -> seconds */
    _Atomic uint64_t buckets[MAX_BUCKETS + 1]; /* the last one: above every bound */
    _Atomic uint64_t sum;
    _Atomic uint64_t count;
} histogram;

static const int64_t batch_bounds[] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
static const int64_t time_bounds_us[] = {250,   500,    1000,   2500,   5000,    10000,   25000,
                                         50000, 100000, 250000, 500000, 1000000, 2500000, 10000000};

struct lq_metrics {
    _Atomic uint64_t messages[LQ_METRICS_OUTCOMES];
    _Atomic uint64_t reconnects[LQ_METRICS_TARGETS];
    atomic_bool connected[LQ_METRICS_TARGETS];
    atomic_bool consuming;
    _Atomic uint64_t queue_ready;
    _Atomic uint64_t in_hand;
    _Atomic int64_t last_tick_ms;
    histogram batch;
    histogram message;
    histogram commit;
};

static const char *const outcome_names[LQ_METRICS_OUTCOMES] = {"applied", "rejected", "duplicate",
                                                               "dead_lettered"};
static const char *const target_names[LQ_METRICS_TARGETS] = {"amqp", "db"};

static void histogram_init(histogram *h, const char *name, const char *help, const int64_t *bounds,
                           size_t n, int64_t scale)
{
    h->name = name;
    h->help = help;
    h->bounds = bounds;
    h->n_bounds = n;
    h->scale = scale;
}

static void observe(histogram *h, int64_t v)
{
    size_t i = 0;

    if (v < 0)
        v = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, (uint64_t)v, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

lq_metrics *lq_metrics_new(void)
{
    lq_metrics *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    histogram_init(&m->batch, "ledgerq_batch_size", "Payments per database transaction.",
                   batch_bounds, sizeof(batch_bounds) / sizeof(batch_bounds[0]), 1);
    histogram_init(&m->message, "ledgerq_message_duration_seconds",
                   "Time from receiving a payment command to acking it.", time_bounds_us,
                   sizeof(time_bounds_us) / sizeof(time_bounds_us[0]), 1000000);
    histogram_init(&m->commit, "ledgerq_db_commit_duration_seconds",
                   "Duration of a batch's database transaction, begin to commit.", time_bounds_us,
                   sizeof(time_bounds_us) / sizeof(time_bounds_us[0]), 1000000);
    atomic_store(&m->last_tick_ms, lq_clock_ms());
    return m;
}

lq_metrics *lq_metrics_free(lq_metrics *m)
{
    free(m);
    return NULL;
}

void lq_metrics_count(lq_metrics *m, lq_metrics_outcome o, uint64_t n)
{
    atomic_fetch_add_explicit(&m->messages[o], n, memory_order_relaxed);
}

void lq_metrics_observe_batch(lq_metrics *m, size_t size)
{
    observe(&m->batch, (int64_t)size);
}

void lq_metrics_observe_message_us(lq_metrics *m, int64_t us)
{
    observe(&m->message, us);
}

void lq_metrics_observe_commit_us(lq_metrics *m, int64_t us)
{
    observe(&m->commit, us);
}

void lq_metrics_count_reconnect(lq_metrics *m, lq_metrics_target target)
{
    atomic_fetch_add_explicit(&m->reconnects[target], 1, memory_order_relaxed);
}

void lq_metrics_set_connected(lq_metrics *m, lq_metrics_target target, bool up)
{
    atomic_store(&m->connected[target], up);
}

void lq_metrics_set_consuming(lq_metrics *m, bool consuming)
{
    atomic_store(&m->consuming, consuming);
}

void lq_metrics_set_queue(lq_metrics *m, uint64_t ready, uint64_t in_hand)
{
    atomic_store_explicit(&m->queue_ready, ready, memory_order_relaxed);
    atomic_store_explicit(&m->in_hand, in_hand, memory_order_relaxed);
}

void lq_metrics_tick(lq_metrics *m)
{
    atomic_store_explicit(&m->last_tick_ms, lq_clock_ms(), memory_order_relaxed);
}

bool lq_metrics_alive(const lq_metrics *m, int64_t max_age_ms)
{
    return lq_clock_ms() - atomic_load(&m->last_tick_ms) <= max_age_ms;
}

bool lq_metrics_ready(const lq_metrics *m)
{
    return atomic_load(&m->connected[LQ_METRICS_AMQP]) &&
           atomic_load(&m->connected[LQ_METRICS_DB]) && atomic_load(&m->consuming);
}

/*
 * The /metrics text, grown as it is written.  Once an allocation failed,
 * failed stays set and the render returns NULL: a scraper must never get a
 * cut text that still parses.
 */
typedef struct text {
    char *buf; /* owned, NUL-terminated once anything was written */
    size_t len, cap;
    bool failed;
} text;

/* Room for n more bytes and the NUL; false (and t->failed) when out of memory. */
static bool reserve(text *t, size_t n)
{
    size_t need, cap;
    char *buf;

    if (t->failed)
        return false;
    if (__builtin_add_overflow(t->len, n, &need) || __builtin_add_overflow(need, 1, &need))
        goto fail;
    if (need <= t->cap)
        return true;
    /* The whole text is a few KiB: a page more at a time reallocates a handful of times. */
    if (__builtin_add_overflow(need, 4096, &cap))
        goto fail;
    buf = realloc(t->buf, cap);
    if (buf == NULL)
        goto fail;
    t->buf = buf;
    t->cap = cap;
    return true;
fail:
    t->failed = true;
    return false;
}

/* Append printf-formatted text, whatever its length. */
__attribute__((format(printf, 2, 3))) static void put(text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->failed = true;
        return;
    }
    if (!reserve(t, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* A value in the rendered unit: v / scale, exactly for whole units. */
static void put_scaled(text *out, uint64_t v, int64_t scale)
{
    if (scale == 1)
        put(out, "%" PRIu64, v);
    else
        put(out, "%" PRIu64 ".%06" PRIu64, v / (uint64_t)scale, v % (uint64_t)scale);
}

static void render_histogram(text *out, const histogram *h)
{
    uint64_t cumulative = 0;

    put(out, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
    for (size_t i = 0; i <= h->n_bounds; i++) {
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        put(out, "%s_bucket{le=\"", h->name);
        if (i < h->n_bounds)
            put_scaled(out, (uint64_t)h->bounds[i], h->scale);
        else
            put(out, "+Inf");
        put(out, "\"} %" PRIu64 "\n", cumulative);
    }
    put(out, "%s_sum ", h->name);
    put_scaled(out, atomic_load_explicit(&h->sum, memory_order_relaxed), h->scale);
    /* The count is the +Inf bucket, as the format requires. */
    put(out, "\n%s_count %" PRIu64 "\n", h->name, cumulative);
}

char *lq_metrics_render(const lq_metrics *m)
{
    text out = {0};

    put(&out, "# HELP ledgerq_messages_total Payment commands handled, by outcome.\n"
              "# TYPE ledgerq_messages_total counter\n");
    for (int o = 0; o < LQ_METRICS_OUTCOMES; o++)
        put(&out, "ledgerq_messages_total{outcome=\"%s\"} %" PRIu64 "\n", outcome_names[o],
            atomic_load_explicit(&m->messages[o], memory_order_relaxed));
    render_histogram(&out, &m->batch);
    render_histogram(&out, &m->message);
    render_histogram(&out, &m->commit);
    put(&out, "# HELP ledgerq_reconnects_total Connections made again after a loss.\n"
              "# TYPE ledgerq_reconnects_total counter\n");
    for (int t = 0; t < LQ_METRICS_TARGETS; t++)
        put(&out, "ledgerq_reconnects_total{target=\"%s\"} %" PRIu64 "\n", target_names[t],
            atomic_load_explicit(&m->reconnects[t], memory_order_relaxed));
    put(&out, "# HELP ledgerq_connected Whether the connection is up.\n"
              "# TYPE ledgerq_connected gauge\n");
    for (int t = 0; t < LQ_METRICS_TARGETS; t++)
        put(&out, "ledgerq_connected{target=\"%s\"} %d\n", target_names[t],
            atomic_load(&m->connected[t]) ? 1 : 0);
    put(&out,
        "# HELP ledgerq_ready Connected to the broker and the database, and consuming.\n"
        "# TYPE ledgerq_ready gauge\nledgerq_ready %d\n",
        lq_metrics_ready(m) ? 1 : 0);
    put(&out,
        "# HELP ledgerq_queue_messages Messages of the work queue: ready (as the broker last "
        "said) and unacked in this worker's hands.\n"
        "# TYPE ledgerq_queue_messages gauge\n"
        "ledgerq_queue_messages{state=\"ready\"} %" PRIu64 "\n"
        "ledgerq_queue_messages{state=\"unacked\"} %" PRIu64 "\n",
        atomic_load_explicit(&m->queue_ready, memory_order_relaxed),
        atomic_load_explicit(&m->in_hand, memory_order_relaxed));
    if (out.failed) {
        free(out.buf);
        return NULL;
    }
    return out.buf;
}
