/*
 * `ledgerq dlq list|show|stats|replay|purge`: operate the dead-letter queue
 * (docs/protocol.md section 9).
 *
 * How a peek stays harmless: the dead-letter queue is a classic queue.
 * Every command takes the messages it looks at with basic.get and manual
 * acks, and never acks what it does not remove: when the connection
 * closes (normally or because the command was killed), the broker puts
 * those messages back at their original positions.  Classic queues keep no
 * delivery count, so looking never brings a message nearer to any limit.
 * Replay publishes a copy with confirms before it acks the original: a
 * kill in between leaves the message in the queue and maybe a copy
 * upstream, and a duplicate command is harmless (docs/protocol.md section 5).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledgerq/amqp.h"
#include "ledgerq/cli.h"
#include "ledgerq/error.h"
#include "ledgerq/json.h"
#include "ledgerq/message.h"

#define CONFIRM_TIMEOUT_MS 60000

static const char dlq_synopsis[] =
    "list [--limit N] [--error CODE] [--json] | show N|--id ID | stats [--json] | "
    "replay (--id ID...|--error CODE|--all) [--dry-run] | "
    "purge (--id ID...|--error CODE|--all) --yes [--dry-run]";

static const lq_cli_option dlq_options[] = {
    {"limit", true, "N  list at most N messages"},
    {"error", true, "CODE  only messages with this error code or x-death reason"},
    {"id", true, "ID  a message_id or payment id (replay and purge take several)"},
    {"all", false, "every message (replay, purge)"},
    {"yes", false, "really purge"},
    {"dry-run", false, "say what replay or purge would do, change nothing"},
    {"json", false, "print JSON (list, show, stats)"},
    {NULL, false, NULL},
};

/* What the commands know of one dead-lettered message. */
typedef struct dead {
    lq_delivery *d;
    size_t position; /* 1-based, head of the queue first */
    char payment_id[LQ_ID_MAX + 1];
    char error[64]; /* x-ledgerq-error; "" when the broker dead-lettered it */
    char detail[LQ_DETAIL_MAX];
    char failed_at[40];
    int64_t attempts;
    bool has_x_death;
    lq_x_death x_death;
    const char *target_exchange; /* where a replay goes; NULL when unknown */
    const char *target_key;
    char orig_exchange[256], orig_key[256];
} dead;

typedef struct dlq {
    lq_amqp *amqp;
    dead *msgs;
    size_t n;
} dlq;

