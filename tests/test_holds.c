/*
 * Holds through the worker (docs/protocol.md sections 12, 14 and 15),
 * against a real RabbitMQ and PostgreSQL: a hold reserves a transfer's legs
 * (held debits and credits, the available balance), a capture posts all or
 * part of it, a void releases it, the expiry sweep releases it at its
 * expiry and publishes hold.expired; each is resolved once and for all.
 *
 * Each case works in a namespace of its own (support.h), with one worker,
 * publishing one command at a time and waiting for its event (session.h),
 * and checks what a user sees: the result event (type, status, reason,
 * detail, routing key, correlation id, a capture's or void's "hold", a
 * capture's "amount"), then `account show` (balance, held amounts,
 * available), `account history` (hold, capture, void and expiry entries),
 * `payment show` (hold_status, expires_at, hold, a capture's posted legs).
 * Every case ends with `audit` passing (it checks the held amounts against
 * the pending holds) and every account's history whole.
 *
 * The command bodies below are written with ' for " (see lqt_command()).
 */
#include <check.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "session.h"
#include "support.h"

#define TIMEOUT_S 300

/* The contract's bound on an expiry: released within 5 s of its time (section 14). */
#define EXPIRY_WITHIN_S 5

/* The running case's namespace (lqt_suite.ns). */
static lqt_ns *ns;

/* ------------------------------------------------------------ helpers */

/* A formatted text; static storage, eight in turn (so that a call may take several). */
static const char *text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *text(const char *fmt, ...)
{
    static char ring[8][512];
    static unsigned next;
    char *t = ring[next++ % 8];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(t, sizeof(ring[0]), fmt, ap);
    va_end(ap);
    return t;
}

/* The details of the capture and void rejections (section 14), in the contract's order. */
#define NOT_FOUND(hold)   text("hold \"%s\" does not exist", (hold))
#define CAPTURED(hold)    text("hold \"%s\" was already captured", (hold))
#define VOIDED(hold)      text("hold \"%s\" was already voided", (hold))
#define EXPIRED(hold)     text("hold \"%s\" expired", (hold))
#define PAST_EXPIRY(hold) text("hold \"%s\" is past its expiry", (hold))
#define EXCEEDS(amount, hold, held)                                                                \
    text("capture of %d exceeds hold \"%s\" of %d", (amount), (hold), (held))
#define PARTIAL(amount, hold, n_legs)                                                              \
    text("capture of %d names an amount, hold \"%s\" of %d legs is captured in full only",         \
         (amount), (hold), (n_legs))
#define CONFLICT "id was first used with other content"

/* A single-leg hold in EUR with the members extra (NULL: none; ",'timeout_s':1" ...). */
static const lqt_event *hold(lqt_session *s, const char *id, const char *debit, const char *credit,
                             int64_t amount, const char *extra)
{
    return lqt_command(s, NULL,
                       "{'type':'hold','id':'%s','debit':'%s','credit':'%s','amount':%" PRId64
                       ",'currency':'EUR'%s}",
                       id, debit, credit, amount, extra ? extra : "");
}

/* A hold that must be applied. */
static const lqt_event *hold_ok(lqt_session *s, const char *id, const char *debit,
                                const char *credit, int64_t amount, const char *extra)
{
    const lqt_event *e = hold(s, id, debit, credit, amount, extra);

    LQT_APPLIED(e, id, "hold");
    return e;
}

/* A hold rejected for reason, with detail. */
#define HOLD_REJECTED(e, id, reason, detail) LQT_REJECTED((e), (id), "hold", (reason), (detail))

/* A capture of hold; amount -1: none given (the full held amount). */
static const lqt_event *capture(lqt_session *s, const char *id, const char *hold_id, int64_t amount)
{
    if (amount < 0)
        return lqt_command(s, NULL, "{'type':'capture','id':'%s','hold':'%s'}", id, hold_id);
    return lqt_command(s, NULL, "{'type':'capture','id':'%s','hold':'%s','amount':%" PRId64 "}", id,
                       hold_id, amount);
}

/* A void of hold. */
static const lqt_event *void_hold(lqt_session *s, const char *id, const char *hold_id)
{
    return lqt_command(s, NULL, "{'type':'void','id':'%s','hold':'%s'}", id, hold_id);
}

/*
 * e is the event of capture id of hold: its outcome (reason and detail NULL
 * when applied), duplicate, and the amount it posted (-1: null).
 */
static void expect_capture(const lqt_event *e, const char *id, const char *hold_id,
                           const char *reason, const char *detail, int64_t amount, bool duplicate)
{
    lqt_expect_event(e, id, "capture", reason ? "rejected" : "applied", reason, detail, duplicate);
    lqt_expect_resolution(e, hold_id, amount);
}

/* e is the event of void id of hold (reason and detail NULL when applied). */
static void expect_void(const lqt_event *e, const char *id, const char *hold_id, const char *reason,
                        const char *detail, bool duplicate)
{
    lqt_expect_event(e, id, "void", reason ? "rejected" : "applied", reason, detail, duplicate);
    lqt_expect_resolution(e, hold_id, -1);
}

/* `account show ID --json`: the balance and held amounts (available is checked by the parser). */
static void expect_account(const char *id, int64_t balance, int64_t held_debits,
                           int64_t held_credits)
{
    lqt_account a;

    lqt_account_show(ns, id, &a);
    ck_assert_msg(a.balance == balance && a.held_debits == held_debits &&
                      a.held_credits == held_credits,
                  "account %s: balance %" PRId64 ", held debits %" PRId64 ", held credits %" PRId64
                  " (available %" PRId64 "), expected %" PRId64 ", %" PRId64 ", %" PRId64 ": %s",
                  id, a.balance, a.held_debits, a.held_credits, a.available, balance, held_debits,
                  held_credits, a.raw);
    ck_assert_int_eq(a.available, balance - held_debits);
}

/*
 * `account show ID --at TIME --json` (section 15): the values of the entry
 * whose at is at, as of that time.
 */
static void expect_account_at(const char *id, const char *at, int64_t balance, int64_t held_debits,
                              int64_t held_credits)
{
    lqt_account_at a;

    lqt_account_show_at(ns, id, at, &a);
    ck_assert_msg(strcmp(a.at, at) == 0 && a.balance == balance && a.held_debits == held_debits &&
                      a.held_credits == held_credits,
                  "`account show %s --at %s --json`: %s, expected balance %" PRId64
                  ", held debits %" PRId64 ", held credits %" PRId64,
                  id, at, a.raw, balance, held_debits, held_credits);
}

/* Entry seq of account: command, type, leg, amount, and the balance and held amounts after it. */
#define ENTRY(account, seq, command, type, leg, amount, balance, held_debits, held_credits)        \
    lqt_expect_entry(ns, (account), (seq), (command), (type), (leg), (amount), (balance),          \
                     (held_debits), (held_credits), NULL)

/* Leg i (0-based) of a payment shown is debit -> credit, amount, EUR. */
static void expect_leg(const lqt_payment *p, size_t i, const char *debit, const char *credit,
                       int64_t amount)
{
    ck_assert_msg(i < p->n_legs, "payment shows %zu legs, no leg %zu: %s", p->n_legs, i + 1,
                  p->raw);
    ck_assert_msg(strcmp(p->legs[i].debit, debit) == 0 && strcmp(p->legs[i].credit, credit) == 0 &&
                      p->legs[i].amount == amount && strcmp(p->legs[i].currency, "EUR") == 0,
                  "leg %zu is %s -> %s %" PRId64 " %s, expected %s -> %s %" PRId64 " EUR: %s",
                  i + 1, p->legs[i].debit, p->legs[i].credit, p->legs[i].amount,
                  p->legs[i].currency, debit, credit, amount, p->raw);
}

/*
 * `payment show` of a hold: its outcome (reason NULL: applied), where it
 * stands (hold_status NULL: null, as for a rejected hold), n_legs legs.
 */
static void expect_hold_shown(const char *id, const char *reason, const char *hold_status,
                              size_t n_legs, lqt_payment *ret)
{
    lqt_payment_ok(ns, id, ret);
    ck_assert_msg(strcmp(ret->type, "hold") == 0, "%s: type %s", id, ret->raw);
    ck_assert_msg(strcmp(ret->status, reason ? "rejected" : "applied") == 0 &&
                      (reason ? strcmp(ret->reason, reason) == 0 : ret->reason_null),
                  "%s: outcome %s (%s), expected %s: %s", id, ret->status, ret->reason,
                  reason ? reason : "applied", ret->raw);
    ck_assert_msg(strcmp(ret->hold_status, hold_status ? hold_status : "") == 0,
                  "%s: hold_status \"%s\", expected %s: %s", id, ret->hold_status,
                  hold_status ? hold_status : "null", ret->raw);
    ck_assert_msg(ret->n_legs == n_legs, "%s: %zu legs, expected %zu: %s", id, ret->n_legs, n_legs,
                  ret->raw);
}

/*
 * `payment show` of a capture or void: its type, outcome (reason NULL:
 * applied), hold, n_legs legs (those a capture posted; none otherwise).
 */
