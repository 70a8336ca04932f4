/*
 * The worker loop (docs/protocol.md sections 5-7).
 *
 * Deliveries are gathered into a batch (at most batch_max, waiting at most
 * batch_wait_ms after the first), validated, applied to the ledger in one
 * database transaction, answered with one result event each (or
 * dead-lettered), and acked with one multiple-ack once the transaction has
 * committed and the broker has confirmed every event.  Those confirms are
 * awaited while the next batch goes to the database (settle()).  Anything
 * that goes wrong before the ack leaves the batch unacked: the broker
 * redelivers it and the stored outcomes make the redelivery harmless.
 *
 * A message the broker has taken back twice or more (x-delivery-count 2:
 * it was in hand when two consumers died or stopped) may be the one that
 * kills them.  It is set aside and applied alone, in a transaction of its
 * own, taking turns with the batches of new messages (process_held()).  A
 * message that keeps crashing workers then reaches the queue's delivery
 * limit (and the dead-letter queue, with x-death) by itself, without
 * dragging the messages around it there too.  Messages taken back once,
 * which every crash, stop or broker restart makes by the hundred, go in
 * batches as usual.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledgerq/amqp.h"
#include "ledgerq/clock.h"
#include "ledgerq/db.h"
#include "ledgerq/error.h"
#include "ledgerq/http.h"
#include "ledgerq/json.h"
#include "ledgerq/ledger.h"
#include "ledgerq/log.h"
#include "ledgerq/message.h"
#include "ledgerq/metrics.h"
#include "ledgerq/release.h"
#include "ledgerq/worker.h"

#define HEARTBEAT_S        30
#define CONFIRM_TIMEOUT_MS 30000
/* Confirms are awaited in slices, to look at the blocked flag and the shutdown timeout. */
#define CONFIRM_SLICE_MS 200
#define BACKOFF_MIN_MS   100
#define BACKOFF_MAX_MS   10000
#define IDLE_POLL_MS     200
/* How often the broker connection is serviced while a database statement runs. */
#define DB_IDLE_MS 200
/* The longest sleep between two looks at the signal flag. */
#define PAUSE_SLICE_MS 100
/* The drain ends this long before the shutdown timeout, to close in time. */
#define SHUTDOWN_MARGIN_MS 1000
/*
 * Batches answered and waiting for the broker's confirms before their ack:
 * the next batch goes to the database meanwhile.
 */
#define PIPELINE_MAX 4
/*
 * The expiry sweep (docs/protocol.md section 14): about once a second, at
 * most SWEEP_MAX holds at a time (at once again while it finds that many);
 * an expiry event not seen confirmed is published again after
 * REPUBLISH_S seconds, longer than a live worker waits for a confirm.
 */
#define SWEEP_INTERVAL_MS 1000
#define SWEEP_MAX         500
#define REPUBLISH_S       (2 * CONFIRM_TIMEOUT_MS / 1000)
/* From this x-delivery-count on, a message is applied alone. */
#define SUSPECT_DELIVERIES 2
/* Deadlocks and concurrent first inserts resolve on a retry; past this, something else is wrong. */
#define DB_RETRY_MAX 50
/*
 * Bound each statement and lock wait: a batch that cannot finish is
 * retried, and a server that stops answering is noticed.  The broker's
 * heartbeats are answered meanwhile (on_db_idle()).
 */
#define DB_STATEMENT_TIMEOUT_MS 10000
#define DB_LOCK_TIMEOUT_MS      5000

/* Set by the signal handler; read by the loop. */
static volatile sig_atomic_t stop_requested;

/* One delivery in hand. */
typedef struct entry {
    lq_delivery *delivery;
    lq_command *command; /* NULL when the message is invalid */
    int invalid;         /* an LQ_ERR_* of the invalid or failed class, or LQ_OK */
    char detail[LQ_DETAIL_MAX];
    int attempts;
    lq_item *item;       /* this entry's item in the batch, when valid */
    int64_t received_us; /* when the delivery was taken from the connection */
} entry;

/* The deliveries of one batch: gathered, applied, then answered. */
typedef struct batch {
    entry *entries;
    lq_item *items;
    size_t n;
    size_t n_redelivered; /* messages of the batch delivered before */
    /* Its stored batches and first outcomes published again (note_published()). */
    lq_confirmations conf;
} batch;

/* A batch whose events and dead-letters are published: acked once all are confirmed. */
typedef struct answered {
    uint64_t last_seq; /* confirm sequence number of its last publish */
    uint64_t *tags;    /* its delivery tags (room for batch_max) */
    int64_t *received_us;
    size_t n;
    uint64_t min_tag, max_tag;
    int64_t waiting_since_ms; /* for the confirm timeout; reset while the broker blocks */
    size_t applied, rejected, duplicates, dead;
    lq_confirmations conf; /* what its confirms prove published: its stored batches, ... */
} answered;

typedef struct worker {
    const lq_config *cfg;
    lq_amqp *amqp;
    lq_db *db;
    batch batches[2];
    batch *b; /* the batch being gathered and applied: one of batches */
    /*
     * The other one, committed and not answered yet, or NULL.  Its events
     * go out while the database works on the next batch's look-up
     * (on_db_sent()), or as soon as nothing else would overlap them; always
     * before the next batch is answered or its stored outcomes are judged.
     */
    batch *unanswered;
    int unanswered_error; /* LQ_OK, or why answering it failed, for the next batch to see */
    lq_delivery **held;   /* messages taken back often, set aside to apply alone */
    size_t n_held, cap_held;
    bool held_turn;              /* a batch was just done: a held message goes next */
    answered ring[PIPELINE_MAX]; /* oldest first, from ring_first */
    size_t ring_first, ring_n;
    uint64_t nacks_seen, returned_seen; /* of the connection, when it was opened */
    bool draining;                      /* after SIGTERM: take what is in hand, wait for nothing */
    lq_book book;
    /* Confirmed by the broker, recorded in the database with the next batch. */
    lq_confirmations confirmed;
    /* Taken from confirmed for the batch under way; back there if it fails. */
    lq_confirmations recording;
    char schema_why[512];   /* why the schema does not fit this release, as last logged */
    char decide_error[512]; /* a command of the last batch that could not be decided */
    int64_t deadline_ms;    /* when stopping: the moment to give up; 0 before */
    lq_metrics *metrics;
    bool amqp_connected_before, db_connected_before; /* to count reconnects */
    int64_t depth_checked_ms;
    int64_t swept_ms; /* when the last expiry sweep ran */
    lq_expiries expiries;
    int backoff_ms;
} worker;

static void on_signal(int sig)
{
    (void)sig;
    if (stop_requested) {
        /* A second signal: leave now.  Unacked work is redelivered. */
        _exit(1);
    }
    stop_requested = 1;
}