static void describe(dead *m)
{
    const lq_delivery *d = m->d;

    if (!lq_message_peek_id(d->body, d->body_len, m->payment_id))
        m->payment_id[0] = '\0';
    if (!lq_delivery_header_string(d, "x-ledgerq-error", m->error, sizeof(m->error)))
        m->error[0] = '\0';
    if (!lq_delivery_header_string(d, "x-ledgerq-error-detail", m->detail, sizeof(m->detail)))
        m->detail[0] = '\0';
    if (!lq_delivery_header_string(d, "x-ledgerq-failed-at", m->failed_at, sizeof(m->failed_at)))
        m->failed_at[0] = '\0';
    if (!lq_delivery_header_int(d, "x-ledgerq-attempts", &m->attempts))
        m->attempts = 0;
    m->has_x_death = lq_delivery_x_death(d, &m->x_death);
    if (m->has_x_death) {
        if (!m->failed_at[0] && m->x_death.time > 0) {
            time_t t = (time_t)m->x_death.time;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(m->failed_at, sizeof(m->failed_at), "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        if (!m->attempts)
            m->attempts = m->x_death.count;
    }
    if (lq_delivery_header_string(d, "x-ledgerq-original-exchange", m->orig_exchange,
                                  sizeof(m->orig_exchange)) &&
        lq_delivery_header_string(d, "x-ledgerq-original-routing-key", m->orig_key,
                                  sizeof(m->orig_key))) {
        m->target_exchange = m->orig_exchange;
        m->target_key = m->orig_key;
    } else if (m->has_x_death) {
        m->target_exchange = m->x_death.exchange;
        m->target_key = m->x_death.routing_key;
    }
}

/* The x-death reason, or NULL. */
static const char *reason_of(const dead *m)
{
    return m->has_x_death && m->x_death.reason[0] ? m->x_death.reason : NULL;
}

/*
 * Take up to limit messages of the queue (all: 0), unacked, in queue
 * order.  Only what was there when we looked: later arrivals stay.
 */
static int load(dlq *q, const lq_config *cfg, size_t limit)
{
    char err[512];
    uint32_t depth = 0;
    int r;

    if (lq_amqp_connect_config(cfg, 0, &q->amqp, err, sizeof(err)) != LQ_OK) {
        lq_cli_fail("%s", err);
        return LQ_ERR_AMQP_UNAVAILABLE;
    }
    r = lq_amqp_queue_depth(q->amqp, cfg->dlq, &depth);
    if (r != LQ_OK) {
        lq_cli_fail(r == LQ_ERR_NOT_FOUND ? "the dead-letter queue \"%s\" does not exist"
                                          : "could not look at the dead-letter queue \"%s\": %s",
                    cfg->dlq, lq_amqp_error(q->amqp));
        return r;
    }
    if (limit && limit < depth)
        depth = (uint32_t)limit;
    q->msgs = calloc(depth ? depth : 1, sizeof(*q->msgs));
    if (q->msgs == NULL) {
        lq_cli_fail("out of memory");
        return LQ_ERR_NOMEM;
    }
    while (q->n < depth) {
        dead *m = &q->msgs[q->n];
        r = lq_amqp_get(q->amqp, cfg->dlq, &m->d);
        if (r == LQ_ERR_NOT_FOUND)
            break;
        if (r != LQ_OK) {
            lq_cli_fail("could not read the dead-letter queue: %s", lq_amqp_error(q->amqp));
            return r;
        }
        m->position = ++q->n;
        describe(m);
    }
    return LQ_OK;
}

/* Close: everything not acked goes back to where it was. */
static void release(dlq *q)
{
    for (size_t i = 0; i < q->n; i++)
        lq_delivery_free(q->msgs[i].d);
    free(q->msgs);
    lq_amqp_close(q->amqp);
}

static bool matches_id(const dead *m, const char *id)
{
    return (m->d->message_id && strcmp(m->d->message_id, id) == 0) ||
           (m->payment_id[0] && strcmp(m->payment_id, id) == 0);
}

static bool matches_error(const dead *m, const char *code)
{
    const char *reason = reason_of(m);
    return strcmp(m->error, code) == 0 || (reason && strcmp(reason, code) == 0);
}

/* The selection of replay and purge. */
typedef struct selection {
    const char **ids; /* every --id value and the positional arguments after them */
    int n_ids;
    const char *error;
    bool all;
} selection;

static bool selected(const dead *m, const selection *s)
{
    if (s->all)
        return true;
    if (s->error)
        return matches_error(m, s->error);
    for (int i = 0; i < s->n_ids; i++) {
        if (matches_id(m, s->ids[i]))
            return true;
    }
    return false;
}

static void entry_json(lq_json *j, const dead *m)
{
    lq_json_object_begin(j);
    lq_json_key(j, "position");
    lq_json_uint(j, m->position);
    lq_json_key(j, "message_id");
    lq_json_string(j, m->d->message_id);
    lq_json_key(j, "payment_id");
    lq_json_string(j, m->payment_id[0] ? m->payment_id : NULL);
    lq_json_key(j, "error");
    lq_json_string(j, m->error[0] ? m->error : NULL);
    lq_json_key(j, "reason");
    lq_json_string(j, reason_of(m));
    lq_json_key(j, "detail");
    lq_json_string(j, m->detail[0] ? m->detail : NULL);
    lq_json_key(j, "failed_at");
    lq_json_string(j, m->failed_at[0] ? m->failed_at : NULL);
    lq_json_key(j, "attempts");
    lq_json_int(j, m->attempts);
    lq_json_key(j, "size");
    lq_json_uint(j, m->d->body_len);
    lq_json_object_end(j);
}

static int cmd_list(dlq *q, const lq_cli_args *args)
{
    const char *error = lq_cli_value(args, dlq_options, "error");
    const char *limit_s = lq_cli_value(args, dlq_options, "limit");
    size_t limit = 0, shown = 0;
    bool json = lq_cli_value(args, dlq_options, "json") != NULL;
    lq_json j;

    if (limit_s) {
        char *end;
        limit = strtoul(limit_s, &end, 10);
        if (*end || end == limit_s || limit == 0 || limit_s[0] == '-') {
            lq_cli_fail("invalid value for --limit: \"%.20s\" (expected a whole number from 1)",
                        limit_s);
            return LQ_EXIT_USAGE;
        }
    }
    if (load(q, &args->cfg, error ? 0 : limit) != LQ_OK)
        return LQ_EXIT_FAILURE;
    lq_json_init(&j);
    lq_json_array_begin(&j);
    if (!json)
        printf("%-5s %-36s %-26s %-27s %-8s %-7s %s\n", "POS", "PAYMENT_ID", "ERROR", "FAILED_AT",
               "ATTEMPTS", "SIZE", "DETAIL");
    for (size_t i = 0; i < q->n && (!limit || shown < limit); i++) {
        const dead *m = &q->msgs[i];
        const char *what = m->error[0] ? m->error : reason_of(m);
        if (error && !matches_error(m, error))
            continue;
        shown++;
        if (json) {
            entry_json(&j, m);
            continue;
        }
        printf("%-5zu %-36s %-26s %-27s %-8" PRId64 " %-7zu %s\n", m->position,
               m->payment_id[0] ? m->payment_id : "-", what ? what : "-",
               m->failed_at[0] ? m->failed_at : "-", m->attempts, m->d->body_len, m->detail);
    }
    lq_json_array_end(&j);
    if (json)
        return lq_cli_print_json(&j);
    lq_json_release(&j);
    return LQ_EXIT_OK;
}

static int cmd_show(dlq *q, const lq_cli_args *args)
{
    const char *id = lq_cli_value(args, dlq_options, "id");
    size_t want = 0;
    const dead *m = NULL;
    char *headers, *pretty;

    if (id == NULL) {
        char *end;
        if (args->n_rest != 2 || (want = strtoul(args->rest[1], &end, 10)) == 0 || *end) {
            lq_cli_fail("dlq show: give a position (1, 2, ...) or --id ID");
            return LQ_EXIT_USAGE;
        }
    }
    if (load(q, &args->cfg, want) != LQ_OK)
        return LQ_EXIT_FAILURE;
    for (size_t i = 0; i < q->n && m == NULL; i++) {
        if ((want && q->msgs[i].position == want) || (id && matches_id(&q->msgs[i], id)))
            m = &q->msgs[i];
    }
    if (m == NULL) {
        if (id)
            lq_cli_fail("no message with id \"%s\" in the dead-letter queue", id);
        else
            lq_cli_fail("the dead-letter queue holds %zu message%s, not %zu", q->n,
                        q->n == 1 ? "" : "s", want);
        return LQ_EXIT_FAILURE;
    }
    headers = lq_delivery_headers_json(m->d);
    pretty = lq_message_pretty(m->d->body, m->d->body_len);
    printf("position:     %zu\n", m->position);
    printf("message_id:   %s\n", m->d->message_id ? m->d->message_id : "-");
    printf("payment_id:   %s\n", m->payment_id[0] ? m->payment_id : "-");
    printf("error:        %s\n", m->error[0] ? m->error : "-");
    printf("reason:       %s\n", reason_of(m) ? reason_of(m) : "-");
    printf("detail:       %s\n", m->detail[0] ? m->detail : "-");
    printf("failed_at:    %s\n", m->failed_at[0] ? m->failed_at : "-");
    printf("attempts:     %" PRId64 "\n", m->attempts);
    printf("exchange:     %s (routing key %s)\n", m->d->exchange, m->d->routing_key);
    printf("content_type: %.*s\n", m->d->content_type ? (int)m->d->content_type_len : 1,
           m->d->content_type ? m->d->content_type : "-");
    printf("size:         %zu bytes\n", m->d->body_len);
    printf("headers:      %s\n", headers ? headers : "?");
    if (pretty)
        printf("body:\n%s\n", pretty);
    else
        printf("body (not JSON, %zu bytes):\n%.*s\n", m->d->body_len, (int)m->d->body_len,
               m->d->body);
    free(headers);
    free(pretty);
    return LQ_EXIT_OK;
}

/* Count by key into parallel arrays (few distinct keys: a linear search is fine). */
typedef struct tally {
    const char *keys[64];
    size_t counts[64];
    size_t n;
} tally;

static void count(tally *t, const char *key)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->keys[i], key) == 0) {
            t->counts[i]++;
            return;
        }
    }
    if (t->n < 64) {
        t->keys[t->n] = key;
        t->counts[t->n++] = 1;
    }
}

