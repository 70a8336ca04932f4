/* `ledgerq account open|import|show|list`. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/cli.h"
#include "ledgerq/db.h"
#include "ledgerq/error.h"
#include "ledgerq/json.h"
#include "ledgerq/message.h"

static const char account_synopsis[] =
    "open ID --currency CCY [--allow-negative] | import [--file F] | show ID [--json] | "
    "list [--json]";

static const lq_cli_option account_options[] = {
    {"currency", true, "CCY  currency of the account to open (three upper-case letters)"},
    {"allow-negative", false, "the account may go below zero (open)"},
    {"file", true, "F  read accounts to import from F instead of stdin"},
    {"json", false, "print JSON (show, list)"},
    {NULL, false, NULL},
};

/* The object of docs/protocol.md section 6 for one account. */
static void account_json(lq_json *j, const lq_account *a, const char *created_at)
{
    lq_json_object_begin(j);
    lq_json_key(j, "id");
    lq_json_string(j, a->id);
    lq_json_key(j, "currency");
    lq_json_string(j, a->currency);
    lq_json_key(j, "balance");
    lq_json_int(j, lq_account_balance(a));
    lq_json_key(j, "debits");
    lq_json_int(j, a->debits);
    lq_json_key(j, "credits");
    lq_json_int(j, a->credits);
    lq_json_key(j, "allow_negative");
    lq_json_bool(j, a->allow_negative);
    lq_json_key(j, "created_at");
    lq_json_string(j, created_at);
    lq_json_object_end(j);
}

static int open_account(lq_db *db, const lq_cli_args *args)
{
    const char *currency = lq_cli_value(args, account_options, "currency");
    lq_account a;

    memset(&a, 0, sizeof(a));
    if (!lq_message_valid_account_id(args->rest[1])) {
        lq_cli_fail("invalid account id \"%.80s\": must be 1-64 characters of A-Z a-z 0-9 . _ : -",
                    args->rest[1]);
        return LQ_EXIT_USAGE;
    }
    if (currency == NULL) {
        lq_cli_fail("account open: --currency is required");
        return LQ_EXIT_USAGE;
    }
    if (!lq_message_valid_currency(currency)) {
        lq_cli_fail("invalid currency \"%.20s\": must be three upper-case letters", currency);
        return LQ_EXIT_USAGE;
    }
    snprintf(a.id, sizeof(a.id), "%s", args->rest[1]);
    snprintf(a.currency, sizeof(a.currency), "%s", currency);
    a.allow_negative = lq_cli_value(args, account_options, "allow-negative") != NULL;
    if (lq_db_account_open(db, &a) != LQ_OK) {
        lq_cli_fail("%s", lq_db_error(db));
        return LQ_EXIT_FAILURE;
    }
    printf("opened account %s (%s%s)\n", a.id, a.currency,
           a.allow_negative ? ", may go negative" : "");
    return LQ_EXIT_OK;
}

static int import_accounts(lq_db *db, const lq_cli_args *args)
{
    const char *path = lq_cli_value(args, account_options, "file");
    FILE *in = stdin;
    lq_account *accounts = NULL;
    size_t n = 0, cap = 0, line_no = 0, failed = 0, len = 0;
    char *line = NULL, detail[LQ_DETAIL_MAX];
    ssize_t got;
    int rc = LQ_EXIT_FAILURE;

    if (path && (in = fopen(path, "r")) == NULL) {
        lq_cli_fail("could not open file \"%s\": %s", path, strerror(errno));
        return LQ_EXIT_FAILURE;
    }
    while ((got = getline(&line, &len, in)) >= 0) {
        lq_account a;
        lq_account_change change;
        line_no++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            got--;
        if (strspn(line, " \t") == (size_t)got)
            continue;
        memset(&a, 0, sizeof(a));
        if (lq_message_parse_account(line, (size_t)got, &change, detail, sizeof(detail)) != LQ_OK) {
            lq_cli_fail("line %zu: %s", line_no, detail);
            goto out;
        }
        memcpy(a.id, change.account, sizeof(a.id));
        memcpy(a.currency, change.currency, sizeof(a.currency));
        a.allow_negative = change.allow_negative;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(accounts[i].id, a.id) == 0) {
                lq_cli_fail("line %zu: account \"%s\" appears twice", line_no, a.id);
                goto out;
            }
        }
        if (n == cap) {
            size_t new_cap = cap ? 2 * cap : 256;
            lq_account *p = realloc(accounts, new_cap * sizeof(*p));
            if (p == NULL) {
                lq_cli_fail("out of memory");
                goto out;
            }
            accounts = p;
            cap = new_cap;
        }
        accounts[n++] = a;
    }
    if (ferror(in)) {
        lq_cli_fail("could not read %s: %s", path ? path : "standard input", strerror(errno));
        goto out;
    }
    if (n > 0 && lq_db_account_import(db, accounts, n, &failed) != LQ_OK) {
        lq_cli_fail("%s; nothing imported", lq_db_error(db));
        goto out;
    }
    printf("imported %zu account%s\n", n, n == 1 ? "" : "s");
    rc = LQ_EXIT_OK;
