/*
 * `ledgerq account open|import|update` (docs/protocol.md sections 1.6 and
 * 13): account.open and account.update commands under command ids of the
 * CLI's own (prefix "cli-"), applied as a worker applies a batch:
 * lq_db_batch_load() locks the accounts they name, lq_ledger_decide()
 * applies the rules of section 13 and makes the history entries,
 * lq_db_batch_store() stores the commands, the accounts and the entries in
 * the same transaction.  So they take the same row locks and record the
 * same history as the commands a worker applies.  A rejection is reported
 * and rolled back, storing nothing: the CLI never sends one of its ids
 * twice, so no redelivery needs the outcome, and an import is all or none.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cmd_account_internal.h"
#include "ledgerq/cli.h"
#include "ledgerq/clock.h"
#include "ledgerq/db.h"
#include "ledgerq/error.h"
#include "ledgerq/ledger.h"
#include "ledgerq/message.h"
#include "ledgerq/release.h"

/* Transactions run again after a deadlock, a lock timeout or a concurrent insert. */
#define APPLY_ATTEMPTS 5

static const lq_cli_option open_options[] = {
    {"currency", true, "CCY  the account's currency (three upper-case letters)"},
    {"allow-negative", false, "no floor: the balance may go below zero without limit"},
    {"overdraft-limit", true, "N  the balance may go down to -N (0 .. 9223372036854775807)"},
    {"max-balance", true, "N  the most the balance may reach (1 .. 9223372036854775807)"},
    {NULL, false, NULL},
};

static const lq_cli_option import_options[] = {
    {"file", true, "F  read the accounts (JSON lines) from F instead of stdin"},
    {NULL, false, NULL},
};

static const lq_cli_option update_options[] = {
    {"status", true, "S  active, frozen or closed"},
    {"overdraft-limit", true, "N  the balance may go down to -N (turns allow-negative off)"},
    {"allow-negative", true, "BOOL  true: no floor; false: the floor is 0"},
    {"max-balance", true, "N|none  the most the balance may reach; none: no ceiling"},
    {"reason", true, "TEXT  why (at most 256 bytes), kept in the account's history"},
    {NULL, false, NULL},
};