static void install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Whether the shutdown timeout, counted from the first signal, has run out. */
static bool past_deadline(worker *w)
{
    if (stop_requested && w->deadline_ms == 0)
        w->deadline_ms = lq_clock_ms() + w->cfg->shutdown_timeout_ms - SHUTDOWN_MARGIN_MS;
    return w->deadline_ms != 0 && lq_clock_ms() >= w->deadline_ms;
}

/* Capped exponential backoff with jitter: the next wait, in ms. */
static int next_backoff(worker *w)
{
    int base = w->backoff_ms ? w->backoff_ms : BACKOFF_MIN_MS;
    int wait = base / 2 + rand() % (base / 2 + 1);

    w->backoff_ms = base * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : base * 2;
    return wait;
}

static void drop_amqp(worker *w, const char *why);
static int settle(worker *w, bool wait);
static int finish_unanswered(worker *w);
static void on_db_sent(void *arg);

/* Deliveries of answered batches, not yet acked. */
static size_t unacked_answered(const worker *w)
{
    size_t n = 0;

    for (size_t k = 0; k < w->ring_n; k++)
        n += w->ring[(w->ring_first + k) % PIPELINE_MAX].n;
    return n;
}

/*
 * Wait ms, keeping the broker connection alive (heartbeats) when there is
 * one.  Deliveries that arrive meanwhile stay queued in the amqp module.
 * Returns early once the shutdown timeout has run out, or at a signal when
 * nothing is in hand.
 */
static void pause_ms(worker *w, int ms)
{
    int64_t end = lq_clock_ms() + ms;

    for (;;) {
        int64_t left = end - lq_clock_ms();
        int slice = left < PAUSE_SLICE_MS ? (int)left : PAUSE_SLICE_MS;
        /* Waiting on purpose is the loop going round: /healthz stays green. */
        lq_metrics_tick(w->metrics);
        if (left <= 0 || past_deadline(w) ||
            (stop_requested && w->b->n == 0 && !w->unanswered && w->n_held == 0))
            return;
        if (w->amqp == NULL)
            usleep((useconds_t)slice * 1000);
        else if (lq_amqp_service(w->amqp, slice) != LQ_OK)
            drop_amqp(w, lq_amqp_error(w->amqp));
    }
}

static void release_batch(batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        lq_delivery_free(b->entries[i].delivery);
        lq_command_free(b->entries[i].command);
    }
    b->n = 0;
    b->n_redelivered = 0;
    lq_confirmations_clear(&b->conf);
}

static void release_held(worker *w)
{
    for (size_t i = 0; i < w->n_held; i++)
        lq_delivery_free(w->held[i]);
    w->n_held = 0;
}

/* What a dead connection delivered is the broker's again: it redelivers it. */
static void drop_amqp(worker *w, const char *why)
{
    lq_metrics_set_connected(w->metrics, LQ_METRICS_AMQP, false);
    lq_metrics_set_consuming(w->metrics, false);
    release_held(w);
    /* A batch committed but not answered, and answered ones not acked: redelivered too. */
    if (w->unanswered) {
        release_batch(w->unanswered);
        w->unanswered = NULL;
    }
    w->ring_n = 0;
    if (w->amqp == NULL)
        return;
    lq_warn("broker connection lost: %s", why);
    w->amqp = lq_amqp_close(w->amqp);
}

static void drop_db(worker *w, const char *why)
{
    lq_metrics_set_connected(w->metrics, LQ_METRICS_DB, false);
    if (w->db == NULL)
        return;
    lq_warn("database connection lost: %s", why);
    w->db = lq_db_close(w->db);
}

/* Connect to the broker, declare, consume.  Returns LQ_OK or a failure to back off from. */
static int connect_amqp(worker *w)
{
    char err[512];
    int r = lq_amqp_connect_config(w->cfg, HEARTBEAT_S, &w->amqp, err, sizeof(err));

    if (r != LQ_OK) {
        lq_warn("%s", err);
        return r;
    }
    if (w->cfg->declare) {
        r = lq_amqp_declare_topology(w->amqp, w->cfg);
        if (r != LQ_OK)
            goto fail;
    }
    /*
     * Consumed once per connection: cancelling a quorum queue consumer
     * returns what the broker had already sent it, one delivery more on the
     * count of each.
     */
    r = lq_amqp_consume(w->amqp, w->cfg->queue, w->cfg->prefetch);
    if (r != LQ_OK)
        goto fail;
    lq_info("consuming from queue \"%s\" (prefetch %d)", w->cfg->queue, w->cfg->prefetch);
    w->nacks_seen = lq_amqp_nacked(w->amqp);
    w->returned_seen = lq_amqp_returned(w->amqp);
    if (w->amqp_connected_before)
        lq_metrics_count_reconnect(w->metrics, LQ_METRICS_AMQP);
    w->amqp_connected_before = true;
    lq_metrics_set_connected(w->metrics, LQ_METRICS_AMQP, true);
    lq_metrics_set_consuming(w->metrics, true);
    return LQ_OK;
fail:
    lq_warn("%s", lq_amqp_error(w->amqp));
    w->amqp = lq_amqp_close(w->amqp);
    return r;
}

/* While the database works, the broker connection goes on: heartbeats, confirms, deliveries. */
static void on_db_idle(void *arg)
{
    worker *w = arg;

    lq_metrics_tick(w->metrics);
    /* A connection that died shows at the next broker call. */
    if (w->amqp)
        (void)lq_amqp_service(w->amqp, 0);
}

/*
 * Whether this release may run against the database's schema
 * (docs/upgrades.md): LQ_ERR_SCHEMA when it may not, after one line that
 * names both versions (logged again only when it changes).
 */
static int check_schema(worker *w)
{
    lq_schema_state state;
    char why[sizeof(w->schema_why)];
    int r = lq_db_schema_state(w->db, &state);

    if (r != LQ_OK) {
        lq_warn("%s", lq_db_error(w->db));
        return r;
    }
    if (lq_release_fits(LQ_RELEASE, lq_release_schema_needed(), state.version, state.oldest_release,
                        why, sizeof(why))) {
        if (w->schema_why[0])
            lq_info("the database schema (version %d) fits ledgerq %s now: going on", state.version,
                    LQ_RELEASE);
        w->schema_why[0] = '\0';
        return LQ_OK;
    }
    if (strcmp(why, w->schema_why) != 0)
        lq_error("%s; consuming nothing until it fits", why);
    snprintf(w->schema_why, sizeof(w->schema_why), "%s", why);
    return LQ_ERR_SCHEMA;
}

