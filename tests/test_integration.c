/*
 * Integration tests: the real `ledgerq` binary against a real RabbitMQ and
 * PostgreSQL (docs/protocol.md sections 1-8).
 *
 * Each test case gets a namespace of its own (support.h): a fresh database
 * and its own exchange and queue names.  Tests publish commands, run
 * workers, and check what a user would check: exit codes, printed JSON,
 * result events, dead-lettered messages, balances.  Every wait is for an
 * event and bounded.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support.h"

#define TIMEOUT_S 120

/* The running case's namespace (lqt_suite.ns). */
static lqt_ns *ns;

/* ------------------------------------------------------------ helpers */

static void open_account(const char *id, const char *currency)
{
    lqt_run_ok(ns, "account", "open", id, "--currency", currency);
}

static void open_account_negative(const char *id, const char *currency)
{
    lqt_run_ok(ns, "account", "open", id, "--currency", currency, "--allow-negative");
}

/* Publish a single-leg command; amount is JSON text: 100 or "100". */
static void pay(const char *id, const char *debit, const char *credit, const char *amount,
                const char *currency)
{
    char body[1024];

    snprintf(body, sizeof(body),
             "{\"id\":\"%s\",\"debit\":\"%s\",\"credit\":\"%s\",\"amount\":%s,\"currency\":\"%s\"}",
             id, debit, credit, amount, currency);
    lqt_pay(ns, body);
}

/*
 * The nth event for id: it must exist, have the given status, reason (NULL:
 * null) and duplicate flag, the routing key of its status, correlation_id
 * = id, and be a persistent application/json message.
 */
static const lqt_event *expect_event(const lqt_listener *l, const char *id, size_t nth,
                                     const char *status, const char *reason, bool duplicate)
{
    const lqt_event *e = lqt_event_find(l, id, nth);

    ck_assert_msg(e != NULL, "no result event #%zu for %s", nth + 1, id);
    ck_assert_msg(strcmp(e->status, status) == 0, "%s: status \"%s\", expected \"%s\": %s", id,
                  e->status, status, e->body);
    if (reason == NULL) {
        ck_assert_msg(e->reason_null, "%s: reason should be null: %s", id, e->body);
        ck_assert_msg(e->detail_null, "%s: detail should be null when applied: %s", id, e->body);
    } else {
        ck_assert_msg(!e->reason_null && strcmp(e->reason, reason) == 0,
                      "%s: reason \"%s\", expected \"%s\": %s", id, e->reason, reason, e->body);
    }
    ck_assert_msg(e->duplicate == duplicate, "%s: duplicate should be %s: %s", id,
                  duplicate ? "true" : "false", e->body);
    ck_assert_str_eq(e->routing_key,
                     strcmp(status, "applied") == 0 ? "payment.applied" : "payment.rejected");
    ck_assert_msg(e->has_correlation_id, "%s: the event has no correlation_id", id);
    ck_assert_str_eq(e->correlation_id, id);
    ck_assert_str_eq(e->content_type, "application/json");
    ck_assert_msg(e->persistent, "%s: the event is not persistent", id);
    return e;
}

/* `payment show ID --json` must exit 0; returns what it printed, parsed. */
static void expect_payment(const char *id, lqt_payment *ret)
{
    char err[512];
    int status = lqt_payment_show(ns, id, ret, err);

    ck_assert_msg(status == 0, "`payment show %s --json` exited %d: %s", id, status, err);
}

static void expect_audit_ok(void)
{
    lqt_output o;

    lqt_run(ns, &o, "audit");
    ck_assert_msg(o.status == 0, "audit exited %d: %s%s", o.status, o.out, o.err);
    lqt_output_release(&o);
}

/* ------------------------------------------------------------ 1. applied */

START_TEST(test_applied)
{
    lqt_listener *l = lqt_listen(ns);
    lqt_worker *w;
    lqt_account a;
    lqt_payment p;
    const lqt_event *fund, *move;

    open_account_negative("bank", "EUR");
    open_account("alice", "EUR");
    open_account("bob", "EUR");
    pay("fund-alice", "bank", "alice", "1000", "EUR");
    lqt_pay(ns,
            "{\"id\":\"alice-to-bob\",\"debit\":\"alice\",\"credit\":\"bob\",\"amount\":\"250\","
            "\"currency\":\"EUR\",\"reference\":\"order-42\",\"metadata\":{\"channel\":\"web\"}}");
    w = lqt_worker_start(ns, NULL);
    lqt_wait_events(l, 2);

    fund = expect_event(l, "fund-alice", 0, "applied", NULL, false);
    move = expect_event(l, "alice-to-bob", 0, "applied", NULL, false);
    ck_assert_uint_eq(lqt_event_count(l), 2);

    lqt_account_show(ns, "alice", &a);
    ck_assert_str_eq(a.currency, "EUR");
    ck_assert_int_eq(a.balance, 750);
    ck_assert_int_eq(a.debits, 250);
    ck_assert_int_eq(a.credits, 1000);
    ck_assert(!a.allow_negative);
    lqt_account_show(ns, "bob", &a);
    ck_assert_int_eq(a.balance, 250);
    ck_assert_int_eq(a.debits, 0);
    ck_assert_int_eq(a.credits, 250);
    lqt_account_show(ns, "bank", &a);
    ck_assert_int_eq(a.balance, -1000);
    ck_assert_int_eq(a.debits, 1000);
    ck_assert(a.allow_negative);

    expect_payment("alice-to-bob", &p);
    ck_assert_str_eq(p.status, "applied");
    ck_assert(p.reason_null);
    ck_assert_uint_eq(p.n_legs, 1);
    ck_assert_str_eq(p.legs[0].debit, "alice");
    ck_assert_str_eq(p.legs[0].credit, "bob");
    ck_assert_int_eq(p.legs[0].amount, 250);
    ck_assert_str_eq(p.legs[0].currency, "EUR");
    ck_assert_str_eq(p.processed_at, move->processed_at);
    expect_payment("fund-alice", &p);
    ck_assert_str_eq(p.status, "applied");
    ck_assert_int_eq(p.legs[0].amount, 1000);
    ck_assert_str_eq(p.processed_at, fund->processed_at);

    expect_audit_ok();
    ck_assert_int_eq(lqt_worker_stop(w), 0);
}
END_TEST

/* ------------------------------------------------------------ 2. rejections */

/* A rejected payment: its event, and `payment show` agreeing with it. */
static void expect_rejected(const lqt_listener *l, const char *id, const char *reason)
{
    const lqt_event *e = expect_event(l, id, 0, "rejected", reason, false);
    lqt_payment p;

    expect_payment(id, &p);
    ck_assert_msg(strcmp(p.status, "rejected") == 0, "%s: payment show says %s", id, p.status);
    ck_assert_msg(!p.reason_null && strcmp(p.reason, reason) == 0,
                  "%s: payment show's reason is \"%s\", expected \"%s\"", id, p.reason, reason);
    ck_assert_str_eq(p.processed_at, e->processed_at);
    ck_assert_uint_eq(p.n_legs, 1);
}

