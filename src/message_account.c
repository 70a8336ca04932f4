/*
 * Accounts: the lines of `account import` (docs/protocol.md section 1.6),
 * which follow account.open's field rules (section 13).
 *
 * An account's floor is allow_negative (no floor) or overdraft_limit (down
 * to minus the limit; 0 when neither is given); its ceiling is max_balance.
 */
#include <stdlib.h>
#include <string.h>

#include "ledgerq/error.h"
#include "message_internal.h"

/*
 * The floor: allow_negative and overdraft_limit, either item NULL when
 * absent.  allow_negative true with any overdraft_limit is a contradiction;
 * false with one says the same thing twice, and is accepted.
 */
static int take_floor(lq_reader *rd, const cJSON *allow_negative, const cJSON *overdraft_limit,
                      lq_account_change *a)
{
    int r;

    if (allow_negative != NULL) {
        a->set_allow_negative = true;
        r = lq_message_take_bool(rd, allow_negative, "allow_negative", &a->allow_negative);
        if (r != LQ_OK)
            return r;
    }
    if (overdraft_limit != NULL) {
        a->set_overdraft_limit = true;
        r = lq_message_take_limit(rd, overdraft_limit, "overdraft_limit", &a->overdraft_limit);
        if (r != LQ_OK)
            return r;
    }
    if (a->allow_negative && a->set_overdraft_limit)
        return lq_message_invalid(rd,
                                  "allow_negative: cannot be true together with overdraft_limit");
    return LQ_OK;
}

/*
 * The ceiling: max_balance, item NULL when absent.  null removes the
 * ceiling when null_removes (account.update); where absent already means no
 * ceiling, null is refused rather than guessed at.
 */
static int take_ceiling(lq_reader *rd, const cJSON *max_balance, bool null_removes,
                        lq_account_change *a)
{
    if (max_balance == NULL)
        return LQ_OK;
    a->set_max_balance = true;
    if (cJSON_IsNull(max_balance)) {
        if (null_removes) {
            a->max_balance = 0;
            return LQ_OK;
        }
        return lq_message_invalid(
            rd, "max_balance: must be a positive whole number; leave it out for no ceiling");
    }
    return lq_message_take_amount(rd, max_balance, "", "max_balance", &a->max_balance);
}

static const char *const import_fields[] = {
    "id", "currency", "allow_negative", "overdraft_limit", "max_balance",
};
enum {
    IMPORT_ID,
    IMPORT_CURRENCY,
    IMPORT_ALLOW_NEGATIVE,
    IMPORT_OVERDRAFT_LIMIT,
    IMPORT_MAX_BALANCE,
    IMPORT_COUNT
};

int lq_message_parse_account(const char *line, size_t len, lq_account_change *ret, char *detail,
                             size_t detail_len)
{
    lq_reader rd;
    const cJSON *f[IMPORT_COUNT];
    lq_account_change a;
    int r;

    memset(&a, 0, sizeof(a));
    r = lq_message_read(&rd, "line", line, len, detail, detail_len);
    if (r != LQ_OK)
        goto out;
    r = lq_message_collect_fields(&rd, rd.root, "", import_fields, IMPORT_COUNT, f);
    if (r != LQ_OK)
        goto out;
    r = lq_message_take_ident(&rd, f[IMPORT_ID], "", "id", LQ_ACCOUNT_ID_MAX, a.account);
    if (r != LQ_OK)
        goto out;
    r = lq_message_take_currency(&rd, f[IMPORT_CURRENCY], "", a.currency);
    if (r != LQ_OK)
        goto out;
    r = take_floor(&rd, f[IMPORT_ALLOW_NEGATIVE], f[IMPORT_OVERDRAFT_LIMIT], &a);
    if (r != LQ_OK)
        goto out;
    r = take_ceiling(&rd, f[IMPORT_MAX_BALANCE], false, &a);
    if (r != LQ_OK)
        goto out;

    *ret = a;
out:
    return lq_message_reader_finish(&rd, r);
}
