/*
 * The rules of a transfer (docs/protocol.md sections 5 and 13): its legs in
 * order, each checked against the book as the earlier legs left it, and
 * the history entries of the legs it posts (section 15).
 *
 * The order of the leg checks is written here, once: lq_ledger_check_leg(),
 * which holds (ledger_hold.c) share.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ledgerq/error.h"
#include "ledgerq/ledger.h"
#include "ledger_internal.h"

#define ENTRY_TYPE "transfer"

/*
 * A transfer or hold built any other way than lq_command_parse() does is a
 * bug of the caller, not a business outcome: it would break the database's
 * constraints and the arithmetic below, so it is refused before anything is
 * touched.
 */
int lq_ledger_check_legs_shape(const lq_command *c, char *detail, size_t detail_len)
{
    if (c->n_legs < 1 || c->n_legs > LQ_LEGS_MAX || !c->legs) {
        snprintf(detail, detail_len, "payment has %zu legs, not 1 to %d", c->n_legs, LQ_LEGS_MAX);
        return LQ_ERR_INTERNAL;
    }
    for (size_t i = 0; i < c->n_legs; i++) {
        const lq_leg *leg = &c->legs[i];

        if (leg->amount < 1) {
            snprintf(detail, detail_len, "leg %zu: amount %" PRId64 " is not positive", i + 1,
                     leg->amount);
            return LQ_ERR_INTERNAL;
        }
        if (strcmp(leg->debit, leg->credit) == 0) {
            snprintf(detail, detail_len, "leg %zu: debits and credits the same account \"%s\"",
                     i + 1, leg->debit);
            return LQ_ERR_INTERNAL;
        }
    }
    return LQ_OK;
}

/* insufficient_funds: the numbers that decided it. */
static void insufficient_detail(const lq_account *a, const lq_leg *leg, size_t n, char *detail,
                                size_t detail_len)
{
    char available[48] = "";
    char floor[48] = "";

    if (a->held_debits != 0)
        snprintf(available, sizeof(available), " (available %" PRId64 ")", lq_account_available(a));
    if (a->overdraft_limit > 0)
        snprintf(floor, sizeof(floor), " (floor -%" PRId64 ")", a->overdraft_limit);
    snprintf(detail, detail_len,
             "leg %zu: account \"%s\" has balance %" PRId64 "%s, cannot be debited %" PRId64 "%s",
             n, a->id, lq_account_balance(a), available, leg->amount, floor);
}

/* exceeds_max_balance: the numbers that decided it. */
static void ceiling_detail(const lq_account *a, const lq_leg *leg, size_t n, char *detail,
                           size_t detail_len)
{
    char held[48] = "";

    if (a->held_credits != 0)
        snprintf(held, sizeof(held), " (held credits %" PRId64 ")", a->held_credits);
    snprintf(detail, detail_len,
             "leg %zu: account \"%s\" has balance %" PRId64 "%s, cannot be credited %" PRId64
             " (max balance %" PRId64 ")",
             n, a->id, lq_account_balance(a), held, leg->amount, a->max_balance);
}

/*
 * Whether total plus held plus amount (all >= 0) would leave the 64-bit
 * range: the total a capture of every pending hold would reach.
 */
static bool total_overflows(int64_t total, int64_t held, int64_t amount)
{
    int64_t sum;

    return __builtin_add_overflow(total, held, &sum) || __builtin_add_overflow(sum, amount, &sum);
}

/* amount_overflow: which total of which account, and the held amount that counted. */
static void overflow_detail(const lq_account *a, size_t n, const char *total, int64_t held,
                            char *detail, size_t detail_len)
{
    char with[64] = "";

    if (held != 0)
        snprintf(with, sizeof(with), " (with held %s %" PRId64 ")", total, held);
    snprintf(detail, detail_len, "leg %zu: %s of account \"%s\"%s would exceed the 64-bit range", n,
             total, a->id, with);
}

