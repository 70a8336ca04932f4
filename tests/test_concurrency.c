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
 *
 * Holds under three workers (case holds): 10,000 holds over the 100
 * accounts, each then captured in full or in part, voided, left to expire
 * (timeout_s 1 or 2), or left pending; for a share of the expiring ones a
 * capture or void is aimed at the expiry time, so that it races with the
 * workers' expiry sweeps.  Afterwards every hold was resolved exactly once:
 * by an applied capture, an applied void, or its one hold.expired event
 * (duplicate false, within 5 s of its expiry), which a captured or voided
 * hold never gets; a capture or void racing an expiry either won (the hold
 * is captured or voided) or was rejected with hold_expired (the hold is
 * expired), and one applied at or after the expiry time never won.  Held
 * totals equal the sums over the pending holds, the balances what the
 * applied captures posted, and `ledgerq audit` passes.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ------------------------------------------------------------ holds */

#define N_HOLDS 10000
/*
 * Commands sent whose result event has not come yet, at most: the work
 * queue stays short, so that a capture or void aimed at an expiry time is
 * applied about then.
 */
#define HOLDS_WINDOW 200
/* The whole exchange, bounded. */
#define HOLDS_DEADLINE_S 480
/* A racing capture or void is aimed at its hold's expiry time, give or take this. */
#define RACE_SPREAD_MS 500
/* While a worker runs, an expiry is released within this of its time (protocol section 14). */
#define RELEASE_WITHIN_US (5 * 1000000LL)

typedef enum fate {
    FATE_CAPTURE,      /* captured in full (no amount given) */
    FATE_CAPTURE_PART, /* captured in part */
    FATE_VOID,         /* voided */
    FATE_EXPIRE,       /* timeout_s 1 or 2, left to expire */
    FATE_RACE_CAPTURE, /* timeout_s 1 or 2, a capture (in full or in part) aimed at its expiry */
    FATE_RACE_VOID,    /* timeout_s 1 or 2, a void aimed at its expiry */
    FATE_PENDING,      /* left pending (no timeout_s, or an hour) until voided at the end */
} fate;

/* A hold of the stream, the command that follows it, and what came of them. */
typedef struct hold {
    char id[16];     /* "hold-00000" */
    char follow[16]; /* "cap-00000", "void-00000", "end-00000" (the void at the end); "" */
    int debit, credit;
    int64_t amount;
    int timeout_s; /* 0: none */
    fate fate;
    int64_t capture_amount; /* what its capture asks for; 0: no amount (all) */
    int race_offset_ms;
    /* Events, as indexes into the listener's + 1 (0: none yet), and how many came. */
    size_t event, follow_event, expired_event;
    int n_events, n_follow_events, n_expired_events;
    int64_t expires_us;    /* the hold event's processed_at + timeout_s */
    int64_t follow_due_ms; /* a racer's publish time (lqt_now_ms()); 0: not scheduled */
    int64_t follow_sent_us;
    bool done;
} hold;

typedef struct holds_run {
    lqt_ns *ns;
    lqt_listener *events;
    lqt_workload_account accounts[LQT_WORKLOAD_ACCOUNTS];
    hold holds[N_HOLDS];
    size_t n_done, outstanding, n_commands;
    int64_t latency_ms; /* publish to processed_at of follow-ups, smoothed: racers aim with it */
    size_t racers[N_HOLDS];
    size_t n_racers; /* scheduled, not yet sent */
} holds_run;

static bool is_racer(const hold *h)
{
    return h->fate == FATE_RACE_CAPTURE || h->fate == FATE_RACE_VOID;
}

static bool is_capture(const hold *h)
{
    return h->fate == FATE_CAPTURE || h->fate == FATE_CAPTURE_PART || h->fate == FATE_RACE_CAPTURE;
}

static const lqt_event *event_of(const holds_run *run, size_t index_plus_1)
{
    return index_plus_1 ? lqt_event_at(run->events, index_plus_1 - 1) : NULL;
}

static int64_t utc_us(const char *s, const char *what)
{
    int64_t us;
    ck_assert_msg(lqt_parse_utc_us(s, &us), "%s: \"%s\" is not RFC 3339 UTC", what, s);
    return us;
}