START_TEST(test_rejections)
{
    lqt_listener *l = lqt_listen(ns);
    lqt_worker *w;
    char *before, *after;
    lqt_account a;

    open_account_negative("bank", "EUR");
    open_account("alice", "EUR");
    open_account("bob", "EUR");
    open_account("carol", "USD");
    open_account_negative("bigbank", "EUR");
    open_account("big", "EUR");
    w = lqt_worker_start(ns, NULL);
    pay("fund-alice", "bank", "alice", "500", "EUR");
    pay("fund-big", "bigbank", "big", "\"9223372036854775807\"", "EUR");
    lqt_wait_events(l, 2);
    expect_event(l, "fund-alice", 0, "applied", NULL, false);
    expect_event(l, "fund-big", 0, "applied", NULL, false);
    lqt_account_show(ns, "big", &a);
    ck_assert_int_eq(a.balance, INT64_MAX);

    before = lqt_accounts_snapshot(ns);
    pay("debit-missing", "ghost", "bob", "10", "EUR");
    pay("credit-missing", "alice", "ghost", "10", "EUR");
    pay("account-currency", "alice", "carol", "10", "EUR");
    pay("leg-currency", "alice", "bob", "10", "USD");
    pay("one-too-many", "alice", "bob", "501", "EUR");
    pay("past-max", "bank", "big", "1", "EUR");
    lqt_wait_events(l, 8);
    expect_rejected(l, "debit-missing", "account_not_found");
    expect_rejected(l, "credit-missing", "account_not_found");
    expect_rejected(l, "account-currency", "currency_mismatch");
    expect_rejected(l, "leg-currency", "currency_mismatch");
    expect_rejected(l, "one-too-many", "insufficient_funds");
    expect_rejected(l, "past-max", "amount_overflow");
    after = lqt_accounts_snapshot(ns);
    ck_assert_msg(strcmp(before, after) == 0, "rejections changed the ledger:\n%s\n%s", before,
                  after);
    free(before);
    free(after);

    /* Exactly enough is enough. */
    pay("all-of-it", "alice", "bob", "500", "EUR");
    lqt_wait_events(l, 9);
    expect_event(l, "all-of-it", 0, "applied", NULL, false);
    ck_assert_int_eq(lqt_balance(ns, "alice"), 0);
    ck_assert_int_eq(lqt_balance(ns, "bob"), 500);

    expect_audit_ok();
    ck_assert_int_eq(lqt_worker_stop(w), 0);
}
END_TEST

/* ------------------------------------------------------------ 3. multi-leg */

START_TEST(test_multi_leg)
{
    lqt_listener *l = lqt_listen(ns);
    lqt_worker *w;
    lqt_payment p;
    lqt_account a;
    char *before, *after;

    open_account_negative("bank", "EUR");
    open_account("alice", "EUR");
    open_account("bob", "EUR");
    w = lqt_worker_start(ns, NULL);
    before = lqt_accounts_snapshot(ns);

    /* A failing later leg posts nothing, not even the earlier ones. */
    lqt_pay(ns, "{\"id\":\"later-leg-unknown\",\"legs\":["
                "{\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":100,\"currency\":\"EUR\"},"
                "{\"debit\":\"alice\",\"credit\":\"nobody\",\"amount\":50,\"currency\":\"EUR\"}]}");
    lqt_pay(ns, "{\"id\":\"later-leg-short\",\"legs\":["
                "{\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":100,\"currency\":\"EUR\"},"
                "{\"debit\":\"alice\",\"credit\":\"bob\",\"amount\":101,\"currency\":\"EUR\"}]}");
    lqt_wait_events(l, 2);
    expect_event(l, "later-leg-unknown", 0, "rejected", "account_not_found", false);
    expect_event(l, "later-leg-short", 0, "rejected", "insufficient_funds", false);
    after = lqt_accounts_snapshot(ns);
    ck_assert_msg(strcmp(before, after) == 0, "a rejected multi-leg payment posted:\n%s\n%s",
                  before, after);
    ck_assert_int_eq(lqt_balance(ns, "alice"), 0);
    free(before);
    free(after);

    /* A later leg may spend what an earlier one credited. */
    lqt_pay(ns,
            "{\"id\":\"pass-through\",\"legs\":["
            "{\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":100,\"currency\":\"EUR\"},"
            "{\"debit\":\"alice\",\"credit\":\"bob\",\"amount\":\"100\",\"currency\":\"EUR\"}]}");
    lqt_wait_events(l, 3);
    expect_event(l, "pass-through", 0, "applied", NULL, false);
    lqt_account_show(ns, "alice", &a);
    ck_assert_int_eq(a.balance, 0);
    ck_assert_int_eq(a.debits, 100);
    ck_assert_int_eq(a.credits, 100);
    ck_assert_int_eq(lqt_balance(ns, "bob"), 100);
    ck_assert_int_eq(lqt_balance(ns, "bank"), -100);
    expect_payment("pass-through", &p);
    ck_assert_str_eq(p.status, "applied");
    ck_assert_uint_eq(p.n_legs, 2);
    ck_assert_str_eq(p.legs[0].debit, "bank");
    ck_assert_str_eq(p.legs[0].credit, "alice");
    ck_assert_str_eq(p.legs[1].debit, "alice");
    ck_assert_str_eq(p.legs[1].credit, "bob");
    ck_assert_int_eq(p.legs[1].amount, 100);

    expect_audit_ok();
    ck_assert_int_eq(lqt_worker_stop(w), 0);
}
END_TEST

/* ------------------------------------------------------------ 4. duplicates */

START_TEST(test_duplicates)
{
    lqt_listener *l = lqt_listen(ns);
    lqt_worker *w;
    lqt_payment p;
    const lqt_event *first, *e;
    char first_at[64], *postings;

    open_account_negative("bank", "EUR");
    open_account("alice", "EUR");

    /* The same command twice, in one batch: one effect. */
    pay("dup-1", "bank", "alice", "100", "EUR");
    pay("dup-1", "bank", "alice", "100", "EUR");
    w = lqt_worker_start(ns, NULL);
    lqt_wait_events(l, 2);
    first = expect_event(l, "dup-1", 0, "applied", NULL, false);
    snprintf(first_at, sizeof(first_at), "%s", first->processed_at);
    e = expect_event(l, "dup-1", 1, "applied", NULL, true);
    ck_assert_str_eq(e->processed_at, first_at);
    ck_assert_int_eq(lqt_balance(ns, "alice"), 100);

    /* Again after a restart, in a later batch of another worker. */
    ck_assert_int_eq(lqt_worker_stop(w), 0);
    pay("dup-1", "bank", "alice", "100", "EUR");
    w = lqt_worker_start(ns, NULL);
    lqt_wait_events(l, 3);
    e = expect_event(l, "dup-1", 2, "applied", NULL, true);
    ck_assert_str_eq(e->processed_at, first_at);
    ck_assert_int_eq(lqt_balance(ns, "alice"), 100);

    /* The same id with another amount: a conflict; the first outcome stands. */
    pay("dup-1", "bank", "alice", "200", "EUR");
    lqt_wait_events(l, 4);
    e = expect_event(l, "dup-1", 3, "rejected", "idempotency_conflict", false);
    ck_assert_msg(strcmp(e->processed_at, first_at) >= 0,
                  "a conflict's processed_at (%s) is before the first processing (%s)",
                  e->processed_at, first_at);
    expect_payment("dup-1", &p);
    ck_assert_str_eq(p.status, "applied");
    ck_assert(p.reason_null);
    ck_assert_int_eq(p.legs[0].amount, 100);
    ck_assert_str_eq(p.processed_at, first_at);
    ck_assert_int_eq(lqt_balance(ns, "alice"), 100);
    postings = lqt_sql_value(ns, "SELECT count(*) FROM postings WHERE payment_id = $1", "dup-1");
    ck_assert_str_eq(postings, "1");
    free(postings);

    /* Only metadata differs: a duplicate. */
    lqt_pay(ns, "{\"id\":\"dup-meta\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":10,"
                "\"currency\":\"EUR\",\"metadata\":{\"channel\":\"web\"}}");
    lqt_pay(ns, "{\"id\":\"dup-meta\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":10,"
                "\"currency\":\"EUR\",\"metadata\":{\"channel\":\"app\",\"retry\":1}}");
    /* The single form and the equivalent one-leg legs form: a duplicate. */
    pay("dup-form", "bank", "alice", "20", "EUR");
    lqt_pay(ns, "{\"id\":\"dup-form\",\"legs\":[{\"debit\":\"bank\",\"credit\":\"alice\","
                "\"amount\":20,\"currency\":\"EUR\"}]}");
    /* 100 and "100": a duplicate. */
    pay("dup-spelling", "bank", "alice", "100", "EUR");
    pay("dup-spelling", "bank", "alice", "\"100\"", "EUR");
    /* Another reference: a conflict (every field but metadata counts). */
    lqt_pay(ns, "{\"id\":\"dup-ref\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":1,"
                "\"currency\":\"EUR\",\"reference\":\"a\"}");
    lqt_pay(ns, "{\"id\":\"dup-ref\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":1,"
                "\"currency\":\"EUR\",\"reference\":\"b\"}");
    lqt_wait_events(l, 12);
    ck_assert_uint_eq(lqt_event_count(l), 12);
    expect_event(l, "dup-meta", 0, "applied", NULL, false);
    expect_event(l, "dup-meta", 1, "applied", NULL, true);
    expect_event(l, "dup-form", 0, "applied", NULL, false);
    expect_event(l, "dup-form", 1, "applied", NULL, true);
    expect_event(l, "dup-spelling", 0, "applied", NULL, false);
    expect_event(l, "dup-spelling", 1, "applied", NULL, true);
    expect_event(l, "dup-ref", 0, "applied", NULL, false);
    expect_event(l, "dup-ref", 1, "rejected", "idempotency_conflict", false);
    ck_assert_str_eq(lqt_event_find(l, "dup-meta", 1)->processed_at,
                     lqt_event_find(l, "dup-meta", 0)->processed_at);
    ck_assert_int_eq(lqt_balance(ns, "alice"), 100 + 10 + 20 + 100 + 1);

    expect_audit_ok();
    ck_assert_int_eq(lqt_worker_stop(w), 0);
}
END_TEST

