/*
 * Integration tests of `ledgerq dlq list|show|stats|replay|purge` (docs/protocol.md
 * section 9) against a real RabbitMQ and PostgreSQL.
 *
 * The cases of list, show, stats, replay and purge start from a dead-letter
 * queue holding one message of every error code, dead-lettered by a real
 * worker, and one the broker itself dead-lettered at the delivery limit
 * (x-death): six messages in a known order.  They check what an operator
 * sees and, after every command, what the queues hold: looking moves
 * nothing, replay and purge move exactly what was named.  Another case
 * kills `dlq replay --all` of 2,000 messages with SIGKILL at three moments
 * and finds every message still dead-lettered or upstream; the last one
 * checks exit codes and messages.
 */
#include <check.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ledgerq/error.h"
#include "support.h"

#define TIMEOUT_S 120

/* The messages of the kill test, and how many times it kills a replay. */
#define KILL_N      2000
#define KILL_ROUNDS 3

/* The running case's namespace (lqt_suite.ns). */
static lqt_ns *ns;

/* ------------------------------------------------------------ small things */

/* A failure printed as one line on stderr that mentions mention, and nothing on stdout. */
static void expect_failure(const lqt_output *o, int status, const char *mention, const char *what)
{
    const char *const mentions[] = {mention, NULL};

    lqt_expect_failure(o, status, what, mentions);
    ck_assert_msg(o->out_len == 0, "%s printed on stdout: %s", what, o->out);
}

/* ------------------------------------------------------------ queue snapshots */

/* What a queue held, head first: bodies and message ids. */
typedef struct snapshot {
    size_t n;
    char **body; /* NUL-terminated copies (bodies hold no NUL here) */
    size_t *len;
    char **message_id; /* NULL when absent */
} snapshot;

/*
 * Take every message of queue with basic.get on a connection of our own,
 * then close it: the broker puts them all back, as after a dlq command.
 */
static void snapshot_take(const char *queue, snapshot *ret)
{
    lq_amqp *c = lqt_amqp_connect();
    size_t cap = 0;

    memset(ret, 0, sizeof(*ret));
    for (;;) {
        lq_delivery *d = NULL;
        int r = lq_amqp_get(c, queue, &d);
        if (r == LQ_ERR_NOT_FOUND)
            break;
        ck_assert_msg(r == LQ_OK, "basic.get from %s: %s", queue, lq_amqp_error(c));
        if (ret->n == cap) {
            cap = cap ? 2 * cap : 64;
            ret->body = realloc(ret->body, cap * sizeof(*ret->body));
            ret->len = realloc(ret->len, cap * sizeof(*ret->len));
            ret->message_id = realloc(ret->message_id, cap * sizeof(*ret->message_id));
            ck_assert_msg(ret->body && ret->len && ret->message_id, "out of memory");
        }
        ret->body[ret->n] = lqt_strndup(d->body, d->body_len);
        ret->len[ret->n] = d->body_len;
        ret->message_id[ret->n] =
            d->message_id ? lqt_strndup(d->message_id, strlen(d->message_id)) : NULL;
        ret->n++;
        lq_delivery_free(d);
    }
    lq_amqp_close(c);
}

static void snapshot_release(snapshot *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->body[i]);
        free(s->message_id[i]);
    }
    free(s->body);
    free(s->len);
    free(s->message_id);
    memset(s, 0, sizeof(*s));
}

/*
 * Wait until queue holds exactly n ready messages and has stopped changing
 * for a moment (after a kill the broker gives back what the dead
 * connection held).
 */
static void wait_settled(const char *queue, uint32_t n)
{
    int64_t deadline = lqt_now_ms() + LQT_WAIT_S * 1000;
    uint32_t last = UINT32_MAX, ready;

    for (;;) {
        ready = lqt_queue_ready(ns, queue, NULL);
        if (ready == n && ready == last)
            return;
        ck_assert_msg(lqt_now_ms() < deadline, "%s holds %u ready messages, expected %u", queue,
                      ready, n);
        last = ready;
        lqt_sleep_ms(100);
    }
}

/* ------------------------------------------------------------ the six dead letters */

/* One message of the fixture, in the order it reaches the dead-letter queue. */
typedef struct dead_letter {
    const char *message_id;
    const char *payment_id; /* NULL: the body does not parse */
    const char *error;      /* NULL: dead-lettered by the broker */
    const char *reason;     /* x-death reason, NULL: none */
    const char *routing_key;
    const char *content_type; /* NULL: application/json */
    const char *body;
    size_t len; /* 0: strlen(body) */
} dead_letter;

/* The six, in queue order, and a stray sent straight to the dead-letter exchange (no origin). */
enum {
    MALFORMED,
    INVALID,
    TOO_LARGE,
    TEXT_PLAIN,
    FAILED,
    X_DEATH,
    N_DEAD,
    STRAY = N_DEAD,
    N_FIXTURE
};

static char too_large[65538];

static const dead_letter fixture[N_FIXTURE] = {
    [MALFORMED] = {"m-malformed", NULL, "malformed_json", NULL, "payment.dlq.1", NULL,
                   "{\"id\":\"dlq-malformed\",\"amount\":", 0},
    [INVALID] = {"m-invalid", "dlq-invalid", "invalid_payment", NULL, "payment.dlq.2", NULL,
                 "{\"id\":\"dlq-invalid\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":1.5,"
                 "\"currency\":\"EUR\"}",
                 0},
    [TOO_LARGE] = {"m-large", "dlq-large", "payload_too_large", NULL, "payment.dlq.3", NULL,
                   too_large, 65537},
    [TEXT_PLAIN] = {"m-text", "dlq-text", "unsupported_content_type", NULL, "payment.dlq.4",
                    "text/plain",
                    "{\"id\":\"dlq-text\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":3,"
                    "\"currency\":\"EUR\"}",
                    0},
    [FAILED] = {"m-poison", "dlq-poison", "processing_failed", NULL, "payment.dlq.5", NULL,
                "{\"id\":\"dlq-poison\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":5,"
                "\"currency\":\"EUR\"}",
                0},
    [X_DEATH] = {"m-limit", "dlq-limit", NULL, "delivery_limit", "payment.dlq.6", NULL,
                 "{\"id\":\"dlq-limit\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":7,"
                 "\"currency\":\"EUR\"}",
                 0},
    [STRAY] = {"m-stray", "dlq-stray", NULL, NULL, "payment.dlq.7", NULL,
               "{\"id\":\"dlq-stray\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":9,"
               "\"currency\":\"EUR\"}",
               0},
};

static size_t dead_len(const dead_letter *m)
{
    return m->len ? m->len : strlen(m->body);
}

static void publish_dead(const dead_letter *m)
{
    lqt_msg msg = {0};

    msg.body = m->body;
    msg.len = m->len;
    msg.routing_key = m->routing_key;
    msg.content_type = m->content_type;
    msg.message_id = m->message_id;
    lqt_publish(ns, &msg);
}

/* `dlq stats --json`'s total. */
static long dlq_total(void)
{
    lqt_output o;
    cJSON *j;
    const cJSON *total;
    long n;

    lqt_run(ns, &o, "dlq", "stats", "--json");
    ck_assert_msg(o.status == 0, "`dlq stats --json` exited %d: %s", o.status, o.err);
    j = cJSON_Parse(o.out);
    total = cJSON_GetObjectItemCaseSensitive(j, "total");
    ck_assert_msg(cJSON_IsNumber(total), "`dlq stats --json` has no total: %s", o.out);
    n = (long)total->valuedouble;
    cJSON_Delete(j);
    lqt_output_release(&o);
    return n;
}

