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
 * Every account the items name (a transfer's legs, an account command's
 * account), each once, as an array literal in ids.
 * Stored items too: which are stored is known only once the look-up ran,
 * in the same round trip as the lock.  Locking a redelivered payment's
 * accounts as well costs little, and keeps the one lock order.
 */
static int account_ids(const lq_item *items, size_t n, lq_db_array *ids)
{
    const char **names = NULL;
    size_t n_names = 0, cap = 0;

    for (size_t i = 0; i < n; i++)
        cap += 2 * items[i].command->n_legs + 1;
    names = malloc((cap ? cap : 1) * sizeof(*names));
    if (names == NULL)
        return LQ_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const lq_command *c = items[i].command;
        for (size_t l = 0; l < c->n_legs; l++) {
            names[n_names++] = c->legs[l].debit;
            names[n_names++] = c->legs[l].credit;
        }
        if (c->type == LQ_CMD_ACCOUNT_OPEN || c->type == LQ_CMD_ACCOUNT_UPDATE)
            names[n_names++] = c->change.account;
    }
    qsort(names, n_names, sizeof(*names), compare_strings);
    for (size_t i = 0; i < n_names; i++) {
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
            lq_db_array_text(ids, names[i]);
    }
    free(names);
    return LQ_OK;
}

/* Every hold the items' captures and voids name, each once, sorted, as an array literal in ids. */
static int hold_ids(const lq_item *items, size_t n, lq_db_array *ids, size_t *ret_n)
{
    const char **names = malloc((n ? n : 1) * sizeof(*names));
    size_t n_names = 0;

    *ret_n = 0;
    if (names == NULL)
        return LQ_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const lq_command *c = items[i].command;
        if (c->type == LQ_CMD_CAPTURE || c->type == LQ_CMD_VOID)
            names[n_names++] = c->hold;
    }
    qsort(names, n_names, sizeof(*names), compare_strings);
    for (size_t i = 0; i < n_names; i++) {
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0) {
            lq_db_array_text(ids, names[i]);
            (*ret_n)++;
        }
    }
    free(names);
    return LQ_OK;
}

int lq_db_read_holds(const PGresult *res, lq_book *book)
{
    int rows = PQntuples(res);

    for (int row = 0; row < rows;) {
        lq_hold h;
        int first = row;
        int r;

        memset(&h, 0, sizeof(h));
        lq_db_copy(h.id, sizeof(h.id), res, row, 0);
        if (!lq_hold_status_parse(PQgetvalue(res, row, 1), &h.status))
            return LQ_ERR_INTERNAL;
        h.past_expiry = lq_db_bool(res, row, 2);
        while (row < rows && strcmp(PQgetvalue(res, row, 0), h.id) == 0)
            row++;
        h.n_legs = (size_t)(row - first);
        if (h.n_legs > LQ_LEGS_MAX)
            return LQ_ERR_INTERNAL;
        h.legs = calloc(h.n_legs, sizeof(*h.legs));
        if (h.legs == NULL)
            return LQ_ERR_NOMEM;
        for (size_t l = 0; l < h.n_legs; l++) {
            lq_leg *leg = &h.legs[l];
            lq_db_copy(leg->debit, sizeof(leg->debit), res, first + (int)l, 4);
            lq_db_copy(leg->credit, sizeof(leg->credit), res, first + (int)l, 5);
            leg->amount = lq_db_int64(res, first + (int)l, 6);
            lq_db_copy(leg->currency, sizeof(leg->currency), res, first + (int)l, 7);
        }
        r = lq_book_add_hold(book, &h);
        if (r != LQ_OK) {
            free(h.legs);
            return r;
        }
    }
    return LQ_OK;
}

int lq_db_read_accounts(const PGresult *res, lq_book *book)
{
    for (int row = 0; row < PQntuples(res); row++) {
        lq_account a;
        int r;
        lq_db_read_account(res, row, &a, NULL);
        r = lq_book_add(book, &a);
        if (r != LQ_OK)
            return r;
    }
    return LQ_OK;
}

/*
 * The holds named by $1 (text[]), locked in id order, a row per leg (see
 * read_holds()); only applied holds have a row in holds.
 */
