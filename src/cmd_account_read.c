/*
 * `ledgerq account show|list|history` (docs/protocol.md sections 1.6, 6.6,
 * 13 and 15): accounts now, an account as of a time, a page of its
 * history.  Times are RFC 3339, with Z or an offset.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd_account_internal.h"
#include "ledgerq/cli.h"
#include "ledgerq/clock.h"
#include "ledgerq/db.h"
#include "ledgerq/error.h"
#include "ledgerq/json.h"
#include "ledgerq/ledger.h"
#include "ledgerq/message.h"

#define HISTORY_LIMIT_DEFAULT 100

static const lq_cli_option show_options[] = {
    {"at", true, "TIME  the balance and held amounts as of an RFC 3339 time"},
    {"json", false, "print JSON"},
    {NULL, false, NULL},
};

static const lq_cli_option list_options[] = {
    {"json", false, "print JSON"},
    {NULL, false, NULL},
};

static const lq_cli_option history_options[] = {
    {"after", true, "SEQ  start after this entry (default 0: from the first)"},
    {"limit", true, "N  at most N entries (default 100, at most 1000)"},
    {"since", true, "TIME  only entries at or after this RFC 3339 time"},
    {"until", true, "TIME  only entries at or before this RFC 3339 time"},
    {"json", false, "print JSON"},
    {NULL, false, NULL},
};

/* ------------------------------------------------------------ times */

/*
 * An RFC 3339 time (lq_clock_parse_time()) as the same instant in UTC with
 * microseconds, which PostgreSQL reads exactly.
 */
static bool parse_time(const char *s, bool round_up, char ret[LQ_TIMESTAMP_MAX])
{
    int64_t us;

    if (!lq_clock_parse_time(s, round_up, &us))
        return false;
    lq_clock_format(us, ret);
    return true;
}

/* The time option flag as UTC (see parse_time()); prints the usage error. */
static bool time_option(const char *flag, const char *value, bool round_up,
                        char ret[LQ_TIMESTAMP_MAX])
{
    if (parse_time(value, round_up, ret))
        return true;
    lq_account_cli_bad_value(
        flag, value,
        "an RFC 3339 time from year 1 to 9999, such as 2026-11-22T10:00:00Z or "
        "2026-11-22T11:00:00.5+01:00");
    return false;
}

/* ------------------------------------------------------------ show and list */

/*
 * The object of docs/protocol.md sections 6.6 and 13 for one account:
 * overdraft_limit is null with allow_negative, max_balance null without a
 * ceiling.
 */
static void account_json(lq_json *j, const lq_account *a, const char *created_at)
{
    char buf[32];

    lq_json_object_begin(j);
    lq_json_key(j, "id");
    lq_json_string(j, a->id);
    lq_json_key(j, "currency");
    lq_json_string(j, a->currency);
    lq_json_key(j, "status");
    lq_json_string(j, lq_account_status_name(a->status));
    lq_json_key(j, "balance");
    lq_json_int(j, lq_account_balance(a));
    lq_json_key(j, "debits");
    lq_json_int(j, a->debits);
    lq_json_key(j, "credits");
    lq_json_int(j, a->credits);
    lq_json_key(j, "held_debits");
    lq_json_int(j, a->held_debits);
    lq_json_key(j, "held_credits");
    lq_json_int(j, a->held_credits);
    lq_json_key(j, "available");
    lq_json_raw(j, lq_account_cli_available(lq_account_balance(a), a->held_debits, buf));
    lq_json_key(j, "allow_negative");
    lq_json_bool(j, a->allow_negative);
    lq_json_key(j, "overdraft_limit");
    if (a->allow_negative)
        lq_json_null(j);
    else
        lq_json_int(j, a->overdraft_limit);
    lq_json_key(j, "max_balance");
    if (a->max_balance > 0)
        lq_json_int(j, a->max_balance);
    else
        lq_json_null(j);
    lq_json_key(j, "created_at");
    lq_json_string(j, created_at);
    lq_json_object_end(j);
}