/* ------------------------------------------------------------ 5. reply_to */

/*
 * The event for id sent to a reply_to queue: through the default exchange
 * (routing key = the queue), correlation_id = id, and the same event as the
 * one on the results exchange.
 */
static void expect_reply(const lqt_listener *replies, const lqt_listener *results, const char *id,
                         const char *status, const char *reason)
{
    const lqt_event *on_results = expect_event(results, id, 0, status, reason, false);
    const lqt_event *e = lqt_event_find(replies, id, 0);

    ck_assert_msg(e != NULL, "no event for %s on its reply_to queue", id);
    ck_assert_str_eq(e->routing_key, lqt_listener_queue(replies));
    ck_assert_msg(e->has_correlation_id, "%s: the reply has no correlation_id", id);
    ck_assert_str_eq(e->correlation_id, id);
    ck_assert_str_eq(e->content_type, "application/json");
    ck_assert_msg(e->persistent, "%s: the reply is not persistent", id);
    ck_assert_str_eq(e->body, on_results->body);
    ck_assert_uint_eq(lqt_event_count_id(replies, id), 1);
}

START_TEST(test_reply_to)
{
    lqt_listener *results = lqt_listen(ns);
    lqt_listener *replies = lqt_listen_queue(ns);
    lqt_worker *w;
    lqt_msg m = {0};

    open_account_negative("bank", "EUR");
    open_account("alice", "EUR");
    m.reply_to = lqt_listener_queue(replies);
    m.body = "{\"id\":\"with-reply\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":5,"
             "\"currency\":\"EUR\"}";
    lqt_publish(ns, &m);
    m.body = "{\"id\":\"with-reply-rejected\",\"debit\":\"alice\",\"credit\":\"bank\","
             "\"amount\":500,\"currency\":\"EUR\"}";
    lqt_publish(ns, &m);
    pay("without-reply", "bank", "alice", "1", "EUR");
    w = lqt_worker_start(ns, NULL);
    lqt_wait_events(results, 3);
    lqt_wait_events(replies, 2);

    expect_reply(replies, results, "with-reply", "applied", NULL);
    expect_reply(replies, results, "with-reply-rejected", "rejected", "insufficient_funds");
    /* The command without reply_to got its event on the results exchange only. */
    expect_event(results, "without-reply", 0, "applied", NULL, false);
    ck_assert_uint_eq(lqt_event_count_id(replies, "without-reply"), 0);

    ck_assert_int_eq(lqt_worker_stop(w), 0);
}
END_TEST

/* ------------------------------------------------------------ 6. dead letters */

typedef struct bad_message {
    const char *message_id;
    const char *content_type; /* NULL: application/json */
    const char *error;
    const char *body;
    size_t len; /* 0: strlen(body) */
} bad_message;

/* Check one dead-lettered message against what was published. */
static void expect_dead_letter(const lq_delivery *d, const bad_message *b, const char *routing_key,
                               const char *origin)
{
    size_t len = b->len ? b->len : strlen(b->body);
    const char *v;
    int64_t attempts;
    time_t failed_at, now = time(NULL);

    ck_assert_msg(d->body_len == len && memcmp(d->body, b->body, len) == 0,
                  "%s: the dead-lettered body differs from the one published", b->message_id);
    ck_assert_msg(d->content_type != NULL, "%s: content_type was dropped", b->message_id);
    ck_assert_msg(
        strlen(b->content_type ? b->content_type : "application/json") == d->content_type_len &&
            memcmp(d->content_type, b->content_type ? b->content_type : "application/json",
                   d->content_type_len) == 0,
        "%s: content_type changed to \"%.*s\"", b->message_id, (int)d->content_type_len,
        d->content_type);
    v = lqt_header(d, "x-test-origin");
    ck_assert_msg(v && strcmp(v, origin) == 0, "%s: the custom header was not kept", b->message_id);
    v = lqt_header(d, "x-ledgerq-error");
    ck_assert_msg(v && strcmp(v, b->error) == 0, "%s: x-ledgerq-error is \"%s\", expected \"%s\"",
                  b->message_id, v ? v : "(absent)", b->error);
    v = lqt_header(d, "x-ledgerq-error-detail");
    ck_assert_msg(v && v[0] && strchr(v, '\n') == NULL && strchr(v, '\r') == NULL,
                  "%s: x-ledgerq-error-detail must be one non-empty line: \"%s\"", b->message_id,
                  v ? v : "(absent)");
    v = lqt_header(d, "x-ledgerq-original-exchange");
    ck_assert_msg(v && strcmp(v, ns->exchange) == 0, "%s: x-ledgerq-original-exchange is \"%s\"",
                  b->message_id, v ? v : "(absent)");
    v = lqt_header(d, "x-ledgerq-original-routing-key");
    ck_assert_msg(v && strcmp(v, routing_key) == 0,
                  "%s: x-ledgerq-original-routing-key is \"%s\", expected \"%s\"", b->message_id,
                  v ? v : "(absent)", routing_key);
    v = lqt_header(d, "x-ledgerq-original-queue");
    ck_assert_msg(v && strcmp(v, ns->queue) == 0, "%s: x-ledgerq-original-queue is \"%s\"",
                  b->message_id, v ? v : "(absent)");
    v = lqt_header(d, "x-ledgerq-failed-at");
    ck_assert_msg(v && lqt_parse_utc(v, &failed_at),
                  "%s: x-ledgerq-failed-at \"%s\" is not an RFC 3339 UTC time", b->message_id,
                  v ? v : "(absent)");
    ck_assert_msg(failed_at > now - 600 && failed_at <= now + 5,
                  "%s: x-ledgerq-failed-at %s is not about now", b->message_id, v);
    ck_assert_msg(lq_delivery_header_int(d, "x-ledgerq-attempts", &attempts) && attempts >= 1,
                  "%s: x-ledgerq-attempts must be an integer >= 1", b->message_id);
}

