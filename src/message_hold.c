/*
 * Holds (docs/protocol.md section 14): the hold, which reserves a
 * transfer's legs, and the capture and the void, which resolve it; their
 * fields and canonical texts.
 *
 * Checked in the order of section 4.4, each type's own fields where a
 * transfer has its legs:
 *   hold:    unknown or repeated names, id, the form and each leg (as a
 *            transfer's, lq_message_take_legs()), timeout_s, reference,
 *            metadata
 *   capture: unknown or repeated names, id, hold, amount, reference, metadata
 *   void:    unknown or repeated names, id, hold, reference, metadata
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/error.h"
#include "message_internal.h"

static const char *const hold_fields[] = {
    "id",       "type", "debit",     "credit",    "amount",
    "currency", "legs", "timeout_s", "reference", "metadata",
};
enum {
    HOLD_ID,
    HOLD_TYPE, /* "hold": lq_command_parse() read it */
    HOLD_DEBIT,
    HOLD_CREDIT,
    HOLD_AMOUNT,
    HOLD_CURRENCY,
    HOLD_LEGS,
    HOLD_TIMEOUT_S,
    HOLD_REFERENCE,
    HOLD_METADATA,
    HOLD_COUNT
};

/* The single-leg form hands &found[HOLD_DEBIT] to lq_message_take_legs(). */
_Static_assert(HOLD_CREDIT - HOLD_DEBIT == LQ_LEG_CREDIT - LQ_LEG_DEBIT &&
                   HOLD_AMOUNT - HOLD_DEBIT == LQ_LEG_AMOUNT - LQ_LEG_DEBIT &&
                   HOLD_CURRENCY - HOLD_DEBIT == LQ_LEG_CURRENCY - LQ_LEG_DEBIT,
               "top-level leg fields in leg order");

static int take_hold(lq_reader *rd, lq_command *c)
{
    const cJSON *f[HOLD_COUNT];
    int r;

    r = lq_message_collect_fields(rd, rd->root, "", hold_fields, HOLD_COUNT, f);
    if (r != LQ_OK)
        return r;
    r = lq_message_take_ident(rd, f[HOLD_ID], "", "id", LQ_ID_MAX, c->id);
    if (r != LQ_OK)
        return r;
    r = lq_message_take_legs(rd, &f[HOLD_DEBIT], f[HOLD_LEGS], c);
    if (r != LQ_OK)
        return r;
    /* Absent: the hold never expires (c->timeout_s stays 0). */
    if (f[HOLD_TIMEOUT_S] != NULL) {
        r = lq_message_take_integer(rd, f[HOLD_TIMEOUT_S], "timeout_s", 1, LQ_TIMEOUT_MAX,
                                    &c->timeout_s);
        if (r != LQ_OK)
            return r;
    }
    r = lq_message_take_text(rd, f[HOLD_REFERENCE], "reference", LQ_REFERENCE_MAX, &c->reference);
    if (r != LQ_OK)
        return r;
    return lq_message_take_metadata(rd, f[HOLD_METADATA], &c->metadata);
}

/* The capture's fields; a void has the same but amount. */
static const char *const resolve_fields[] = {
    "id", "type", "hold", "reference", "metadata", "amount",
};
enum {
    RESOLVE_ID,
    RESOLVE_TYPE, /* "capture" or "void": lq_command_parse() read it */
    RESOLVE_HOLD,
    RESOLVE_REFERENCE,
    RESOLVE_METADATA,
    RESOLVE_AMOUNT, /* last: a void's names stop before it */
    RESOLVE_COUNT
};

/*
 * A capture or a void.  The hold is named by its command id, so "hold"
 * follows the id's rules; whether such a hold exists is the ledger's to
 * decide (hold_not_found).
 */