static void send_hold(holds_run *run, hold *h)
{
    char fields[512], body[600];

    /* A transfer's fields (docs/protocol.md section 4) plus type and timeout_s. */
    lqt_workload_json(fields, sizeof(fields), h->id, &run->accounts[h->debit],
                      &run->accounts[h->credit], h->amount);
    if (h->timeout_s > 0)
        snprintf(body, sizeof(body), "{\"type\":\"hold\",\"timeout_s\":%d,%s", h->timeout_s,
                 fields + 1);
    else
        snprintf(body, sizeof(body), "{\"type\":\"hold\",%s", fields + 1);
    lqt_send(run->ns, &(lqt_msg){.body = body});
    run->outstanding++;
    run->n_commands++;
}

/* Its capture or void, or (at the end) the void of a pending hold. */
static void send_follow(holds_run *run, hold *h, bool end)
{
    char body[256];
    int n;

    if (end) {
        snprintf(h->follow, sizeof(h->follow), "end-%.5s", h->id + 5);
        n = snprintf(body, sizeof(body), "{\"type\":\"void\",\"id\":\"%s\",\"hold\":\"%s\"}",
                     h->follow, h->id);
    } else if (is_capture(h)) {
        snprintf(h->follow, sizeof(h->follow), "cap-%.5s", h->id + 5);
        n = snprintf(body, sizeof(body), "{\"type\":\"capture\",\"id\":\"%s\",\"hold\":\"%s\"",
                     h->follow, h->id);
        if (h->capture_amount > 0)
            n += snprintf(body + n, sizeof(body) - (size_t)n, ",\"amount\":%" PRId64,
                          h->capture_amount);
        n += snprintf(body + n, sizeof(body) - (size_t)n, "}");
    } else {
        snprintf(h->follow, sizeof(h->follow), "void-%.5s", h->id + 5);
        n = snprintf(body, sizeof(body), "{\"type\":\"void\",\"id\":\"%s\",\"hold\":\"%s\"}",
                     h->follow, h->id);
    }
    ck_assert_int_lt(n, (int)sizeof(body));
    lqt_send(run->ns, &(lqt_msg){.body = body});
    h->follow_sent_us = lqt_wall_us();
    run->outstanding++;
    run->n_commands++;
}

/* Whether everything that will happen to h has happened (its events came). */
static bool hold_settled(const holds_run *run, const hold *h)
{
    const lqt_event *e = event_of(run, h->event), *f = event_of(run, h->follow_event);
    bool applied = e && strcmp(e->status, "applied") == 0;

    if (e == NULL)
        return false;
    switch (h->fate) {
    case FATE_CAPTURE:
    case FATE_CAPTURE_PART:
    case FATE_VOID:
        return f != NULL;
    case FATE_EXPIRE:
        return !applied || h->expired_event != 0;
    case FATE_RACE_CAPTURE:
    case FATE_RACE_VOID:
        return f != NULL &&
               (!applied || strcmp(f->status, "applied") == 0 || h->expired_event != 0);
    case FATE_PENDING:
        return h->follow[0] == '\0' || f != NULL;
    }
    return false;
}

/* The hold an event's id names, and which of its commands: 'h' hold, 'f' follow-up. */
static hold *hold_of_event(holds_run *run, const lqt_event *e, char *ret_kind)
{
    int k = -1;
    char prefix[8] = "";

    ck_assert_msg(sscanf(e->id, "%7[a-z]-%d", prefix, &k) == 2 && k >= 0 && k < N_HOLDS,
                  "an event for an id never sent: %s", e->body);
    *ret_kind = strcmp(prefix, "hold") == 0 ? 'h' : 'f';
    ck_assert_msg(*ret_kind == 'h' || strcmp(run->holds[k].follow, e->id) == 0,
                  "an event for an id never sent: %s", e->body);
    return &run->holds[k];
}