/*
 * Fill the dead-letter queue with the six, in order: a worker dead-letters
 * the first five one at a time, then the harness takes the last one and
 * gives it back until the broker dead-letters it at the delivery limit.  No
 * worker runs afterwards.
 */
static void make_six(void)
{
    const char *const env[] = {"LEDGERQ_MAX_ATTEMPTS=2", NULL};
    const char *head = "{\"id\":\"dlq-large\",\"debit\":\"bank\",\"credit\":\"alice\","
                       "\"amount\":1,\"currency\":\"EUR\",\"reference\":\"";
    int64_t deadline;
    lqt_worker *w;
    int returns = 0;

    /* A valid command but for its size: 65,537 bytes. */
    memset(too_large, 'x', 65537);
    memcpy(too_large, head, strlen(head));
    memcpy(too_large + 65537 - 2, "\"}", 2);
    too_large[65537] = '\0';

    lqt_run_ok(ns, "account", "open", "bank", "--currency", "EUR", "--allow-negative");
    lqt_run_ok(ns, "account", "open", "alice", "--currency", "EUR");
    lqt_poison(ns, "dlq-poison");

    w = lqt_worker_start(ns, env);
    for (int i = MALFORMED; i <= FAILED; i++) {
        publish_dead(&fixture[i]);
        lqt_wait_queue_ready(ns, ns->dlq, (uint32_t)i + 1);
    }
    ck_assert_int_eq(lqt_worker_stop(w), 0);

    publish_dead(&fixture[X_DEATH]);
    deadline = lqt_now_ms() + LQT_WAIT_S * 1000;
    while (lqt_queue_ready(ns, ns->dlq, NULL) < N_DEAD) {
        lq_delivery *d = NULL;
        int r = lq_amqp_get(ns->amqp, ns->queue, &d);
        ck_assert_msg(lqt_now_ms() < deadline && returns < 100,
                      "the broker did not dead-letter a message given back %d times", returns);
        if (r == LQ_ERR_NOT_FOUND) {
            lqt_sleep_ms(20);
            continue;
        }
        ck_assert_msg(r == LQ_OK, "basic.get: %s", lq_amqp_error(ns->amqp));
        lq_delivery_free(d);
        lqt_requeue_unacked(ns);
        returns++;
    }
    printf("dlq: the broker dead-lettered the message after %d returns\n", returns);

    deadline = lqt_now_ms() + LQT_WAIT_S * 1000;
    while (dlq_total() != N_DEAD) {
        ck_assert_msg(lqt_now_ms() < deadline, "`dlq stats --json` never counted %d messages",
                      N_DEAD);
        lqt_sleep_ms(50);
    }
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->queue, NULL), 0);
}

/*
 * The dead-letter queue must hold exactly the fixture's messages listed in
 * which (indexes into fixture, n of them), in that order, bodies unchanged.
 */
static void expect_dlq(const int *which, size_t n, const char *after)
{
    snapshot s;

    snapshot_take(ns->dlq, &s);
    ck_assert_msg(s.n == n, "after %s the dead-letter queue holds %zu messages, expected %zu",
                  after, s.n, n);
    for (size_t i = 0; i < n; i++) {
        const dead_letter *m = &fixture[which[i]];
        ck_assert_msg(s.message_id[i] && strcmp(s.message_id[i], m->message_id) == 0,
                      "after %s position %zu holds %s, expected %s", after, i + 1,
                      s.message_id[i] ? s.message_id[i] : "(no message_id)", m->message_id);
        ck_assert_msg(s.len[i] == dead_len(m) && memcmp(s.body[i], m->body, s.len[i]) == 0,
                      "after %s the body of %s changed", after, m->message_id);
    }
    snapshot_release(&s);
}

static const int all_six[N_DEAD] = {MALFORMED, INVALID, TOO_LARGE, TEXT_PLAIN, FAILED, X_DEATH};

/* ------------------------------------------------------------ JSON */

static int64_t integer(const cJSON *obj, const char *key, const char *what)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    ck_assert_msg(cJSON_IsNumber(v) && v->valuedouble == (double)(int64_t)v->valuedouble,
                  "%s: \"%s\" is not an integer", what, key);
    return (int64_t)v->valuedouble;
}

static void expect_string(const cJSON *obj, const char *key, const char *want, const char *what)
{
    const char *got = lqt_json_string_or_null(obj, key, what);

    if (want == NULL)
        ck_assert_msg(got == NULL, "%s: \"%s\" is \"%s\", expected null", what, key, got);
    else
        ck_assert_msg(got && strcmp(got, want) == 0, "%s: \"%s\" is %s%s%s, expected \"%s\"", what,
                      key, got ? "\"" : "", got ? got : "null", got ? "\"" : "", want);
}

/* One object of `dlq list --json`, checked against the fixture message it must be. */
static void expect_entry(const cJSON *e, size_t position, const dead_letter *m)
{
    static const char *const keys[] = {"position", "message_id", "payment_id", "error", "reason",
                                       "detail",   "failed_at",  "attempts",   "size",  NULL};
    char what[128];
    const char *detail, *failed_at;
    time_t t, now = time(NULL);
    int64_t attempts;

    snprintf(what, sizeof(what), "`dlq list --json` entry %zu (%s)", position, m->message_id);
    ck_assert_msg(cJSON_IsObject(e), "%s is not an object", what);
    lqt_check_keys(e, what, keys);
    ck_assert_msg(integer(e, "position", what) == (int64_t)position, "%s: position %" PRId64, what,
                  integer(e, "position", what));
    expect_string(e, "message_id", m->message_id, what);
    expect_string(e, "payment_id", m->payment_id, what);
    expect_string(e, "error", m->error, what);
    expect_string(e, "reason", m->reason, what);
    ck_assert_msg(integer(e, "size", what) == (int64_t)dead_len(m), "%s: size %" PRId64 ", not %zu",
                  what, integer(e, "size", what), dead_len(m));
    detail = lqt_json_string_or_null(e, "detail", what);
    if (m->error) {
        ck_assert_msg(detail && detail[0] && lqt_one_line(detail),
                      "%s: detail should be one non-empty line", what);
    } else {
        ck_assert_msg(detail == NULL, "%s: detail of a broker dead-lettering: \"%s\"", what,
                      detail);
    }
    if (m == &fixture[FAILED])
        ck_assert_msg(strstr(detail, "lqt poison pill") != NULL,
                      "%s: detail should tell what was raised: %s", what, detail);
    failed_at = lqt_json_string_or_null(e, "failed_at", what);
    ck_assert_msg(failed_at && lqt_parse_utc(failed_at, &t),
                  "%s: failed_at is not an RFC 3339 UTC time", what);
    ck_assert_msg(t > now - 600 && t <= now + 5, "%s: failed_at %s is not about now", what,
                  failed_at);
    attempts = integer(e, "attempts", what);
    if (m == &fixture[FAILED])
        ck_assert_msg(attempts == 2, "%s: attempts %" PRId64 ", LEDGERQ_MAX_ATTEMPTS is 2", what,
                      attempts);
    else if (m->error)
        ck_assert_msg(attempts == 1, "%s: attempts %" PRId64 " for a message dead-lettered at once",
                      what, attempts);
    else
        ck_assert_msg(attempts >= 1, "%s: attempts %" PRId64, what, attempts);
}

