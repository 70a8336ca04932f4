/*
 * One worker, one command at a time (see session.h).
 */
#include <check.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "session.h"

void lqt_session_start(lqt_session *s, lqt_ns *ns)
{
    s->ns = ns;
    s->events = lqt_listen(ns);
    s->worker = lqt_worker_start(ns, NULL);
    s->awaited = 0;
}

void lqt_expect_audit_ok(lqt_ns *ns)
{
    lqt_output o;

    lqt_run(ns, &o, "audit");
    ck_assert_msg(o.status == 0, "audit exited %d: %s%s", o.status, o.out, o.err);
    lqt_output_release(&o);
}

void lqt_session_finish(lqt_session *s, size_t n_accounts)
{
    lqt_drain_events(s->events, 300);
    ck_assert_msg(lqt_event_count(s->events) == s->awaited,
                  "%zu result events came, %zu were expected (the last: %s)",
                  lqt_event_count(s->events), s->awaited,
                  lqt_event_count(s->events)
                      ? lqt_event_at(s->events, lqt_event_count(s->events) - 1)->body
                      : "none");
    ck_assert_int_eq(lqt_worker_stop(s->worker), 0);
    s->worker = NULL;
    lqt_expect_audit_ok(s->ns);
    ck_assert_uint_eq(lqt_expect_histories_consistent(s->ns), n_accounts);
}

/* ------------------------------------------------------------ commands */

/* The body of a command written with ' for ".  Static storage, one at a time. */
static const char *body_of(const char *fmt, va_list ap)
{
    static char body[4096];
    int n = vsnprintf(body, sizeof(body), fmt, ap);

    ck_assert_msg(n > 0 && (size_t)n < sizeof(body), "a command body too long for the test");
    for (char *p = body; *p; p++) {
        if (*p == '\'')
            *p = '"';
    }
    return body;
}

const lqt_event *lqt_command(lqt_session *s, const char *routing_key, const char *fmt, ...)
{
    va_list ap;
    const char *body;

    va_start(ap, fmt);
    body = body_of(fmt, ap);
    va_end(ap);
    lqt_publish(s->ns, &(lqt_msg){.body = body, .routing_key = routing_key});
    lqt_wait_events(s->events, ++s->awaited);
    return lqt_event_at(s->events, s->awaited - 1);
}

void lqt_queue(lqt_ns *ns, const char *routing_key, const char *fmt, ...)
{
    va_list ap;
    const char *body;

    va_start(ap, fmt);
    body = body_of(fmt, ap);
    va_end(ap);
    lqt_send(ns, &(lqt_msg){.body = body, .routing_key = routing_key});
}

const lqt_event *lqt_event_of(const lqt_session *s, const char *id, size_t nth)
{
    const lqt_event *e = lqt_event_find(s->events, id, nth);

    ck_assert_msg(e != NULL, "no event #%zu for %s", nth + 1, id);
    return e;
}

/* The first word of the result routing keys of a command type (docs/protocol.md section 12). */
static const char *family_of(const char *type)
{
    if (strcmp(type, "transfer") == 0)
        return "payment";
    if (strncmp(type, "account.", 8) == 0)
        return "account";
    ck_assert_msg(strcmp(type, "hold") == 0 || strcmp(type, "capture") == 0 ||
                      strcmp(type, "void") == 0,
                  "the test expects an event of an unknown type \"%s\"", type);
    return type;
}

