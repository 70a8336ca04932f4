/*
 * The rules of account.open and account.update (docs/protocol.md section
 * 13), and the history entries they make (section 15).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/error.h"
#include "ledgerq/json.h"
#include "ledgerq/ledger.h"
#include "ledger_internal.h"

#define ENTRY_OPEN   "account.open"
#define ENTRY_UPDATE "account.update"

static bool limits_given(const lq_account_change *ch)
{
    return ch->set_allow_negative || ch->set_overdraft_limit || ch->set_max_balance;
}

/*
 * What lq_command_parse() guarantees of an account command (docs/protocol.md
 * section 13); anything else is a bug of the caller (LQ_ERR_INTERNAL), refused
 * before the book is touched.
 */
static int check_shape(const lq_command *c, char *detail, size_t detail_len)
{
    const lq_account_change *ch = &c->change;
    const char *name = c->type == LQ_CMD_ACCOUNT_OPEN ? ENTRY_OPEN : ENTRY_UPDATE;

    if (!memchr(ch->account, '\0', sizeof(ch->account)) ||
        !lq_message_valid_account_id(ch->account)) {
        snprintf(detail, detail_len, "%s names no valid account", name);
        return LQ_ERR_INTERNAL;
    }
    if (ch->set_allow_negative && ch->allow_negative && ch->set_overdraft_limit) {
        snprintf(detail, detail_len, "%s of \"%s\" sets both allow_negative and overdraft_limit",
                 name, ch->account);
        return LQ_ERR_INTERNAL;
    }
    if ((ch->set_overdraft_limit && ch->overdraft_limit < 0) ||
        (ch->set_max_balance && ch->max_balance < 0)) {
        snprintf(detail, detail_len, "%s of \"%s\" has a negative limit", name, ch->account);
        return LQ_ERR_INTERNAL;
    }
    if (c->type == LQ_CMD_ACCOUNT_OPEN) {
        if (!memchr(ch->currency, '\0', sizeof(ch->currency)) ||
            !lq_message_valid_currency(ch->currency)) {
            snprintf(detail, detail_len, "%s of \"%s\" has no valid currency", name, ch->account);
            return LQ_ERR_INTERNAL;
        }
        if (ch->set_status || ch->reason) {
            snprintf(detail, detail_len, "%s of \"%s\" has a status or a reason", name,
                     ch->account);
            return LQ_ERR_INTERNAL;
        }
        return LQ_OK;
    }
    if (!ch->set_status && !limits_given(ch)) {
        snprintf(detail, detail_len, "%s of \"%s\" changes nothing", name, ch->account);
        return LQ_ERR_INTERNAL;
    }
    if (ch->set_status && ch->status != LQ_STATUS_ACTIVE && ch->status != LQ_STATUS_FROZEN &&
        ch->status != LQ_STATUS_CLOSED) {
        snprintf(detail, detail_len, "%s of \"%s\" has unknown status %d", name, ch->account,
                 (int)ch->status);
        return LQ_ERR_INTERNAL;
    }
    if (ch->reason && strlen(ch->reason) > LQ_REASON_MAX) {
        snprintf(detail, detail_len, "%s of \"%s\" has a reason longer than %d bytes", name,
                 ch->account, LQ_REASON_MAX);
        return LQ_ERR_INTERNAL;
    }
    return LQ_OK;
}

/*
 * The limits of a once ch is applied to it: overdraft_limit sets the floor
 * (and turns allow_negative off), allow_negative alone removes the floor or
 * sets it to 0 (the overdraft limit is then 0 either way), max_balance sets
 * the ceiling (0: none).
 */
static void apply_limits(lq_account *a, const lq_account_change *ch)
{
    if (ch->set_overdraft_limit) {
        a->allow_negative = false;
        a->overdraft_limit = ch->overdraft_limit;
    } else if (ch->set_allow_negative) {
        a->allow_negative = ch->allow_negative;
        a->overdraft_limit = 0;
    }
    if (ch->set_max_balance)
        a->max_balance = ch->max_balance;
}

int lq_ledger_apply_account_open(lq_book *book, const lq_command *c, lq_undo *undo, char *detail,
                                 size_t detail_len)
{
    const lq_account_change *ch = &c->change;
    lq_account a;
    int r;

    r = check_shape(c, detail, detail_len);
    if (r != LQ_OK)
        return r;
    if (lq_book_find(book, ch->account)) {
        snprintf(detail, detail_len, "account \"%s\" exists already", ch->account);
        return LQ_ERR_ACCOUNT_EXISTS;
    }

    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "%s", ch->account);
    snprintf(a.currency, sizeof(a.currency), "%s", ch->currency);
    a.status = LQ_STATUS_ACTIVE;
    apply_limits(&a, ch);
    a.changed = true;
    a.opened = true;
    r = lq_book_add(book, &a);
    if (r != LQ_OK)
        return r == LQ_ERR_EXISTS ? LQ_ERR_INTERNAL : r;
    lq_ledger_undo_added(undo, a.id);
    return lq_ledger_append_entry(book, lq_book_find(book, a.id), c->id, ENTRY_OPEN, 0, 0, NULL);
}

