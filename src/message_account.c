/*
 * Accounts: the lines of `account import` (docs/protocol.md section 1.6).
 */
#include <stdlib.h>
#include <string.h>

#include "ledgerq/error.h"
#include "message_internal.h"

static const char *const import_fields[] = {"id", "currency", "allow_negative"};
enum { IMPORT_ID, IMPORT_CURRENCY, IMPORT_ALLOW_NEGATIVE, IMPORT_COUNT };

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
    if (f[IMPORT_ALLOW_NEGATIVE] != NULL) {
        a.set_allow_negative = true;
        r = lq_message_take_bool(&rd, f[IMPORT_ALLOW_NEGATIVE], "allow_negative",
                                 &a.allow_negative);
        if (r != LQ_OK)
            goto out;
    }

    *ret = a;
out:
    return lq_message_reader_finish(&rd, r);
}
