/* TEMPORARY: merged into message.c once that file is settled. */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ledgerq/error.h"
#include "ledgerq/message.h"

static bool id_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

bool lq_message_valid_account_id(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++) {
        if (!id_char(s[n]) || n >= LQ_ACCOUNT_ID_MAX)
            return false;
    }
    return n > 0;
}

bool lq_message_valid_currency(const char *s)
{
    for (int i = 0; i < 3; i++) {
        if (s[i] < 'A' || s[i] > 'Z')
            return false;
    }
    return s[3] == '\0';
}

int lq_message_parse_account(const char *line, size_t len, char ret_id[LQ_ACCOUNT_ID_MAX + 1],
                             char ret_currency[4], bool *ret_allow_negative, char *detail,
                             size_t detail_len)
{
    cJSON *root = cJSON_ParseWithLength(line, len), *item;
    int r = LQ_ERR_INVALID_PAYMENT;
    bool allow_negative = false;
    const char *id = NULL, *currency = NULL;

    if (root == NULL) {
        snprintf(detail, detail_len, "not valid JSON");
        return LQ_ERR_MALFORMED_JSON;
    }
    if (!cJSON_IsObject(root)) {
        snprintf(detail, detail_len, "must be a JSON object");
        goto out;
    }
    cJSON_ArrayForEach(item, root)
    {
        if (strcmp(item->string, "id") == 0 && cJSON_IsString(item) && !id) {
            id = item->valuestring;
        } else if (strcmp(item->string, "currency") == 0 && cJSON_IsString(item) && !currency) {
            currency = item->valuestring;
        } else if (strcmp(item->string, "allow_negative") == 0 && cJSON_IsBool(item)) {
            allow_negative = cJSON_IsTrue(item);
        } else {
            snprintf(detail, detail_len, "%.40s: unknown, repeated or of the wrong type",
                     item->string);
            goto out;
        }
    }
    if (id == NULL || !lq_message_valid_account_id(id)) {
        snprintf(detail, detail_len, "id: must be 1-64 characters of A-Z a-z 0-9 . _ : -");
        goto out;
    }
    if (currency == NULL || !lq_message_valid_currency(currency)) {
        snprintf(detail, detail_len, "currency: must be three upper-case letters");
        goto out;
    }
    snprintf(ret_id, LQ_ACCOUNT_ID_MAX + 1, "%s", id);
    snprintf(ret_currency, 4, "%s", currency);
    *ret_allow_negative = allow_negative;
    r = LQ_OK;
out:
    cJSON_Delete(root);
    return r;
}
