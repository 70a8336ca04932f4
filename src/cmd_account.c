/*
 * `ledgerq account open|import|update|show|list|history` (docs/protocol.md
 * sections 1.6, 13 and 15): which subcommand, its arguments, and the values
 * its subcommands share.  The subcommands themselves are in
 * cmd_account_write.c (open, import, update) and cmd_account_read.c (show,
 * list, history).
 *
 * Each subcommand has its own options (--allow-negative is a flag of open
 * but takes true or false in update): the subcommand is found first, then
 * the arguments are parsed against its table.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_account_internal.h"
#include "ledgerq/cli.h"
#include "ledgerq/config.h"
#include "ledgerq/db.h"
#include "ledgerq/error.h"
#include "ledgerq/message.h"

static const lq_account_subcommand *const subcommands[] = {
    &lq_account_open_cmd, &lq_account_import_cmd, &lq_account_update_cmd,
    &lq_account_show_cmd, &lq_account_list_cmd,   &lq_account_history_cmd,
};
#define N_SUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

/* Every option of every subcommand, for `ledgerq account --help`. */
static const lq_cli_option all_options[] = {
    {"currency", true, "CCY  the account's currency (open)"},
    {"allow-negative", false,
     "[BOOL]  no floor (open: a flag; update: true removes the floor, false sets it to 0)"},
    {"overdraft-limit", true, "N  the balance may go down to -N (open, update)"},
    {"max-balance", true, "N  the most the balance may reach; update also takes none"},
    {"file", true, "F  read the accounts to import from F instead of stdin (import)"},
    {"status", true, "S  active, frozen or closed (update)"},
    {"reason", true, "TEXT  why, at most 256 bytes, kept in the history (update)"},
    {"at", true, "TIME  the account as of an RFC 3339 time (show)"},
    {"after", true, "SEQ  start after this entry (history)"},
    {"limit", true, "N  at most N entries, default 100, at most 1000 (history)"},
    {"since", true, "TIME  only entries at or after this time (history)"},
    {"until", true, "TIME  only entries at or before this time (history)"},
    {"json", false, "print JSON (show, list, history)"},
    {NULL, false, NULL},
};

static const char all_synopsis[] =
    "open ID --currency CCY [--allow-negative | --overdraft-limit N] [--max-balance N]\n"
    "       ledgerq account import [--file F]\n"
    "       ledgerq account update ID [--status S] [--overdraft-limit N] [--allow-negative BOOL]\n"
    "                              [--max-balance N|none] [--reason TEXT]\n"
    "       ledgerq account show ID [--at TIME] [--json]\n"
    "       ledgerq account list [--json]\n"
    "       ledgerq account history ID [--after SEQ] [--limit N] [--since TIME] [--until TIME]\n"
    "                               [--json]";

/* ------------------------------------------------------------ shared values */

/* Print the usage error of a flag's value. */
void lq_account_cli_bad_value(const char *flag, const char *value, const char *expected)
{
    lq_cli_fail("invalid value for --%s: \"%.80s\" (expected %s)", flag, value, expected);
}

/*
 * A whole number written as decimal digits without sign or leading zero
 * ("0" itself is one), as amounts are (docs/protocol.md section 4), from min
 * to INT64_MAX.
 */
bool lq_account_cli_parse_whole(const char *s, int64_t min, int64_t *ret)
{
    int64_t v = 0;

    if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
        return false;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || __builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, *p - '0', &v))
            return false;
    }
    if (v < min)
        return false;
    *ret = v;
    return true;
}

bool lq_account_cli_check_id(const char *id)
{
    if (lq_message_valid_account_id(id))
        return true;
    lq_cli_fail("invalid account id \"%.80s\": must be 1-64 characters of A-Z a-z 0-9 . _ : -", id);
    return false;
}

/* The floor of a as people read it: "none", "0", "-500". */
const char *lq_account_cli_floor(const lq_account *a, char buf[32])
{
    if (a->allow_negative)
        return "none";
    snprintf(buf, 32, "%s%" PRId64, a->overdraft_limit > 0 ? "-" : "", a->overdraft_limit);
    return buf;
}