static int connect_db(worker *w)
{
    char err[512];
    int r = lq_db_connect(w->cfg->database_url, &w->db, err, sizeof(err));

    if (r != LQ_OK) {
        lq_warn("%s", err);
        return r;
    }
    lq_db_set_idle(w->db, on_db_idle, w, DB_IDLE_MS);
    lq_db_set_sent(w->db, on_db_sent, w);
    r = lq_db_set_timeouts(w->db, DB_STATEMENT_TIMEOUT_MS, DB_LOCK_TIMEOUT_MS);
    if (r != LQ_OK) {
        lq_warn("%s", lq_db_error(w->db));
        w->db = lq_db_close(w->db);
        return r;
    }
    r = check_schema(w);
    if (r != LQ_OK) {
        w->db = lq_db_close(w->db);
        return r;
    }
    lq_info("connected to the database");
    if (w->db_connected_before)
        lq_metrics_count_reconnect(w->metrics, LQ_METRICS_DB);
    w->db_connected_before = true;
    lq_metrics_set_connected(w->metrics, LQ_METRICS_DB, true);
    return LQ_OK;
}

/*
 * Both connections up, or stop requested.  The database first: a worker
 * takes no message before it knows that its release fits the schema, and
 * one that does not fit gives back what it holds and stays unready.
 */
static bool ensure_connected(worker *w)
{
    while (!stop_requested) {
        if (w->db == NULL) {
            int r = connect_db(w);
            if (r == LQ_ERR_SCHEMA && w->amqp)
                drop_amqp(w, lq_strerror(r));
            if (r != LQ_OK) {
                pause_ms(w, next_backoff(w));
                continue;
            }
        }
        if (w->amqp == NULL && connect_amqp(w) != LQ_OK) {
            pause_ms(w, next_backoff(w));
            continue;
        }
        w->backoff_ms = 0;
        return true;
    }
    return false;
}

/* Validate one delivery into its entry. */
static void validate(entry *e)
{
    const lq_delivery *d = e->delivery;
    int r = lq_message_check_envelope(d->content_type, d->content_type_len, d->body_len, e->detail,
                                      sizeof(e->detail));

    if (r == LQ_OK)
        r = lq_command_parse(d->body, d->body_len, &e->command, e->detail, sizeof(e->detail));
    e->invalid = r;
    e->attempts = 1;
}

/* Add d to the batch as its next entry (there is room). */
static void add_entry(worker *w, lq_delivery *d, int64_t received_us)
{
    entry *e = &w->b->entries[w->b->n++];

    memset(e, 0, sizeof(*e));
    e->delivery = d;
    e->received_us = received_us;
    validate(e);
}

/* Set a message that came back too often aside, to apply it alone later.  Takes d. */
static int hold(worker *w, lq_delivery *d)
{
    char id[LQ_ID_MAX + 1];
    lq_log_ctx ctx = {lq_message_peek_id(d->body, d->body_len, id) ? id : NULL, d->tag};

    if (w->n_held == w->cap_held) {
        size_t cap = w->cap_held ? 2 * w->cap_held : 16;
        lq_delivery **held = realloc(w->held, cap * sizeof(*held));
        if (held == NULL) {
            lq_delivery_free(d);
            return LQ_ERR_NOMEM;
        }
        w->held = held;
        w->cap_held = cap;
    }
    w->held[w->n_held++] = d;
    /* In hand of two consumers that went away: maybe their cause, the operator wants to know. */
    lq_log(LQ_LOG_WARN, &ctx, "redelivered (x-delivery-count %" PRId64 "): applying it alone",
           d->delivery_count);
    return LQ_OK;
}

/*
 * Gather a batch: wait for a first message (a short poll, so that signals
 * are noticed), then fill up to batch_max for at most batch_wait_ms.
 * Messages that came back SUSPECT_DELIVERIES times or more are held instead.
 */
static int gather(worker *w)
{
    int64_t fill_until = 0;
    int r;

    while (w->b->n < (size_t)w->cfg->batch_max) {
        lq_delivery *d = NULL;
        int wait;
        if (w->b->n == 0) {
            if (stop_requested && !w->draining)
                return LQ_OK;
            /*
             * Held messages wait for nothing but what is at hand already;
             * nor does a batch not yet answered (take_step() answers it).
             */
            wait = w->n_held > 0 || w->unanswered ? 0 : w->draining ? 50 : IDLE_POLL_MS;
        } else {
            wait = (int)(fill_until - lq_clock_ms());
            if (wait < 0)
                wait = 0;
        }
        /* Waiting would delay the events of the batch before: they go now. */
        if (wait > 0 && w->unanswered) {
            r = finish_unanswered(w);
            if (r != LQ_OK)
                return r;
        }
        /* Confirms of answered batches end the wait too, to ack them. */
        r = w->ring_n ? lq_amqp_next_or_confirm(w->amqp, wait, &d)
                      : lq_amqp_next(w->amqp, wait, &d);
        /* Idle or filled: either way back to the loop, which keeps house between polls. */
        if (r == LQ_ERR_TIMEOUT)
            return LQ_OK;
        if (r != LQ_OK)
            return r;
        if (d == NULL) {
            r = settle(w, false);
            if (r != LQ_OK)
                return r;
            continue;
        }
        if (d->delivery_count >= SUSPECT_DELIVERIES) {
            r = hold(w, d);
            if (r != LQ_OK)
                return r;
            continue;
        }
        w->b->n_redelivered += d->redelivered || d->delivery_count > 0;
        add_entry(w, d, lq_clock_us());
        if (w->b->n == 1)
            fill_until = lq_clock_ms() + w->cfg->batch_wait_ms;
    }
    return LQ_OK;
}

/*
 * What the events of items[0..n), just committed under batch_id, will
 * prove once confirmed: that the batch's first outcomes were published, and
 * those first outcomes that were published again.  Kept for the answered
 * batch (answer_batch()).  Best effort: a confirmation lost for want of
 * memory only makes a later duplicate publish the first outcome once more.
 */
static void note_published(worker *w, const lq_item *items, size_t n, int64_t batch_id)
{
    bool stored_new = false;

    for (size_t i = 0; i < n; i++) {
        const lq_item *it = &items[i];
        stored_new = stored_new || it->insert;
        if (it->stored && it->stored_same && !it->stored_published && !it->outcome.duplicate)
            (void)lq_confirmations_add_payment(&w->b->conf, it->command->id);
    }
    if (stored_new)
        (void)lq_confirmations_add_batch(&w->b->conf, batch_id);
}

/*
 * Whether this worker published the first outcome of it itself, in a batch
 * still waiting for its confirms (or in the batch being applied).  The outcome is then as good as
 * published: if the confirms never come, the command is redelivered too
 * (acks go in order), and its redelivery publishes it again.
 */
