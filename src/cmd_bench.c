/*
 * `ledgerq bench`: a load generator that measures the whole pipeline,
 * from publishing a payment command to receiving its result event
 * (docs/protocol.md section 10).
 *
 * One thread, two broker connections: one publishes (with confirms), one
 * consumes the result events from a private queue bound to the results
 * exchange.  Latency is receipt of the event minus publish of the command.
 *
 * --holds measures authorize-and-capture pairs instead: each hold's event
 * sends its capture or void, and each kind (hold, capture, void, and the
 * expiry: its event after the expiry time) gets its own latencies.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ledgerq/amqp.h"
#include "ledgerq/cli.h"
#include "ledgerq/clock.h"
#include "ledgerq/db.h"
#include "ledgerq/error.h"
#include "ledgerq/json.h"
#include "ledgerq/message.h"

#define CONFIRM_WINDOW     2000
#define CONFIRM_TIMEOUT_MS 60000

static const lq_cli_option bench_options[] = {
    {"accounts", true, "N  accounts bench:0 .. bench:N-1 (default 1000)"},
    {"count", true, "N  payments to publish (default 10000; 0 with --setup: only open accounts)"},
    {"rate", true, "R  payments per second (default: as fast as possible)"},
    {"duration", true, "S  with --rate: publish for S seconds (count = R * S)"},
    {"skew", true, "uniform|hot  hot: every payment debits bench:0 (default uniform)"},
    {"duplicates", true, "F  share of payments published twice, 0 to 1 (default 0)"},
    {"setup", false, "open the accounts first (allow negative; skipped when they exist)"},
    {"preload", false, "publish everything, then measure how fast the workers drain it"},
    {"holds", false,
     "authorize and capture: each payment a hold, resolved once its event arrives by a capture "
     "(in full or in part), a void (1 in 10) or its expiry (1 in 20, timeout_s 1)"},
    {"timeout", true, "S  longest wait for the result events (default 300)"},
    {"json", false, "print the result as one JSON object"},
    {NULL, false, NULL},
};

/* How --holds resolves a hold (docs/protocol.md section 10). */
enum { KIND_HOLD, KIND_CAPTURE, KIND_VOID, KIND_EXPIRY, KIND_N };

static const char *const kind_names[KIND_N] = {"hold", "capture", "void", "expiry"};

/* The latencies of one kind of command in --holds, in us. */
typedef struct series {
    int64_t *us;
    size_t n;
} series;

typedef struct bench {
    long accounts;
    long count;
    long rate;
    bool hot;
    double duplicates;
    bool preload;
    bool holds;
    /*
     * --holds: per payment, the hold's expiry (wall clock, us) for an
     * expiring one, and the latencies of each kind: publish to event for
     * holds, captures and voids, the expiry time to the event for expiries.
     */
    int64_t *expires_unix_us;
    series kinds[KIND_N];
    size_t n_hold_events; /* --holds: every event received */
    size_t n_expected;    /* --holds: events to wait for (two a hold; one a rejected hold) */
    const char *exchange; /* where commands go */
    long timeout_s;
    char prefix[32];

    lq_amqp *pub;
    lq_amqp *sub;
    char queue[256];

    int64_t *sent_us;   /* per payment: when its first command was published */
    int64_t *second_us; /* per duplicated payment: when its copy was published */
    uint8_t *n_events;  /* per payment: events received */
    int64_t *latency_us;
    size_t n_latency;
    /*
     * Split of the latency at the event's processed_at (the start of the
     * database transaction, on the database server's clock): before it, the
     * broker's hop to a worker and the wait there; after it, the
     * transaction, the event's publish and the broker's hop back.  Wall
     * clocks: meaningful when all run on one host (or synchronized clocks).
     */
    int64_t *sent_unix_us; /* per payment: wall-clock time of its first publish */
    int64_t *before_us, *after_us;
    size_t n_split;
    size_t n_messages; /* published */
    size_t n_duplicates;
    int64_t start_us, first_event_us, last_event_us, published_us;
} bench;

