/*
 * `ledgerq audit`: the ledger invariants, each a query that lists its
 * violations, all read in one snapshot.
 */
#include <stdio.h>

#include "db_internal.h"
#include "ledgerq/error.h"

/* One invariant of docs/protocol.md section 8: a query listing its violations. */
typedef struct audit_check {
    const char *invariant;
    const char *sql; /* each row: one column, the violation's detail */
} audit_check;

/*
 * postings is a view of the legs of applied payments (sql/002): an applied
 * payment has exactly its legs posted and a rejected one none by
 * construction.  One stored outcome per payment id is the payments table's
 * primary key: no query could find a second.  What the postings table's constraints enforced before
 * is checked here instead.
 */
static const audit_check audit_checks[] = {
    /*
     * The postings are read once into the CTE: left to itself, the planner
     * walks payments in id order for the ORDER BY ... LIMIT and joins each
     * leg to a full scan of accounts (it takes a payment for 100 legs),
     * payments times accounts: six minutes for 2,000,000 payments and 1,000
     * accounts, against ten seconds with hash joins over the CTE.
     */
    {"posting_balanced",
     "WITH p AS MATERIALIZED (SELECT * FROM postings)"
     " SELECT format('posting %s leg %s: %s', p.payment_id, p.leg,"
     "  CASE WHEN p.debit IS NULL OR p.credit IS NULL OR p.currency IS NULL"
     "         THEN 'the leg lacks a debit, credit or currency'"
     "       WHEN p.amount IS NULL THEN 'the amount is not a whole number of minor units'"
     "       WHEN p.amount <= 0 THEN 'amount ' || p.amount || ' is not positive'"
     "       WHEN p.debit = p.credit THEN 'debits and credits the same account'"
     "       WHEN d.id IS NULL THEN format('debit account %s does not exist', p.debit)"
     "       WHEN c.id IS NULL THEN format('credit account %s does not exist', p.credit)"
     "       ELSE format('currency %s differs from account %s (%s) or %s (%s)',"
     "                   p.currency, d.id, d.currency, c.id, c.currency) END)"
     " FROM p LEFT JOIN accounts d ON d.id = p.debit"
     " LEFT JOIN accounts c ON c.id = p.credit"
     " WHERE p.debit IS NULL OR p.credit IS NULL OR p.currency IS NULL OR p.amount IS NULL"
     "    OR p.amount <= 0 OR p.debit = p.credit OR d.id IS NULL OR c.id IS NULL"
     "    OR d.currency <> p.currency OR c.currency <> p.currency"
     " ORDER BY p.payment_id, p.leg LIMIT 1000"},
    {"currency_sums_to_zero",
     "SELECT format('currency %s: balances sum to %s', currency, sum(credits - debits))"
     " FROM accounts GROUP BY currency HAVING sum(credits - debits) <> 0 ORDER BY currency"},
    {"totals_match_postings",
     "SELECT format('account %s: stored debits %s credits %s, postings debit %s credit %s',"
     "              a.id, a.debits, a.credits, coalesce(d.total, 0), coalesce(c.total, 0))"
     " FROM accounts a"
     " LEFT JOIN (SELECT debit AS id, sum(amount) AS total FROM postings GROUP BY debit) d"
     "   ON d.id = a.id"
     " LEFT JOIN (SELECT credit AS id, sum(amount) AS total FROM postings GROUP BY credit) c"
     "   ON c.id = a.id"
     " WHERE a.debits <> coalesce(d.total, 0) OR a.credits <> coalesce(c.total, 0)"
     " ORDER BY a.id LIMIT 1000"},
    /*
     * Sections 13 and 14: the floor is 0, or minus the overdraft limit, or
     * none with allow_negative; the ceiling max_balance, or none when NULL.
     * In numeric: a balance less held debits, or plus held credits, may
     * leave bigint's range.
     */
    {"within_floor",
     "SELECT format('account %s: available %s (balance %s less held debits %s) below floor %s',"
     "              id, credits::numeric - debits - held_debits, credits::numeric - debits,"
     "              held_debits, -overdraft_limit::numeric)"
     " FROM accounts"
     " WHERE NOT allow_negative"
     "   AND credits::numeric - debits - held_debits < -overdraft_limit::numeric"
     " ORDER BY id LIMIT 1000"},
    {"within_ceiling",
     "SELECT format('account %s: balance %s plus held credits %s is %s, above its ceiling %s',"
     "              id, credits::numeric - debits, held_credits,"
     "              credits::numeric - debits + held_credits, max_balance)"
     " FROM accounts WHERE credits::numeric - debits + held_credits > max_balance"
     " ORDER BY id LIMIT 1000"},
    /*
     * Section 13: the statuses, and a closed account's emptiness.  The
     * table's constraint on the status was added NOT VALID: rows written
     * before it are not checked by it.
     */
    {"status_known",
     "SELECT format('account %s: unknown status \"%s\"', id, status)"
     " FROM accounts WHERE status IS NULL OR status NOT IN ('active', 'frozen', 'closed')"
     " ORDER BY id LIMIT 1000"},
    {"closed_account_empty",
     "SELECT format('account %s: closed with balance %s, held debits %s, held credits %s',"
     "              id, credits::numeric - debits, held_debits, held_credits)"
     " FROM accounts"
     " WHERE status = 'closed' AND (credits <> debits OR held_debits <> 0 OR held_credits <> 0)"
     " ORDER BY id LIMIT 1000"},
};

int lq_db_audit(lq_db *db, lq_db_violation_fn fn, void *arg, size_t *ret_violations)
{
    size_t violations = 0;
    int r;

    /* One snapshot for all checks: sums and postings seen at the same instant. */
    r = lq_db_run(db, "could not start the audit",
                  "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, NULL);
    if (r != LQ_OK)
        return r;
    for (size_t i = 0; i < sizeof(audit_checks) / sizeof(audit_checks[0]); i++) {
        PGresult *res = NULL;
        r = lq_db_run(db, audit_checks[i].invariant, audit_checks[i].sql, 0, NULL, &res);
        if (r != LQ_OK)
            goto out;
        for (int row = 0; row < PQntuples(res); row++) {
            fn(audit_checks[i].invariant, PQgetvalue(res, row, 0), arg);
            violations++;
        }
        PQclear(res);
    }
    r = lq_db_run(db, "could not finish the audit", "COMMIT", 0, NULL, NULL);
out:
    lq_db_rollback(db);
    if (r == LQ_OK && ret_violations)
        *ret_violations = violations;
    return r;
}