static void expect_resolution_shown(const char *id, const char *type, const char *hold_id,
                                    const char *reason, size_t n_legs, lqt_payment *ret)
{
    lqt_payment_ok(ns, id, ret);
    ck_assert_msg(strcmp(ret->type, type) == 0 && strcmp(ret->hold, hold_id) == 0,
                  "%s: expected a %s of hold %s: %s", id, type, hold_id, ret->raw);
    ck_assert_msg(strcmp(ret->status, reason ? "rejected" : "applied") == 0 &&
                      (reason ? strcmp(ret->reason, reason) == 0 : ret->reason_null),
                  "%s: outcome %s (%s), expected %s: %s", id, ret->status, ret->reason,
                  reason ? reason : "applied", ret->raw);
    ck_assert_msg(ret->n_legs == n_legs, "%s: %zu legs, expected %zu: %s", id, ret->n_legs, n_legs,
                  ret->raw);
}

/* Seconds from RFC 3339 UTC time a to b (both must parse). */
static long seconds_between(const char *a, const char *b)
{
    time_t ta, tb;

    ck_assert_msg(lqt_parse_utc(a, &ta) && lqt_parse_utc(b, &tb), "not RFC 3339 UTC: %s, %s", a, b);
    return (long)(tb - ta);
}

/* The usual accounts: bank (no floor), then each of ids (NULL-terminated) in EUR. */
static void open_accounts(lqt_session *s, const char *const *ids)
{
    lqt_open_account(s, "open-bank", "bank", "EUR", ",'allow_negative':true");
    for (size_t i = 0; ids[i]; i++)
        lqt_open_account(s, text("open-%s", ids[i]), ids[i], "EUR", NULL);
}

#define OPEN_ACCOUNTS(s, ...) open_accounts((s), (const char *const[]){__VA_ARGS__, NULL})

/* ------------------------------------------------------------ hold: applied */

START_TEST(test_hold_applied)
{
    lqt_session s;
    lqt_payment p;
    const lqt_event *e;
    lqt_entry en;

    lqt_session_start(&s, ns);
    OPEN_ACCOUNTS(&s, "alice", "shop", "fees");
    lqt_transfer_ok(&s, "fund-alice", "bank", "alice", 1000);

    /* Nothing posted: the debited account's held debits, the credited one's held credits. */
    e = hold_ok(&s, "h-1", "alice", "shop", 300, ",'reference':'order-1'");
    expect_account("alice", 1000, 300, 0);
    expect_account("shop", 0, 0, 300);
    en = ENTRY("alice", 3, "h-1", "hold", 1, 0, 1000, 300, 0);
    ck_assert_msg(strcmp(en.at, e->processed_at) >= 0, "the hold's entry (%s) is before %s", en.at,
                  e->processed_at);
    ENTRY("shop", 2, "h-1", "hold", 1, 0, 0, 0, 300);
    ck_assert_uint_eq(lqt_n_entries(ns, "alice"), 3);
    ck_assert_uint_eq(lqt_n_entries(ns, "shop"), 2);
    /* Without timeout_s, it never expires. */
    expect_hold_shown("h-1", NULL, "pending", 1, &p);
    ck_assert_msg(p.expires_at[0] == '\0', "h-1 should never expire: %s", p.raw);
    ck_assert(p.detail_null);
    ck_assert_str_eq(p.processed_at, e->processed_at);
    expect_leg(&p, 0, "alice", "shop", 300);

    /*
     * Several legs, each checked against the book as the earlier ones left
     * it; an entry per leg on the debited account, then the credited one.
     * It expires timeout_s after it was applied.
     */
    e = lqt_command(&s, NULL,
                    "{'type':'hold','id':'h-2','timeout_s':60,'legs':["
                    "{'debit':'alice','credit':'shop','amount':100,'currency':'EUR'},"
                    "{'debit':'alice','credit':'fees','amount':'50','currency':'EUR'}]}");
    LQT_APPLIED(e, "h-2", "hold");
    expect_account("alice", 1000, 450, 0);
    expect_account("shop", 0, 0, 400);
    expect_account("fees", 0, 0, 50);
    ENTRY("alice", 4, "h-2", "hold", 1, 0, 1000, 400, 0);
    ENTRY("alice", 5, "h-2", "hold", 2, 0, 1000, 450, 0);
    ENTRY("shop", 3, "h-2", "hold", 1, 0, 0, 0, 400);
    ENTRY("fees", 2, "h-2", "hold", 2, 0, 0, 0, 50);
    expect_hold_shown("h-2", NULL, "pending", 2, &p);
    ck_assert_msg(p.expires_at[0] != '\0', "h-2 should expire: %s", p.raw);
    ck_assert_msg(seconds_between(e->processed_at, p.expires_at) == 60,
                  "h-2 applied at %s expires at %s, not 60 s later", e->processed_at, p.expires_at);
    expect_leg(&p, 0, "alice", "shop", 100);
    expect_leg(&p, 1, "alice", "fees", 50);
    /* As of the first hold's entry: what it held then. */
    expect_account_at("alice", en.at, 1000, 300, 0);

    /* The available balance is the balance minus the held debits: transfers see it too. */
    LQT_TRANSFER_REJECTED(lqt_transfer(&s, "t-over", "alice", "bank", 551, "EUR"), "t-over",
                          "insufficient_funds",
                          "leg 1: account \"alice\" has balance 1000 (available 550), cannot be "
                          "debited 551");
    lqt_transfer_ok(&s, "t-all", "alice", "bank", 550);
    expect_account("alice", 450, 450, 0);
    ENTRY("alice", 6, "t-all", "transfer", 1, -550, 450, 450, 0);
    /* Held credits are not money yet: shop cannot spend them. */
    LQT_TRANSFER_REJECTED(lqt_transfer(&s, "t-shop", "shop", "bank", 1, "EUR"), "t-shop",
                          "insufficient_funds",
                          "leg 1: account \"shop\" has balance 0, cannot be debited 1");

    lqt_session_finish(&s, 4);
}
END_TEST

/* ------------------------------------------------------------ hold: rejected */

START_TEST(test_hold_rejections)
{
    lqt_session s;
    lqt_payment p;
    char *before;

    lqt_session_start(&s, ns);
    OPEN_ACCOUNTS(&s, "alice", "frz", "shut", "shop");
    lqt_open_account(&s, "open-cap", "cap", "EUR", ",'max_balance':1000");
    lqt_open_account(&s, "open-usd", "usd", "USD", ",'allow_negative':true");
    lqt_transfer_ok(&s, "fund-alice", "bank", "alice", 1000);
    lqt_transfer_ok(&s, "fund-frz", "bank", "frz", 100);
    LQT_APPLIED(lqt_update_account(&s, "freeze-frz", "frz", "'status':'frozen'"), "freeze-frz",
                "account.update");
    LQT_APPLIED(lqt_update_account(&s, "close-shut", "shut", "'status':'closed'"), "close-shut",
                "account.update");
    hold_ok(&s, "h-big", "alice", "shop", 700, NULL);
    hold_ok(&s, "h-cap", "bank", "cap", 600, NULL);

    /* The checks of a transfer, in its order; each rejection leaves the ledger as it was. */
    before = lqt_ledger_snapshot(ns);
    /* insufficient_funds on the available balance: held debits count. */
    HOLD_REJECTED(hold(&s, "r-funds", "alice", "shop", 301, ",'timeout_s':60"), "r-funds",
                  "insufficient_funds",
                  "leg 1: account \"alice\" has balance 1000 (available 300), cannot be debited "
                  "301");
    LQT_TRANSFER_REJECTED(lqt_transfer(&s, "t-funds", "alice", "shop", 301, "EUR"), "t-funds",
                          "insufficient_funds",
                          "leg 1: account \"alice\" has balance 1000 (available 300), cannot be "
                          "debited 301");
    /* exceeds_max_balance on the balance plus held credits. */
    HOLD_REJECTED(hold(&s, "r-ceiling", "bank", "cap", 401, NULL), "r-ceiling",
                  "exceeds_max_balance",
                  "leg 1: account \"cap\" has balance 0 (held credits 600), cannot be credited 401 "
                  "(max balance 1000)");
    LQT_TRANSFER_REJECTED(lqt_transfer(&s, "t-ceiling", "bank", "cap", 401, "EUR"), "t-ceiling",
                          "exceeds_max_balance",
                          "leg 1: account \"cap\" has balance 0 (held credits 600), cannot be "
                          "credited 401 (max balance 1000)");
    HOLD_REJECTED(hold(&s, "r-frozen", "frz", "bank", 1, NULL), "r-frozen", "account_frozen",
                  "leg 1: account \"frz\" is frozen");
    HOLD_REJECTED(hold(&s, "r-closed", "bank", "shut", 1, NULL), "r-closed", "account_closed",
                  "leg 1: account \"shut\" is closed");
    HOLD_REJECTED(hold(&s, "r-closed-debit", "shut", "bank", 1, NULL), "r-closed-debit",
                  "account_closed", "leg 1: account \"shut\" is closed");
    HOLD_REJECTED(hold(&s, "r-missing", "bank", "nobody", 1, NULL), "r-missing",
                  "account_not_found", "leg 1: account \"nobody\" does not exist");
    HOLD_REJECTED(hold(&s, "r-currency", "bank", "usd", 1, NULL), "r-currency", "currency_mismatch",
                  "leg 1: currency EUR differs from account \"usd\" (USD)");
    /* A later leg, against the book as the earlier legs left it: their held debits count... */
    HOLD_REJECTED(lqt_command(&s, NULL,
                              "{'type':'hold','id':'r-leg2','legs':["
                              "{'debit':'alice','credit':'shop','amount':200,'currency':'EUR'},"
                              "{'debit':'alice','credit':'shop','amount':101,'currency':'EUR'}]}"),
                  "r-leg2", "insufficient_funds",
                  "leg 2: account \"alice\" has balance 1000 (available 100), cannot be debited "
                  "101");
    /* ...their held credits are no funds. */
    HOLD_REJECTED(lqt_command(&s, NULL,
                              "{'type':'hold','id':'r-leg2-credit','legs':["
                              "{'debit':'bank','credit':'alice','amount':500,'currency':'EUR'},"
                              "{'debit':'alice','credit':'shop','amount':301,'currency':'EUR'}]}"),
                  "r-leg2-credit", "insufficient_funds",
                  "leg 2: account \"alice\" has balance 1000 (available 300), cannot be debited "
                  "301");
    HOLD_REJECTED(lqt_command(&s, NULL,
                              "{'type':'hold','id':'r-leg2-ceiling','legs':["
                              "{'debit':'bank','credit':'cap','amount':300,'currency':'EUR'},"
                              "{'debit':'bank','credit':'cap','amount':101,'currency':'EUR'}]}"),
                  "r-leg2-ceiling", "exceeds_max_balance",
                  "leg 2: account \"cap\" has balance 0 (held credits 900), cannot be credited 101 "
                  "(max balance 1000)");
    lqt_expect_unchanged(ns, before, "rejected holds");

    /* payment show: the rejected hold as asked, holding nothing (hold_status null). */
    expect_hold_shown("r-funds", "insufficient_funds", NULL, 1, &p);
    ck_assert_str_eq(p.detail, "leg 1: account \"alice\" has balance 1000 (available 300), cannot "
                               "be debited 301");
    ck_assert_msg(p.expires_at[0] == '\0', "a rejected hold expires: %s", p.raw);
    expect_leg(&p, 0, "alice", "shop", 301);
    expect_hold_shown("r-leg2", "insufficient_funds", NULL, 2, &p);
    expect_leg(&p, 1, "alice", "shop", 101);
    expect_hold_shown("r-currency", "currency_mismatch", NULL, 1, &p);

    /* Up to the floor and the ceiling exactly. */
    hold_ok(&s, "h-rest", "alice", "shop", 300, NULL);
    expect_account("alice", 1000, 1000, 0);
    hold_ok(&s, "h-cap-rest", "bank", "cap", 400, NULL);
    expect_account("cap", 0, 0, 1000);
    /* A frozen account may still be credited, by a hold too. */
    hold_ok(&s, "h-into-frozen", "bank", "frz", 5, NULL);
    expect_account("frz", 100, 0, 5);

    lqt_session_finish(&s, 7);
}
END_TEST

