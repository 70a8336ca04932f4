/*
 * Concurrency: three workers on one queue and one ledger, 100 accounts,
 * more than 20,000 random payments (some ids sent twice with the same
 * content, a few reused with other content), published while the workers
 * run.  Afterwards every id has exactly one stored outcome and every
 * command got exactly one event: for every id at least one says it was
 * processed for the first time (duplicate: false; a resubmission that races
 * with the confirm of the first may get one too), all of them and the
 * duplicates tell the same outcome, and a command reusing the id with other
 * content gets its idempotency conflict.  No payment took effect twice: the
 * balances equal what the events say was applied (recomputed here,
 * independently of the database), and `ledgerq audit` passes.
 *
 * The same with account commands in the stream (case freezes): freezes and
 * unfreezes of some accounts interleaved with 20,000 transfers, and pairs
 * of openings of one new account under two ids.  Afterwards every history
 * is gapless and sums to its balance, no debit entry lies between a freeze
 * entry and the next unfreeze entry of its account, every account_frozen
 * rejection happened while its account was frozen, each new account was
 * opened once, and `ledgerq audit` passes.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "support.h"
#include "workload.h"

#define N_PAYMENTS      20000
#define DUPLICATE_EVERY 20 /* every 20th payment is sent a second time, same content */
#define CONFLICT_EVERY                                                                             \
    500 /* every 500th id (never a duplicated one) is reused with another amount */

typedef struct payment {
    char id[32];
    int debit, credit; /* account index */
    int64_t amount;
    int n_sent;         /* messages published with this id */
    bool conflict_sent; /* one of them had other content */
} payment;

/* A deterministic generator: the same run every time. */
static uint64_t rng_state = 0x2545F4914F6CDD1DULL;

static void send_payment(lqt_ns *ns, const payment *p, int64_t amount,
                         const lqt_workload_account *accounts)
{
    char body[256];
    lqt_msg m = {.body = body};

    lqt_workload_json(body, sizeof(body), p->id, &accounts[p->debit], &accounts[p->credit], amount);
    lqt_send(ns, &m);
}