/* Strictly positive whole number option, or def when absent. */
static bool long_option(const lq_cli_args *args, const char *name, long def, long min, long max,
                        long *ret)
{
    const char *v = lq_cli_value(args, bench_options, name);
    char *end;
    long n;

    if (v == NULL) {
        *ret = def;
        return true;
    }
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        lq_cli_fail("invalid value for --%s: \"%.40s\" (expected a whole number from %ld to %ld)",
                    name, v, min, max);
        return false;
    }
    *ret = n;
    return true;
}

/* The payment index an event is about, from its "id" (prefix + index). */
static long event_index(const bench *b, const lq_delivery *d, int64_t *ret_processed_us)
{
    char id[LQ_ID_MAX + 1];
    size_t plen = strlen(b->prefix);
    char *end;
    long i;

    if (!lq_message_peek_event(d->body, d->body_len, id, ret_processed_us) ||
        strncmp(id, b->prefix, plen) != 0)
        return -1;
    i = strtol(id + plen, &end, 10);
    return *end == '\0' && i >= 0 && i < b->count ? i : -1;
}

static int publish_resolution(bench *b, long i, const char *exchange);
static int resolution_of(long i);

/*
 * --holds: an event of a hold (prefix h index) or of its capture or void
 * (prefix r index), received at t (t_unix on the wall clock).  A hold's
 * event sends its capture or void, or notes when it expires.
 */
static int hold_event(bench *b, const lq_delivery *d, int64_t t, int64_t t_unix)
{
    char id[LQ_ID_MAX + 1], *end;
    size_t plen = strlen(b->prefix);
    int64_t processed = 0;
    series *s;
    long i;

    if (!lq_message_peek_event(d->body, d->body_len, id, &processed) ||
        strncmp(id, b->prefix, plen) != 0 || (id[plen] != 'h' && id[plen] != 'r'))
        return LQ_OK;
    i = strtol(id + plen + 1, &end, 10);
    if (*end != '\0' || i < 0 || i >= b->count)
        return LQ_OK;
    b->n_hold_events++;
    if (b->first_event_us == 0)
        b->first_event_us = t;
    b->last_event_us = t;
    if (id[plen] == 'r') {
        s = &b->kinds[resolution_of(i)];
        s->us[s->n++] = t - b->second_us[i];
        return LQ_OK;
    }
    if (strcmp(d->routing_key, "hold.expired") == 0) {
        s = &b->kinds[KIND_EXPIRY];
        if (b->expires_unix_us[i] > 0)
            s->us[s->n++] = t_unix - b->expires_unix_us[i];
        return LQ_OK;
    }
    s = &b->kinds[KIND_HOLD];
    s->us[s->n++] = t - b->sent_us[i];
    if (strcmp(d->routing_key, "hold.applied") != 0) {
        b->n_expected--; /* rejected: nothing to resolve */
        return LQ_OK;
    }
    if (resolution_of(i) == KIND_EXPIRY) {
        b->expires_unix_us[i] = processed + 1000000;
        return LQ_OK;
    }
    return publish_resolution(b, i, b->exchange);
}