/* ------------------------------------------------------------ capture and void: rejected */

START_TEST(test_resolve_rejections)
{
    lqt_session s;
    lqt_payment p;
    char *before;

    lqt_session_start(&s, ns);
    OPEN_ACCOUNTS(&s, "alice", "shop", "fees");
    lqt_transfer_ok(&s, "fund-alice", "bank", "alice", 1000);
    hold_ok(&s, "h-1", "alice", "shop", 300, NULL);
    LQT_APPLIED(lqt_command(&s, NULL,
                            "{'type':'hold','id':'h-2','legs':["
                            "{'debit':'alice','credit':'shop','amount':100,'currency':'EUR'},"
                            "{'debit':'alice','credit':'fees','amount':50,'currency':'EUR'}]}"),
                "h-2", "hold");
    lqt_transfer_ok(&s, "t-1", "alice", "shop", 10);
    HOLD_REJECTED(hold(&s, "r-hold", "alice", "nobody", 5, NULL), "r-hold", "account_not_found",
                  "leg 1: account \"nobody\" does not exist");

    before = lqt_ledger_snapshot(ns);
    /* hold_not_found: no hold was applied under that id, whatever else it is. */
    expect_capture(capture(&s, "c-unknown", "nope", -1), "c-unknown", "nope", "hold_not_found",
                   NOT_FOUND("nope"), -1, false);
    expect_void(void_hold(&s, "v-unknown", "nope"), "v-unknown", "nope", "hold_not_found",
                NOT_FOUND("nope"), false);
    expect_capture(capture(&s, "c-transfer", "t-1", 5), "c-transfer", "t-1", "hold_not_found",
                   NOT_FOUND("t-1"), -1, false);
    expect_void(void_hold(&s, "v-transfer", "t-1"), "v-transfer", "t-1", "hold_not_found",
                NOT_FOUND("t-1"), false);
    expect_capture(capture(&s, "c-rejected", "r-hold", -1), "c-rejected", "r-hold",
                   "hold_not_found", NOT_FOUND("r-hold"), -1, false);
    expect_void(void_hold(&s, "v-rejected", "r-hold"), "v-rejected", "r-hold", "hold_not_found",
                NOT_FOUND("r-hold"), false);
    expect_capture(capture(&s, "c-account", "open-alice", -1), "c-account", "open-alice",
                   "hold_not_found", NOT_FOUND("open-alice"), -1, false);
    expect_void(void_hold(&s, "v-capture", "c-unknown"), "v-capture", "c-unknown", "hold_not_found",
                NOT_FOUND("c-unknown"), false);
    /* exceeds_hold_amount: above a single leg's amount. */
    expect_capture(capture(&s, "c-over", "h-1", 301), "c-over", "h-1", "exceeds_hold_amount",
                   EXCEEDS(301, "h-1", 300), -1, false);
    /* partial_capture_not_supported: any amount at all on a hold of several legs. */
    expect_capture(capture(&s, "c-part", "h-2", 50), "c-part", "h-2",
                   "partial_capture_not_supported", PARTIAL(50, "h-2", 2), -1, false);
    expect_capture(capture(&s, "c-part-all", "h-2", 150), "c-part-all", "h-2",
                   "partial_capture_not_supported", PARTIAL(150, "h-2", 2), -1, false);
    lqt_expect_unchanged(ns, before, "rejected captures and voids");

    /* payment show: the rejected command, its hold, no legs. */
    expect_resolution_shown("c-over", "capture", "h-1", "exceeds_hold_amount", 0, &p);
    ck_assert_str_eq(p.detail, EXCEEDS(301, "h-1", 300));
    expect_resolution_shown("v-unknown", "void", "nope", "hold_not_found", 0, &p);
    expect_resolution_shown("c-part", "capture", "h-2", "partial_capture_not_supported", 0, &p);
    expect_hold_shown("h-1", NULL, "pending", 1, &p);
    expect_hold_shown("h-2", NULL, "pending", 2, &p);

    /*
     * Resolved once and for all: a captured hold, then a voided one; the
     * status decides before the amount.
     */
    expect_capture(capture(&s, "c-1", "h-1", -1), "c-1", "h-1", NULL, NULL, 300, false);
    expect_void(void_hold(&s, "v-2", "h-2"), "v-2", "h-2", NULL, NULL, false);
    before = lqt_ledger_snapshot(ns);
    expect_capture(capture(&s, "c-1-again", "h-1", 1), "c-1-again", "h-1", "hold_already_captured",
                   CAPTURED("h-1"), -1, false);
    expect_capture(capture(&s, "c-1-over", "h-1", 301), "c-1-over", "h-1", "hold_already_captured",
                   CAPTURED("h-1"), -1, false);
    expect_void(void_hold(&s, "v-1", "h-1"), "v-1", "h-1", "hold_already_captured", CAPTURED("h-1"),
                false);
    expect_capture(capture(&s, "c-2", "h-2", -1), "c-2", "h-2", "hold_already_voided",
                   VOIDED("h-2"), -1, false);
    expect_capture(capture(&s, "c-2-part", "h-2", 50), "c-2-part", "h-2", "hold_already_voided",
                   VOIDED("h-2"), -1, false);
    expect_void(void_hold(&s, "v-2-again", "h-2"), "v-2-again", "h-2", "hold_already_voided",
                VOIDED("h-2"), false);
    lqt_expect_unchanged(ns, before, "captures and voids of resolved holds");
    expect_hold_shown("h-1", NULL, "captured", 1, &p);
    expect_hold_shown("h-2", NULL, "voided", 2, &p);
    expect_resolution_shown("v-1", "void", "h-1", "hold_already_captured", 0, &p);
    ck_assert_str_eq(p.detail, CAPTURED("h-1"));
    expect_account("alice", 690, 0, 0);
    expect_account("shop", 310, 0, 0);
    expect_account("fees", 0, 0, 0);

    lqt_session_finish(&s, 4);
}
END_TEST

/* ------------------------------------------------------------ capture: one leg */

