/*
 * The CLI's reads of the ledger: accounts (now and as of a time), their
 * history, stored command outcomes; and the bench's bulk account insert.
 * The CLI's writes (account open, import, update) go through the batch
 * path (db_batch.c) like every command.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "ledgerq/error.h"

int lq_db_account_import(lq_db *db, const lq_account *accounts, size_t n, size_t *ret_failed)
{
    lq_db_array ids, currencies, negatives;
    const char *params[3];
    PGresult *res = NULL;
    int r;

    lq_db_array_init(&ids);
    lq_db_array_init(&currencies);
    lq_db_array_init(&negatives);
    for (size_t i = 0; i < n; i++) {
        lq_db_array_text(&ids, accounts[i].id);
        lq_db_array_text(&currencies, accounts[i].currency);
        lq_db_array_text(&negatives, accounts[i].allow_negative ? "t" : "f");
    }
    params[0] = lq_db_array_finish(&ids);
    params[1] = lq_db_array_finish(&currencies);
    params[2] = lq_db_array_finish(&negatives);
    if (!params[0] || !params[1] || !params[2]) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    r = lq_db_run(db, "could not import accounts",
                  "INSERT INTO accounts (id, currency, allow_negative)"
                  " SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[])",
                  3, params, NULL);
    if (r == LQ_ERR_DB_FAILED) {
        /* Name an id that is taken, if that is what failed. */
        if (lq_db_run(db, "could not import accounts",
                      "SELECT id FROM accounts WHERE id = ANY($1::text[]) ORDER BY id LIMIT 1", 1,
                      params, &res) == LQ_OK &&
            PQntuples(res) == 1) {
            for (size_t i = 0; i < n; i++) {
                if (strcmp(accounts[i].id, PQgetvalue(res, 0, 0)) == 0) {
                    snprintf(db->err, sizeof(db->err), "account \"%s\" already exists",
                             accounts[i].id);
                    if (ret_failed)
                        *ret_failed = i;
                    r = LQ_ERR_EXISTS;
                    break;
                }
            }
        }
    }
out:
    PQclear(res);
    lq_db_array_release(&ids);
    lq_db_array_release(&currencies);
    lq_db_array_release(&negatives);
    return r;
}

int lq_db_account_get(lq_db *db, const char *id, lq_account *ret,
                      char ret_created_at[LQ_TIMESTAMP_MAX])
{
    PGresult *res = NULL;
    int r = lq_db_run(db, "could not read the account",
                      "SELECT " LQ_DB_ACCOUNT_COLUMNS " FROM accounts WHERE id = $1", 1, &id, &res);

    if (r != LQ_OK)
        return r;
    if (PQntuples(res) == 0) {
        snprintf(db->err, sizeof(db->err), "account \"%s\" does not exist", id);
        r = LQ_ERR_NOT_FOUND;
    } else {
        lq_db_read_account(res, 0, ret, ret_created_at);
    }
    PQclear(res);
    return r;
}

int lq_db_account_list(lq_db *db, lq_db_account_fn fn, void *arg)
{
    PGresult *res = NULL;
    int r = lq_db_run(db, "could not list accounts",
                      "SELECT " LQ_DB_ACCOUNT_COLUMNS " FROM accounts ORDER BY id COLLATE \"C\"", 0,
                      NULL, &res);

    if (r != LQ_OK)
        return r;
    for (int row = 0; row < PQntuples(res); row++) {
        lq_account a;
        char created_at[LQ_TIMESTAMP_MAX];
        lq_db_read_account(res, row, &a, created_at);
        fn(&a, created_at, arg);
    }
    PQclear(res);
    return LQ_OK;
}

/*
 * jsonb's text form without the spaces it puts after ':' and ',': the
 * compact JSON every --json output prints.  Returns a new string (caller
 * frees), NULL for NULL or when out of memory.
 */
static char *compact_json(const char *text)
{
    bool in_string = false, escaped = false;
    char *out, *o;

    if (text == NULL || (out = malloc(strlen(text) + 1)) == NULL)
        return NULL;
    o = out;
    for (const char *p = text; *p; p++) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (*p == '\\')
                escaped = true;
            else if (*p == '"')
                in_string = false;
        } else if (*p == '"') {
            in_string = true;
        } else if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
            continue;
        }
        *o++ = *p;
    }
    *o = '\0';
    return out;
}

