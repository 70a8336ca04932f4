/*
 * The outcome rules of docs/protocol.md sections 5, 13 and 14, without a
 * database.
 *
 * A batch of commands (in delivery order) is decided against a book: the
 * accounts and holds its commands name, as loaded (and locked) from the
 * database.  Deciding is pure: it updates the book in memory (totals, held
 * amounts, settings, new accounts, placed and resolved holds), appends the
 * history entries each change makes (docs/protocol.md section 15), and
 * fills each item's outcome; the db module then writes what was decided.
 *
 * ledger.c holds the book, the batch loop (idempotency) and the undo log;
 * ledger_transfer.c the leg checks of transfers (and holds);
 * ledger_hold.c the rules of hold, capture, void and expiry;
 * ledger_account.c the rules of account.open and account.update.
 */
#ifndef LEDGERQ_LEDGER_H
#define LEDGERQ_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledgerq/json.h"
#include "ledgerq/message.h"

#define LQ_TIMESTAMP_MAX 40 /* "2026-11-22T10:00:00.123456Z" with room */

typedef struct lq_account {
    char id[LQ_ACCOUNT_ID_MAX + 1];
    char currency[4];
    lq_account_status status;
    bool allow_negative;     /* no floor at all */
    int64_t overdraft_limit; /* the floor is minus this (0 .. INT64_MAX); 0 with allow_negative */
    int64_t max_balance;     /* the ceiling, 1 .. INT64_MAX; 0: none */
    int64_t debits;          /* total debited, >= 0 */
    int64_t credits;         /* total credited, >= 0 */
    int64_t held_debits;     /* held by pending holds (docs/protocol.md section 14), >= 0 */
    int64_t held_credits;
    int64_t entries;                   /* history entries so far: the seq of the last one */
    char created_at[LQ_TIMESTAMP_MAX]; /* as loaded; "" for an account the batch opens */
    /* In a book (not stored): */
    bool changed;          /* the batch changed it: the db module writes it back */
    bool settings_changed; /* its status or limits too (account.update), not only totals */
    bool opened;           /* the batch opened it: the db module inserts it */
} lq_account;

/* The balance of a: credits - debits (cannot overflow: both are >= 0). */
int64_t lq_account_balance(const lq_account *a);

/*
 * The available balance: the balance minus held debits, or INT64_MIN when
 * that would leave the 64-bit range (it is then below any floor).
 */
int64_t lq_account_available(const lq_account *a);

/*
 * One entry of an account's history (docs/protocol.md section 15), as a
 * decision makes it.  The db module stores it with the time of the store.
 * An applied transfer makes two a leg, in leg order: the debited account's
 * (amount < 0) then the credited account's; a hold, a capture, a void and
 * an expiry likewise (a capture's amounts are what it posted, the others'
 * 0); account.open and account.update one each (amount 0).
 */
typedef struct lq_entry {
    char account[LQ_ACCOUNT_ID_MAX + 1];
    int64_t seq; /* 1, 2, 3, ... per account, without gaps */
    /*
     * Borrowed: the id of the command that made it (valid while that
     * command lives); for an expiry, the hold's id in the book (valid until
     * the book's holds change: the next hold added, applied or cleared).
     */
    const char *command;
    const char *type; /* static: "transfer", "hold", "capture", "account.open", ... */
    int leg;          /* the leg's number, from 1; 0 for account entries */
    int64_t amount;   /* the signed change to the balance: credit > 0, debit < 0 */
    int64_t balance, held_debits, held_credits; /* just after it */
    /* Owned: the JSON object of the fields an account.update set (and its reason); else NULL. */
    char *change;
} lq_entry;

/* Where a hold stands (docs/protocol.md section 14): pending, or resolved once and for all. */
typedef enum lq_hold_status {
    LQ_HOLD_PENDING = 0,
    LQ_HOLD_CAPTURED,
    LQ_HOLD_VOIDED,
    LQ_HOLD_EXPIRED,
} lq_hold_status;

/* "pending", "captured", "voided", "expired" ("unknown" for none).  Static storage. */
const char *lq_hold_status_name(lq_hold_status s);

/* The status named name, exactly; false when name is NULL or none, and then *ret is untouched. */
bool lq_hold_status_parse(const char *name, lq_hold_status *ret);

/*
 * A hold a batch names: loaded (and locked) from the database for the
 * captures and voids that name it, placed by a hold command of the batch,
 * or picked by an expiry sweep.
 */