static int take_resolve(lq_reader *rd, lq_command *c)
{
    size_t n_fields = c->type == LQ_CMD_CAPTURE ? RESOLVE_COUNT : RESOLVE_AMOUNT;
    const cJSON *f[RESOLVE_COUNT] = {NULL};
    int r;

    r = lq_message_collect_fields(rd, rd->root, "", resolve_fields, n_fields, f);
    if (r != LQ_OK)
        return r;
    r = lq_message_take_ident(rd, f[RESOLVE_ID], "", "id", LQ_ID_MAX, c->id);
    if (r != LQ_OK)
        return r;
    r = lq_message_take_ident(rd, f[RESOLVE_HOLD], "", "hold", LQ_ID_MAX, c->hold);
    if (r != LQ_OK)
        return r;
    /* Absent: the full held amount (c->amount stays 0). */
    if (f[RESOLVE_AMOUNT] != NULL) {
        r = lq_message_take_amount(rd, f[RESOLVE_AMOUNT], "", "amount", &c->amount);
        if (r != LQ_OK)
            return r;
    }
    r = lq_message_take_text(rd, f[RESOLVE_REFERENCE], "reference", LQ_REFERENCE_MAX,
                             &c->reference);
    if (r != LQ_OK)
        return r;
    return lq_message_take_metadata(rd, f[RESOLVE_METADATA], &c->metadata);
}

int lq_message_take_hold(lq_reader *rd, lq_command *c)
{
    return c->type == LQ_CMD_HOLD ? take_hold(rd, c) : take_resolve(rd, c);
}

/*
 * Every field but metadata, by value, the type first ("-": not given):
 *   "v1|hold|<legs>|<debit>,<credit>,<amount>,<currency>|...|timeout_s=<n|->
 *    |r<bytes>:<reference>"
 *   "v1|capture|<hold>|amount=<n|->|r<bytes>:<reference>"
 *   "v1|void|<hold>|r<bytes>:<reference>"
 * each with "|-" last instead without a reference.  A hold's legs are
 * written as a transfer's; ids never hold '|' or ',' and the reference,
 * which may, is last and length-prefixed: the text is unambiguous.  The
 * type's name in the second field tells each from a transfer's text, whose
 * second field is a number, so a hold and a transfer of the same legs
 * differ.  A capture without an amount is not the capture of the amount
 * held: the parser cannot know that amount, and the command says another
 * thing.
 */
int lq_message_hold_canonical(const lq_command *c, char **ret)
{
    size_t cap = 96 + LQ_ID_MAX + c->n_legs * LQ_LEG_TEXT_MAX +
                 (c->reference != NULL ? strlen(c->reference) : 0);
    char *s = malloc(cap);
    size_t n = 0;

    if (s == NULL)
        return LQ_ERR_NOMEM;
    switch (c->type) {
    case LQ_CMD_HOLD:
        n = lq_message_add(s, cap, n, "v1|hold");
        n = lq_message_add_legs(s, cap, n, c);
        if (c->timeout_s == 0)
            n = lq_message_add(s, cap, n, "|timeout_s=-");
        else
            n = lq_message_add(s, cap, n, "|timeout_s=%" PRId64, c->timeout_s);
        break;
    case LQ_CMD_CAPTURE:
        n = lq_message_add(s, cap, n, "v1|capture|%s", c->hold);
        if (c->amount == 0)
            n = lq_message_add(s, cap, n, "|amount=-");
        else
            n = lq_message_add(s, cap, n, "|amount=%" PRId64, c->amount);
        break;
    case LQ_CMD_VOID:
        n = lq_message_add(s, cap, n, "v1|void|%s", c->hold);
        break;
    case LQ_CMD_TRANSFER:
    case LQ_CMD_ACCOUNT_OPEN:
    case LQ_CMD_ACCOUNT_UPDATE:
        n = cap; /* not a hold's family */
        break;
    }
    n = lq_message_add_text(s, cap, n, c->reference);
    if (n >= cap) {
        free(s);
        return LQ_ERR_INTERNAL;
    }
    *ret = s;
    return LQ_OK;
}
