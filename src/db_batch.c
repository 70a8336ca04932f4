/*
 * The worker's batch, in two round trips: load (begin, look up the ids,
 * lock the accounts in one order) and store (insert the outcomes, update
 * the totals, commit).  Values travel as array literals that statements
 * unnest: one statement per table per batch.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "ledgerq/error.h"
#include "ledgerq/json.h"

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Every account the items name, each once, as an array literal in ids.
 * Stored items too: which are stored is known only once the look-up ran,
 * in the same round trip as the lock.  Locking a redelivered payment's
 * accounts as well costs little, and keeps the one lock order.
 */
static int account_ids(const lq_item *items, size_t n, lq_db_array *ids)
{
    const char **names = NULL;
    size_t n_names = 0, cap = 0;

    for (size_t i = 0; i < n; i++)
        cap += 2 * items[i].command->n_legs;
    names = malloc((cap ? cap : 1) * sizeof(*names));
    if (names == NULL)
        return LQ_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const lq_command *p = items[i].command;
        for (size_t l = 0; l < p->n_legs; l++) {
            names[n_names++] = p->legs[l].debit;
            names[n_names++] = p->legs[l].credit;
        }
    }
    qsort(names, n_names, sizeof(*names), compare_strings);
    for (size_t i = 0; i < n_names; i++) {
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
            lq_db_array_text(ids, names[i]);
    }
    free(names);
    return LQ_OK;
}

/* Fill the items' stored outcomes from the look-up's rows. */
static int read_stored(const PGresult *res, lq_item *items, size_t n)
{
    for (int row = 0; row < PQntuples(res); row++) {
        int64_t ord = lq_db_int64(res, row, 0);
        lq_item *it;
        if (ord < 1 || (size_t)ord > n)
            return LQ_ERR_INTERNAL;
        it = &items[ord - 1];
        it->stored = true;
        it->stored_same = lq_db_bool(res, row, 5);
        it->stored_published = lq_db_bool(res, row, 6);
        it->stored_batch = PQgetisnull(res, row, 7) ? 0 : lq_db_int64(res, row, 7);
        memset(&it->stored_outcome, 0, sizeof(it->stored_outcome));
        it->stored_outcome.result = strcmp(PQgetvalue(res, row, 1), "applied") == 0
                                        ? LQ_OK
                                        : lq_error_from_code(PQgetvalue(res, row, 2));
        lq_db_copy(it->stored_outcome.detail, sizeof(it->stored_outcome.detail), res, row, 3);
        lq_db_copy(it->stored_outcome.processed_at, sizeof(it->stored_outcome.processed_at), res,
                   row, 4);
    }
    return LQ_OK;
}

/* Record c in the transaction under way: the statement and its two parameters. */
static const char *const RECORD_CONFIRMATIONS =
    "WITH b AS (INSERT INTO ops_confirmed_batches (batch_id)"
    "           SELECT unnest($1::bigint[]) ON CONFLICT DO NOTHING),"
    "     p AS (INSERT INTO ops_confirmed_payments (payment_id)"
    "           SELECT unnest($2::text[]) ON CONFLICT DO NOTHING)"
    " SELECT 1";

/* c as the two array parameters of RECORD_CONFIRMATIONS (in a and params). */
static int confirmation_params(const lq_confirmations *c, lq_db_array a[2], const char *params[2])
{
    for (size_t i = 0; i < c->n_batches; i++)
        lq_db_array_int(&a[0], c->batches[i]);
    for (size_t i = 0; i < c->n_payments; i++)
        lq_db_array_text(&a[1], c->payments[i]);
    params[0] = lq_db_array_finish(&a[0]);
    params[1] = lq_db_array_finish(&a[1]);
    return params[0] && params[1] ? LQ_OK : LQ_ERR_NOMEM;
}

int lq_db_record_confirmations(lq_db *db, const lq_confirmations *c)
{
    lq_db_array a[2];
    const char *params[2];
    int r;

    lq_db_array_init(&a[0]);
    lq_db_array_init(&a[1]);
    r = confirmation_params(c, a, params);
    if (r == LQ_OK)
        r = lq_db_run(db, "could not record confirmed events", RECORD_CONFIRMATIONS, 2, params,
                      NULL);
    lq_db_array_release(&a[0]);
    lq_db_array_release(&a[1]);
    return r;
}

enum { LOAD_BEGIN, LOAD_CONFIRMED, LOAD_NOW, LOAD_LOOKUP, LOAD_LOCK, LOAD_N };

