/*
 * The CLI's side of the ledger: opening and importing accounts, reading
 * accounts and stored payment outcomes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "ledgerq/error.h"

int lq_db_account_open(lq_db *db, const lq_account *a)
{
    const char *params[3] = {a->id, a->currency, a->allow_negative ? "true" : "false"};
    PGresult *res = PQexecParams(db->conn,
                                 "INSERT INTO accounts (id, currency, allow_negative)"
                                 " VALUES ($1, $2, $3::boolean)",
                                 3, NULL, params, NULL, NULL, 0);
    const char *state;

    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        return LQ_OK;
    }
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state && strcmp(state, "23505") == 0) {
        snprintf(db->err, sizeof(db->err), "account \"%s\" already exists", a->id);
        PQclear(res);
        return LQ_ERR_EXISTS;
    }
    return lq_db_fail(db, "could not open the account", res);
}

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

int lq_db_payment_get(lq_db *db, const char *id, lq_payment_record *ret)
{
    PGresult *res = NULL, *legs = NULL;
    lq_payment_record rec;
    int r;

    memset(&rec, 0, sizeof(rec));
    r = lq_db_run(db, "could not read the payment",
                  "SELECT id, status, reason, detail, " SQL_UTC(
                      "processed_at") ", reference,"
                                      " metadata::text FROM payments WHERE id = $1",
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
    r->legs = NULL;
    r->reference = NULL;
    r->metadata = NULL;
}
