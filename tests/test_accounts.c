/*
 * The account CLI against a real RabbitMQ and PostgreSQL (docs/protocol.md
 * sections 1.6, 13 and 15): `account open`, `import` and `update` apply the
 * rules of the account commands and record the same history; `account show`
 * (now and --at a time), `list` and `history` print what section 13 and 15
 * say; `payment show` shows account commands.
 *
 * Each case works in a namespace of its own (support.h) and checks what an
 * operator sees: exit codes, the one line on stderr, the printed JSON, and
 * the ledger and its history afterwards.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "support.h"

#define TIMEOUT_S 300

/* The running case's namespace (lqt_suite.ns). */
static lqt_ns *ns;

/* ------------------------------------------------------------ helpers */

/* Run `ledgerq ARG...`: it must fail with status and one line on stderr holding mention. */
#define EXPECT_FAIL(status, mention, ...)                                                          \
    expect_fail_((status), (mention), (const char *const[]){__VA_ARGS__, NULL})

static void expect_fail_(int status, const char *mention, const char *const *args)
{
    const char *const mentions[] = {mention, NULL};
    char what[512] = "`ledgerq";
    lqt_output o;

    for (const char *const *a = args; *a; a++)
        snprintf(what + strlen(what), sizeof(what) - strlen(what), " %s", *a);
    snprintf(what + strlen(what), sizeof(what) - strlen(what), "`");
    lqt_run_argv(ns, NULL, &o, args);
    lqt_expect_failure(&o, status, what, mentions);
    ck_assert_msg(o.out[0] == '\0', "%s printed on stdout: %s", what, o.out);
    lqt_output_release(&o);
}

/* Run `ledgerq ARG...`: it must exit 0; RUN_OUT returns what it printed (caller frees). */
#define RUN_OUT(...) run_ok_((const char *const[]){__VA_ARGS__, NULL})
#define RUN_OK(...)  free(RUN_OUT(__VA_ARGS__))

static char *run_ok_(const char *const *args)
{
    lqt_output o;
    char *out;

    lqt_run_argv(ns, NULL, &o, args);
    ck_assert_msg(o.status == 0, "`ledgerq %s %s %s` exited %d: %s", args[0],
                  args[1] ? args[1] : "", args[1] && args[2] ? args[2] : "", o.status, o.err);
    out = o.out;
    o.out = NULL;
    lqt_output_release(&o);
    return out;
}

/* Run and check the exact stdout. */
#define EXPECT_OUT(expected, ...) expect_out_((expected), (const char *const[]){__VA_ARGS__, NULL})

static void expect_out_(const char *expected, const char *const *args)
{
    char *out = run_ok_(args);

    ck_assert_msg(strcmp(out, expected) == 0, "`ledgerq %s %s` printed \"%s\", expected \"%s\"",
                  args[0], args[1], out, expected);
    free(out);
}

/* A page of id's history with the options given (NULL-terminated list). */
#define HISTORY(ret, id, ...)                                                                      \
    lqt_account_history(ns, (id), (const char *const[]){__VA_ARGS__}, (ret))

static long sql_long(const char *sql)
{
    char *v = lqt_sql_value(ns, sql, NULL);
    long n;

    ck_assert_msg(v != NULL, "no row: %s", sql);
    n = strtol(v, NULL, 10);
    free(v);
    return n;
}

/* What the ledger holds: every stored command and every history entry. */
typedef struct counts {
    long accounts, commands, entries;
} counts;

static counts ledger_counts(void)
{
    return (counts){sql_long("SELECT count(*) FROM accounts"),
                    sql_long("SELECT count(*) FROM payments"),
                    sql_long("SELECT count(*) FROM account_entries")};
}

static void expect_counts(counts before, const char *what)
{
    counts now = ledger_counts();

    ck_assert_msg(now.accounts == before.accounts && now.commands == before.commands &&
                      now.entries == before.entries,
                  "%s changed the ledger: accounts %ld -> %ld, commands %ld -> %ld, history "
                  "entries %ld -> %ld",
                  what, before.accounts, now.accounts, before.commands, now.commands,
                  before.entries, now.entries);
}

/*
 * A JSON object (text) has exactly the members given as pairs of key and
 * compact JSON value (NULL-terminated).
 */
static void expect_object(const char *json, const char *what, const char *const *pairs)
{
    cJSON *j = cJSON_Parse(json);
    size_t n_pairs = 0;

    ck_assert_msg(cJSON_IsObject(j), "%s: not a JSON object: %s", what, json);
    for (; pairs[2 * n_pairs]; n_pairs++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, pairs[2 * n_pairs]);
        char *text;
        ck_assert_msg(v != NULL, "%s: no \"%s\" in %s", what, pairs[2 * n_pairs], json);
        /* cJSON keeps numbers in a double: beyond 2^53 the raw text is checked by the caller. */
        if (strlen(pairs[2 * n_pairs + 1]) > 15 && cJSON_IsNumber(v)) {
            ck_assert_msg(v->valuedouble == strtod(pairs[2 * n_pairs + 1], NULL),
                          "%s: \"%s\" is %.17g, expected %s", what, pairs[2 * n_pairs],
                          v->valuedouble, pairs[2 * n_pairs + 1]);
            continue;
        }
        text = cJSON_PrintUnformatted(v);
        ck_assert_msg(strcmp(text, pairs[2 * n_pairs + 1]) == 0, "%s: \"%s\" is %s, expected %s",
                      what, pairs[2 * n_pairs], text, pairs[2 * n_pairs + 1]);
        free(text);
    }
    ck_assert_msg(cJSON_GetArraySize(j) == (int)n_pairs, "%s: %s has other members than %zu", what,
                  json, n_pairs);
    cJSON_Delete(j);
}

#define EXPECT_OBJECT(json, what, ...)                                                             \
    expect_object((json), (what), (const char *const[]){__VA_ARGS__, NULL})

/* A command id the CLI made: "cli-", the UTC time to the microsecond, 16 hex digits. */
static void expect_cli_id(const char *id)
{
    int y, mo, d, h, mi, s, us, n = 0;

    ck_assert_msg(
        sscanf(id, "cli-%4d%2d%2dT%2d%2d%2d.%6dZ-%n", &y, &mo, &d, &h, &mi, &s, &us, &n) == 7 &&
            n == 28 && strspn(id + n, "0123456789abcdef") == 16,
        "\"%s\" is not a command id of the CLI (cli-<time>-<16 hex digits>)", id);
}

/* The single entry of an account just opened by the CLI; returns its command id (static). */
static const char *expect_opening(const char *account)
{
    static char command[160];
    lqt_history h;

    HISTORY(&h, account, NULL);
    ck_assert_msg(h.n == 1, "%s: %zu history entries after opening, expected 1: %s", account, h.n,
                  h.raw);
    ck_assert_int_eq(h.entries[0].seq, 1);
    ck_assert_str_eq(h.entries[0].type, "account.open");
    ck_assert_int_eq(h.entries[0].leg, 0);
    ck_assert_int_eq(h.entries[0].amount, 0);
    ck_assert_int_eq(h.entries[0].balance, 0);
    ck_assert_int_eq(h.entries[0].held_debits, 0);
    ck_assert_int_eq(h.entries[0].held_credits, 0);
    ck_assert(h.next_null);
    snprintf(command, sizeof(command), "%s", h.entries[0].command);
    expect_cli_id(command);
    lqt_history_release(&h);
    return command;
}

/* The last entry of id's history (it must have fewer than 1000). */
static lqt_entry last_entry(const char *id, size_t *ret_n)
{
    lqt_history h;
    lqt_entry e;

    HISTORY(&h, id, "--limit", "1000", NULL);
    ck_assert_msg(h.n > 0 && h.next_null, "%s: no history, or more than 1000 entries", id);
    e = h.entries[h.n - 1];
    if (ret_n)
        *ret_n = h.n;
    lqt_history_release(&h);
    return e;
}