START_TEST(three_workers_apply_each_payment_exactly_once)
{
    static lqt_workload_account accounts[LQT_WORKLOAD_ACCOUNTS];
    static payment payments[N_PAYMENTS];
    lqt_ns *ns = lqt_ns_create();
    lqt_listener *events = lqt_listen(ns);
    const char *const worker_env[] = {"LEDGERQ_PREFETCH=100", "LEDGERQ_BATCH_MAX=50", NULL};
    lqt_worker *workers[3];
    const lqt_event **index;
    size_t n_messages = 0, applied = 0, rejected = 0, at = 0;
    lqt_output out;

    lqt_workload_accounts(ns, accounts);

    for (int i = 0; i < 3; i++)
        workers[i] = lqt_worker_start(ns, worker_env);

    for (int i = 0; i < N_PAYMENTS; i++) {
        payment *p = &payments[i];
        snprintf(p->id, sizeof(p->id), "pay-%05d", i);
        lqt_workload_payment(&rng_state, &p->debit, &p->credit, &p->amount);
        send_payment(ns, p, p->amount, accounts);
        p->n_sent = 1;
        n_messages++;
        /* A duplicate soon after the original: likely handled by another worker. */
        if (i % DUPLICATE_EVERY == 0) {
            send_payment(ns, p, p->amount, accounts);
            p->n_sent++;
            n_messages++;
        }
        if (i % CONFLICT_EVERY == CONFLICT_EVERY / 2 + 1) {
            send_payment(ns, p, p->amount + 1, accounts);
            p->n_sent++;
            p->conflict_sent = true;
            n_messages++;
        }
        if (i % 1000 == 999)
            lqt_confirm(ns);
    }
    lqt_confirm(ns);
    ck_assert_uint_gt(n_messages, 20000);

    /* One event per message, whichever worker handled it. */
    lqt_wait_events(events, n_messages);
    lqt_drain_events(events, 500);
    ck_assert_uint_eq(lqt_event_count(events), n_messages);

    for (int w = 0; w < 3; w++)
        ck_assert_int_eq(lqt_worker_stop(workers[w]), 0);

    /* The events by id: as many for each id as commands were sent with it (ids sort as made). */
    index = lqt_events_by_id(events);
    for (int i = 0; i < N_PAYMENTS; i++) {
        payment *p = &payments[i];
        size_t conflicts = 0;
        const lqt_event *first;
        lqt_payment stored;

        for (size_t k = 0; k < (size_t)p->n_sent; k++)
            ck_assert_msg(strcmp(index[at + k]->id, p->id) == 0,
                          "payment %s: %d commands sent, not as many events (the next in id "
                          "order is for %s)",
                          p->id, p->n_sent, index[at + k]->id);
        /*
         * A first outcome, perhaps more than once, and duplicates that repeat
         * it: never a second effect.  The conflicting command of an id gets
         * its own rejection.
         */
        first = lqt_expect_first_outcome(p->id, &index[at], (size_t)p->n_sent, &conflicts);
        ck_assert_uint_eq(conflicts, p->conflict_sent ? 1 : 0);
        at += (size_t)p->n_sent;
        /* Spot-check the stored outcome against the event (every 50th: the CLI is slow). */
        if (i % 50 == 0) {
            ck_assert_int_eq(lqt_payment_show(ns, p->id, &stored, NULL), 0);
            ck_assert_str_eq(stored.status, first->status);
            ck_assert_str_eq(stored.processed_at, first->processed_at);
        }
        if (strcmp(first->status, "applied") == 0) {
            /*
             * A conflicting copy may have been the one stored: the event
             * does not say which amount, the stored legs do.
             */
            int64_t amount = p->amount;
            if (p->conflict_sent) {
                ck_assert_int_eq(lqt_payment_show(ns, p->id, &stored, NULL), 0);
                amount = stored.legs[0].amount;
            }
            accounts[p->debit].expected -= amount;
            accounts[p->credit].expected += amount;
            applied++;
        } else {
            rejected++;
        }
    }
    ck_assert_uint_eq(at, n_messages);
    free(index);
    /* Both outcomes happened, so the run exercised the rules, not just the happy path. */
    ck_assert_uint_gt(applied, N_PAYMENTS / 2);
    ck_assert_uint_gt(rejected, 0);

    /* The ledger holds one outcome per id... */
    {
        /* The transfers: the accounts' opening commands are stored there too. */
        PGresult *res = PQexec(ns->db, "SELECT count(*), count(DISTINCT id) FROM payments"
                                       " WHERE type = 'transfer'");
        ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
        ck_assert_str_eq(PQgetvalue(res, 0, 0), "20000");
        ck_assert_str_eq(PQgetvalue(res, 0, 1), "20000");
        PQclear(res);
    }
    /* ...every balance is what the applied events add up to... */
    lqt_workload_check_balances(ns, accounts);
    /* ...and the invariants hold, balances summing to zero per currency among them. */
    ck_assert_int_eq(lqt_run(ns, &out, "audit"), 0);
    lqt_output_release(&out);

    /* Nothing left behind: every message was acked. */
    {
        size_t left = 0;
        lq_delivery **rest = lqt_get_all(ns, ns->queue, &left);
        ck_assert_uint_eq(left, 0);
        lqt_deliveries_free(rest, left);
    }
    lqt_ns_destroy(ns);
}
END_TEST

/* ------------------------------------------------------------ freezes */

/* A status update after every STATUS_EVERY-th transfer, each to the next of the frozen accounts. */
#define STATUS_EVERY 100
#define N_STATUSES   (N_PAYMENTS / STATUS_EVERY)
#define N_FREEZABLE  10
/* A pair of openings of one new account after every OPEN_EVERY-th transfer. */
#define OPEN_EVERY 400
#define N_OPENS    (N_PAYMENTS / OPEN_EVERY)
#define OPEN_APART 30

/* The accounts frozen and unfrozen: most may go negative, two may not. */
static const int freezable[N_FREEZABLE] = {3, 13, 20, 33, 43, 50, 63, 73, 80, 93};