/* The ceiling of a: "none" or the number. */
const char *lq_account_cli_ceiling(const lq_account *a, char buf[32])
{
    if (a->max_balance <= 0)
        return "none";
    snprintf(buf, 32, "%" PRId64, a->max_balance);
    return buf;
}

/*
 * balance - held_debits as decimal text, exact even where it leaves the
 * 64-bit range (a balance near -2^63 with held debits): the JSON integers
 * of docs/protocol.md section 6.5.
 */
const char *lq_account_cli_available(int64_t balance, int64_t held_debits, char buf[32])
{
    int64_t v;

    if (!__builtin_sub_overflow(balance, held_debits, &v)) {
        snprintf(buf, 32, "%" PRId64, v);
    } else {
        /* Only below INT64_MIN (held_debits >= 0): -(|balance| + held_debits) fits a uint64. */
        uint64_t magnitude = (uint64_t)(-(balance + 1)) + 1u + (uint64_t)held_debits;
        snprintf(buf, 32, "-%" PRIu64, magnitude);
    }
    return buf;
}

/* Connect; prints the failure. */
lq_db *lq_account_cli_connect(const lq_cli_args *args)
{
    char err[512];
    lq_db *db = NULL;

    if (lq_db_connect(args->cfg.database_url, &db, err, sizeof(err)) != LQ_OK)
        lq_cli_fail("%s", err);
    return db;
}

/* ------------------------------------------------------------ dispatch */

/* How an option name takes a value across the subcommands: 0 never, 1 always, 2 in some. */
static int option_arity(const char *name, size_t len)
{
    int with = 0, without = 0;

    for (size_t s = 0; s < N_SUBCOMMANDS; s++) {
        for (const lq_cli_option *o = subcommands[s]->options; o->name; o++) {
            if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
                o->has_arg ? with++ : without++;
        }
    }
    for (size_t i = 0; lq_config_setting(i) != NULL; i++) {
        const char *flag = lq_config_setting(i)->flag;
        if (strlen(flag) == len && strncmp(flag, name, len) == 0)
            with++;
    }
    return with && without ? 2 : with ? 1 : 0;
}

/*
 * The first positional argument, the subcommand, before the options are
 * parsed against its table: options may come before it, so the values of
 * those that take one are skipped (an option that is a flag of one
 * subcommand and takes true or false in another skips only those words).
 * NULL when there is none.
 */
static const char *find_subcommand_name(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        size_t len;
        int arity;

        if (strcmp(arg, "--") == 0)
            return i + 1 < argc ? argv[i + 1] : NULL;
        if (arg[0] != '-' || arg[1] == '\0')
            return arg;
        if (arg[1] != '-' || strchr(arg, '=') != NULL)
            continue;
        len = strlen(arg + 2);
        arity = option_arity(arg + 2, len);
        if (i + 1 < argc && (arity == 1 || (arity == 2 && (strcmp(argv[i + 1], "true") == 0 ||
                                                           strcmp(argv[i + 1], "false") == 0))))
            i++;
    }
    return NULL;
}

int lq_cmd_account(int argc, char **argv)
{
    const char *name = find_subcommand_name(argc, argv);
    const lq_account_subcommand *sub = NULL;
    lq_cli_args args;
    int rc;

    for (size_t s = 0; name && s < N_SUBCOMMANDS; s++) {
        if (strcmp(subcommands[s]->name, name) == 0)
            sub = subcommands[s];
    }
    rc = lq_cli_parse("account", sub ? sub->synopsis : all_synopsis,
                      sub ? sub->options : all_options, argc, argv, &args);
    if (rc != LQ_CLI_CONTINUE)
        goto out;
    rc = LQ_EXIT_USAGE;
    if (!lq_cli_want_args("account", &args, 1, 2))
        goto out;
    if (sub == NULL) {
        lq_cli_fail("account: unknown subcommand \"%s\" (open, import, update, show, list, "
                    "history)",
                    args.rest[0]);
        goto out;
    }
    if (!lq_cli_want_args("account", &args, sub->n_args, sub->n_args))
        goto out;
    rc = sub->run(sub, &args);
out:
    lq_cli_args_release(&args);
    return rc;
}
