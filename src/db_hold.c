/*
 * The expiry sweep of holds (docs/protocol.md section 14): a transaction of
 * its own, two round trips when there is something to release.  Every
 * worker sweeps; FOR UPDATE SKIP LOCKED shares the work, and the row lock
 * on a hold decides between its expiry and a capture or void racing with
 * it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "ledgerq/error.h"

/* Expiries whose events the broker confirmed (their batch is recorded): nothing is owed. */
static const char *const FORGET_CONFIRMED =
    "DELETE FROM ops_hold_expiry_events x USING ops_confirmed_batches b"
    " WHERE b.batch_id = x.batch_id";

/*
 * Expiries whose last event went out more than $2 seconds ago without a
 * recorded confirm: the worker that published it died, or lost its
 * connection.  Taken over, under this sweep's batch number.
 */
static const char *const TAKE_OVER =
    "UPDATE ops_hold_expiry_events x SET batch_id = currval('payments_batch_id_seq'),"
    " published_at = now()"
    " WHERE x.hold_id IN (SELECT hold_id FROM ops_hold_expiry_events"
    " WHERE published_at < now() - $2::int * interval '1 second'"
    " ORDER BY published_at LIMIT $1::int FOR UPDATE SKIP LOCKED)"
    " RETURNING x.hold_id, " SQL_UTC("x.released_at");

/*
 * Pending holds past their expiry, the longest expired first, none that
 * another transaction holds (a batch capturing it, another sweep): a row
 * per leg, as lq_db_read_holds() reads them.
 */
static const char *const TAKE_EXPIRED =
    "WITH h AS (SELECT id FROM holds WHERE status = 'pending' AND expires_at <= now()"
    " ORDER BY expires_at LIMIT $1::int FOR UPDATE SKIP LOCKED)"
    " SELECT h.id, 'pending', true, e.n, e.l ->> 'debit', e.l ->> 'credit',"
    " (e.l ->> 'amount')::bigint, e.l ->> 'currency'"
    " FROM h JOIN payments p ON p.id = h.id"
    " CROSS JOIN LATERAL jsonb_array_elements(p.legs) WITH ORDINALITY AS e(l, n)"
    " ORDER BY h.id COLLATE \"C\", e.n";

void lq_expiries_release(lq_expiries *e)
{
    free(e->list);
    memset(e, 0, sizeof(*e));
}

static int add_expiry(lq_expiries *e, const char *id, const char *released_at)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 64;
        lq_expiry *grown = realloc(e->list, cap * sizeof(*grown));
        if (grown == NULL)
            return LQ_ERR_NOMEM;
        e->list = grown;
        e->cap = cap;
    }
    snprintf(e->list[e->n].id, sizeof(e->list[e->n].id), "%s", id);
    snprintf(e->list[e->n].released_at, sizeof(e->list[e->n].released_at), "%s", released_at);
    e->n++;
    return LQ_OK;
}

/* Lock the accounts of the book's holds, release each, and store it all (commits). */
static int release(lq_db *db, lq_book *book, int64_t batch_id)
{
    lq_db_array holds;
    const char *params[2] = {"{}", NULL};
    PGresult *locked = NULL;
    int r = LQ_OK;

    lq_db_array_init(&holds);
    for (size_t i = 0; i < book->n_holds; i++)
        lq_db_array_text(&holds, book->holds[i].id);
    params[1] = lq_db_array_finish(&holds);
    if (params[1] == NULL)
        r = LQ_ERR_NOMEM;
    if (r == LQ_OK)
        r = lq_db_run(db, "could not lock the accounts of expired holds",
                      LQ_DB_LOCK_ACCOUNTS_AND_HOLDS, 2, params, &locked);
    if (r == LQ_OK)
        r = lq_db_read_accounts(locked, book);
    for (size_t i = 0; i < book->n_holds && r == LQ_OK; i++) {
        r = lq_ledger_expire(book, book->holds[i].id);
        if (r != LQ_OK)
            snprintf(db->err, sizeof(db->err), "hold \"%s\" could not be released: %s",
                     book->holds[i].id, lq_strerror(r));
    }
    PQclear(locked);
    lq_db_array_release(&holds);
    if (r == LQ_OK)
        return lq_db_batch_store(db, NULL, 0, book, batch_id);
    lq_db_rollback(db);
    return r;
}

int lq_db_expire_holds(lq_db *db, lq_book *book, size_t limit, int republish_s, lq_expiries *out)
{
    char limit_text[24], republish_text[24];
    const char *params[2] = {limit_text, republish_text};
    PGresult *now = NULL, *again = NULL, *expired = NULL;
    char at[LQ_TIMESTAMP_MAX];
    int r;

    lq_book_clear(book);
    out->n = 0;
    out->batch_id = 0;
    snprintf(limit_text, sizeof(limit_text), "%zu", limit);
    snprintf(republish_text, sizeof(republish_text), "%d", republish_s);
    {
        lq_db_step steps[] = {
            {"could not begin an expiry sweep", "BEGIN", 0, NULL, NULL},
            {"could not read the time", LQ_DB_BATCH_NOW, 0, NULL, &now},
            {"could not forget confirmed expiries", FORGET_CONFIRMED, 0, NULL, NULL},
            {"could not take over unconfirmed expiries", TAKE_OVER, 2, params, &again},
            {"could not take expired holds", TAKE_EXPIRED, 1, params, &expired},
        };
        r = lq_db_pipeline(db, steps, sizeof(steps) / sizeof(steps[0]));
    }
    if (r != LQ_OK) {
        lq_db_rollback(db);
        return r;
    }
    lq_db_copy(at, sizeof(at), now, 0, 0);
    out->batch_id = lq_db_int64(now, 0, 1);
    r = lq_db_read_holds(expired, book);
    for (size_t i = 0; i < book->n_holds && r == LQ_OK; i++)
        r = add_expiry(out, book->holds[i].id, at);
    for (int row = 0; row < PQntuples(again) && r == LQ_OK; row++)
        r = add_expiry(out, PQgetvalue(again, row, 0), PQgetvalue(again, row, 1));
    PQclear(expired);
    PQclear(again);
    PQclear(now);
    if (r != LQ_OK) {
        lq_db_rollback(db);
        return r;
    }
    if (book->n_holds > 0)
        r = release(db, book, out->batch_id);
    else
        r = lq_db_run(db, "could not commit an expiry sweep", "COMMIT", 0, NULL, NULL);
    if (r != LQ_OK)
        out->n = 0;
    return r;
}