START_TEST(test_capture_single_leg)
{
    lqt_session s;
    lqt_payment p;
    const lqt_event *e;

    lqt_session_start(&s, ns);
    OPEN_ACCOUNTS(&s, "alice", "shop");
    lqt_transfer_ok(&s, "fund-alice", "bank", "alice", 1000);
    hold_ok(&s, "h-1", "alice", "shop", 300, ",'timeout_s':3600");
    hold_ok(&s, "h-other", "alice", "shop", 50, NULL);
    expect_account("alice", 1000, 350, 0);

    /*
     * A partial capture: the amount posted, the rest released with it; the
     * entries show the hold released whole (h-other still held).
     */
    e = capture(&s, "c-1", "h-1", 120);
    expect_capture(e, "c-1", "h-1", NULL, NULL, 120, false);
    expect_account("alice", 880, 50, 0);
    expect_account("shop", 120, 0, 50);
    ENTRY("alice", 5, "c-1", "capture", 1, -120, 880, 50, 0);
    ENTRY("shop", 4, "c-1", "capture", 1, 120, 120, 0, 50);
    ck_assert_uint_eq(lqt_n_entries(ns, "alice"), 5);
    ck_assert_uint_eq(lqt_n_entries(ns, "shop"), 4);
    {
        lqt_account a;
        lqt_account_show(ns, "alice", &a);
        ck_assert_int_eq(a.debits, 120);
        ck_assert_int_eq(a.credits, 1000);
        ck_assert_int_eq(a.available, 830);
    }
    /* payment show: the capture's legs are what it posted; the hold is captured. */
    expect_resolution_shown("c-1", "capture", "h-1", NULL, 1, &p);
    expect_leg(&p, 0, "alice", "shop", 120);
    ck_assert_str_eq(p.processed_at, e->processed_at);
    ck_assert(p.detail_null);
    expect_hold_shown("h-1", NULL, "captured", 1, &p);
    expect_leg(&p, 0, "alice", "shop", 300);
    ck_assert_msg(p.expires_at[0] != '\0', "h-1's expires_at is gone: %s", p.raw);
    /* The rest is free again: everything but h-other's 50 leaves. */
    lqt_transfer_ok(&s, "t-out", "alice", "bank", 830);
    expect_account("alice", 50, 50, 0);

    /* A capture without amount posts all of it; the event tells how much. */
    expect_capture(capture(&s, "c-2", "h-other", -1), "c-2", "h-other", NULL, NULL, 50, false);
    expect_account("alice", 0, 0, 0);
    expect_account("shop", 170, 0, 0);
    ENTRY("alice", 7, "c-2", "capture", 1, -50, 0, 0, 0);
    ENTRY("shop", 5, "c-2", "capture", 1, 50, 170, 0, 0);
    expect_resolution_shown("c-2", "capture", "h-other", NULL, 1, &p);
    expect_leg(&p, 0, "alice", "shop", 50);

    /* A capture of exactly the amount held; a reply_to queue gets a copy of its event. */
    hold_ok(&s, "h-3", "bank", "shop", 70, NULL);
    {
        lqt_listener *replies = lqt_listen_queue(ns);
        const lqt_event *reply;

        lqt_publish(ns, &(lqt_msg){.body = "{\"type\":\"capture\",\"id\":\"c-3\","
                                           "\"hold\":\"h-3\",\"amount\":70}",
                                   .reply_to = lqt_listener_queue(replies)});
        lqt_wait_events(s.events, ++s.awaited);
        lqt_wait_events(replies, 1);
        e = lqt_event_at(s.events, s.awaited - 1);
        expect_capture(e, "c-3", "h-3", NULL, NULL, 70, false);
        reply = lqt_event_at(replies, 0);
        ck_assert_msg(reply->has_correlation_id && strcmp(reply->correlation_id, "c-3") == 0,
                      "the reply's correlation_id: %s", reply->correlation_id);
        ck_assert_str_eq(reply->body, e->body);
    }
    expect_account("shop", 240, 0, 0);
    expect_resolution_shown("c-3", "capture", "h-3", NULL, 1, &p);
    expect_leg(&p, 0, "bank", "shop", 70);

    lqt_session_finish(&s, 3);
}
END_TEST

/* ------------------------------------------------------------ capture: several legs */

START_TEST(test_capture_multi_leg)
{
    lqt_session s;
    lqt_payment p;

    lqt_session_start(&s, ns);
    OPEN_ACCOUNTS(&s, "alice", "bob", "shop", "fees");
    lqt_transfer_ok(&s, "fund-alice", "bank", "alice", 500);
    lqt_transfer_ok(&s, "fund-bob", "bank", "bob", 100);
    hold_ok(&s, "h-other", "alice", "fees", 10, NULL);
    LQT_APPLIED(lqt_command(&s, NULL,
                            "{'type':'hold','id':'h-m','legs':["
                            "{'debit':'alice','credit':'shop','amount':100,'currency':'EUR'},"
                            "{'debit':'alice','credit':'fees','amount':50,'currency':'EUR'},"
                            "{'debit':'bob','credit':'shop','amount':20,'currency':'EUR'}]}"),
                "h-m", "hold");
    expect_account("alice", 500, 160, 0);
    expect_account("bob", 100, 20, 0);
    expect_account("shop", 0, 0, 120);
    expect_account("fees", 0, 0, 60);
    ENTRY("alice", 4, "h-m", "hold", 1, 0, 500, 110, 0);
    ENTRY("alice", 5, "h-m", "hold", 2, 0, 500, 160, 0);
    ENTRY("shop", 2, "h-m", "hold", 1, 0, 0, 0, 100);
    ENTRY("shop", 3, "h-m", "hold", 3, 0, 0, 0, 120);

    /* Captured in full (no amount): every leg posted, the event's amount null. */
    expect_capture(capture(&s, "c-m", "h-m", -1), "c-m", "h-m", NULL, NULL, -1, false);
    expect_account("alice", 350, 10, 0);
    expect_account("bob", 80, 0, 0);
    expect_account("shop", 120, 0, 0);
    expect_account("fees", 50, 0, 10);
    /* An entry per leg on each account, the hold released whole in each. */
    ENTRY("alice", 6, "c-m", "capture", 1, -100, 400, 10, 0);
    ENTRY("alice", 7, "c-m", "capture", 2, -50, 350, 10, 0);
    ENTRY("shop", 4, "c-m", "capture", 1, 100, 100, 0, 0);
    ENTRY("shop", 5, "c-m", "capture", 3, 20, 120, 0, 0);
    ENTRY("fees", 4, "c-m", "capture", 2, 50, 50, 0, 10);
    ENTRY("bob", 4, "c-m", "capture", 3, -20, 80, 0, 0);
    ck_assert_uint_eq(lqt_n_entries(ns, "alice"), 7);
    ck_assert_uint_eq(lqt_n_entries(ns, "bob"), 4);
    ck_assert_uint_eq(lqt_n_entries(ns, "shop"), 5);
    ck_assert_uint_eq(lqt_n_entries(ns, "fees"), 4);
    /* payment show: the capture posted every leg. */
    expect_resolution_shown("c-m", "capture", "h-m", NULL, 3, &p);
    expect_leg(&p, 0, "alice", "shop", 100);
    expect_leg(&p, 1, "alice", "fees", 50);
    expect_leg(&p, 2, "bob", "shop", 20);
    expect_hold_shown("h-m", NULL, "captured", 3, &p);

    lqt_session_finish(&s, 5);
}
END_TEST

/* ------------------------------------------------------------ void */

START_TEST(test_void)
{
    lqt_session s;
    lqt_payment p;
    const lqt_event *e;

    lqt_session_start(&s, ns);
    OPEN_ACCOUNTS(&s, "alice", "shop", "fees");
    lqt_transfer_ok(&s, "fund-alice", "bank", "alice", 500);
    hold_ok(&s, "h-1", "alice", "shop", 200, ",'timeout_s':3600");
    LQT_APPLIED(lqt_command(&s, NULL,
                            "{'type':'hold','id':'h-m','legs':["
                            "{'debit':'alice','credit':'shop','amount':100,'currency':'EUR'},"
                            "{'debit':'alice','credit':'fees','amount':50,'currency':'EUR'}]}"),
                "h-m", "hold");
    expect_account("alice", 500, 350, 0);

    /* Released, nothing posted: a void entry (amount 0) per leg on each account. */
    e = void_hold(&s, "v-1", "h-1");
    expect_void(e, "v-1", "h-1", NULL, NULL, false);
    expect_account("alice", 500, 150, 0);
    expect_account("shop", 0, 0, 100);
    ENTRY("alice", 6, "v-1", "void", 1, 0, 500, 150, 0);
    ENTRY("shop", 4, "v-1", "void", 1, 0, 0, 0, 100);
    expect_resolution_shown("v-1", "void", "h-1", NULL, 0, &p);
    ck_assert_str_eq(p.processed_at, e->processed_at);
    expect_hold_shown("h-1", NULL, "voided", 1, &p);

    expect_void(void_hold(&s, "v-m", "h-m"), "v-m", "h-m", NULL, NULL, false);
    expect_account("alice", 500, 0, 0);
    expect_account("shop", 0, 0, 0);
    expect_account("fees", 0, 0, 0);
    ENTRY("alice", 7, "v-m", "void", 1, 0, 500, 0, 0);
    ENTRY("alice", 8, "v-m", "void", 2, 0, 500, 0, 0);
    ENTRY("shop", 5, "v-m", "void", 1, 0, 0, 0, 0);
    ENTRY("fees", 3, "v-m", "void", 2, 0, 0, 0, 0);
    expect_hold_shown("h-m", NULL, "voided", 2, &p);

    lqt_session_finish(&s, 4);
}
END_TEST

/* ------------------------------------------------------------ a hold in the way */