START_TEST(test_dead_letters)
{
    static char too_large[65538];
    bad_message bad[] = {
        {"dl-not-json", NULL, "malformed_json", "not json", 0},
        {"dl-not-utf8", NULL, "malformed_json",
         "{\"id\":\"dl-not-utf8\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":1,"
         "\"currency\":\"EUR\",\"reference\":\"caf\xe9\"}",
         0},
        {"dl-fraction", NULL, "invalid_payment",
         "{\"id\":\"dl-fraction\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":1.5,"
         "\"currency\":\"EUR\"}",
         0},
        {"dl-unknown-field", NULL, "invalid_payment",
         "{\"id\":\"dl-unknown-field\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":1,"
         "\"currency\":\"EUR\",\"colour\":\"red\"}",
         0},
        {"dl-not-object", NULL, "invalid_payment", "[\"dl-not-object\"]", 0},
        {"dl-too-large", NULL, "payload_too_large", too_large, 65537},
        {"dl-text-plain", "text/plain", "unsupported_content_type",
         "{\"id\":\"dl-text-plain\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":1,"
         "\"currency\":\"EUR\"}",
         0},
    };
    const size_t n_bad = sizeof(bad) / sizeof(bad[0]);
    lqt_listener *l = lqt_listen(ns);
    lqt_worker *w;
    lq_delivery **dead;
    char routing_keys[16][64], origins[16][64];
    const char *head = "{\"id\":\"dl-too-large\",\"debit\":\"bank\",\"credit\":\"alice\","
                       "\"amount\":1,\"currency\":\"EUR\",\"reference\":\"";

    /* A valid command but for its size: 65,537 bytes. */
    memset(too_large, 'x', 65537);
    memcpy(too_large, head, strlen(head));
    memcpy(too_large + 65537 - 2, "\"}", 2);
    too_large[65537] = '\0';

    open_account_negative("bank", "EUR");
    open_account("alice", "EUR");
    for (size_t i = 0; i < n_bad; i++) {
        lqt_msg m = {0};
        snprintf(routing_keys[i], sizeof(routing_keys[i]), "payment.bad.%zu", i + 1);
        snprintf(origins[i], sizeof(origins[i]), "integration-%zu", i + 1);
        m.body = bad[i].body;
        m.len = bad[i].len;
        m.content_type = bad[i].content_type;
        m.message_id = bad[i].message_id;
        m.routing_key = routing_keys[i];
        m.header = "x-test-origin";
        m.header_value = origins[i];
        lqt_publish(ns, &m);
    }
    pay("dl-sentinel", "bank", "alice", "1", "EUR");
    w = lqt_worker_start(ns, NULL);

    /* Events keep the order of the commands: the first one must be the sentinel's. */
    lqt_wait_events(l, 1);
    expect_event(l, "dl-sentinel", 0, "applied", NULL, false);
    ck_assert_uint_eq(lqt_event_count(l), 1);

    dead = lqt_get_n(ns, ns->dlq, n_bad, true);
    for (size_t i = 0; i < n_bad; i++) {
        const lq_delivery *d = NULL;
        for (size_t k = 0; k < n_bad && d == NULL; k++) {
            if (dead[k]->message_id && strcmp(dead[k]->message_id, bad[i].message_id) == 0)
                d = dead[k];
        }
        ck_assert_msg(d != NULL, "%s is not in the dead-letter queue", bad[i].message_id);
        expect_dead_letter(d, &bad[i], routing_keys[i], origins[i]);
    }
    lqt_deliveries_free(dead, n_bad);
    ck_assert_int_eq(lqt_balance(ns, "alice"), 1);

    ck_assert_int_eq(lqt_worker_stop(w), 0);
}
END_TEST

/* ------------------------------------------------------------ 7. processing_failed */

START_TEST(test_processing_failed)
{
    const char *const env[] = {"LEDGERQ_MAX_ATTEMPTS=3", NULL};
    const char *poison = "{\"id\":\"poison\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":1,"
                         "\"currency\":\"EUR\"}";
    lqt_listener *l = lqt_listen(ns);
    lqt_worker *w;
    lq_delivery **dead;
    const char *v;
    int64_t attempts;
    char id[32], err[512];
    lqt_payment p;
    lqt_msg m = {0};

    open_account_negative("bank", "EUR");
    open_account("alice", "EUR");
    lqt_poison(ns, "poison");

    /* One burst, so that the poison shares batches with good payments. */
    for (int i = 1; i <= 10; i++) {
        snprintf(id, sizeof(id), "good-%d", i);
        if (i == 6) {
            m.body = poison;
            m.message_id = "poison";
            m.routing_key = "payment.poison";
            lqt_send(ns, &m);
        }
        {
            char body[256];
            lqt_msg good = {0};
            snprintf(body, sizeof(body),
                     "{\"id\":\"%s\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":1,"
                     "\"currency\":\"EUR\"}",
                     id);
            good.body = body;
            lqt_send(ns, &good);
        }
    }
    lqt_confirm(ns);
    w = lqt_worker_start(ns, env);
    lqt_wait_events(l, 10);
    for (int i = 1; i <= 10; i++) {
        snprintf(id, sizeof(id), "good-%d", i);
        expect_event(l, id, 0, "applied", NULL, false);
    }

    dead = lqt_get_n(ns, ns->dlq, 1, true);
    ck_assert_msg(dead[0]->body_len == strlen(poison) &&
                      memcmp(dead[0]->body, poison, strlen(poison)) == 0,
                  "the dead-lettered body differs from the one published");
    ck_assert_str_eq(dead[0]->message_id, "poison");
    v = lqt_header(dead[0], "x-ledgerq-error");
    ck_assert_str_eq(v ? v : "(absent)", "processing_failed");
    ck_assert_msg(lq_delivery_header_int(dead[0], "x-ledgerq-attempts", &attempts),
                  "x-ledgerq-attempts is missing");
    ck_assert_int_eq(attempts, 3);
    v = lqt_header(dead[0], "x-ledgerq-error-detail");
    ck_assert_msg(v && strstr(v, "lqt poison pill") && lqt_one_line(v),
                  "x-ledgerq-error-detail should tell the raised message in one line: \"%s\"",
                  v ? v : "(absent)");
    v = lqt_header(dead[0], "x-ledgerq-original-routing-key");
    ck_assert_str_eq(v ? v : "(absent)", "payment.poison");
    v = lqt_header(dead[0], "x-ledgerq-original-queue");
    ck_assert_str_eq(v ? v : "(absent)", ns->queue);
    lqt_deliveries_free(dead, 1);

    /* Everything published before the sentinel has been answered when its event comes. */
    pay("poison-sentinel", "bank", "alice", "1", "EUR");
    lqt_wait_events(l, 11);
    expect_event(l, "poison-sentinel", 0, "applied", NULL, false);
    ck_assert_uint_eq(lqt_event_count_id(l, "poison"), 0);
    ck_assert_uint_eq(lqt_event_count(l), 11);
    ck_assert_int_eq(lqt_balance(ns, "alice"), 11);
    ck_assert_int_eq(lqt_payment_show(ns, "poison", &p, err), 1);

    expect_audit_ok();
    ck_assert_int_eq(lqt_worker_stop(w), 0);
}
END_TEST