static bool in_confirmations(const lq_confirmations *c, const lq_item *it)
{
    for (size_t b = 0; b < c->n_batches; b++) {
        if (it->stored_batch != 0 && c->batches[b] == it->stored_batch)
            return true;
    }
    for (size_t p = 0; p < c->n_payments; p++) {
        if (strcmp(c->payments[p], it->command->id) == 0)
            return true;
    }
    return false;
}

static bool in_flight(const worker *w, const lq_item *it)
{
    /* This batch's own earlier commits too (a batch applied payment by payment). */
    if (in_confirmations(&w->b->conf, it))
        return true;
    if (w->unanswered && in_confirmations(&w->unanswered->conf, it))
        return true;
    for (size_t k = 0; k < w->ring_n; k++) {
        if (in_confirmations(&w->ring[(w->ring_first + k) % PIPELINE_MAX].conf, it))
            return true;
    }
    return false;
}

/*
 * What failed last in applying a batch: the database's error, or the
 * command that could not be decided (undecided()).
 */
static const char *failure(const worker *w)
{
    return w->decide_error[0] ? w->decide_error : lq_db_error(w->db);
}

/*
 * A command that could not be decided (out of memory, or a command no
 * parser would make) fails its batch, which is rolled back: applied alone,
 * it is retried and dead-lettered as processing_failed like any payment
 * that fails for an unexpected reason.
 */
static int undecided(worker *w, const lq_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const lq_outcome *o = &items[i].outcome;
        if (lq_error_classify(o->result) != LQ_CLASS_GENERAL)
            continue;
        snprintf(w->decide_error, sizeof(w->decide_error), "%s could not be decided: %s%s%s",
                 items[i].command->id, lq_strerror(o->result), o->detail[0] ? ": " : "", o->detail);
        lq_db_batch_abort(w->db);
        return LQ_ERR_DB_FAILED;
    }
    return LQ_OK;
}

/* Keep the database up; retry what can be retried.  Applies items[0..n). */
static int try_items(worker *w, lq_item *items, size_t n)
{
    char now[LQ_TIMESTAMP_MAX];
    int64_t batch_id = 0;
    int retries = 0, r;

    w->decide_error[0] = '\0';
    for (;;) {
        if (w->db == NULL) {
            /* The batch before is committed: its events need no database. */
            r = finish_unanswered(w);
            if (r != LQ_OK)
                return r;
            if (past_deadline(w))
                return LQ_ERR_TIMEOUT;
            r = connect_db(w);
            if (r == LQ_ERR_SCHEMA)
                return r;
            if (r != LQ_OK) {
                pause_ms(w, next_backoff(w));
                if (w->amqp == NULL)
                    return LQ_ERR_AMQP_UNAVAILABLE;
                continue;
            }
            w->backoff_ms = 0;
        }
        int64_t started = lq_clock_us();
        r = lq_db_batch_load(w->db, items, n, &w->recording, &w->book, now, &batch_id);
        if (r == LQ_OK && w->unanswered && w->unanswered_error == LQ_OK) {
            /*
             * Answering the batch before would have waited for the broker
             * (on_db_sent()): not while this one holds the accounts' locks.
             */
            lq_db_batch_abort(w->db);
            r = finish_unanswered(w);
            if (r != LQ_OK)
                return r;
            continue;
        }
        if (r == LQ_OK) {
            /* The batch before is answered by now (on_db_sent()): in_flight() sees it. */
            int a = finish_unanswered(w);
            if (a != LQ_OK) {
                lq_db_batch_abort(w->db);
                return a;
            }
            for (size_t i = 0; i < n; i++) {
                if (items[i].stored && !items[i].stored_published)
                    items[i].stored_published = in_flight(w, &items[i]);
            }
            lq_ledger_decide(items, n, &w->book, now);
            r = undecided(w, items, n);
            if (r == LQ_OK)
                r = lq_db_batch_store(w->db, items, n, &w->book, batch_id);
        }
        if (r == LQ_OK) {
            lq_metrics_observe_batch(w->metrics, n);
            lq_metrics_observe_commit_us(w->metrics, lq_clock_us() - started);
            note_published(w, items, n, batch_id);
            return LQ_OK;
        }
        switch (lq_error_classify(r)) {
        case LQ_CLASS_TRANSIENT:
            if (r == LQ_ERR_DB_RETRY && ++retries <= DB_RETRY_MAX) {
                lq_debug("retrying a batch: %s", lq_db_error(w->db));
                pause_ms(w, rand() % (5 * retries) + 1);
                continue;
            }
            if (r == LQ_ERR_DB_RETRY)
                return LQ_ERR_DB_FAILED;
            drop_db(w, lq_db_error(w->db));
            continue;
        default:
            lq_warn("batch of %zu failed: %s", n, failure(w));
            return r;
        }
    }
}

/*
 * The confirmed events recorded so far go with this transaction (taken
 * aside: more may be confirmed while it runs); back for the next one if it
 * fails.
 */
static int apply_items(worker *w, lq_item *items, size_t n)
{
    int r;

    (void)lq_confirmations_move(&w->recording, &w->confirmed);
    r = try_items(w, items, n);
    if (r == LQ_OK)
        lq_confirmations_clear(&w->recording);
    else
        (void)lq_confirmations_move(&w->confirmed, &w->recording);
    return r;
}

/*
 * Apply the valid entries.  When the batch fails for an unexpected reason,
 * apply each payment alone so that one bad payment does not hold up the
 * others; one that keeps failing is marked for the dead-letter queue.
 */
static int apply_batch(worker *w)
{
    batch *b = w->b;
    size_t n_items = 0;
    int r;

    for (size_t i = 0; i < b->n; i++) {
        entry *e = &b->entries[i];
        e->item = NULL;
        if (e->invalid != LQ_OK)
            continue;
        memset(&b->items[n_items], 0, sizeof(b->items[n_items]));
        b->items[n_items].command = e->command;
        e->item = &b->items[n_items++];
    }
    if (n_items == 0)
        return LQ_OK;
    r = apply_items(w, b->items, n_items);
    if (r == LQ_OK || lq_error_classify(r) != LQ_CLASS_FAILED)
        return r;

    for (size_t i = 0; i < b->n; i++) {
        entry *e = &b->entries[i];
        if (e->item == NULL)
            continue;
        for (e->attempts = 1; e->attempts <= w->cfg->max_attempts; e->attempts++) {
            r = apply_items(w, e->item, 1);
            if (r == LQ_OK || lq_error_classify(r) != LQ_CLASS_FAILED)
                break;
            lq_log(LQ_LOG_WARN, &(lq_log_ctx){e->command->id, e->delivery->tag},
                   "payment failed (attempt %d of %d): %s", e->attempts, w->cfg->max_attempts,
                   failure(w));
        }
        if (r == LQ_OK)
            continue;
        if (lq_error_classify(r) != LQ_CLASS_FAILED)
            return r;
        e->attempts = w->cfg->max_attempts;
        e->invalid = LQ_ERR_DB_FAILED;
        snprintf(e->detail, sizeof(e->detail), "%.*s", (int)sizeof(e->detail) - 1, failure(w));
        e->item = NULL;
    }
    return LQ_OK;
}

