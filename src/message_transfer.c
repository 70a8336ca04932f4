/*
 * The transfer (docs/protocol.md section 4; "type" absent or "transfer"):
 * its fields, its two forms (one leg, or "legs") and its canonical text.  Checked in the order of
 * section 4.4: unknown or repeated names, id, the form, each leg (debit, credit, debit different
 * from credit, amount, currency), reference, metadata.
 *
 * A hold (message_hold.c) has a transfer's legs: it reads and writes them
 * with lq_message_take_legs() and lq_message_add_legs() from here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/error.h"
#include "message_internal.h"

static const char *const top_fields[] = {
    "id", "debit", "credit", "amount", "currency", "legs", "reference", "metadata", "type",
};
enum {
    TOP_ID,
    TOP_DEBIT,
    TOP_CREDIT,
    TOP_AMOUNT,
    TOP_CURRENCY,
    TOP_LEGS,
    TOP_REFERENCE,
    TOP_METADATA,
    TOP_TYPE, /* "transfer" or absent: lq_command_parse() read it */
    TOP_COUNT
};

static const char *const leg_fields[] = {"debit", "credit", "amount", "currency"};
_Static_assert(sizeof(leg_fields) / sizeof(leg_fields[0]) == LQ_LEG_COUNT, "one name per member");

/* The single-leg form hands &found[TOP_DEBIT] to lq_message_take_legs() as a leg's members. */
_Static_assert(TOP_CREDIT - TOP_DEBIT == LQ_LEG_CREDIT - LQ_LEG_DEBIT &&
                   TOP_AMOUNT - TOP_DEBIT == LQ_LEG_AMOUNT - LQ_LEG_DEBIT &&
                   TOP_CURRENCY - TOP_DEBIT == LQ_LEG_CURRENCY - LQ_LEG_DEBIT,
               "top-level leg fields in leg order");

/* One leg from its four members, checked in the order debit, credit, amount, currency. */
static int take_leg(lq_reader *rd, const cJSON *const *f, const char *prefix, lq_leg *leg)
{
    int r;

    r = lq_message_take_ident(rd, f[LQ_LEG_DEBIT], prefix, "debit", LQ_ACCOUNT_ID_MAX, leg->debit);
    if (r != LQ_OK)
        return r;
    r = lq_message_take_ident(rd, f[LQ_LEG_CREDIT], prefix, "credit", LQ_ACCOUNT_ID_MAX,
                              leg->credit);
    if (r != LQ_OK)
        return r;
    if (strcmp(leg->debit, leg->credit) == 0)
        return lq_message_invalid(rd, "%sdebit: must differ from credit", prefix);
    r = lq_message_take_amount(rd, f[LQ_LEG_AMOUNT], prefix, "amount", &leg->amount);
    if (r != LQ_OK)
        return r;
    return lq_message_take_currency(rd, f[LQ_LEG_CURRENCY], prefix, leg->currency);
}

static int take_legs_array(lq_reader *rd, const cJSON *legs, lq_command *c)
{
    const cJSON *leg;
    size_t n = 0, i = 0;

    if (!cJSON_IsArray(legs))
        return lq_message_invalid(rd, "legs: must be an array of 1 to %d legs", LQ_LEGS_MAX);
    for (leg = legs->child; leg != NULL && n <= LQ_LEGS_MAX; leg = leg->next)
        n++;
    if (n < 1 || n > LQ_LEGS_MAX)
        return lq_message_invalid(rd, "legs: must have 1 to %d legs", LQ_LEGS_MAX);
    c->legs = calloc(n, sizeof(*c->legs));
    if (c->legs == NULL)
        return LQ_ERR_NOMEM;
    c->n_legs = n;
    for (leg = legs->child; leg != NULL; leg = leg->next, i++) {
        const cJSON *f[LQ_LEG_COUNT];
        char prefix[32];
        int r;

        snprintf(prefix, sizeof(prefix), "legs[%zu].", i);
        if (!cJSON_IsObject(leg))
            return lq_message_invalid(rd, "legs[%zu]: must be an object", i);
        r = lq_message_collect_fields(rd, leg, prefix, leg_fields, LQ_LEG_COUNT, f);
        if (r != LQ_OK)
            return r;
        r = take_leg(rd, f, prefix, &c->legs[i]);
        if (r != LQ_OK)
            return r;
    }
    return LQ_OK;
}