static void print_account(const lq_account *a, const char *created_at)
{
    char buf[32];

    printf("id:              %s\n", a->id);
    printf("currency:        %s\n", a->currency);
    printf("status:          %s\n", lq_account_status_name(a->status));
    printf("balance:         %" PRId64 "\n", lq_account_balance(a));
    printf("debits:          %" PRId64 "\n", a->debits);
    printf("credits:         %" PRId64 "\n", a->credits);
    printf("held_debits:     %" PRId64 "\n", a->held_debits);
    printf("held_credits:    %" PRId64 "\n", a->held_credits);
    printf("available:       %s\n",
           lq_account_cli_available(lq_account_balance(a), a->held_debits, buf));
    printf("allow_negative:  %s\n", a->allow_negative ? "true" : "false");
    if (a->allow_negative)
        printf("overdraft_limit: none\n");
    else
        printf("overdraft_limit: %" PRId64 "\n", a->overdraft_limit);
    printf("max_balance:     %s\n", lq_account_cli_ceiling(a, buf));
    printf("created_at:      %s\n", created_at);
}

/* `account show ID --at TIME`: the account's last history entry then. */
static int show_account_at(lq_db *db, const char *id, const char *at, bool json)
{
    lq_account_point p;
    char buf[32];
    int r = lq_db_account_at(db, id, at, &p);

    if (r != LQ_OK) {
        lq_cli_fail("%s", lq_db_error(db));
        return LQ_EXIT_FAILURE;
    }
    if (p.seq == 0) {
        lq_cli_fail("account \"%s\" did not exist yet at %s: it was opened at %s", p.id, p.at,
                    p.opened_at[0] ? p.opened_at : "an unknown time");
        return LQ_EXIT_FAILURE;
    }
    lq_account_cli_available(p.balance, p.held_debits, buf);
    if (json) {
        lq_json j;
        lq_json_init(&j);
        lq_json_object_begin(&j);
        lq_json_key(&j, "id");
        lq_json_string(&j, p.id);
        lq_json_key(&j, "currency");
        lq_json_string(&j, p.currency);
        lq_json_key(&j, "at");
        lq_json_string(&j, p.at);
        lq_json_key(&j, "balance");
        lq_json_int(&j, p.balance);
        lq_json_key(&j, "held_debits");
        lq_json_int(&j, p.held_debits);
        lq_json_key(&j, "held_credits");
        lq_json_int(&j, p.held_credits);
        lq_json_key(&j, "available");
        lq_json_raw(&j, buf);
        lq_json_object_end(&j);
        return lq_cli_print_json(&j);
    }
    printf("id:           %s\n", p.id);
    printf("currency:     %s\n", p.currency);
    printf("at:           %s\n", p.at);
    printf("balance:      %" PRId64 "\n", p.balance);
    printf("held_debits:  %" PRId64 "\n", p.held_debits);
    printf("held_credits: %" PRId64 "\n", p.held_credits);
    printf("available:    %s\n", buf);
    printf("last entry:   %" PRId64 " at %s\n", p.seq, p.entry_at);
    return LQ_EXIT_OK;
}

static int show_account(const lq_account_subcommand *sub, const lq_cli_args *args)
{
    const char *at = lq_cli_value(args, sub->options, "at");
    bool json = lq_cli_value(args, sub->options, "json") != NULL;
    char at_utc[LQ_TIMESTAMP_MAX], created_at[LQ_TIMESTAMP_MAX];
    lq_account a;
    lq_db *db = NULL;
    int rc = LQ_EXIT_USAGE;

    if (at && !time_option("at", at, false, at_utc))
        goto out;
    rc = LQ_EXIT_FAILURE;
    if ((db = lq_account_cli_connect(args)) == NULL)
        goto out;
    if (at) {
        rc = show_account_at(db, args->rest[1], at_utc, json);
        goto out;
    }
    if (lq_db_account_get(db, args->rest[1], &a, created_at) != LQ_OK) {
        lq_cli_fail("%s", lq_db_error(db));
        goto out;
    }
    if (json) {
        lq_json j;
        lq_json_init(&j);
        account_json(&j, &a, created_at);
        rc = lq_cli_print_json(&j);
        goto out;
    }
    print_account(&a, created_at);
    rc = LQ_EXIT_OK;
out:
    lq_db_close(db);
    return rc;
}

static void list_json_row(const lq_account *a, const char *created_at, void *arg)
{
    account_json(arg, a, created_at);
}