#define LOCK_HOLDS                                                                                 \
    "SELECT h.id, h.status, h.expires_at IS NOT NULL AND h.expires_at <= now(), e.n,"              \
    " e.l ->> 'debit', e.l ->> 'credit', (e.l ->> 'amount')::bigint, e.l ->> 'currency'"           \
    " FROM holds h JOIN payments p ON p.id = h.id"                                                 \
    " CROSS JOIN LATERAL jsonb_array_elements(p.legs) WITH ORDINALITY AS e(l, n)"                  \
    " WHERE h.id = ANY($1::text[]) ORDER BY h.id COLLATE \"C\", e.n FOR UPDATE OF h"

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
        it->stored_outcome.amount = lq_db_int64(res, row, 8);
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

/*
 * The look-up of stored outcomes: one index probe per id.  A lateral
 * subquery with LIMIT is never flattened into a join, which the planner
 * could otherwise run as a hash join over the whole (ever growing)
 * payments table.  A stored outcome's first event counts as confirmed when
 * its batch or the payment itself is recorded so, or when it has no batch
 * (stored by release 0.1.0).  The last column is what an applied capture of
 * a single-leg hold posted (the event's "amount"), else 0.
 */
static const char *const LOOKUP =
    "SELECT c.ord, p.status, p.reason, coalesce(p.detail, ''), " SQL_UTC(
        "p.processed_at") ","
                          " p.fingerprint = sha256(convert_to(c.canon, 'UTF8')),"
                          " p.batch_id IS NULL"
                          " OR EXISTS (SELECT 1 FROM ops_confirmed_batches b WHERE b.batch_id = "
                          "p.batch_id)"
                          " OR EXISTS (SELECT 1 FROM ops_confirmed_payments o WHERE o.payment_id = "
                          "p.id),"
                          " p.batch_id,"
                          " CASE WHEN p.type = 'capture' AND p.status = 'applied' AND "
                          "jsonb_array_length(p.legs) = 1"
                          " THEN (p.legs -> 0 ->> 'amount')::bigint ELSE 0 END"
                          " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS c(id, canon, "
                          "ord)"
                          " CROSS JOIN LATERAL (SELECT * FROM payments WHERE payments.id = c.id "
                          "LIMIT 1) AS p";