/* Run `ledgerq dlq list ... --json` (NULL-terminated extra arguments); returns the array. */
static cJSON *list_json(const char *const *extra, char **ret_text)
{
    const char *args[16] = {"dlq", "list", "--json"};
    size_t n = 3;
    lqt_output o;
    cJSON *j;

    for (; extra && *extra; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    lqt_run(ns, &o, args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7]);
    ck_assert_msg(o.status == 0, "`dlq list --json` exited %d: %s", o.status, o.err);
    ck_assert_msg(lqt_one_line(o.out), "`dlq list --json` printed more than one line: %s", o.out);
    j = cJSON_Parse(o.out);
    ck_assert_msg(cJSON_IsArray(j), "`dlq list --json` is not a JSON array: %s", o.out);
    if (ret_text) {
        *ret_text = o.out;
        o.out = NULL;
    }
    lqt_output_release(&o);
    return j;
}

/* ------------------------------------------------------------ list */

START_TEST(test_list)
{
    const char *const limit2[] = {"--limit", "2", NULL};
    const char *const invalid[] = {"--error", "invalid_payment", NULL};
    const char *const limit_reason[] = {"--error", "delivery_limit", "--limit", "5", NULL};
    const char *const unknown[] = {"--error", "no_such_code", NULL};
    char *first_json, *second_json, *first_text;
    lqt_output o;
    cJSON *j;
    size_t i;
    const char *line;

    make_six();

    /* JSON, twice: the same text, every message in order with its fields. */
    j = list_json(NULL, &first_json);
    ck_assert_int_eq(cJSON_GetArraySize(j), N_DEAD);
    for (i = 0; i < N_DEAD; i++)
        expect_entry(cJSON_GetArrayItem(j, (int)i), i + 1, &fixture[i]);
    cJSON_Delete(j);
    j = list_json(NULL, &second_json);
    cJSON_Delete(j);
    ck_assert_msg(strcmp(first_json, second_json) == 0,
                  "`dlq list --json` twice gave two answers:\n%s\n%s", first_json, second_json);
    free(first_json);
    free(second_json);

    /* Text, twice: a header, then one line per message, in order. */
    lqt_run(ns, &o, "dlq", "list");
    ck_assert_msg(o.status == 0, "`dlq list` exited %d: %s", o.status, o.err);
    first_text = o.out;
    o.out = NULL;
    lqt_output_release(&o);
    lqt_run(ns, &o, "dlq", "list");
    ck_assert_msg(o.status == 0, "`dlq list` exited %d: %s", o.status, o.err);
    ck_assert_msg(strcmp(first_text, o.out) == 0, "`dlq list` twice gave two answers:\n%s\n%s",
                  first_text, o.out);
    lqt_output_release(&o);
    line = first_text;
    ck_assert_msg(strncmp(line, "POS", 3) == 0, "`dlq list` has no header line: %s", first_text);
    for (i = 0; i < N_DEAD; i++) {
        const char *what = fixture[i].error ? fixture[i].error : fixture[i].reason;
        char *end, *text;
        line = strchr(line, '\n');
        ck_assert_msg(line && line[1], "`dlq list` has %zu message lines, expected %d: %s", i,
                      N_DEAD, first_text);
        line++;
        end = strchr(line, '\n');
        text = lqt_strndup(line, end ? (size_t)(end - line) : strlen(line));
        ck_assert_msg(strtoul(text, NULL, 10) == i + 1 && strstr(text, what) &&
                          strstr(text, fixture[i].payment_id ? fixture[i].payment_id : " - "),
                      "`dlq list` line %zu should show position %zu, %s and %s: %s", i + 1, i + 1,
                      fixture[i].payment_id ? fixture[i].payment_id : "-", what, text);
        free(text);
    }
    ck_assert_msg(strchr(line, '\n') && strchr(line, '\n')[1] == '\0',
                  "`dlq list` prints more than %d messages: %s", N_DEAD, first_text);
    free(first_text);

    /* --limit 2: the first two. */
    j = list_json(limit2, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(j), 2);
    expect_entry(cJSON_GetArrayItem(j, 0), 1, &fixture[MALFORMED]);
    expect_entry(cJSON_GetArrayItem(j, 1), 2, &fixture[INVALID]);
    cJSON_Delete(j);
    lqt_run(ns, &o, "dlq", "list", "--limit", "2");
    ck_assert_int_eq(o.status, 0);
    {
        size_t lines = 0;
        for (const char *p = o.out; *p; p++)
            lines += *p == '\n';
        ck_assert_msg(lines == 3, "`dlq list --limit 2` printed %zu lines: %s", lines, o.out);
    }
    lqt_output_release(&o);

    /* --error: by code, or by x-death reason; positions stay those of the queue. */
    j = list_json(invalid, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(j), 1);
    expect_entry(cJSON_GetArrayItem(j, 0), 2, &fixture[INVALID]);
    cJSON_Delete(j);
    j = list_json(limit_reason, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(j), 1);
    expect_entry(cJSON_GetArrayItem(j, 0), 6, &fixture[X_DEATH]);
    cJSON_Delete(j);
    j = list_json(unknown, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(j), 0);
    cJSON_Delete(j);

    /* Nothing was removed, reordered or changed. */
    expect_dlq(all_six, N_DEAD, "dlq list");
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->queue, NULL), 0);
}
END_TEST

/* ------------------------------------------------------------ show */

/* The value printed after "label:" on its own line of `dlq show`, or NULL. */
static char *show_field(const char *out, const char *label)
{
    char needle[64];
    const char *p, *end;

    snprintf(needle, sizeof(needle), "%s:", label);
    for (p = out; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, needle, strlen(needle)) == 0) {
            p += strlen(needle);
            while (*p == ' ')
                p++;
            end = strchr(p, '\n');
            return lqt_strndup(p, end ? (size_t)(end - p) : strlen(p));
        }
    }
    return NULL;
}

static void expect_show_field(const char *out, const char *label, const char *want,
                              const char *what)
{
    char *got = show_field(out, label);

    ck_assert_msg(got && strcmp(got, want) == 0, "%s: %s is \"%s\", expected \"%s\":\n%s", what,
                  label, got ? got : "(missing)", want, out);
    free(got);
}

/* The headers line of `dlq show`, parsed. */
static cJSON *show_headers(const char *out, const char *what)
{
    char *text = show_field(out, "headers");
    cJSON *h;

    ck_assert_msg(text != NULL, "%s prints no headers:\n%s", what, out);
    h = cJSON_Parse(text);
    ck_assert_msg(cJSON_IsObject(h), "%s: the headers are not a JSON object: %s", what, text);
    free(text);
    return h;
}