#define LIST_FORMAT "%-24s %-3s %-6s %20s %20s %20s %20s %20s %20s %20s %20s %s\n"

static void list_text_row(const lq_account *a, const char *created_at, void *arg)
{
    char balance[32], debits[32], credits[32], held_debits[32], held_credits[32], available[32],
        floor[32], ceiling[32];

    (void)arg;
    snprintf(balance, sizeof(balance), "%" PRId64, lq_account_balance(a));
    snprintf(debits, sizeof(debits), "%" PRId64, a->debits);
    snprintf(credits, sizeof(credits), "%" PRId64, a->credits);
    snprintf(held_debits, sizeof(held_debits), "%" PRId64, a->held_debits);
    snprintf(held_credits, sizeof(held_credits), "%" PRId64, a->held_credits);
    printf(LIST_FORMAT, a->id, a->currency, lq_account_status_name(a->status), balance, debits,
           credits, held_debits, held_credits,
           lq_account_cli_available(lq_account_balance(a), a->held_debits, available),
           lq_account_cli_floor(a, floor), lq_account_cli_ceiling(a, ceiling), created_at);
}

static int list_accounts(const lq_account_subcommand *sub, const lq_cli_args *args)
{
    lq_db *db = lq_account_cli_connect(args);
    int r, rc = LQ_EXIT_FAILURE;

    if (db == NULL)
        return LQ_EXIT_FAILURE;
    if (lq_cli_value(args, sub->options, "json")) {
        lq_json j;
        lq_json_init(&j);
        lq_json_array_begin(&j);
        r = lq_db_account_list(db, list_json_row, &j);
        lq_json_array_end(&j);
        if (r != LQ_OK) {
            lq_json_release(&j);
            lq_cli_fail("%s", lq_db_error(db));
        } else {
            rc = lq_cli_print_json(&j);
        }
        goto out;
    }
    printf(LIST_FORMAT, "ID", "CCY", "STATUS", "BALANCE", "DEBITS", "CREDITS", "HELD_DEBITS",
           "HELD_CREDITS", "AVAILABLE", "FLOOR", "CEILING", "CREATED_AT");
    if (lq_db_account_list(db, list_text_row, NULL) != LQ_OK) {
        lq_cli_fail("%s", lq_db_error(db));
        goto out;
    }
    rc = LQ_EXIT_OK;
out:
    lq_db_close(db);
    return rc;
}

/* ------------------------------------------------------------ history */

/* One entry of section 15 into the array j is writing. */
static void entry_json(const lq_entry *e, const char *at, void *arg)
{
    lq_json *j = arg;

    lq_json_object_begin(j);
    lq_json_key(j, "seq");
    lq_json_int(j, e->seq);
    lq_json_key(j, "command");
    lq_json_string(j, e->command);
    lq_json_key(j, "type");
    lq_json_string(j, e->type);
    lq_json_key(j, "leg");
    if (e->leg > 0)
        lq_json_int(j, e->leg);
    else
        lq_json_null(j);
    lq_json_key(j, "amount");
    lq_json_int(j, e->amount);
    lq_json_key(j, "balance");
    lq_json_int(j, e->balance);
    lq_json_key(j, "held_debits");
    lq_json_int(j, e->held_debits);
    lq_json_key(j, "held_credits");
    lq_json_int(j, e->held_credits);
    lq_json_key(j, "at");
    lq_json_string(j, at);
    /* Only account.update entries carry what they set. */
    if (e->change && strcmp(e->type, "account.update") == 0) {
        lq_json_key(j, "change");
        lq_json_raw(j, e->change);
    }
    lq_json_object_end(j);
}

#define HISTORY_FORMAT "%-8s %-27s %-15s %-3s %20s %20s %20s %20s %s%s%s\n"

static void print_history_header(void)
{
    printf(HISTORY_FORMAT, "SEQ", "AT", "TYPE", "LEG", "AMOUNT", "BALANCE", "HELD_DEBITS",
           "HELD_CREDITS", "COMMAND", "", "");
}