int lq_db_batch_load(lq_db *db, lq_item *items, size_t n, const lq_confirmations *c, lq_book *book,
                     char ret_now[LQ_TIMESTAMP_MAX], int64_t *ret_batch_id)
{
    lq_db_array ids, canons, accounts, confirmed[2];
    const char *params[2], *account_param, *confirmed_params[2] = {NULL, NULL};
    PGresult *now = NULL, *found = NULL, *locked = NULL;
    bool record = c && !lq_confirmations_empty(c);
    int r;

    lq_book_clear(book);
    lq_db_array_init(&ids);
    lq_db_array_init(&canons);
    lq_db_array_init(&accounts);
    lq_db_array_init(&confirmed[0]);
    lq_db_array_init(&confirmed[1]);
    for (size_t i = 0; i < n; i++) {
        items[i].stored = false;
        items[i].stored_same = false;
        items[i].stored_published = false;
        items[i].stored_batch = 0;
        lq_db_array_text(&ids, items[i].command->id);
        lq_db_array_text(&canons, items[i].command->canonical);
    }
    r = account_ids(items, n, &accounts);
    if (r == LQ_OK && record)
        r = confirmation_params(c, confirmed, confirmed_params);
    if (r != LQ_OK)
        goto out;
    params[0] = lq_db_array_finish(&ids);
    params[1] = lq_db_array_finish(&canons);
    account_param = lq_db_array_finish(&accounts);
    if (!params[0] || !params[1] || !account_param) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    {
        lq_db_step steps[LOAD_N] = {
            [LOAD_BEGIN] = {"could not begin a batch", "BEGIN", 0, NULL, NULL},
            /*
             * Before the look-up, which then counts them: a redelivery in
             * this very batch of a command whose event was just confirmed
             * is a duplicate.
             */
            [LOAD_CONFIRMED] = {"could not record confirmed events", RECORD_CONFIRMATIONS, 2,
                                confirmed_params, NULL},
            /*
             * now() is the transaction's start: the processed_at of every
             * new outcome; the batch number labels them.  The batch's joins
             * all go through primary keys, a few hundred probes whatever
             * the tables' sizes; with small tables the planner would rather
             * hash a whole table per batch (the account totals update):
             * keep it to nested loops for this transaction.
             */
            [LOAD_NOW] = {"could not read the time",
                          "SELECT " SQL_UTC("now()") ", nextval('payments_batch_id_seq'),"
                                                     " set_config('enable_hashjoin', 'off', true),"
                                                     " set_config('enable_mergejoin', 'off', true)",
                          0, NULL, &now},
            /*
             * One index probe per id: a lateral subquery with LIMIT is
             * never flattened into a join, which the planner could
             * otherwise run as a hash join over the whole (ever growing)
             * payments table.  A stored outcome's first event counts as
             * confirmed when its batch or the payment itself is recorded
             * so, or when it has no batch (stored by release 0.1.0).
             */
            [LOAD_LOOKUP] = {"could not look up payment ids",
                             "SELECT c.ord, p.status, p.reason, coalesce(p.detail, ''), " SQL_UTC(
                                 "p.processed_at") ","
                                                   " p.fingerprint = sha256(convert_to(c.canon, "
                                                   "'UTF8')),"
                                                   " p.batch_id IS NULL"
                                                   " OR EXISTS (SELECT 1 FROM ops_confirmed_batches"
                                                   " b WHERE b.batch_id = p.batch_id)"
                                                   " OR EXISTS (SELECT 1 FROM"
                                                   " ops_confirmed_payments o"
                                                   " WHERE o.payment_id = p.id),"
                                                   " p.batch_id"
                                                   " FROM unnest($1::text[], $2::text[])"
                                                   " WITH ORDINALITY AS c(id, canon, ord)"
                                                   " CROSS JOIN LATERAL (SELECT * FROM payments"
                                                   " WHERE payments.id = c.id LIMIT 1) AS p",
                             2, params, &found},
            /*
             * Every worker locks in the same (C collation) order, so two
             * batches never wait for each other in a cycle.  Rows are
             * locked as the sorted output is produced.
             */
            [LOAD_LOCK] = {"could not lock accounts",
                           "SELECT id, currency, allow_negative, debits, credits FROM accounts"
                           " WHERE id = ANY($1::text[]) ORDER BY id COLLATE \"C\" FOR UPDATE",
                           1, &account_param, &locked},
        };
        /* One round trip; without confirmations to record, one statement fewer. */
        if (record) {
            r = lq_db_pipeline(db, steps, LOAD_N);
        } else {
            steps[LOAD_CONFIRMED] = steps[LOAD_BEGIN];
            r = lq_db_pipeline(db, steps + LOAD_CONFIRMED, LOAD_N - LOAD_CONFIRMED);
        }
    }
    if (r != LQ_OK)
        goto out;
    lq_db_copy(ret_now, LQ_TIMESTAMP_MAX, now, 0, 0);
    *ret_batch_id = lq_db_int64(now, 0, 1);
    r = read_stored(found, items, n);
    if (r != LQ_OK)
        goto out;
    for (int row = 0; row < PQntuples(locked); row++) {
        lq_account a;
        lq_db_read_account(locked, row, &a, NULL);
        r = lq_book_add(book, &a);
        if (r != LQ_OK)
            goto out;
    }
out:
    PQclear(locked);
    PQclear(found);
    PQclear(now);
    lq_db_array_release(&confirmed[1]);
    lq_db_array_release(&confirmed[0]);
    lq_db_array_release(&accounts);
    lq_db_array_release(&canons);
    lq_db_array_release(&ids);
    if (r != LQ_OK)
        lq_db_rollback(db);
    return r;
}