/* Whether s (NUL-terminated) is valid UTF-8: it is stored in JSON. */
static bool valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        unsigned char c = *p++;
        int more;
        uint32_t cp;

        if (c < 0x80)
            continue;
        if (c >= 0xc2 && c <= 0xdf) {
            more = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            more = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (int i = 0; i < more; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (*p & 0x3f);
        }
        /* Overlong forms, surrogates, past U+10FFFF. */
        if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------ applying commands */

/*
 * A command id of the CLI's own: "cli-", the UTC time with microseconds and
 * 64 random bits, e.g. "cli-20261122T100000.123456Z-9f3a0c1e5d1a4c55":
 * unique forever, and telling when and by what it was made.  Prints the
 * failure.
 */
static bool make_command_id(char *ret, size_t len)
{
    int64_t us = lq_clock_unix_us();
    time_t t = (time_t)(us / 1000000);
    unsigned char random[8];
    struct tm tm;
    char when[32];
    int n;

    if (getrandom(random, sizeof(random), 0) != (ssize_t)sizeof(random)) {
        lq_cli_fail("could not make a command id: getrandom: %s", strerror(errno));
        return false;
    }
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y%m%dT%H%M%S", &tm);
    n = snprintf(ret, len, "cli-%s.%06dZ-", when, (int)(us % 1000000));
    for (size_t i = 0; i < sizeof(random) && n > 0 && (size_t)n < len; i++)
        n += snprintf(ret + n, len - (size_t)n, "%02x", random[i]);
    return true;
}

/* Release what the commands own (they live in an array, not one by one). */
static void commands_release(lq_command *commands, size_t n)
{
    for (size_t i = 0; commands && i < n; i++) {
        free(commands[i].canonical);
        free(commands[i].metadata);
        lq_account_change_release(&commands[i].change);
    }
    free(commands);
}

/* The outcome of apply(). */
typedef struct applied {
    int result;       /* LQ_OK: all stored; a rejection code; or a failure */
    size_t rejected;  /* the index of the first item not applied (when result is not LQ_OK) */
    char detail[512]; /* the rejection's detail, or the failure's line */
    /* The book's copy of the account items[0] names, before any was decided (update). */
    bool found_before;
    lq_account before;
} applied;

/*
 * Apply items (their commands built and canonical) in one transaction
 * through the batch path: all of them, or nothing when any is rejected or
 * anything fails.  A deadlock, a lock timeout or a concurrent insert of the
 * same account runs the transaction again, a few times.  The result is in
 * *ret; the book is the caller's (released by it).
 */
static void apply(lq_db *db, lq_item *items, size_t n, lq_book *book, applied *ret)
{
    char now[LQ_TIMESTAMP_MAX];
    int64_t batch_id;
    int r = LQ_ERR_DB_RETRY;

    memset(ret, 0, sizeof(*ret));
    for (int attempt = 1; attempt <= APPLY_ATTEMPTS && r == LQ_ERR_DB_RETRY; attempt++) {
        const lq_account *a;

        if (attempt > 1)
            usleep(20000 * attempt);
        r = lq_db_batch_load(db, items, n, NULL, book, now, &batch_id);
        if (r != LQ_OK)
            continue;
        a = n > 0 && items[0].command->type != LQ_CMD_TRANSFER
                ? lq_book_find(book, items[0].command->change.account)
                : NULL;
        ret->found_before = a != NULL;
        if (a)
            ret->before = *a;
        lq_ledger_decide(items, n, book, now);
        for (size_t i = 0; i < n; i++) {
            const lq_outcome *o = &items[i].outcome;
            if (o->result == LQ_OK && items[i].insert)
                continue;
            ret->rejected = i;
            if (o->result == LQ_OK)
                snprintf(ret->detail, sizeof(ret->detail), "command id %s was used before",
                         items[i].command->id);
            else
                snprintf(ret->detail, sizeof(ret->detail), "%s", o->detail);
            r = o->result == LQ_OK ? LQ_ERR_INTERNAL : o->result;
            break;
        }
        if (r != LQ_OK) {
            lq_db_batch_abort(db);
            break;
        }
        r = lq_db_batch_store(db, items, n, book, batch_id);
    }
    ret->result = r;
    if (r != LQ_OK && lq_error_classify(r) != LQ_CLASS_REJECTED && ret->detail[0] == '\0')
        snprintf(ret->detail, sizeof(ret->detail), "%s",
                 lq_db_error(db)[0] ? lq_db_error(db) : lq_strerror(r));
}

/*
 * Connect, and check that this release may write to the schema there, as a
 * worker checks before it consumes (docs/upgrades.md): the batch path
 * needs this release's tables, and a newer schema may need what this
 * release does not know.  Prints the failure.
 */
static lq_db *connect_to_write(const lq_cli_args *args)
{
    lq_db *db = lq_account_cli_connect(args);
    lq_schema_state state;
    char why[512];

    if (db == NULL)
        return NULL;
    if (lq_db_schema_state(db, &state) != LQ_OK) {
        lq_cli_fail("%s", lq_db_error(db));
        return lq_db_close(db);
    }
    if (!lq_release_fits(LQ_RELEASE, lq_release_schema_needed(), state.version,
                         state.oldest_release, why, sizeof(why))) {
        lq_cli_fail("%s", why);
        return lq_db_close(db);
    }
    return db;
}

/*
 * Give c (its fields set) a command id of the CLI's and its canonical text,
 * connect, and apply it alone (apply()): the result in *ret.  Returns the
 * connection (caller closes with lq_db_close()), or NULL after printing why
 * it could not get that far.
 */
static lq_db *submit(const lq_cli_args *args, lq_command *c, lq_book *book, applied *ret)
{
    lq_item item;
    lq_db *db;

    if (!make_command_id(c->id, sizeof(c->id)))
        return NULL;
    if (lq_command_canonicalize(c) != LQ_OK) {
        lq_cli_fail("out of memory");
        return NULL;
    }
    if ((db = connect_to_write(args)) == NULL)
        return NULL;
    memset(&item, 0, sizeof(item));
    item.command = c;
    apply(db, &item, 1, book, ret);
    return db;
}

/* ------------------------------------------------------------ open */

/* " (EUR, may go negative, max balance 1000)": what an opened account is. */
static void print_opened(const lq_account_change *ch)
{
    printf("opened account %s (%s", ch->account, ch->currency);
    if (ch->allow_negative)
        printf(", may go negative");
    if (ch->set_overdraft_limit)
        printf(", overdraft limit %" PRId64, ch->overdraft_limit);
    if (ch->set_max_balance)
        printf(", max balance %" PRId64, ch->max_balance);
    printf(")\n");
}

static int open_account(const lq_account_subcommand *sub, const lq_cli_args *args)
{
    const lq_cli_option *opts = sub->options;
    const char *currency = lq_cli_value(args, opts, "currency");
    const char *overdraft = lq_cli_value(args, opts, "overdraft-limit");
    const char *max_balance = lq_cli_value(args, opts, "max-balance");
    lq_command c;
    lq_book book;
    applied out;
    lq_db *db = NULL;
    int rc = LQ_EXIT_USAGE;

    memset(&c, 0, sizeof(c));
    memset(&book, 0, sizeof(book));
    c.type = LQ_CMD_ACCOUNT_OPEN;
    if (!lq_account_cli_check_id(args->rest[1]))
        goto out;
    if (currency == NULL) {
        lq_cli_fail("account open: --currency is required");
        goto out;
    }
    if (!lq_message_valid_currency(currency)) {
        lq_cli_fail("invalid currency \"%.20s\": must be three upper-case letters", currency);
        goto out;
    }
    snprintf(c.change.account, sizeof(c.change.account), "%s", args->rest[1]);
    snprintf(c.change.currency, sizeof(c.change.currency), "%s", currency);
    if (lq_cli_value(args, opts, "allow-negative")) {
        c.change.set_allow_negative = true;
        c.change.allow_negative = true;
    }
    if (overdraft) {
        if (c.change.allow_negative) {
            lq_cli_fail("account open: --allow-negative and --overdraft-limit exclude each other "
                        "(no floor, or a floor at -N)");
            goto out;
        }
        if (!lq_account_cli_parse_whole(overdraft, 0, &c.change.overdraft_limit)) {
            lq_account_cli_bad_value("overdraft-limit", overdraft,
                                     "a whole number from 0 to 9223372036854775807");
            goto out;
        }
        c.change.set_overdraft_limit = true;
    }
    if (max_balance) {
        if (!lq_account_cli_parse_whole(max_balance, 1, &c.change.max_balance)) {
            lq_account_cli_bad_value("max-balance", max_balance,
                                     "a whole number from 1 to 9223372036854775807");
            goto out;
        }
        c.change.set_max_balance = true;
    }

    rc = LQ_EXIT_FAILURE;
    if ((db = submit(args, &c, &book, &out)) == NULL)
        goto out;
    if (out.result == LQ_ERR_ACCOUNT_EXISTS) {
        lq_cli_fail("account \"%s\" already exists", c.change.account);
    } else if (lq_error_classify(out.result) == LQ_CLASS_REJECTED) {
        lq_cli_fail("rejected: %s: %s", lq_error_code(out.result), out.detail);
    } else if (out.result != LQ_OK) {
        lq_cli_fail("could not open the account: %s", out.detail);
    } else {
        print_opened(&c.change);
        rc = LQ_EXIT_OK;
    }
out:
    lq_book_release(&book);
    lq_db_close(db);
    free(c.canonical);
    return rc;
}

/* ------------------------------------------------------------ import */

/* An account of the input, and the line it came from (for sorting by id). */
typedef struct import_line {
    const char *id;
    size_t line_no;
} import_line;

static int compare_import_lines(const void *a, const void *b)
{
    const import_line *x = a, *y = b;
    int c = strcmp(x->id, y->id);

    return c != 0 ? c : (x->line_no > y->line_no) - (x->line_no < y->line_no);
}

/*
 * An id that appears twice: prints the line of the earliest second
 * occurrence and returns true.  Sorting keeps it n log n for large imports.
 */
static bool find_repeated(const lq_command *commands, const size_t *line_nos, size_t n)
{
    import_line *lines = malloc((n ? n : 1) * sizeof(*lines));
    size_t worst = SIZE_MAX;
    const char *id = NULL;

    if (lines == NULL) {
        lq_cli_fail("out of memory");
        return true;
    }
    for (size_t i = 0; i < n; i++)
        lines[i] = (import_line){commands[i].change.account, line_nos[i]};
    qsort(lines, n, sizeof(*lines), compare_import_lines);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(lines[i].id, lines[i - 1].id) == 0 &&
            (i < 2 || strcmp(lines[i].id, lines[i - 2].id) != 0) && lines[i].line_no < worst) {
            worst = lines[i].line_no;
            id = lines[i].id;
        }
    }
    if (id)
        lq_cli_fail("line %zu: account \"%s\" appears twice", worst, id);
    free(lines);
    return id != NULL;
}