out:
    free(line);
    free(accounts);
    if (in != stdin)
        fclose(in);
    return rc;
}

static int show_account(lq_db *db, const lq_cli_args *args)
{
    lq_account a;
    char created_at[LQ_TIMESTAMP_MAX];
    int r = lq_db_account_get(db, args->rest[1], &a, created_at);

    if (r != LQ_OK) {
        lq_cli_fail("%s", lq_db_error(db));
        return LQ_EXIT_FAILURE;
    }
    if (lq_cli_value(args, account_options, "json")) {
        lq_json j;
        lq_json_init(&j);
        account_json(&j, &a, created_at);
        return lq_cli_print_json(&j);
    }
    printf("id:             %s\n"
           "currency:       %s\n"
           "balance:        %" PRId64 "\n"
           "debits:         %" PRId64 "\n"
           "credits:        %" PRId64 "\n"
           "allow_negative: %s\n"
           "created_at:     %s\n",
           a.id, a.currency, lq_account_balance(&a), a.debits, a.credits,
           a.allow_negative ? "true" : "false", created_at);
    return LQ_EXIT_OK;
}

static void list_json_row(const lq_account *a, const char *created_at, void *arg)
{
    account_json(arg, a, created_at);
}

static void list_text_row(const lq_account *a, const char *created_at, void *arg)
{
    (void)arg;
    printf("%-24s %-3s %20" PRId64 " %20" PRId64 " %20" PRId64 " %-5s %s\n", a->id, a->currency,
           lq_account_balance(a), a->debits, a->credits, a->allow_negative ? "yes" : "no",
           created_at);
}

static int list_accounts(lq_db *db, const lq_cli_args *args)
{
    int r;

    if (lq_cli_value(args, account_options, "json")) {
        lq_json j;
        lq_json_init(&j);
        lq_json_array_begin(&j);
        r = lq_db_account_list(db, list_json_row, &j);
        lq_json_array_end(&j);
        if (r != LQ_OK) {
            lq_json_release(&j);
            lq_cli_fail("%s", lq_db_error(db));
            return LQ_EXIT_FAILURE;
        }
        return lq_cli_print_json(&j);
    }
    printf("%-24s %-3s %20s %20s %20s %-5s %s\n", "ID", "CCY", "BALANCE", "DEBITS", "CREDITS",
           "NEG", "CREATED_AT");
    r = lq_db_account_list(db, list_text_row, NULL);
    if (r != LQ_OK) {
        lq_cli_fail("%s", lq_db_error(db));
        return LQ_EXIT_FAILURE;
    }
    return LQ_EXIT_OK;
}

int lq_cmd_account(int argc, char **argv)
{
    lq_cli_args args;
    lq_db *db = NULL;
    char err[512];
    const char *sub;
    int want;
    int rc = lq_cli_parse("account", account_synopsis, account_options, argc, argv, &args);

    if (rc != LQ_CLI_CONTINUE)
        goto out;
    rc = LQ_EXIT_USAGE;
    if (!lq_cli_want_args("account", &args, 1, 2))
        goto out;
    sub = args.rest[0];
    if (strcmp(sub, "open") == 0 || strcmp(sub, "show") == 0) {
        want = 2;
    } else if (strcmp(sub, "import") == 0 || strcmp(sub, "list") == 0) {
        want = 1;
    } else {
        lq_cli_fail("account: unknown subcommand \"%s\" (open, import, show, list)", sub);
        goto out;
    }
    if (!lq_cli_want_args("account", &args, want, want))
        goto out;
    rc = LQ_EXIT_FAILURE;
    if (lq_db_connect(args.cfg.database_url, &db, err, sizeof(err)) != LQ_OK) {
        lq_cli_fail("%s", err);
        goto out;
    }
    if (strcmp(sub, "open") == 0)
        rc = open_account(db, &args);
    else if (strcmp(sub, "import") == 0)
        rc = import_accounts(db, &args);
    else if (strcmp(sub, "show") == 0)
        rc = show_account(db, &args);
    else
        rc = list_accounts(db, &args);
out:
    lq_db_close(db);
    lq_cli_args_release(&args);
    return rc;
}
