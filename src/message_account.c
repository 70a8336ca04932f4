/*
 * Accounts: the account.open and account.update commands (docs/protocol.md
 * section 13), their canonical text, and the lines of `account import`
 * (section 1.6), which follow account.open's field rules.
 *
 * An account's floor is allow_negative (no floor) or overdraft_limit (down
 * to minus the limit; 0 when neither is given); its ceiling is max_balance.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/error.h"
#include "message_internal.h"

static const char *const status_names[] = {
    [LQ_STATUS_ACTIVE] = "active",
    [LQ_STATUS_FROZEN] = "frozen",
    [LQ_STATUS_CLOSED] = "closed",
};
#define STATUS_COUNT (sizeof(status_names) / sizeof(status_names[0]))

const char *lq_account_status_name(lq_account_status st)
{
    return (size_t)st < STATUS_COUNT ? status_names[st] : "unknown";
}

bool lq_account_status_parse(const char *name, lq_account_status *ret)
{
    if (name == NULL)
        return false;
    for (size_t st = 0; st < STATUS_COUNT; st++) {
        if (strcmp(name, status_names[st]) == 0) {
            *ret = (lq_account_status)st;
            return true;
        }
    }
    return false;
}

void lq_account_change_release(lq_account_change *a)
{
    if (a == NULL)
        return;
    free(a->reason);
    a->reason = NULL;
}

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

static const char *const open_fields[] = {
    "id",          "type",     "account", "currency", "allow_negative", "overdraft_limit",
    "max_balance", "metadata",
};
enum {
    OPEN_ID,
    OPEN_TYPE, /* "account.open": lq_command_parse() read it */
    OPEN_ACCOUNT,
    OPEN_CURRENCY,
    OPEN_ALLOW_NEGATIVE,
    OPEN_OVERDRAFT_LIMIT,
    OPEN_MAX_BALANCE,
    OPEN_METADATA,
    OPEN_COUNT
};

/* Checked in this order: id, account, currency, the floor, the ceiling, metadata. */
static int take_open(lq_reader *rd, lq_command *c)
{
    const cJSON *f[OPEN_COUNT];
    int r;

    r = lq_message_collect_fields(rd, rd->root, "", open_fields, OPEN_COUNT, f);
    if (r != LQ_OK)
        return r;
    r = lq_message_take_ident(rd, f[OPEN_ID], "", "id", LQ_ID_MAX, c->id);
    if (r != LQ_OK)
        return r;
    r = lq_message_take_ident(rd, f[OPEN_ACCOUNT], "", "account", LQ_ACCOUNT_ID_MAX,
                              c->change.account);
    if (r != LQ_OK)
        return r;
    r = lq_message_take_currency(rd, f[OPEN_CURRENCY], "", c->change.currency);
    if (r != LQ_OK)
        return r;
    r = take_floor(rd, f[OPEN_ALLOW_NEGATIVE], f[OPEN_OVERDRAFT_LIMIT], &c->change);
    if (r != LQ_OK)
        return r;
    r = take_ceiling(rd, f[OPEN_MAX_BALANCE], false, &c->change);
    if (r != LQ_OK)
        return r;
    return lq_message_take_metadata(rd, f[OPEN_METADATA], &c->metadata);
}

static const char *const update_fields[] = {
    "id",          "type",   "account",  "status", "allow_negative", "overdraft_limit",
    "max_balance", "reason", "metadata",
};
enum {
    UPDATE_ID,
    UPDATE_TYPE, /* "account.update": lq_command_parse() read it */
    UPDATE_ACCOUNT,
    UPDATE_STATUS,
    UPDATE_ALLOW_NEGATIVE,
    UPDATE_OVERDRAFT_LIMIT,
    UPDATE_MAX_BALANCE,
    UPDATE_REASON,
    UPDATE_METADATA,
    UPDATE_COUNT
};

/*
 * Checked in this order: id, account, that something changes, status, the
 * floor, the ceiling, reason, metadata.
 */