int lq_db_batch_load(lq_db *db, lq_item *items, size_t n, const lq_confirmations *c, lq_book *book,
                     char ret_now[LQ_TIMESTAMP_MAX], int64_t *ret_batch_id)
{
    lq_db_array ids, canons, accounts, holds, confirmed[2];
    const char *params[2], *lock_params[2], *confirmed_params[2] = {NULL, NULL};
    PGresult *now = NULL, *found = NULL, *held = NULL, *locked = NULL;
    bool record = c && !lq_confirmations_empty(c);
    size_t n_holds = 0;
    int r;

    lq_book_clear(book);
    lq_db_array_init(&ids);
    lq_db_array_init(&canons);
    lq_db_array_init(&accounts);
    lq_db_array_init(&holds);
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
    if (r == LQ_OK)
        r = hold_ids(items, n, &holds, &n_holds);
    if (r == LQ_OK && record)
        r = confirmation_params(c, confirmed, confirmed_params);
    if (r != LQ_OK)
        goto out;
    params[0] = lq_db_array_finish(&ids);
    params[1] = lq_db_array_finish(&canons);
    lock_params[0] = lq_db_array_finish(&accounts);
    lock_params[1] = lq_db_array_finish(&holds);
    if (!params[0] || !params[1] || !lock_params[0] || !lock_params[1]) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    {
        lq_db_step steps[6];
        size_t k = 0;

        steps[k++] = (lq_db_step){"could not begin a batch", "BEGIN", 0, NULL, NULL};
        /*
         * Before the look-up, which then counts them: a redelivery in this
         * very batch of a command whose event was just confirmed is a
         * duplicate.  Without confirmations to record, one statement fewer.
         */
        if (record)
            steps[k++] = (lq_db_step){"could not record confirmed events", RECORD_CONFIRMATIONS, 2,
                                      confirmed_params, NULL};
        steps[k++] = (lq_db_step){"could not read the time", LQ_DB_BATCH_NOW, 0, NULL, &now};
        steps[k++] = (lq_db_step){"could not look up payment ids", LOOKUP, 2, params, &found};
        /*
         * Every worker locks holds before accounts, each in the same (C
         * collation) order, so two batches never wait for each other in a
         * cycle; the expiry sweep skips the holds it would wait for.  Rows
         * are locked as the sorted output is produced.
         */
        if (n_holds > 0) {
            steps[k++] =
                (lq_db_step){"could not lock holds", LOCK_HOLDS, 1, &lock_params[1], &held};
            steps[k++] = (lq_db_step){"could not lock accounts", LQ_DB_LOCK_ACCOUNTS_AND_HOLDS, 2,
                                      lock_params, &locked};
        } else {
            steps[k++] = (lq_db_step){"could not lock accounts",
                                      "SELECT " LQ_DB_BATCH_ACCOUNT_COLUMNS " FROM accounts"
                                      " WHERE id = ANY($1::text[])"
                                      " ORDER BY id COLLATE \"C\" FOR UPDATE",
                                      1, lock_params, &locked};
        }
        /* One round trip. */
        r = lq_db_pipeline(db, steps, k);
    }
    if (r != LQ_OK)
        goto out;
    lq_db_copy(ret_now, LQ_TIMESTAMP_MAX, now, 0, 0);
    *ret_batch_id = lq_db_int64(now, 0, 1);
    r = read_stored(found, items, n);
    if (r == LQ_OK)
        r = lq_db_read_accounts(locked, book);
    if (r == LQ_OK && held)
        r = lq_db_read_holds(held, book);
out:
    PQclear(locked);
    PQclear(held);
    PQclear(found);
    PQclear(now);
    lq_db_array_release(&confirmed[1]);
    lq_db_array_release(&confirmed[0]);
    lq_db_array_release(&holds);
    lq_db_array_release(&accounts);
    lq_db_array_release(&canons);
    lq_db_array_release(&ids);
    if (r != LQ_OK)
        lq_db_rollback(db);
    return r;
}

void lq_db_batch_abort(lq_db *db)
{
    lq_db_rollback(db);
}

static bool is_account_command(const lq_command *c)
{
    return c->type == LQ_CMD_ACCOUNT_OPEN || c->type == LQ_CMD_ACCOUNT_UPDATE;
}

/*
 * The legs stored in payments.legs: those a transfer or hold asked for;
 * those an applied capture posted (its hold's legs, a single one with the
 * amount captured); none for the others.
 */
static char *legs_json(const lq_item *it, const lq_book *book)
{
    const lq_command *c = it->command;
    const lq_leg *legs = c->legs;
    size_t n_legs = c->n_legs;
    int64_t single = 0;
    lq_json w;

    if (c->type == LQ_CMD_CAPTURE) {
        const lq_hold *h = it->outcome.result == LQ_OK ? lq_book_find_hold(book, c->hold) : NULL;
        legs = h ? h->legs : NULL;
        n_legs = h ? h->n_legs : 0;
        single = h && h->n_legs == 1 ? h->captured : 0;
    }
    lq_json_init(&w);
    lq_json_array_begin(&w);
    for (size_t l = 0; l < n_legs; l++) {
        lq_json_object_begin(&w);
        lq_json_key(&w, "debit");
        lq_json_string(&w, legs[l].debit);
        lq_json_key(&w, "credit");
        lq_json_string(&w, legs[l].credit);
        lq_json_key(&w, "amount");
        lq_json_int(&w, single ? single : legs[l].amount);
        lq_json_key(&w, "currency");
        lq_json_string(&w, legs[l].currency);
        lq_json_object_end(&w);
    }
    lq_json_array_end(&w);
    return lq_json_steal(&w);
}

/*
 * What an account command gave, as the JSON stored in payments.change (for
 * `payment show`): the fields it set, its reason; NULL for transfers (and
 * when out of memory: the caller tells them apart by the type).
 */