/* ------------------------------------------------------------ 8. big amounts */

START_TEST(test_big_amounts)
{
    lqt_listener *l = lqt_listen(ns);
    lqt_worker *w;
    lqt_account a;
    lqt_payment p;

    open_account_negative("bank", "EUR");
    open_account("big", "EUR");
    open_account_negative("bank2", "EUR");
    open_account("max", "EUR");
    w = lqt_worker_start(ns, NULL);
    pay("two-pow-53-plus-1", "bank", "big", "\"9007199254740993\"", "EUR");
    pay("int64-max", "bank2", "max", "\"9223372036854775807\"", "EUR");
    lqt_wait_events(l, 2);
    expect_event(l, "two-pow-53-plus-1", 0, "applied", NULL, false);
    expect_event(l, "int64-max", 0, "applied", NULL, false);

    lqt_account_show(ns, "big", &a);
    ck_assert_msg(strstr(a.raw, "\"balance\":9007199254740993") != NULL, "big: %s", a.raw);
    ck_assert_msg(strstr(a.raw, "\"credits\":9007199254740993") != NULL, "big: %s", a.raw);
    lqt_account_show(ns, "bank", &a);
    ck_assert_msg(strstr(a.raw, "\"balance\":-9007199254740993") != NULL, "bank: %s", a.raw);
    lqt_account_show(ns, "max", &a);
    ck_assert_msg(strstr(a.raw, "\"balance\":9223372036854775807") != NULL, "max: %s", a.raw);
    lqt_account_show(ns, "bank2", &a);
    ck_assert_msg(strstr(a.raw, "\"balance\":-9223372036854775807") != NULL, "bank2: %s", a.raw);

    expect_payment("two-pow-53-plus-1", &p);
    ck_assert_msg(strstr(p.raw, "\"amount\":9007199254740993") != NULL, "%s", p.raw);
    expect_payment("int64-max", &p);
    ck_assert_msg(strstr(p.raw, "\"amount\":9223372036854775807") != NULL, "%s", p.raw);

    expect_audit_ok();
    ck_assert_int_eq(lqt_worker_stop(w), 0);
}
END_TEST

/* ------------------------------------------------------------ 9. the CLI */

/* A failure printed as one line on stderr that mentions mention. */
static void expect_failure(const lqt_output *o, int status, const char *mention, const char *what)
{
    const char *const mentions[] = {mention, NULL};

    lqt_expect_failure(o, status, what, mentions);
}

START_TEST(test_cli)
{
    static const char *const commands[] = {"worker",  "migrate", "topology", "account",
                                           "payment", "audit",   "publish"};
    const char *const bad_prefetch[] = {"LEDGERQ_PREFETCH=abc", NULL};
    lqt_listener *l = lqt_listen(ns);
    lqt_worker *w;
    lqt_output o;
    lqt_account a;
    const char *file;
    char *snapshot, *after;

    /* Opening: an existing id, a bad currency. */
    open_account_negative("bank", "EUR");
    open_account("alice", "EUR");
    open_account("bob", "EUR");
    lqt_run(ns, &o, "account", "open", "alice", "--currency", "EUR");
    expect_failure(&o, 1, "alice", "`account open` of an existing id");
    lqt_output_release(&o);
    lqt_run(ns, &o, "account", "open", "carol", "--currency", "eur");
    expect_failure(&o, 2, "eur", "`account open --currency eur`");
    lqt_output_release(&o);
    lqt_run(ns, &o, "account", "show", "carol");
    expect_failure(&o, 1, "carol", "`account show` of an unknown id");
    lqt_output_release(&o);
    lqt_run(ns, &o, "payment", "show", "unknown");
    expect_failure(&o, 1, "unknown", "`payment show unknown`");
    lqt_output_release(&o);

    /* migrate and topology are idempotent. */
    lqt_run(ns, &o, "migrate");
    ck_assert_msg(o.status == 0, "migrate again exited %d: %s", o.status, o.err);
    ck_assert_msg(strstr(o.out, "applied 0 migrations") != NULL, "migrate again: %s", o.out);
    lqt_output_release(&o);
    lqt_run_ok(ns, "migrate");
    lqt_run_ok(ns, "topology");

    /* publish: confirmed commands, then applied by a worker. */
    file = lqt_write_file(
        ns, "payments.jsonl",
        "{\"id\":\"cli-1\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":100,\"currency\":"
        "\"EUR\"}\n"
        "{\"id\":\"cli-2\",\"debit\":\"alice\",\"credit\":\"bob\",\"amount\":30,\"currency\":"
        "\"EUR\"}\n"
        "{\"id\":\"cli-3\",\"debit\":\"bank\",\"credit\":\"bob\",\"amount\":\"5\",\"currency\":"
        "\"EUR\"}\n");
    lqt_run(ns, &o, "publish", "--file", file);
    ck_assert_msg(o.status == 0, "publish exited %d: %s", o.status, o.err);
    ck_assert_str_eq(o.out, "published 3, confirmed 3\n");
    lqt_output_release(&o);
    w = lqt_worker_start(ns, NULL);
    lqt_wait_events(l, 3);
    expect_event(l, "cli-1", 0, "applied", NULL, false);
    expect_event(l, "cli-2", 0, "applied", NULL, false);
    expect_event(l, "cli-3", 0, "applied", NULL, false);
    ck_assert_int_eq(lqt_worker_stop(w), 0);

    /* A worker with an invalid setting stops at start, naming it. */
    lqt_run_env(ns, bad_prefetch, &o, "worker", (const char *)NULL);
    expect_failure(&o, 1, "LEDGERQ_PREFETCH", "`worker` with LEDGERQ_PREFETCH=abc");
    lqt_output_release(&o);

    /* import: all or none. */
    file = lqt_write_file(ns, "accounts.jsonl",
                          "{\"id\":\"imp-1\",\"currency\":\"EUR\"}\n"
                          "{\"id\":\"imp-2\",\"currency\":\"USD\",\"allow_negative\":true}\n"
                          "{\"id\":\"imp-3\",\"currency\":\"EUR\",\"allow_negative\":false}\n");
    lqt_run(ns, &o, "account", "import", "--file", file);
    ck_assert_msg(o.status == 0, "import exited %d: %s", o.status, o.err);
    lqt_output_release(&o);
    lqt_account_show(ns, "imp-1", &a);
    ck_assert_str_eq(a.currency, "EUR");
    ck_assert(!a.allow_negative);
    lqt_account_show(ns, "imp-2", &a);
    ck_assert_str_eq(a.currency, "USD");
    ck_assert(a.allow_negative);
    lqt_account_show(ns, "imp-3", &a);
    ck_assert(!a.allow_negative);

    snapshot = lqt_accounts_snapshot(ns);
    file = lqt_write_file(ns, "accounts-dup.jsonl",
                          "{\"id\":\"imp-4\",\"currency\":\"EUR\"}\n"
                          "{\"id\":\"imp-5\",\"currency\":\"EUR\"}\n"
                          "{\"id\":\"imp-4\",\"currency\":\"EUR\"}\n");
    lqt_run(ns, &o, "account", "import", "--file", file);
    expect_failure(&o, 1, "imp-4", "`account import` with an id twice");
    lqt_output_release(&o);
    file = lqt_write_file(ns, "accounts-existing.jsonl",
                          "{\"id\":\"imp-6\",\"currency\":\"EUR\"}\n"
                          "{\"id\":\"alice\",\"currency\":\"EUR\"}\n");
    lqt_run(ns, &o, "account", "import", "--file", file);
    expect_failure(&o, 1, "alice", "`account import` with an existing id");
    lqt_output_release(&o);
    after = lqt_accounts_snapshot(ns);
    ck_assert_msg(strcmp(snapshot, after) == 0, "a failed import opened accounts:\n%s\n%s",
                  snapshot, after);
    free(snapshot);
    free(after);

    /* audit: 0 on a healthy ledger, 1 listing what a direct UPDATE broke. */
    lqt_run(ns, &o, "audit");
    ck_assert_msg(o.status == 0, "audit exited %d: %s%s", o.status, o.out, o.err);
    lqt_output_release(&o);
    lqt_sql(ns, "UPDATE accounts SET credits = credits + 1 WHERE id = 'alice'");
    lqt_run(ns, &o, "audit");
    ck_assert_msg(o.status == 1, "audit of a corrupted ledger exited %d: %s%s", o.status, o.out,
                  o.err);
    ck_assert_msg(strstr(o.out, "violation") && strstr(o.out, "alice"),
                  "audit should list the violation naming alice: %s", o.out);
    lqt_output_release(&o);
    lqt_run(ns, &o, "audit", "--json");
    ck_assert_int_eq(o.status, 1);
    ck_assert_msg(strstr(o.out, "\"ok\":false") && strstr(o.out, "\"invariant\""),
                  "audit --json should list violations: %s", o.out);
    lqt_output_release(&o);
    lqt_sql(ns, "UPDATE accounts SET credits = credits - 1 WHERE id = 'alice'");
    lqt_run(ns, &o, "audit");
    ck_assert_msg(o.status == 0, "audit after the repair exited %d: %s%s", o.status, o.out, o.err);
    lqt_output_release(&o);

    /* Postings are the legs of applied payments: a leg rewritten in place is caught too. */
    lqt_sql(ns, "UPDATE payments SET legs = jsonb_set(legs, '{0,credit}', '\"nobody\"')"
                " WHERE id = 'cli-3'");
    lqt_run(ns, &o, "audit");
    ck_assert_msg(o.status == 1, "audit of a leg naming no account exited %d: %s%s", o.status,
                  o.out, o.err);
    ck_assert_msg(strstr(o.out, "cli-3") && strstr(o.out, "nobody does not exist"),
                  "audit should name the leg's missing account: %s", o.out);
    ck_assert_msg(strstr(o.out, "account bob"), "audit should name bob's totals: %s", o.out);
    lqt_output_release(&o);
    lqt_sql(ns, "UPDATE payments SET legs = jsonb_set(legs, '{0}',"
                " '{\"debit\":\"bank\",\"credit\":\"bob\",\"amount\":5.5,\"currency\":\"EUR\"}')"
                " WHERE id = 'cli-3'");
    lqt_run(ns, &o, "audit");
    ck_assert_msg(o.status == 1, "audit of a fractional amount exited %d: %s%s", o.status, o.out,
                  o.err);
    ck_assert_msg(strstr(o.out, "cli-3") && strstr(o.out, "not a whole number"),
                  "audit should name the leg's fractional amount: %s", o.out);
    lqt_output_release(&o);
    lqt_sql(ns, "UPDATE payments SET legs = jsonb_set(legs, '{0,amount}', '5') WHERE id = 'cli-3'");
    lqt_run(ns, &o, "audit");
    ck_assert_msg(o.status == 0, "audit after the repair exited %d: %s%s", o.status, o.out, o.err);
    lqt_output_release(&o);

    /* --help for every command. */
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        char usage[64];
        snprintf(usage, sizeof(usage), "usage: ledgerq %s", commands[i]);
        lqt_run(ns, &o, commands[i], "--help");
        ck_assert_msg(o.status == 0, "`%s --help` exited %d: %s", commands[i], o.status, o.err);
        ck_assert_msg(strstr(o.out, usage) != NULL, "`%s --help` printed: %s", commands[i], o.out);
        lqt_output_release(&o);
    }
    lqt_run(ns, &o, "--help");
    ck_assert_int_eq(o.status, 0);
    lqt_output_release(&o);
}
END_TEST