int lq_db_account_at(lq_db *db, const char *id, const char *at, lq_account_point *ret)
{
    const char *params[2] = {id, at};
    PGresult *res = NULL;
    lq_account_point p;
    /*
     * The binary search runs once (a materialized CTE), then two probes of
     * the primary key: the entry it found and the opening entry.
     */
    int r = lq_db_run(
        db, "could not read the account's history",
        "WITH a AS MATERIALIZED ("
        "  SELECT id, currency, $2::timestamptz AS t,"
        "         ledgerq_entry_seq_at(id, $2::timestamptz, true) - 1 AS seq"
        "    FROM accounts WHERE id = $1)"
        " SELECT a.id, a.currency, " SQL_UTC(
            "a.t") ", a.seq, e.balance,"
                   " e.held_debits, e.held_credits, " SQL_UTC("e.at") ", " SQL_UTC(
                       "f.at") " FROM a"
                               " LEFT JOIN account_entries e ON e.account_id = a.id AND e.seq = "
                               "a.seq"
                               " LEFT JOIN account_entries f ON f.account_id = a.id AND f.seq = 1",
        2, params, &res);

    if (r != LQ_OK)
        return r;
    if (PQntuples(res) == 0) {
        snprintf(db->err, sizeof(db->err), "account \"%s\" does not exist", id);
        PQclear(res);
        return LQ_ERR_NOT_FOUND;
    }
    memset(&p, 0, sizeof(p));
    lq_db_copy(p.id, sizeof(p.id), res, 0, 0);
    lq_db_copy(p.currency, sizeof(p.currency), res, 0, 1);
    lq_db_copy(p.at, sizeof(p.at), res, 0, 2);
    /* No entry that early: the seq is 0 and the entry's columns are NULL. */
    if (!PQgetisnull(res, 0, 4)) {
        p.seq = lq_db_int64(res, 0, 3);
        p.balance = lq_db_int64(res, 0, 4);
        p.held_debits = lq_db_int64(res, 0, 5);
        p.held_credits = lq_db_int64(res, 0, 6);
        lq_db_copy(p.entry_at, sizeof(p.entry_at), res, 0, 7);
    }
    lq_db_copy(p.opened_at, sizeof(p.opened_at), res, 0, 8);
    *ret = p;
    PQclear(res);
    return LQ_OK;
}

int lq_db_account_history(lq_db *db, const char *id, const lq_history_query *q, lq_db_entry_fn fn,
                          void *arg, int64_t *ret_next)
{
    char after[24], limit[16];
    const char *params[5] = {id, after, limit, q->since, q->until};
    PGresult *res = NULL;
    int rows, r;
    int64_t next = 0;

    if (q->limit < 1 || q->limit > LQ_HISTORY_PAGE_MAX || q->after < 0) {
        snprintf(db->err, sizeof(db->err), "a page holds 1 to %d entries, after a seq of 0 or more",
                 LQ_HISTORY_PAGE_MAX);
        return LQ_ERR_USAGE;
    }
    snprintf(after, sizeof(after), "%" PRId64, q->after);
    /* One entry more than the page: whether another follows, without a count. */
    snprintf(limit, sizeof(limit), "%d", q->limit + 1);
    /*
     * The time bounds become seq bounds once (a materialized CTE: each
     * binary search runs once); the page is then one range scan of the
     * primary key.  The left join keeps a row for an account without
     * entries in range, to tell it from an unknown account.
     */
    r = lq_db_run(db, "could not read the account's history",
                  "WITH b AS MATERIALIZED ("
                  "  SELECT id,"
                  "         CASE WHEN $4::timestamptz IS NULL THEN 1"
                  "              ELSE ledgerq_entry_seq_at(id, $4::timestamptz, false) END AS lo,"
                  "         CASE WHEN $5::timestamptz IS NULL THEN 9223372036854775807"
                  "              ELSE ledgerq_entry_seq_at(id, $5::timestamptz, true) - 1 END AS hi"
                  "    FROM accounts WHERE id = $1)"
                  " SELECT e.seq, e.command_id, e.type, coalesce(e.leg, 0), e.amount, e.balance,"
                  " e.held_debits, e.held_credits, " SQL_UTC(
                      "e.at") ", e.change::text"
                              " FROM b LEFT JOIN LATERAL ("
                              "   SELECT * FROM account_entries x"
                              "    WHERE x.account_id = b.id AND x.seq > $2::bigint AND x.seq >= "
                              "b.lo AND x.seq <= b.hi"
                              "    ORDER BY x.seq LIMIT $3::integer) AS e ON true"
                              " ORDER BY e.seq",
                  5, params, &res);
    if (r != LQ_OK)
        return r;
    rows = PQntuples(res);
    if (rows == 0) {
        snprintf(db->err, sizeof(db->err), "account \"%s\" does not exist", id);
        PQclear(res);
        return LQ_ERR_NOT_FOUND;
    }
    if (PQgetisnull(res, 0, 0))
        rows = 0;
    for (int row = 0; row < rows && row < q->limit; row++) {
        lq_entry e;
        char *change = NULL;

        memset(&e, 0, sizeof(e));
        e.seq = lq_db_int64(res, row, 0);
        e.command = PQgetvalue(res, row, 1);
        e.type = PQgetvalue(res, row, 2);
        e.leg = (int)lq_db_int64(res, row, 3);
        e.amount = lq_db_int64(res, row, 4);
        e.balance = lq_db_int64(res, row, 5);
        e.held_debits = lq_db_int64(res, row, 6);
        e.held_credits = lq_db_int64(res, row, 7);
        if (!PQgetisnull(res, row, 9)) {
            change = compact_json(PQgetvalue(res, row, 9));
            if (change == NULL) {
                PQclear(res);
                return LQ_ERR_NOMEM;
            }
        }
        e.change = change;
        fn(&e, PQgetvalue(res, row, 8), arg);
        free(change);
    }
    if (rows > q->limit)
        next = lq_db_int64(res, q->limit - 1, 0);
    PQclear(res);
    if (ret_next)
        *ret_next = next;
    return LQ_OK;
}