/* Take every event already received; wait at most wait_ms for the first. */
static int collect(bench *b, int wait_ms)
{
    lq_delivery *d = NULL;
    uint64_t last_tag = 0;
    int r;

    while ((r = lq_amqp_next(b->sub, wait_ms, &d)) == LQ_OK) {
        int64_t t = lq_clock_us(), t_unix = lq_clock_unix_us(), processed = 0;
        long i = b->holds ? -1 : event_index(b, d, &processed);
        wait_ms = 0;
        last_tag = d->tag;
        if (b->holds && (r = hold_event(b, d, t, t_unix)) != LQ_OK) {
            lq_delivery_free(d);
            return r;
        }
        if (i >= 0) {
            int64_t sent = b->n_events[i] == 0 ? b->sent_us[i] : b->second_us[i];
            /* The first event of a payment: processed_at is this processing's. */
            if (b->n_events[i] == 0 && processed > 0 && b->sent_unix_us[i] > 0) {
                b->before_us[b->n_split] = processed - b->sent_unix_us[i];
                b->after_us[b->n_split++] = t_unix - processed;
            }
            b->n_events[i]++;
            if (sent > 0)
                b->latency_us[b->n_latency++] = t - sent;
            if (b->first_event_us == 0)
                b->first_event_us = t;
            b->last_event_us = t;
        }
        d = lq_delivery_free(d);
    }
    if (last_tag && lq_amqp_ack(b->sub, last_tag, true) != LQ_OK)
        return LQ_ERR_AMQP_UNAVAILABLE;
    return r == LQ_ERR_TIMEOUT ? LQ_OK : r;
}

/* What payment i is: its two accounts and its amount, derived from i (a duplicate repeats it). */
static void payment_of(const bench *b, long i, long *ret_debit, long *ret_credit,
                       uint64_t *ret_amount)
{
    uint64_t seed = (uint64_t)i * 0x9E3779B97F4A7C15ULL;

    *ret_debit = b->hot ? 0 : (long)((seed >> 11) % (uint64_t)b->accounts);
    *ret_credit = (long)((seed >> 29) % (uint64_t)(b->accounts - 1));
    if (*ret_credit >= *ret_debit)
        (*ret_credit)++;
    *ret_amount = 1 + (seed >> 40) % 10000;
}

/* How --holds resolves hold i: 1 in 20 expires, 1 in 10 is voided, the others are captured. */
static int resolution_of(long i)
{
    return i % 20 == 0 ? KIND_EXPIRY : i % 10 == 5 ? KIND_VOID : KIND_CAPTURE;
}

/*
 * Publish body (its id: message id), note when in *sent_us (and
 * *sent_unix_us, unless NULL), and keep a sliding window of unconfirmed
 * commands: wait only when it is full, so that the offered rate does not
 * stall (and events are not left waiting) on a confirm round every
 * CONFIRM_WINDOW commands.
 */
static int publish_body(bench *b, const char *exchange, const char *id, const char *body,
                        size_t len, int64_t *sent_us, int64_t *sent_unix_us)
{
    lq_publish p = {.exchange = exchange,
                    .routing_key = "payment.bench",
                    .content_type = "application/json",
                    .mandatory = true,
                    .body = body,
                    .body_len = len,
                    .message_id = id};
    int r = lq_amqp_publish(b->pub, &p, NULL);

    if (r != LQ_OK)
        return r;
    *sent_us = lq_clock_us();
    if (sent_unix_us)
        *sent_unix_us = lq_clock_unix_us();
    b->n_messages++;
    if (b->n_messages % 64 == 0 && (r = lq_amqp_service(b->pub, 0)) != LQ_OK)
        return r;
    if (lq_amqp_last_seq(b->pub) > CONFIRM_WINDOW &&
        !lq_amqp_confirmed(b->pub, lq_amqp_last_seq(b->pub) - CONFIRM_WINDOW))
        return lq_amqp_wait_confirmed(b->pub, lq_amqp_last_seq(b->pub) - CONFIRM_WINDOW,
                                      CONFIRM_TIMEOUT_MS);
    return LQ_OK;
}