START_TEST(test_transfer_after_void)
{
    lqt_session s;
    const lqt_event *e;
    char refused_at[64];

    lqt_session_start(&s, ns);
    OPEN_ACCOUNTS(&s, "alice", "shop");
    lqt_transfer_ok(&s, "fund-alice", "bank", "alice", 100);
    hold_ok(&s, "h-1", "alice", "shop", 80, NULL);

    /* Refused: the hold leaves 20 available. */
    e = lqt_transfer(&s, "t-1", "alice", "bank", 30, "EUR");
    LQT_TRANSFER_REJECTED(
        e, "t-1", "insufficient_funds",
        "leg 1: account \"alice\" has balance 100 (available 20), cannot be debited 30");
    snprintf(refused_at, sizeof(refused_at), "%s", e->processed_at);

    /* The void gives the 80 back: the same transfer under a new id is applied. */
    expect_void(void_hold(&s, "v-1", "h-1"), "v-1", "h-1", NULL, NULL, false);
    lqt_transfer_ok(&s, "t-2", "alice", "bank", 30);
    expect_account("alice", 70, 0, 0);
    ENTRY("alice", 3, "h-1", "hold", 1, 0, 100, 80, 0);
    ENTRY("alice", 4, "v-1", "void", 1, 0, 100, 0, 0);
    ENTRY("alice", 5, "t-2", "transfer", 1, -30, 70, 0, 0);
    /* The refused one sent again keeps its first outcome. */
    e = lqt_transfer(&s, "t-1", "alice", "bank", 30, "EUR");
    lqt_expect_event(
        e, "t-1", "transfer", "rejected", "insufficient_funds",
        "leg 1: account \"alice\" has balance 100 (available 20), cannot be debited 30", true);
    ck_assert_str_eq(e->processed_at, refused_at);
    ck_assert_uint_eq(lqt_n_entries(ns, "alice"), 5);

    lqt_session_finish(&s, 3);
}
END_TEST

/* ------------------------------------------------------------ expiry */

START_TEST(test_expiry)
{
    lqt_session s;
    lqt_payment p;
    const lqt_event *e, *h1, *hm;
    lqt_entry en;
    int64_t placed_ms[2], came_ms[2];
    char h1_expires[64], hm_expires[64], h1_at[64];
    char *before;

    lqt_session_start(&s, ns);
    OPEN_ACCOUNTS(&s, "alice", "shop", "fees");
    lqt_transfer_ok(&s, "fund-alice", "bank", "alice", 1000);

    h1 = hold_ok(&s, "h-1", "alice", "shop", 300, ",'timeout_s':1");
    placed_ms[0] = lqt_now_ms();
    snprintf(h1_at, sizeof(h1_at), "%s", h1->processed_at);
    hm = lqt_command(&s, NULL,
                     "{'type':'hold','id':'h-m','timeout_s':2,'legs':["
                     "{'debit':'alice','credit':'shop','amount':100,'currency':'EUR'},"
                     "{'debit':'alice','credit':'fees','amount':50,'currency':'EUR'}]}");
    placed_ms[1] = lqt_now_ms();
    LQT_APPLIED(hm, "h-m", "hold");
    lqt_payment_ok(ns, "h-1", &p);
    snprintf(h1_expires, sizeof(h1_expires), "%s", p.expires_at);
    ck_assert_msg(seconds_between(h1_at, h1_expires) == 1, "h-1 applied at %s expires at %s", h1_at,
                  h1_expires);
    lqt_payment_ok(ns, "h-m", &p);
    snprintf(hm_expires, sizeof(hm_expires), "%s", p.expires_at);
    ck_assert_msg(seconds_between(hm->processed_at, hm_expires) == 2,
                  "h-m applied at %s expires at %s", hm->processed_at, hm_expires);

    /*
     * No command: the sweep releases both and publishes hold.expired for
     * each, within EXPIRY_WITHIN_S of its expiry (and a second of slack
     * here for the test's own delays).
     */
    for (size_t i = 0; i < 2; i++) {
        lqt_wait_events(s.events, ++s.awaited);
        came_ms[i] = lqt_now_ms();
    }
    for (size_t i = 0; i < 2; i++) {
        const char *id = i == 0 ? "h-1" : "h-m";
        const char *expires = i == 0 ? h1_expires : hm_expires;
        const int timeout_s = i == 0 ? 1 : 2;
        size_t k;

        for (k = s.awaited - 2; k < s.awaited; k++) {
            if (strcmp(lqt_event_at(s.events, k)->id, id) == 0)
                break;
        }
        ck_assert_msg(k < s.awaited, "no hold.expired event for %s", id);
        e = lqt_event_at(s.events, k);
        /* {"id","type":"hold","status":"expired","reason":null,"detail":null,"duplicate":false,...}
         */
        lqt_expect_event(e, id, "hold", "expired", NULL, NULL, false);
        ck_assert_msg(came_ms[k - (s.awaited - 2)] - placed_ms[i] <=
                          (timeout_s + EXPIRY_WITHIN_S + 1) * 1000,
                      "%s (timeout_s %d) expired %" PRId64 " ms after it was placed", id, timeout_s,
                      came_ms[k - (s.awaited - 2)] - placed_ms[i]);
        /* processed_at: when it was released, at or after its expiry. */
        ck_assert_msg(seconds_between(expires, e->processed_at) >= 0 &&
                          seconds_between(expires, e->processed_at) <= EXPIRY_WITHIN_S,
                      "%s expires at %s, released at %s", id, expires, e->processed_at);
    }

    /*
     * Everything held is back; an expiry entry per leg on each account,
     * under the hold's id, showing the whole hold released (section 15).
     */
    expect_account("alice", 1000, 0, 0);
    expect_account("shop", 0, 0, 0);
    expect_account("fees", 0, 0, 0);
    ENTRY("alice", 3, "h-1", "hold", 1, 0, 1000, 300, 0);
    ENTRY("alice", 4, "h-m", "hold", 1, 0, 1000, 400, 0);
    ENTRY("alice", 5, "h-m", "hold", 2, 0, 1000, 450, 0);
    en = ENTRY("alice", 6, "h-1", "expiry", 1, 0, 1000, 150, 0);
    ck_assert_msg(strcmp(en.at, h1_expires) >= 0, "h-1 expires at %s, its expiry entry is at %s",
                  h1_expires, en.at);
    ENTRY("alice", 7, "h-m", "expiry", 1, 0, 1000, 0, 0);
    ENTRY("alice", 8, "h-m", "expiry", 2, 0, 1000, 0, 0);
    ENTRY("shop", 4, "h-1", "expiry", 1, 0, 0, 0, 100);
    ENTRY("shop", 5, "h-m", "expiry", 1, 0, 0, 0, 0);
    ENTRY("fees", 3, "h-m", "expiry", 2, 0, 0, 0, 0);
    ck_assert_uint_eq(lqt_n_entries(ns, "alice"), 8);
    expect_hold_shown("h-1", NULL, "expired", 1, &p);
    ck_assert_str_eq(p.expires_at, h1_expires);
    ck_assert_str_eq(p.processed_at, h1_at);
    expect_hold_shown("h-m", NULL, "expired", 2, &p);

    /* Expired is final: hold_expired, before any check of the amount. */
    before = lqt_ledger_snapshot(ns);
    expect_capture(capture(&s, "c-1", "h-1", -1), "c-1", "h-1", "hold_expired", EXPIRED("h-1"), -1,
                   false);
    expect_capture(capture(&s, "c-1-over", "h-1", 301), "c-1-over", "h-1", "hold_expired",
                   EXPIRED("h-1"), -1, false);
    expect_capture(capture(&s, "c-m-part", "h-m", 1), "c-m-part", "h-m", "hold_expired",
                   EXPIRED("h-m"), -1, false);
    expect_void(void_hold(&s, "v-m", "h-m"), "v-m", "h-m", "hold_expired", EXPIRED("h-m"), false);
    lqt_expect_unchanged(ns, before, "captures and voids of expired holds");
    expect_resolution_shown("c-1", "capture", "h-1", "hold_expired", 0, &p);

    /* A hold that never expires is still held after the others expired. */
    hold_ok(&s, "h-forever", "alice", "shop", 10, NULL);
    lqt_sleep_ms(2500);
    expect_account("alice", 1000, 10, 0);
    expect_hold_shown("h-forever", NULL, "pending", 1, &p);

    /* session_finish: no second hold.expired came. */
    lqt_session_finish(&s, 4);
}
END_TEST

/* ------------------------------------------------------------ a capture past the expiry */

/*
 * Take hold's row lock (pending) in a transaction of the test's own: the
 * sweep skips the hold meanwhile, a capture or void of it waits.  Which of
 * them comes first is then the test's to decide.
 */
static PGconn *lock_hold(const char *hold_id)
{
    PGconn *locker = PQconnectdb(ns->db_url);
    PGresult *res;

    ck_assert_msg(PQstatus(locker) == CONNECTION_OK, "could not connect: %s",
                  PQerrorMessage(locker));
    res = PQexec(locker, "BEGIN");
    ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    res = PQexecParams(locker, "SELECT status FROM holds WHERE id = $1 FOR UPDATE", 1, NULL,
                       &hold_id, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                      strcmp(PQgetvalue(res, 0, 0), "pending") == 0,
                  "could not lock hold %s while pending: %s", hold_id, PQerrorMessage(locker));
    PQclear(res);
    return locker;
}