/* The result event of docs/protocol.md sections 6, 12 and 14; caller frees. */
static char *result_event(const lq_command *c, const lq_outcome *o)
{
    lq_json j;

    lq_json_init(&j);
    lq_json_object_begin(&j);
    lq_json_key(&j, "id");
    lq_json_string(&j, c->id);
    /* The type of the command received, also when its id belongs to another type. */
    lq_json_key(&j, "type");
    lq_json_string(&j, lq_command_type_name(c->type));
    lq_outcome_json(&j, o);
    if (c->type == LQ_CMD_CAPTURE || c->type == LQ_CMD_VOID) {
        lq_json_key(&j, "hold");
        lq_json_string(&j, c->hold);
    }
    if (c->type == LQ_CMD_CAPTURE) {
        lq_json_key(&j, "amount");
        if (o->result == LQ_OK && o->amount > 0)
            lq_json_int(&j, o->amount);
        else
            lq_json_null(&j);
    }
    lq_json_key(&j, "duplicate");
    lq_json_bool(&j, o->duplicate);
    lq_json_key(&j, "processed_at");
    lq_json_string(&j, o->processed_at);
    lq_json_object_end(&j);
    return lq_json_steal(&j);
}

static int publish_result(worker *w, const entry *e)
{
    const lq_outcome *o = &e->item->outcome;
    const char *status = o->result == LQ_OK ? "applied" : "rejected";
    lq_log_ctx ctx = {e->command->id, e->delivery->tag};
    char *body = result_event(e->command, o), routing_key[64];
    lq_publish pub = {
        .exchange = w->cfg->results_exchange,
        .routing_key = routing_key,
        .content_type = "application/json",
        .correlation_id = e->command->id,
    };
    int r;

    if (body == NULL)
        return LQ_ERR_NOMEM;
    /* <family>.<status>: payment.applied, account.rejected, ... */
    snprintf(routing_key, sizeof(routing_key), "%s.%s", lq_command_family(e->command->type),
             status);
    pub.body = body;
    pub.body_len = strlen(body);
    r = lq_amqp_publish(w->amqp, &pub, NULL);
    if (r == LQ_OK && e->delivery->reply_to && e->delivery->reply_to[0]) {
        pub.exchange = "";
        pub.routing_key = e->delivery->reply_to;
        r = lq_amqp_publish(w->amqp, &pub, NULL);
    }
    lq_log(LQ_LOG_DEBUG, &ctx, "%s %s%s%s%s", lq_command_type_name(e->command->type), status,
           o->result == LQ_OK ? "" : ": ", o->result == LQ_OK ? "" : lq_error_code(o->result),
           o->duplicate ? " (duplicate)" : "");
    free(body);
    return r;
}

static int dead_letter(worker *w, const entry *e)
{
    lq_dead_letter dl = {
        .exchange = w->cfg->dlx,
        .error = lq_error_code(e->invalid),
        .detail = e->detail,
        .queue = w->cfg->queue,
        .attempts = e->attempts,
    };
    lq_log_ctx ctx = {e->command ? e->command->id : NULL, e->delivery->tag};

    lq_log(LQ_LOG_WARN, &ctx, "dead-lettering a message: %s: %s", dl.error, e->detail);
    return lq_amqp_dead_letter(w->amqp, e->delivery, &dl, NULL);
}

/*
 * Wait until the broker has confirmed the publishes up to seq: at most
 * CONFIRM_TIMEOUT_MS of a broker that reads what it is sent.  While it
 * blocks the connection (a resource alarm: it reads nothing then), the
 * wait lasts until it unblocks, or until the shutdown timeout runs out.
 */
static int wait_confirmed(worker *w, uint64_t seq)
{
    int64_t waited = 0;
    bool told = false;

    for (;;) {
        int64_t start = lq_clock_ms();
        int r = lq_amqp_wait_confirmed(w->amqp, seq, CONFIRM_SLICE_MS);
        if (r != LQ_ERR_TIMEOUT)
            return r;
        lq_metrics_tick(w->metrics);
        if (!lq_amqp_blocked(w->amqp)) {
            waited += lq_clock_ms() - start;
            if (waited >= CONFIRM_TIMEOUT_MS)
                return r;
        } else if (!told) {
            lq_warn("the broker blocked publishing (resource alarm): waiting for it to unblock");
            told = true;
        }
        if (past_deadline(w))
            return r;
    }
}

/*
 * Ack answered batch a.  One multiple-ack covers it when every unacked
 * delivery with a smaller tag is in it: the tags of a connection grow, but
 * a message set aside (held) is applied later than those after it.  When
 * one is held, in hand or answered later, a's deliveries are acked one by
 * one.
 */
static int ack_answered(worker *w, const answered *a)
{
    uint64_t below = UINT64_MAX; /* the smallest unacked tag outside a */
    int r = LQ_OK;

    for (int k = 0; k < 2; k++) {
        const batch *b = &w->batches[k];
        for (size_t i = 0; i < b->n; i++)
            below = b->entries[i].delivery->tag < below ? b->entries[i].delivery->tag : below;
    }
    for (size_t i = 0; i < w->n_held; i++)
        below = w->held[i]->tag < below ? w->held[i]->tag : below;
    for (size_t k = 1; k < w->ring_n; k++) {
        const answered *later = &w->ring[(w->ring_first + k) % PIPELINE_MAX];
        below = later->min_tag < below ? later->min_tag : below;
    }
    if (a->n == 0)
        return LQ_OK; /* an expiry sweep's events: nothing was delivered */
    if (a->max_tag < below)
        return lq_amqp_ack(w->amqp, a->max_tag, true);
    for (size_t i = 0; i < a->n && r == LQ_OK; i++)
        r = lq_amqp_ack(w->amqp, a->tags[i], false);
    return r;
}

/*
 * Ack the answered batches the broker has confirmed, oldest first.  With
 * wait, wait for the oldest to be confirmed first.  An error means the
 * connection must go (the broker then redelivers what is unacked).
 */
