/*
 * One worker, one command at a time: the helpers of the suites that publish
 * a command, wait for its result event and check what a user sees of it
 * (the commands and holds suites).
 *
 * A session is a worker and a listener bound before it starts; it counts
 * the events awaited, so that its end can check that no stray event came.
 * Command bodies are written with ' for " (lqt_command()), which keeps the
 * JSON readable in C strings: no body needs a ' of its own.
 *
 * Every helper fails the test (Check's ck_assert) with a message naming
 * what was expected and what came.
 */
#ifndef LEDGERQ_TESTS_SESSION_H
#define LEDGERQ_TESTS_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "support.h"

/* A worker, and a listener that counts the events awaited so far. */
typedef struct lqt_session {
    lqt_ns *ns;
    lqt_worker *worker;
    lqt_listener *events;
    size_t awaited;
} lqt_session;

/* Listen to ns's results, then start a worker with its default settings. */
void lqt_session_start(lqt_session *s, lqt_ns *ns);

/*
 * The end of every case: no stray event, the worker stops cleanly, audit
 * passes, and every account's history is whole (n_accounts of them,
 * lqt_expect_histories_consistent()).
 */
void lqt_session_finish(lqt_session *s, size_t n_accounts);

/* `ledgerq audit` passes. */
void lqt_expect_audit_ok(lqt_ns *ns);

/* ------------------------------------------------------------ commands */

/*
 * Publish a command (' for ") on routing_key (NULL: "payment.submitted")
 * and wait for the one event it brings; returns that event (the listener
 * owns it).
 */
const lqt_event *lqt_command(lqt_session *s, const char *routing_key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Publish a command (' for ") without waiting for its confirm (lqt_confirm()) or its event. */
void lqt_queue(lqt_ns *ns, const char *routing_key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The nth (0-based) event of id, which must have come. */
const lqt_event *lqt_event_of(const lqt_session *s, const char *id, size_t nth);

/*
 * e is the event of command id of type: status, reason and detail (NULL:
 * null, as when applied), duplicate; routing key <family>.<status>, the
 * family of type (transfer: payment, account.*: account, hold, capture,
 * void) and not of the routing key the command came with; correlation_id
 * id; persistent JSON.  The event of a capture or void must name its hold
 * (lqt_expect_resolution() checks which).
 */
void lqt_expect_event(const lqt_event *e, const char *id, const char *type, const char *status,
                      const char *reason, const char *detail, bool duplicate);

#define LQT_APPLIED(e, id, type) lqt_expect_event((e), (id), (type), "applied", NULL, NULL, false)
#define LQT_REJECTED(e, id, type, reason, detail)                                                  \
    lqt_expect_event((e), (id), (type), "rejected", (reason), (detail), false)
#define LQT_TRANSFER_REJECTED(e, id, reason, detail)                                               \
    LQT_REJECTED((e), (id), "transfer", (reason), (detail))

/*
 * e, the event of a capture or void, names hold; a capture's event carries
 * amount (-1: null, as for a rejected capture or a hold of several legs).
 */
void lqt_expect_resolution(const lqt_event *e, const char *hold, int64_t amount);

/*
 * Open account in currency by the account.open command id, with the members
 * extra (NULL: none; ",'max_balance':5" ...); it must be applied.
 */
const lqt_event *lqt_open_account(lqt_session *s, const char *id, const char *account,
                                  const char *currency, const char *extra);

/* Update account by an account.update command id with fields (JSON members, ' for "). */
const lqt_event *lqt_update_account(lqt_session *s, const char *id, const char *account,
                                    const char *fields);

/* A single-leg transfer in currency. */
const lqt_event *lqt_transfer(lqt_session *s, const char *id, const char *debit, const char *credit,
                              int64_t amount, const char *currency);

/* A transfer in EUR that must be applied. */
void lqt_transfer_ok(lqt_session *s, const char *id, const char *debit, const char *credit,
                     int64_t amount);

/* ------------------------------------------------------------ what users see */

/*
 * A JSON object (text) has exactly the members given as pairs of key and
 * compact JSON value (NULL-terminated), in any order.
 */
void lqt_expect_object(const char *json, const char *what, const char *const *pairs);

#define LQT_EXPECT_OBJECT(json, what, ...)                                                         \
    lqt_expect_object((json), (what), (const char *const[]){__VA_ARGS__, NULL})

/* How many entries account's history holds. */
size_t lqt_n_entries(lqt_ns *ns, const char *account);

/*
 * Entry seq of account is what command made: its type, leg (0: null),
 * amount, the balance and held amounts after it; change (NULL: none) the
 * JSON object it must carry, as pairs.  Returns the entry.
 */
lqt_entry lqt_expect_entry(lqt_ns *ns, const char *account, int64_t seq, const char *command,
                           const char *type, int leg, int64_t amount, int64_t balance,
                           int64_t held_debits, int64_t held_credits, const char *const *change);

/* An entry of an account that holds nothing. */
#define LQT_EXPECT_ENTRY(ns, account, seq, command, type, leg, amount, balance)                    \
    lqt_expect_entry((ns), (account), (seq), (command), (type), (leg), (amount), (balance), 0, 0,  \
                     NULL)
/* An account.update entry of an account that holds nothing, with its change as pairs. */
#define LQT_EXPECT_UPDATE_ENTRY(ns, account, seq, command, balance, ...)                           \
    lqt_expect_entry((ns), (account), (seq), (command), "account.update", 0, 0, (balance), 0, 0,   \
                     (const char *const[]){__VA_ARGS__, NULL})

/*
 * What the ledger shows of itself: `account list --json` and every
 * account's whole history, as printed.  Caller frees.
 */
char *lqt_ledger_snapshot(lqt_ns *ns);

/* Nothing the ledger shows changed since before (an lqt_ledger_snapshot(), freed here). */
void lqt_expect_unchanged(lqt_ns *ns, char *before, const char *what);

/* `payment show ID --json` must exit 0; ret as lqt_payment_show() fills it. */
void lqt_payment_ok(lqt_ns *ns, const char *id, lqt_payment *ret);

/* `account show ID --json` exits 1: no such account. */
void lqt_expect_no_account(lqt_ns *ns, const char *id);

#endif