START_TEST(test_show)
{
    lqt_output o;
    cJSON *h, *death;
    const cJSON *first;
    char size[32];

    make_six();

    /* Not JSON: the body raw, and the x-ledgerq-* headers. */
    lqt_run(ns, &o, "dlq", "show", "1");
    ck_assert_msg(o.status == 0, "`dlq show 1` exited %d: %s", o.status, o.err);
    expect_show_field(o.out, "position", "1", "`dlq show 1`");
    expect_show_field(o.out, "message_id", "m-malformed", "`dlq show 1`");
    expect_show_field(o.out, "payment_id", "-", "`dlq show 1`");
    expect_show_field(o.out, "error", "malformed_json", "`dlq show 1`");
    expect_show_field(o.out, "reason", "-", "`dlq show 1`");
    expect_show_field(o.out, "content_type", "application/json", "`dlq show 1`");
    snprintf(size, sizeof(size), "%zu bytes", strlen(fixture[MALFORMED].body));
    expect_show_field(o.out, "size", size, "`dlq show 1`");
    ck_assert_msg(strstr(o.out, "body (not JSON") && strstr(o.out, fixture[MALFORMED].body),
                  "`dlq show 1` should print the raw body:\n%s", o.out);
    h = show_headers(o.out, "`dlq show 1`");
    expect_string(h, "x-ledgerq-error", "malformed_json", "`dlq show 1` headers");
    expect_string(h, "x-ledgerq-original-exchange", ns->exchange, "`dlq show 1` headers");
    expect_string(h, "x-ledgerq-original-routing-key", "payment.dlq.1", "`dlq show 1` headers");
    expect_string(h, "x-ledgerq-original-queue", ns->queue, "`dlq show 1` headers");
    ck_assert_msg(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(h, "x-ledgerq-error-detail")) &&
                      cJSON_IsString(cJSON_GetObjectItemCaseSensitive(h, "x-ledgerq-failed-at")) &&
                      cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(h, "x-ledgerq-attempts")),
                  "`dlq show 1`: x-ledgerq-* headers missing: %s", o.out);
    cJSON_Delete(h);
    lqt_output_release(&o);

    /* JSON: the body pretty-printed. */
    lqt_run(ns, &o, "dlq", "show", "2");
    ck_assert_msg(o.status == 0, "`dlq show 2` exited %d: %s", o.status, o.err);
    expect_show_field(o.out, "payment_id", "dlq-invalid", "`dlq show 2`");
    expect_show_field(o.out, "error", "invalid_payment", "`dlq show 2`");
    ck_assert_msg(strstr(o.out, "\nbody:\n{\n  \"id\": \"dlq-invalid\",\n  \"debit\": \"bank\",\n"
                                "  \"credit\": \"alice\",\n  \"amount\": 1.5,\n") != NULL,
                  "`dlq show 2` should pretty-print the JSON body:\n%s", o.out);
    lqt_output_release(&o);

    /* The content type it came with. */
    lqt_run(ns, &o, "dlq", "show", "4");
    ck_assert_msg(o.status == 0, "`dlq show 4` exited %d: %s", o.status, o.err);
    expect_show_field(o.out, "content_type", "text/plain", "`dlq show 4`");
    expect_show_field(o.out, "error", "unsupported_content_type", "`dlq show 4`");
    lqt_output_release(&o);

    /* The broker's dead-lettering: x-death decoded. */
    lqt_run(ns, &o, "dlq", "show", "6");
    ck_assert_msg(o.status == 0, "`dlq show 6` exited %d: %s", o.status, o.err);
    expect_show_field(o.out, "position", "6", "`dlq show 6`");
    expect_show_field(o.out, "payment_id", "dlq-limit", "`dlq show 6`");
    expect_show_field(o.out, "error", "-", "`dlq show 6`");
    expect_show_field(o.out, "reason", "delivery_limit", "`dlq show 6`");
    h = show_headers(o.out, "`dlq show 6`");
    death = cJSON_GetObjectItemCaseSensitive(h, "x-death");
    ck_assert_msg(cJSON_IsArray(death) && cJSON_GetArraySize(death) >= 1,
                  "`dlq show 6`: no x-death array in the headers: %s", o.out);
    first = cJSON_GetArrayItem(death, 0);
    expect_string(first, "reason", "delivery_limit", "`dlq show 6` x-death");
    expect_string(first, "queue", ns->queue, "`dlq show 6` x-death");
    expect_string(first, "exchange", ns->exchange, "`dlq show 6` x-death");
    ck_assert_msg(integer(first, "count", "`dlq show 6` x-death") == 1,
                  "`dlq show 6`: x-death count should be 1: %s", o.out);
    ck_assert_msg(cJSON_GetObjectItemCaseSensitive(h, "x-ledgerq-error") == NULL,
                  "`dlq show 6`: a broker dead-lettering has no x-ledgerq-error: %s", o.out);
    ck_assert_msg(strstr(o.out, "\nbody:\n{\n  \"id\": \"dlq-limit\",") != NULL,
                  "`dlq show 6` should pretty-print the JSON body:\n%s", o.out);
    cJSON_Delete(h);
    lqt_output_release(&o);

    /* --id: a payment id or a message_id. */
    lqt_run(ns, &o, "dlq", "show", "--id", "dlq-poison");
    ck_assert_msg(o.status == 0, "`dlq show --id dlq-poison` exited %d: %s", o.status, o.err);
    expect_show_field(o.out, "position", "5", "`dlq show --id dlq-poison`");
    expect_show_field(o.out, "error", "processing_failed", "`dlq show --id dlq-poison`");
    expect_show_field(o.out, "attempts", "2", "`dlq show --id dlq-poison`");
    lqt_output_release(&o);
    lqt_run(ns, &o, "dlq", "show", "--id", "m-large");
    ck_assert_msg(o.status == 0, "`dlq show --id m-large` exited %d: %s", o.status, o.err);
    expect_show_field(o.out, "position", "3", "`dlq show --id m-large`");
    expect_show_field(o.out, "size", "65537 bytes", "`dlq show --id m-large`");
    lqt_output_release(&o);

    /* What is not there. */
    lqt_run(ns, &o, "dlq", "show", "99");
    expect_failure(&o, 1, "99", "`dlq show 99`");
    ck_assert_msg(strstr(o.err, "6 messages") != NULL, "`dlq show 99` should say how many: %s",
                  o.err);
    lqt_output_release(&o);
    lqt_run(ns, &o, "dlq", "show", "--id", "nobody");
    expect_failure(&o, 1, "nobody", "`dlq show --id nobody`");
    lqt_output_release(&o);
    lqt_run(ns, &o, "dlq", "show", "0");
    expect_failure(&o, 2, "position", "`dlq show 0`");
    lqt_output_release(&o);
    lqt_run(ns, &o, "dlq", "show", "first");
    expect_failure(&o, 2, "position", "`dlq show first`");
    lqt_output_release(&o);

    expect_dlq(all_six, N_DEAD, "dlq show");
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->queue, NULL), 0);
}
END_TEST

/* ------------------------------------------------------------ stats */