static int settle(worker *w, bool wait)
{
    int r;

    while (w->ring_n > 0) {
        answered *a = &w->ring[w->ring_first];
        int64_t now = lq_clock_ms();
        if (!lq_amqp_confirmed(w->amqp, a->last_seq)) {
            /* Read the confirms that have arrived. */
            r = lq_amqp_service(w->amqp, 0);
            if (r != LQ_OK)
                return r;
        }
        if (!lq_amqp_confirmed(w->amqp, a->last_seq)) {
            if (lq_amqp_blocked(w->amqp))
                a->waiting_since_ms = now;
            if (!wait)
                return now - a->waiting_since_ms < CONFIRM_TIMEOUT_MS ? LQ_OK : LQ_ERR_TIMEOUT;
            r = wait_confirmed(w, a->last_seq);
            if (r != LQ_OK)
                return r;
        }
        if (lq_amqp_nacked(w->amqp) != w->nacks_seen) {
            lq_error("the broker refused to confirm a publish");
            return LQ_ERR_AMQP_NACK;
        }
        if (lq_amqp_returned(w->amqp) != w->returned_seen) {
            lq_error("the dead-letter exchange \"%s\" routed a message to no queue: is \"%s\" "
                     "bound?",
                     w->cfg->dlx, w->cfg->dlq);
            return LQ_ERR_AMQP_NACK;
        }
        r = ack_answered(w, a);
        if (r != LQ_OK)
            return r;
        /* Recorded in the database with the next batch, or when idle. */
        (void)lq_confirmations_move(&w->confirmed, &a->conf);
        lq_metrics_count(w->metrics, LQ_METRICS_APPLIED, a->applied);
        lq_metrics_count(w->metrics, LQ_METRICS_REJECTED, a->rejected);
        lq_metrics_count(w->metrics, LQ_METRICS_DUPLICATE, a->duplicates);
        lq_metrics_count(w->metrics, LQ_METRICS_DEAD_LETTERED, a->dead);
        int64_t acked_us = lq_clock_us();
        for (size_t i = 0; i < a->n; i++)
            lq_metrics_observe_message_us(w->metrics, acked_us - a->received_us[i]);
        lq_debug("batch of %zu done: %zu applied, %zu rejected, %zu duplicates, %zu dead-lettered",
                 a->n, a->applied, a->rejected, a->duplicates, a->dead);
        w->ring_first = (w->ring_first + 1) % PIPELINE_MAX;
        w->ring_n--;
        wait = false;
    }
    return LQ_OK;
}

/* Settle every answered batch, waiting for the confirms (before stopping). */
static int settle_all(worker *w)
{
    int r = LQ_OK;

    while (w->amqp && w->ring_n > 0 && r == LQ_OK)
        r = settle(w, true);
    return r;
}

/*
 * The next slot of the ring, emptied, once the broker does not block
 * publishing and the ring has room (waiting for its oldest batch's
 * confirms when full).
 */
static int next_answered(worker *w, answered **ret)
{
    answered *a;
    int r;

    /* A blocked connection would stall a publish: wait, answering heartbeats. */
    if (lq_amqp_blocked(w->amqp))
        lq_warn("the broker blocked publishing (resource alarm): waiting");
    while (lq_amqp_blocked(w->amqp)) {
        lq_metrics_tick(w->metrics);
        if (past_deadline(w))
            return LQ_ERR_TIMEOUT;
        r = lq_amqp_service(w->amqp, 100);
        if (r != LQ_OK)
            return r;
    }
    if (w->ring_n == PIPELINE_MAX) {
        r = settle(w, true);
        if (r != LQ_OK)
            return r;
    }

    a = &w->ring[(w->ring_first + w->ring_n) % PIPELINE_MAX];
    a->n = a->applied = a->rejected = a->duplicates = a->dead = 0;
    lq_confirmations_clear(&a->conf);
    a->min_tag = UINT64_MAX;
    a->max_tag = 0;
    *ret = a;
    return LQ_OK;
}

/*
 * Publish every event and dead-letter of the batch, and queue it for its
 * ack (settle()): the confirms are not awaited here.
 */
static int answer_batch(worker *w, batch *b)
{
    answered *a;
    int r = next_answered(w, &a);

    if (r != LQ_OK)
        return r;
    for (size_t i = 0; i < b->n; i++) {
        const entry *e = &b->entries[i];
        uint64_t tag = e->delivery->tag;
        if (e->item) {
            const lq_item *it = e->item;
            r = publish_result(w, e);
            /* A first outcome published again is a duplicate here: it changed nothing. */
            if (it->insert || it->outcome.result == LQ_ERR_IDEMPOTENCY_CONFLICT) {
                a->applied += it->outcome.result == LQ_OK;
                a->rejected += it->outcome.result != LQ_OK;
            } else {
                a->duplicates++;
            }
        } else {
            r = dead_letter(w, e);
            a->dead++;
        }
        if (r != LQ_OK)
            return r;
        a->tags[a->n] = tag;
        a->received_us[a->n++] = e->received_us;
        a->min_tag = tag < a->min_tag ? tag : a->min_tag;
        a->max_tag = tag > a->max_tag ? tag : a->max_tag;
    }
    a->last_seq = lq_amqp_last_seq(w->amqp);
    a->waiting_since_ms = lq_clock_ms();
    /* Best effort, as in note_published(). */
    (void)lq_confirmations_move(&a->conf, &b->conf);
    w->ring_n++;
    return LQ_OK;
}

/*
 * Answer the batch committed before (worker.unanswered), if any, and ack
 * what the broker has confirmed meanwhile.  An error means the connection
 * must go.
 */
static int answer_unanswered(worker *w)
{
    batch *u = w->unanswered;
    int r;

    if (u == NULL || w->amqp == NULL)
        return LQ_OK;
    w->unanswered = NULL;
    r = answer_batch(w, u);
    release_batch(u);
    return r == LQ_OK ? settle(w, false) : r;
}

/* As answer_unanswered(), or how it failed while a statement ran (on_db_sent()). */
static int finish_unanswered(worker *w)
{
    int r = w->unanswered_error;

    w->unanswered_error = LQ_OK;
    return r != LQ_OK ? r : answer_unanswered(w);
}

/*
 * A batch's statements are on their way to the database: the batch before
 * it is answered while the server works.  A failure waits for the worker
 * to see it when the statements are done (finish_unanswered()).
 */
static void on_db_sent(void *arg)
{
    worker *w = arg;

    /* Only what does not wait: a blocked broker or a full ring waits outside the transaction. */
    if (w->unanswered && w->unanswered_error == LQ_OK && w->amqp && !lq_amqp_blocked(w->amqp) &&
        w->ring_n < PIPELINE_MAX)
        w->unanswered_error = answer_unanswered(w);
}

/* The hold.expired event of docs/protocol.md section 14; caller frees. */
static char *expiry_event(const lq_expiry *x)
{
    lq_json j;

    lq_json_init(&j);
    lq_json_object_begin(&j);
    lq_json_key(&j, "id");
    lq_json_string(&j, x->id);
    lq_json_key(&j, "type");
    lq_json_string(&j, "hold");
    lq_json_key(&j, "status");
    lq_json_string(&j, "expired");
    lq_json_key(&j, "reason");
    lq_json_null(&j);
    lq_json_key(&j, "detail");
    lq_json_null(&j);
    lq_json_key(&j, "duplicate");
    lq_json_bool(&j, false);
    lq_json_key(&j, "processed_at");
    lq_json_string(&j, x->released_at);
    lq_json_object_end(&j);
    return lq_json_steal(&j);
}

