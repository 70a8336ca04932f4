/*
 * The rules of holds (docs/protocol.md section 14): a hold reserves a
 * transfer's legs (checked by the transfer's lq_ledger_check_leg()), a
 * capture posts them, a void or an expiry gives them back; and the history
 * entries each makes (section 15).
 *
 * A resolution (capture, void, expiry) first releases every held amount of
 * the hold, then appends its entries: each entry's held values show the
 * release of the whole hold (section 15), whichever leg it is of.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/error.h"
#include "ledgerq/ledger.h"
#include "ledger_internal.h"

#define ENTRY_CAPTURE "capture"
#define ENTRY_VOID    "void"
#define ENTRY_EXPIRY  "expiry"

int lq_ledger_apply_hold(lq_book *book, const lq_command *c, lq_undo *undo, char *detail,
                         size_t detail_len)
{
    lq_hold h;
    int r;

    if (c->timeout_s < 0 || c->timeout_s > LQ_TIMEOUT_MAX) {
        snprintf(detail, detail_len, "hold has timeout_s %" PRId64 ", not 0 to %d", c->timeout_s,
                 LQ_TIMEOUT_MAX);
        return LQ_ERR_INTERNAL;
    }
    /* Ids are unique forever: a hold already in the book was applied, so this one is stored. */
    if (lq_book_find_hold(book, c->id)) {
        snprintf(detail, detail_len, "hold \"%s\" is in the book already", c->id);
        return LQ_ERR_INTERNAL;
    }
    /* As a transfer's legs, held instead of posted. */
    r = lq_ledger_take_legs(book, c, true, undo, detail, detail_len);
    if (r != LQ_OK)
        return r;
    memset(&h, 0, sizeof(h));
    snprintf(h.id, sizeof(h.id), "%s", c->id);
    h.status = LQ_HOLD_PENDING;
    h.n_legs = c->n_legs;
    h.timeout_s = c->timeout_s;
    h.placed = true;
    h.legs = malloc(c->n_legs * sizeof(*h.legs));
    if (!h.legs)
        return LQ_ERR_NOMEM;
    memcpy(h.legs, c->legs, c->n_legs * sizeof(*h.legs));
    r = lq_book_add_hold(book, &h);
    if (r != LQ_OK) {
        free(h.legs);
        return r == LQ_ERR_EXISTS ? LQ_ERR_INTERNAL : r;
    }
    lq_ledger_undo_added_hold(undo, h.id);
    return LQ_OK;
}

/*
 * The checks a capture and a void share, in the order of docs/protocol.md
 * section 14: hold_not_found, hold_already_captured, hold_already_voided,
 * hold_expired.  On LQ_OK stores the pending hold in *ret_hold; otherwise
 * writes detail.
 */
static int check_resolvable(const lq_book *book, const lq_command *c, lq_hold **ret_hold,
                            char *detail, size_t detail_len)
{
    const char *what = c->type == LQ_CMD_CAPTURE ? "capture" : "void";
    lq_hold *h;

    if (!memchr(c->hold, '\0', sizeof(c->hold)) || c->hold[0] == '\0') {
        snprintf(detail, detail_len, "%s names no hold", what);
        return LQ_ERR_INTERNAL;
    }
    h = lq_book_find_hold(book, c->hold);
    if (!h) {
        snprintf(detail, detail_len, "hold \"%s\" does not exist", c->hold);
        return LQ_ERR_HOLD_NOT_FOUND;
    }
    switch (h->status) {
    case LQ_HOLD_PENDING:
        break;
    case LQ_HOLD_CAPTURED:
        snprintf(detail, detail_len, "hold \"%s\" was already captured", h->id);
        return LQ_ERR_HOLD_ALREADY_CAPTURED;
    case LQ_HOLD_VOIDED:
        snprintf(detail, detail_len, "hold \"%s\" was already voided", h->id);
        return LQ_ERR_HOLD_ALREADY_VOIDED;
    case LQ_HOLD_EXPIRED:
        snprintf(detail, detail_len, "hold \"%s\" expired", h->id);
        return LQ_ERR_HOLD_EXPIRED;
    default:
        snprintf(detail, detail_len, "hold \"%s\" has unknown status %d", h->id, (int)h->status);
        return LQ_ERR_INTERNAL;
    }
    /* Its expiry has passed but the sweep has not released it yet: expired all the same. */
    if (h->past_expiry) {
        snprintf(detail, detail_len, "hold \"%s\" is past its expiry", h->id);
        return LQ_ERR_HOLD_EXPIRED;
    }
    if (h->n_legs < 1 || h->n_legs > LQ_LEGS_MAX || !h->legs) {
        snprintf(detail, detail_len, "hold \"%s\" has %zu legs, not 1 to %d", h->id, h->n_legs,
                 LQ_LEGS_MAX);
        return LQ_ERR_INTERNAL;
    }
    *ret_hold = h;
    return LQ_OK;
}