START_TEST(test_stats)
{
    static const char *const keys[] = {"total", "by_error", "by_reason", NULL};
    lqt_output o;
    cJSON *j;
    const cJSON *by_error, *by_reason, *item;
    char *first;

    make_six();

    lqt_run(ns, &o, "dlq", "stats", "--json");
    ck_assert_msg(o.status == 0, "`dlq stats --json` exited %d: %s", o.status, o.err);
    ck_assert_msg(lqt_one_line(o.out), "`dlq stats --json` printed more than one line: %s", o.out);
    first = o.out;
    o.out = NULL;
    lqt_output_release(&o);
    j = cJSON_Parse(first);
    ck_assert_msg(cJSON_IsObject(j), "`dlq stats --json` is not a JSON object: %s", first);
    lqt_check_keys(j, "`dlq stats --json`", keys);
    ck_assert_msg(integer(j, "total", "`dlq stats --json`") == N_DEAD,
                  "`dlq stats --json`: total should be %d: %s", N_DEAD, first);
    by_error = cJSON_GetObjectItemCaseSensitive(j, "by_error");
    by_reason = cJSON_GetObjectItemCaseSensitive(j, "by_reason");
    ck_assert_msg(cJSON_IsObject(by_error) && cJSON_GetArraySize(by_error) == 5,
                  "`dlq stats --json`: by_error should count 5 codes: %s", first);
    for (int i = MALFORMED; i <= FAILED; i++)
        ck_assert_msg(integer(by_error, fixture[i].error, "`dlq stats --json` by_error") == 1,
                      "`dlq stats --json`: by_error.%s should be 1: %s", fixture[i].error, first);
    ck_assert_msg(cJSON_IsObject(by_reason) && cJSON_GetArraySize(by_reason) == 1,
                  "`dlq stats --json`: by_reason should count one reason: %s", first);
    cJSON_ArrayForEach(item, by_reason)
    {
        ck_assert_msg(strcmp(item->string, "delivery_limit") == 0 && cJSON_IsNumber(item) &&
                          item->valuedouble == 1,
                      "`dlq stats --json`: by_reason should be {\"delivery_limit\":1}: %s", first);
    }
    cJSON_Delete(j);

    /* Again: the same. */
    lqt_run(ns, &o, "dlq", "stats", "--json");
    ck_assert_msg(o.status == 0 && strcmp(o.out, first) == 0,
                  "`dlq stats --json` twice gave two answers:\n%s\n%s", first, o.out);
    lqt_output_release(&o);
    free(first);

    /* Text. */
    lqt_run(ns, &o, "dlq", "stats");
    ck_assert_msg(o.status == 0, "`dlq stats` exited %d: %s", o.status, o.err);
    ck_assert_msg(strncmp(o.out, "total: 6\n", 9) == 0,
                  "`dlq stats` should start with the total: %s", o.out);
    for (int i = MALFORMED; i <= FAILED; i++)
        ck_assert_msg(strstr(o.out, fixture[i].error) != NULL, "`dlq stats` does not count %s: %s",
                      fixture[i].error, o.out);
    ck_assert_msg(strstr(o.out, "delivery_limit") != NULL,
                  "`dlq stats` does not count delivery_limit: %s", o.out);
    lqt_output_release(&o);

    expect_dlq(all_six, N_DEAD, "dlq stats");

    /* An empty queue. */
    lqt_purge(ns, ns->dlq);
    lqt_run(ns, &o, "dlq", "stats", "--json");
    ck_assert_int_eq(o.status, 0);
    ck_assert_str_eq(o.out, "{\"total\":0,\"by_error\":{},\"by_reason\":{}}\n");
    lqt_output_release(&o);
    lqt_run(ns, &o, "dlq", "list", "--json");
    ck_assert_int_eq(o.status, 0);
    ck_assert_str_eq(o.out, "[]\n");
    lqt_output_release(&o);
}
END_TEST

/* ------------------------------------------------------------ replay */

/*
 * After a replay of m the work queue holds n messages, m's among them: the
 * same body and properties, from the namespace exchange with the original
 * routing key, and none of the failure's marks.  All are given back
 * (requeued), m's acked instead when ack.
 */
static void expect_replayed(const dead_letter *m, size_t n, bool ack)
{
    lq_delivery **got = lqt_get_n(ns, ns->queue, n, false);
    const lq_delivery *d = NULL;
    const char *ct = m->content_type ? m->content_type : "application/json";
    char *headers;
    cJSON *h;
    const cJSON *item;

    for (size_t i = 0; i < n && d == NULL; i++) {
        if (got[i]->message_id && strcmp(got[i]->message_id, m->message_id) == 0)
            d = got[i];
    }
    ck_assert_msg(d != NULL, "%s is not in the work queue after its replay", m->message_id);
    ck_assert_msg(d->body_len == dead_len(m) && memcmp(d->body, m->body, d->body_len) == 0,
                  "the replayed body of %s differs from the one published", m->message_id);
    ck_assert_msg(d->content_type && d->content_type_len == strlen(ct) &&
                      memcmp(d->content_type, ct, d->content_type_len) == 0,
                  "%s: the replayed content_type changed", m->message_id);
    ck_assert_str_eq(d->exchange, ns->exchange);
    ck_assert_msg(strcmp(d->routing_key, m->routing_key) == 0,
                  "%s was replayed with routing key %s, expected %s", m->message_id, d->routing_key,
                  m->routing_key);
    headers = lq_delivery_headers_json(d);
    h = cJSON_Parse(headers);
    ck_assert_msg(cJSON_IsObject(h), "the replayed headers: %s", headers ? headers : "(none)");
    cJSON_ArrayForEach(item, h)
    {
        ck_assert_msg(
            strncmp(item->string, "x-ledgerq-", 10) != 0 && strcmp(item->string, "x-death") != 0,
            "%s was replayed with the header %s: %s", m->message_id, item->string, headers);
    }
    cJSON_Delete(h);
    free(headers);
    if (ack)
        ck_assert_msg(lq_amqp_ack(ns->amqp, d->tag, false) == LQ_OK, "ack: %s",
                      lq_amqp_error(ns->amqp));
    lqt_deliveries_free(got, n);
    lqt_requeue_unacked(ns);
}

static void expect_output(const lqt_output *o, const char *want, const char *what)
{
    ck_assert_msg(o->status == 0, "%s exited %d: %s", what, o->status, o->err);
    ck_assert_msg(strcmp(o->out, want) == 0, "%s printed \"%s\", expected \"%s\"", what, o->out,
                  want);
}