/*
 * Publish the sweep's expiry events and queue them in the ring like a
 * batch without deliveries: once confirmed, their batch number is recorded
 * (ops_confirmed_batches) and the expiries owe nothing more.
 */
static int answer_expiries(worker *w)
{
    answered *a;
    int r = next_answered(w, &a);

    for (size_t i = 0; i < w->expiries.n && r == LQ_OK; i++) {
        const lq_expiry *x = &w->expiries.list[i];
        char *body = expiry_event(x);
        lq_publish pub = {
            .exchange = w->cfg->results_exchange,
            .routing_key = "hold.expired",
            .content_type = "application/json",
            .correlation_id = x->id,
        };
        if (body == NULL)
            return LQ_ERR_NOMEM;
        pub.body = body;
        pub.body_len = strlen(body);
        r = lq_amqp_publish(w->amqp, &pub, NULL);
        free(body);
    }
    if (r != LQ_OK)
        return r;
    a->last_seq = lq_amqp_last_seq(w->amqp);
    a->waiting_since_ms = lq_clock_ms();
    /* Best effort, as in note_published(): unrecorded, the events go out again later. */
    (void)lq_confirmations_add_batch(&a->conf, w->expiries.batch_id);
    w->ring_n++;
    return LQ_OK;
}

/* Count what is unacked, say why, and drop the connection: the broker redelivers it all. */
static void give_up_unacked(worker *w, int r)
{
    const char *why = w->amqp ? lq_amqp_error(w->amqp) : "";
    size_t n = w->b->n + (w->unanswered ? w->unanswered->n : 0) + unacked_answered(w);

    lq_warn("batch of %zu left unacked: %s%s%s", n, lq_strerror(r), why[0] ? ": " : "", why);
    drop_amqp(w, lq_strerror(r));
}

/*
 * Apply the batch, then answer it: at once, or with defer, while the next
 * batch is looked up (worker.unanswered).  The batch before is answered
 * first in any case.
 */
static void process_batch(worker *w, bool defer)
{
    int r = apply_batch(w);
    int before = finish_unanswered(w);

    if (r == LQ_OK)
        r = before;
    if (r == LQ_OK && w->amqp && defer) {
        w->unanswered = w->b;
        w->b = w->b == &w->batches[0] ? &w->batches[1] : &w->batches[0];
        return;
    }
    if (r == LQ_OK && w->amqp)
        r = answer_batch(w, w->b);
    if (r != LQ_OK) {
        give_up_unacked(w, r);
        release_batch(w->b);
        return;
    }
    release_batch(w->b);
    /* Ack what the broker has confirmed meanwhile. */
    if (w->amqp && (r = settle(w, false)) != LQ_OK)
        give_up_unacked(w, r);
}

/* Whether held message a goes before held message b. */
static bool held_before(const lq_delivery *a, const lq_delivery *b)
{
    /* The fewest deliveries first: the likeliest to be innocent. */
    if (a->delivery_count != b->delivery_count)
        return a->delivery_count < b->delivery_count;
    /*
     * Among messages delivered equally often, the order flips from one
     * count to the next: those that came after the culprit, and crashed
     * with it, go before it next time, instead of sharing its fate up to
     * the delivery limit.
     */
    return (a->delivery_count % 2 == 1) == (a->tag < b->tag);
}

/*
 * Apply one held message alone and ack it.  Whatever else is in hand then
 * was delivered fewer times, or came after it.
 *
 * Nothing answered waits for its ack meanwhile: the batches before it are
 * acked first, and it is acked before anything else is applied.  Otherwise
 * a held message that kills the worker would take the pipelined batches
 * (and the held messages applied just before it) back to the queue with
 * it, one delivery more on each, however innocent.
 */
static void process_held(worker *w)
{
    size_t pick = 0;
    int r = finish_unanswered(w);

    if (r == LQ_OK && w->amqp)
        r = settle_all(w);
    if (r != LQ_OK) {
        give_up_unacked(w, r);
        return;
    }
    if (w->amqp == NULL || w->n_held == 0)
        return;
    for (size_t i = 1; i < w->n_held; i++) {
        if (held_before(w->held[i], w->held[pick]))
            pick = i;
    }
    add_entry(w, w->held[pick], lq_clock_us());
    memmove(&w->held[pick], &w->held[pick + 1], (w->n_held - pick - 1) * sizeof(*w->held));
    w->n_held--;
    process_batch(w, false);
    if (w->amqp && (r = settle_all(w)) != LQ_OK)
        give_up_unacked(w, r);
}

/*
 * Record the events the broker confirmed now, rather than with the next
 * batch: while the worker is idle, a command sent again is then known for
 * a duplicate by any worker.
 */
static void record_confirmed(worker *w)
{
    int r;

    if (w->db == NULL || lq_confirmations_empty(&w->confirmed))
        return;
    r = lq_db_record_confirmations(w->db, &w->confirmed);
    if (r == LQ_OK) {
        lq_confirmations_clear(&w->confirmed);
        return;
    }
    lq_warn("could not record the confirmed events: %s", lq_db_error(w->db));
    if (r == LQ_ERR_DB_UNAVAILABLE)
        drop_db(w, lq_db_error(w->db));
}

/*
 * One step of the loop: a batch of new messages, or one held message; they
 * take turns, so that held messages do not wait for the backlog.  Returns
 * false when there was nothing to do.
 */
static bool take_step(worker *w)
{
    int r;

    if (w->n_held > 0 && w->held_turn) {
        w->held_turn = false;
        process_held(w);
        return true;
    }
    r = gather(w);
    if (r != LQ_OK) {
        /* The connection died mid-batch: its deliveries will be redelivered. */
        release_batch(w->b);
        drop_amqp(w, lq_amqp_error(w->amqp));
        return true;
    }
    if (w->b->n > 0) {
        if (w->b->n_redelivered > 0)
            lq_info("redelivered: %zu of the %zu messages of this batch had been delivered before",
                    w->b->n_redelivered, w->b->n);
        process_batch(w, true);
        w->held_turn = true;
    } else if (w->unanswered || w->unanswered_error != LQ_OK) {
        /* Nothing new to overlap with: the last batch's events go now. */
        r = finish_unanswered(w);
        if (r != LQ_OK)
            give_up_unacked(w, r);
    } else if (w->n_held > 0) {
        process_held(w);
    } else {
        record_confirmed(w);
        return false;
    }
    return true;
}

/*
 * Release the holds past their expiry and publish their events, about once
 * a second (at once again while a sweep finds as many as it may take).
 * What fails is tried again at the next sweep, by this worker or another.
 */