/* --holds: publish the capture or void of hold i, once its event has arrived. */
static int publish_resolution(bench *b, long i, const char *exchange)
{
    char body[320], id[64];
    long debit, credit;
    uint64_t amount;
    int kind = resolution_of(i), n;

    payment_of(b, i, &debit, &credit, &amount);
    snprintf(id, sizeof(id), "%sr%ld", b->prefix, i);
    if (kind == KIND_VOID)
        n = snprintf(body, sizeof(body), "{\"type\":\"void\",\"id\":\"%s\",\"hold\":\"%sh%ld\"}",
                     id, b->prefix, i);
    else if (i % 2 == 0)
        n = snprintf(body, sizeof(body), "{\"type\":\"capture\",\"id\":\"%s\",\"hold\":\"%sh%ld\"}",
                     id, b->prefix, i);
    else /* a partial capture: what shipped */
        n = snprintf(body, sizeof(body),
                     "{\"type\":\"capture\",\"id\":\"%s\",\"hold\":\"%sh%ld\","
                     "\"amount\":%" PRIu64 "}",
                     id, b->prefix, i, (amount + 1) / 2);
    return publish_body(b, exchange, id, body, (size_t)n, &b->second_us[i], NULL);
}

static int publish_one(bench *b, long i, const char *exchange, bool second)
{
    char body[320], id[64], timeout[32] = "";
    long debit, credit;
    uint64_t amount;
    int n;

    payment_of(b, i, &debit, &credit, &amount);
    if (b->holds) {
        snprintf(id, sizeof(id), "%sh%ld", b->prefix, i);
        snprintf(timeout, sizeof(timeout), ",\"timeout_s\":%d",
                 resolution_of(i) == KIND_EXPIRY ? 1 : 3600);
    } else {
        snprintf(id, sizeof(id), "%s%ld", b->prefix, i);
    }
    n = snprintf(body, sizeof(body),
                 "{%s\"id\":\"%s\",\"debit\":\"bench:%ld\",\"credit\":\"bench:%ld\","
                 "\"amount\":%" PRIu64 ",\"currency\":\"EUR\"%s}",
                 b->holds ? "\"type\":\"hold\"," : "", id, debit, credit, amount, timeout);
    if (second)
        return publish_body(b, exchange, id, body, (size_t)n, &b->second_us[i], NULL);
    return publish_body(b, exchange, id, body, (size_t)n, &b->sent_us[i], &b->sent_unix_us[i]);
}

static int publish_all(bench *b, const char *exchange)
{
    long dup_every = b->duplicates > 0 ? (long)(1.0 / b->duplicates + 0.5) : 0;
    int r;

    b->start_us = lq_clock_us();
    for (long i = 0; i < b->count; i++) {
        if (b->rate > 0) {
            /* Hold the offered rate; collect events while waiting. */
            int64_t due = b->start_us + (int64_t)((double)i * 1e6 / (double)b->rate);
            int64_t wait;
            while ((wait = due - lq_clock_us()) > 0) {
                r = collect(b, (int)(wait / 1000));
                if (r != LQ_OK)
                    return r;
                if (wait < 1000)
                    usleep((useconds_t)wait);
            }
        }
        r = publish_one(b, i, exchange, false);
        if (r == LQ_OK && dup_every > 0 && i % dup_every == 0) {
            r = publish_one(b, i, exchange, true);
            b->n_duplicates++;
        }
        if (r != LQ_OK)
            return r;
        if (!b->preload && i % 64 == 0 && (r = collect(b, 0)) != LQ_OK)
            return r;
    }
    r = lq_amqp_wait_confirms(b->pub, CONFIRM_TIMEOUT_MS);
    b->published_us = lq_clock_us();
    if (r == LQ_OK && lq_amqp_returned(b->pub) > 0) {
        lq_cli_fail("%" PRIu64 " commands were unroutable: is the topology declared?",
                    lq_amqp_returned(b->pub));
        return LQ_ERR_AMQP_NACK;
    }
    return r;
}

static int compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Percentile p of the n sorted values v, in ms. */
static double percentile_of(const int64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    return (double)v[(size_t)(p * (double)(n - 1) + 0.5)] / 1000.0;
}

static double percentile_ms(const bench *b, double p)
{
    return percentile_of(b->latency_us, b->n_latency, p);
}

/* "key": value as format writes it (measurements are not money: plain decimal text is fine). */
static void json_number(lq_json *j, const char *key, const char *format, double value)
{
    char num[64];

    snprintf(num, sizeof(num), format, value);
    lq_json_key(j, key);
    lq_json_raw(j, num);
}