static void tally_json(lq_json *j, const tally *t)
{
    lq_json_object_begin(j);
    for (size_t i = 0; i < t->n; i++) {
        lq_json_key(j, t->keys[i]);
        lq_json_uint(j, t->counts[i]);
    }
    lq_json_object_end(j);
}

static int cmd_stats(dlq *q, const lq_cli_args *args)
{
    tally by_error = {0}, by_reason = {0};
    lq_json j;

    if (load(q, &args->cfg, 0) != LQ_OK)
        return LQ_EXIT_FAILURE;
    for (size_t i = 0; i < q->n; i++) {
        if (q->msgs[i].error[0])
            count(&by_error, q->msgs[i].error);
        if (reason_of(&q->msgs[i]))
            count(&by_reason, reason_of(&q->msgs[i]));
    }
    if (lq_cli_value(args, dlq_options, "json")) {
        lq_json_init(&j);
        lq_json_object_begin(&j);
        lq_json_key(&j, "total");
        lq_json_uint(&j, q->n);
        lq_json_key(&j, "by_error");
        tally_json(&j, &by_error);
        lq_json_key(&j, "by_reason");
        tally_json(&j, &by_reason);
        lq_json_object_end(&j);
        return lq_cli_print_json(&j);
    }
    printf("total: %zu\n", q->n);
    for (size_t i = 0; i < by_error.n; i++)
        printf("error %-26s %zu\n", by_error.keys[i], by_error.counts[i]);
    for (size_t i = 0; i < by_reason.n; i++)
        printf("reason %-25s %zu\n", by_reason.keys[i], by_reason.counts[i]);
    return LQ_EXIT_OK;
}