/* "2026-11-22T10:00:00.123456Z" as microseconds since 1970. */
static int64_t utc_us(const char *s)
{
    struct tm tm;
    int us = 0;
    char z = 0;

    memset(&tm, 0, sizeof(tm));
    ck_assert_msg(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%6d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                         &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &us, &z) == 8 &&
                      z == 'Z',
                  "not an RFC 3339 UTC time with microseconds: %s", s);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000000 + us;
}

/*
 * us as an RFC 3339 time: UTC with "Z" when offset_min is 0, else the local
 * time offset_min minutes east of UTC with its "+hh:mm" or "-hh:mm".
 */
static const char *rfc3339(int64_t us, int offset_min, char buf[64])
{
    time_t t = (time_t)(us / 1000000) + offset_min * 60;
    int off = offset_min < 0 ? -offset_min : offset_min;
    struct tm tm;
    int n;

    gmtime_r(&t, &tm);
    n = snprintf(buf, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%06d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % 1000000));
    if (offset_min == 0)
        snprintf(buf + n, (size_t)(64 - n), "Z");
    else
        snprintf(buf + n, (size_t)(64 - n), "%c%02d:%02d", offset_min > 0 ? '+' : '-', off / 60,
                 off % 60);
    return buf;
}

/* A worker, and a listener that counts the events awaited so far. */
typedef struct flow {
    lqt_worker *worker;
    lqt_listener *events;
    size_t awaited;
} flow;

static void flow_start(flow *f)
{
    f->events = lqt_listen(ns);
    f->worker = lqt_worker_start(ns, NULL);
    f->awaited = 0;
}

static void flow_stop(flow *f)
{
    ck_assert_int_eq(lqt_worker_stop(f->worker), 0);
    f->worker = NULL;
}

/* Publish a command and wait for its event; returns it. */
static const lqt_event *command(flow *f, const char *id, const char *routing_key, const char *json)
{
    lqt_publish(ns, &(lqt_msg){.body = json, .routing_key = routing_key});
    lqt_wait_events(f->events, ++f->awaited);
    ck_assert_msg(lqt_event_find(f->events, id, 0) != NULL, "no event for %s", id);
    return lqt_event_find(f->events, id, 0);
}

/* A transfer that must end with status (and reason, NULL when applied). */
static void transfer(flow *f, const char *id, const char *debit, const char *credit, int64_t amount,
                     const char *status, const char *reason)
{
    char json[512];
    const lqt_event *e;

    snprintf(json, sizeof(json),
             "{\"id\":\"%s\",\"debit\":\"%s\",\"credit\":\"%s\",\"amount\":%" PRId64
             ",\"currency\":\"EUR\"}",
             id, debit, credit, amount);
    e = command(f, id, NULL, json);
    ck_assert_msg(strcmp(e->status, status) == 0 && (reason == NULL) == e->reason_null &&
                      (reason == NULL || strcmp(e->reason, reason) == 0),
                  "%s: expected %s %s: %s", id, status, reason ? reason : "", e->body);
}

static void expect_audit_ok(void)
{
    lqt_output o;

    lqt_run(ns, &o, "audit");
    ck_assert_msg(o.status == 0, "audit exited %d: %s%s", o.status, o.out, o.err);
    lqt_output_release(&o);
}

/* ------------------------------------------------------------ open */

START_TEST(test_open)
{
    lqt_account a;
    lqt_payment p;
    char err[512];
    const char *cmd;
    char plain_cmd[160];
    char *out;

    /* No limits: a floor at 0, no ceiling. */
    EXPECT_OUT("opened account plain (EUR)\n", "account", "open", "plain", "--currency", "EUR");
    lqt_account_show(ns, "plain", &a);
    ck_assert_str_eq(a.currency, "EUR");
    ck_assert_str_eq(a.status, "active");
    ck_assert(!a.allow_negative);
    ck_assert(!a.overdraft_limit_null);
    ck_assert_int_eq(a.overdraft_limit, 0);
    ck_assert(a.max_balance_null);
    ck_assert_int_eq(a.balance, 0);
    ck_assert_int_eq(a.held_debits, 0);
    ck_assert_int_eq(a.held_credits, 0);
    ck_assert_int_eq(a.available, 0);
    snprintf(plain_cmd, sizeof(plain_cmd), "%s", expect_opening("plain"));
    ck_assert_int_eq(lqt_payment_show(ns, plain_cmd, &p, err), 0);
    ck_assert_str_eq(p.type, "account.open");
    ck_assert_str_eq(p.status, "applied");
    ck_assert(p.reason_null && p.detail_null);
    ck_assert_str_eq(p.account, "plain");
    ck_assert_uint_eq(p.n_legs, 0);
    EXPECT_OBJECT(p.change, "open plain", "currency", "\"EUR\"");

    /* No floor at all (the dev script opens its banks so). */
    EXPECT_OUT("opened account bank (EUR, may go negative)\n", "account", "open", "bank",
               "--currency", "EUR", "--allow-negative");
    lqt_account_show(ns, "bank", &a);
    ck_assert(a.allow_negative);
    ck_assert(a.overdraft_limit_null);
    ck_assert(a.max_balance_null);
    cmd = expect_opening("bank");
    ck_assert_str_ne(cmd, plain_cmd);
    ck_assert_int_eq(lqt_payment_show(ns, cmd, &p, err), 0);
    EXPECT_OBJECT(p.change, "open bank", "currency", "\"EUR\"", "allow_negative", "true");

    /* An overdraft limit and a ceiling. */
    EXPECT_OUT("opened account credit (USD, overdraft limit 500, max balance 100000)\n", "account",
               "open", "credit", "--currency", "USD", "--overdraft-limit", "500", "--max-balance",
               "100000");
    lqt_account_show(ns, "credit", &a);
    ck_assert_str_eq(a.currency, "USD");
    ck_assert(!a.allow_negative);
    ck_assert_int_eq(a.overdraft_limit, 500);
    ck_assert(!a.max_balance_null);
    ck_assert_int_eq(a.max_balance, 100000);
    cmd = expect_opening("credit");
    ck_assert_int_eq(lqt_payment_show(ns, cmd, &p, err), 0);
    EXPECT_OBJECT(p.change, "open credit", "currency", "\"USD\"", "overdraft_limit", "500",
                  "max_balance", "100000");

    /* The edges: a limit of 0; both limits at 2^63-1, printed exactly. */
    EXPECT_OUT("opened account zero (EUR, overdraft limit 0)\n", "account", "open", "zero",
               "--currency", "EUR", "--overdraft-limit", "0");
    lqt_account_show(ns, "zero", &a);
    ck_assert_int_eq(a.overdraft_limit, 0);
    expect_opening("zero");
    RUN_OK("account", "open", "huge", "--currency", "EUR", "--overdraft-limit",
           "9223372036854775807", "--max-balance=9223372036854775807");
    lqt_account_show(ns, "huge", &a);
    ck_assert_msg(strstr(a.raw, "\"overdraft_limit\":9223372036854775807") != NULL &&
                      strstr(a.raw, "\"max_balance\":9223372036854775807") != NULL,
                  "%s", a.raw);
    expect_opening("huge");

    /* The text forms show the settings too. */
    out = RUN_OUT("account", "show", "credit");
    ck_assert_msg(
        strstr(out, "status:          active\n") && strstr(out, "overdraft_limit: 500\n") &&
            strstr(out, "max_balance:     100000\n") && strstr(out, "available:       0\n"),
        "%s", out);
    free(out);
    out = RUN_OUT("account", "list");
    ck_assert_msg(strstr(out, "STATUS") && strstr(out, "FLOOR") && strstr(out, "CEILING") &&
                      strstr(out, "credit"),
                  "%s", out);
    free(out);
    out = RUN_OUT("account", "list", "--json");
    {
        cJSON *list = cJSON_Parse(out);
        ck_assert_msg(cJSON_IsArray(list) && cJSON_GetArraySize(list) == 5, "%s", out);
        ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "id")->valuestring,
                         "bank");
        ck_assert(
            cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "overdraft_limit")));
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(list, 0)), 13);
        cJSON_Delete(list);
    }
    free(out);
    ck_assert_int_eq(sql_long("SELECT count(*) FROM payments WHERE type = 'account.open'"), 5);
    expect_audit_ok();
}
END_TEST