static void json_percentiles(lq_json *j, const char *key, const int64_t *v, size_t n)
{
    lq_json_key(j, key);
    lq_json_object_begin(j);
    json_number(j, "p50", "%.3f", percentile_of(v, n, 0.5));
    json_number(j, "p99", "%.3f", percentile_of(v, n, 0.99));
    lq_json_object_end(j);
}

/*
 * CPU seconds (user + system) this process used so far: a driver script
 * reports the load generator's share from it instead of sampling /proc
 * while the measurement runs.
 */
static double cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* --holds: each kind's count and latency percentiles. */
static void report_holds(const bench *b, bool json, bool complete)
{
    double seconds = (double)(b->last_event_us - b->start_us) / 1e6;
    double pairs = seconds > 0 ? (double)b->count / seconds : 0;

    if (json) {
        lq_json j;
        lq_json_init(&j);
        lq_json_object_begin(&j);
        lq_json_key(&j, "mode");
        lq_json_string(&j, "holds");
        lq_json_key(&j, "accounts");
        lq_json_int(&j, b->accounts);
        lq_json_key(&j, "holds");
        lq_json_int(&j, b->count);
        lq_json_key(&j, "messages");
        lq_json_uint(&j, b->n_messages);
        lq_json_key(&j, "offered_rate");
        lq_json_int(&j, b->rate);
        lq_json_key(&j, "events");
        lq_json_uint(&j, b->n_hold_events);
        lq_json_key(&j, "complete");
        lq_json_bool(&j, complete);
        json_number(&j, "seconds", "%.3f", seconds);
        json_number(&j, "holds_per_s", "%.1f", pairs);
        for (int k = 0; k < KIND_N; k++) {
            const series *s = &b->kinds[k];
            lq_json_key(&j, kind_names[k]);
            lq_json_object_begin(&j);
            lq_json_key(&j, "count");
            lq_json_uint(&j, s->n);
            json_number(&j, "p50_ms", "%.3f", percentile_of(s->us, s->n, 0.5));
            json_number(&j, "p99_ms", "%.3f", percentile_of(s->us, s->n, 0.99));
            json_number(&j, "max_ms", "%.3f", percentile_of(s->us, s->n, 1.0));
            lq_json_object_end(&j);
        }
        json_number(&j, "cpu_s", "%.3f", cpu_seconds());
        lq_json_object_end(&j);
        (void)lq_cli_print_json(&j);
        return;
    }
    printf("mode:        holds: %ld holds over %ld accounts, %zu messages\n", b->count, b->accounts,
           b->n_messages);
    printf("events:      %zu of %zu%s\n", b->n_hold_events, b->n_expected,
           complete ? "" : " (timed out)");
    printf("throughput:  %.0f holds resolved/s over %.3f s\n", pairs, seconds);
    for (int k = 0; k < KIND_N; k++) {
        const series *s = &b->kinds[k];
        printf("%-8s     %zu, p50 %.2f ms, p99 %.2f ms, max %.2f ms%s\n", kind_names[k], s->n,
               percentile_of(s->us, s->n, 0.5), percentile_of(s->us, s->n, 0.99),
               percentile_of(s->us, s->n, 1.0), k == KIND_EXPIRY ? " after the expiry time" : "");
    }
}

