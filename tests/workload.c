/* The generated workloads (see workload.h). */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "workload.h"

uint32_t lqt_rng(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (uint32_t)(*state >> 11);
}

void lqt_workload_accounts(lqt_ns *ns, lqt_workload_account *ret)
{
    char *import = malloc(LQT_WORKLOAD_ACCOUNTS * 96);
    size_t len = 0;

    ck_assert_msg(import != NULL, "out of memory");
    for (int i = 0; i < LQT_WORKLOAD_ACCOUNTS; i++) {
        lqt_workload_account *a = &ret[i];
        snprintf(a->id, sizeof(a->id), "acct:%03d", i);
        a->currency = i % 2 ? "USD" : "EUR";
        a->allow_negative = i % 10 != 0;
        a->expected = 0;
        len += (size_t)sprintf(import + len,
                               "{\"id\":\"%s\",\"currency\":\"%s\",\"allow_negative\":%s}\n", a->id,
                               a->currency, a->allow_negative ? "true" : "false");
    }
    lqt_run_ok(ns, "account", "import", "--file", lqt_write_file(ns, "accounts.jsonl", import));
    free(import);
}

void lqt_workload_payment(uint64_t *rng, int *ret_debit, int *ret_credit, int64_t *ret_amount)
{
    int debit = (int)(lqt_rng(rng) % LQT_WORKLOAD_ACCOUNTS), credit;

    /* Same parity, same currency; one pair in fifty of the others is let through. */
    do {
        credit = (int)(lqt_rng(rng) % LQT_WORKLOAD_ACCOUNTS);
    } while (credit == debit || ((credit - debit) % 2 != 0 && lqt_rng(rng) % 50 != 0));
    *ret_debit = debit;
    *ret_credit = credit;
    *ret_amount = 1 + lqt_rng(rng) % 10000;
}

void lqt_workload_json(char *out, size_t len, const char *id, const lqt_workload_account *debit,
                       const lqt_workload_account *credit, int64_t amount)
{
    snprintf(out, len,
             "{\"id\":\"%s\",\"debit\":\"%s\",\"credit\":\"%s\",\"amount\":%" PRId64
             ",\"currency\":\"%s\"}",
             id, debit->id, credit->id, amount, debit->currency);
}

void lqt_workload_check_balances(lqt_ns *ns, const lqt_workload_account *accounts)
{
    char *text = lqt_accounts_snapshot(ns);
    cJSON *list = cJSON_Parse(text), *a;
    int seen = 0;

    ck_assert_msg(cJSON_IsArray(list), "`account list --json` is not an array: %.200s", text);
    cJSON_ArrayForEach(a, list)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        const cJSON *balance = cJSON_GetObjectItemCaseSensitive(a, "balance");
        int k;
        ck_assert_msg(cJSON_IsString(id) && cJSON_IsNumber(balance), "an account: %.200s", text);
        ck_assert_msg(sscanf(id->valuestring, "acct:%d", &k) == 1 && k >= 0 &&
                          k < LQT_WORKLOAD_ACCOUNTS,
                      "unexpected account %s", id->valuestring);
        /* Well within 2^53: the double is exact. */
        ck_assert_msg((int64_t)balance->valuedouble == accounts[k].expected,
                      "account %s: balance %.0f, the outcomes add up to %" PRId64, id->valuestring,
                      balance->valuedouble, accounts[k].expected);
        seen++;
    }
    ck_assert_int_eq(seen, LQT_WORKLOAD_ACCOUNTS);
    cJSON_Delete(list);
    free(text);
}

/* ------------------------------------------------------------ flows */

/* A growing text, NUL-terminated. */
typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void text_add(text *t, const char *s)
{
    size_t n = strlen(s);

    if (t->len + n + 1 > t->cap) {
        t->cap = 2 * t->cap + n + 65536;
        t->p = realloc(t->p, t->cap);
        ck_assert_msg(t->p != NULL, "out of memory");
    }
    memcpy(t->p + t->len, s, n + 1);
    t->len += n;
}

/* Append payment p's command to a publisher file, one line. */
static void add_payment(text *t, const lqt_flow *w, const lqt_flow_payment *p)
{
    char line[512];

    lqt_workload_json(line, sizeof(line), p->id, &w->accounts[p->debit], &w->accounts[p->credit],
                      p->amount);
    text_add(t, line);
    text_add(t, "\n");
}