/* A transfer of the stream, and what its event and the histories told. */
typedef struct transfer {
    char id[32];
    int debit, credit;
    int64_t amount;
    const lqt_event *event;
    bool frozen_rejection; /* rejected with account_frozen */
    char entry_at[64];     /* when its batch wrote its entries (applied), else "" */
} transfer;

/* A status update of the stream. */
typedef struct status_update {
    char id[32];
    int account;
    bool freeze;
    int seen; /* entries found under its id */
} status_update;

/* A frozen period of an account, as its history tells it. */
typedef struct period {
    char from[64]; /* the at of the entry that froze it */
    char to[64];   /* the at of the entry that unfroze it; "" while it stays frozen */
} period;

static int find_freezable(int account)
{
    for (int k = 0; k < N_FREEZABLE; k++) {
        if (freezable[k] == account)
            return k;
    }
    return -1;
}

static int account_index(const char *id)
{
    int k = -1;

    ck_assert_msg(sscanf(id, "acct:%d", &k) == 1 && k >= 0 && k < LQT_WORKLOAD_ACCOUNTS,
                  "not a workload account: %s", id);
    return k;
}

/* The status an account.update entry's change sets: 1 frozen, 0 active, -1 none. */
static int change_freezes(const char *change, const char *what)
{
    cJSON *j = cJSON_Parse(change);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
    int r = -1;

    ck_assert_msg(cJSON_IsObject(j), "%s: change is not an object: %s", what, change);
    if (cJSON_IsString(st))
        r = strcmp(st->valuestring, "frozen") == 0 ? 1 : 0;
    cJSON_Delete(j);
    return r;
}