static void report(const bench *b, bool json, bool complete)
{
    int64_t from = b->preload ? b->first_event_us : b->start_us;
    double seconds = (double)(b->last_event_us - from) / 1e6;
    double throughput = seconds > 0 ? (double)b->n_latency / seconds : 0;
    double cpu = cpu_seconds();

    if (json) {
        lq_json j;
        lq_json_init(&j);
        lq_json_object_begin(&j);
        lq_json_key(&j, "mode");
        lq_json_string(&j, b->preload ? "drain" : b->rate > 0 ? "rate" : "full-speed");
        lq_json_key(&j, "skew");
        lq_json_string(&j, b->hot ? "hot" : "uniform");
        lq_json_key(&j, "accounts");
        lq_json_int(&j, b->accounts);
        lq_json_key(&j, "payments");
        lq_json_int(&j, b->count);
        lq_json_key(&j, "messages");
        lq_json_uint(&j, b->n_messages);
        lq_json_key(&j, "duplicates");
        lq_json_uint(&j, b->n_duplicates);
        lq_json_key(&j, "offered_rate");
        lq_json_int(&j, b->rate);
        lq_json_key(&j, "events");
        lq_json_uint(&j, b->n_latency);
        lq_json_key(&j, "complete");
        lq_json_bool(&j, complete);
        json_number(&j, "seconds", "%.3f", seconds);
        json_number(&j, "throughput_per_s", "%.1f", throughput);
        lq_json_key(&j, "latency_ms");
        lq_json_object_begin(&j);
        json_number(&j, "p50", "%.3f", percentile_ms(b, 0.5));
        json_number(&j, "p99", "%.3f", percentile_ms(b, 0.99));
        json_number(&j, "p99_9", "%.3f", percentile_ms(b, 0.999));
        json_number(&j, "max", "%.3f", percentile_ms(b, 1.0));
        lq_json_object_end(&j);
        json_number(&j, "cpu_s", "%.3f", cpu);
        if (!b->preload && b->n_split > 0) {
            lq_json_key(&j, "latency_split_ms");
            lq_json_object_begin(&j);
            json_percentiles(&j, "to_processed_at", b->before_us, b->n_split);
            json_percentiles(&j, "from_processed_at", b->after_us, b->n_split);
            lq_json_object_end(&j);
        }
        lq_json_object_end(&j);
        (void)lq_cli_print_json(&j);
        return;
    }
    printf("mode:        %s, %s accounts (%ld), %zu messages (%zu duplicates)\n",
           b->preload    ? "drain of preloaded payments"
           : b->rate > 0 ? "fixed rate"
                         : "full speed",
           b->hot ? "hot account" : "uniform", b->accounts, b->n_messages, b->n_duplicates);
    if (b->rate > 0)
        printf("offered:     %ld payments/s\n", b->rate);
    printf("events:      %zu of %zu%s\n", b->n_latency, b->n_messages,
           complete ? "" : " (timed out)");
    printf("throughput:  %.0f payments/s over %.3f s\n", throughput, seconds);
    printf("latency:     p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
           percentile_ms(b, 0.5), percentile_ms(b, 0.99), percentile_ms(b, 0.999),
           percentile_ms(b, 1.0));
    if (!b->preload && b->n_split > 0)
        printf("split:       publish to processed_at p50 %.2f ms, p99 %.2f ms; processed_at to "
               "event p50 %.2f ms, p99 %.2f ms\n",
               percentile_of(b->before_us, b->n_split, 0.5),
               percentile_of(b->before_us, b->n_split, 0.99),
               percentile_of(b->after_us, b->n_split, 0.5),
               percentile_of(b->after_us, b->n_split, 0.99));
    printf("cpu:         %.2f s of this load generator (user + system)\n", cpu);
}

/* Open bench:0 .. bench:N-1 unless bench:0 exists. */
static int setup_accounts(const lq_config *cfg, long n)
{
    lq_db *db = NULL;
    lq_account *accounts = NULL, probe;
    char err[512], created[LQ_TIMESTAMP_MAX];
    int r = lq_db_connect(cfg->database_url, &db, err, sizeof(err));

    if (r != LQ_OK) {
        lq_cli_fail("%s", err);
        return r;
    }
    r = lq_db_account_get(db, "bench:0", &probe, created);
    if (r == LQ_OK)
        goto out;
    accounts = calloc((size_t)n, sizeof(*accounts));
    if (accounts == NULL) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    for (long i = 0; i < n; i++) {
        snprintf(accounts[i].id, sizeof(accounts[i].id), "bench:%ld", i);
        memcpy(accounts[i].currency, "EUR", 4);
        accounts[i].allow_negative = true;
    }
    r = lq_db_account_import(db, accounts, (size_t)n, NULL);
    if (r != LQ_OK)
        lq_cli_fail("%s", lq_db_error(db));
out:
    free(accounts);
    lq_db_close(db);
    return r;
}

