/*
 * The generated workloads of the concurrency, fault and upgrade suites: 100
 * accounts in two currencies, random payments between them, and what their
 * balances must be afterwards, recomputed by the test from the outcomes,
 * independently of the database.  A flow (lqt_flow_*) sends such a
 * workload through workers from a background publisher, for the scenarios
 * that fail or replace things while payments flow, and checks afterwards
 * what a user would.
 */
#ifndef LEDGERQ_TESTS_WORKLOAD_H
#define LEDGERQ_TESTS_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "support.h"

#define LQT_WORKLOAD_ACCOUNTS 100

/* An account of a workload. */
typedef struct lqt_workload_account {
    char id[32];          /* "acct:000" ... */
    const char *currency; /* "EUR" (even index) or "USD" (odd) */
    bool allow_negative;  /* all but every tenth */
    int64_t expected;     /* its balance, recomputed by the test from the outcomes */
} lqt_workload_account;

/* A xorshift generator: the same state gives the same numbers. */
uint32_t lqt_rng(uint64_t *state);

/*
 * Describe the LQT_WORKLOAD_ACCOUNTS accounts in ret and open them with
 * `ledgerq account import`.  A tenth may not go negative, so that
 * insufficient_funds happens and depends on the order workers commit in.
 */
void lqt_workload_accounts(lqt_ns *ns, lqt_workload_account *ret);

/*
 * A random payment: two different accounts (indexes), mostly of the same
 * currency, about one pair in fifty not (currency_mismatch), and an amount
 * from 1 to 10,000.
 */
void lqt_workload_payment(uint64_t *rng, int *ret_debit, int *ret_credit, int64_t *ret_amount);

/* The JSON command of a single-leg payment of amount from debit to credit, in debit's currency. */
void lqt_workload_json(char *out, size_t len, const char *id, const lqt_workload_account *debit,
                       const lqt_workload_account *credit, int64_t amount);

/*
 * `ledgerq account list --json` lists exactly the workload's accounts, each
 * with its expected balance.
 */
void lqt_workload_check_balances(lqt_ns *ns, const lqt_workload_account *accounts);

/* ------------------------------------------------------------ flows */

/* Every tenth payment of a flow is published twice, with the same content. */
#define LQT_FLOW_DUPLICATE_EVERY 10
/* Payments per publisher file. */
#define LQT_FLOW_CHUNK 500
/* Longest wait for the flow to be applied once the publisher is done, in seconds. */
#define LQT_FLOW_SETTLE_S    180
#define LQT_FLOW_WORKERS_MAX 4

/* One payment of a flow, and what the checks found of it. */
typedef struct lqt_flow_payment {
    char id[40];
    int debit, credit; /* account index */
    int64_t amount;
    int n_sent;   /* planned publishes of this id (the publisher may repeat some) */
    bool stored;  /* seen in the payments table */
    bool applied; /* its stored outcome */
    char status[16];
    char reason[64];
    char processed_at[64];
    bool has_events; /* its result events were found and checked */
} lqt_flow_payment;

/* A flow: accounts, payments, publisher files, workers. */
typedef struct lqt_flow {
    lqt_ns *ns;
    uint64_t rng; /* seeded per run (and logged): the workload, and the tests' random moments */
    lqt_workload_account accounts[LQT_WORKLOAD_ACCOUNTS];
    lqt_flow_payment *payments;
    size_t n_payments;
    size_t n_messages;
    char **files; /* NULL-terminated */
    lqt_listener *events;
    lqt_publisher *publisher;
    int n_workers;
    lqt_worker *workers[LQT_FLOW_WORKERS_MAX];
    /* Each worker's PGAPPNAME: who holds what in the database. */
    char worker_app[LQT_FLOW_WORKERS_MAX][32];
    int n_started;
    const char *const *worker_env;
} lqt_flow;

/*
 * Open the accounts, generate n payments (plus the extra lines given, each
 * a JSON command, put in the middle of the stream) and write the
 * publisher's files.  Declares the durable event queue before anything is
 * published.  Release with lqt_flow_release().
 */
void lqt_flow_init(lqt_flow *w, lqt_ns *ns, size_t n, const char *const *extra);

/* Free what the flow owns (not its namespace). */
void lqt_flow_release(lqt_flow *w);

/*
 * Start n_workers workers (with worker_env, NULL-terminated) and the
 * publisher, pause_ms between its files.
 */
void lqt_flow_start(lqt_flow *w, int n_workers, const char *const *worker_env, int pause_ms);

/*
 * Start a worker in slot, with the flow's worker_env: again after it was
 * killed or stopped, or a first time (slots 0 .. slot count as the flow's
 * workers from then on).
 */
void lqt_flow_start_worker(lqt_flow *w, int slot);

/* Every worker still runs and consumes, within LQT_WAIT_S: n_workers consumers on the queue. */
void lqt_flow_expect_consuming(lqt_flow *w);

/*
 * Wait until the worker has started consuming (its log says so): a signal
 * that comes before it installed its handlers would just end it.
 */
void lqt_flow_wait_consuming(lqt_worker *worker);

/* How many outcomes the payments table holds. */
long lqt_flow_stored(lqt_ns *ns);

/* Whether the payments are still flowing: the publisher runs, or some are not applied yet. */
bool lqt_flow_flowing(lqt_flow *w);

/*
 * Wait for the publisher, then until every payment (but expect_missing of
 * them) has its stored outcome and the queue is drained; stop every worker
 * with SIGTERM (each must exit 0).
 */
void lqt_flow_settle(lqt_flow *w, long expect_missing);

/*
 * What the user checks after a scenario: every payment has exactly one
 * stored outcome with its legs; the balances are what the outcomes add up
 * to; audit passes; the queue is drained with no consumer; every payment
 * got an event per time it was sent, all telling the stored outcome, at
 * least one of them with duplicate false.  dead is the list of ids that
 * must be in the dead-letter queue instead of the ledger (NULL-terminated,
 * may be NULL); the queue's messages themselves are the caller's to check.
 */
void lqt_flow_check(lqt_flow *w, const char *const *dead);

/* The dead-letter queue holds nothing. */
void lqt_flow_expect_no_dead_letters(lqt_flow *w);

#endif