typedef struct lq_hold {
    char id[LQ_ID_MAX + 1]; /* the hold command's id */
    lq_hold_status status;
    /* As loaded: its expiry time is not after the batch's now (the database's clock). */
    bool past_expiry;
    size_t n_legs;     /* 1 .. LQ_LEGS_MAX */
    lq_leg *legs;      /* owned: the legs it holds, as the hold command gave them */
    int64_t timeout_s; /* placed by the batch: the command's timeout_s (0: never expires) */
    /* Set by the decision that resolved it (in a book, not stored as such): */
    const char *resolved_by; /* borrowed: the capture's or void's id; NULL for an expiry */
    /* Captured: the sum it posted over its legs (INT64_MAX if that sum leaves the range). */
    int64_t captured;
    bool placed;  /* the batch placed it: the db module inserts it */
    bool changed; /* the batch resolved it: the db module updates it */
} lq_hold;

/*
 * The accounts a batch touches, sorted by id (strcmp order), the holds it
 * names, sorted by id too, and the history entries its decisions made, in
 * the order they were made.  Everything is owned by the book.
 */
typedef struct lq_book {
    lq_account *accounts;
    size_t n;
    size_t cap;
    lq_hold *holds;
    size_t n_holds;
    size_t cap_holds;
    lq_entry *entries;
    size_t n_entries;
    size_t cap_entries;
} lq_book;

/*
 * Add a copy of a to the book, keeping it sorted.  Returns LQ_OK,
 * LQ_ERR_EXISTS when an account with that id is already there, or
 * LQ_ERR_NOMEM.  Pointers to the book's accounts are invalid afterwards.
 */
int lq_book_add(lq_book *book, const lq_account *a);

/* The account with id, or NULL.  The pointer stays valid until the next add. */
lq_account *lq_book_find(const lq_book *book, const char *id);

/*
 * Add a copy of h to the book, keeping the holds sorted; the book takes
 * h->legs (on success only; it frees them with free()).  Returns LQ_OK,
 * LQ_ERR_EXISTS when a hold with that id is already there, or
 * LQ_ERR_NOMEM.  Pointers to the book's holds (and expiry entries'
 * commands) are invalid afterwards.
 */
int lq_book_add_hold(lq_book *book, const lq_hold *h);

/* The hold with id, or NULL.  The pointer stays valid until the next add. */
lq_hold *lq_book_find_hold(const lq_book *book, const char *id);

/*
 * Forget all accounts, holds and entries (freeing the holds' legs and the
 * entries' change texts), keeping the arrays for reuse.
 */
void lq_book_clear(lq_book *book);

/* Release the book's memory, entries' change texts included.  Accepts NULL. */
void lq_book_release(lq_book *book);

/* What happened to one command. */
typedef struct lq_outcome {
    int result;                 /* LQ_OK (applied) or an LQ_ERR_* of the rejected class */
    bool duplicate;             /* the id had been processed before (this batch or earlier) */
    char detail[LQ_DETAIL_MAX]; /* one line, empty when none */
    char processed_at[LQ_TIMESTAMP_MAX]; /* RFC 3339 UTC with microseconds */
    /* An applied capture of a single-leg hold: the amount it posted; else 0 (the event's null). */
    int64_t amount;
} lq_outcome;

/*
 * Write o's "status", "reason" and "detail" keys and values
 * (docs/protocol.md section 6) into the object j is writing: reason and detail are null when
 * there is none.
 */
void lq_outcome_json(lq_json *j, const lq_outcome *o);

/* One command of a batch. */
typedef struct lq_item {
    const lq_command *command; /* borrowed; outlives the item */

    /* Filled by the loader (db module) before deciding. */
    bool stored;      /* the database holds an outcome for this id */
    bool stored_same; /* ... and its content equals this command's */
    /*
     * ... and the broker confirmed the result event of its first
     * processing (or a release that did not keep track of it stored it).
     */
    bool stored_published;
    int64_t stored_batch; /* the batch that stored it; 0 when not known */
    lq_outcome stored_outcome;

    /* Filled by lq_ledger_decide(). */
    lq_outcome outcome;
    bool insert; /* a first outcome: the db module stores it (and its legs) */
} lq_item;