START_TEST(test_open_failures)
{
    counts before;

    RUN_OK("account", "open", "alice", "--currency", "EUR");
    before = ledger_counts();

    /* An id that exists: the text of earlier releases, and nothing stored. */
    EXPECT_FAIL(1, "account \"alice\" already exists", "account", "open", "alice", "--currency",
                "EUR");
    EXPECT_FAIL(1, "account \"alice\" already exists", "account", "open", "alice", "--currency",
                "USD", "--max-balance", "5");
    expect_counts(before, "`account open` of an existing id");

    /* Bad usage: exit 2, one line naming what was wrong. */
    EXPECT_FAIL(2, "eur", "account", "open", "carol", "--currency", "eur");
    EXPECT_FAIL(2, "--currency is required", "account", "open", "carol");
    EXPECT_FAIL(2, "invalid account id \"a b\"", "account", "open", "a b", "--currency", "EUR");
    EXPECT_FAIL(2, "missing argument", "account", "open", "--currency", "EUR");
    EXPECT_FAIL(2, "--allow-negative and --overdraft-limit", "account", "open", "carol",
                "--currency", "EUR", "--allow-negative", "--overdraft-limit", "5");
    EXPECT_FAIL(2, "--allow-negative and --overdraft-limit", "account", "open", "carol",
                "--currency", "EUR", "--overdraft-limit", "0", "--allow-negative");
    EXPECT_FAIL(2, "takes no value", "account", "open", "carol", "--currency", "EUR",
                "--allow-negative=true");
    {
        static const char *const bad_limits[] = {
            "-1", "00", "007", "1.5", "1e3", "abc", "", "9223372036854775808", "+5", NULL};
        for (const char *const *v = bad_limits; *v; v++) {
            EXPECT_FAIL(2, "invalid value for --overdraft-limit", "account", "open", "carol",
                        "--currency", "EUR", "--overdraft-limit", *v);
            EXPECT_FAIL(2, "invalid value for --max-balance", "account", "open", "carol",
                        "--currency", "EUR", "--max-balance", *v);
        }
    }
    EXPECT_FAIL(2, "invalid value for --max-balance: \"0\"", "account", "open", "carol",
                "--currency", "EUR", "--max-balance", "0");
    EXPECT_FAIL(2, "invalid value for --max-balance: \"none\"", "account", "open", "carol",
                "--currency", "EUR", "--max-balance", "none");
    /* An option of another subcommand. */
    EXPECT_FAIL(2, "unknown option --status", "account", "open", "carol", "--currency", "EUR",
                "--status", "frozen");
    expect_counts(before, "`account open` with bad usage");
}
END_TEST

/* ------------------------------------------------------------ import */

START_TEST(test_import)
{
    const char *file;
    lqt_account a;
    lqt_payment p;
    char err[512], first[160];
    counts before;

    RUN_OK("account", "open", "alice", "--currency", "EUR");
    file = lqt_write_file(ns, "accounts.jsonl",
                          "{\"id\":\"imp-1\",\"currency\":\"EUR\"}\n"
                          "\n"
                          "{\"id\":\"imp-2\",\"currency\":\"USD\",\"allow_negative\":true}\n"
                          "{\"id\":\"imp-3\",\"currency\":\"EUR\",\"overdraft_limit\":\"250\","
                          "\"max_balance\":9000}\n");
    EXPECT_OUT("imported 3 accounts\n", "account", "import", "--file", file);
    lqt_account_show(ns, "imp-1", &a);
    ck_assert(!a.allow_negative && a.overdraft_limit == 0 && a.max_balance_null);
    lqt_account_show(ns, "imp-2", &a);
    ck_assert_str_eq(a.currency, "USD");
    ck_assert(a.allow_negative && a.overdraft_limit_null);
    lqt_account_show(ns, "imp-3", &a);
    ck_assert_int_eq(a.overdraft_limit, 250);
    ck_assert_int_eq(a.max_balance, 9000);

    /* One command per account, each with its own history entry. */
    snprintf(first, sizeof(first), "%s", expect_opening("imp-1"));
    ck_assert_str_ne(expect_opening("imp-2"), first);
    ck_assert_int_eq(lqt_payment_show(ns, expect_opening("imp-3"), &p, err), 0);
    ck_assert_str_eq(p.type, "account.open");
    ck_assert_str_eq(p.account, "imp-3");
    EXPECT_OBJECT(p.change, "import imp-3", "currency", "\"EUR\"", "overdraft_limit", "250",
                  "max_balance", "9000");

    /* All or none: an id that exists in the middle opens nothing and writes no history. */
    before = ledger_counts();
    file = lqt_write_file(ns, "accounts-existing.jsonl",
                          "{\"id\":\"imp-4\",\"currency\":\"EUR\"}\n"
                          "{\"id\":\"alice\",\"currency\":\"EUR\"}\n"
                          "{\"id\":\"imp-5\",\"currency\":\"EUR\"}\n");
    EXPECT_FAIL(1, "account \"alice\" already exists; nothing imported", "account", "import",
                "--file", file);
    expect_counts(before, "an import with an existing id");
    EXPECT_FAIL(1, "account \"imp-4\" does not exist", "account", "show", "imp-4");

    /* Lines that break a rule, an id twice: nothing either. */
    file = lqt_write_file(ns, "accounts-both.jsonl",
                          "{\"id\":\"imp-6\",\"currency\":\"EUR\"}\n"
                          "{\"id\":\"imp-7\",\"currency\":\"EUR\",\"allow_negative\":true,"
                          "\"overdraft_limit\":5}\n");
    EXPECT_FAIL(1, "line 2: allow_negative", "account", "import", "--file", file);
    file = lqt_write_file(ns, "accounts-ceiling.jsonl",
                          "{\"id\":\"imp-6\",\"currency\":\"EUR\",\"max_balance\":0}\n");
    EXPECT_FAIL(1, "line 1: max_balance", "account", "import", "--file", file);
    file = lqt_write_file(ns, "accounts-twice.jsonl",
                          "{\"id\":\"imp-8\",\"currency\":\"EUR\"}\n"
                          "{\"id\":\"imp-9\",\"currency\":\"EUR\"}\n"
                          "{\"id\":\"imp-8\",\"currency\":\"EUR\"}\n");
    EXPECT_FAIL(1, "line 3: account \"imp-8\" appears twice", "account", "import", "--file", file);
    expect_counts(before, "imports refused");

    /* Nothing to import. */
    file = lqt_write_file(ns, "accounts-empty.jsonl", "\n  \n");
    EXPECT_OUT("imported 0 accounts\n", "account", "import", "--file", file);
    expect_counts(before, "an empty import");
    expect_audit_ok();
}
END_TEST

/* ------------------------------------------------------------ update */

/* Update acct with the arguments; the line printed must start with expected. */
#define UPDATE(expected, ...) update_((expected), (const char *const[]){__VA_ARGS__, NULL})

