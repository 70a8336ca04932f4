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
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    const lqt_suite suite = {.name = "concurrency", .timeout_s = 600};
    const lqt_case cases[] = {
        LQT_CASE("three_workers", three_workers_apply_each_payment_exactly_once),
    };

    return LQT_MAIN(suite, cases);
}