/* ------------------------------------------------------------ 10. audit: history and limits */

/* Publish an account command (section 12: the queue takes account.# too). */
static void account_command(const char *json)
{
    lqt_msg m = {.body = json, .routing_key = "account.x"};

    lqt_publish(ns, &m);
}

/* The first event of command id: the status, and the reason when rejected (NULL: none). */
static void expect_outcome(const lqt_listener *l, const char *id, const char *status,
                           const char *reason)
{
    const lqt_event *e = lqt_event_find(l, id, 0);

    ck_assert_msg(e != NULL, "no result event for %s", id);
    ck_assert_msg(strcmp(e->status, status) == 0, "%s: status \"%s\", expected \"%s\": %s", id,
                  e->status, status, e->body);
    if (reason != NULL)
        ck_assert_msg(!e->reason_null && strcmp(e->reason, reason) == 0,
                      "%s: reason \"%s\", expected \"%s\": %s", id, e->reason, reason, e->body);
}

/*
 * `audit` of a ledger corrupted by what: exit 1, and exactly the violations
 * expected (NULL-terminated), each the start of a line it prints, in any
 * order, then their count.
 */
static void expect_audit_finds(const char *what, const char *const *expected)
{
    lqt_output o;
    size_t n = 0;
    char count[32];

    lqt_run(ns, &o, "audit");
    ck_assert_msg(o.status == 1, "audit of %s exited %d: %s%s", what, o.status, o.out, o.err);
    for (; expected[n] != NULL; n++) {
        const char *p = o.out;
        while ((p = strstr(p, expected[n])) != NULL && p != o.out && p[-1] != '\n')
            p++;
        ck_assert_msg(p != NULL, "audit of %s should print \"%s\", printed:\n%s", what, expected[n],
                      o.out);
    }
    snprintf(count, sizeof(count), "%zu violation%s\n", n, n == 1 ? "" : "s");
    ck_assert_msg(o.out_len >= strlen(count) &&
                      strcmp(o.out + o.out_len - strlen(count), count) == 0,
                  "audit of %s should find %zu violations, printed:\n%s", what, n, o.out);
    lqt_output_release(&o);
}

/* The entries counter of an account, as stored. */
static long stored_entries(const char *id)
{
    char *v = lqt_sql_value(ns, "SELECT entries FROM accounts WHERE id = $1", id);
    long n;

    ck_assert_msg(v != NULL, "no account %s", id);
    n = strtol(v, NULL, 10);
    free(v);
    return n;
}

