/*
 * The generated workloads of the concurrency and fault suites: 100
 * accounts in two currencies, random payments between them, and what their
 * balances must be afterwards, recomputed by the test from the outcomes,
 * independently of the database.
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

#endif