/*
 * Every value of --id in argv, in order, into ret_ids (argc entries):
 * lq_cli_parse() keeps only the last value of an option given twice, and
 * `--id A --id B` must name both.  Walks argv as lq_cli_parse() does: an
 * option without a value (a flag) takes nothing, any other --option takes
 * the next argument unless written --option=value.
 */
static int collect_ids(int argc, char **argv, const char **ret_ids)
{
    int n = 0;

    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        bool flag = false;

        if (strcmp(arg, "--") == 0)
            break;
        if (strncmp(arg, "--", 2) != 0)
            continue;
        arg += 2;
        if (strncmp(arg, "id=", 3) == 0) {
            ret_ids[n++] = arg + 3;
            continue;
        }
        if (strchr(arg, '=') != NULL)
            continue;
        for (const lq_cli_option *o = dlq_options; o->name && !flag; o++)
            flag = !o->has_arg && strcmp(o->name, arg) == 0;
        if (flag || i + 1 >= argc)
            continue;
        if (strcmp(arg, "id") == 0)
            ret_ids[n++] = argv[i + 1];
        i++;
    }
    return n;
}

/* Parse the selection of replay and purge; exactly one kind.  ids: argc + 1 entries. */
static bool parse_selection(const lq_cli_args *args, int argc, char **argv, const char **ids,
                            selection *s)
{
    const char *id = lq_cli_value(args, dlq_options, "id");
    int kinds;

    memset(s, 0, sizeof(*s));
    s->error = lq_cli_value(args, dlq_options, "error");
    s->all = lq_cli_value(args, dlq_options, "all") != NULL;
    if (id) {
        /* --id A B --id C: the values of --id, and the positional arguments after them. */
        s->ids = ids;
        s->n_ids = collect_ids(argc, argv, ids);
        for (int i = 1; i < args->n_rest; i++)
            ids[s->n_ids++] = args->rest[i];
    } else if (args->n_rest > 1) {
        lq_cli_fail("dlq %s: unexpected argument \"%s\"", args->rest[0], args->rest[1]);
        return false;
    }
    kinds = (id != NULL) + (s->error != NULL) + s->all;
    if (kinds != 1) {
        lq_cli_fail("dlq %s: say which messages: --id ID..., --error CODE or --all", args->rest[0]);
        return false;
    }
    return true;
}

/*
 * Whether m's origin is known: a named exchange, or the default exchange
 * ("") with the name of the queue it was sent to as its routing key.
 */
static bool replayable(const dead *m)
{
    return m->target_exchange != NULL &&
           (m->target_exchange[0] != '\0' || (m->target_key && m->target_key[0] != '\0'));
}