START_TEST(test_audit_history)
{
    lqt_listener *l = lqt_listen(ns);
    lqt_worker *w;

    /*
     * A small ledger built by the worker: an overdraft limit, a ceiling, a
     * multi-leg transfer, rejections, an update and a closing.
     */
    w = lqt_worker_start(ns, NULL);
    account_command("{\"type\":\"account.open\",\"id\":\"open-bank\",\"account\":\"bank\","
                    "\"currency\":\"EUR\",\"allow_negative\":true}");
    account_command("{\"type\":\"account.open\",\"id\":\"open-alice\",\"account\":\"alice\","
                    "\"currency\":\"EUR\",\"overdraft_limit\":100}");
    account_command("{\"type\":\"account.open\",\"id\":\"open-bob\",\"account\":\"bob\","
                    "\"currency\":\"EUR\",\"max_balance\":500}");
    account_command("{\"type\":\"account.open\",\"id\":\"open-carol\",\"account\":\"carol\","
                    "\"currency\":\"EUR\"}");
    pay("fund-alice", "bank", "alice", "300", "EUR");
    pay("alice-bob", "alice", "bob", "350", "EUR");
    pay("fill-bob", "bank", "bob", "150", "EUR");
    pay("over-bob", "bank", "bob", "1", "EUR");
    lqt_pay(ns, "{\"id\":\"split\",\"legs\":["
                "{\"debit\":\"alice\",\"credit\":\"carol\",\"amount\":20,\"currency\":\"EUR\"},"
                "{\"debit\":\"bank\",\"credit\":\"carol\",\"amount\":30,\"currency\":\"EUR\"}]}");
    pay("drain-alice", "alice", "bank", "31", "EUR");
    account_command("{\"type\":\"account.update\",\"id\":\"raise-alice\",\"account\":\"alice\","
                    "\"overdraft_limit\":150,\"reason\":\"review\"}");
    pay("empty-carol", "carol", "bank", "50", "EUR");
    account_command("{\"type\":\"account.update\",\"id\":\"close-carol\",\"account\":\"carol\","
                    "\"status\":\"closed\"}");
    lqt_wait_events(l, 13);
    ck_assert_int_eq(lqt_worker_stop(w), 0);
    expect_outcome(l, "open-bank", "applied", NULL);
    expect_outcome(l, "open-alice", "applied", NULL);
    expect_outcome(l, "open-bob", "applied", NULL);
    expect_outcome(l, "open-carol", "applied", NULL);
    expect_outcome(l, "fund-alice", "applied", NULL);
    expect_outcome(l, "alice-bob", "applied", NULL);
    expect_outcome(l, "fill-bob", "applied", NULL);
    expect_outcome(l, "over-bob", "rejected", "exceeds_max_balance");
    expect_outcome(l, "split", "applied", NULL);
    expect_outcome(l, "drain-alice", "rejected", "insufficient_funds");
    expect_outcome(l, "raise-alice", "applied", NULL);
    expect_outcome(l, "empty-carol", "applied", NULL);
    expect_outcome(l, "close-carol", "applied", NULL);
    ck_assert_int_eq(lqt_balance(ns, "bank"), -430);
    ck_assert_int_eq(lqt_balance(ns, "alice"), -70);
    ck_assert_int_eq(lqt_balance(ns, "bob"), 500);
    ck_assert_int_eq(lqt_balance(ns, "carol"), 0);
    /* Entries: the opening, then one per applied leg touching the account, then the updates. */
    ck_assert_int_eq(stored_entries("bank"), 5);
    ck_assert_int_eq(stored_entries("alice"), 5);
    ck_assert_int_eq(stored_entries("bob"), 3);
    ck_assert_int_eq(stored_entries("carol"), 5);

    /* Alice below zero within her overdraft, bob at his ceiling, carol closed and empty. */
    expect_audit_ok();

    /*
     * The database refuses some of the states below itself
     * (accounts_within_floor, accounts_within_ceiling, accounts_status_known,
     * on every row written since they were added).  The audit must find them
     * anyway: rows written before a NOT VALID constraint are not checked by
     * it, and a constraint can be dropped.  So the test drops them, in its
     * own database.
     */
    lqt_sql(ns, "ALTER TABLE accounts DROP CONSTRAINT accounts_within_floor,"
                " DROP CONSTRAINT accounts_within_ceiling, DROP CONSTRAINT accounts_status_known");

    /* A gap: alice's last entry moved from 5 to 6, and her counter with it. */
    lqt_sql(ns, "UPDATE account_entries SET seq = 6 WHERE account_id = 'alice' AND seq = 5;"
                "UPDATE accounts SET entries = 6 WHERE id = 'alice'");
    expect_audit_finds(
        "a gap in alice's entries",
        (const char *const[]){
            "violation: history_numbered: account alice: 5 entries numbered 1 to 6, its entries"
            " counter 6\n",
            NULL});
    lqt_sql(ns, "UPDATE account_entries SET seq = 5 WHERE account_id = 'alice' AND seq = 6;"
                "UPDATE accounts SET entries = 5 WHERE id = 'alice'");
    expect_audit_ok();

    /* The counter off by one. */
    lqt_sql(ns, "UPDATE accounts SET entries = 4 WHERE id = 'alice'");
    expect_audit_finds(
        "alice's entries counter off by one",
        (const char *const[]){
            "violation: history_numbered: account alice: 5 entries numbered 1 to 5, its entries"
            " counter 4\n",
            NULL});
    lqt_sql(ns, "UPDATE accounts SET entries = 5 WHERE id = 'alice'");
    expect_audit_ok();

    /* An entry's amount changed: its running balance, the sum, and its leg no longer agree. */
    lqt_sql(ns, "UPDATE account_entries SET amount = 349 WHERE account_id = 'bob' AND seq = 2");
    expect_audit_finds(
        "a changed entry amount",
        (const char *const[]){
            "violation: history_running_balance: account bob entry 2: balance 350, but entry 1's"
            " balance 0 plus amount 349 is 349\n",
            "violation: history_sums_to_balance: account bob: balance 500, but its entries'"
            " amounts sum to 499\n",
            "violation: history_matches_legs: alice-bob leg 1, account bob: the leg"
            " posts 350, the history has entry 2 of amount 349\n",
            NULL});
    lqt_sql(ns, "UPDATE account_entries SET amount = 350 WHERE account_id = 'bob' AND seq = 2");
    expect_audit_ok();

    /* A balance changed in the middle of the history: that entry and the next disagree. */
    lqt_sql(ns, "UPDATE account_entries SET balance = 357 WHERE account_id = 'bob' AND seq = 2");
    expect_audit_finds(
        "a changed entry balance",
        (const char *const[]){
            "violation: history_running_balance: account bob entry 2: balance 357, but entry 1's"
            " balance 0 plus amount 350 is 350\n",
            "violation: history_running_balance: account bob entry 3: balance 500, but entry 2's"
            " balance 357 plus amount 150 is 507\n",
            NULL});
    lqt_sql(ns, "UPDATE account_entries SET balance = 350 WHERE account_id = 'bob' AND seq = 2");
    expect_audit_ok();

    /* Bob's last entry deleted (kept aside to be put back). */
    lqt_sql(ns, "CREATE TABLE lqt_saved AS"
                " SELECT * FROM account_entries WHERE account_id = 'bob' AND seq = 3;"
                "DELETE FROM account_entries WHERE account_id = 'bob' AND seq = 3");
    expect_audit_finds(
        "a deleted last entry",
        (const char *const[]){
            "violation: history_numbered: account bob: 2 entries numbered 1 to 2, its entries"
            " counter 3\n",
            "violation: history_last_matches_account: account bob: balance 500, held debits 0,"
            " held credits 0, but its last entry 2 has 350, 0, 0\n",
            "violation: history_sums_to_balance: account bob: balance 500, but its entries'"
            " amounts sum to 350\n",
            "violation: history_matches_legs: fill-bob leg 1, account bob: the leg posts"
            " 150, the history has no entry\n",
            NULL});
    lqt_sql(ns, "INSERT INTO account_entries SELECT * FROM lqt_saved; DROP TABLE lqt_saved");
    expect_audit_ok();

    /* An entry moved to a leg its transfer does not have. */
    lqt_sql(ns, "UPDATE account_entries SET leg = 2 WHERE account_id = 'bob' AND seq = 3");
    expect_audit_finds(
        "an entry on the wrong leg",
        (const char *const[]){
            "violation: history_matches_legs: fill-bob leg 1, account bob: the leg posts"
            " 150, the history has no entry\n",
            "violation: history_matches_legs: fill-bob leg 2, account bob: the leg posts"
            " nothing, the history has entry 3 of amount 150\n",
            NULL});
    lqt_sql(ns, "UPDATE account_entries SET leg = 1 WHERE account_id = 'bob' AND seq = 3");
    expect_audit_ok();

    /* An entry earlier than the one before it. */
    lqt_sql(ns, "UPDATE account_entries SET at = at - interval '1 hour'"
                " WHERE account_id = 'bob' AND seq = 3");
    expect_audit_finds(
        "an entry back in time",
        (const char *const[]){"violation: history_in_time_order: account bob entry 3: at ", NULL});
    lqt_sql(ns, "UPDATE account_entries SET at = at + interval '1 hour'"
                " WHERE account_id = 'bob' AND seq = 3");
    expect_audit_ok();

    /* The history of an account that does not exist. */
    lqt_sql(ns, "INSERT INTO account_entries (account_id, seq, command_id, type, amount, balance,"
                " held_debits, held_credits, at)"
                " VALUES ('ghost', 1, 'cli-open-ghost', 'account.open', 0, 0, 0, 0, now())");
    expect_audit_finds(
        "entries of no account",
        (const char *const[]){"violation: history_account_exists: account ghost: no such account,"
                              " but its history has entries 1 to 1\n",
                              NULL});
    lqt_sql(ns, "DELETE FROM account_entries WHERE account_id = 'ghost'");
    expect_audit_ok();

    /* Alice's balance changed without an entry (and without a posting). */
    lqt_sql(ns, "UPDATE accounts SET credits = credits + 5 WHERE id = 'alice'");
    expect_audit_finds(
        "a balance changed without an entry",
        (const char *const[]){
            "violation: currency_sums_to_zero: currency EUR: balances sum to 5\n",
            "violation: totals_match_postings: account alice: stored debits 370 credits 305,"
            " postings debit 370 credit 300\n",
            "violation: history_last_matches_account: account alice: balance -65, held debits 0,"
            " held credits 0, but its last entry 5 has -70, 0, 0\n",
            "violation: history_sums_to_balance: account alice: balance -65, but its entries'"
            " amounts sum to -70\n",
            NULL});
    lqt_sql(ns, "UPDATE accounts SET credits = credits - 5 WHERE id = 'alice'");
    expect_audit_ok();

    /* The floor: alice at -70 is within an overdraft limit of 70, below one of 69. */
    lqt_sql(ns, "UPDATE accounts SET overdraft_limit = 70 WHERE id = 'alice'");
    expect_audit_ok();
    lqt_sql(ns, "UPDATE accounts SET overdraft_limit = 69 WHERE id = 'alice'");
    expect_audit_finds(
        "alice below her floor",
        (const char *const[]){"violation: within_floor: account alice: available -70 (balance -70"
                              " less held debits 0) below floor -69\n",
                              NULL});
    lqt_sql(ns, "UPDATE accounts SET overdraft_limit = 0 WHERE id = 'alice'");
    expect_audit_finds(
        "alice below a floor of 0",
        (const char *const[]){"violation: within_floor: account alice: available -70 (balance -70"
                              " less held debits 0) below floor 0\n",
                              NULL});
    lqt_sql(ns, "UPDATE accounts SET overdraft_limit = 150 WHERE id = 'alice'");
    expect_audit_ok();

    /* The ceiling: bob at 500, above a ceiling of 499. */
    lqt_sql(ns, "UPDATE accounts SET max_balance = 499 WHERE id = 'bob'");
    expect_audit_finds("bob above his ceiling",
                       (const char *const[]){
                           "violation: within_ceiling: account bob: balance 500 plus held credits"
                           " 0 is 500, above its ceiling 499\n",
                           NULL});
    lqt_sql(ns, "UPDATE accounts SET max_balance = 500 WHERE id = 'bob'");
    expect_audit_ok();

    /* A closed account with money on it. */
    lqt_sql(ns, "UPDATE accounts SET status = 'closed' WHERE id = 'bob'");
    expect_audit_finds(
        "a closed account with a balance",
        (const char *const[]){"violation: closed_account_empty: account bob: closed with balance"
                              " 500, held debits 0, held credits 0\n",
                              NULL});
    lqt_sql(ns, "UPDATE accounts SET status = 'active' WHERE id = 'bob'");
    expect_audit_ok();

    /* A status the ledger does not know. */
    lqt_sql(ns, "UPDATE accounts SET status = 'suspended' WHERE id = 'carol'");
    expect_audit_finds(
        "an unknown status",
        (const char *const[]){
            "violation: status_known: account carol: unknown status \"suspended\"\n", NULL});
    lqt_sql(ns, "UPDATE accounts SET status = 'closed' WHERE id = 'carol'");
    expect_audit_ok();
}
END_TEST

