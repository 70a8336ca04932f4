/*
 * `ledgerq audit`: the ledger invariants, each a query that lists its
 * violations, all read in one snapshot.
 */
#include <stdio.h>

#include "db_internal.h"
#include "ledgerq/error.h"

/* One invariant (docs/protocol.md sections 8, 13 and 15): a query listing its violations. */
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
    /*
     * Section 15: each account's history.  Every check is one pass over
     * account_entries (a hash aggregate, a hash join, or a window over the
     * primary key's order), never a lookup per entry: on 4,000,000 entries
     * of 1,000 accounts each takes one to five seconds.
     *
     * Numbered 1..n without gaps: seq is part of the primary key, so no two
     * entries share one, and n entries whose smallest seq is 1 and largest
     * is n are exactly 1..n.  An account has at least its opening.
     */
    {"history_numbered",
     "SELECT CASE WHEN e.n IS NULL"
     "         THEN format('account %s: no entries, its entries counter %s', a.id, a.entries)"
     "       ELSE format('account %s: %s entries numbered %s to %s, its entries counter %s',"
     "                   a.id, e.n, e.first, e.last, a.entries) END"
     " FROM accounts a"
     " LEFT JOIN (SELECT account_id, count(*) AS n, min(seq) AS first, max(seq) AS last"
     "              FROM account_entries GROUP BY account_id) e ON e.account_id = a.id"
     " WHERE e.n IS NULL OR e.first <> 1 OR e.last <> e.n OR e.last <> a.entries"
     " ORDER BY a.id LIMIT 1000"},
    {"history_account_exists",
     "SELECT format('account %s: no such account, but its history has entries %s to %s',"
     "              e.account_id, min(e.seq), max(e.seq))"
     " FROM account_entries e LEFT JOIN accounts a ON a.id = e.account_id"
     " WHERE a.id IS NULL GROUP BY e.account_id ORDER BY e.account_id LIMIT 1000"},
    /* Each entry against the one before it (by seq, whatever the gaps). */
    {"history_running_balance",
     "SELECT CASE WHEN prev_seq IS NULL"
     "         THEN format('account %s entry %s: balance %s, but the first entry''s balance is its'"
     "                     || ' amount %s', account_id, seq, balance, amount)"
     "       ELSE format('account %s entry %s: balance %s, but entry %s''s balance %s plus amount'"
     "                   || ' %s is %s', account_id, seq, balance, prev_seq, prev_balance, amount,"
     "                   prev_balance::numeric + amount) END"
     " FROM (SELECT account_id, seq, amount, balance, lag(seq) OVER w AS prev_seq,"
     "              lag(balance) OVER w AS prev_balance"
     "         FROM account_entries WINDOW w AS (PARTITION BY account_id ORDER BY seq)) e"
     " WHERE balance <> coalesce(prev_balance, 0)::numeric + amount"
     " ORDER BY account_id, seq LIMIT 1000"},
    /* `account show --at` searches the entries by time: at must not go back. */
    {"history_in_time_order",
     "SELECT format('account %s entry %s: at %s, before entry %s at %s', account_id, seq,"
     "              to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), prev_seq,"
     "              to_char(prev_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))"
     " FROM (SELECT account_id, seq, at, lag(seq) OVER w AS prev_seq, lag(at) OVER w AS prev_at"
     "         FROM account_entries WINDOW w AS (PARTITION BY account_id ORDER BY seq)) e"
     " WHERE at < prev_at ORDER BY account_id, seq LIMIT 1000"},
    /* The last entry is the one of the highest seq, whatever the entries counter says. */
    {"history_last_matches_account",
     "SELECT format('account %s: balance %s, held debits %s, held credits %s, but its last entry'"
     "              || ' %s has %s, %s, %s', a.id, a.credits::numeric - a.debits, a.held_debits,"
     "              a.held_credits, e.seq, e.balance, e.held_debits, e.held_credits)"
     " FROM accounts a"
     " JOIN (SELECT account_id, max(seq) AS seq FROM account_entries GROUP BY account_id) l"
     "   ON l.account_id = a.id"
     " JOIN account_entries e ON e.account_id = l.account_id AND e.seq = l.seq"
     " WHERE e.balance <> a.credits::numeric - a.debits OR e.held_debits <> a.held_debits"
     "    OR e.held_credits <> a.held_credits"
     " ORDER BY a.id LIMIT 1000"},
    {"history_sums_to_balance",
     "SELECT format('account %s: balance %s, but its entries'' amounts sum to %s',"
     "              a.id, a.credits::numeric - a.debits, coalesce(s.total, 0))"
     " FROM accounts a"
     " LEFT JOIN (SELECT account_id, sum(amount) AS total FROM account_entries"
     "             GROUP BY account_id) s ON s.account_id = a.id"
     " WHERE coalesce(s.total, 0) <> a.credits::numeric - a.debits"
     " ORDER BY a.id LIMIT 1000"},
    /*
     * Each applied leg changes its debit account by minus its amount and its
     * credit account by its amount: one transfer entry each, under the
     * transfer's id and the leg's number; and each transfer entry is one of
     * those.  Both sides are grouped by (transfer, leg, account) in one hash
     * aggregate, where a join per entry would look up payments millions of
     * times: the legs of the payments are read once (the CTE), and the
     * entries once.  On 2,000,000 transfers it takes some 17 seconds, most of
     * them reading the legs out of their JSON.
     */
    /*
     * Section 14: holds.  The held amounts are the sums over the pending
     * holds' legs (the legs read once, grouped with the accounts in one
     * pass, as above).
     */
    {"held_matches_holds",
     "WITH l AS MATERIALIZED (SELECT e.l ->> 'debit' AS debit, e.l ->> 'credit' AS credit,"
     "                               (e.l ->> 'amount')::numeric AS amount"
     "                          FROM holds h JOIN payments p ON p.id = h.id"
     "                         CROSS JOIN LATERAL jsonb_array_elements(p.legs) AS e(l)"
     "                         WHERE h.status = 'pending')"
     " SELECT format('account %s: held debits %s, held credits %s, but its pending holds'"
     "               || ' hold %s and %s', a.id, a.held_debits, a.held_credits,"
     "               coalesce(d.total, 0), coalesce(c.total, 0))"
     " FROM accounts a"
     " LEFT JOIN (SELECT debit AS id, sum(amount) AS total FROM l GROUP BY debit) d"
     "   ON d.id = a.id"
     " LEFT JOIN (SELECT credit AS id, sum(amount) AS total FROM l GROUP BY credit) c"
     "   ON c.id = a.id"
     " WHERE a.held_debits <> coalesce(d.total, 0) OR a.held_credits <> coalesce(c.total, 0)"
     " ORDER BY a.id LIMIT 1000"},
    /* Every applied hold is in holds, and nothing else is. */
    {"holds_are_applied_holds",
     "SELECT CASE WHEN h.id IS NULL THEN format('hold %s: applied, but not in holds', p.id)"
     "       ELSE format('hold %s: in holds, but no applied hold has that id', h.id) END"
     " FROM (SELECT id FROM payments WHERE type = 'hold' AND status = 'applied') p"
     " FULL JOIN holds h ON h.id = p.id"
     " WHERE p.id IS NULL OR h.id IS NULL ORDER BY coalesce(p.id, h.id) LIMIT 1000"},
    /*
     * Resolved at most once: at most one applied capture or void names a
     * hold, and it is the one its status and resolved_by name; a pending or
     * expired hold has none.
     */
    {"hold_resolved_once",
     "SELECT format('hold %s (%s, resolved by %s): applied captures and voids %s', h.id,"
     "              h.status, coalesce(h.resolved_by, 'none'),"
     "              coalesce(string_agg(p.type || ' ' || p.id, ', ' ORDER BY p.id), 'none'))"
     " FROM holds h"
     " LEFT JOIN payments p ON p.hold = h.id AND p.status = 'applied'"
     "   AND p.type IN ('capture', 'void')"
     " GROUP BY h.id, h.status, h.resolved_by"
     " HAVING count(p.id) > 1"
     "    OR (h.status IN ('pending', 'expired') AND count(p.id) <> 0)"
     "    OR (h.status IN ('captured', 'voided')"
     "        AND (count(p.id) <> 1 OR min(p.id) IS DISTINCT FROM h.resolved_by"
     "             OR min(p.type) <> CASE h.status WHEN 'captured' THEN 'capture'"
     "                                             ELSE 'void' END))"
     " ORDER BY h.id LIMIT 1000"},
    /* An applied capture or void resolved an applied hold (hold_not_found otherwise). */
    {"resolution_names_a_hold",
     "SELECT format('%s %s: applied, but hold %s was never applied', p.type, p.id, p.hold)"
     " FROM payments p LEFT JOIN holds h ON h.id = p.hold"
     " WHERE p.type IN ('capture', 'void') AND p.status = 'applied' AND h.id IS NULL"
     " ORDER BY p.id LIMIT 1000"},
    /*
     * A capture posts its hold's legs: each in full, or a single leg's
     * amount at most.
     */
    {"capture_within_hold",
     "SELECT format('capture %s of hold %s: posted %s, the hold held %s', c.id, c.hold,"
     "              c.legs, h.legs)"
     " FROM payments c JOIN payments h ON h.id = c.hold"
     " WHERE c.type = 'capture' AND c.status = 'applied'"
     "   AND NOT (jsonb_array_length(c.legs) = jsonb_array_length(h.legs)"
     "            AND CASE WHEN jsonb_array_length(h.legs) = 1"
     "                     THEN c.legs -> 0 ->> 'debit' = h.legs -> 0 ->> 'debit'"
     "                      AND c.legs -> 0 ->> 'credit' = h.legs -> 0 ->> 'credit'"
     "                      AND c.legs -> 0 ->> 'currency' = h.legs -> 0 ->> 'currency'"
     "                      AND (c.legs -> 0 ->> 'amount')::numeric"
     "                          BETWEEN 1 AND (h.legs -> 0 ->> 'amount')::numeric"
     "                     ELSE c.legs = h.legs END)"
     " ORDER BY c.id LIMIT 1000"},
    {"history_matches_legs",
     "WITH p AS MATERIALIZED (SELECT payment_id, leg, debit, credit, amount FROM postings)"
     " SELECT format('%s leg %s, account %s: the leg posts %s, the history has %s',"
     "               command_id, leg, account_id,"
     "               CASE count(*) FILTER (WHERE seq IS NULL)"
     "                 WHEN 0 THEN 'nothing'"
     "                 WHEN 1 THEN coalesce(sum(amount) FILTER (WHERE seq IS NULL)::text,"
     "                                      'an amount that is not a whole number')"
     "                 ELSE count(*) FILTER (WHERE seq IS NULL) || ' changes summing to '"
     "                      || coalesce(sum(amount) FILTER (WHERE seq IS NULL)::text, '?') END,"
     "               CASE count(seq)"
     "                 WHEN 0 THEN 'no entry'"
     "                 WHEN 1 THEN 'entry ' || min(seq) || ' of amount ' || sum(amount)"
     "                             FILTER (WHERE seq IS NOT NULL)"
     "                 ELSE count(seq) || ' entries from ' || min(seq) || ' summing to '"
     "                      || sum(amount) FILTER (WHERE seq IS NOT NULL) END)"
     " FROM (SELECT debit AS account_id, payment_id AS command_id, leg, -amount AS amount,"
     "              NULL::bigint AS seq FROM p"
     "       UNION ALL"
     "       SELECT credit, payment_id, leg, amount, NULL FROM p"
     "       UNION ALL"
     "       SELECT account_id, command_id, leg, amount, seq FROM account_entries"
     "        WHERE type IN ('transfer', 'capture')) AS x"
     " GROUP BY command_id, leg, account_id"
     " HAVING count(*) FILTER (WHERE seq IS NULL) <> count(seq)"
     "     OR sum(amount) FILTER (WHERE seq IS NULL)"
     "        IS DISTINCT FROM sum(amount) FILTER (WHERE seq IS NOT NULL)"
     " ORDER BY command_id, leg, account_id LIMIT 1000"},
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
