/*
 * `ledgerq account open|import|update|show|list|history` (docs/protocol.md
 * sections 1.6, 13 and 15).
 *
 * open, import and update build account.open and account.update commands
 * under command ids of the CLI's own (prefix "cli-") and apply them as a
 * worker applies a batch: lq_db_batch_load() locks the accounts they name,
 * lq_ledger_decide() applies the rules of section 13 and makes the history
 * entries, lq_db_batch_store() stores the commands, the accounts and the
 * entries in the same transaction.  So they take the same row locks and
 * record the same history as the commands a worker applies.  A rejection is
 * reported and rolled back, storing nothing: the CLI never sends one of its
 * ids twice, so no redelivery needs the outcome, and an import is all or
 * none.
 *
 * Each subcommand has its own options (--allow-negative is a flag of open
 * but takes true or false in update): the subcommand is found first, then
 * the arguments are parsed against its table.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ledgerq/cli.h"
#include "ledgerq/clock.h"
#include "ledgerq/db.h"
#include "ledgerq/error.h"
#include "ledgerq/json.h"
#include "ledgerq/ledger.h"
#include "ledgerq/message.h"

/* Transactions run again after a deadlock, a lock timeout or a concurrent insert. */
#define APPLY_ATTEMPTS        5
#define HISTORY_LIMIT_DEFAULT 100

/* ------------------------------------------------------------ subcommands and options */

typedef struct subcommand {
    const char *name;
    const char *synopsis; /* for --help, after "ledgerq account " */
    int n_args;           /* positional arguments, the subcommand's name included */
    const lq_cli_option *options;
    int (*run)(const struct subcommand *sub, const lq_cli_args *args);
} subcommand;

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

/* ------------------------------------------------------------ reading values */

/* Print the usage error of a flag's value. */
static void bad_value(const char *flag, const char *value, const char *expected)
{
    lq_cli_fail("invalid value for --%s: \"%.80s\" (expected %s)", flag, value, expected);
}

/*
 * A whole number written as decimal digits without sign or leading zero
 * ("0" itself is one), as amounts are (docs/protocol.md section 4), from min
 * to INT64_MAX.
 */
static bool parse_whole(const char *s, int64_t min, int64_t *ret)
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

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : days[m - 1];
}

/* n decimal digits at *p as a number, advancing *p; false when they are not all digits. */
static bool digits(const char **p, int n, int *ret)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *ret = v;
    return true;
}

/*
 * An RFC 3339 time ("2026-11-22T10:00:00Z", "2026-11-22T11:00:00.25+01:00":
 * any fraction, Z or an offset) as the same instant in UTC with microseconds
 * ("2026-11-22T10:00:00.250000Z"), which PostgreSQL reads exactly.  Digits
 * past the microsecond are dropped, or round up when round_up (a lower
 * bound then lets no earlier entry in).  False when s is not such a time,
 * or lies outside the years 1 to 9999.
 */
static bool parse_time(const char *s, bool round_up, char ret[LQ_TIMESTAMP_MAX])
{
    const char *p = s;
    int y, mo, d, h, mi, sec, off_h = 0, off_m = 0, sign = 0, micro = 0, scale = 100000;
    bool rest = false;
    int64_t us;
    time_t t;
    struct tm tm;

    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return false;
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
        !digits(&p, 2, &sec))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
        return false;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (scale > 0) {
                micro += (*p - '0') * scale;
                scale /= 10;
            } else if (*p != '0') {
                rest = true;
            }
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '+' ? 1 : -1;
        if (!digits(&p, 2, &off_h) || *p++ != ':' || !digits(&p, 2, &off_m) || off_h > 23 ||
            off_m > 59)
            return false;
    } else {
        return false;
    }
    if (*p != '\0')
        return false;
    /* A leap second counts as the first second of the next minute, as PostgreSQL has it. */
    us = (((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec -
          sign * (off_h * 3600 + off_m * 60)) *
             1000000 +
         micro + (round_up && rest);
    t = (time_t)(us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000));
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1 || tm.tm_year + 1900 > 9999)
        return false;
    snprintf(ret, LQ_TIMESTAMP_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(us - (int64_t)t * 1000000));
    return true;
}

/* The time option flag as UTC (see parse_time()); prints the usage error. */
static bool time_option(const char *flag, const char *value, bool round_up,
                        char ret[LQ_TIMESTAMP_MAX])
{
    if (parse_time(value, round_up, ret))
        return true;
    bad_value(flag, value,
              "an RFC 3339 time from year 1 to 9999, such as 2026-11-22T10:00:00Z or "
              "2026-11-22T11:00:00.5+01:00");
    return false;
}