void lqt_flow_init(lqt_flow *w, lqt_ns *ns, size_t n, const char *const *extra)
{
    size_t n_files = 0, files_cap = 0;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    text chunk = {NULL, 0, 0};
    char name[64];

    memset(w, 0, sizeof(*w));
    w->ns = ns;
    w->rng = 0x9E3779B97F4A7C15ULL ^ seed;
    lqt_step("workload of %zu payments, seed %u", n, seed);
    lqt_workload_accounts(ns, w->accounts);

    w->n_payments = n;
    w->payments = calloc(n, sizeof(*w->payments));
    ck_assert_ptr_nonnull(w->payments);
    for (size_t i = 0; i < n; i++) {
        lqt_flow_payment *p = &w->payments[i];
        snprintf(p->id, sizeof(p->id), "pay-%05zu", i);
        lqt_workload_payment(&w->rng, &p->debit, &p->credit, &p->amount);
        p->n_sent = 1 + (i % LQT_FLOW_DUPLICATE_EVERY == 0);
    }

    /* Chunks of LQT_FLOW_CHUNK payments; a duplicate goes out two chunks after its original. */
    for (size_t c = 0; c * LQT_FLOW_CHUNK < n + 2 * LQT_FLOW_CHUNK; c++) {
        chunk.len = 0;
        text_add(&chunk, "");
        for (size_t i = c * LQT_FLOW_CHUNK; i < (c + 1) * LQT_FLOW_CHUNK && i < n; i++) {
            add_payment(&chunk, w, &w->payments[i]);
            w->n_messages++;
            if (i == n / 2) {
                for (size_t e = 0; extra && extra[e]; e++) {
                    text_add(&chunk, extra[e]);
                    text_add(&chunk, "\n");
                }
            }
        }
        for (size_t i = c >= 2 ? (c - 2) * LQT_FLOW_CHUNK : n;
             i < (c - 1) * LQT_FLOW_CHUNK && i < n; i++) {
            if (w->payments[i].n_sent < 2)
                continue;
            add_payment(&chunk, w, &w->payments[i]);
            w->n_messages++;
        }
        if (chunk.len == 0)
            continue;
        if (n_files + 2 > files_cap) {
            files_cap = files_cap ? 2 * files_cap : 64;
            w->files = realloc(w->files, files_cap * sizeof(*w->files));
            ck_assert_ptr_nonnull(w->files);
        }
        snprintf(name, sizeof(name), "chunk-%03zu.jsonl", c);
        w->files[n_files] = strdup(lqt_write_file(ns, name, chunk.p));
        ck_assert_ptr_nonnull(w->files[n_files]);
        w->files[++n_files] = NULL;
    }
    free(chunk.p);
    ck_assert_uint_ge(w->n_messages, n + n / LQT_FLOW_DUPLICATE_EVERY);
    w->events = lqt_listen_durable(ns);
}

void lqt_flow_release(lqt_flow *w)
{
    for (size_t i = 0; w->files && w->files[i]; i++)
        free(w->files[i]);
    free(w->files);
    free(w->payments);
}

void lqt_flow_start_worker(lqt_flow *w, int slot)
{
    const char *env[16];
    char app[48];
    size_t n = 0;

    ck_assert_int_lt(slot, LQT_FLOW_WORKERS_MAX);
    /* Every slot up to this one counts: lqt_flow_settle() stops them all. */
    if (slot >= w->n_workers)
        w->n_workers = slot + 1;
    for (const char *const *e = w->worker_env; e && *e && n < 14; e++)
        env[n++] = *e;
    snprintf(w->worker_app[slot], sizeof(w->worker_app[slot]), "lqt-w%d", ++w->n_started);
    snprintf(app, sizeof(app), "PGAPPNAME=%s", w->worker_app[slot]);
    env[n++] = app;
    env[n] = NULL;
    w->workers[slot] = lqt_worker_start(w->ns, env);
}

void lqt_flow_expect_consuming(lqt_flow *w)
{
    int64_t deadline = lqt_now_ms() + LQT_WAIT_S * 1000;
    uint32_t consumers = 0;

    for (int i = 0; i < w->n_workers; i++)
        ck_assert_msg(lqt_worker_running(w->workers[i]), "worker %d exited", i);
    while (!lqt_queue_exists(w->ns, w->ns->queue, &consumers) ||
           consumers != (uint32_t)w->n_workers) {
        if (lqt_now_ms() >= deadline) {
            lqt_print_logs(w->ns);
            ck_abort_msg("%u consumers on the work queue %d s after the fault, expected %d",
                         consumers, LQT_WAIT_S, w->n_workers);
        }
        lqt_sleep_ms(100);
    }
    lqt_step("%d workers consuming again", w->n_workers);
}