int lq_db_payment_get(lq_db *db, const char *id, lq_payment_record *ret)
{
    PGresult *res = NULL, *legs = NULL;
    lq_payment_record rec;
    int r;

    memset(&rec, 0, sizeof(rec));
    r = lq_db_run(
        db, "could not read the payment",
        "SELECT id, payments.status, reason, detail, " SQL_UTC(
            "processed_at") ", reference, metadata::text, type,"
                            " coalesce(account, ''), change::text,"
                            " coalesce(hold, ''), coalesce(h.status, ''),"
                            " coalesce(" SQL_UTC(
                                "h.expires_at") ", '')"
                                                " FROM payments LEFT JOIN holds h USING (id)"
                                                " WHERE id = $1",
        1, &id, &res);
    if (r != LQ_OK)
        goto out;
    if (PQntuples(res) == 0) {
        snprintf(db->err, sizeof(db->err), "payment \"%s\" is unknown", id);
        r = LQ_ERR_NOT_FOUND;
        goto out;
    }
    lq_db_copy(rec.id, sizeof(rec.id), res, 0, 0);
    rec.outcome.result = strcmp(PQgetvalue(res, 0, 1), "applied") == 0
                             ? LQ_OK
                             : lq_error_from_code(PQgetvalue(res, 0, 2));
    lq_db_copy(rec.outcome.detail, sizeof(rec.outcome.detail), res, 0, 3);
    lq_db_copy(rec.outcome.processed_at, sizeof(rec.outcome.processed_at), res, 0, 4);
    rec.reference = lq_db_strdup(res, 0, 5);
    rec.metadata = lq_db_strdup(res, 0, 6);
    lq_db_copy(rec.type, sizeof(rec.type), res, 0, 7);
    lq_db_copy(rec.account, sizeof(rec.account), res, 0, 8);
    lq_db_copy(rec.hold, sizeof(rec.hold), res, 0, 10);
    lq_db_copy(rec.hold_status, sizeof(rec.hold_status), res, 0, 11);
    lq_db_copy(rec.expires_at, sizeof(rec.expires_at), res, 0, 12);
    if (!PQgetisnull(res, 0, 9) && (rec.change = compact_json(PQgetvalue(res, 0, 9))) == NULL) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    if ((!PQgetisnull(res, 0, 5) && rec.reference == NULL) ||
        (!PQgetisnull(res, 0, 6) && rec.metadata == NULL)) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    /* jsonb keeps amounts as exact numerics: ->> gives their digits. */
    r = lq_db_run(db, "could not read the payment's legs",
                  "SELECT l->>'debit', l->>'credit', l->>'amount', l->>'currency'"
                  " FROM payments, jsonb_array_elements(legs) WITH ORDINALITY AS e(l, n)"
                  " WHERE id = $1 ORDER BY n",
                  1, &id, &legs);
    if (r != LQ_OK)
        goto out;
    rec.n_legs = (size_t)PQntuples(legs);
    rec.legs = calloc(rec.n_legs ? rec.n_legs : 1, sizeof(*rec.legs));
    if (rec.legs == NULL) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < rec.n_legs; i++) {
        lq_db_copy(rec.legs[i].debit, sizeof(rec.legs[i].debit), legs, (int)i, 0);
        lq_db_copy(rec.legs[i].credit, sizeof(rec.legs[i].credit), legs, (int)i, 1);
        rec.legs[i].amount = lq_db_int64(legs, (int)i, 2);
        lq_db_copy(rec.legs[i].currency, sizeof(rec.legs[i].currency), legs, (int)i, 3);
    }
    *ret = rec;
    memset(&rec, 0, sizeof(rec));
out:
    lq_payment_record_release(&rec);
    PQclear(legs);
    PQclear(res);
    return r;
}

void lq_payment_record_release(lq_payment_record *r)
{
    free(r->legs);
    free(r->reference);
    free(r->metadata);
    free(r->change);
    r->legs = NULL;
    r->reference = NULL;
    r->metadata = NULL;
    r->change = NULL;
}