static bool check_account_id(const char *id)
{
    if (lq_message_valid_account_id(id))
        return true;
    lq_cli_fail("invalid account id \"%.80s\": must be 1-64 characters of A-Z a-z 0-9 . _ : -", id);
    return false;
}

/* The floor of a as people read it: "none", "0", "-500". */
static const char *floor_text(const lq_account *a, char buf[32])
{
    if (a->allow_negative)
        return "none";
    snprintf(buf, 32, "%s%" PRId64, a->overdraft_limit > 0 ? "-" : "", a->overdraft_limit);
    return buf;
}

/* The ceiling of a: "none" or the number. */
static const char *ceiling_text(const lq_account *a, char buf[32])
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
static const char *available_text(int64_t balance, int64_t held_debits, char buf[32])
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

/* Connect; prints the failure. */
static lq_db *connect_or_fail(const lq_cli_args *args)
{
    char err[512];
    lq_db *db = NULL;

    if (lq_db_connect(args->cfg.database_url, &db, err, sizeof(err)) != LQ_OK)
        lq_cli_fail("%s", err);
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

static int open_account(const subcommand *sub, const lq_cli_args *args)
{
    const lq_cli_option *opts = sub->options;
    const char *currency = lq_cli_value(args, opts, "currency");
    const char *overdraft = lq_cli_value(args, opts, "overdraft-limit");
    const char *max_balance = lq_cli_value(args, opts, "max-balance");
    lq_command c;
    lq_item item;
    lq_book book;
    applied out;
    lq_db *db = NULL;
    int rc = LQ_EXIT_USAGE;

    memset(&c, 0, sizeof(c));
    memset(&book, 0, sizeof(book));
    c.type = LQ_CMD_ACCOUNT_OPEN;
    if (!check_account_id(args->rest[1]))
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
        if (!parse_whole(overdraft, 0, &c.change.overdraft_limit)) {
            bad_value("overdraft-limit", overdraft, "a whole number from 0 to 9223372036854775807");
            goto out;
        }
        c.change.set_overdraft_limit = true;
    }
    if (max_balance) {
        if (!parse_whole(max_balance, 1, &c.change.max_balance)) {
            bad_value("max-balance", max_balance, "a whole number from 1 to 9223372036854775807");
            goto out;
        }
        c.change.set_max_balance = true;
    }

    rc = LQ_EXIT_FAILURE;
    if (!make_command_id(c.id, sizeof(c.id)))
        goto out;
    if (lq_command_canonicalize(&c) != LQ_OK) {
        lq_cli_fail("out of memory");
        goto out;
    }
    if ((db = connect_or_fail(args)) == NULL)
        goto out;
    memset(&item, 0, sizeof(item));
    item.command = &c;
    apply(db, &item, 1, &book, &out);
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

static int import_accounts(const subcommand *sub, const lq_cli_args *args)
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
    if ((db = connect_or_fail(args)) == NULL)
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
        printf("%sfloor %s -> %s", sep, floor_text(before, b1), floor_text(&after, b2));
        sep = ", ";
    }
    if (ch->set_max_balance)
        printf("%smax balance %s -> %s", sep, ceiling_text(before, b1), ceiling_text(&after, b2));
    if (ch->reason)
        printf(" (reason \"%s\"; command %s)\n", ch->reason, c->id);
    else
        printf(" (command %s)\n", c->id);
}