/*
 * Give back every held amount of h's legs, saving each account in undo
 * before changing it.  An account that is not in the book, or a held
 * amount that would go below 0, means the book and the database disagree:
 * LQ_ERR_INTERNAL (detail written), the caller rolls back.
 */
static int release(lq_book *book, const lq_hold *h, lq_undo *undo, char *detail, size_t detail_len)
{
    for (size_t i = 0; i < h->n_legs; i++) {
        const lq_leg *leg = &h->legs[i];
        lq_account *debit = lq_book_find(book, leg->debit);
        lq_account *credit = lq_book_find(book, leg->credit);
        int r;

        if (!debit || !credit) {
            snprintf(detail, detail_len, "hold \"%s\" leg %zu: account \"%s\" is not in the book",
                     h->id, i + 1, debit ? leg->credit : leg->debit);
            return LQ_ERR_INTERNAL;
        }
        if (debit->held_debits < leg->amount || credit->held_credits < leg->amount) {
            const lq_account *a = debit->held_debits < leg->amount ? debit : credit;

            snprintf(detail, detail_len,
                     "hold \"%s\" leg %zu: account \"%s\" has held debits %" PRId64
                     " and held credits %" PRId64 ", cannot release %" PRId64,
                     h->id, i + 1, a->id, a->held_debits, a->held_credits, leg->amount);
            return LQ_ERR_INTERNAL;
        }
        r = lq_ledger_undo_save(undo, debit);
        if (r == LQ_OK)
            r = lq_ledger_undo_save(undo, credit);
        if (r != LQ_OK)
            return r;
        debit->held_debits -= leg->amount;
        credit->held_credits -= leg->amount;
        debit->changed = true;
        credit->changed = true;
    }
    return LQ_OK;
}

/*
 * An entry of type (amount 0) per leg of h on each account the leg names,
 * the debited one first.  command is borrowed.  release() found every
 * account.
 */
static int append_release_entries(lq_book *book, const lq_hold *h, const char *command,
                                  const char *type)
{
    for (size_t i = 0; i < h->n_legs; i++) {
        int r;

        r = lq_ledger_append_entry(book, lq_book_find(book, h->legs[i].debit), command, type,
                                   (int)(i + 1), 0, NULL);
        if (r == LQ_OK)
            r = lq_ledger_append_entry(book, lq_book_find(book, h->legs[i].credit), command, type,
                                       (int)(i + 1), 0, NULL);
        if (r != LQ_OK)
            return r;
    }
    return LQ_OK;
}

/*
 * Mark h resolved by c (status captured or voided), saving it in undo
 * first, and release its held amounts.
 */
static int resolve(lq_book *book, lq_hold *h, const lq_command *c, lq_hold_status status,
                   lq_undo *undo, char *detail, size_t detail_len)
{
    int r;

    /* Two entries a leg, reserved at once: nothing fails half way for memory. */
    r = lq_ledger_reserve_entries(book, 2 * h->n_legs);
    if (r != LQ_OK)
        return r;
    r = lq_ledger_undo_save_hold(undo, h);
    if (r != LQ_OK)
        return r;
    h->status = status;
    h->resolved_by = c->id;
    h->captured = 0;
    h->changed = true;
    return release(book, h, undo, detail, detail_len);
}