/* The requested legs as the JSON stored in payments.legs. */
static char *legs_json(const lq_command *p)
{
    lq_json w;

    lq_json_init(&w);
    lq_json_array_begin(&w);
    for (size_t l = 0; l < p->n_legs; l++) {
        lq_json_object_begin(&w);
        lq_json_key(&w, "debit");
        lq_json_string(&w, p->legs[l].debit);
        lq_json_key(&w, "credit");
        lq_json_string(&w, p->legs[l].credit);
        lq_json_key(&w, "amount");
        lq_json_int(&w, p->legs[l].amount);
        lq_json_key(&w, "currency");
        lq_json_string(&w, p->legs[l].currency);
        lq_json_object_end(&w);
    }
    lq_json_array_end(&w);
    return lq_json_steal(&w);
}

enum { PAY_ID, PAY_CANON, PAY_STATUS, PAY_REASON, PAY_DETAIL, PAY_LEGS, PAY_REF, PAY_META, PAY_N };
enum { ACC_ID, ACC_DEBITS, ACC_CREDITS, ACC_N };

int lq_db_batch_store(lq_db *db, const lq_item *items, size_t n, const lq_book *book,
                      int64_t batch_id)
{
    lq_db_array pay[PAY_N], acc[ACC_N];
    const char *pay_params[PAY_N + 1], *acc_params[ACC_N];
    char batch[24];
    size_t n_pay = 0, n_acc = 0;
    int r = LQ_OK;

    for (int k = 0; k < PAY_N; k++)
        lq_db_array_init(&pay[k]);
    for (int k = 0; k < ACC_N; k++)
        lq_db_array_init(&acc[k]);

    for (size_t i = 0; i < n; i++) {
        const lq_item *it = &items[i];
        const lq_command *p = it->command;
        bool applied = it->outcome.result == LQ_OK;
        char *legs;
        if (!it->insert)
            continue;
        legs = legs_json(p);
        if (legs == NULL) {
            r = LQ_ERR_NOMEM;
            goto out;
        }
        lq_db_array_text(&pay[PAY_ID], p->id);
        lq_db_array_text(&pay[PAY_CANON], p->canonical);
        lq_db_array_text(&pay[PAY_STATUS], applied ? "applied" : "rejected");
        lq_db_array_text(&pay[PAY_REASON], applied ? NULL : lq_error_code(it->outcome.result));
        lq_db_array_text(&pay[PAY_DETAIL], it->outcome.detail[0] ? it->outcome.detail : NULL);
        lq_db_array_text(&pay[PAY_LEGS], legs);
        lq_db_array_text(&pay[PAY_REF], p->reference);
        lq_db_array_text(&pay[PAY_META], p->metadata);
        free(legs);
        n_pay++;
    }
    for (size_t i = 0; i < book->n; i++) {
        const lq_account *a = &book->accounts[i];
        if (!a->changed)
            continue;
        lq_db_array_text(&acc[ACC_ID], a->id);
        lq_db_array_int(&acc[ACC_DEBITS], a->debits);
        lq_db_array_int(&acc[ACC_CREDITS], a->credits);
        n_acc++;
    }
    for (int k = 0; k < PAY_N; k++)
        pay_params[k] = lq_db_array_finish(&pay[k]);
    for (int k = 0; k < ACC_N; k++)
        acc_params[k] = lq_db_array_finish(&acc[k]);
    for (int k = 0; k < PAY_N; k++)
        r = pay_params[k] ? r : LQ_ERR_NOMEM;
    for (int k = 0; k < ACC_N; k++)
        r = acc_params[k] ? r : LQ_ERR_NOMEM;
    if (r != LQ_OK)
        goto out;
    snprintf(batch, sizeof(batch), "%" PRId64, batch_id);
    pay_params[PAY_N] = batch;

    {
        lq_db_step steps[3];
        size_t n_steps = 0;

        if (n_pay > 0)
            steps[n_steps++] = (lq_db_step){
                "could not store outcomes",
                "INSERT INTO payments (id, fingerprint, status, reason, detail, legs, reference,"
                " metadata, processed_at, batch_id)"
                " SELECT id, sha256(convert_to(canon, 'UTF8')), status, reason, detail,"
                " legs::jsonb, reference, metadata::jsonb, now(), $9::bigint"
                " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
                " $6::text[], $7::text[], $8::text[])"
                " AS t(id, canon, status, reason, detail, legs, reference, metadata)",
                PAY_N + 1, pay_params, NULL};
        if (n_acc > 0)
            steps[n_steps++] = (lq_db_step){
                "could not update account totals",
                "UPDATE accounts AS a SET debits = u.debits, credits = u.credits"
                " FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(id, debits, credits)"
                " WHERE a.id = u.id",
                ACC_N, acc_params, NULL};
        steps[n_steps++] = (lq_db_step){"could not commit the batch", "COMMIT", 0, NULL, NULL};
        /* One round trip: a failure skips the rest, COMMIT included. */
        r = lq_db_pipeline(db, steps, n_steps);
    }
out:
    for (int k = 0; k < PAY_N; k++)
        lq_db_array_release(&pay[k]);
    for (int k = 0; k < ACC_N; k++)
        lq_db_array_release(&acc[k]);
    if (r != LQ_OK)
        lq_db_rollback(db);
    return r;
}