static void update_(const char *expected, const char *const *args)
{
    const char *argv[32] = {"account", "update"};
    size_t n = 2;
    char *out;

    for (const char *const *a = args; *a; a++)
        argv[n++] = *a;
    argv[n] = NULL;
    out = run_ok_(argv);
    ck_assert_msg(strncmp(out, expected, strlen(expected)) == 0 && lqt_one_line(out),
                  "`account update %s ...` printed \"%s\", expected \"%s...\"", args[0], out,
                  expected);
    ck_assert_msg(strstr(out, "command cli-") != NULL, "no command id in \"%s\"", out);
    free(out);
}

/*
 * The last history entry of acct is an account.update with change (pairs,
 * NULL-terminated) at seq; the stored command says the same.
 */
#define EXPECT_UPDATE_ENTRY(seq, ...)                                                              \
    expect_update_entry((seq), (const char *const[]){__VA_ARGS__, NULL})

static void expect_update_entry(int64_t seq, const char *const *pairs)
{
    size_t n;
    lqt_entry e = last_entry("acct", &n);
    lqt_payment p;
    char err[512];

    ck_assert_int_eq(e.seq, seq);
    ck_assert_uint_eq(n, (size_t)seq);
    ck_assert_str_eq(e.type, "account.update");
    ck_assert_int_eq(e.leg, 0);
    ck_assert_int_eq(e.amount, 0);
    expect_cli_id(e.command);
    expect_object(e.change, "the history's change", pairs);
    ck_assert_int_eq(lqt_payment_show(ns, e.command, &p, err), 0);
    ck_assert_str_eq(p.type, "account.update");
    ck_assert_str_eq(p.status, "applied");
    ck_assert_str_eq(p.account, "acct");
    ck_assert_uint_eq(p.n_legs, 0);
    expect_object(p.change, "payment show's change", pairs);
}

START_TEST(test_update)
{
    lqt_account a;
    counts before;
    char reason[300], *out;

    RUN_OK("account", "open", "acct", "--currency", "EUR");

    UPDATE("updated account acct: status active -> frozen (reason \"fraud review\"; command cli-",
           "acct", "--status", "frozen", "--reason", "fraud review");
    lqt_account_show(ns, "acct", &a);
    ck_assert_str_eq(a.status, "frozen");
    EXPECT_UPDATE_ENTRY(2, "status", "\"frozen\"", "reason", "\"fraud review\"");

    UPDATE("updated account acct: status frozen -> active (command cli-", "acct", "--status",
           "active");
    lqt_account_show(ns, "acct", &a);
    ck_assert_str_eq(a.status, "active");
    EXPECT_UPDATE_ENTRY(3, "status", "\"active\"");

    UPDATE("updated account acct: floor 0 -> -700 (command", "acct", "--overdraft-limit", "700");
    lqt_account_show(ns, "acct", &a);
    ck_assert(!a.allow_negative && a.overdraft_limit == 700);
    EXPECT_UPDATE_ENTRY(4, "overdraft_limit", "700");

    UPDATE("updated account acct: floor -700 -> none (command", "acct", "--allow-negative", "true");
    lqt_account_show(ns, "acct", &a);
    ck_assert(a.allow_negative && a.overdraft_limit_null);
    EXPECT_UPDATE_ENTRY(5, "allow_negative", "true");

    UPDATE("updated account acct: floor none -> 0 (command", "acct", "--allow-negative=false");
    lqt_account_show(ns, "acct", &a);
    ck_assert(!a.allow_negative && a.overdraft_limit == 0);
    EXPECT_UPDATE_ENTRY(6, "allow_negative", "false");

    UPDATE("updated account acct: max balance none -> 5000 (command", "acct", "--max-balance",
           "5000");
    lqt_account_show(ns, "acct", &a);
    ck_assert(!a.max_balance_null && a.max_balance == 5000);
    EXPECT_UPDATE_ENTRY(7, "max_balance", "5000");

    UPDATE("updated account acct: max balance 5000 -> none (command", "acct", "--max-balance",
           "none");
    lqt_account_show(ns, "acct", &a);
    ck_assert(a.max_balance_null);
    EXPECT_UPDATE_ENTRY(8, "max_balance", "null");

    /* Several at once, at the int64 edge; allow-negative false with a limit says it twice. */
    UPDATE("updated account acct: status active -> frozen, floor 0 -> -9223372036854775807, max "
           "balance none -> 9223372036854775807 (command",
           "acct", "--status", "frozen", "--overdraft-limit", "9223372036854775807",
           "--allow-negative", "false", "--max-balance", "9223372036854775807");
    lqt_account_show(ns, "acct", &a);
    ck_assert_msg(strstr(a.raw, "\"overdraft_limit\":9223372036854775807") &&
                      strstr(a.raw, "\"max_balance\":9223372036854775807"),
                  "%s", a.raw);
    out = RUN_OUT("account", "history", "acct", "--after", "8", "--json");
    ck_assert_msg(strstr(out, "\"overdraft_limit\":9223372036854775807") &&
                      strstr(out, "\"max_balance\":9223372036854775807"),
                  "%s", out);
    free(out);
    {
        lqt_payment p;
        char err[512];
        ck_assert_int_eq(lqt_payment_show(ns, last_entry("acct", NULL).command, &p, err), 0);
        ck_assert_msg(strstr(p.raw, "\"overdraft_limit\":9223372036854775807") &&
                          strstr(p.raw, "\"max_balance\":9223372036854775807"),
                      "%s", p.raw);
    }
    EXPECT_UPDATE_ENTRY(9, "status", "\"frozen\"", "allow_negative", "false", "overdraft_limit",
                        "9223372036854775807", "max_balance", "9223372036854775807");

    /* A reason of 256 bytes is kept whole; 257 is bad usage. */
    memset(reason, 'r', 256);
    reason[256] = '\0';
    UPDATE("updated account acct: status frozen -> active (reason \"rrr", "acct", "--status",
           "active", "--reason", reason);
    {
        char quoted[320];
        snprintf(quoted, sizeof(quoted), "\"%s\"", reason);
        EXPECT_UPDATE_ENTRY(10, "status", "\"active\"", "reason", quoted);
    }

    /* Closing an empty account, the same status again: both recorded. */
    UPDATE("updated account acct: status active -> active (command", "acct", "--status", "active");
    EXPECT_UPDATE_ENTRY(11, "status", "\"active\"");
    UPDATE("updated account acct: status active -> closed (command", "acct", "--status", "closed");
    lqt_account_show(ns, "acct", &a);
    ck_assert_str_eq(a.status, "closed");
    EXPECT_UPDATE_ENTRY(12, "status", "\"closed\"");

    /* Bad usage: exit 2, nothing stored. */
    RUN_OK("account", "open", "other", "--currency", "EUR");
    before = ledger_counts();
    reason[256] = 'r';
    reason[257] = '\0';
    EXPECT_FAIL(2, "--reason", "account", "update", "other", "--status", "frozen", "--reason",
                reason);
    EXPECT_FAIL(2, "--reason", "account", "update", "other", "--status", "frozen", "--reason",
                "\xff\xfe");
    EXPECT_FAIL(2, "at least one of --status", "account", "update", "other", "--reason", "why");
    EXPECT_FAIL(2, "at least one of --status", "account", "update", "other");
    EXPECT_FAIL(2, "invalid value for --status: \"open\"", "account", "update", "other", "--status",
                "open");
    EXPECT_FAIL(2, "invalid value for --allow-negative: \"yes\"", "account", "update", "other",
                "--allow-negative", "yes");
    EXPECT_FAIL(2, "--allow-negative needs a value", "account", "update", "other",
                "--allow-negative");
    EXPECT_FAIL(2, "--allow-negative true and --overdraft-limit", "account", "update", "other",
                "--allow-negative", "true", "--overdraft-limit", "5");
    EXPECT_FAIL(2, "invalid value for --overdraft-limit", "account", "update", "other",
                "--overdraft-limit", "-1");
    EXPECT_FAIL(2, "invalid value for --max-balance: \"0\"", "account", "update", "other",
                "--max-balance", "0");
    EXPECT_FAIL(2, "invalid value for --max-balance: \"null\"", "account", "update", "other",
                "--max-balance", "null");
    EXPECT_FAIL(2, "invalid account id", "account", "update", "no/such", "--status", "frozen");
    EXPECT_FAIL(2, "unknown option --currency", "account", "update", "other", "--currency", "EUR");
    expect_counts(before, "`account update` with bad usage");
    expect_audit_ok();
}
END_TEST