static char *change_json(const lq_command *c)
{
    const lq_account_change *ch = &c->change;
    lq_json w;

    if (!is_account_command(c))
        return NULL;
    lq_json_init(&w);
    lq_json_object_begin(&w);
    if (c->type == LQ_CMD_ACCOUNT_OPEN) {
        lq_json_key(&w, "currency");
        lq_json_string(&w, ch->currency);
    }
    if (ch->set_status) {
        lq_json_key(&w, "status");
        lq_json_string(&w, lq_account_status_name(ch->status));
    }
    if (ch->set_allow_negative) {
        lq_json_key(&w, "allow_negative");
        lq_json_bool(&w, ch->allow_negative);
    }
    if (ch->set_overdraft_limit) {
        lq_json_key(&w, "overdraft_limit");
        lq_json_int(&w, ch->overdraft_limit);
    }
    if (ch->set_max_balance) {
        lq_json_key(&w, "max_balance");
        if (ch->max_balance > 0)
            lq_json_int(&w, ch->max_balance);
        else
            lq_json_null(&w);
    }
    if (ch->reason) {
        lq_json_key(&w, "reason");
        lq_json_string(&w, ch->reason);
    }
    lq_json_object_end(&w);
    return lq_json_steal(&w);
}

/* Close every array of a statement into params; LQ_ERR_NOMEM when one could not grow. */
static int finish_arrays(lq_db_array *a, size_t n, const char **params)
{
    int r = LQ_OK;

    for (size_t k = 0; k < n; k++) {
        params[k] = lq_db_array_finish(&a[k]);
        r = params[k] ? r : LQ_ERR_NOMEM;
    }
    return r;
}

static void init_arrays(lq_db_array *a, size_t n)
{
    for (size_t k = 0; k < n; k++)
        lq_db_array_init(&a[k]);
}

static void release_arrays(lq_db_array *a, size_t n)
{
    for (size_t k = 0; k < n; k++)
        lq_db_array_release(&a[k]);
}

enum {
    PAY_ID,
    PAY_CANON,
    PAY_STATUS,
    PAY_REASON,
    PAY_DETAIL,
    PAY_LEGS,
    PAY_REF,
    PAY_META,
    PAY_TYPE,
    PAY_ACCOUNT,
    PAY_CHANGE,
    PAY_HOLD,
    PAY_N
};

/* Add the stored outcome of it to the payments statement's arrays. */
static int add_outcome(lq_db_array *pay, const lq_item *it, const lq_book *book)
{
    const lq_command *c = it->command;
    bool applied = it->outcome.result == LQ_OK;
    bool resolves = c->type == LQ_CMD_CAPTURE || c->type == LQ_CMD_VOID;
    char *legs = legs_json(it, book), *change = change_json(c);
    int r = LQ_OK;

    if (legs == NULL || (change == NULL && is_account_command(c))) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    lq_db_array_text(&pay[PAY_ID], c->id);
    lq_db_array_text(&pay[PAY_CANON], c->canonical);
    lq_db_array_text(&pay[PAY_STATUS], applied ? "applied" : "rejected");
    lq_db_array_text(&pay[PAY_REASON], applied ? NULL : lq_error_code(it->outcome.result));
    lq_db_array_text(&pay[PAY_DETAIL], it->outcome.detail[0] ? it->outcome.detail : NULL);
    lq_db_array_text(&pay[PAY_LEGS], legs);
    lq_db_array_text(&pay[PAY_REF], c->reference);
    lq_db_array_text(&pay[PAY_META], c->metadata);
    lq_db_array_text(&pay[PAY_TYPE], lq_command_type_name(c->type));
    lq_db_array_text(&pay[PAY_ACCOUNT], is_account_command(c) ? c->change.account : NULL);
    lq_db_array_text(&pay[PAY_CHANGE], change);
    lq_db_array_text(&pay[PAY_HOLD], resolves ? c->hold : NULL);
out:
    free(legs);
    free(change);
    return r;
}

/* An account's row, opened or changed by the batch. */
enum {
    ACC_ID,
    ACC_CURRENCY,
    ACC_STATUS,
    ACC_ALLOW_NEGATIVE,
    ACC_OVERDRAFT,
    ACC_MAX_BALANCE,
    ACC_DEBITS,
    ACC_CREDITS,
    ACC_HELD_DEBITS,
    ACC_HELD_CREDITS,
    ACC_ENTRIES,
    ACC_N
};