int lq_cmd_bench(int argc, char **argv)
{
    lq_cli_args args;
    bench b;
    const char *skew, *dup;
    char err[512];
    long duration = 0;
    bool complete = false, allocated;
    int r, rc = lq_cli_parse("bench", "[--count N | --rate R --duration S] [options]",
                             bench_options, argc, argv, &args);

    memset(&b, 0, sizeof(b));
    if (rc != LQ_CLI_CONTINUE)
        goto out;
    rc = LQ_EXIT_USAGE;
    if (!lq_cli_want_args("bench", &args, 0, 0) ||
        !long_option(&args, "accounts", 1000, 2, 10000000, &b.accounts) ||
        !long_option(&args, "count", 10000, 0, 100000000, &b.count) ||
        !long_option(&args, "rate", 0, 1, 10000000, &b.rate) ||
        !long_option(&args, "duration", 0, 1, 86400, &duration) ||
        !long_option(&args, "timeout", 300, 1, 86400, &b.timeout_s))
        goto out;
    if (duration > 0) {
        if (b.rate == 0) {
            lq_cli_fail("--duration needs --rate");
            goto out;
        }
        b.count = b.rate * duration;
    }
    skew = lq_cli_value(&args, bench_options, "skew");
    if (skew && strcmp(skew, "hot") != 0 && strcmp(skew, "uniform") != 0) {
        lq_cli_fail("invalid value for --skew: \"%.20s\" (expected uniform or hot)", skew);
        goto out;
    }
    b.hot = skew && strcmp(skew, "hot") == 0;
    dup = lq_cli_value(&args, bench_options, "duplicates");
    if (dup) {
        char *end;
        b.duplicates = strtod(dup, &end);
        if (*end || end == dup || !(b.duplicates >= 0 && b.duplicates <= 1)) {
            lq_cli_fail("invalid value for --duplicates: \"%.20s\" (expected 0 to 1)", dup);
            goto out;
        }
    }
    b.preload = lq_cli_value(&args, bench_options, "preload") != NULL;
    b.holds = lq_cli_value(&args, bench_options, "holds") != NULL;
    /* A capture is sent once its hold's event arrives: nothing to preload, nothing to repeat. */
    if (b.holds && (b.preload || b.duplicates > 0)) {
        lq_cli_fail("--holds goes with neither --preload nor --duplicates");
        goto out;
    }
    snprintf(b.prefix, sizeof(b.prefix), "bench-%lx-%x-", (long)time(NULL), (unsigned)getpid());

    rc = LQ_EXIT_FAILURE;
    b.sent_us = calloc((size_t)b.count + 1, sizeof(*b.sent_us));
    b.second_us = calloc((size_t)b.count + 1, sizeof(*b.second_us));
    b.n_events = calloc((size_t)b.count + 1, sizeof(*b.n_events));
    b.latency_us = calloc((size_t)b.count * 2 + 1, sizeof(*b.latency_us));
    b.sent_unix_us = calloc((size_t)b.count + 1, sizeof(*b.sent_unix_us));
    b.before_us = calloc((size_t)b.count + 1, sizeof(*b.before_us));
    b.after_us = calloc((size_t)b.count + 1, sizeof(*b.after_us));
    b.expires_unix_us = calloc((size_t)b.count + 1, sizeof(*b.expires_unix_us));
    allocated = b.sent_us && b.second_us && b.n_events && b.latency_us && b.sent_unix_us &&
                b.before_us && b.after_us && b.expires_unix_us;
    for (int k = 0; k < KIND_N && b.holds; k++) {
        /* Room for every event, a repeated one included. */
        b.kinds[k].us = calloc((size_t)b.count * 2 + 1, sizeof(*b.kinds[k].us));
        allocated = allocated && b.kinds[k].us;
    }
    b.n_expected = 2 * (size_t)b.count;
    b.exchange = args.cfg.exchange;
    if (!allocated) {
        lq_cli_fail("out of memory for %ld payments", b.count);
        goto out;
    }
    if (lq_cli_value(&args, bench_options, "setup") &&
        setup_accounts(&args.cfg, b.accounts) != LQ_OK)
        goto out;
    if (b.count == 0) {
        rc = LQ_EXIT_OK;
        goto out;
    }
    if (lq_amqp_connect_config(&args.cfg, 0, &b.pub, err, sizeof(err)) != LQ_OK ||
        lq_amqp_connect_config(&args.cfg, 0, &b.sub, err, sizeof(err)) != LQ_OK) {
        lq_cli_fail("%s", err);
        goto out;
    }
    if ((args.cfg.declare && lq_amqp_declare_topology(b.pub, &args.cfg) != LQ_OK) ||
        lq_amqp_declare_listener(b.sub, args.cfg.results_exchange, b.holds ? "#" : "payment.#",
                                 b.queue) != LQ_OK ||
        lq_amqp_consume(b.sub, b.queue, 10000) != LQ_OK) {
        lq_cli_fail("%s", lq_amqp_error(b.pub)[0] ? lq_amqp_error(b.pub) : lq_amqp_error(b.sub));
        goto out;
    }
    r = publish_all(&b, args.cfg.exchange);
    if (r != LQ_OK) {
        lq_cli_fail("publishing failed: %s", lq_amqp_error(b.pub));
        goto out;
    }
    if (b.preload) {
        /* A driver script starts the workers when it reads this line. */
        fprintf(stderr, "published %zu messages; waiting for the result events\n", b.n_messages);
        fflush(stderr);
    }
    {
        int64_t deadline = lq_clock_us() + b.timeout_s * 1000000;
        while ((b.holds ? b.n_hold_events < b.n_expected : b.n_latency < b.n_messages) &&
               lq_clock_us() < deadline) {
            r = collect(&b, 200);
            if (r != LQ_OK) {
                lq_cli_fail("receiving events failed: %s", lq_amqp_error(b.sub));
                goto out;
            }
        }
    }
    complete = b.holds ? b.n_hold_events >= b.n_expected : b.n_latency == b.n_messages;
    qsort(b.latency_us, b.n_latency, sizeof(*b.latency_us), compare_int64);
    qsort(b.before_us, b.n_split, sizeof(*b.before_us), compare_int64);
    qsort(b.after_us, b.n_split, sizeof(*b.after_us), compare_int64);
    for (int k = 0; k < KIND_N && b.holds; k++)
        qsort(b.kinds[k].us, b.kinds[k].n, sizeof(*b.kinds[k].us), compare_int64);
    if (b.holds)
        report_holds(&b, lq_cli_value(&args, bench_options, "json") != NULL, complete);
    else
        report(&b, lq_cli_value(&args, bench_options, "json") != NULL, complete);
    if (!complete)
        lq_cli_fail("timed out: %zu of %zu result events arrived",
                    b.holds ? b.n_hold_events : b.n_latency, b.holds ? b.n_expected : b.n_messages);
    rc = complete ? LQ_EXIT_OK : LQ_EXIT_FAILURE;
out:
    lq_amqp_close(b.pub);
    lq_amqp_close(b.sub);
    free(b.sent_us);
    free(b.second_us);
    free(b.n_events);
    free(b.latency_us);
    free(b.sent_unix_us);
    free(b.before_us);
    free(b.after_us);
    free(b.expires_unix_us);
    for (int k = 0; k < KIND_N; k++)
        free(b.kinds[k].us);
    lq_cli_args_release(&args);
    return rc;
}