START_TEST(test_update_rejections)
{
    flow f;
    counts before;
    lqt_account a;
    size_t n_alice, n_bank, n;

    RUN_OK("account", "open", "bank", "--currency", "EUR", "--allow-negative");
    RUN_OK("account", "open", "alice", "--currency", "EUR");
    RUN_OK("account", "open", "gone", "--currency", "EUR");
    RUN_OK("account", "update", "gone", "--status", "closed");
    flow_start(&f);
    transfer(&f, "fund-alice", "bank", "alice", 100, "applied", NULL);
    last_entry("alice", &n_alice);
    last_entry("bank", &n_bank);
    before = ledger_counts();

    /* Each reason of section 13, in the one line, with the detail; nothing stored. */
    EXPECT_FAIL(1, "rejected: account_not_found: account \"nobody\" does not exist", "account",
                "update", "nobody", "--status", "frozen");
    EXPECT_FAIL(1, "rejected: account_closed: account \"gone\" is closed", "account", "update",
                "gone", "--status", "active");
    EXPECT_FAIL(1, "rejected: account_closed", "account", "update", "gone", "--max-balance",
                "none");
    EXPECT_FAIL(1,
                "rejected: account_not_empty: account \"alice\" has balance 100, cannot be closed",
                "account", "update", "alice", "--status", "closed");
    EXPECT_FAIL(1,
                "rejected: balance_outside_limits: account \"alice\" has balance 100, above the "
                "new max balance 99",
                "account", "update", "alice", "--max-balance", "99");
    EXPECT_FAIL(1,
                "rejected: balance_outside_limits: account \"bank\" has balance -100, below the "
                "new floor 0",
                "account", "update", "bank", "--allow-negative", "false");
    EXPECT_FAIL(1,
                "rejected: balance_outside_limits: account \"bank\" has balance -100, below the "
                "new floor -99",
                "account", "update", "bank", "--overdraft-limit", "99");
    expect_counts(before, "rejected updates");

    /* Held amounts (placed by holds, section 14; set by hand here): account_has_holds. */
    RUN_OK("account", "open", "gone2", "--currency", "EUR");
    lqt_sql(ns, "UPDATE accounts SET held_credits = 5 WHERE id = 'gone2'");
    before = ledger_counts();
    EXPECT_FAIL(1,
                "rejected: account_has_holds: account \"gone2\" has held debits 0 and held "
                "credits 5, cannot be closed",
                "account", "update", "gone2", "--status", "closed");
    expect_counts(before, "a rejected close");
    lqt_sql(ns, "UPDATE accounts SET held_credits = 0 WHERE id = 'gone2'");

    /* At the limits exactly: applied. */
    RUN_OK("account", "update", "alice", "--max-balance", "100");
    RUN_OK("account", "update", "bank", "--overdraft-limit", "100");
    lqt_account_show(ns, "bank", &a);
    ck_assert(!a.allow_negative && a.overdraft_limit == 100);
    last_entry("alice", &n);
    ck_assert_uint_eq(n, n_alice + 1);
    last_entry("bank", &n);
    ck_assert_uint_eq(n, n_bank + 1);

    /* The worker applies the limits and the status the CLI set. */
    transfer(&f, "below-floor", "bank", "alice", 1, "rejected", "insufficient_funds");
    RUN_OK("account", "update", "bank", "--allow-negative", "true");
    transfer(&f, "over-ceiling", "bank", "alice", 1, "rejected", "exceeds_max_balance");
    RUN_OK("account", "update", "alice", "--max-balance", "none");
    RUN_OK("account", "update", "alice", "--status", "frozen", "--reason", "review");
    transfer(&f, "from-frozen", "alice", "bank", 10, "rejected", "account_frozen");
    transfer(&f, "into-frozen", "bank", "alice", 10, "applied", NULL);
    RUN_OK("account", "update", "alice", "--status", "active");
    transfer(&f, "from-active", "alice", "bank", 10, "applied", NULL);
    ck_assert_int_eq(lqt_balance(ns, "alice"), 100);
    flow_stop(&f);
    expect_audit_ok();
}
END_TEST

/* ------------------------------------------------------------ history */

#define N_TRANSFERS 249

/* Every seq of id's history exactly once, in order, from pages of limit (a string) entries. */
static void expect_pages(const char *id, const char *limit, size_t total, const size_t *sizes)
{
    int64_t after = 0, seen = 0;
    char after_text[32];

    for (size_t page = 0;; page++) {
        lqt_history h;
        snprintf(after_text, sizeof(after_text), "%" PRId64, after);
        if (limit)
            HISTORY(&h, id, "--after", after_text, "--limit", limit, NULL);
        else
            HISTORY(&h, id, "--after", after_text, NULL);
        ck_assert_msg(h.n == sizes[page], "%s: page %zu holds %zu entries, expected %zu", id,
                      page + 1, h.n, sizes[page]);
        for (size_t i = 0; i < h.n; i++)
            ck_assert_int_eq(h.entries[i].seq, ++seen);
        if (h.next_null) {
            ck_assert_int_eq(seen, (int64_t)total);
            ck_assert_uint_eq(sizes[page + 1], 0);
            lqt_history_release(&h);
            return;
        }
        ck_assert_int_eq(h.next, seen);
        after = h.next;
        lqt_history_release(&h);
    }
}

/* The seqs of all entries with since <= at <= until (either NULL: no bound). */
static void expect_bounds(const lqt_history *all, const char *since, const char *until,
                          const char *since_arg, const char *until_arg)
{
    lqt_history h;
    int64_t lo = since ? utc_us(since) : INT64_MIN, hi = until ? utc_us(until) : INT64_MAX;
    size_t k = 0;
    const char *args[8];
    size_t n = 0;

    args[n++] = "--limit";
    args[n++] = "1000";
    if (since_arg) {
        args[n++] = "--since";
        args[n++] = since_arg;
    }
    if (until_arg) {
        args[n++] = "--until";
        args[n++] = until_arg;
    }
    args[n] = NULL;
    lqt_account_history(ns, "alice", args, &h);
    for (size_t i = 0; i < all->n; i++) {
        int64_t at = utc_us(all->entries[i].at);
        if (at < lo || at > hi)
            continue;
        ck_assert_msg(k < h.n && h.entries[k].seq == all->entries[i].seq,
                      "--since %s --until %s: entry %" PRId64 " (at %s) missing from %s",
                      since_arg ? since_arg : "-", until_arg ? until_arg : "-", all->entries[i].seq,
                      all->entries[i].at, h.raw);
        k++;
    }
    ck_assert_msg(k == h.n, "--since %s --until %s: %zu entries, expected %zu: %s",
                  since_arg ? since_arg : "-", until_arg ? until_arg : "-", h.n, k, h.raw);
    ck_assert(h.next_null);
    lqt_history_release(&h);
}