static int take_update(lq_reader *rd, lq_command *c)
{
    const cJSON *f[UPDATE_COUNT];
    const cJSON *status;
    int r;

    r = lq_message_collect_fields(rd, rd->root, "", update_fields, UPDATE_COUNT, f);
    if (r != LQ_OK)
        return r;
    r = lq_message_take_ident(rd, f[UPDATE_ID], "", "id", LQ_ID_MAX, c->id);
    if (r != LQ_OK)
        return r;
    r = lq_message_take_ident(rd, f[UPDATE_ACCOUNT], "", "account", LQ_ACCOUNT_ID_MAX,
                              c->change.account);
    if (r != LQ_OK)
        return r;
    /* A reason alone changes nothing: there would be no history entry to keep it in. */
    if (f[UPDATE_STATUS] == NULL && f[UPDATE_ALLOW_NEGATIVE] == NULL &&
        f[UPDATE_OVERDRAFT_LIMIT] == NULL && f[UPDATE_MAX_BALANCE] == NULL)
        return lq_message_invalid(rd, "body: an account.update must set at least one of status, "
                                      "allow_negative, overdraft_limit or max_balance");

    status = f[UPDATE_STATUS];
    if (status != NULL) {
        c->change.set_status = true;
        if (!cJSON_IsString(status) ||
            !lq_account_status_parse(status->valuestring, &c->change.status))
            return lq_message_invalid(rd, "status: must be \"active\", \"frozen\" or \"closed\"");
    }
    r = take_floor(rd, f[UPDATE_ALLOW_NEGATIVE], f[UPDATE_OVERDRAFT_LIMIT], &c->change);
    if (r != LQ_OK)
        return r;
    r = take_ceiling(rd, f[UPDATE_MAX_BALANCE], true, &c->change);
    if (r != LQ_OK)
        return r;
    r = lq_message_take_text(rd, f[UPDATE_REASON], "reason", LQ_REASON_MAX, &c->change.reason);
    if (r != LQ_OK)
        return r;
    return lq_message_take_metadata(rd, f[UPDATE_METADATA], &c->metadata);
}

int lq_message_take_account(lq_reader *rd, lq_command *c)
{
    return c->type == LQ_CMD_ACCOUNT_OPEN ? take_open(rd, c) : take_update(rd, c);
}

static size_t add_open(char *s, size_t cap, const lq_account_change *a)
{
    size_t n = lq_message_add(
        s, cap, 0, "v1|account.open|%s|%s|allow_negative=%s|overdraft_limit=%" PRId64, a->account,
        a->currency, a->allow_negative ? "true" : "false", a->overdraft_limit);

    if (a->max_balance == 0)
        return lq_message_add(s, cap, n, "|max_balance=none");
    return lq_message_add(s, cap, n, "|max_balance=%" PRId64, a->max_balance);
}

static size_t add_update(char *s, size_t cap, const lq_account_change *a)
{
    size_t n = lq_message_add(s, cap, 0, "v1|account.update|%s", a->account);

    n = lq_message_add(s, cap, n, "|status=%s",
                       a->set_status ? lq_account_status_name(a->status) : "-");
    if (!a->set_allow_negative)
        n = lq_message_add(s, cap, n, "|allow_negative=-");
    else
        n = lq_message_add(s, cap, n, "|allow_negative=%s", a->allow_negative ? "true" : "false");
    if (!a->set_overdraft_limit)
        n = lq_message_add(s, cap, n, "|overdraft_limit=-");
    else
        n = lq_message_add(s, cap, n, "|overdraft_limit=%" PRId64, a->overdraft_limit);
    if (!a->set_max_balance)
        n = lq_message_add(s, cap, n, "|max_balance=-");
    else if (a->max_balance == 0)
        n = lq_message_add(s, cap, n, "|max_balance=none");
    else
        n = lq_message_add(s, cap, n, "|max_balance=%" PRId64, a->max_balance);
    return lq_message_add_text(s, cap, n, a->reason);
}

/*
 * An account.open, by what the account will be: a field left out is its
 * default, so leaving out allow_negative and writing false are the same
 * command, and so are no overdraft_limit and 0:
 *   "v1|account.open|<account>|<currency>|allow_negative=<true|false>
 *    |overdraft_limit=<n>|max_balance=<n|none>"
 * An account.update, by what it changes ("-": left as it is):
 *   "v1|account.update|<account>|status=<status|->|allow_negative=<true|false|->
 *    |overdraft_limit=<n|->|max_balance=<n|none|->|r<bytes>:<reason>", or "|-"
 *    last without a reason
 * Account ids never hold '|' and the reason, which may, is last and
 * length-prefixed: the text is unambiguous.  The type's name in the second
 * field tells it from a transfer's text, whose second field is a number.
 */
int lq_message_account_canonical(const lq_command *c, char **ret)
{
    const lq_account_change *a = &c->change;
    size_t cap = 256 + LQ_ACCOUNT_ID_MAX + (a->reason != NULL ? strlen(a->reason) : 0);
    char *s = malloc(cap);
    size_t n;

    if (s == NULL)
        return LQ_ERR_NOMEM;
    n = c->type == LQ_CMD_ACCOUNT_OPEN ? add_open(s, cap, a) : add_update(s, cap, a);
    if (n >= cap) {
        free(s);
        return LQ_ERR_INTERNAL;
    }
    *ret = s;
    return LQ_OK;
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