static int update_account(const subcommand *sub, const lq_cli_args *args)
{
    const lq_cli_option *opts = sub->options;
    const char *status = lq_cli_value(args, opts, "status");
    const char *overdraft = lq_cli_value(args, opts, "overdraft-limit");
    const char *negative = lq_cli_value(args, opts, "allow-negative");
    const char *max_balance = lq_cli_value(args, opts, "max-balance");
    const char *reason = lq_cli_value(args, opts, "reason");
    lq_command c;
    lq_account_change *ch = &c.change;
    lq_item item;
    lq_book book;
    applied out;
    lq_db *db = NULL;
    int rc = LQ_EXIT_USAGE;

    memset(&c, 0, sizeof(c));
    memset(&book, 0, sizeof(book));
    c.type = LQ_CMD_ACCOUNT_UPDATE;
    if (!check_account_id(args->rest[1]))
        goto out;
    snprintf(ch->account, sizeof(ch->account), "%s", args->rest[1]);
    if (!status && !overdraft && !negative && !max_balance) {
        lq_cli_fail("account update: give at least one of --status, --overdraft-limit, "
                    "--allow-negative, --max-balance");
        goto out;
    }
    if (status) {
        if (!lq_account_status_parse(status, &ch->status)) {
            bad_value("status", status, "active, frozen or closed");
            goto out;
        }
        ch->set_status = true;
    }
    if (negative) {
        if (strcmp(negative, "true") != 0 && strcmp(negative, "false") != 0) {
            bad_value("allow-negative", negative, "true or false");
            goto out;
        }
        ch->set_allow_negative = true;
        ch->allow_negative = strcmp(negative, "true") == 0;
    }
    if (overdraft) {
        if (!parse_whole(overdraft, 0, &ch->overdraft_limit)) {
            bad_value("overdraft-limit", overdraft, "a whole number from 0 to 9223372036854775807");
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
        if (strcmp(max_balance, "none") != 0 && !parse_whole(max_balance, 1, &ch->max_balance)) {
            bad_value("max-balance", max_balance,
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
    if (!make_command_id(c.id, sizeof(c.id)))
        goto out;
    if (lq_command_canonicalize(&c) != LQ_OK) {
        lq_cli_fail("out of memory");
        goto out;
    }
    if ((db = connect_or_fail(args)) == NULL)
        goto out;
    memset(&item, 0, sizeof(item));
    item.command = &c;
    apply(db, &item, 1, &book, &out);
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
    lq_json_raw(j, available_text(lq_account_balance(a), a->held_debits, buf));
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
    printf("available:       %s\n", available_text(lq_account_balance(a), a->held_debits, buf));
    printf("allow_negative:  %s\n", a->allow_negative ? "true" : "false");
    if (a->allow_negative)
        printf("overdraft_limit: none\n");
    else
        printf("overdraft_limit: %" PRId64 "\n", a->overdraft_limit);
    printf("max_balance:     %s\n", ceiling_text(a, buf));
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
    available_text(p.balance, p.held_debits, buf);
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

static int show_account(const subcommand *sub, const lq_cli_args *args)
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
    if ((db = connect_or_fail(args)) == NULL)
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
           available_text(lq_account_balance(a), a->held_debits, available), floor_text(a, floor),
           ceiling_text(a, ceiling), created_at);
}

static int list_accounts(const subcommand *sub, const lq_cli_args *args)
{
    lq_db *db = connect_or_fail(args);
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

static int account_history(const subcommand *sub, const lq_cli_args *args)
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
    if (after && !parse_whole(after, 0, &q.after)) {
        bad_value("after", after, "an entry's seq: a whole number from 0");
        goto out;
    }
    if (limit) {
        if (!parse_whole(limit, 1, &v) || v > LQ_HISTORY_PAGE_MAX) {
            bad_value("limit", limit, "a whole number from 1 to 1000");
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
    if ((db = connect_or_fail(args)) == NULL)
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

/* ------------------------------------------------------------ dispatch */

static const subcommand subcommands[] = {
    {"open", "open ID --currency CCY [--allow-negative | --overdraft-limit N] [--max-balance N]", 2,
     open_options, open_account},
    {"import", "import [--file F]", 1, import_options, import_accounts},
    {"update",
     "update ID [--status S] [--overdraft-limit N] [--allow-negative BOOL] "
     "[--max-balance N|none] [--reason TEXT]",
     2, update_options, update_account},
    {"show", "show ID [--at TIME] [--json]", 2, show_options, show_account},
    {"list", "list [--json]", 1, list_options, list_accounts},
    {"history", "history ID [--after SEQ] [--limit N] [--since TIME] [--until TIME] [--json]", 2,
     history_options, account_history},
};
#define N_SUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

/* How an option name takes a value across the subcommands: 0 never, 1 always, 2 in some. */
static int option_arity(const char *name, size_t len)
{
    int with = 0, without = 0;

    for (size_t s = 0; s < N_SUBCOMMANDS; s++) {
        for (const lq_cli_option *o = subcommands[s].options; o->name; o++) {
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
    const subcommand *sub = NULL;
    lq_cli_args args;
    int rc;

    for (size_t s = 0; name && s < N_SUBCOMMANDS; s++) {
        if (strcmp(subcommands[s].name, name) == 0)
            sub = &subcommands[s];
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
