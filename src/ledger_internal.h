/*
 * What the files of the ledger module share: the undo log that ledger.c
 * keeps for each command, the history entries it appends, the floor and
 * ceiling tests, the leg checks of transfers and holds, and the rules of
 * each command type (ledger_transfer.c, ledger_hold.c, ledger_account.c),
 * which lq_ledger_apply() dispatches to.
 */
#ifndef LEDGERQ_LEDGER_INTERNAL_H
#define LEDGERQ_LEDGER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledgerq/ledger.h"
#include "ledgerq/message.h"

/* The most accounts one command can touch: both sides of every leg. */
#define LQ_UNDO_MAX (2 * LQ_LEGS_MAX)

/*
 * How the book was before one command: each account it touched (a whole
 * copy, the first time it was touched: totals, settings, held amounts,
 * entry counter, changed mark), the number of entries, the account it
 * added, if any, the hold it changed (a copy, legs shared: they never
 * change), if any, and the hold it added, if any.  No command touches
 * more than one hold.  No copy of the book per command.
 */
typedef struct lq_undo {
    lq_book *book;
    size_t n_entries;
    size_t n_saved;
    lq_account saved[LQ_UNDO_MAX];
    bool added;
    char added_id[LQ_ACCOUNT_ID_MAX + 1];
    bool hold_saved;
    lq_hold saved_hold;
    bool hold_added;
    char hold_added_id[LQ_ID_MAX + 1];
} lq_undo;

/* Start an undo log of book as it is now. */
void lq_ledger_undo_begin(lq_undo *undo, lq_book *book);

/*
 * Put the book back as it was at lq_ledger_undo_begin(): entries dropped,
 * accounts and the hold restored, an added account or hold removed (the
 * hold's legs freed).
 */
void lq_ledger_undo_rollback(lq_undo *undo);

/*
 * Keep a copy of a as it is now, unless the undo log has one already.
 * Call it before changing a.  Returns LQ_OK, or LQ_ERR_INTERNAL when the
 * log is full (a command touching more accounts than it can name).
 */
int lq_ledger_undo_save(lq_undo *undo, const lq_account *a);

/* Note that the command added the account id to the book: a rollback removes it. */
void lq_ledger_undo_added(lq_undo *undo, const char *id);

/*
 * Keep a copy of h as it is now, unless the undo log has one already.
 * Call it before changing h.  Returns LQ_OK, or LQ_ERR_INTERNAL when the
 * log holds another hold already.
 */
int lq_ledger_undo_save_hold(lq_undo *undo, const lq_hold *h);

/* Note that the command added the hold id to the book: a rollback removes it and frees its legs. */
void lq_ledger_undo_added_hold(lq_undo *undo, const char *id);

/*
 * Make room for extra more entries, so that the appends of one command
 * cannot fail half way.  Returns LQ_OK or LQ_ERR_NOMEM.
 */
int lq_ledger_reserve_entries(lq_book *book, size_t extra);

/*
 * Append the history entry of a change just made to a (in the book):
 * seq is a's entry counter plus one (the counter is incremented), the
 * running values are a's current ones.  command is borrowed (the
 * command's id), type static.  change is consumed either way: owned by the
 * entry on success, freed on failure.  Returns LQ_OK, LQ_ERR_NOMEM, or
 * LQ_ERR_INTERNAL when the counter is at its end.
 */
int lq_ledger_append_entry(lq_book *book, lq_account *a, const char *command, const char *type,
                           int leg, int64_t amount, char *change);

/*
 * Whether a balance of available, once debited debit (>= 0), lies below
 * the floor those settings give: none with allow_negative, else minus
 * overdraft_limit.  A result below the 64-bit range is below any floor.
 */
bool lq_ledger_below_floor(int64_t available, int64_t debit, bool allow_negative,
                           int64_t overdraft_limit);

/*
 * Whether balance plus held_credits plus credit (both >= 0) lies above
 * max_balance (0: no ceiling).  A sum past the 64-bit range is above any
 * ceiling.
 */
bool lq_ledger_above_ceiling(int64_t balance, int64_t held_credits, int64_t credit,
                             int64_t max_balance);

/*
 * What lq_command_parse() guarantees of a command's legs (docs/protocol.md
 * section 4): 1 to LQ_LEGS_MAX legs, positive amounts, two different
 * accounts.  Anything else is a bug of the caller, refused with
 * LQ_ERR_INTERNAL (detail written) before anything is touched.
 */
int lq_ledger_check_legs_shape(const lq_command *c, char *detail, size_t detail_len);

/*
 * Check one leg (number n, from 1) of a transfer or a hold against the
 * book as earlier legs left it, in the order of docs/protocol.md section
 * 13: account_not_found, account_closed, currency_mismatch, account_frozen,
 * insufficient_funds, exceeds_max_balance, amount_overflow.  The last one
 * counts the held totals: the debited account's debits plus held debits
 * plus the amount, then the credited account's credits plus held credits
 * plus the amount, must fit, so that the capture of every pending hold can
 * still be posted.  On LQ_OK stores the two accounts in *ret_debit and
 * *ret_credit; otherwise writes detail.
 */
int lq_ledger_check_leg(const lq_book *book, const lq_leg *leg, size_t n, lq_account **ret_debit,
                        lq_account **ret_credit, char *detail, size_t detail_len);

/*
 * The rules of each command type, as lq_ledger_apply() describes them.
 * They save every account they change in undo (and note an account they
 * add) before changing it; on failure lq_ledger_apply() rolls back, so
 * they may return half way.  detail is never NULL.
 */
/*
 * Check c's legs in order (lq_ledger_check_leg()), each against the book as
 * the earlier legs left it, and take each into the book: posted (a
 * transfer: the totals, an entry of the signed amount on each account) or
 * held (hold: the held amounts, an entry of amount 0 on each).  Saves each
 * account in undo before changing it; may return half way (the caller rolls
 * back).  Returns LQ_OK or what lq_ledger_check_leg() rejected.
 */
int lq_ledger_take_legs(lq_book *book, const lq_command *c, bool hold, lq_undo *undo, char *detail,
                        size_t detail_len);

int lq_ledger_apply_transfer(lq_book *book, const lq_command *c, lq_undo *undo, char *detail,
                             size_t detail_len);
int lq_ledger_apply_account_open(lq_book *book, const lq_command *c, lq_undo *undo, char *detail,
                                 size_t detail_len);
int lq_ledger_apply_account_update(lq_book *book, const lq_command *c, lq_undo *undo, char *detail,
                                   size_t detail_len);
int lq_ledger_apply_hold(lq_book *book, const lq_command *c, lq_undo *undo, char *detail,
                         size_t detail_len);
int lq_ledger_apply_capture(lq_book *book, const lq_command *c, lq_undo *undo, char *detail,
                            size_t detail_len);
int lq_ledger_apply_void(lq_book *book, const lq_command *c, lq_undo *undo, char *detail,
                         size_t detail_len);

#endif