/* ------------------------------------------------------------ 11. SIGTERM */

START_TEST(test_sigterm)
{
    /*
     * Small batches and slow inserts (10 ms a payment): the worker holds all
     * the payments (fewer than its prefetch) long before it has processed them.
     */
    const char *const env[] = {"LEDGERQ_BATCH_MAX=10", NULL};
    const int n = 200;
    lqt_listener *l = lqt_listen(ns);
    lqt_worker *w;
    uint32_t consumers;
    char *count, id[32];

    open_account_negative("bank", "EUR");
    open_account("alice", "EUR");
    lqt_slow_inserts(ns, 10);
    for (int i = 0; i < n; i++) {
        char body[256];
        lqt_msg m = {0};
        snprintf(body, sizeof(body),
                 "{\"id\":\"term-%d\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":1,"
                 "\"currency\":\"EUR\"}",
                 i);
        m.body = body;
        lqt_send(ns, &m);
    }
    lqt_confirm(ns);

    /* Work in hand: every message delivered to the worker, the first ones done. */
    w = lqt_worker_start(ns, env);
    lqt_wait_queue_ready(ns, ns->queue, 0);
    lqt_wait_events(l, 1);
    count = lqt_sql_value(ns, "SELECT count(*) FROM payments WHERE type = 'transfer'", NULL);
    ck_assert_msg(strtol(count, NULL, 10) < n,
                  "the worker finished all %d payments before SIGTERM: nothing tested", n);
    free(count);
    ck_assert_int_eq(lqt_worker_stop(w), 0);

    /* It finished and acked all it held: every payment has its one outcome and event. */
    count = lqt_sql_value(ns, "SELECT count(*) FROM payments WHERE type = 'transfer'", NULL);
    ck_assert_int_eq(strtol(count, NULL, 10), n);
    free(count);
    lqt_wait_events(l, (size_t)n);
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "term-%d", i);
        expect_event(l, id, 0, "applied", NULL, false);
    }
    ck_assert_uint_eq(lqt_event_count(l), (size_t)n);
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->queue, &consumers), 0);
    ck_assert_uint_eq(consumers, 0);
    ck_assert_int_eq(lqt_balance(ns, "alice"), n);
    expect_audit_ok();
}
END_TEST

/* ------------------------------------------------------------ the suite */

int main(void)
{
    const lqt_suite suite = {.name = "integration", .timeout_s = TIMEOUT_S, .ns = &ns};
    const lqt_case cases[] = {
        LQT_CASE("applied", test_applied),
        LQT_CASE("rejections", test_rejections),
        LQT_CASE("multi_leg", test_multi_leg),
        LQT_CASE("duplicates", test_duplicates),
        LQT_CASE("reply_to", test_reply_to),
        LQT_CASE("dead_letters", test_dead_letters),
        LQT_CASE("processing_failed", test_processing_failed),
        LQT_CASE("big_amounts", test_big_amounts),
        LQT_CASE("cli", test_cli),
        LQT_CASE("audit_history", test_audit_history),
        LQT_CASE("sigterm", test_sigterm),
    };

    return LQT_MAIN(suite, cases);
}