START_TEST(test_history_paging)
{
    flow f;
    lqt_history all, h;
    lqt_listener *l;
    char id[32], json[256], *out;
    static const size_t pages_100[] = {100, 100, 50, 0};
    static const size_t pages_1000[] = {250, 0};
    static const size_t pages_250[] = {250, 0};
    static const size_t pages_249[] = {249, 1, 0};
    static const size_t pages_1[251] = {[0 ... 249] = 1, [250] = 0};

    RUN_OK("account", "open", "bank", "--currency", "EUR", "--allow-negative");
    RUN_OK("account", "open", "alice", "--currency", "EUR");
    for (int i = 1; i <= N_TRANSFERS; i++) {
        snprintf(id, sizeof(id), "t-%d", i);
        snprintf(json, sizeof(json),
                 "{\"id\":\"%s\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":%d,"
                 "\"currency\":\"EUR\"}",
                 id, i);
        lqt_send(ns, &(lqt_msg){.body = json});
    }
    lqt_confirm(ns);
    flow_start(&f);
    l = f.events;
    lqt_wait_events(l, N_TRANSFERS);
    flow_stop(&f);

    /* 250 entries: the opening and one per transfer, each with the running balance. */
    HISTORY(&all, "alice", "--limit", "1000", NULL);
    ck_assert_uint_eq(all.n, 250);
    ck_assert(all.next_null);
    ck_assert_str_eq(all.entries[0].type, "account.open");
    for (size_t i = 1; i < all.n; i++) {
        const lqt_entry *e = &all.entries[i];
        ck_assert_int_eq(e->seq, (int64_t)i + 1);
        ck_assert_str_eq(e->type, "transfer");
        ck_assert_int_eq(e->leg, 1);
        ck_assert_int_eq(e->balance, all.entries[i - 1].balance + e->amount);
        ck_assert_msg(utc_us(e->at) >= utc_us(all.entries[i - 1].at), "at goes back at %zu", i);
        ck_assert_msg(e->change[0] == '\0', "a transfer entry has a change");
    }
    ck_assert_int_eq(all.entries[249].balance, lqt_balance(ns, "alice"));

    /* Pages: 100/100/50 by default, then other sizes; each entry exactly once. */
    expect_pages("alice", NULL, 250, pages_100);
    expect_pages("alice", "100", 250, pages_100);
    expect_pages("alice", "1000", 250, pages_1000);
    expect_pages("alice", "250", 250, pages_250);
    expect_pages("alice", "249", 250, pages_249);
    expect_pages("alice", "1", 250, pages_1);
    expect_pages("bank", "100", 250, pages_100);

    /* Past the end: an empty page. */
    HISTORY(&h, "alice", "--after", "250", NULL);
    ck_assert_uint_eq(h.n, 0);
    ck_assert(h.next_null);
    ck_assert_str_eq(h.raw, "{\"account\":\"alice\",\"entries\":[],\"next\":null}\n");
    lqt_history_release(&h);
    HISTORY(&h, "alice", "--after", "9223372036854775807", NULL);
    ck_assert_uint_eq(h.n, 0);
    lqt_history_release(&h);
    HISTORY(&h, "alice", "--after", "249", "--limit", "1", NULL);
    ck_assert_uint_eq(h.n, 1);
    ck_assert(h.next_null);
    lqt_history_release(&h);

    /*
     * Time bounds where entries share a time (a batch stores its entries
     * with one time): inclusive, all or none of a time.
     */
    for (size_t i = 0; i < all.n; i += 37) {
        const char *t = all.entries[i].at;
        char later[64], earlier[64], offset[64];
        expect_bounds(&all, t, NULL, t, NULL);
        expect_bounds(&all, NULL, t, NULL, t);
        expect_bounds(&all, t, t, t, t);
        rfc3339(utc_us(t) + 1, 0, later);
        rfc3339(utc_us(t) - 1, 0, earlier);
        expect_bounds(&all, later, NULL, later, NULL);
        expect_bounds(&all, NULL, earlier, NULL, earlier);
        rfc3339(utc_us(t), -(3 * 60 + 30), offset);
        expect_bounds(&all, t, t, offset, offset);
    }

    /* Bad usage, an unknown account. */
    EXPECT_FAIL(2, "invalid value for --limit: \"1001\"", "account", "history", "alice", "--limit",
                "1001");
    EXPECT_FAIL(2, "invalid value for --limit: \"0\"", "account", "history", "alice", "--limit",
                "0");
    EXPECT_FAIL(2, "invalid value for --after: \"-1\"", "account", "history", "alice", "--after",
                "-1");
    EXPECT_FAIL(2, "invalid value for --after", "account", "history", "alice", "--after", "x");
    EXPECT_FAIL(1, "account \"nobody\" does not exist", "account", "history", "nobody");
    EXPECT_FAIL(1, "account \"nobody\" does not exist", "account", "history", "nobody", "--json");

    /* The text form: a header, a line per entry, where the next page starts. */
    out = RUN_OUT("account", "history", "alice", "--after", "1", "--limit", "2");
    {
        int lines = 0;
        for (const char *p = out; *p; p++)
            lines += *p == '\n';
        ck_assert_msg(lines == 4 && strncmp(out, "SEQ", 3) == 0 && strstr(out, "\n2 ") &&
                          strstr(out, "t-1\n") && strstr(out, "\n3 ") &&
                          strstr(out, "more entries follow: --after 3\n"),
                      "%s", out);
    }
    free(out);
    lqt_history_release(&all);
    expect_audit_ok();
}
END_TEST