/* One entry as a line under print_history_header(); arg is a bool: the header is out. */
static void entry_text(const lq_entry *e, const char *at, void *arg)
{
    bool *header = arg;
    char seq[24], leg[16] = "-", amount[24], balance[24], held_debits[24], held_credits[24];
    bool change = e->change && strcmp(e->type, "account.update") == 0;

    if (!*header) {
        print_history_header();
        *header = true;
    }
    snprintf(seq, sizeof(seq), "%" PRId64, e->seq);
    if (e->leg > 0)
        snprintf(leg, sizeof(leg), "%d", e->leg);
    snprintf(amount, sizeof(amount), "%" PRId64, e->amount);
    snprintf(balance, sizeof(balance), "%" PRId64, e->balance);
    snprintf(held_debits, sizeof(held_debits), "%" PRId64, e->held_debits);
    snprintf(held_credits, sizeof(held_credits), "%" PRId64, e->held_credits);
    printf(HISTORY_FORMAT, seq, at, e->type, leg, amount, balance, held_debits, held_credits,
           e->command, change ? " " : "", change ? e->change : "");
}

static int account_history(const lq_account_subcommand *sub, const lq_cli_args *args)
{
    const lq_cli_option *opts = sub->options;
    const char *after = lq_cli_value(args, opts, "after");
    const char *limit = lq_cli_value(args, opts, "limit");
    const char *since = lq_cli_value(args, opts, "since");
    const char *until = lq_cli_value(args, opts, "until");
    bool json = lq_cli_value(args, opts, "json") != NULL, header = false;
    char since_utc[LQ_TIMESTAMP_MAX], until_utc[LQ_TIMESTAMP_MAX];
    lq_history_query q = {.after = 0, .limit = HISTORY_LIMIT_DEFAULT};
    int64_t v, next = 0;
    lq_json j;
    lq_db *db = NULL;
    int r, rc = LQ_EXIT_USAGE;

    lq_json_init(&j);
    if (after && !lq_account_cli_parse_whole(after, 0, &q.after)) {
        lq_account_cli_bad_value("after", after, "an entry's seq: a whole number from 0");
        goto out;
    }
    if (limit) {
        if (!lq_account_cli_parse_whole(limit, 1, &v) || v > LQ_HISTORY_PAGE_MAX) {
            lq_account_cli_bad_value("limit", limit, "a whole number from 1 to 1000");
            goto out;
        }
        q.limit = (int)v;
    }
    /* Inclusive bounds: a since between two microseconds lets no earlier entry in. */
    if (since && !time_option("since", since, true, since_utc))
        goto out;
    if (until && !time_option("until", until, false, until_utc))
        goto out;
    q.since = since ? since_utc : NULL;
    q.until = until ? until_utc : NULL;

    rc = LQ_EXIT_FAILURE;
    if ((db = lq_account_cli_connect(args)) == NULL)
        goto out;
    if (json) {
        lq_json_object_begin(&j);
        lq_json_key(&j, "account");
        lq_json_string(&j, args->rest[1]);
        lq_json_key(&j, "entries");
        lq_json_array_begin(&j);
        r = lq_db_account_history(db, args->rest[1], &q, entry_json, &j, &next);
    } else {
        /* The header comes with the first entry: an unknown account prints nothing. */
        r = lq_db_account_history(db, args->rest[1], &q, entry_text, &header, &next);
    }
    if (r != LQ_OK) {
        lq_cli_fail("%s", lq_db_error(db));
        goto out;
    }
    if (json) {
        lq_json_array_end(&j);
        lq_json_key(&j, "next");
        if (next > 0)
            lq_json_int(&j, next);
        else
            lq_json_null(&j);
        lq_json_object_end(&j);
        rc = lq_cli_print_json(&j);
        goto out;
    }
    if (!header)
        print_history_header();
    if (next > 0)
        printf("more entries follow: --after %" PRId64 "\n", next);
    rc = LQ_EXIT_OK;
out:
    lq_json_release(&j);
    lq_db_close(db);
    return rc;
}

const lq_account_subcommand lq_account_show_cmd = {"show", "show ID [--at TIME] [--json]", 2,
                                                   show_options, show_account};

const lq_account_subcommand lq_account_list_cmd = {"list", "list [--json]", 1, list_options,
                                                   list_accounts};

const lq_account_subcommand lq_account_history_cmd = {
    "history", "history ID [--after SEQ] [--limit N] [--since TIME] [--until TIME] [--json]", 2,
    history_options, account_history};