/* Take in event i: note it, and send what it makes due. */
static void holds_on_event(holds_run *run, size_t i)
{
    const lqt_event *e = lqt_event_at(run->events, i);
    char kind;
    hold *h = hold_of_event(run, e, &kind);

    if (kind == 'h' && strcmp(e->routing_key, "hold.expired") == 0) {
        if (h->n_expired_events++ == 0)
            h->expired_event = i + 1;
    } else if (kind == 'h') {
        if (h->n_events++ > 0)
            return;
        h->event = i + 1;
        run->outstanding--;
        if (strcmp(e->status, "applied") == 0 && h->timeout_s > 0)
            h->expires_us = utc_us(e->processed_at, h->id) + h->timeout_s * 1000000LL;
        if (is_racer(h) && strcmp(e->status, "applied") == 0) {
            /* Aimed so that it is applied about race_offset_ms after the expiry time. */
            h->follow_due_ms = lqt_now_ms() + (h->expires_us - lqt_wall_us()) / 1000 +
                               h->race_offset_ms - run->latency_ms;
            run->racers[run->n_racers++] = (size_t)(h - run->holds);
        } else if (h->fate != FATE_EXPIRE && h->fate != FATE_PENDING) {
            send_follow(run, h, false);
        }
    } else {
        if (h->n_follow_events++ > 0)
            return;
        h->follow_event = i + 1;
        run->outstanding--;
        /* Publish to processed_at (one clock), smoothed. */
        run->latency_ms =
            (7 * run->latency_ms + (utc_us(e->processed_at, e->id) - h->follow_sent_us) / 1000) / 8;
    }
    if (!h->done && hold_settled(run, h)) {
        h->done = true;
        run->n_done++;
    }
}

/* Receive for a moment and take in what came. */
static void holds_receive(holds_run *run, size_t *seen)
{
    lqt_drain_events(run->events, 10);
    for (; *seen < lqt_event_count(run->events); (*seen)++)
        holds_on_event(run, *seen);
}

static void holds_generate(holds_run *run, uint64_t *rng)
{
    for (int i = 0; i < N_HOLDS; i++) {
        hold *h = &run->holds[i];
        uint32_t r = lqt_rng(rng) % 100;

        snprintf(h->id, sizeof(h->id), "hold-%05d", i);
        lqt_workload_payment(rng, &h->debit, &h->credit, &h->amount);
        h->fate = r < 30   ? FATE_CAPTURE
                  : r < 50 ? FATE_CAPTURE_PART
                  : r < 68 ? FATE_VOID
                  : r < 80 ? FATE_EXPIRE
                  : r < 89 ? FATE_RACE_CAPTURE
                  : r < 97 ? FATE_RACE_VOID
                           : FATE_PENDING;
        switch (h->fate) {
        case FATE_EXPIRE:
        case FATE_RACE_CAPTURE:
        case FATE_RACE_VOID:
            h->timeout_s = 1 + (int)(lqt_rng(rng) % 2);
            break;
        case FATE_PENDING:
            h->timeout_s = lqt_rng(rng) % 2 ? 0 : 3600;
            break;
        default:
            /* Resolved long before: an expiry time that never comes, or none. */
            h->timeout_s = lqt_rng(rng) % 3 ? 0 : 600 + (int)(lqt_rng(rng) % 3000);
            break;
        }
        if ((h->fate == FATE_CAPTURE_PART || (h->fate == FATE_RACE_CAPTURE && lqt_rng(rng) % 2)) &&
            h->amount > 1)
            h->capture_amount = 1 + (int64_t)(lqt_rng(rng) % (uint64_t)(h->amount - 1));
        h->race_offset_ms = (int)(lqt_rng(rng) % (2 * RACE_SPREAD_MS + 1)) - RACE_SPREAD_MS;
    }
}

/*
 * account show of every account: its held debits and credits are the sums
 * over the pending holds that name it (the holds of fate FATE_PENDING that
 * were applied and not voided yet when pending is true; none otherwise).
 */