/* Commit the locker's transaction (lock_hold()) and close it. */
static void unlock_hold(PGconn *locker)
{
    PGresult *res = PQexec(locker, "COMMIT");

    ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    PQfinish(locker);
}

/* Wait (at most LQT_WAIT_S) until the database's clock is past hold's expiry time. */
static void wait_past_expiry(const char *hold_id)
{
    int64_t deadline = lqt_now_ms() + LQT_WAIT_S * 1000;

    for (;;) {
        char *past =
            lqt_sql_value(ns, "SELECT now() > expires_at FROM holds WHERE id = $1", hold_id);
        bool done = past && strcmp(past, "t") == 0;
        free(past);
        if (done)
            return;
        ck_assert_msg(lqt_now_ms() < deadline, "%s never reached its expiry time", hold_id);
        lqt_sleep_ms(100);
    }
}

/* Wait (at most LQT_WAIT_S) until a session of the namespace's database waits for a lock. */
static void wait_lock_waiter(void)
{
    int64_t deadline = lqt_now_ms() + LQT_WAIT_S * 1000;

    for (;;) {
        char *waiting = lqt_sql_value(ns,
                                      "SELECT count(*) FROM pg_stat_activity"
                                      " WHERE datname = current_database()"
                                      " AND wait_event_type = 'Lock'",
                                      NULL);
        bool done = waiting && strcmp(waiting, "0") != 0;
        free(waiting);
        if (done)
            return;
        ck_assert_msg(lqt_now_ms() < deadline, "no command ever waited for a hold's lock");
        lqt_sleep_ms(50);
    }
}

START_TEST(test_capture_past_expiry)
{
    lqt_session s;
    lqt_payment p;
    PGconn *locker;
    const lqt_event *e;

    lqt_session_start(&s, ns);
    OPEN_ACCOUNTS(&s, "alice", "shop");
    lqt_transfer_ok(&s, "fund-alice", "bank", "alice", 100);
    hold_ok(&s, "h-1", "alice", "shop", 60, ",'timeout_s':3");

    /*
     * A capture applied after the hold's expiry time but before the sweep
     * released it: the hold is past its expiry all the same.  To make that
     * moment certain, the test holds the hold's row lock (which the sweep
     * skips and the capture waits for) from before its expiry until the
     * capture, sent after the expiry, waits for it.
     */
    locker = lock_hold("h-1");
    wait_past_expiry("h-1");
    lqt_publish(ns, &(lqt_msg){.body = "{\"type\":\"capture\",\"id\":\"c-late\",\"hold\":\"h-1\","
                                       "\"amount\":10}"});
    wait_lock_waiter();
    unlock_hold(locker);

    /* The capture is rejected; then the sweep releases the hold, with its event. */
    s.awaited += 2;
    lqt_wait_events(s.events, s.awaited);
    e = lqt_event_of(&s, "c-late", 0);
    expect_capture(e, "c-late", "h-1", "hold_expired", PAST_EXPIRY("h-1"), -1, false);
    expect_resolution_shown("c-late", "capture", "h-1", "hold_expired", 0, &p);
    lqt_expect_event(lqt_event_of(&s, "h-1", 1), "h-1", "hold", "expired", NULL, NULL, false);
    expect_account("alice", 100, 0, 0);
    expect_account("shop", 0, 0, 0);
    ENTRY("alice", 3, "h-1", "hold", 1, 0, 100, 60, 0);
    ENTRY("alice", 4, "h-1", "expiry", 1, 0, 100, 0, 0);
    ck_assert_uint_eq(lqt_n_entries(ns, "alice"), 4);
    expect_hold_shown("h-1", NULL, "expired", 1, &p);
    expect_capture(capture(&s, "c-after", "h-1", -1), "c-after", "h-1", "hold_expired",
                   EXPIRED("h-1"), -1, false);

    lqt_session_finish(&s, 3);
}
END_TEST

/* ------------------------------------------------------------ a capture racing the expiry */

START_TEST(test_capture_wins_race)
{
    lqt_session s;
    lqt_payment p;
    PGconn *locker;
    const lqt_event *e;
    char expires_at[64];

    lqt_session_start(&s, ns);
    OPEN_ACCOUNTS(&s, "alice", "shop");
    lqt_transfer_ok(&s, "fund-alice", "bank", "alice", 100);
    hold_ok(&s, "h-1", "alice", "shop", 60, ",'timeout_s':3");

    /*
     * A capture applied before the expiry time, whose transaction commits
     * after it: the capture wins (its processed_at is before the expiry),
     * and the sweep, which skips the locked hold, never releases it.
     */
    locker = lock_hold("h-1");
    lqt_publish(ns, &(lqt_msg){.body = "{\"type\":\"capture\",\"id\":\"c-1\",\"hold\":\"h-1\","
                                       "\"amount\":10}"});
    wait_lock_waiter();
    wait_past_expiry("h-1");
    /* Sweeps run meanwhile (about once a second), and find nothing they may take. */
    lqt_sleep_ms(1500);
    unlock_hold(locker);

    lqt_wait_events(s.events, ++s.awaited);
    e = lqt_event_of(&s, "c-1", 0);
    expect_capture(e, "c-1", "h-1", NULL, NULL, 10, false);
    lqt_payment_ok(ns, "h-1", &p);
    snprintf(expires_at, sizeof(expires_at), "%s", p.expires_at);
    ck_assert_msg(strcmp(e->processed_at, expires_at) < 0,
                  "the capture was processed at %s, its hold expires at %s", e->processed_at,
                  expires_at);
    expect_hold_shown("h-1", NULL, "captured", 1, &p);
    expect_account("alice", 90, 0, 0);
    expect_account("shop", 10, 0, 0);
    ENTRY("alice", 4, "c-1", "capture", 1, -10, 90, 0, 0);
    /* No expiry after all: no event, no entry. */
    lqt_sleep_ms(2500);
    ck_assert_uint_eq(lqt_event_count_id(s.events, "h-1"), 1);
    ck_assert_uint_eq(lqt_n_entries(ns, "alice"), 4);

    lqt_session_finish(&s, 3);
}
END_TEST

/* ------------------------------------------------------------ expiry while no worker runs */

START_TEST(test_expiry_after_restart)
{
    lqt_session s;
    lqt_payment p;

    lqt_session_start(&s, ns);
    OPEN_ACCOUNTS(&s, "alice", "shop");
    lqt_transfer_ok(&s, "fund-alice", "bank", "alice", 100);
    hold_ok(&s, "h-1", "alice", "shop", 60, ",'timeout_s':2");

    /* Nothing is released while no worker runs; the next one to start releases it. */
    ck_assert_int_eq(lqt_worker_stop(s.worker), 0);
    s.worker = NULL;
    wait_past_expiry("h-1");
    lqt_sleep_ms(1000);
    expect_account("alice", 100, 60, 0);
    expect_hold_shown("h-1", NULL, "pending", 1, &p);
    ck_assert_uint_eq(lqt_event_count(s.events), s.awaited);

    s.worker = lqt_worker_start(ns, NULL);
    lqt_wait_events(s.events, ++s.awaited);
    lqt_expect_event(lqt_event_at(s.events, s.awaited - 1), "h-1", "hold", "expired", NULL, NULL,
                     false);
    expect_account("alice", 100, 0, 0);
    expect_hold_shown("h-1", NULL, "expired", 1, &p);
    ENTRY("alice", 4, "h-1", "expiry", 1, 0, 100, 0, 0);

    lqt_session_finish(&s, 3);
}
END_TEST

/* ------------------------------------------------------------ closing an account with holds */

START_TEST(test_close_with_holds)
{
    lqt_session s;
    lqt_output o;
    lqt_account a;
    char *before;
    static const char *const mentions[] = {"account_has_holds", NULL};

    lqt_session_start(&s, ns);
    OPEN_ACCOUNTS(&s, "c1");
    lqt_open_account(&s, "open-c2", "c2", "EUR", ",'overdraft_limit':100");
    hold_ok(&s, "h-in", "bank", "c1", 40, NULL);
    hold_ok(&s, "h-out", "c2", "bank", 30, NULL);
    expect_account("c1", 0, 0, 40);
    expect_account("c2", 0, 30, 0);

    /* Balance 0, but held amounts: not closed, by command or by the CLI. */
    before = lqt_ledger_snapshot(ns);
    LQT_REJECTED(lqt_update_account(&s, "close-c1", "c1", "'status':'closed'"), "close-c1",
                 "account.update", "account_has_holds",
                 "account \"c1\" has held debits 0 and held credits 40, cannot be closed");
    LQT_REJECTED(lqt_update_account(&s, "close-c2", "c2", "'status':'closed'"), "close-c2",
                 "account.update", "account_has_holds",
                 "account \"c2\" has held debits 30 and held credits 0, cannot be closed");
    lqt_run(ns, &o, "account", "update", "c1", "--status", "closed");
    lqt_expect_failure(&o, 1, "`account update c1 --status closed`", mentions);
    lqt_output_release(&o);
    lqt_expect_unchanged(ns, before, "closing accounts with holds");

    /* Once released, they close. */
    expect_void(void_hold(&s, "v-in", "h-in"), "v-in", "h-in", NULL, NULL, false);
    LQT_APPLIED(lqt_update_account(&s, "close-c1-2", "c1", "'status':'closed'"), "close-c1-2",
                "account.update");
    ENTRY("c1", 2, "h-in", "hold", 1, 0, 0, 0, 40);
    ENTRY("c1", 3, "v-in", "void", 1, 0, 0, 0, 0);
    LQT_EXPECT_UPDATE_ENTRY(ns, "c1", 4, "close-c1-2", 0, "status", "\"closed\"");
    expect_void(void_hold(&s, "v-out", "h-out"), "v-out", "h-out", NULL, NULL, false);
    lqt_run_ok(ns, "account", "update", "c2", "--status", "closed");
    lqt_account_show(ns, "c2", &a);
    ck_assert_str_eq(a.status, "closed");

    /* A closed account cannot hold anything. */
    HOLD_REJECTED(hold(&s, "h-closed", "bank", "c1", 1, NULL), "h-closed", "account_closed",
                  "leg 1: account \"c1\" is closed");

    lqt_session_finish(&s, 3);
}
END_TEST