START_TEST(test_history_time_bounds)
{
    lqt_history all, h;
    char t[6][64], buf[64];

    /* Entries at times of their own: each CLI command is a transaction of its own. */
    RUN_OK("account", "open", "alice", "--currency", "EUR");
    for (int i = 1; i <= 4; i++) {
        char ceiling[16];
        snprintf(ceiling, sizeof(ceiling), "%d", i * 10);
        lqt_sleep_ms(5);
        RUN_OK("account", "update", "alice", "--max-balance", ceiling);
    }
    HISTORY(&all, "alice", NULL);
    ck_assert_uint_eq(all.n, 5);
    for (size_t i = 0; i < 5; i++) {
        snprintf(t[i + 1], sizeof(t[i + 1]), "%s", all.entries[i].at);
        ck_assert_msg(i == 0 || utc_us(t[i + 1]) > utc_us(t[i]), "times do not increase");
    }

    /* Inclusive bounds at exact entry times. */
    expect_bounds(&all, t[3], NULL, t[3], NULL);
    expect_bounds(&all, NULL, t[3], NULL, t[3]);
    expect_bounds(&all, t[2], t[4], t[2], t[4]);
    expect_bounds(&all, t[3], t[3], t[3], t[3]);
    HISTORY(&h, "alice", "--since", t[3], "--until", t[3], NULL);
    ck_assert_uint_eq(h.n, 1);
    ck_assert_int_eq(h.entries[0].seq, 3);
    EXPECT_OBJECT(h.entries[0].change, "entry 3", "max_balance", "20");
    lqt_history_release(&h);

    /* One microsecond off: the entry is out. */
    rfc3339(utc_us(t[3]) + 1, 0, buf);
    expect_bounds(&all, buf, NULL, buf, NULL);
    HISTORY(&h, "alice", "--since", buf, NULL);
    ck_assert_uint_eq(h.n, 2);
    lqt_history_release(&h);
    rfc3339(utc_us(t[3]) - 1, 0, buf);
    HISTORY(&h, "alice", "--until", buf, NULL);
    ck_assert_uint_eq(h.n, 2);
    lqt_history_release(&h);

    /*
     * Other spellings of the same instant: an offset, fewer digits, more
     * digits (beyond the microsecond: an upper bound drops them, a lower
     * bound rounds up).
     */
    rfc3339(utc_us(t[3]), 5 * 60 + 30, buf);
    expect_bounds(&all, t[3], t[3], buf, buf);
    snprintf(buf, sizeof(buf), "%.26s9Z", t[3]);
    expect_bounds(&all, t[4], NULL, buf, NULL);
    snprintf(buf, sizeof(buf), "%.26s1z", t[3]);
    expect_bounds(&all, NULL, t[3], NULL, buf);
    {
        /* "...T10:00:00Z": the second before entry 3's, without a fraction. */
        char whole[64];
        snprintf(whole, sizeof(whole), "%.19sZ", t[3]);
        rfc3339(utc_us(t[3]) / 1000000 * 1000000, 0, buf);
        expect_bounds(&all, NULL, buf, NULL, whole);
        whole[10] = 't';
        expect_bounds(&all, NULL, buf, NULL, whole);
    }

    /* With --after and --limit: the bounds and the page together. */
    HISTORY(&h, "alice", "--since", t[2], "--limit", "2", NULL);
    ck_assert_uint_eq(h.n, 2);
    ck_assert_int_eq(h.entries[0].seq, 2);
    ck_assert_int_eq(h.next, 3);
    lqt_history_release(&h);
    HISTORY(&h, "alice", "--since", t[2], "--limit", "2", "--after", "3", NULL);
    ck_assert_uint_eq(h.n, 2);
    ck_assert_int_eq(h.entries[0].seq, 4);
    ck_assert(h.next_null);
    lqt_history_release(&h);
    HISTORY(&h, "alice", "--since", t[2], "--until", t[4], "--limit", "2", NULL);
    ck_assert_uint_eq(h.n, 2);
    ck_assert_int_eq(h.next, 3);
    lqt_history_release(&h);
    HISTORY(&h, "alice", "--since", t[2], "--until", t[4], "--limit", "2", "--after", "3", NULL);
    ck_assert_uint_eq(h.n, 1);
    ck_assert_int_eq(h.entries[0].seq, 4);
    ck_assert(h.next_null);
    lqt_history_release(&h);
    HISTORY(&h, "alice", "--after", "1", "--until", t[1], NULL);
    ck_assert_uint_eq(h.n, 0);
    ck_assert(h.next_null);
    lqt_history_release(&h);

    /* Outside the history: empty pages; since after until: empty too. */
    rfc3339(utc_us(t[5]) + 1, 0, buf);
    expect_bounds(&all, buf, NULL, buf, NULL);
    HISTORY(&h, "alice", "--until", "2001-01-01T00:00:00Z", NULL);
    ck_assert_uint_eq(h.n, 0);
    lqt_history_release(&h);
    HISTORY(&h, "alice", "--since", t[4], "--until", t[2], NULL);
    ck_assert_uint_eq(h.n, 0);
    lqt_history_release(&h);
    HISTORY(&h, "alice", "--since", "0001-01-01T00:00:00Z", "--until", "9999-12-31T23:59:59Z",
            NULL);
    ck_assert_uint_eq(h.n, 5);
    lqt_history_release(&h);

    /* Malformed times: bad usage. */
    {
        static const char *const bad[] = {"yesterday",
                                          "2026-11-22",
                                          "2026-11-22T10:00:00",
                                          "2026-11-22T10:00Z",
                                          "2026-13-01T00:00:00Z",
                                          "2026-02-29T00:00:00Z",
                                          "2026-11-22T24:00:00Z",
                                          "2026-11-22T10:00:00.Z",
                                          "2026-11-22T10:00:00+1:00",
                                          "2026-11-22T10:00:00+24:00",
                                          "2026-11-22T10:00:00Z ",
                                          "0000-01-01T00:00:00Z",
                                          "0001-01-01T00:00:00+01:00",
                                          "",
                                          NULL};
        for (const char *const *v = bad; *v; v++) {
            EXPECT_FAIL(2, "invalid value for --since", "account", "history", "alice", "--since",
                        *v);
            EXPECT_FAIL(2, "invalid value for --until", "account", "history", "alice", "--until",
                        *v);
        }
    }
    lqt_history_release(&all);
}
END_TEST

/* ------------------------------------------------------------ show --at */

/* `account show ID --at TIME --json`: checked strictly; returns its balance. */
static int64_t balance_at(const char *id, const char *at, const char *expected_at)
{
    lqt_account_at a;

    lqt_account_show_at(ns, id, at, &a);
    ck_assert_str_eq(a.id, id);
    ck_assert_str_eq(a.currency, "EUR");
    ck_assert_str_eq(a.at, expected_at);
    ck_assert_int_eq(a.held_debits, 0);
    ck_assert_int_eq(a.held_credits, 0);
    ck_assert_int_eq(a.available, a.balance);
    return a.balance;
}