int lq_ledger_apply_capture(lq_book *book, const lq_command *c, lq_undo *undo, char *detail,
                            size_t detail_len)
{
    lq_hold *h;
    int r;

    if (c->amount < 0) {
        snprintf(detail, detail_len, "capture has amount %" PRId64 ", not positive or absent",
                 c->amount);
        return LQ_ERR_INTERNAL;
    }
    r = check_resolvable(book, c, &h, detail, detail_len);
    if (r != LQ_OK)
        return r;
    if (h->n_legs == 1 && c->amount > h->legs[0].amount) {
        snprintf(detail, detail_len, "capture of %" PRId64 " exceeds hold \"%s\" of %" PRId64,
                 c->amount, h->id, h->legs[0].amount);
        return LQ_ERR_EXCEEDS_HOLD_AMOUNT;
    }
    if (h->n_legs > 1 && c->amount != 0) {
        snprintf(detail, detail_len,
                 "capture of %" PRId64 " names an amount, hold \"%s\" of %zu legs is captured in "
                 "full only",
                 c->amount, h->id, h->n_legs);
        return LQ_ERR_PARTIAL_CAPTURE_NOT_SUPPORTED;
    }

    r = resolve(book, h, c, LQ_HOLD_CAPTURED, undo, detail, detail_len);
    if (r != LQ_OK)
        return r;
    for (size_t i = 0; i < h->n_legs; i++) {
        const lq_leg *leg = &h->legs[i];
        /* A single leg posts what was asked (the rest is released), every other leg in full. */
        int64_t posted = h->n_legs == 1 && c->amount != 0 ? c->amount : leg->amount;
        lq_account *debit = lq_book_find(book, leg->debit);
        lq_account *credit = lq_book_find(book, leg->credit);
        int64_t debits, credits;
        bool debit_side;

        /*
         * The leg checks of the hold and of every later transfer or hold
         * counted the held amounts, so this cannot overflow unless the
         * book and the database disagree.
         */
        debit_side = __builtin_add_overflow(debit->debits, posted, &debits);
        if (debit_side || __builtin_add_overflow(credit->credits, posted, &credits)) {
            snprintf(detail, detail_len,
                     "hold \"%s\" leg %zu: %s %" PRId64 " of account \"%s\" cannot take a capture "
                     "of %" PRId64,
                     h->id, i + 1, debit_side ? "debits" : "credits",
                     debit_side ? debit->debits : credit->credits,
                     debit_side ? debit->id : credit->id, posted);
            return LQ_ERR_INTERNAL;
        }
        debit->debits = debits;
        credit->credits = credits;
        /* Only several legs can sum past the range: outcome.amount reads single-leg holds only. */
        if (__builtin_add_overflow(h->captured, posted, &h->captured))
            h->captured = INT64_MAX;
        r = lq_ledger_append_entry(book, debit, c->id, ENTRY_CAPTURE, (int)(i + 1), -posted, NULL);
        if (r == LQ_OK)
            r = lq_ledger_append_entry(book, credit, c->id, ENTRY_CAPTURE, (int)(i + 1), posted,
                                       NULL);
        if (r != LQ_OK)
            return r;
    }
    return LQ_OK;
}

int lq_ledger_apply_void(lq_book *book, const lq_command *c, lq_undo *undo, char *detail,
                         size_t detail_len)
{
    lq_hold *h;
    int r;

    if (c->amount != 0) {
        snprintf(detail, detail_len, "void has amount %" PRId64 ", a void has none", c->amount);
        return LQ_ERR_INTERNAL;
    }
    r = check_resolvable(book, c, &h, detail, detail_len);
    if (r != LQ_OK)
        return r;
    r = resolve(book, h, c, LQ_HOLD_VOIDED, undo, detail, detail_len);
    if (r != LQ_OK)
        return r;
    return append_release_entries(book, h, c->id, ENTRY_VOID);
}

int lq_ledger_expire(lq_book *book, const char *id)
{
    /* About 24 KiB of stack, as lq_ledger_apply(). */
    lq_undo undo;
    char detail[LQ_DETAIL_MAX];
    lq_hold *h = id ? lq_book_find_hold(book, id) : NULL;
    int r;

    if (!h)
        return LQ_ERR_NOT_FOUND;
    if (h->status != LQ_HOLD_PENDING || h->n_legs < 1 || h->n_legs > LQ_LEGS_MAX || !h->legs)
        return LQ_ERR_INTERNAL;
    r = lq_ledger_reserve_entries(book, 2 * h->n_legs);
    if (r != LQ_OK)
        return r;

    lq_ledger_undo_begin(&undo, book);
    r = lq_ledger_undo_save_hold(&undo, h);
    if (r == LQ_OK) {
        h->status = LQ_HOLD_EXPIRED;
        h->resolved_by = NULL;
        h->changed = true;
        r = release(book, h, &undo, detail, sizeof(detail));
    }
    /* The entries borrow the hold's id in the book: an expiry has no command of its own. */
    if (r == LQ_OK)
        r = append_release_entries(book, h, h->id, ENTRY_EXPIRY);
    if (r != LQ_OK)
        lq_ledger_undo_rollback(&undo);
    return r;
}