int lq_ledger_check_leg(const lq_book *book, const lq_leg *leg, size_t n, lq_account **ret_debit,
                        lq_account **ret_credit, char *detail, size_t detail_len)
{
    lq_account *debit = lq_book_find(book, leg->debit);
    lq_account *credit = lq_book_find(book, leg->credit);

    if (!debit || !credit) {
        snprintf(detail, detail_len, "leg %zu: account \"%s\" does not exist", n,
                 debit ? leg->credit : leg->debit);
        return LQ_ERR_ACCOUNT_NOT_FOUND;
    }
    if (debit->status == LQ_STATUS_CLOSED || credit->status == LQ_STATUS_CLOSED) {
        snprintf(detail, detail_len, "leg %zu: account \"%s\" is closed", n,
                 debit->status == LQ_STATUS_CLOSED ? debit->id : credit->id);
        return LQ_ERR_ACCOUNT_CLOSED;
    }
    if (strcmp(leg->currency, debit->currency) != 0 ||
        strcmp(leg->currency, credit->currency) != 0) {
        const lq_account *other = strcmp(leg->currency, debit->currency) != 0 ? debit : credit;

        snprintf(detail, detail_len, "leg %zu: currency %s differs from account \"%s\" (%s)", n,
                 leg->currency, other->id, other->currency);
        return LQ_ERR_CURRENCY_MISMATCH;
    }
    /* Money may come into a frozen account, none may leave it. */
    if (debit->status == LQ_STATUS_FROZEN) {
        snprintf(detail, detail_len, "leg %zu: account \"%s\" is frozen", n, debit->id);
        return LQ_ERR_ACCOUNT_FROZEN;
    }
    if (lq_ledger_below_floor(lq_account_available(debit), leg->amount, debit->allow_negative,
                              debit->overdraft_limit)) {
        insufficient_detail(debit, leg, n, detail, detail_len);
        return LQ_ERR_INSUFFICIENT_FUNDS;
    }
    if (lq_ledger_above_ceiling(lq_account_balance(credit), credit->held_credits, leg->amount,
                                credit->max_balance)) {
        ceiling_detail(credit, leg, n, detail, detail_len);
        return LQ_ERR_EXCEEDS_MAX_BALANCE;
    }
    /*
     * Held amounts count: every pending hold may still be captured in full,
     * and that capture must never fail (docs/protocol.md section 14).
     */
    if (total_overflows(debit->debits, debit->held_debits, leg->amount)) {
        overflow_detail(debit, n, "debits", debit->held_debits, detail, detail_len);
        return LQ_ERR_AMOUNT_OVERFLOW;
    }
    if (total_overflows(credit->credits, credit->held_credits, leg->amount)) {
        overflow_detail(credit, n, "credits", credit->held_credits, detail, detail_len);
        return LQ_ERR_AMOUNT_OVERFLOW;
    }
    *ret_debit = debit;
    *ret_credit = credit;
    return LQ_OK;
}

int lq_ledger_take_legs(lq_book *book, const lq_command *c, bool hold, lq_undo *undo, char *detail,
                        size_t detail_len)
{
    const char *type = hold ? "hold" : ENTRY_TYPE;
    int r;

    r = lq_ledger_check_legs_shape(c, detail, detail_len);
    if (r != LQ_OK)
        return r;
    /* Two entries a leg, reserved at once: nothing fails half way for memory. */
    r = lq_ledger_reserve_entries(book, 2 * c->n_legs);
    if (r != LQ_OK)
        return r;

    /*
     * The legs are taken into the book as they are checked, so that a later
     * leg sees what earlier legs did, even when several legs touch the same
     * account; the caller's undo log puts the book back when a leg fails.
     */
    for (size_t i = 0; i < c->n_legs; i++) {
        const lq_leg *leg = &c->legs[i];
        lq_account *debit;
        lq_account *credit;

        r = lq_ledger_check_leg(book, leg, i + 1, &debit, &credit, detail, detail_len);
        if (r != LQ_OK)
            return r;
        r = lq_ledger_undo_save(undo, debit);
        if (r == LQ_OK)
            r = lq_ledger_undo_save(undo, credit);
        if (r != LQ_OK)
            return r;
        /* lq_ledger_check_leg() proved that no sum overflows, held amounts included. */
        if (hold) {
            debit->held_debits += leg->amount;
            credit->held_credits += leg->amount;
        } else {
            debit->debits += leg->amount;
            credit->credits += leg->amount;
        }
        debit->changed = true;
        credit->changed = true;
        r = lq_ledger_append_entry(book, debit, c->id, type, (int)(i + 1), hold ? 0 : -leg->amount,
                                   NULL);
        if (r == LQ_OK)
            r = lq_ledger_append_entry(book, credit, c->id, type, (int)(i + 1),
                                       hold ? 0 : leg->amount, NULL);
        if (r != LQ_OK)
            return r;
    }
    return LQ_OK;
}

int lq_ledger_apply_transfer(lq_book *book, const lq_command *c, lq_undo *undo, char *detail,
                             size_t detail_len)
{
    return lq_ledger_take_legs(book, c, false, undo, detail, detail_len);
}