START_TEST(test_replay)
{
    static const int after_invalid[] = {MALFORMED, TOO_LARGE, TEXT_PLAIN, FAILED, X_DEATH};
    static const int after_x_death[] = {MALFORMED, TOO_LARGE, TEXT_PLAIN, FAILED};
    static const int after_poison[] = {MALFORMED, TOO_LARGE, TEXT_PLAIN};
    static const int with_stray[] = {MALFORMED, TOO_LARGE, TEXT_PLAIN, STRAY};
    static const int only_stray[] = {STRAY};
    lq_publish stray, direct;
    lqt_listener *l;
    lqt_worker *w;
    lqt_output o;
    lqt_payment p;
    char err[512];

    make_six();
    l = lqt_listen(ns);

    /* --dry-run: says what, moves nothing. */
    lqt_run(ns, &o, "dlq", "replay", "--all", "--dry-run");
    ck_assert_msg(o.status == 0, "`dlq replay --all --dry-run` exited %d: %s", o.status, o.err);
    ck_assert_msg(strstr(o.out, "dry run: would replay 6, keep 0\n") != NULL,
                  "`dlq replay --all --dry-run` printed: %s", o.out);
    lqt_output_release(&o);
    lqt_run(ns, &o, "dlq", "replay", "--error", "processing_failed", "--dry-run");
    ck_assert_msg(o.status == 0 && strstr(o.out, "would replay message 5 (dlq-poison)") &&
                      strstr(o.out, "dry run: would replay 1, keep 5\n"),
                  "`dlq replay --error processing_failed --dry-run` exited %d: %s%s", o.status,
                  o.out, o.err);
    lqt_output_release(&o);
    expect_dlq(all_six, N_DEAD, "replay --dry-run");
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->queue, NULL), 0);

    /* Nothing named, nothing moved. */
    lqt_run(ns, &o, "dlq", "replay", "--id", "nobody");
    expect_output(&o, "replayed 0, kept 6\n", "`dlq replay --id nobody`");
    lqt_output_release(&o);
    expect_dlq(all_six, N_DEAD, "replay --id nobody");

    /* --error: exactly those, upstream clean. */
    lqt_run(ns, &o, "dlq", "replay", "--error", "invalid_payment");
    expect_output(&o, "replayed 1, kept 5\n", "`dlq replay --error invalid_payment`");
    lqt_output_release(&o);
    expect_dlq(after_invalid, 5, "replay --error invalid_payment");
    expect_replayed(&fixture[INVALID], 1, true);

    /* The broker's dead-lettering goes back where x-death says it came from. */
    lqt_run(ns, &o, "dlq", "replay", "--id", "m-limit");
    expect_output(&o, "replayed 1, kept 4\n", "`dlq replay --id m-limit`");
    lqt_output_release(&o);
    expect_dlq(after_x_death, 4, "replay --id m-limit");
    expect_replayed(&fixture[X_DEATH], 1, false);

    /* The failure fixed, the failed payment replayed by its payment id. */
    lqt_sql(ns, "DROP TRIGGER lqt_poison ON payments");
    lqt_run(ns, &o, "dlq", "replay", "--id", "dlq-poison");
    expect_output(&o, "replayed 1, kept 3\n", "`dlq replay --id dlq-poison`");
    lqt_output_release(&o);
    expect_dlq(after_poison, 3, "replay --id dlq-poison");
    expect_replayed(&fixture[FAILED], 2, false);

    /* A worker applies both replayed payments. */
    w = lqt_worker_start(ns, NULL);
    lqt_wait_events(l, 2);
    ck_assert_msg(lqt_event_find(l, "dlq-limit", 0) &&
                      strcmp(lqt_event_find(l, "dlq-limit", 0)->status, "applied") == 0,
                  "the replayed dlq-limit was not applied");
    ck_assert_msg(lqt_event_find(l, "dlq-poison", 0) &&
                      strcmp(lqt_event_find(l, "dlq-poison", 0)->status, "applied") == 0,
                  "the replayed dlq-poison was not applied");
    ck_assert_int_eq(lqt_worker_stop(w), 0);
    ck_assert_msg(lqt_payment_show(ns, "dlq-poison", &p, err) == 0, "payment show: %s", err);
    ck_assert_str_eq(p.status, "applied");
    ck_assert_int_eq(lqt_balance(ns, "alice"), 5 + 7);
    ck_assert_uint_eq(lqt_event_count(l), 2);
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->queue, NULL), 0);

    /* The rest stayed, in order. */
    expect_dlq(after_poison, 3, "the worker ran");
    lqt_run(ns, &o, "dlq", "stats", "--json");
    ck_assert_int_eq(o.status, 0);
    ck_assert_str_eq(o.out, "{\"total\":3,\"by_error\":{\"malformed_json\":1,\"payload_too_large\":"
                            "1,\"unsupported_content_type\":1},\"by_reason\":{}}\n");
    lqt_output_release(&o);

    /* A message with no origin recorded: sent straight to the dead-letter exchange. */
    memset(&stray, 0, sizeof(stray));
    stray.exchange = ns->dlx;
    stray.routing_key = fixture[STRAY].routing_key;
    stray.body = fixture[STRAY].body;
    stray.body_len = dead_len(&fixture[STRAY]);
    stray.content_type = "application/json";
    stray.message_id = fixture[STRAY].message_id;
    stray.mandatory = true;
    ck_assert_msg(lq_amqp_publish(ns->amqp, &stray, NULL) == LQ_OK, "publish: %s",
                  lq_amqp_error(ns->amqp));
    lqt_confirm(ns);
    expect_dlq(with_stray, 4, "a stray message came");

    /* The original exchange is gone: the replay fails and removes nothing. */
    lqt_delete_exchange(ns, ns->exchange);
    lqt_run(ns, &o, "dlq", "replay", "--all");
    ck_assert_msg(o.status == 1 && strstr(o.err, "nothing was removed"),
                  "`dlq replay --all` to a deleted exchange exited %d: %s%s", o.status, o.out,
                  o.err);
    lqt_output_release(&o);
    expect_dlq(with_stray, 4, "a replay to a deleted exchange");
    lqt_run_ok(ns, "topology");
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->queue, NULL), 0);

    /* What has no origin stays, the rest goes, and the exit code says not all went. */
    lqt_run(ns, &o, "dlq", "replay", "--all");
    ck_assert_msg(o.status == 1 && strstr(o.out, "replayed 3, kept 1") &&
                      strstr(o.err, "message 4: no original exchange recorded, kept"),
                  "`dlq replay --all` with a stray exited %d: %s%s", o.status, o.out, o.err);
    lqt_output_release(&o);
    expect_dlq(only_stray, 1, "replay --all with a stray");
    {
        lq_delivery **up = lqt_get_n(ns, ns->queue, 3, true);
        for (size_t i = 0; i < 3; i++)
            ck_assert_msg(up[i]->message_id &&
                              strcmp(up[i]->message_id, fixture[after_poison[i]].message_id) == 0,
                          "replayed message %zu upstream is %s, expected %s", i + 1,
                          up[i]->message_id ? up[i]->message_id : "(no message_id)",
                          fixture[after_poison[i]].message_id);
        lqt_deliveries_free(up, 3);
    }

    /*
     * A command published through the default exchange, straight to the
     * work queue: its origin is the default exchange ("") and the queue's
     * name, and a replay sends it back there.
     */
    memset(&direct, 0, sizeof(direct));
    direct.exchange = "";
    direct.routing_key = ns->queue;
    direct.body = "{\"id\":\"dlq-direct\",\"amount\":0}";
    direct.body_len = strlen(direct.body);
    direct.content_type = "application/json";
    direct.message_id = "m-direct";
    direct.mandatory = true;
    ck_assert_msg(lq_amqp_publish(ns->amqp, &direct, NULL) == LQ_OK, "publish: %s",
                  lq_amqp_error(ns->amqp));
    lqt_confirm(ns);
    w = lqt_worker_start(ns, NULL);
    lqt_wait_queue_ready(ns, ns->dlq, 2);
    ck_assert_int_eq(lqt_worker_stop(w), 0);
    lqt_run(ns, &o, "dlq", "replay", "--id", "m-direct");
    expect_output(&o, "replayed 1, kept 1\n", "`dlq replay --id m-direct`");
    lqt_output_release(&o);
    expect_dlq(only_stray, 1, "replay --id m-direct");
    {
        lq_delivery **up = lqt_get_n(ns, ns->queue, 1, true);
        ck_assert_msg(up[0]->message_id && strcmp(up[0]->message_id, "m-direct") == 0 &&
                          up[0]->exchange[0] == '\0' && strcmp(up[0]->routing_key, ns->queue) == 0,
                      "m-direct came back as %s from \"%s\" with routing key %s",
                      up[0]->message_id ? up[0]->message_id : "(no message_id)", up[0]->exchange,
                      up[0]->routing_key);
        lqt_deliveries_free(up, 1);
    }
}
END_TEST

/* ------------------------------------------------------------ purge */