static void add_account(lq_db_array *acc, const lq_account *a)
{
    lq_db_array_text(&acc[ACC_ID], a->id);
    lq_db_array_text(&acc[ACC_CURRENCY], a->currency);
    lq_db_array_text(&acc[ACC_STATUS], lq_account_status_name(a->status));
    lq_db_array_text(&acc[ACC_ALLOW_NEGATIVE], a->allow_negative ? "t" : "f");
    lq_db_array_int(&acc[ACC_OVERDRAFT], a->overdraft_limit);
    if (a->max_balance > 0)
        lq_db_array_int(&acc[ACC_MAX_BALANCE], a->max_balance);
    else
        lq_db_array_text(&acc[ACC_MAX_BALANCE], NULL);
    lq_db_array_int(&acc[ACC_DEBITS], a->debits);
    lq_db_array_int(&acc[ACC_CREDITS], a->credits);
    lq_db_array_int(&acc[ACC_HELD_DEBITS], a->held_debits);
    lq_db_array_int(&acc[ACC_HELD_CREDITS], a->held_credits);
    lq_db_array_int(&acc[ACC_ENTRIES], a->entries);
}

/* An account whose settings the batch left alone: its totals only. */
enum { TOT_ID, TOT_DEBITS, TOT_CREDITS, TOT_HELD_DEBITS, TOT_HELD_CREDITS, TOT_ENTRIES, TOT_N };

static void add_totals(lq_db_array *tot, const lq_account *a)
{
    lq_db_array_text(&tot[TOT_ID], a->id);
    lq_db_array_int(&tot[TOT_DEBITS], a->debits);
    lq_db_array_int(&tot[TOT_CREDITS], a->credits);
    lq_db_array_int(&tot[TOT_HELD_DEBITS], a->held_debits);
    lq_db_array_int(&tot[TOT_HELD_CREDITS], a->held_credits);
    lq_db_array_int(&tot[TOT_ENTRIES], a->entries);
}

enum {
    ENT_ACCOUNT,
    ENT_SEQ,
    ENT_COMMAND,
    ENT_TYPE,
    ENT_LEG,
    ENT_AMOUNT,
    ENT_BALANCE,
    ENT_HELD_DEBITS,
    ENT_HELD_CREDITS,
    ENT_CHANGE,
    ENT_N
};

static void add_entry(lq_db_array *ent, const lq_entry *e)
{
    lq_db_array_text(&ent[ENT_ACCOUNT], e->account);
    lq_db_array_int(&ent[ENT_SEQ], e->seq);
    lq_db_array_text(&ent[ENT_COMMAND], e->command);
    lq_db_array_text(&ent[ENT_TYPE], e->type);
    if (e->leg > 0)
        lq_db_array_int(&ent[ENT_LEG], e->leg);
    else
        lq_db_array_text(&ent[ENT_LEG], NULL);
    lq_db_array_int(&ent[ENT_AMOUNT], e->amount);
    lq_db_array_int(&ent[ENT_BALANCE], e->balance);
    lq_db_array_int(&ent[ENT_HELD_DEBITS], e->held_debits);
    lq_db_array_int(&ent[ENT_HELD_CREDITS], e->held_credits);
    lq_db_array_text(&ent[ENT_CHANGE], e->change);
}

/* The columns of an account row, as the statements below unnest them. */
#define ACCOUNT_UNNEST                                                                             \
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::bigint[],"                \
    " $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[])"       \
    " AS u(id, currency, status, allow_negative, overdraft_limit, max_balance, debits, credits,"   \
    " held_debits, held_credits, entries)"

/* The holds a batch placed (id, timeout_s) and resolved (id, status, resolved_by). */
enum { PLACED_ID, PLACED_TIMEOUT, PLACED_N };
enum { RESOLVED_ID, RESOLVED_STATUS, RESOLVED_BY, RESOLVED_N };