static int import_accounts(const lq_account_subcommand *sub, const lq_cli_args *args)
{
    const char *path = lq_cli_value(args, sub->options, "file");
    FILE *in = stdin;
    lq_command *commands = NULL;
    lq_item *items = NULL;
    size_t *line_nos = NULL;
    size_t n = 0, cap = 0, line_no = 0, len = 0;
    char *line = NULL, detail[LQ_DETAIL_MAX], base[64];
    lq_book book;
    applied out;
    lq_db *db = NULL;
    ssize_t got;
    int rc = LQ_EXIT_FAILURE;

    memset(&book, 0, sizeof(book));
    if (path && (in = fopen(path, "r")) == NULL) {
        lq_cli_fail("could not open file \"%s\": %s", path, strerror(errno));
        return LQ_EXIT_FAILURE;
    }
    if (!make_command_id(base, sizeof(base)))
        goto out;
    while ((got = getline(&line, &len, in)) >= 0) {
        lq_command *c;
        line_no++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            got--;
        if (strspn(line, " \t") == (size_t)got)
            continue;
        if (n == cap) {
            size_t new_cap = cap ? 2 * cap : 256;
            lq_command *pc = realloc(commands, new_cap * sizeof(*pc));
            size_t *pl;
            if (pc)
                commands = pc;
            pl = pc ? realloc(line_nos, new_cap * sizeof(*pl)) : NULL;
            if (pl == NULL) {
                lq_cli_fail("out of memory");
                goto out;
            }
            line_nos = pl;
            cap = new_cap;
        }
        c = &commands[n];
        memset(c, 0, sizeof(*c));
        if (lq_message_parse_account(line, (size_t)got, &c->change, detail, sizeof(detail)) !=
            LQ_OK) {
            lq_cli_fail("line %zu: %s", line_no, detail);
            goto out;
        }
        n++;
        c->type = LQ_CMD_ACCOUNT_OPEN;
        /* One command per account: the line it came from tells them apart. */
        snprintf(c->id, sizeof(c->id), "%s-%zu", base, line_no);
        line_nos[n - 1] = line_no;
        if (lq_command_canonicalize(c) != LQ_OK) {
            lq_cli_fail("out of memory");
            goto out;
        }
    }
    if (ferror(in)) {
        lq_cli_fail("could not read %s: %s", path ? path : "standard input", strerror(errno));
        goto out;
    }
    if (find_repeated(commands, line_nos, n))
        goto out;
    if ((db = connect_to_write(args)) == NULL)
        goto out;
    if (n > 0) {
        items = calloc(n, sizeof(*items));
        if (items == NULL) {
            lq_cli_fail("out of memory");
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            items[i].command = &commands[i];
        apply(db, items, n, &book, &out);
        if (out.result == LQ_ERR_ACCOUNT_EXISTS) {
            lq_cli_fail("account \"%s\" already exists; nothing imported",
                        commands[out.rejected].change.account);
            goto out;
        }
        if (lq_error_classify(out.result) == LQ_CLASS_REJECTED) {
            lq_cli_fail("line %zu: rejected: %s: %s; nothing imported", line_nos[out.rejected],
                        lq_error_code(out.result), out.detail);
            goto out;
        }
        if (out.result != LQ_OK) {
            lq_cli_fail("could not import accounts: %s; nothing imported", out.detail);
            goto out;
        }
    }
    printf("imported %zu account%s\n", n, n == 1 ? "" : "s");
    rc = LQ_EXIT_OK;
out:
    lq_book_release(&book);
    lq_db_close(db);
    free(items);
    commands_release(commands, n);
    free(line_nos);
    free(line);
    if (in != stdin)
        fclose(in);
    return rc;
}

/* ------------------------------------------------------------ update */

/*
 * "status active -> frozen, floor 0 -> -500, max balance none -> 1000": the
 * settings the update gave, before and after.
 */
static void print_updated(const lq_command *c, const lq_account *before)
{
    const lq_account_change *ch = &c->change;
    lq_account after = *before;
    char b1[32], b2[32];
    const char *sep = "";

    if (ch->set_status)
        after.status = ch->status;
    if (ch->set_overdraft_limit) {
        after.allow_negative = false;
        after.overdraft_limit = ch->overdraft_limit;
    } else if (ch->set_allow_negative) {
        after.allow_negative = ch->allow_negative;
        after.overdraft_limit = 0;
    }
    if (ch->set_max_balance)
        after.max_balance = ch->max_balance;
    printf("updated account %s: ", ch->account);
    if (ch->set_status) {
        printf("status %s -> %s", lq_account_status_name(before->status),
               lq_account_status_name(after.status));
        sep = ", ";
    }
    if (ch->set_overdraft_limit || ch->set_allow_negative) {
        printf("%sfloor %s -> %s", sep, lq_account_cli_floor(before, b1),
               lq_account_cli_floor(&after, b2));
        sep = ", ";
    }
    if (ch->set_max_balance)
        printf("%smax balance %s -> %s", sep, lq_account_cli_ceiling(before, b1),
               lq_account_cli_ceiling(&after, b2));
    if (ch->reason)
        printf(" (reason \"%s\"; command %s)\n", ch->reason, c->id);
    else
        printf(" (command %s)\n", c->id);
}

static int update_account(const lq_account_subcommand *sub, const lq_cli_args *args)
{
    const lq_cli_option *opts = sub->options;
    const char *status = lq_cli_value(args, opts, "status");
    const char *overdraft = lq_cli_value(args, opts, "overdraft-limit");
    const char *negative = lq_cli_value(args, opts, "allow-negative");
    const char *max_balance = lq_cli_value(args, opts, "max-balance");
    const char *reason = lq_cli_value(args, opts, "reason");
    lq_command c;
    lq_account_change *ch = &c.change;
    lq_book book;
    applied out;
    lq_db *db = NULL;
    int rc = LQ_EXIT_USAGE;

    memset(&c, 0, sizeof(c));
    memset(&book, 0, sizeof(book));
    c.type = LQ_CMD_ACCOUNT_UPDATE;
    if (!lq_account_cli_check_id(args->rest[1]))
        goto out;
    snprintf(ch->account, sizeof(ch->account), "%s", args->rest[1]);
    if (!status && !overdraft && !negative && !max_balance) {
        lq_cli_fail("account update: give at least one of --status, --overdraft-limit, "
                    "--allow-negative, --max-balance");
        goto out;
    }
    if (status) {
        if (!lq_account_status_parse(status, &ch->status)) {
            lq_account_cli_bad_value("status", status, "active, frozen or closed");
            goto out;
        }
        ch->set_status = true;
    }
    if (negative) {
        if (strcmp(negative, "true") != 0 && strcmp(negative, "false") != 0) {
            lq_account_cli_bad_value("allow-negative", negative, "true or false");
            goto out;
        }
        ch->set_allow_negative = true;
        ch->allow_negative = strcmp(negative, "true") == 0;
    }
    if (overdraft) {
        if (!lq_account_cli_parse_whole(overdraft, 0, &ch->overdraft_limit)) {
            lq_account_cli_bad_value("overdraft-limit", overdraft,
                                     "a whole number from 0 to 9223372036854775807");
            goto out;
        }
        if (ch->allow_negative) {
            lq_cli_fail("account update: --allow-negative true and --overdraft-limit exclude each "
                        "other (no floor, or a floor at -N)");
            goto out;
        }
        ch->set_overdraft_limit = true;
    }
    if (max_balance) {
        /* none: no ceiling, which the change holds as 0. */
        if (strcmp(max_balance, "none") != 0 &&
            !lq_account_cli_parse_whole(max_balance, 1, &ch->max_balance)) {
            lq_account_cli_bad_value("max-balance", max_balance,
                                     "a whole number from 1 to 9223372036854775807, or none");
            goto out;
        }
        ch->set_max_balance = true;
    }
    if (reason) {
        if (strlen(reason) > LQ_REASON_MAX || !valid_utf8(reason)) {
            lq_cli_fail("invalid value for --reason: must be UTF-8 text of at most %d bytes "
                        "(%zu given)",
                        LQ_REASON_MAX, strlen(reason));
            goto out;
        }
        if ((ch->reason = strdup(reason)) == NULL) {
            rc = LQ_EXIT_FAILURE;
            lq_cli_fail("out of memory");
            goto out;
        }
    }

    rc = LQ_EXIT_FAILURE;
    if ((db = submit(args, &c, &book, &out)) == NULL)
        goto out;
    if (lq_error_classify(out.result) == LQ_CLASS_REJECTED) {
        lq_cli_fail("rejected: %s: %s", lq_error_code(out.result), out.detail);
    } else if (out.result != LQ_OK) {
        lq_cli_fail("could not update the account: %s", out.detail);
    } else if (!out.found_before) {
        lq_cli_fail("could not update the account: it was not loaded");
    } else {
        print_updated(&c, &out.before);
        rc = LQ_EXIT_OK;
    }
out:
    lq_book_release(&book);
    lq_db_close(db);
    free(c.canonical);
    lq_account_change_release(ch);
    return rc;
}

const lq_account_subcommand lq_account_open_cmd = {
    "open", "open ID --currency CCY [--allow-negative | --overdraft-limit N] [--max-balance N]", 2,
    open_options, open_account};

const lq_account_subcommand lq_account_import_cmd = {"import", "import [--file F]", 1,
                                                     import_options, import_accounts};

const lq_account_subcommand lq_account_update_cmd = {
    "update",
    "update ID [--status S] [--overdraft-limit N] [--allow-negative BOOL] "
    "[--max-balance N|none] [--reason TEXT]",
    2, update_options, update_account};