static void sweep(worker *w)
{
    int64_t now = lq_clock_ms();
    int r;

    if (w->amqp == NULL || w->db == NULL || now - w->swept_ms < SWEEP_INTERVAL_MS)
        return;
    w->swept_ms = now;
    /* The expiries' events go after those of the batch before. */
    r = finish_unanswered(w);
    if (r != LQ_OK) {
        give_up_unacked(w, r);
        return;
    }
    r = lq_db_expire_holds(w->db, &w->book, SWEEP_MAX, REPUBLISH_S, &w->expiries);
    if (r != LQ_OK) {
        lq_warn("could not release expired holds: %s", lq_db_error(w->db));
        if (r == LQ_ERR_DB_UNAVAILABLE)
            drop_db(w, lq_db_error(w->db));
        return;
    }
    if (w->expiries.n == 0)
        return;
    lq_debug("%zu hold expiries to announce", w->expiries.n);
    if (w->expiries.n >= SWEEP_MAX)
        w->swept_ms = 0;
    r = answer_expiries(w);
    if (r == LQ_OK)
        r = settle(w, false);
    if (r != LQ_OK)
        give_up_unacked(w, r);
}

/* Refresh the queue-depth gauge about once a second (a passive declare). */
static void refresh_depth(worker *w)
{
    uint32_t ready = 0;
    int64_t now = lq_clock_ms();

    if (w->amqp == NULL || now - w->depth_checked_ms < 1000)
        return;
    w->depth_checked_ms = now;
    if (lq_amqp_queue_depth(w->amqp, w->cfg->queue, &ready) == LQ_OK)
        lq_metrics_set_queue(w->metrics, ready,
                             w->b->n + (w->unanswered ? w->unanswered->n : 0) + w->n_held +
                                 unacked_answered(w));
    else
        drop_amqp(w, lq_amqp_error(w->amqp));
}

int lq_worker_run(const lq_config *cfg)
{
    worker w;
    lq_http *http = NULL;
    char err[512], amqp_url[512], db_url[512];
    bool allocated;
    int r;

    memset(&w, 0, sizeof(w));
    w.cfg = cfg;
    w.metrics = lq_metrics_new();
    allocated = w.metrics != NULL;
    for (int k = 0; k < 2; k++) {
        w.batches[k].entries = calloc((size_t)cfg->batch_max, sizeof(*w.batches[k].entries));
        w.batches[k].items = calloc((size_t)cfg->batch_max, sizeof(*w.batches[k].items));
        allocated = allocated && w.batches[k].entries && w.batches[k].items;
    }
    w.b = &w.batches[0];
    for (int k = 0; k < PIPELINE_MAX; k++) {
        w.ring[k].tags = calloc((size_t)cfg->batch_max, sizeof(*w.ring[k].tags));
        w.ring[k].received_us = calloc((size_t)cfg->batch_max, sizeof(*w.ring[k].received_us));
        allocated = allocated && w.ring[k].tags && w.ring[k].received_us;
    }
    if (!allocated) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    if (strcmp(cfg->http_addr, "off") != 0) {
        r = lq_http_start(cfg->http_addr, w.metrics, &http, err, sizeof(err));
        if (r != LQ_OK) {
            lq_error("%s (LEDGERQ_HTTP_ADDR)", err);
            goto out;
        }
        lq_info("health and metrics on http://%s/ (healthz, readyz, metrics)", cfg->http_addr);
    }
    srand((unsigned)getpid() ^ (unsigned)lq_clock_ms());
    stop_requested = 0;
    install_signals();
    lq_config_redact_url(cfg->amqp_url, amqp_url, sizeof(amqp_url));
    lq_config_redact_url(cfg->database_url, db_url, sizeof(db_url));
    lq_info("ledgerq %s worker starting: broker %s, database %s, batch up to %d payments, %d ms "
            "wait",
            LQ_RELEASE, amqp_url, db_url, cfg->batch_max, cfg->batch_wait_ms);

    while (!stop_requested) {
        lq_metrics_tick(w.metrics);
        if (!ensure_connected(&w))
            break;
        refresh_depth(&w);
        if (w.db && !lq_db_alive(w.db))
            drop_db(&w, lq_db_error(w.db));
        if (w.amqp == NULL || w.db == NULL)
            continue;
        sweep(&w);
        take_step(&w);
    }

    /*
     * Drain: stop consuming, finish what was already delivered (through a
     * database outage too, until the shutdown timeout), then close.
     */
    (void)past_deadline(&w); /* starts the shutdown timeout, if a signal stopped the loop */
    lq_info("stopping: finishing the payments in hand");
    lq_metrics_set_consuming(w.metrics, false);
    w.draining = true;
    /* The cancel and the close wait for no broker past the shutdown timeout. */
    if (w.amqp)
        lq_amqp_set_rpc_timeout(w.amqp, (int)(w.deadline_ms - lq_clock_ms()));
    /* A blocked connection reads nothing, a cancel included: what is in hand is redelivered. */
    if (w.amqp && lq_amqp_blocked(w.amqp))
        lq_warn("the broker blocks publishing: leaving the payments in hand for redelivery");
    else if (w.amqp && lq_amqp_cancel(w.amqp) == LQ_OK) {
        while (w.amqp && !past_deadline(&w) && take_step(&w))
            ;
    }
    if (w.amqp && (r = finish_unanswered(&w)) == LQ_OK)
        r = settle_all(&w);
    if (w.amqp && r != LQ_OK)
        give_up_unacked(&w, r);
    record_confirmed(&w);
    if (w.amqp && w.n_held > 0)
        lq_warn("stopping with %zu redelivered messages not applied: the broker redelivers them",
                w.n_held);
    release_held(&w);
    if (w.amqp)
        lq_amqp_set_rpc_timeout(w.amqp, SHUTDOWN_MARGIN_MS / 2);
    r = LQ_OK;
    lq_info("stopped");
out:
    lq_http_stop(http);
    w.amqp = lq_amqp_close(w.amqp);
    w.db = lq_db_close(w.db);
    lq_metrics_free(w.metrics);
    lq_book_release(&w.book);
    lq_expiries_release(&w.expiries);
    lq_confirmations_release(&w.confirmed);
    lq_confirmations_release(&w.recording);
    free(w.held);
    for (int k = 0; k < PIPELINE_MAX; k++) {
        free(w.ring[k].tags);
        free(w.ring[k].received_us);
        lq_confirmations_release(&w.ring[k].conf);
    }
    for (int k = 0; k < 2; k++) {
        release_batch(&w.batches[k]);
        lq_confirmations_release(&w.batches[k].conf);
        free(w.batches[k].entries);
        free(w.batches[k].items);
    }
    return r;
}