void lqt_expect_event(const lqt_event *e, const char *id, const char *type, const char *status,
                      const char *reason, const char *detail, bool duplicate)
{
    char key[64];

    ck_assert_msg(strcmp(e->id, id) == 0, "the event of %s came for %s: %s", id, e->id, e->body);
    ck_assert_msg(strcmp(e->type, type) == 0, "%s: type \"%s\", expected \"%s\": %s", id, e->type,
                  type, e->body);
    ck_assert_msg(strcmp(e->status, status) == 0, "%s: status \"%s\", expected \"%s\": %s", id,
                  e->status, status, e->body);
    if (reason == NULL)
        ck_assert_msg(e->reason_null, "%s: reason should be null: %s", id, e->body);
    else
        ck_assert_msg(!e->reason_null && strcmp(e->reason, reason) == 0,
                      "%s: reason \"%s\", expected \"%s\": %s", id, e->reason, reason, e->body);
    if (detail == NULL)
        ck_assert_msg(e->detail_null, "%s: detail should be null: %s", id, e->body);
    else
        ck_assert_msg(!e->detail_null && strcmp(e->detail, detail) == 0,
                      "%s: detail \"%s\", expected \"%s\": %s", id, e->detail, detail, e->body);
    ck_assert_msg(e->duplicate == duplicate, "%s: duplicate should be %s: %s", id,
                  duplicate ? "true" : "false", e->body);
    snprintf(key, sizeof(key), "%s.%s", family_of(type), status);
    ck_assert_msg(strcmp(e->routing_key, key) == 0, "%s: routing key \"%s\", expected \"%s\"", id,
                  e->routing_key, key);
    ck_assert_msg(e->has_correlation_id && strcmp(e->correlation_id, id) == 0,
                  "%s: correlation_id \"%s\"", id, e->correlation_id);
    ck_assert_str_eq(e->content_type, "application/json");
    ck_assert_msg(e->persistent, "%s: the event is not persistent", id);
    /* The parser took "hold" and "amount" exactly on the types that carry them. */
    ck_assert_msg(e->has_hold == (strcmp(type, "capture") == 0 || strcmp(type, "void") == 0),
                  "%s: \"hold\" on an event of type %s: %s", id, type, e->body);
}

void lqt_expect_resolution(const lqt_event *e, const char *hold, int64_t amount)
{
    ck_assert_msg(e->has_hold && strcmp(e->hold, hold) == 0,
                  "%s: the event should name hold \"%s\": %s", e->id, hold, e->body);
    if (strcmp(e->type, "capture") != 0)
        return;
    if (amount < 0)
        ck_assert_msg(e->amount_null, "%s: amount should be null: %s", e->id, e->body);
    else
        ck_assert_msg(!e->amount_null && e->amount == amount,
                      "%s: amount should be %" PRId64 ": %s", e->id, amount, e->body);
}

const lqt_event *lqt_open_account(lqt_session *s, const char *id, const char *account,
                                  const char *currency, const char *extra)
{
    const lqt_event *e = lqt_command(
        s, "account.open", "{'type':'account.open','id':'%s','account':'%s','currency':'%s'%s}", id,
        account, currency, extra ? extra : "");

    LQT_APPLIED(e, id, "account.open");
    return e;
}

const lqt_event *lqt_update_account(lqt_session *s, const char *id, const char *account,
                                    const char *fields)
{
    return lqt_command(s, "account.update", "{'type':'account.update','id':'%s','account':'%s',%s}",
                       id, account, fields);
}

const lqt_event *lqt_transfer(lqt_session *s, const char *id, const char *debit, const char *credit,
                              int64_t amount, const char *currency)
{
    return lqt_command(s, "payment.submitted",
                       "{'id':'%s','debit':'%s','credit':'%s','amount':%" PRId64
                       ",'currency':'%s'}",
                       id, debit, credit, amount, currency);
}

void lqt_transfer_ok(lqt_session *s, const char *id, const char *debit, const char *credit,
                     int64_t amount)
{
    LQT_APPLIED(lqt_transfer(s, id, debit, credit, amount, "EUR"), id, "transfer");
}

/* ------------------------------------------------------------ what users see */

void lqt_expect_object(const char *json, const char *what, const char *const *pairs)
{
    cJSON *j = cJSON_Parse(json);
    size_t n_pairs = 0;

    ck_assert_msg(cJSON_IsObject(j), "%s: not a JSON object: %s", what, json);
    for (; pairs[2 * n_pairs]; n_pairs++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, pairs[2 * n_pairs]);
        char *text;
        ck_assert_msg(v != NULL, "%s: no \"%s\" in %s", what, pairs[2 * n_pairs], json);
        text = cJSON_PrintUnformatted(v);
        ck_assert_msg(strcmp(text, pairs[2 * n_pairs + 1]) == 0, "%s: \"%s\" is %s, expected %s",
                      what, pairs[2 * n_pairs], text, pairs[2 * n_pairs + 1]);
        free(text);
    }
    ck_assert_msg(cJSON_GetArraySize(j) == (int)n_pairs, "%s: %s has other members than %zu", what,
                  json, n_pairs);
    cJSON_Delete(j);
}