/* ------------------------------------------------------------ duplicates */

START_TEST(test_duplicates)
{
    lqt_session s;
    lqt_payment p;
    const lqt_event *e;
    char hold_at[64], capture_at[64], void_at[64], rejected_at[64];
    char *before;

    lqt_session_start(&s, ns);
    OPEN_ACCOUNTS(&s, "alice", "shop", "fees");
    lqt_transfer_ok(&s, "fund-alice", "bank", "alice", 1000);

    /* A hold sent again: its first outcome, duplicate, nothing held twice. */
    e = hold_ok(&s, "h-1", "alice", "shop", 300, ",'timeout_s':600,'reference':'r-1'");
    snprintf(hold_at, sizeof(hold_at), "%s", e->processed_at);
    before = lqt_ledger_snapshot(ns);
    e = hold(&s, "h-1", "alice", "shop", 300, ",'timeout_s':600,'reference':'r-1'");
    lqt_expect_event(e, "h-1", "hold", "applied", NULL, NULL, true);
    ck_assert_str_eq(e->processed_at, hold_at);
    /* The amount spelled otherwise, other metadata, keys in another order: the same hold. */
    e = lqt_command(&s, NULL,
                    "{'reference':'r-1','timeout_s':600,'currency':'EUR','amount':'300',"
                    "'credit':'shop','debit':'alice','id':'h-1','type':'hold',"
                    "'metadata':{'try':2}}");
    lqt_expect_event(e, "h-1", "hold", "applied", NULL, NULL, true);
    ck_assert_str_eq(e->processed_at, hold_at);
    /* Another timeout, none, another type: conflicts. */
    LQT_REJECTED(hold(&s, "h-1", "alice", "shop", 300, ",'timeout_s':601,'reference':'r-1'"), "h-1",
                 "hold", "idempotency_conflict", CONFLICT);
    LQT_REJECTED(hold(&s, "h-1", "alice", "shop", 300, ",'reference':'r-1'"), "h-1", "hold",
                 "idempotency_conflict", CONFLICT);
    LQT_TRANSFER_REJECTED(lqt_transfer(&s, "h-1", "alice", "shop", 300, "EUR"), "h-1",
                          "idempotency_conflict", CONFLICT);
    expect_capture(capture(&s, "h-1", "h-1", -1), "h-1", "h-1", "idempotency_conflict", CONFLICT,
                   -1, false);
    lqt_expect_unchanged(ns, before, "a hold sent again");
    expect_hold_shown("h-1", NULL, "pending", 1, &p);

    /* A capture sent again: its first outcome, its amount, nothing posted twice. */
    e = capture(&s, "c-1", "h-1", 100);
    expect_capture(e, "c-1", "h-1", NULL, NULL, 100, false);
    snprintf(capture_at, sizeof(capture_at), "%s", e->processed_at);
    before = lqt_ledger_snapshot(ns);
    e = capture(&s, "c-1", "h-1", 100);
    expect_capture(e, "c-1", "h-1", NULL, NULL, 100, true);
    ck_assert_str_eq(e->processed_at, capture_at);
    e = lqt_command(&s, NULL,
                    "{'amount':'100','hold':'h-1','id':'c-1','type':'capture',"
                    "'metadata':{'try':2}}");
    expect_capture(e, "c-1", "h-1", NULL, NULL, 100, true);
    ck_assert_str_eq(e->processed_at, capture_at);
    /* Another amount, none, the id as a void: conflicts, each event as its command's type. */
    expect_capture(capture(&s, "c-1", "h-1", 101), "c-1", "h-1", "idempotency_conflict", CONFLICT,
                   -1, false);
    expect_capture(capture(&s, "c-1", "h-1", -1), "c-1", "h-1", "idempotency_conflict", CONFLICT,
                   -1, false);
    expect_void(void_hold(&s, "c-1", "h-1"), "c-1", "h-1", "idempotency_conflict", CONFLICT, false);
    lqt_expect_unchanged(ns, before, "a capture sent again");
    expect_account("alice", 900, 0, 0);
    expect_resolution_shown("c-1", "capture", "h-1", NULL, 1, &p);
    expect_leg(&p, 0, "alice", "shop", 100);
    ck_assert_str_eq(p.processed_at, capture_at);

    /* A void sent again. */
    hold_ok(&s, "h-2", "alice", "fees", 50, NULL);
    e = void_hold(&s, "v-2", "h-2");
    expect_void(e, "v-2", "h-2", NULL, NULL, false);
    snprintf(void_at, sizeof(void_at), "%s", e->processed_at);
    before = lqt_ledger_snapshot(ns);
    e = lqt_command(&s, NULL, "{'type':'void','id':'v-2','hold':'h-2','metadata':{'again':true}}");
    expect_void(e, "v-2", "h-2", NULL, NULL, true);
    ck_assert_str_eq(e->processed_at, void_at);
    expect_void(void_hold(&s, "v-2", "h-1"), "v-2", "h-1", "idempotency_conflict", CONFLICT, false);
    expect_capture(capture(&s, "v-2", "h-2", -1), "v-2", "h-2", "idempotency_conflict", CONFLICT,
                   -1, false);
    lqt_expect_unchanged(ns, before, "a void sent again");
    expect_hold_shown("h-2", NULL, "voided", 1, &p);

    /* Rejections sent again: the rejection again, even once the hold exists. */
    e = capture(&s, "c-early", "h-3", -1);
    expect_capture(e, "c-early", "h-3", "hold_not_found", NOT_FOUND("h-3"), -1, false);
    snprintf(rejected_at, sizeof(rejected_at), "%s", e->processed_at);
    hold_ok(&s, "h-3", "alice", "shop", 5, NULL);
    e = capture(&s, "c-early", "h-3", -1);
    expect_capture(e, "c-early", "h-3", "hold_not_found", NOT_FOUND("h-3"), -1, true);
    ck_assert_str_eq(e->processed_at, rejected_at);
    e = hold(&s, "r-hold", "alice", "nobody", 5, NULL);
    HOLD_REJECTED(e, "r-hold", "account_not_found", "leg 1: account \"nobody\" does not exist");
    snprintf(rejected_at, sizeof(rejected_at), "%s", e->processed_at);
    e = hold(&s, "r-hold", "alice", "nobody", 5, NULL);
    lqt_expect_event(e, "r-hold", "hold", "rejected", "account_not_found",
                     "leg 1: account \"nobody\" does not exist", true);
    ck_assert_str_eq(e->processed_at, rejected_at);
    expect_account("alice", 900, 5, 0);

    lqt_session_finish(&s, 4);
}
END_TEST

/* ------------------------------------------------------------ frozen accounts */

START_TEST(test_frozen_capture)
{
    lqt_session s;
    char *before;

    lqt_session_start(&s, ns);
    OPEN_ACCOUNTS(&s, "alice", "shop");
    lqt_transfer_ok(&s, "fund-alice", "bank", "alice", 500);
    hold_ok(&s, "h-1", "alice", "shop", 200, NULL);
    hold_ok(&s, "h-2", "alice", "shop", 100, NULL);
    hold_ok(&s, "h-in", "bank", "alice", 50, NULL);
    LQT_APPLIED(lqt_update_account(&s, "freeze-alice", "alice", "'status':'frozen'"),
                "freeze-alice", "account.update");
    lqt_expect_entry(ns, "alice", 6, "freeze-alice", "account.update", 0, 0, 500, 300, 50,
                     (const char *const[]){"status", "\"frozen\"", NULL});

    /* Nothing new leaves a frozen account... */
    before = lqt_ledger_snapshot(ns);
    LQT_TRANSFER_REJECTED(lqt_transfer(&s, "t-out", "alice", "shop", 1, "EUR"), "t-out",
                          "account_frozen", "leg 1: account \"alice\" is frozen");
    HOLD_REJECTED(hold(&s, "h-out", "alice", "shop", 1, NULL), "h-out", "account_frozen",
                  "leg 1: account \"alice\" is frozen");
    lqt_expect_unchanged(ns, before, "debits of a frozen account");

    /* ...but what it held before is captured or voided all the same. */
    expect_capture(capture(&s, "c-1", "h-1", 150), "c-1", "h-1", NULL, NULL, 150, false);
    ENTRY("alice", 7, "c-1", "capture", 1, -150, 350, 100, 50);
    expect_void(void_hold(&s, "v-2", "h-2"), "v-2", "h-2", NULL, NULL, false);
    ENTRY("alice", 8, "v-2", "void", 1, 0, 350, 0, 50);
    expect_capture(capture(&s, "c-in", "h-in", -1), "c-in", "h-in", NULL, NULL, 50, false);
    ENTRY("alice", 9, "c-in", "capture", 1, 50, 400, 0, 0);
    expect_account("alice", 400, 0, 0);
    expect_account("shop", 150, 0, 0);

    /* A hold crediting a frozen account expires as any other. */
    hold_ok(&s, "h-exp", "bank", "alice", 5, ",'timeout_s':1");
    expect_account("alice", 400, 0, 5);
    lqt_wait_events(s.events, ++s.awaited);
    lqt_expect_event(lqt_event_at(s.events, s.awaited - 1), "h-exp", "hold", "expired", NULL, NULL,
                     false);
    ENTRY("alice", 11, "h-exp", "expiry", 1, 0, 400, 0, 0);
    expect_account("alice", 400, 0, 0);

    lqt_session_finish(&s, 3);
}
END_TEST