START_TEST(test_purge)
{
    static const int after_two[] = {MALFORMED, TOO_LARGE, FAILED, X_DEATH};
    static const int after_four[] = {MALFORMED, X_DEATH};
    lqt_output o;

    make_six();

    /* Without --yes: a usage error, nothing removed. */
    lqt_run(ns, &o, "dlq", "purge", "--all");
    expect_failure(&o, 2, "--yes", "`dlq purge --all`");
    lqt_output_release(&o);
    lqt_run(ns, &o, "dlq", "purge", "--id", "dlq-invalid");
    expect_failure(&o, 2, "--yes", "`dlq purge --id dlq-invalid`");
    lqt_output_release(&o);
    expect_dlq(all_six, N_DEAD, "purge without --yes");

    /* --dry-run: says what, removes nothing. */
    lqt_run(ns, &o, "dlq", "purge", "--all", "--dry-run");
    ck_assert_msg(o.status == 0 && strstr(o.out, "dry run: would purge 6, kept 0\n"),
                  "`dlq purge --all --dry-run` exited %d: %s%s", o.status, o.out, o.err);
    lqt_output_release(&o);
    lqt_run(ns, &o, "dlq", "purge", "--all", "--yes", "--dry-run");
    ck_assert_msg(o.status == 0 && strstr(o.out, "dry run: would purge 6, kept 0\n"),
                  "`dlq purge --all --yes --dry-run` exited %d: %s%s", o.status, o.out, o.err);
    lqt_output_release(&o);
    expect_dlq(all_six, N_DEAD, "purge --dry-run");

    /* An unknown id: nothing. */
    lqt_run(ns, &o, "dlq", "purge", "--id", "nobody", "--yes");
    expect_output(&o, "purged 0, kept 6\n", "`dlq purge --id nobody --yes`");
    lqt_output_release(&o);
    expect_dlq(all_six, N_DEAD, "purge --id nobody");

    /* Two ids (a payment id and a message_id): exactly those two. */
    lqt_run(ns, &o, "dlq", "purge", "--id", "dlq-invalid", "m-text", "--yes");
    expect_output(&o, "purged 2, kept 4\n", "`dlq purge --id dlq-invalid m-text --yes`");
    lqt_output_release(&o);
    expect_dlq(after_two, 4, "purge --id dlq-invalid m-text");

    /* --id given twice (once as --id=ID): both ids count. */
    lqt_run(ns, &o, "dlq", "purge", "--id=m-large", "--yes", "--id", "dlq-poison");
    expect_output(&o, "purged 2, kept 2\n", "`dlq purge --id=m-large --yes --id dlq-poison`");
    lqt_output_release(&o);
    expect_dlq(after_four, 2, "purge --id=m-large --yes --id dlq-poison");

    /* --error matches an x-death reason too. */
    lqt_run(ns, &o, "dlq", "purge", "--error", "delivery_limit", "--yes");
    expect_output(&o, "purged 1, kept 1\n", "`dlq purge --error delivery_limit --yes`");
    lqt_output_release(&o);
    expect_dlq(after_four, 1, "purge --error delivery_limit");

    /* --all. */
    lqt_run(ns, &o, "dlq", "purge", "--all", "--yes");
    expect_output(&o, "purged 1, kept 0\n", "`dlq purge --all --yes`");
    lqt_output_release(&o);
    expect_dlq(NULL, 0, "purge --all");
    lqt_run(ns, &o, "dlq", "stats", "--json");
    ck_assert_int_eq(o.status, 0);
    ck_assert_str_eq(o.out, "{\"total\":0,\"by_error\":{},\"by_reason\":{}}\n");
    lqt_output_release(&o);

    /* Purging sends nothing anywhere. */
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->queue, NULL), 0);
}
END_TEST

/* ------------------------------------------------------------ a replay killed midway */

/* The index i of a kill-test body {"id":"kill-<round>-<i>",...}, or -1. */
static long kill_index(const char *body, int round)
{
    char prefix[32];
    size_t len = (size_t)snprintf(prefix, sizeof(prefix), "{\"id\":\"kill-%d-", round);
    char *end;
    long i;

    if (strncmp(body, prefix, len) != 0)
        return -1;
    i = strtol(body + len, &end, 10);
    return *end == '"' && i >= 0 && i < KILL_N ? i : -1;
}

/* Fill the empty dead-letter queue with KILL_N invalid payments, dead-lettered by a worker. */
static void fill_kill(int round)
{
    lqt_worker *w;

    for (int i = 0; i < KILL_N; i++) {
        char body[128];
        lqt_msg m = {0};
        snprintf(body, sizeof(body), "{\"id\":\"kill-%d-%d\",\"amount\":0}", round, i);
        m.body = body;
        m.routing_key = "payment.kill";
        lqt_send(ns, &m);
    }
    lqt_confirm(ns);
    w = lqt_worker_start(ns, NULL);
    lqt_wait_queue_ready(ns, ns->dlq, KILL_N);
    ck_assert_int_eq(lqt_worker_stop(w), 0);
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->queue, NULL), 0);
}

/* When to kill the replay. */
typedef enum { KILL_AFTER_DELAY, KILL_AT_HALF, KILL_AT_ALL } kill_moment;

static const char *const moment_names[] = {"after a random delay (reading the queue)",
                                           "with half the copies upstream (publishing)",
                                           "with every copy upstream (confirming, removing)"};

/*
 * Run `dlq replay --all`, SIGKILL it at the moment given, then check that
 * no message was lost: each is still in the dead-letter queue (once, in
 * its old order) or has a copy in the work queue; then a second replay
 * finishes the job.
 */