size_t lqt_n_entries(lqt_ns *ns, const char *account)
{
    lqt_history h;
    size_t n;

    lqt_history_all(ns, account, &h);
    n = h.n;
    lqt_history_release(&h);
    return n;
}

lqt_entry lqt_expect_entry(lqt_ns *ns, const char *account, int64_t seq, const char *command,
                           const char *type, int leg, int64_t amount, int64_t balance,
                           int64_t held_debits, int64_t held_credits, const char *const *change)
{
    lqt_history h;
    lqt_entry e;
    char what[256];

    lqt_history_all(ns, account, &h);
    ck_assert_msg(seq >= 1 && (size_t)seq <= h.n, "account %s has %zu entries, no entry %" PRId64,
                  account, h.n, seq);
    e = h.entries[seq - 1];
    lqt_history_release(&h);
    snprintf(what, sizeof(what), "account %s entry %" PRId64, account, seq);
    ck_assert_msg(strcmp(e.command, command) == 0 && strcmp(e.type, type) == 0 && e.leg == leg &&
                      e.amount == amount && e.balance == balance,
                  "%s: %s %s leg %d amount %" PRId64 " balance %" PRId64
                  ", expected %s %s leg %d amount %" PRId64 " balance %" PRId64,
                  what, e.command, e.type, e.leg, e.amount, e.balance, command, type, leg, amount,
                  balance);
    ck_assert_msg(e.held_debits == held_debits && e.held_credits == held_credits,
                  "%s (%s %s leg %d): held debits %" PRId64 " and credits %" PRId64
                  ", expected %" PRId64 " and %" PRId64,
                  what, e.command, e.type, e.leg, e.held_debits, e.held_credits, held_debits,
                  held_credits);
    if (change)
        lqt_expect_object(e.change, what, change);
    else
        ck_assert_msg(e.change[0] == '\0', "%s has a change: %s", what, e.change);
    return e;
}

char *lqt_ledger_snapshot(lqt_ns *ns)
{
    char *list = lqt_accounts_snapshot(ns);
    cJSON *j = cJSON_Parse(list);
    const cJSON *a;
    size_t len = strlen(list), cap = len + 1;
    char *all = malloc(cap);

    ck_assert_msg(cJSON_IsArray(j) && all != NULL, "`account list --json`: %.200s", list);
    memcpy(all, list, len + 1);
    cJSON_ArrayForEach(a, j)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        lqt_output o;
        size_t n;

        /* As printed: amounts past 2^53 stay exact. */
        ck_assert(cJSON_IsString(id));
        lqt_run(ns, &o, "account", "history", id->valuestring, "--json", "--limit", "1000");
        ck_assert_msg(o.status == 0, "`account history %s` exited %d: %s", id->valuestring,
                      o.status, o.err);
        n = strlen(o.out);
        if (len + n + 1 > cap) {
            cap = 2 * (len + n + 1);
            all = realloc(all, cap);
            ck_assert_ptr_nonnull(all);
        }
        memcpy(all + len, o.out, n + 1);
        len += n;
        lqt_output_release(&o);
    }
    cJSON_Delete(j);
    free(list);
    return all;
}

void lqt_expect_unchanged(lqt_ns *ns, char *before, const char *what)
{
    char *now = lqt_ledger_snapshot(ns);

    ck_assert_msg(strcmp(before, now) == 0, "%s changed the ledger:\nbefore: %s\nafter:  %s", what,
                  before, now);
    free(now);
    free(before);
}

void lqt_payment_ok(lqt_ns *ns, const char *id, lqt_payment *ret)
{
    char err[512];
    int status = lqt_payment_show(ns, id, ret, err);

    ck_assert_msg(status == 0, "`payment show %s --json` exited %d: %s", id, status, err);
}

void lqt_expect_no_account(lqt_ns *ns, const char *id)
{
    lqt_output o;
    char mention[160];
    const char *const mentions[] = {mention, NULL};

    snprintf(mention, sizeof(mention), "account \"%s\" does not exist", id);
    lqt_run(ns, &o, "account", "show", id, "--json");
    lqt_expect_failure(&o, 1, "`account show`", mentions);
    lqt_output_release(&o);
}