void lqt_flow_wait_consuming(lqt_worker *worker)
{
    lqt_worker_wait_log(worker, "consuming from queue");
}

void lqt_flow_start(lqt_flow *w, int n_workers, const char *const *worker_env, int pause_ms)
{
    ck_assert_int_le(n_workers, LQT_FLOW_WORKERS_MAX);
    w->n_workers = n_workers;
    w->worker_env = worker_env;
    for (int i = 0; i < w->n_workers; i++)
        lqt_flow_start_worker(w, i);
    w->publisher = lqt_publisher_start(w->ns, (const char *const *)w->files, pause_ms);
    lqt_step("%d workers and the publisher started (%zu messages in %s...)", w->n_workers,
             w->n_messages, w->files[0]);
}

long lqt_flow_stored(lqt_ns *ns)
{
    /* The flow's transfers: `account import` stores its account commands (no legs) there too. */
    char *v =
        lqt_sql_value(ns, "SELECT count(*) FROM payments WHERE jsonb_array_length(legs) > 0", NULL);
    long n = strtol(v, NULL, 10);

    free(v);
    return n;
}

bool lqt_flow_flowing(lqt_flow *w)
{
    return !lqt_publisher_done(w->publisher) || lqt_queue_ready(w->ns, w->ns->queue, NULL) > 0 ||
           lqt_flow_stored(w->ns) < (long)w->n_payments;
}

void lqt_flow_settle(lqt_flow *w, long expect_missing)
{
    int64_t deadline;
    long stored = 0;

    if (w->publisher) {
        int repeats = lqt_publisher_wait(w->publisher, LQT_FLOW_SETTLE_S);
        w->publisher = NULL;
        lqt_step("publisher done (%d publishes repeated)", repeats);
    }
    deadline = lqt_now_ms() + LQT_FLOW_SETTLE_S * 1000;
    while ((stored = lqt_flow_stored(w->ns)) < (long)w->n_payments - expect_missing ||
           lqt_queue_ready(w->ns, w->ns->queue, NULL) > 0) {
        if (lqt_now_ms() >= deadline) {
            lqt_print_logs(w->ns);
            ck_abort_msg("after %d s, %ld of %zu payments stored, %u messages ready",
                         LQT_FLOW_SETTLE_S, stored, w->n_payments,
                         lqt_queue_ready(w->ns, w->ns->queue, NULL));
        }
        lqt_sleep_ms(200);
    }
    lqt_step("%ld payments stored, queue drained", stored);
    for (int i = 0; i < w->n_workers; i++) {
        if (w->workers[i]) {
            lqt_flow_wait_consuming(w->workers[i]);
            ck_assert_int_eq(lqt_worker_stop(w->workers[i]), 0);
            w->workers[i] = NULL;
        }
    }
}

static int compare_payment_id(const void *key, const void *elem)
{
    return strcmp(key, ((const lqt_flow_payment *)elem)->id);
}

/* The payment of the workload with id, or NULL (ids sort as they were made). */
static lqt_flow_payment *find_payment(lqt_flow *w, const char *id)
{
    return bsearch(id, w->payments, w->n_payments, sizeof(*w->payments), compare_payment_id);
}