START_TEST(test_show_at)
{
    flow f;
    lqt_history h;
    char e1[64], e2[64], e3[64], buf[64], *out;

    RUN_OK("account", "open", "bank", "--currency", "EUR", "--allow-negative");
    RUN_OK("account", "open", "alice", "--currency", "EUR");
    flow_start(&f);
    transfer(&f, "first", "bank", "alice", 100, "applied", NULL);
    lqt_sleep_ms(20);
    transfer(&f, "second", "bank", "alice", 150, "applied", NULL);
    flow_stop(&f);
    HISTORY(&h, "alice", NULL);
    ck_assert_uint_eq(h.n, 3);
    snprintf(e1, sizeof(e1), "%s", h.entries[0].at);
    snprintf(e2, sizeof(e2), "%s", h.entries[1].at);
    snprintf(e3, sizeof(e3), "%s", h.entries[2].at);
    ck_assert_int_eq(h.entries[1].balance, 100);
    ck_assert_int_eq(h.entries[2].balance, 250);
    ck_assert_msg(utc_us(e3) - utc_us(e2) >= 2, "%s and %s too close", e2, e3);
    lqt_history_release(&h);

    /* Between two entries: the earlier one's values. */
    rfc3339((utc_us(e2) + utc_us(e3)) / 2, 0, buf);
    ck_assert_int_eq(balance_at("alice", buf, buf), 100);
    rfc3339(utc_us(e3) - 1, 0, buf);
    ck_assert_int_eq(balance_at("alice", buf, buf), 100);
    /* At an entry's exact time, and in another offset: that entry. */
    ck_assert_int_eq(balance_at("alice", e3, e3), 250);
    ck_assert_int_eq(balance_at("alice", e2, e2), 100);
    ck_assert_int_eq(balance_at("alice", rfc3339(utc_us(e2), 2 * 60, buf), e2), 100);
    ck_assert_int_eq(balance_at("alice", rfc3339(utc_us(e2), -7 * 60, buf), e2), 100);
    ck_assert_int_eq(balance_at("alice", e1, e1), 0);
    ck_assert_int_eq(balance_at("bank", e3, e3), -250);
    ck_assert_int_eq(balance_at("alice", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59.000000Z"),
                     250);

    /* Before the opening: exit 1 saying so; unknown account, malformed time. */
    rfc3339(utc_us(e1) - 1, 0, buf);
    EXPECT_FAIL(1, "did not exist yet", "account", "show", "alice", "--at", buf);
    EXPECT_FAIL(1, "account \"alice\" did not exist yet at 2001-01-01T00:00:00.000000Z", "account",
                "show", "alice", "--at", "2001-01-01T00:00:00Z", "--json");
    EXPECT_FAIL(1, "account \"nobody\" does not exist", "account", "show", "nobody", "--at", e3);
    EXPECT_FAIL(2, "invalid value for --at: \"yesterday\"", "account", "show", "alice", "--at",
                "yesterday");
    EXPECT_FAIL(2, "invalid value for --at", "account", "show", "alice", "--at",
                "2026-11-22 10:00:00");

    /* The text form. */
    rfc3339(utc_us(e3) - 1, 0, buf);
    out = RUN_OUT("account", "show", "alice", "--at", buf);
    ck_assert_msg(strstr(out, "balance:      100\n") && strstr(out, "available:    100\n") &&
                      strstr(out, "last entry:   2 at "),
                  "%s", out);
    free(out);
}
END_TEST

/* ------------------------------------------------------------ payment show */

START_TEST(test_payment_show)
{
    flow f;
    lqt_payment p;
    char err[512], *out;
    const lqt_event *e;
    lqt_entry update;

    RUN_OK("account", "open", "bank", "--currency", "EUR", "--allow-negative");
    flow_start(&f);

    /* An account command a worker applied. */
    e = command(
        &f, "open-alice", "account.open",
        "{\"type\":\"account.open\",\"id\":\"open-alice\",\"account\":\"alice\","
        "\"currency\":\"EUR\",\"max_balance\":\"1000\",\"metadata\":{\"by\":\"onboarding\"}}");
    ck_assert_str_eq(e->status, "applied");
    ck_assert_int_eq(lqt_payment_show(ns, "open-alice", &p, err), 0);
    ck_assert_str_eq(p.type, "account.open");
    ck_assert_str_eq(p.account, "alice");
    ck_assert_uint_eq(p.n_legs, 0);
    ck_assert_msg(strstr(p.raw, "\"legs\":[]") != NULL, "%s", p.raw);
    EXPECT_OBJECT(p.change, "open-alice", "currency", "\"EUR\"", "max_balance", "1000");

    /* A rejected one. */
    e = command(&f, "freeze-nobody", "account.update",
                "{\"type\":\"account.update\",\"id\":\"freeze-nobody\",\"account\":\"nobody\","
                "\"status\":\"frozen\",\"reason\":\"check\"}");
    ck_assert_str_eq(e->status, "rejected");
    ck_assert_int_eq(lqt_payment_show(ns, "freeze-nobody", &p, err), 0);
    ck_assert_str_eq(p.type, "account.update");
    ck_assert_str_eq(p.status, "rejected");
    ck_assert_str_eq(p.reason, "account_not_found");
    ck_assert_str_eq(p.account, "nobody");
    EXPECT_OBJECT(p.change, "freeze-nobody", "status", "\"frozen\"", "reason", "\"check\"");

    /* A transfer: its type, its legs. */
    transfer(&f, "fund", "bank", "alice", 10, "applied", NULL);
    ck_assert_int_eq(lqt_payment_show(ns, "fund", &p, err), 0);
    ck_assert_str_eq(p.type, "transfer");
    ck_assert_str_eq(p.account, "");
    ck_assert_uint_eq(p.n_legs, 1);
    flow_stop(&f);

    /* An update by the CLI, in text. */
    RUN_OK("account", "update", "alice", "--status", "frozen", "--reason", "fraud review");
    update = last_entry("alice", NULL);
    out = RUN_OUT("payment", "show", update.command);
    ck_assert_msg(
        strstr(out, "type:         account.update\n") && strstr(out, "status:       applied\n") &&
            strstr(out, "account:      alice\n") &&
            strstr(out, "change:       {\"reason\":\"fraud review\",\"status\":\"frozen\"}\n") &&
            !strstr(out, "legs:"),
        "%s", out);
    free(out);
    out = RUN_OUT("payment", "show", "fund");
    ck_assert_msg(strstr(out, "type:         transfer\n") &&
                      strstr(out, "legs:\n  1. bank -> alice"),
                  "%s", out);
    free(out);
    EXPECT_FAIL(1, "payment \"nothing\" is unknown", "payment", "show", "nothing");
}
END_TEST

/* ------------------------------------------------------------ the command line */

START_TEST(test_syntax)
{
    char *out;

    /* Options before the subcommand; --name=value; -- ends the options. */
    RUN_OK("account", "--currency", "EUR", "open", "early");
    RUN_OK("account", "--allow-negative", "true", "update", "early");
    RUN_OK("account", "--allow-negative", "open", "late", "--currency=EUR");
    RUN_OK("account", "--json", "show", "early");
    RUN_OK("account", "update", "--max-balance=10", "--", "early");
    out = RUN_OUT("account", "update", "--help");
    ck_assert_msg(strstr(out, "usage: ledgerq account update ID") && strstr(out, "--reason"), "%s",
                  out);
    free(out);
    out = RUN_OUT("account", "--help");
    ck_assert_msg(strstr(out, "ledgerq account history ID") && strstr(out, "--since"), "%s", out);
    free(out);
    EXPECT_FAIL(2, "unknown subcommand \"close\"", "account", "close", "early");
    EXPECT_FAIL(2, "missing argument", "account");
    EXPECT_FAIL(2, "missing argument", "account", "update");
    EXPECT_FAIL(2, "unexpected argument", "account", "show", "early", "late");
    EXPECT_FAIL(2, "unexpected argument \"true\"", "account", "open", "x", "--currency", "EUR",
                "--allow-negative", "true");
    EXPECT_FAIL(2, "unknown option --limit", "account", "show", "early", "--limit", "5");
}
END_TEST

/* ------------------------------------------------------------ the schema */

/* The writes refuse a schema this release may not write to; nothing is stored. */
static void expect_writes_refused(const char *mention)
{
    const char *file =
        lqt_write_file(ns, "accounts.jsonl", "{\"id\":\"imp\",\"currency\":\"EUR\"}\n");
    counts before = ledger_counts();

    EXPECT_FAIL(1, mention, "account", "open", "carol", "--currency", "EUR");
    EXPECT_FAIL(1, mention, "account", "update", "alice", "--status", "frozen");
    EXPECT_FAIL(1, mention, "account", "import", "--file", file);
    expect_counts(before, "writes to a schema that does not fit");
}

START_TEST(test_schema_not_migrated)
{
    RUN_OK("account", "open", "alice", "--currency", "EUR");
    /* As if the last migration had not run. */
    lqt_sql(ns, "DELETE FROM ledgerq_migrations WHERE version = (SELECT max(version) FROM "
                "ledgerq_migrations)");
    expect_writes_refused("run `ledgerq migrate` with this release");
}
END_TEST

START_TEST(test_schema_newer)
{
    lqt_account a;

    RUN_OK("account", "open", "alice", "--currency", "EUR");
    /* A later release's migration, which no release before 99.0.0 may run against. */
    lqt_sql(ns, "INSERT INTO ledgerq_migrations (version, name, checksum, oldest_release)"
                " SELECT max(version) + 1, 'from_the_future', repeat('f', 64), '99.0.0'"
                " FROM ledgerq_migrations");
    expect_writes_refused("needs ledgerq 99.0.0 or later");
    /* Reading stays possible. */
    lqt_account_show(ns, "alice", &a);
    ck_assert_str_eq(a.status, "active");
}
END_TEST

/* ------------------------------------------------------------ the suite */

int main(void)
{
    const lqt_suite suite = {.name = "accounts", .timeout_s = TIMEOUT_S, .ns = &ns};
    const lqt_case cases[] = {
        LQT_CASE("open", test_open),
        LQT_CASE("open_failures", test_open_failures),
        LQT_CASE("import", test_import),
        LQT_CASE("update", test_update),
        LQT_CASE("update_rejections", test_update_rejections),
        LQT_CASE("history_paging", test_history_paging),
        LQT_CASE("history_time_bounds", test_history_time_bounds),
        LQT_CASE("show_at", test_show_at),
        LQT_CASE("payment_show", test_payment_show),
        LQT_CASE("syntax", test_syntax),
        LQT_CASE("schema_not_migrated", test_schema_not_migrated),
        LQT_CASE("schema_newer", test_schema_newer),
    };

    return LQT_MAIN(suite, cases);
}