static void expect_held(holds_run *run, bool pending)
{
    static int64_t held_debits[LQT_WORKLOAD_ACCOUNTS], held_credits[LQT_WORKLOAD_ACCOUNTS];
    size_t nonzero = 0;

    memset(held_debits, 0, sizeof(held_debits));
    memset(held_credits, 0, sizeof(held_credits));
    for (int i = 0; i < N_HOLDS && pending; i++) {
        const hold *h = &run->holds[i];
        if (h->fate == FATE_PENDING && strcmp(event_of(run, h->event)->status, "applied") == 0) {
            held_debits[h->debit] += h->amount;
            held_credits[h->credit] += h->amount;
        }
    }
    for (int k = 0; k < LQT_WORKLOAD_ACCOUNTS; k++) {
        lqt_account a;
        lqt_account_show(run->ns, run->accounts[k].id, &a);
        ck_assert_msg(a.held_debits == held_debits[k] && a.held_credits == held_credits[k],
                      "account %s: held debits %" PRId64 " and credits %" PRId64
                      ", its pending holds add up to %" PRId64 " and %" PRId64,
                      a.id, a.held_debits, a.held_credits, held_debits[k], held_credits[k]);
        nonzero += a.held_debits != 0 || a.held_credits != 0;
    }
    lqt_step("held amounts of %d accounts match their pending holds (%zu hold something)",
             LQT_WORKLOAD_ACCOUNTS, nonzero);
    ck_assert(pending ? nonzero > 0 : nonzero == 0);
}

/* The event of a hold's command: the first outcome, told once. */
static void expect_hold_event(const holds_run *run, const hold *h)
{
    const lqt_event *e = event_of(run, h->event);
    const lqt_workload_account *debit = &run->accounts[h->debit],
                               *credit = &run->accounts[h->credit];
    char key[64];

    ck_assert_msg(h->n_events == 1, "%s: %d events of the hold command", h->id, h->n_events);
    snprintf(key, sizeof(key), "hold.%s", e->status);
    ck_assert_msg(strcmp(e->type, "hold") == 0 && !e->duplicate &&
                      strcmp(e->routing_key, key) == 0 && strcmp(e->correlation_id, h->id) == 0,
                  "%s: %s (routing key %s)", h->id, e->body, e->routing_key);
    if (strcmp(e->status, "applied") == 0) {
        ck_assert_msg(strcmp(debit->currency, credit->currency) == 0, "%s applied: %s", h->id,
                      e->body);
        return;
    }
    ck_assert_msg(strcmp(e->status, "rejected") == 0, "%s: %s", h->id, e->body);
    /* The only reasons it can have: the currencies differ, or a floor of 0. */
    ck_assert_msg((strcmp(e->reason, "currency_mismatch") == 0 &&
                   strcmp(debit->currency, credit->currency) != 0) ||
                      (strcmp(e->reason, "insufficient_funds") == 0 && !debit->allow_negative),
                  "%s (%s to %s): %s", h->id, debit->id, credit->id, e->body);
}