/*
 * Decide each item in order, as docs/protocol.md sections 5, 12 and 13 say:
 *  - an id stored with the same content: the stored outcome, duplicate,
 *    unless its first event was never confirmed (stored_published false):
 *    then it is the first outcome again (duplicate false, the stored
 *    processed_at), for the first such item of the id in the batch;
 *  - an id stored with other content (another type included):
 *    idempotency_conflict, not stored, processed_at now;
 *  - an id seen earlier in this batch: likewise, against that first item;
 *  - otherwise the command's rules against the book (lq_ledger_apply()):
 *    applied changes the book and appends its history entries, rejected
 *    leaves both as they were.  These items get insert = true and
 *    processed_at now;
 *  - except when lq_ledger_apply() fails with LQ_ERR_NOMEM or
 *    LQ_ERR_INTERNAL: the item gets that result and insert = false, the book
 *    is as it was before it, and later items are still decided.  Such a
 *    result is no outcome of the command: the worker must fail the whole
 *    batch (store nothing, publish nothing) rather than publish it.
 *
 * The book must hold every existing account the batch names (a transfer's
 * or a hold's legs, an account command's account), and every hold its
 * captures and voids name that was applied before, with the accounts of
 * its legs: an id that is not in the book is an account that does not
 * exist, or a hold that was never applied.  An applied capture of a
 * single-leg hold gets the amount it posted in its outcome.  now is the RFC 3339 time of this
 * processing.  Items are filled in place.
 */
void lq_ledger_decide(lq_item *items, size_t n, lq_book *book, const char *now);

/*
 * Decide one command against the book by the rules of its type
 * (docs/protocol.md sections 5, 13 and 14).  Returns LQ_OK, having applied
 * it to the book (totals, held amounts, settings, an opened account, each
 * marked changed or opened; a hold placed or resolved, marked placed or
 * changed) and appended its history entries (seq continuing each
 * account's entries counter); or a rejection code (or LQ_ERR_INTERNAL for
 * a command its parser would not have made), having written one line to
 * detail (detail_len bytes; NULL or 0: no detail) that names what failed
 * and the numbers that decided it, and left the book and its entries
 * exactly as they were.  LQ_ERR_NOMEM leaves them as they were too.
 *
 * A transfer's legs are checked in order, each against the book as the
 * earlier legs left it (the first failing leg decides), and within a leg
 * in the order of section 13: account_not_found, account_closed (either
 * account), currency_mismatch, account_frozen (the debited account),
 * insufficient_funds (available balance against the floor),
 * exceeds_max_balance (balance plus held credits against the ceiling),
 * amount_overflow (the debited account's debits, then the credited
 * account's credits, each with its held amounts: every pending hold must
 * stay capturable).  An account.open is rejected with account_exists;
 * an account.update with, in order, account_not_found, account_closed,
 * account_not_empty and account_has_holds (closing), and
 * balance_outside_limits (new limits).
 *
 * A hold is checked as a transfer (amount_overflow also covers the held
 * totals); applied, it posts nothing: each leg adds to the debited
 * account's held debits and the credited account's held credits, with a
 * "hold" entry (amount 0) on each, and the hold joins the book, placed and
 * pending, with the command's timeout_s and a copy of its legs.  A capture
 * or void is rejected with, in order, hold_not_found, hold_already_captured,
 * hold_already_voided, hold_expired (expired, or past its expiry), and for
 * a capture exceeds_hold_amount (single leg) or
 * partial_capture_not_supported (several legs, an amount given); frozen
 * accounts do not stop them.  Applied, it releases every held amount of
 * the hold; a capture also posts its legs (a single leg: the amount asked,
 * or all of it), each leg making a "capture" entry on both accounts with
 * the amount posted; a void makes a "void" entry (amount 0) per leg on
 * both accounts.  The entries' held values show the release of the whole
 * hold.  The hold becomes captured or voided and changed, resolved_by the
 * command's id (borrowed), captured the sum posted.  A hold whose accounts
 * are not all in the book, or whose release or capture the totals cannot
 * take, is LQ_ERR_INTERNAL.
 */
int lq_ledger_apply(lq_book *book, const lq_command *c, char *detail, size_t detail_len);

/*
 * Release the pending hold id of the book at its expiry (docs/protocol.md
 * section 14): the held amounts of its legs go back, each account its
 * legs name gets an "expiry" entry per leg (amount 0; command: the hold's
 * id in the book, see lq_entry), and the hold becomes expired and changed
 * (resolved_by NULL).  Its accounts must be in the book; whether it is
 * past its expiry is the caller's business.  Returns LQ_OK;
 * LQ_ERR_NOT_FOUND (no such hold in the book), LQ_ERR_INTERNAL (it is not
 * pending, an account is missing, or a held amount would go below 0) or
 * LQ_ERR_NOMEM, having changed nothing.
 */
int lq_ledger_expire(lq_book *book, const char *id);

#endif