int lq_confirmations_add_batch(lq_confirmations *c, int64_t batch_id)
{
    if (c->n_batches == c->cap_batches) {
        size_t cap = c->cap_batches ? 2 * c->cap_batches : 16;
        int64_t *grown = realloc(c->batches, cap * sizeof(*grown));
        if (grown == NULL)
            return LQ_ERR_NOMEM;
        c->batches = grown;
        c->cap_batches = cap;
    }
    c->batches[c->n_batches++] = batch_id;
    return LQ_OK;
}

int lq_confirmations_add_payment(lq_confirmations *c, const char *payment_id)
{
    if (c->n_payments == c->cap_payments) {
        size_t cap = c->cap_payments ? 2 * c->cap_payments : 16;
        char(*grown)[LQ_ID_MAX + 1] = realloc(c->payments, cap * sizeof(*grown));
        if (grown == NULL)
            return LQ_ERR_NOMEM;
        c->payments = grown;
        c->cap_payments = cap;
    }
    snprintf(c->payments[c->n_payments++], LQ_ID_MAX + 1, "%s", payment_id);
    return LQ_OK;
}

int lq_confirmations_move(lq_confirmations *c, lq_confirmations *from)
{
    size_t batches = c->n_batches, payments = c->n_payments;

    for (size_t i = 0; i < from->n_batches; i++) {
        if (lq_confirmations_add_batch(c, from->batches[i]) != LQ_OK)
            goto fail;
    }
    for (size_t i = 0; i < from->n_payments; i++) {
        if (lq_confirmations_add_payment(c, from->payments[i]) != LQ_OK)
            goto fail;
    }
    lq_confirmations_clear(from);
    return LQ_OK;
fail:
    c->n_batches = batches;
    c->n_payments = payments;
    return LQ_ERR_NOMEM;
}

void lq_confirmations_clear(lq_confirmations *c)
{
    c->n_batches = 0;
    c->n_payments = 0;
}

void lq_confirmations_release(lq_confirmations *c)
{
    free(c->batches);
    free(c->payments);
    memset(c, 0, sizeof(*c));
}

bool lq_confirmations_empty(const lq_confirmations *c)
{
    return c->n_batches == 0 && c->n_payments == 0;
}