/*
 * The JSON object of the fields ch sets, as given, and its reason
 * (docs/protocol.md section 15).  Returns a new string (caller frees) or
 * NULL when out of memory.
 */
static char *change_json(const lq_account_change *ch)
{
    lq_json j;

    lq_json_init(&j);
    lq_json_object_begin(&j);
    if (ch->set_status) {
        lq_json_key(&j, "status");
        lq_json_string(&j, lq_account_status_name(ch->status));
    }
    if (ch->set_allow_negative) {
        lq_json_key(&j, "allow_negative");
        lq_json_bool(&j, ch->allow_negative);
    }
    if (ch->set_overdraft_limit) {
        lq_json_key(&j, "overdraft_limit");
        lq_json_int(&j, ch->overdraft_limit);
    }
    if (ch->set_max_balance) {
        lq_json_key(&j, "max_balance");
        if (ch->max_balance == 0)
            lq_json_null(&j);
        else
            lq_json_int(&j, ch->max_balance);
    }
    if (ch->reason) {
        lq_json_key(&j, "reason");
        lq_json_string(&j, ch->reason);
    }
    lq_json_object_end(&j);
    return lq_json_steal(&j);
}

/*
 * balance_outside_limits: whether a, as it is now, lies outside the limits
 * it would have after the update (the floor and the ceiling it would have,
 * whichever of them the update gives).  Writes detail when it does.
 */
static bool outside_limits(const lq_account *a, const lq_account_change *ch, char *detail,
                           size_t detail_len)
{
    lq_account after = *a;
    char extra[48] = "";

    apply_limits(&after, ch);
    if (lq_ledger_below_floor(lq_account_available(a), 0, after.allow_negative,
                              after.overdraft_limit)) {
        if (a->held_debits != 0)
            snprintf(extra, sizeof(extra), " (available %" PRId64 ")", lq_account_available(a));
        snprintf(detail, detail_len,
                 "account \"%s\" has balance %" PRId64 "%s, below the new floor %s%" PRId64, a->id,
                 lq_account_balance(a), extra, after.overdraft_limit > 0 ? "-" : "",
                 after.overdraft_limit);
        return true;
    }
    if (lq_ledger_above_ceiling(lq_account_balance(a), a->held_credits, 0, after.max_balance)) {
        if (a->held_credits != 0)
            snprintf(extra, sizeof(extra), " (held credits %" PRId64 ")", a->held_credits);
        snprintf(detail, detail_len,
                 "account \"%s\" has balance %" PRId64 "%s, above the new max balance %" PRId64,
                 a->id, lq_account_balance(a), extra, after.max_balance);
        return true;
    }
    return false;
}

int lq_ledger_apply_account_update(lq_book *book, const lq_command *c, lq_undo *undo, char *detail,
                                   size_t detail_len)
{
    const lq_account_change *ch = &c->change;
    lq_account *a;
    char *change;
    int r;

    r = check_shape(c, detail, detail_len);
    if (r != LQ_OK)
        return r;
    a = lq_book_find(book, ch->account);
    if (!a) {
        snprintf(detail, detail_len, "account \"%s\" does not exist", ch->account);
        return LQ_ERR_ACCOUNT_NOT_FOUND;
    }
    /* Closed is final, whatever the update would change. */
    if (a->status == LQ_STATUS_CLOSED) {
        snprintf(detail, detail_len, "account \"%s\" is closed", a->id);
        return LQ_ERR_ACCOUNT_CLOSED;
    }
    if (ch->set_status && ch->status == LQ_STATUS_CLOSED) {
        if (lq_account_balance(a) != 0) {
            snprintf(detail, detail_len, "account \"%s\" has balance %" PRId64 ", cannot be closed",
                     a->id, lq_account_balance(a));
            return LQ_ERR_ACCOUNT_NOT_EMPTY;
        }
        if (a->held_debits != 0 || a->held_credits != 0) {
            snprintf(detail, detail_len,
                     "account \"%s\" has held debits %" PRId64 " and held credits %" PRId64
                     ", cannot be closed",
                     a->id, a->held_debits, a->held_credits);
            return LQ_ERR_ACCOUNT_HAS_HOLDS;
        }
    }
    if (limits_given(ch) && outside_limits(a, ch, detail, detail_len))
        return LQ_ERR_BALANCE_OUTSIDE_LIMITS;

    change = change_json(ch);
    if (!change)
        return LQ_ERR_NOMEM;
    r = lq_ledger_undo_save(undo, a);
    if (r != LQ_OK) {
        free(change);
        return r;
    }
    if (ch->set_status)
        a->status = ch->status;
    apply_limits(a, ch);
    a->changed = true;
    a->settings_changed = true;
    /* The same status or limits again are applied too: the update is recorded all the same. */
    return lq_ledger_append_entry(book, a, c->id, ENTRY_UPDATE, 0, 0, change);
}