static void replay_killed(int round, kill_moment moment, const snapshot *before)
{
    const char *const args[] = {"dlq", "replay", "--all", NULL};
    char name[64], log[600];
    lq_amqp *c = lqt_amqp_connect();
    int64_t start, deadline;
    int status, delay = rand() % 400;
    uint32_t upstream = 0;
    bool finished = false;
    snapshot dead, work;
    unsigned char *seen_dead = calloc(KILL_N, 1), *seen_work = calloc(KILL_N, 1);
    size_t covered = 0, dups_upstream = 0, next_pos = 0;
    lqt_output o;
    pid_t pid;

    ck_assert_msg(seen_dead && seen_work, "out of memory");
    snprintf(name, sizeof(name), "replay-kill-%d.log", round);
    snprintf(log, sizeof(log), "%s", lqt_write_file(ns, name, ""));

    pid = lqt_start(ns, log, args);
    start = lqt_now_ms();
    deadline = start + LQT_WAIT_S * 1000;
    for (;;) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            finished = true;
            break;
        }
        ck_assert_msg(lqt_now_ms() < deadline,
                      "the replay neither finished nor reached the moment");
        if (moment == KILL_AFTER_DELAY) {
            if (lqt_now_ms() - start >= delay)
                break;
            lqt_sleep_ms(1);
            continue;
        }
        ck_assert_msg(lq_amqp_queue_depth(c, ns->queue, &upstream) == LQ_OK, "queue depth: %s",
                      lq_amqp_error(c));
        if (upstream >= (moment == KILL_AT_HALF ? KILL_N / 2 : KILL_N))
            break;
    }
    if (!finished) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    lq_amqp_close(c);
    printf("dlq: round %d: replay killed %s (%" PRId64 " ms, %u copies upstream seen): %s\n", round,
           moment_names[moment], lqt_now_ms() - start, upstream,
           finished ? "it had finished already" : "killed");
    ck_assert_msg(finished ? WIFEXITED(status) && WEXITSTATUS(status) == 0
                           : WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "round %d: the replay ended with status 0x%x", round, status);

    /* The broker has given back what the dead connection held. */
    {
        uint32_t last = UINT32_MAX, now;
        int64_t settle = lqt_now_ms() + LQT_WAIT_S * 1000;
        for (;;) {
            now = lqt_queue_ready(ns, ns->dlq, NULL);
            if (now == last)
                break;
            ck_assert_msg(lqt_now_ms() < settle, "the dead-letter queue never settled");
            last = now;
            lqt_sleep_ms(300);
        }
    }

    snapshot_take(ns->dlq, &dead);
    snapshot_take(ns->queue, &work);
    for (size_t i = 0; i < dead.n; i++) {
        long k = kill_index(dead.body[i], round);
        ck_assert_msg(k >= 0, "round %d: a stranger in the dead-letter queue: %s", round,
                      dead.body[i]);
        ck_assert_msg(!seen_dead[k], "round %d: the dead-letter queue holds %s twice", round,
                      dead.body[i]);
        seen_dead[k] = 1;
        /* Old order kept: what is left is a subsequence of what was there. */
        while (next_pos < before->n && strcmp(before->body[next_pos], dead.body[i]) != 0)
            next_pos++;
        ck_assert_msg(next_pos < before->n,
                      "round %d: the dead-letter queue was reordered: %s is out of place "
                      "(position %zu)",
                      round, dead.body[i], i + 1);
        next_pos++;
    }
    for (size_t i = 0; i < work.n; i++) {
        long k = kill_index(work.body[i], round);
        ck_assert_msg(k >= 0, "round %d: a stranger in the work queue: %s", round, work.body[i]);
        dups_upstream += seen_work[k];
        seen_work[k] = 1;
    }
    for (long k = 0; k < KILL_N; k++) {
        ck_assert_msg(seen_dead[k] || seen_work[k],
                      "round %d: kill-%d-%ld is lost: neither in the dead-letter queue (%zu "
                      "messages) nor upstream (%zu)",
                      round, round, k, dead.n, work.n);
        covered++;
    }
    printf("dlq: round %d: %zu left in the dead-letter queue, %zu upstream (%zu duplicates), "
           "%zu of %d accounted for\n",
           round, dead.n, work.n, dups_upstream, covered, KILL_N);

    /*
     * Replaying again finishes the job: it replays exactly what was left,
     * all of it reaches the work queue, the dead-letter queue ends empty.
     */
    lqt_run(ns, &o, "dlq", "replay", "--all");
    snprintf(name, sizeof(name), "replayed %zu, kept 0\n", dead.n);
    ck_assert_msg(o.status == 0 && strcmp(o.out, name) == 0,
                  "round %d: the replay after the kill exited %d, printed \"%s\" (expected "
                  "\"%s\"): %s",
                  round, o.status, o.out, name, o.err);
    lqt_output_release(&o);
    wait_settled(ns->dlq, 0);
    wait_settled(ns->queue, (uint32_t)(work.n + dead.n));
    snapshot_release(&dead);
    snapshot_release(&work);
    free(seen_dead);
    free(seen_work);
}

START_TEST(test_replay_killed)
{
    static const kill_moment moments[KILL_ROUNDS] = {KILL_AFTER_DELAY, KILL_AT_HALF, KILL_AT_ALL};
    snapshot before;

    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    for (int round = 0; round < KILL_ROUNDS; round++) {
        fill_kill(round);
        snapshot_take(ns->dlq, &before);
        ck_assert_uint_eq(before.n, KILL_N);
        replay_killed(round, moments[round], &before);
        snapshot_release(&before);
        lqt_purge(ns, ns->queue);
    }
}
END_TEST

/* ------------------------------------------------------------ usage and failures */

START_TEST(test_usage)
{
    const char *const no_dlq[] = {"LEDGERQ_DLQ=nope", NULL};
    static const char *const bad[][8] = {
        {"dlq", NULL},
        {"dlq", "frobnicate", NULL},
        {"dlq", "replay", NULL},
        {"dlq", "replay", "--dry-run", NULL},
        {"dlq", "replay", "--all", "--error", "invalid_payment", NULL},
        {"dlq", "replay", "--id", "a", "--all", NULL},
        {"dlq", "replay", "--all", "extra", NULL},
        {"dlq", "purge", "--yes", NULL},
        {"dlq", "purge", "--error", "invalid_payment", "--all", "--yes", NULL},
        {"dlq", "list", "--limit", "abc", NULL},
        {"dlq", "list", "--limit", "0", NULL},
        {"dlq", "list", "--limit", "-1", NULL},
        {"dlq", "list", "extra", NULL},
        {"dlq", "show", NULL},
        {"dlq", "list", "--bogus", NULL},
    };
    static const char *const missing[][6] = {
        {"dlq", "list", NULL},
        {"dlq", "stats", "--json", NULL},
        {"dlq", "show", "1", NULL},
        {"dlq", "replay", "--all", NULL},
        {"dlq", "purge", "--all", "--yes", NULL},
    };
    lqt_output o;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *const *a = bad[i];
        char what[256] = "`ledgerq";
        for (size_t k = 0; a[k]; k++) {
            size_t used = strlen(what);
            snprintf(what + used, sizeof(what) - used, " %s", a[k]);
        }
        strncat(what, "`", sizeof(what) - strlen(what) - 1);
        lqt_run(ns, &o, a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
        expect_failure(&o, 2, "", what);
        lqt_output_release(&o);
    }

    /* A dead-letter queue that does not exist: a failure naming it, for every command. */
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        const char *const *a = missing[i];
        char what[128];
        snprintf(what, sizeof(what), "`ledgerq dlq %s` with LEDGERQ_DLQ=nope", a[1]);
        lqt_run_env(ns, no_dlq, &o, a[0], a[1], a[2], a[3], a[4], (const char *)NULL);
        expect_failure(&o, 1, "\"nope\"", what);
        lqt_output_release(&o);
    }

    lqt_run(ns, &o, "dlq", "--help");
    ck_assert_msg(o.status == 0 && strstr(o.out, "usage: ledgerq dlq"),
                  "`dlq --help` exited %d: %s", o.status, o.out);
    lqt_output_release(&o);

    /* An empty queue is not an error. */
    lqt_run(ns, &o, "dlq", "replay", "--all");
    expect_output(&o, "replayed 0, kept 0\n", "`dlq replay --all` of an empty queue");
    lqt_output_release(&o);
    lqt_run(ns, &o, "dlq", "list");
    ck_assert_msg(o.status == 0 && strncmp(o.out, "POS", 3) == 0 && strchr(o.out, '\n')[1] == '\0',
                  "`dlq list` of an empty queue exited %d: %s", o.status, o.out);
    lqt_output_release(&o);
}
END_TEST

/* ------------------------------------------------------------ the suite */

int main(void)
{
    const lqt_suite suite = {.name = "dlq", .timeout_s = TIMEOUT_S, .ns = &ns};
    const lqt_case cases[] = {
        LQT_CASE("list", test_list),   LQT_CASE("show", test_show),
        LQT_CASE("stats", test_stats), LQT_CASE("replay", test_replay),
        LQT_CASE("purge", test_purge), LQT_CASE("replay_killed", test_replay_killed),
        LQT_CASE("usage", test_usage),
    };

    return LQT_MAIN(suite, cases);
}
