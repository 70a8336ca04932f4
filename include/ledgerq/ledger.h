/*
 * The outcome rules of docs/protocol.md section 5, without a database.
 *
 * A batch of payments (in delivery order) is decided against a book: the
 * accounts its payments touch, as loaded (and locked) from the database.
 * Deciding is pure: it updates the book in memory and fills each item's
 * outcome; the db module then writes what was decided.
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
    bool allow_negative;
    int64_t debits;  /* total debited, >= 0 */
    int64_t credits; /* total credited, >= 0 */
    bool changed;    /* in a book: the batch changed the totals (not stored) */
} lq_account;

/* The balance of a: credits - debits (cannot overflow: both are >= 0). */
int64_t lq_account_balance(const lq_account *a);

/*
 * The accounts a batch touches, sorted by id (strcmp order).  Entries are
 * owned by the book.
 */
typedef struct lq_book {
    lq_account *accounts;
    size_t n;
    size_t cap;
} lq_book;

/*
 * Add a copy of a to the book, keeping it sorted.  Returns LQ_OK,
 * LQ_ERR_EXISTS when an account with that id is already there, or
 * LQ_ERR_NOMEM.
 */
int lq_book_add(lq_book *book, const lq_account *a);

/* The account with id, or NULL.  The pointer stays valid until the next add. */
lq_account *lq_book_find(const lq_book *book, const char *id);

/* Forget all accounts, keeping the allocation for reuse. */
void lq_book_clear(lq_book *book);

/* Release the book's memory. */
void lq_book_release(lq_book *book);

/* What happened to one payment command. */
typedef struct lq_outcome {
    int result;                 /* LQ_OK (applied) or an LQ_ERR_* of the rejected class */
    bool duplicate;             /* the id had been processed before (this batch or earlier) */
    char detail[LQ_DETAIL_MAX]; /* one line, empty when none */
    char processed_at[LQ_TIMESTAMP_MAX]; /* RFC 3339 UTC with microseconds */
} lq_outcome;

/*
 * Write o's "status", "reason" and "detail" keys and values
 * (docs/protocol.md section 6) into the object j is writing: reason and detail are null when
 * there is none.
 */
void lq_outcome_json(lq_json *j, const lq_outcome *o);

/* One payment of a batch. */
typedef struct lq_item {
    const lq_command *command; /* borrowed; outlives the item */

    /* Filled by the loader (db module) before deciding. */
    bool stored;      /* the database holds an outcome for this id */
    bool stored_same; /* ... and its content equals this payment's */
    /*
     * ... and the broker confirmed the result event of its first
     * processing (or a release that did not keep track of it stored it).
     */
    bool stored_published;
    int64_t stored_batch; /* the batch that stored it; 0 when not known */
    lq_outcome stored_outcome;

    /* Filled by lq_ledger_decide(). */
    lq_outcome outcome;
    bool insert; /* a first outcome: the db module stores it and its legs */
} lq_item;

/*
 * Decide each item in order, as docs/protocol.md section 5 says:
 *  - an id stored with the same content: the stored outcome, duplicate,
 *    unless its first event was never confirmed (stored_published false):
 *    then it is the first outcome again (duplicate false, the stored
 *    processed_at), for the first such item of the id in the batch;
 *  - an id stored with other content: idempotency_conflict, not stored,
 *    processed_at now;
 *  - an id seen earlier in this batch: likewise, against that first item;
 *  - otherwise the legs in order against the book (a later leg sees what
 *    earlier legs did); applied changes the book, rejected leaves it as it
 *    was.  These items get insert = true and processed_at now.
 *
 * The book must hold every existing account the batch names: an id that is
 * not in the book is an account that does not exist.  now is the RFC 3339
 * time of this processing.  Items are filled in place.
 */
void lq_ledger_decide(lq_item *items, size_t n, lq_book *book, const char *now);

/*
 * Decide one payment against the book (the legs rule only).  Returns LQ_OK
 * and applies the legs to the book, or a rejection code and writes one line
 * to detail (detail_len bytes) naming the leg, leaving the book unchanged.
 */
int lq_ledger_apply(lq_book *book, const lq_command *p, char *detail, size_t detail_len);

#endif