/* Add the book's placed and resolved holds to their statements' arrays; count them. */
static void add_holds(const lq_book *book, lq_db_array *placed, lq_db_array *resolved,
                      size_t *ret_placed, size_t *ret_resolved, size_t *ret_expired)
{
    for (size_t i = 0; i < book->n_holds; i++) {
        const lq_hold *h = &book->holds[i];
        if (h->placed) {
            lq_db_array_text(&placed[PLACED_ID], h->id);
            lq_db_array_int(&placed[PLACED_TIMEOUT], h->timeout_s);
            (*ret_placed)++;
        }
        if (h->changed) {
            lq_db_array_text(&resolved[RESOLVED_ID], h->id);
            lq_db_array_text(&resolved[RESOLVED_STATUS], lq_hold_status_name(h->status));
            lq_db_array_text(&resolved[RESOLVED_BY], h->resolved_by);
            (*ret_resolved)++;
            *ret_expired += h->status == LQ_HOLD_EXPIRED;
        }
    }
}

int lq_db_batch_store(lq_db *db, const lq_item *items, size_t n, const lq_book *book,
                      int64_t batch_id)
{
    lq_db_array pay[PAY_N], opened[ACC_N], changed[ACC_N], totals[TOT_N], ent[ENT_N],
        placed[PLACED_N], resolved[RESOLVED_N];
    const char *pay_params[PAY_N + 1], *opened_params[ACC_N], *changed_params[ACC_N],
        *totals_params[TOT_N], *ent_params[ENT_N], *placed_params[PLACED_N],
        *resolved_params[RESOLVED_N + 1];
    char batch[24];
    size_t n_pay = 0, n_opened = 0, n_changed = 0, n_totals = 0, n_placed = 0, n_resolved = 0,
           n_expired = 0;
    int r = LQ_OK;

    init_arrays(pay, PAY_N);
    init_arrays(opened, ACC_N);
    init_arrays(changed, ACC_N);
    init_arrays(totals, TOT_N);
    init_arrays(ent, ENT_N);
    init_arrays(placed, PLACED_N);
    init_arrays(resolved, RESOLVED_N);
    add_holds(book, placed, resolved, &n_placed, &n_resolved, &n_expired);
    for (size_t i = 0; i < n && r == LQ_OK; i++) {
        if (!items[i].insert)
            continue;
        r = add_outcome(pay, &items[i], book);
        n_pay++;
    }
    if (r != LQ_OK)
        goto out;
    for (size_t i = 0; i < book->n; i++) {
        const lq_account *a = &book->accounts[i];
        if (a->opened) {
            add_account(opened, a);
            n_opened++;
        } else if (a->settings_changed) {
            add_account(changed, a);
            n_changed++;
        } else if (a->changed) {
            add_totals(totals, a);
            n_totals++;
        }
    }
    for (size_t i = 0; i < book->n_entries; i++)
        add_entry(ent, &book->entries[i]);
    r = finish_arrays(pay, PAY_N, pay_params);
    if (r == LQ_OK)
        r = finish_arrays(opened, ACC_N, opened_params);
    if (r == LQ_OK)
        r = finish_arrays(changed, ACC_N, changed_params);
    if (r == LQ_OK)
        r = finish_arrays(totals, TOT_N, totals_params);
    if (r == LQ_OK)
        r = finish_arrays(ent, ENT_N, ent_params);
    if (r == LQ_OK)
        r = finish_arrays(placed, PLACED_N, placed_params);
    if (r == LQ_OK)
        r = finish_arrays(resolved, RESOLVED_N, resolved_params);
    if (r != LQ_OK)
        goto out;
    snprintf(batch, sizeof(batch), "%" PRId64, batch_id);
    pay_params[PAY_N] = batch;
    resolved_params[RESOLVED_N] = batch;

    {
        lq_db_step steps[10];
        size_t n_steps = 0;

        if (n_pay > 0)
            steps[n_steps++] = (lq_db_step){
                "could not store outcomes",
                "INSERT INTO payments (id, fingerprint, status, reason, detail, legs, reference,"
                " metadata, type, account, change, hold, processed_at, batch_id)"
                " SELECT id, sha256(convert_to(canon, 'UTF8')), status, reason, detail,"
                " legs::jsonb, reference, metadata::jsonb, type, account, change::jsonb, hold,"
                " now(), $13::bigint"
                " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
                " $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],"
                " $12::text[])"
                " AS t(id, canon, status, reason, detail, legs, reference, metadata, type,"
                " account, change, hold)",
                PAY_N + 1, pay_params, NULL};
        if (n_opened > 0)
            steps[n_steps++] = (lq_db_step){
                "could not open accounts",
                "INSERT INTO accounts (id, currency, status, allow_negative, overdraft_limit,"
                " max_balance, debits, credits, held_debits, held_credits, entries)"
                " SELECT *" ACCOUNT_UNNEST,
                ACC_N, opened_params, NULL};
        if (n_changed > 0)
            steps[n_steps++] = (lq_db_step){
                "could not update accounts",
                "UPDATE accounts AS a SET status = u.status, allow_negative = u.allow_negative,"
                " overdraft_limit = u.overdraft_limit, max_balance = u.max_balance,"
                " debits = u.debits, credits = u.credits, held_debits = u.held_debits,"
                " held_credits = u.held_credits, entries = u.entries" ACCOUNT_UNNEST
                " WHERE a.id = u.id",
                ACC_N, changed_params, NULL};
        /* Most accounts of a batch: the totals alone, fewer arrays to ship and parse. */
        if (n_totals > 0)
            steps[n_steps++] = (lq_db_step){
                "could not update account totals",
                "UPDATE accounts AS a SET debits = u.debits, credits = u.credits,"
                " held_debits = u.held_debits, held_credits = u.held_credits, entries = u.entries"
                " FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],"
                " $6::bigint[]) AS u(id, debits, credits, held_debits, held_credits, entries)"
                " WHERE a.id = u.id",
                TOT_N, totals_params, NULL};
        /*
         * The time of this statement: it runs under the accounts' row
         * locks, after whatever an earlier holder wrote, so the times along
         * an account's entries never go back.
         */
        if (book->n_entries > 0)
            steps[n_steps++] = (lq_db_step){
                "could not write the account history",
                "INSERT INTO account_entries (account_id, seq, command_id, type, leg, amount,"
                " balance, held_debits, held_credits, change, at)"
                " SELECT account_id, seq, command_id, type, leg, amount, balance, held_debits,"
                " held_credits, change::jsonb, statement_timestamp()"
                " FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::smallint[],"
                " $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[])"
                " AS e(account_id, seq, command_id, type, leg, amount, balance, held_debits,"
                " held_credits, change)",
                ENT_N, ent_params, NULL};
        /* A hold expires timeout_s after it was applied (now(): its processed_at). */
        if (n_placed > 0)
            steps[n_steps++] =
                (lq_db_step){"could not place holds",
                             "INSERT INTO holds (id, created_at, expires_at)"
                             " SELECT id, now(), CASE WHEN timeout_s > 0"
                             " THEN now() + timeout_s * interval '1 second' END"
                             " FROM unnest($1::text[], $2::bigint[]) AS h(id, timeout_s)",
                             PLACED_N, placed_params, NULL};
        /* After the placing: a hold placed and resolved by one batch is updated once inserted. */
        if (n_resolved > 0)
            steps[n_steps++] = (lq_db_step){
                "could not resolve holds",
                "UPDATE holds AS h SET status = u.status, resolved_by = u.resolved_by,"
                " resolved_at = now()"
                " FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, status, resolved_by)"
                " WHERE h.id = u.id",
                RESOLVED_N, resolved_params, NULL};
        /* The events an expiry owes, until the broker is seen to confirm them. */
        if (n_expired > 0)
            steps[n_steps++] = (lq_db_step){
                "could not record expiries",
                "INSERT INTO ops_hold_expiry_events (hold_id, batch_id, released_at, published_at)"
                " SELECT id, $4::bigint, now(), now()"
                " FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, status, resolved_by)"
                " WHERE status = 'expired'",
                RESOLVED_N + 1, resolved_params, NULL};
        steps[n_steps++] = (lq_db_step){"could not commit the batch", "COMMIT", 0, NULL, NULL};
        /* One round trip: a failure skips the rest, COMMIT included. */
        r = lq_db_pipeline(db, steps, n_steps);
    }
out:
    release_arrays(pay, PAY_N);
    release_arrays(opened, ACC_N);
    release_arrays(changed, ACC_N);
    release_arrays(totals, TOT_N);
    release_arrays(ent, ENT_N);
    release_arrays(placed, PLACED_N);
    release_arrays(resolved, RESOLVED_N);
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