static int cmd_replay(dlq *q, const lq_cli_args *args, const selection *s)
{
    bool dry = lq_cli_value(args, dlq_options, "dry-run") != NULL;
    size_t replayed = 0, skipped = 0;
    uint64_t returned;
    int r;

    if (load(q, &args->cfg, 0) != LQ_OK)
        return LQ_EXIT_FAILURE;
    returned = lq_amqp_returned(q->amqp);
    for (size_t i = 0; i < q->n; i++) {
        dead *m = &q->msgs[i];
        if (!selected(m, s))
            continue;
        if (!replayable(m)) {
            fprintf(stderr, "ledgerq: message %zu: no original exchange recorded, kept\n",
                    m->position);
            skipped++;
            continue;
        }
        if (dry) {
            printf("would replay message %zu (%s) to %s with routing key %s\n", m->position,
                   m->payment_id[0] ? m->payment_id : "-", m->target_exchange, m->target_key);
            replayed++;
            continue;
        }
        r = lq_amqp_republish(q->amqp, m->d, m->target_exchange, m->target_key, NULL);
        if (r != LQ_OK) {
            lq_cli_fail("could not replay: %s; nothing was removed", lq_amqp_error(q->amqp));
            return LQ_EXIT_FAILURE;
        }
        replayed++;
    }
    if (dry) {
        printf("dry run: would replay %zu, keep %zu\n", replayed, q->n - replayed);
        return LQ_EXIT_OK;
    }
    r = lq_amqp_wait_confirms(q->amqp, CONFIRM_TIMEOUT_MS);
    if (r != LQ_OK || lq_amqp_returned(q->amqp) != returned) {
        lq_cli_fail("the broker did not accept every replayed message (%s); nothing was removed",
                    r != LQ_OK ? lq_strerror(r) : "unroutable: is the original exchange bound?");
        return LQ_EXIT_FAILURE;
    }
    /* Confirmed upstream: only now remove the originals. */
    for (size_t i = 0; i < q->n; i++) {
        dead *m = &q->msgs[i];
        if (selected(m, s) && replayable(m) && lq_amqp_ack(q->amqp, m->d->tag, false) != LQ_OK) {
            lq_cli_fail("could not remove replayed messages: %s (they stay in the queue; "
                        "replaying them again is harmless)",
                        lq_amqp_error(q->amqp));
            return LQ_EXIT_FAILURE;
        }
    }
    printf("replayed %zu, kept %zu%s\n", replayed, q->n - replayed,
           skipped ? " (some had no original exchange)" : "");
    return skipped ? LQ_EXIT_FAILURE : LQ_EXIT_OK;
}

static int cmd_purge(dlq *q, const lq_cli_args *args, const selection *s)
{
    bool dry = lq_cli_value(args, dlq_options, "dry-run") != NULL;
    size_t purged = 0;

    if (!dry && lq_cli_value(args, dlq_options, "yes") == NULL) {
        lq_cli_fail("dlq purge removes messages for good: add --yes (or try --dry-run)");
        return LQ_EXIT_USAGE;
    }
    if (load(q, &args->cfg, 0) != LQ_OK)
        return LQ_EXIT_FAILURE;
    for (size_t i = 0; i < q->n; i++) {
        dead *m = &q->msgs[i];
        if (!selected(m, s))
            continue;
        if (dry) {
            printf("would purge message %zu (%s)\n", m->position,
                   m->payment_id[0] ? m->payment_id : "-");
        } else if (lq_amqp_ack(q->amqp, m->d->tag, false) != LQ_OK) {
            lq_cli_fail("could not purge: %s (%zu purged before)", lq_amqp_error(q->amqp), purged);
            return LQ_EXIT_FAILURE;
        }
        purged++;
    }
    printf("%s %zu, kept %zu\n", dry ? "dry run: would purge" : "purged", purged, q->n - purged);
    return LQ_EXIT_OK;
}

int lq_cmd_dlq(int argc, char **argv)
{
    lq_cli_args args;
    dlq q;
    selection s;
    const char *sub, **ids = NULL;
    int rc = lq_cli_parse("dlq", dlq_synopsis, dlq_options, argc, argv, &args);

    memset(&q, 0, sizeof(q));
    if (rc != LQ_CLI_CONTINUE)
        goto out;
    ids = calloc((size_t)argc + 1, sizeof(*ids));
    if (ids == NULL) {
        lq_cli_fail("out of memory");
        rc = LQ_EXIT_FAILURE;
        goto out;
    }
    rc = LQ_EXIT_USAGE;
    if (args.n_rest < 1) {
        lq_cli_fail("dlq: missing subcommand (list, show, stats, replay, purge)");
        goto out;
    }
    sub = args.rest[0];
    if (strcmp(sub, "list") == 0 || strcmp(sub, "stats") == 0) {
        if (!lq_cli_want_args("dlq", &args, 1, 1))
            goto out;
        rc = sub[0] == 'l' ? cmd_list(&q, &args) : cmd_stats(&q, &args);
    } else if (strcmp(sub, "show") == 0) {
        rc = cmd_show(&q, &args);
    } else if (strcmp(sub, "replay") == 0 || strcmp(sub, "purge") == 0) {
        if (!parse_selection(&args, argc, argv, ids, &s))
            goto out;
        rc = sub[0] == 'r' ? cmd_replay(&q, &args, &s) : cmd_purge(&q, &args, &s);
    } else {
        lq_cli_fail("dlq: unknown subcommand \"%s\" (list, show, stats, replay, purge)", sub);
    }
out:
    release(&q);
    free(ids);
    lq_cli_args_release(&args);
    return rc;
}