void lqt_flow_check(lqt_flow *w, const char *const *dead)
{
    size_t n_dead = 0, n_events, applied = 0;
    const lqt_event **index;
    uint32_t consumers;
    PGresult *res;
    lqt_output out;

    while (dead && dead[n_dead])
        n_dead++;

    /* Nothing left in the work queue, nobody consuming: nothing was left unacked. */
    ck_assert_uint_eq(lqt_queue_ready(w->ns, w->ns->queue, &consumers), 0);
    ck_assert_uint_eq(consumers, 0);

    /* Exactly one stored outcome per payment, with the legs it was sent with. */
    res = PQexec(w->ns->db,
                 "SELECT id, status, coalesce(reason, ''), legs->0->>'debit', legs->0->>'credit',"
                 " (legs->0->>'amount')::bigint, jsonb_array_length(legs),"
                 " to_char(processed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
                 " FROM payments WHERE jsonb_array_length(legs) > 0");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    ck_assert_int_eq(PQntuples(res), (int)w->n_payments);
    for (int row = 0; row < PQntuples(res); row++) {
        lqt_flow_payment *p = find_payment(w, PQgetvalue(res, row, 0));
        ck_assert_msg(p != NULL, "payments holds an id never sent: %s", PQgetvalue(res, row, 0));
        ck_assert_msg(!p->stored, "payment %s is stored twice", p->id);
        p->stored = true;
        snprintf(p->status, sizeof(p->status), "%s", PQgetvalue(res, row, 1));
        snprintf(p->reason, sizeof(p->reason), "%s", PQgetvalue(res, row, 2));
        snprintf(p->processed_at, sizeof(p->processed_at), "%s", PQgetvalue(res, row, 7));
        p->applied = strcmp(p->status, "applied") == 0;
        ck_assert_str_eq(PQgetvalue(res, row, 3), w->accounts[p->debit].id);
        ck_assert_str_eq(PQgetvalue(res, row, 4), w->accounts[p->credit].id);
        ck_assert_int_eq(strtoll(PQgetvalue(res, row, 5), NULL, 10), p->amount);
        ck_assert_str_eq(PQgetvalue(res, row, 6), "1");
        if (p->applied) {
            w->accounts[p->debit].expected -= p->amount;
            w->accounts[p->credit].expected += p->amount;
            applied++;
        }
    }
    PQclear(res);
    for (size_t i = 0; i < w->n_payments; i++)
        ck_assert_msg(w->payments[i].stored, "payment %s has no stored outcome", w->payments[i].id);
    for (size_t i = 0; i < n_dead; i++) {
        char *v = lqt_sql_value(w->ns, "SELECT status FROM payments WHERE id = $1", dead[i]);
        ck_assert_msg(v == NULL, "%s was stored (%s) but belongs in the dead-letter queue", dead[i],
                      v);
        free(v);
    }
    /* The run exercised both outcomes. */
    ck_assert_uint_gt(applied, w->n_payments / 2);
    ck_assert_uint_lt(applied, w->n_payments);

    /* Balances: what the stored outcomes add up to; nothing applied twice. */
    lqt_workload_check_balances(w->ns, w->accounts);
    ck_assert_msg(lqt_run(w->ns, &out, "audit") == 0, "audit exited %d: %s%s", out.status, out.out,
                  out.err);
    lqt_output_release(&out);

    /*
     * Result events: at least one per message sent, each telling the one
     * stored outcome, and for every payment at least one that says it was
     * processed for the first time (duplicate: false); that one may come
     * more than once, when the broker never confirmed it.
     */
    n_events = lqt_listener_collect(w->events);
    lqt_step("%zu result events for %zu messages", n_events, w->n_messages);
    ck_assert_uint_ge(n_events, w->n_messages);
    index = lqt_events_by_id(w->events);
    {
        /* How many lack a first outcome, for the failure message. */
        size_t lacking = 0, n;
        const char *first_lacking = NULL;
        for (size_t i = 0; i < n_events; i += n) {
            for (n = 1; i + n < n_events && strcmp(index[i + n]->id, index[i]->id) == 0; n++)
                ;
            if (!lqt_has_first_outcome(&index[i], n) && lacking++ == 0)
                first_lacking = index[i]->id;
        }
        ck_assert_msg(lacking == 0,
                      "%zu of %zu payments got no result event that says they were processed for "
                      "the first time (duplicate: false), %s the first of them",
                      lacking, w->n_payments, first_lacking);
    }
    for (size_t i = 0, n; i < n_events; i += n) {
        lqt_flow_payment *p = find_payment(w, index[i]->id);
        ck_assert_msg(p != NULL, "an event for an id never sent, or one that must not have one: %s",
                      index[i]->body);
        for (n = 0; i + n < n_events && strcmp(index[i + n]->id, p->id) == 0; n++) {
            const lqt_event *e = index[i + n];
            ck_assert_msg(strcmp(e->status, p->status) == 0 &&
                              strcmp(e->reason_null ? "" : e->reason, p->reason) == 0 &&
                              strcmp(e->processed_at, p->processed_at) == 0,
                          "%s: the event %s differs from the stored outcome %s %s %s", p->id,
                          e->body, p->status, p->reason, p->processed_at);
        }
        ck_assert_msg(n >= (size_t)p->n_sent, "%s: sent %d times, %zu events", p->id, p->n_sent, n);
        lqt_expect_first_outcome(p->id, &index[i], n, NULL);
        p->has_events = true;
    }
    for (size_t i = 0; i < w->n_payments; i++)
        ck_assert_msg(w->payments[i].has_events, "%s: no result event", w->payments[i].id);
    free(index);
}

void lqt_flow_expect_no_dead_letters(lqt_flow *w)
{
    lqt_death d;
    size_t n = lqt_dead_letters(w->ns, w->ns->dlq, &d, 1);

    ck_assert_msg(n == 0, "%zu messages were dead-lettered, the first (%s%s) %s", n, d.error,
                  d.reason, d.body);
}