START_TEST(freezes_hold_under_three_workers)
{
    static lqt_workload_account accounts[LQT_WORKLOAD_ACCOUNTS];
    static transfer transfers[N_PAYMENTS];
    static status_update updates[N_STATUSES];
    static period periods[N_FREEZABLE][N_STATUSES];
    int n_periods[N_FREEZABLE] = {0};
    bool frozen_now[N_FREEZABLE] = {false};
    lqt_ns *ns = lqt_ns_create();
    lqt_listener *events = lqt_listen(ns);
    const char *const worker_env[] = {"LEDGERQ_PREFETCH=100", "LEDGERQ_BATCH_MAX=50",
                                      "LEDGERQ_LOG_LEVEL=debug", NULL};
    lqt_worker *workers[3];
    const lqt_event **index;
    size_t n_messages = 0, n_updates = 0, at = 0;
    size_t applied = 0, frozen_rejections = 0, credits_while_frozen = 0, bounded = 0;
    size_t opens_apart = 0;
    uint64_t rng = 0x5DEECE66DULL;
    lqt_output out;

    lqt_workload_accounts(ns, accounts);
    for (int i = 0; i < 3; i++)
        workers[i] = lqt_worker_start(ns, worker_env);

    for (int i = 0; i < N_PAYMENTS; i++) {
        transfer *t = &transfers[i];
        char body[512];

        snprintf(t->id, sizeof(t->id), "pay-%05d", i);
        lqt_workload_payment(&rng, &t->debit, &t->credit, &t->amount);
        lqt_workload_json(body, sizeof(body), t->id, &accounts[t->debit], &accounts[t->credit],
                          t->amount);
        lqt_send(ns, &(lqt_msg){.body = body});
        n_messages++;
        if (i % STATUS_EVERY == STATUS_EVERY / 2) {
            status_update *u = &updates[n_updates];
            int k = (int)(n_updates % N_FREEZABLE);
            u->account = freezable[k];
            u->freeze = frozen_now[k] = !frozen_now[k];
            snprintf(u->id, sizeof(u->id), "status-%03zu", n_updates);
            snprintf(body, sizeof(body),
                     "{\"type\":\"account.update\",\"id\":\"%s\",\"account\":\"%s\","
                     "\"status\":\"%s\",\"reason\":\"review %zu\"}",
                     u->id, accounts[u->account].id, u->freeze ? "frozen" : "active",
                     n_updates / N_FREEZABLE);
            lqt_send(ns, &(lqt_msg){.body = body, .routing_key = "account.x"});
            n_updates++;
            n_messages++;
        }
        /*
         * Two ids opening one account, OPEN_APART transfers apart: in two
         * batches, often on two workers at once (the database's primary key
         * lets one in, the other's batch runs again and finds the account).
         */
        if (i % OPEN_EVERY == OPEN_EVERY / 4 || i % OPEN_EVERY == OPEN_EVERY / 4 + OPEN_APART) {
            snprintf(body, sizeof(body),
                     "{\"type\":\"account.open\",\"id\":\"open-%c-%03d\",\"account\":"
                     "\"new:%03d\",\"currency\":\"EUR\"}",
                     i % OPEN_EVERY == OPEN_EVERY / 4 ? 'a' : 'b', i / OPEN_EVERY, i / OPEN_EVERY);
            lqt_send(ns, &(lqt_msg){.body = body, .routing_key = "account.x"});
            n_messages++;
        }
        if (i % 1000 == 999)
            lqt_confirm(ns);
    }
    lqt_confirm(ns);
    ck_assert_uint_eq(n_updates, N_STATUSES);

    lqt_wait_events(events, n_messages);
    lqt_drain_events(events, 500);
    ck_assert_uint_eq(lqt_event_count(events), n_messages);
    for (int w = 0; w < 3; w++)
        ck_assert_int_eq(lqt_worker_stop(workers[w]), 0);
    lqt_step("%zu events", n_messages);

    /* The events, by id: "open-a-*", "open-b-*", then "pay-*", then "status-*"; one each. */
    index = lqt_events_by_id(events);
    for (int o = 0; o < N_OPENS; o++) {
        const lqt_event *a = index[o], *b = index[N_OPENS + o];
        char want[32];
        snprintf(want, sizeof(want), "open-a-%03d", o);
        ck_assert_str_eq(a->id, want);
        want[5] = 'b';
        ck_assert_str_eq(b->id, want);
        /* One of the two opened it, the other found it there, whoever came first. */
        ck_assert_msg((strcmp(a->status, "applied") == 0) != (strcmp(b->status, "applied") == 0),
                      "%s and %s: exactly one must be applied: %s %s", a->id, b->id, a->body,
                      b->body);
        {
            const lqt_event *no = strcmp(a->status, "applied") == 0 ? b : a;
            char detail[64];
            snprintf(detail, sizeof(detail), "account \"new:%03d\" exists already", o);
            opens_apart += strcmp(a->processed_at, b->processed_at) != 0;
            ck_assert_msg(strcmp(no->reason, "account_exists") == 0 &&
                              strcmp(no->detail, detail) == 0 &&
                              strcmp(no->routing_key, "account.rejected") == 0,
                          "%s: %s", no->id, no->body);
        }
    }
    lqt_step("%zu of %d pairs of openings decided in two batches; %zu batches run again when "
             "another worker opened the account first",
             opens_apart, N_OPENS, lqt_log_count(ns, "accounts_pkey"));
    at = 2 * N_OPENS;
    for (int i = 0; i < N_PAYMENTS; i++) {
        transfer *t = &transfers[i];
        const lqt_event *e = index[at++];
        ck_assert_str_eq(e->id, t->id);
        t->event = lqt_expect_first_outcome(t->id, &e, 1, NULL);
        ck_assert_str_eq(e->type, "transfer");
        if (strcmp(e->status, "applied") == 0) {
            accounts[t->debit].expected -= t->amount;
            accounts[t->credit].expected += t->amount;
            applied++;
        } else if (strcmp(e->reason, "account_frozen") == 0) {
            char detail[64];
            snprintf(detail, sizeof(detail), "leg 1: account \"%s\" is frozen",
                     accounts[t->debit].id);
            ck_assert_msg(strcmp(e->detail, detail) == 0, "%s: %s", t->id, e->body);
            ck_assert_msg(find_freezable(t->debit) >= 0,
                          "%s: rejected as frozen, but %s was never frozen", t->id,
                          accounts[t->debit].id);
            t->frozen_rejection = true;
            frozen_rejections++;
        } else {
            ck_assert_msg(strcmp(e->reason, "insufficient_funds") == 0 ||
                              strcmp(e->reason, "currency_mismatch") == 0,
                          "%s: %s", t->id, e->body);
        }
    }
    for (size_t u = 0; u < n_updates; u++) {
        const lqt_event *e = index[at++];
        ck_assert_str_eq(e->id, updates[u].id);
        ck_assert_msg(strcmp(e->type, "account.update") == 0 && strcmp(e->status, "applied") == 0 &&
                          !e->duplicate && strcmp(e->routing_key, "account.applied") == 0,
                      "%s: %s", e->id, e->body);
    }
    ck_assert_uint_eq(at, n_messages);
    free(index);
    lqt_step("%zu transfers applied, %zu rejected as frozen", applied, frozen_rejections);
    ck_assert_uint_gt(applied, N_PAYMENTS / 2);
    ck_assert_uint_gt(frozen_rejections, 0);

    /* The balances: what the applied events add up to; the new accounts hold nothing. */
    {
        char *text = lqt_accounts_snapshot(ns);
        cJSON *list = cJSON_Parse(text);
        const cJSON *a;
        int seen = 0;
        ck_assert_msg(cJSON_IsArray(list), "`account list --json`: %.200s", text);
        cJSON_ArrayForEach(a, list)
        {
            const char *id = cJSON_GetObjectItemCaseSensitive(a, "id")->valuestring;
            double balance = cJSON_GetObjectItemCaseSensitive(a, "balance")->valuedouble;
            int64_t expected =
                strncmp(id, "new:", 4) == 0 ? 0 : accounts[account_index(id)].expected;
            ck_assert_msg((int64_t)balance == expected,
                          "account %s: balance %.0f, the events add up to %" PRId64, id, balance,
                          expected);
            seen++;
        }
        ck_assert_int_eq(seen, LQT_WORKLOAD_ACCOUNTS + N_OPENS);
        cJSON_Delete(list);
        free(text);
    }

    /*
     * Every history: whole (lqt_expect_history_consistent()), each applied
     * leg once on each side, each status update once on its account, and
     * no debit entry between a freeze entry and the next unfreeze entry.
     */
    for (int k = 0; k < LQT_WORKLOAD_ACCOUNTS; k++) {
        const int f = find_freezable(k);
        lqt_history h;
        bool frozen = false;

        lqt_history_all(ns, accounts[k].id, &h);
        lqt_expect_history_consistent(ns, accounts[k].id, &h);
        for (size_t i = 1; i < h.n; i++) {
            const lqt_entry *e = &h.entries[i];
            char what[256];
            snprintf(what, sizeof(what), "account %.31s entry %" PRId64 " (%.159s)", accounts[k].id,
                     e->seq, e->command);
            if (strcmp(e->type, "account.update") == 0) {
                int u = -1, st;
                ck_assert_msg(sscanf(e->command, "status-%d", &u) == 1 && u >= 0 &&
                                  u < (int)n_updates && updates[u].account == k,
                              "%s: an update this account was not sent", what);
                updates[u].seen++;
                st = change_freezes(e->change, what);
                ck_assert_msg(st == (updates[u].freeze ? 1 : 0), "%s: change %s", what, e->change);
                if (st == 1 && !frozen) {
                    period *p = &periods[f][n_periods[f]++];
                    snprintf(p->from, sizeof(p->from), "%s", e->at);
                    p->to[0] = '\0';
                } else if (st == 0 && frozen) {
                    snprintf(periods[f][n_periods[f] - 1].to, sizeof(periods[f][0].to), "%s",
                             e->at);
                }
                frozen = st == 1;
                continue;
            }
            {
                int i_t = -1;
                transfer *t;
                ck_assert_msg(strcmp(e->type, "transfer") == 0 &&
                                  sscanf(e->command, "pay-%d", &i_t) == 1 && i_t >= 0 &&
                                  i_t < N_PAYMENTS && e->leg == 1,
                              "%s: not an entry of a transfer sent", what);
                t = &transfers[i_t];
                ck_assert_msg(strcmp(t->event->status, "applied") == 0,
                              "%s: an entry of a transfer that was %s", what, t->event->status);
                ck_assert_msg((e->amount < 0 ? t->debit : t->credit) == k &&
                                  e->amount == (e->amount < 0 ? -t->amount : t->amount),
                              "%s: amount %" PRId64 " is not what the transfer moves", what,
                              e->amount);
                ck_assert_msg(e->amount > 0 || !frozen,
                              "%s: a debit of %" PRId64 " while the account was frozen", what,
                              -e->amount);
                if (frozen)
                    credits_while_frozen++;
                if (t->entry_at[0] == '\0')
                    snprintf(t->entry_at, sizeof(t->entry_at), "%s", e->at);
                else
                    ck_assert_msg(strcmp(t->entry_at, e->at) == 0,
                                  "%s: at %s, its other entry %s (one statement)", what, e->at,
                                  t->entry_at);
            }
        }
        lqt_history_release(&h);
    }
    for (size_t u = 0; u < n_updates; u++)
        ck_assert_msg(updates[u].seen == 1, "%s: %d entries", updates[u].id, updates[u].seen);
    for (int i = 0; i < N_PAYMENTS; i++)
        ck_assert_msg((transfers[i].entry_at[0] != '\0') ==
                          (strcmp(transfers[i].event->status, "applied") == 0),
                      "%s: %s, and entries %s", transfers[i].id, transfers[i].event->status,
                      transfers[i].entry_at[0] ? "found" : "missing");
    lqt_step("%zu credits while frozen", credits_while_frozen);
    ck_assert_uint_gt(credits_while_frozen, 0);

    /*
     * Every account_frozen rejection happened within a frozen period of its
     * account.  Its batch read the account after the freeze committed, so
     * the entries its batch wrote (when it applied any transfer) are not
     * earlier than the freeze entry; the unfreeze came after its batch
     * committed, so the unfreeze entry is later than its batch's start
     * (processed_at).
     */
    for (int i = 0; i < N_PAYMENTS; i++) {
        const transfer *t = &transfers[i];
        const int f = t->frozen_rejection ? find_freezable(t->debit) : -1;
        const char *batch_at = NULL;
        bool within = false;

        if (f < 0)
            continue;
        for (int j = 0; j < N_PAYMENTS && batch_at == NULL; j++) {
            if (transfers[j].entry_at[0] &&
                strcmp(transfers[j].event->processed_at, t->event->processed_at) == 0)
                batch_at = transfers[j].entry_at;
        }
        for (int p = 0; p < n_periods[f] && !within; p++) {
            const period *q = &periods[f][p];
            within = (batch_at == NULL || strcmp(q->from, batch_at) <= 0) &&
                     (q->to[0] == '\0' || strcmp(q->to, t->event->processed_at) > 0);
        }
        bounded += batch_at != NULL;
        ck_assert_msg(within,
                      "%s: rejected as frozen (batch from %s, entries at %s), but %s was not "
                      "frozen then (%d frozen periods)",
                      t->id, t->event->processed_at, batch_at ? batch_at : "-",
                      accounts[t->debit].id, n_periods[f]);
    }

    lqt_step("%zu frozen rejections within a frozen period, %zu of them bounded on both sides",
             frozen_rejections, bounded);

    /* The new accounts: each opened once, by the command whose event said so. */
    for (int o = 0; o < N_OPENS; o++) {
        char id[32];
        lqt_history h;
        snprintf(id, sizeof(id), "new:%03d", o);
        lqt_history_all(ns, id, &h);
        lqt_expect_history_consistent(ns, id, &h);
        ck_assert_uint_eq(h.n, 1);
        ck_assert_str_eq(lqt_event_find(events, h.entries[0].command, 0)->status, "applied");
        lqt_history_release(&h);
    }

    ck_assert_msg(lqt_run(ns, &out, "audit") == 0, "audit exited %d: %s%s", out.status, out.out,
                  out.err);
    lqt_output_release(&out);
    lqt_ns_destroy(ns);
}
END_TEST

int main(void)
{
    const lqt_suite suite = {.name = "concurrency", .timeout_s = 600};
    const lqt_case cases[] = {
        LQT_CASE("three_workers", three_workers_apply_each_payment_exactly_once),
        LQT_CASE("freezes", freezes_hold_under_three_workers),
    };

    return LQT_MAIN(suite, cases);
}