START_TEST(holds_resolve_once_under_three_workers)
{
    static holds_run run;
    const char *const worker_env[] = {"LEDGERQ_PREFETCH=100", "LEDGERQ_BATCH_MAX=50", NULL};
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    uint64_t rng = 0x9E3779B97F4A7C15ULL ^ seed;
    lqt_worker *workers[3];
    size_t next = 0, seen = 0, n_end = 0, applied_holds = 0;
    size_t by_fate[FATE_PENDING + 1] = {0}, races_won = 0, races_lost = 0, lost_before = 0,
                                  lost_released = 0;
    size_t n_sql = 0;
    static int row_of[N_HOLDS]; /* each hold's row in the holds table, + 1; 0: none */
    int64_t deadline, closest_win_us = INT64_MIN, closest_loss_us = INT64_MAX;
    PGresult *res;
    lqt_output out;

    memset(&run, 0, sizeof(run));
    memset(row_of, 0, sizeof(row_of));
    run.ns = lqt_ns_create();
    run.events = lqt_listen(run.ns);
    run.latency_ms = 50;
    lqt_step("%d holds, seed %u", N_HOLDS, seed);
    lqt_workload_accounts(run.ns, run.accounts);
    holds_generate(&run, &rng);
    for (int w = 0; w < 3; w++)
        workers[w] = lqt_worker_start(run.ns, worker_env);

    /*
     * The holds, at most HOLDS_WINDOW commands in flight; each one's
     * capture or void once its event came (a command that depends on
     * another's effect waits for its event: docs/protocol.md section 12),
     * a racer's at the time aimed at.
     */
    deadline = lqt_now_ms() + HOLDS_DEADLINE_S * 1000LL;
    while (run.n_done < N_HOLDS) {
        int64_t now = lqt_now_ms();
        size_t sent = run.n_commands;

        if (now >= deadline) {
            for (int i = 0; i < N_HOLDS; i++) {
                if (!run.holds[i].done) {
                    lqt_print_logs(run.ns);
                    ck_abort_msg("after %d s, %zu of %d holds settled; %s (fate %d) is not: "
                                 "%d events, follow-up %s with %d events, %d expiry events",
                                 HOLDS_DEADLINE_S, run.n_done, N_HOLDS, run.holds[i].id,
                                 (int)run.holds[i].fate, run.holds[i].n_events,
                                 run.holds[i].follow[0] ? run.holds[i].follow : "(none)",
                                 run.holds[i].n_follow_events, run.holds[i].n_expired_events);
                }
            }
        }
        for (size_t r = 0; r < run.n_racers;) {
            hold *h = &run.holds[run.racers[r]];
            if (h->follow_due_ms > now) {
                r++;
                continue;
            }
            send_follow(&run, h, false);
            run.racers[r] = run.racers[--run.n_racers];
        }
        while (next < N_HOLDS && run.outstanding < HOLDS_WINDOW)
            send_hold(&run, &run.holds[next++]);
        if (run.n_commands != sent)
            lqt_confirm(run.ns);
        holds_receive(&run, &seen);
    }
    lqt_step("every hold settled: %zu commands, %zu events; follow-ups took %" PRId64
             " ms to be applied, lately",
             run.n_commands, lqt_event_count(run.events), run.latency_ms);

    /* What is held is what the pending holds hold. */
    expect_held(&run, true);

    /* Void them: nothing is held any more. */
    for (int i = 0; i < N_HOLDS; i++) {
        hold *h = &run.holds[i];
        if (h->fate == FATE_PENDING && strcmp(event_of(&run, h->event)->status, "applied") == 0) {
            send_follow(&run, h, true);
            h->done = false;
            run.n_done--;
            n_end++;
        }
    }
    lqt_confirm(run.ns);
    while (run.n_done < N_HOLDS) {
        ck_assert_msg(lqt_now_ms() < deadline,
                      "the voids of the %zu pending holds: %zu have no event yet", n_end,
                      N_HOLDS - run.n_done);
        holds_receive(&run, &seen);
    }
    /* Nothing more comes: no second expiry, no event for a hold resolved otherwise. */
    lqt_drain_events(run.events, 2000);
    for (; seen < lqt_event_count(run.events); seen++)
        holds_on_event(&run, seen);
    for (int w = 0; w < 3; w++)
        ck_assert_int_eq(lqt_worker_stop(workers[w]), 0);

    /* Each hold's fate, as its events and the ledger tell it. */
    res = PQexec(run.ns->db, "SELECT id, status FROM holds");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    for (int row = 0; row < PQntuples(res); row++) {
        int k = -1;
        ck_assert_msg(sscanf(PQgetvalue(res, row, 0), "hold-%d", &k) == 1 && k >= 0 &&
                          k < N_HOLDS && row_of[k] == 0,
                      "the holds table holds %s", PQgetvalue(res, row, 0));
        row_of[k] = row + 1;
    }
    for (int i = 0; i < N_HOLDS; i++) {
        hold *h = &run.holds[i];
        const lqt_event *e = event_of(&run, h->event), *f = event_of(&run, h->follow_event),
                        *x = event_of(&run, h->expired_event);
        bool applied = strcmp(e->status, "applied") == 0;
        const char *status = NULL; /* in the holds table */
        char what[64];

        snprintf(what, sizeof(what), "%s (fate %d)", h->id, (int)h->fate);
        expect_hold_event(&run, h);
        by_fate[h->fate]++;
        applied_holds += applied;
        if (row_of[i] > 0) {
            status = PQgetvalue(res, row_of[i] - 1, 1);
            n_sql++;
        }
        ck_assert_msg((status != NULL) == applied, "%s: %s, and %s in the holds table", what,
                      e->status, status ? status : "not");
        ck_assert_msg(h->n_follow_events == (h->follow[0] ? 1 : 0),
                      "%s: %d events of its follow-up %s", what, h->n_follow_events, h->follow);
        if (f != NULL) {
            char key[80];
            snprintf(key, sizeof(key), "%s.%s", f->type, f->status);
            ck_assert_msg(
                !f->duplicate && strcmp(f->hold, h->id) == 0 && strcmp(f->routing_key, key) == 0 &&
                    strcmp(f->correlation_id, f->id) == 0 &&
                    strcmp(f->type,
                           is_capture(h) && h->fate != FATE_PENDING ? "capture" : "void") == 0,
                "%s: %s (routing key %s)", what, f->body, f->routing_key);
        }
        if (!applied) {
            /* It holds nothing: what follows it finds no hold, and it never expires. */
            ck_assert_msg(h->n_expired_events == 0, "%s: rejected, and expired: %s", what, x->body);
            ck_assert_msg(f == NULL || (strcmp(f->status, "rejected") == 0 &&
                                        strcmp(f->reason, "hold_not_found") == 0),
                          "%s: rejected, then %s", what, f->body);
            continue;
        }
        /* Applied: resolved exactly once, by exactly one of them. */
        if (f != NULL && strcmp(f->status, "applied") == 0) {
            ck_assert_msg(h->n_expired_events == 0, "%s: %s, and expired: %s", what, f->body,
                          x->body);
            ck_assert_msg(strcmp(status, strcmp(f->type, "capture") == 0 ? "captured" : "voided") ==
                              0,
                          "%s: %s, and %s", what, f->body, status);
            if (strcmp(f->type, "capture") == 0) {
                int64_t posted = h->capture_amount ? h->capture_amount : h->amount;
                ck_assert_msg(!f->amount_null && f->amount == posted, "%s: %s, posting %" PRId64,
                              what, f->body, posted);
                run.accounts[h->debit].expected -= posted;
                run.accounts[h->credit].expected += posted;
            } else {
                ck_assert_msg(f->amount_null, "%s: %s", what, f->body);
            }
        } else if (h->fate == FATE_EXPIRE || (f != NULL && is_racer(h))) {
            /* Expired: its one hold.expired event, released within 5 s of its time. */
            int64_t released;
            ck_assert_msg(h->n_expired_events == 1, "%s: %d hold.expired events", what,
                          h->n_expired_events);
            ck_assert_msg(strcmp(x->type, "hold") == 0 && strcmp(x->status, "expired") == 0 &&
                              x->reason_null && x->detail_null && !x->duplicate &&
                              strcmp(x->correlation_id, h->id) == 0,
                          "%s: %s", what, x->body);
            ck_assert_msg(strcmp(status, "expired") == 0, "%s: %s, and %s", what, x->body, status);
            released = utc_us(x->processed_at, what);
            ck_assert_msg(released >= h->expires_us &&
                              released <= h->expires_us + RELEASE_WITHIN_US,
                          "%s: released at %s, %" PRId64 " ms after its expiry time", what,
                          x->processed_at, (released - h->expires_us) / 1000);
            if (f != NULL)
                ck_assert_msg(strcmp(f->reason, "hold_expired") == 0, "%s: expired, and %s", what,
                              f->body);
        } else {
            ck_abort_msg("%s: applied, neither resolved nor expired (%s)", what, status);
        }
        if (is_racer(h)) {
            /* Judged by the database's clock when applied: at or after the expiry, it lost. */
            int64_t d = utc_us(f->processed_at, what) - h->expires_us;
            if (strcmp(f->status, "applied") == 0) {
                ck_assert_msg(d < 0, "%s: applied %" PRId64 " us after the hold's expiry: %s", what,
                              d, f->body);
                races_won++;
                closest_win_us = d > closest_win_us ? d : closest_win_us;
            } else {
                races_lost++;
                lost_before += d < 0;
                /* The sweep had released it (its transaction began) before this one began. */
                lost_released += utc_us(x->processed_at, what) < utc_us(f->processed_at, what);
                closest_loss_us = d < closest_loss_us ? d : closest_loss_us;
            }
        }
    }
    ck_assert_int_eq(PQntuples(res), (int)n_sql);
    PQclear(res);
    lqt_step("%zu of %d holds applied; fates: %zu captured, %zu captured in part, %zu voided, "
             "%zu to expire, %zu raced by a capture, %zu by a void, %zu pending",
             applied_holds, N_HOLDS, by_fate[FATE_CAPTURE], by_fate[FATE_CAPTURE_PART],
             by_fate[FATE_VOID], by_fate[FATE_EXPIRE], by_fate[FATE_RACE_CAPTURE],
             by_fate[FATE_RACE_VOID], by_fate[FATE_PENDING]);
    lqt_step("races: %zu won (the latest %" PRId64 " ms before the expiry), %zu lost (%zu of them "
             "applied before the expiry time, after the sweep took the hold; %zu after the sweep "
             "had begun releasing it; the earliest %" PRId64 " ms from the expiry)",
             races_won, -closest_win_us / 1000, races_lost, lost_before, lost_released,
             closest_loss_us / 1000);
    /* Both outcomes happened: the captures and voids did race the sweeps. */
    ck_assert_uint_gt(races_won, 0);
    ck_assert_uint_gt(races_lost, 0);
    ck_assert_uint_gt(applied_holds, N_HOLDS / 2);
    ck_assert_uint_lt(applied_holds, N_HOLDS);

    /* payment show agrees, for a sample (the CLI is slow): every 50th hold and its follow-up. */
    for (int i = 0; i < N_HOLDS; i += 50) {
        const hold *h = &run.holds[i];
        const lqt_event *e = event_of(&run, h->event), *f = event_of(&run, h->follow_event);
        lqt_payment p;
        char err[512];
        ck_assert_msg(lqt_payment_show(run.ns, h->id, &p, err) == 0, "payment show %s: %s", h->id,
                      err);
        ck_assert_msg(strcmp(p.type, "hold") == 0 && strcmp(p.status, e->status) == 0 &&
                          strcmp(p.processed_at, e->processed_at) == 0 && p.n_legs == 1 &&
                          p.legs[0].amount == h->amount,
                      "%s: %s", h->id, p.raw);
        if (strcmp(e->status, "applied") != 0) {
            ck_assert_msg(p.hold_status[0] == '\0', "%s: %s", h->id, p.raw);
        } else {
            const char *want = h->n_expired_events                        ? "expired"
                               : is_capture(h) && h->fate != FATE_PENDING ? "captured"
                                                                          : "voided";
            ck_assert_msg(strcmp(p.hold_status, want) == 0, "%s: %s, expected %s", h->id, p.raw,
                          want);
            ck_assert_msg(h->timeout_s == 0
                              ? p.expires_at[0] == '\0'
                              : utc_us(p.expires_at, h->id) ==
                                    utc_us(e->processed_at, h->id) + h->timeout_s * 1000000LL,
                          "%s: timeout_s %d: %s", h->id, h->timeout_s, p.raw);
        }
        if (f != NULL) {
            ck_assert_msg(lqt_payment_show(run.ns, f->id, &p, err) == 0, "payment show %s: %s",
                          f->id, err);
            ck_assert_msg(strcmp(p.type, f->type) == 0 && strcmp(p.hold, h->id) == 0 &&
                              strcmp(p.status, f->status) == 0 &&
                              p.n_legs == (strcmp(f->type, "capture") == 0 &&
                                           strcmp(f->status, "applied") == 0) &&
                              (p.n_legs == 0 || p.legs[0].amount == f->amount),
                          "%s: %s, its event %s", f->id, p.raw, f->body);
        }
    }

    /* Nothing held any more, every balance what the captures posted, the invariants hold. */
    expect_held(&run, false);
    lqt_workload_check_balances(run.ns, run.accounts);
    ck_assert_msg(lqt_run(run.ns, &out, "audit") == 0, "audit exited %d: %s%s", out.status, out.out,
                  out.err);
    lqt_output_release(&out);
    {
        size_t left = 0;
        lq_delivery **rest = lqt_get_all(run.ns, run.ns->queue, &left);
        ck_assert_uint_eq(left, 0);
        lqt_deliveries_free(rest, left);
    }
    lqt_ns_destroy(run.ns);
}
END_TEST

int main(void)
{
    const lqt_suite suite = {.name = "concurrency", .timeout_s = 600};
    const lqt_case cases[] = {
        LQT_CASE("three_workers", three_workers_apply_each_payment_exactly_once),
        LQT_CASE("freezes", freezes_hold_under_three_workers),
        LQT_CASE("holds", holds_resolve_once_under_three_workers),
    };

    return LQT_MAIN(suite, cases);
}