int lq_message_take_legs(lq_reader *rd, const cJSON *const single[LQ_LEG_COUNT], const cJSON *legs,
                         lq_command *c)
{
    bool is_single = single[LQ_LEG_DEBIT] != NULL || single[LQ_LEG_CREDIT] != NULL ||
                     single[LQ_LEG_AMOUNT] != NULL || single[LQ_LEG_CURRENCY] != NULL;

    if (legs != NULL && is_single)
        return lq_message_invalid(
            rd, "legs: cannot be combined with debit, credit, amount or currency");
    if (legs != NULL)
        return take_legs_array(rd, legs, c);
    if (!is_single)
        return lq_message_invalid(rd,
                                  "body: must have debit, credit, amount and currency, or legs");
    c->legs = calloc(1, sizeof(*c->legs));
    if (c->legs == NULL)
        return LQ_ERR_NOMEM;
    c->n_legs = 1;
    return take_leg(rd, single, "", c->legs);
}

int lq_message_take_transfer(lq_reader *rd, lq_command *c)
{
    const cJSON *f[TOP_COUNT];
    int r;

    r = lq_message_collect_fields(rd, rd->root, "", top_fields, TOP_COUNT, f);
    if (r != LQ_OK)
        return r;
    r = lq_message_take_ident(rd, f[TOP_ID], "", "id", LQ_ID_MAX, c->id);
    if (r != LQ_OK)
        return r;
    r = lq_message_take_legs(rd, &f[TOP_DEBIT], f[TOP_LEGS], c);
    if (r != LQ_OK)
        return r;
    r = lq_message_take_text(rd, f[TOP_REFERENCE], "reference", LQ_REFERENCE_MAX, &c->reference);
    if (r != LQ_OK)
        return r;
    return lq_message_take_metadata(rd, f[TOP_METADATA], &c->metadata);
}

size_t lq_message_add_legs(char *s, size_t cap, size_t n, const lq_command *c)
{
    n = lq_message_add(s, cap, n, "|%zu", c->n_legs);
    for (size_t i = 0; i < c->n_legs; i++) {
        const lq_leg *l = &c->legs[i];

        n = lq_message_add(s, cap, n, "|%s,%s,%" PRId64 ",%s", l->debit, l->credit, l->amount,
                           l->currency);
    }
    return n;
}

/*
 * "v1|<legs>|<debit>,<credit>,<amount>,<currency>|...|r<bytes>:<reference>"
 * or "...|-" without a reference: byte for byte what release 0.2.0 wrote,
 * whether "type" is absent or "transfer" (outcomes stored then are compared
 * by this text's SHA-256).  Ids never hold '|' or ',' and the reference,
 * which may, is last and length-prefixed: the text is unambiguous.  The
 * second field is a number, where every other type's text has its type's
 * name: no other command's text is ever a transfer's.
 */
int lq_message_transfer_canonical(const lq_command *c, char **ret)
{
    size_t cap = 64 + c->n_legs * LQ_LEG_TEXT_MAX + (c->reference ? strlen(c->reference) : 0);
    size_t n;
    char *s = malloc(cap);

    if (s == NULL)
        return LQ_ERR_NOMEM;
    n = lq_message_add(s, cap, 0, "v1");
    n = lq_message_add_legs(s, cap, n, c);
    n = lq_message_add_text(s, cap, n, c->reference);
    if (n >= cap) {
        free(s);
        return LQ_ERR_INTERNAL;
    }
    *ret = s;
    return LQ_OK;
}