/* ------------------------------------------------------------ one batch */

START_TEST(test_one_batch)
{
    static const char *const alice_commands[] = {"fund-alice", "h-1", "c-1", "t-2",
                                                 "h-2",        "v-2", NULL};
    static const char *const shop_commands[] = {"h-1", "c-1", "h-2", "v-2", "h-3", NULL};
    const char *const env[] = {"LEDGERQ_BATCH_WAIT_MS=1000", NULL};
    lqt_session s = {.ns = ns};
    lqt_payment p;
    lqt_history h;
    const lqt_event *first;

    lqt_run_ok(ns, "account", "open", "bank", "--currency", "EUR", "--allow-negative");
    lqt_run_ok(ns, "account", "open", "alice", "--currency", "EUR");
    lqt_run_ok(ns, "account", "open", "shop", "--currency", "EUR");

    /*
     * Every command in one batch (queued before the worker starts, which
     * waits for more): a hold and what resolves it decided in order, each
     * against what the earlier ones did, a hold placed and resolved by the
     * same transaction.
     */
    lqt_queue(ns, NULL,
              "{'id':'fund-alice','debit':'bank','credit':'alice','amount':100,"
              "'currency':'EUR'}");
    lqt_queue(ns, NULL,
              "{'type':'hold','id':'h-1','debit':'alice','credit':'shop','amount':80,"
              "'currency':'EUR'}");
    lqt_queue(ns, NULL,
              "{'id':'t-1','debit':'alice','credit':'bank','amount':30,"
              "'currency':'EUR'}");
    lqt_queue(ns, NULL, "{'type':'capture','id':'c-1','hold':'h-1','amount':50}");
    lqt_queue(ns, NULL, "{'type':'void','id':'v-1','hold':'h-1'}");
    lqt_queue(ns, NULL,
              "{'id':'t-2','debit':'alice','credit':'bank','amount':40,"
              "'currency':'EUR'}");
    lqt_queue(ns, NULL,
              "{'type':'hold','id':'r-h','debit':'alice','credit':'nobody','amount':1,"
              "'currency':'EUR'}");
    lqt_queue(ns, NULL, "{'type':'capture','id':'c-r','hold':'r-h'}");
    lqt_queue(ns, NULL,
              "{'type':'hold','id':'h-2','debit':'alice','credit':'shop','amount':10,"
              "'currency':'EUR','timeout_s':3600}");
    lqt_queue(ns, NULL, "{'type':'void','id':'v-2','hold':'h-2'}");
    lqt_queue(ns, NULL,
              "{'type':'hold','id':'h-3','debit':'bank','credit':'shop','amount':5,"
              "'currency':'EUR'}");
    lqt_queue(ns, NULL, "{'type':'capture','id':'c-1','hold':'h-1','amount':50}");
    lqt_confirm(ns);
    s.events = lqt_listen(ns);
    s.worker = lqt_worker_start(ns, env);
    s.awaited = 12;
    lqt_wait_events(s.events, s.awaited);

    first = lqt_event_of(&s, "fund-alice", 0);
    LQT_APPLIED(first, "fund-alice", "transfer");
    LQT_APPLIED(lqt_event_of(&s, "h-1", 0), "h-1", "hold");
    LQT_TRANSFER_REJECTED(
        lqt_event_of(&s, "t-1", 0), "t-1", "insufficient_funds",
        "leg 1: account \"alice\" has balance 100 (available 20), cannot be debited 30");
    expect_capture(lqt_event_of(&s, "c-1", 0), "c-1", "h-1", NULL, NULL, 50, false);
    expect_void(lqt_event_of(&s, "v-1", 0), "v-1", "h-1", "hold_already_captured", CAPTURED("h-1"),
                false);
    LQT_APPLIED(lqt_event_of(&s, "t-2", 0), "t-2", "transfer");
    HOLD_REJECTED(lqt_event_of(&s, "r-h", 0), "r-h", "account_not_found",
                  "leg 1: account \"nobody\" does not exist");
    expect_capture(lqt_event_of(&s, "c-r", 0), "c-r", "r-h", "hold_not_found", NOT_FOUND("r-h"), -1,
                   false);
    LQT_APPLIED(lqt_event_of(&s, "h-2", 0), "h-2", "hold");
    expect_void(lqt_event_of(&s, "v-2", 0), "v-2", "h-2", NULL, NULL, false);
    LQT_APPLIED(lqt_event_of(&s, "h-3", 0), "h-3", "hold");
    expect_capture(lqt_event_of(&s, "c-1", 1), "c-1", "h-1", NULL, NULL, 50, true);
    /* One batch: one transaction, one processed_at. */
    for (size_t i = 0; i < lqt_event_count(s.events); i++) {
        const lqt_event *e = lqt_event_at(s.events, i);
        ck_assert_msg(strcmp(e->processed_at, first->processed_at) == 0, "not one batch: %s",
                      e->body);
    }

    expect_account("alice", 10, 0, 0);
    expect_account("shop", 50, 0, 5);
    expect_account("bank", -60, 5, 0);
    expect_hold_shown("h-1", NULL, "captured", 1, &p);
    expect_hold_shown("h-2", NULL, "voided", 1, &p);
    ck_assert_msg(seconds_between(p.processed_at, p.expires_at) == 3600, "h-2: %s", p.raw);
    expect_hold_shown("h-3", NULL, "pending", 1, &p);
    expect_hold_shown("r-h", "account_not_found", NULL, 1, &p);
    expect_resolution_shown("c-1", "capture", "h-1", NULL, 1, &p);
    expect_leg(&p, 0, "alice", "shop", 50);
    expect_resolution_shown("v-1", "void", "h-1", "hold_already_captured", 0, &p);

    /* The histories: the applied commands in the order decided, nothing of the rejected ones. */
    lqt_history_all(ns, "alice", &h);
    for (size_t n = 0; alice_commands[n] || n + 1 < h.n; n++)
        ck_assert_msg(n + 1 < h.n && alice_commands[n] != NULL &&
                          strcmp(h.entries[n + 1].command, alice_commands[n]) == 0,
                      "alice's entry %zu is %s, expected %s", n + 2,
                      n + 1 < h.n ? h.entries[n + 1].command : "(none)",
                      alice_commands[n] ? alice_commands[n] : "(none)");
    lqt_history_release(&h);
    lqt_history_all(ns, "shop", &h);
    for (size_t n = 0; shop_commands[n] || n + 1 < h.n; n++)
        ck_assert_msg(n + 1 < h.n && shop_commands[n] != NULL &&
                          strcmp(h.entries[n + 1].command, shop_commands[n]) == 0,
                      "shop's entry %zu is %s, expected %s", n + 2,
                      n + 1 < h.n ? h.entries[n + 1].command : "(none)",
                      shop_commands[n] ? shop_commands[n] : "(none)");
    lqt_history_release(&h);
    ENTRY("alice", 4, "c-1", "capture", 1, -50, 50, 0, 0);
    ENTRY("shop", 3, "c-1", "capture", 1, 50, 50, 0, 0);
    ENTRY("shop", 6, "h-3", "hold", 1, 0, 50, 0, 5);

    lqt_session_finish(&s, 3);
}
END_TEST

/* ------------------------------------------------------------ the suite */

int main(void)
{
    const lqt_suite suite = {.name = "holds", .timeout_s = TIMEOUT_S, .ns = &ns};
    const lqt_case cases[] = {
        LQT_CASE("hold_applied", test_hold_applied),
        LQT_CASE("hold_rejections", test_hold_rejections),
        LQT_CASE("resolve_rejections", test_resolve_rejections),
        LQT_CASE("capture_single_leg", test_capture_single_leg),
        LQT_CASE("capture_multi_leg", test_capture_multi_leg),
        LQT_CASE("void", test_void),
        LQT_CASE("transfer_after_void", test_transfer_after_void),
        LQT_CASE("expiry", test_expiry),
        LQT_CASE("capture_past_expiry", test_capture_past_expiry),
        LQT_CASE("capture_wins_race", test_capture_wins_race),
        LQT_CASE("expiry_after_restart", test_expiry_after_restart),
        LQT_CASE("close_with_holds", test_close_with_holds),
        LQT_CASE("duplicates", test_duplicates),
        LQT_CASE("frozen_capture", test_frozen_capture),
        LQT_CASE("one_batch", test_one_batch),
    };

    return LQT_MAIN(suite, cases);
}
