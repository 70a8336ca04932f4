/*
 * What the message*.c files share: the strict JSON reader and the helpers
 * that take one field from a body.  Private to the message module
 * (src/message*.c), which is the only code that includes cJSON.h; nothing
 * outside src/message*.c includes this file.
 *
 *   message.c           the reader (UTF-8, tokens, exact number literals),
 *                       the envelope, the "type" that picks a family, the
 *                       field helpers below, peek and pretty
 *   message_transfer.c  the transfer: its fields, legs and canonical text;
 *                       the legs are shared with the hold
 *   message_hold.c      hold, capture and void: their fields and canonical
 *                       text
 *   message_account.c   account.open, account.update and `account import`
 *                       lines: their fields and canonical text
 *
 * Every helper that checks a value writes a one-line detail ("<prefix><name>:
 * <rule>") and returns LQ_ERR_INVALID_PAYMENT when the value breaks its rule;
 * LQ_ERR_NOMEM and LQ_ERR_INTERNAL get their detail from
 * lq_message_reader_finish().
 */
#ifndef LEDGERQ_MESSAGE_INTERNAL_H
#define LEDGERQ_MESSAGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "ledgerq/message.h"

#define LQ_SHOWN_MAX 40 /* most input bytes quoted in a detail line */
#define LQ_SHOWN_BUF (LQ_SHOWN_MAX * 4 + 4)

/* What the lexer learnt about a body. */
typedef struct lq_lexed {
    size_t *numbers; /* owned: offset of each number token, in document order */
    size_t n_numbers;
    size_t cap_numbers;
    bool nul_escape; /* a string holds \u0000 */
} lq_lexed;

/* One body being read: its tree, and what finding numbers' literal text needs. */
typedef struct lq_reader {
    const char *what; /* how details name the text: "body", "line" */
    const char *body; /* not owned; len bytes */
    size_t len;
    cJSON *root; /* owned; a JSON object once lq_message_read() succeeded */
    lq_lexed lexed;
    const cJSON **number_items; /* owned: the number items of root, in document order */
    size_t n_number_items;
    size_t next_number; /* where to start looking for the next number */
    char *detail;
    size_t detail_len;
} lq_reader;

/*
 * Read body (len bytes, not NUL-terminated; what names it in details:
 * "body", "line") into rd: strict UTF-8, no NUL byte, valid tokens, one
 * JSON value, no string holding \u0000, and an object.  Returns LQ_OK,
 * LQ_ERR_MALFORMED_JSON, LQ_ERR_INVALID_PAYMENT or LQ_ERR_NOMEM; whatever
 * it returns, rd is released with lq_message_reader_finish().  Clears
 * detail first.
 */
int lq_message_read(lq_reader *rd, const char *what, const char *body, size_t len, char *detail,
                    size_t detail_len);

/*
 * Release what rd owns.  When r is LQ_ERR_NOMEM or LQ_ERR_INTERNAL, write
 * the detail for it (the rules' own failures wrote theirs).  Returns r.
 */
int lq_message_reader_finish(lq_reader *rd, int r);

/* Write a detail line and return LQ_ERR_INVALID_PAYMENT. */
int lq_message_invalid(lq_reader *rd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Untrusted bytes made safe for a detail line: printable ASCII but \ and "
 * kept, anything else as \xNN, cut after LQ_SHOWN_MAX input bytes.  Returns
 * buf.
 */
const char *lq_message_shown(const char *s, size_t len, char buf[LQ_SHOWN_BUF]);

/*
 * Sort the members of object obj into found[] (n names), refusing unknown
 * and repeated names in document order ("<prefix><name>: unknown field",
 * "...: appears twice").  Names are compared exactly.
 */
int lq_message_collect_fields(lq_reader *rd, const cJSON *obj, const char *prefix,
                              const char *const *names, size_t n, const cJSON **found);

/*
 * An id (command or account) of 1 .. max characters of A-Z a-z 0-9 . _ : -
 * copied to out (max + 1 bytes); item NULL: "is required".
 */
int lq_message_take_ident(lq_reader *rd, const cJSON *item, const char *prefix, const char *name,
                          size_t max, char *out);

/*
 * An amount (docs/protocol.md section 4): 1 .. 2^53-1 as a JSON number,
 * 1 .. INT64_MAX as a digit string; item NULL: "is required".
 */
int lq_message_take_amount(lq_reader *rd, const cJSON *item, const char *prefix, const char *name,
                           int64_t *out);

/*
 * A limit: as an amount, but 0 is allowed too (a JSON number whose value
 * is 0, or the string "0").  item must not be NULL.
 */
int lq_message_take_limit(lq_reader *rd, const cJSON *item, const char *name, int64_t *out);

/*
 * A JSON integer literal (digits only: no sign, fraction or exponent) from
 * min to max, min at least 0; item must not be NULL.
 */
int lq_message_take_integer(lq_reader *rd, const cJSON *item, const char *name, int64_t min,
                            int64_t max, int64_t *out);

/* Three upper-case letters; item NULL: "is required". */
int lq_message_take_currency(lq_reader *rd, const cJSON *item, const char *prefix, char out[4]);

/* true or false.  item must not be NULL. */
int lq_message_take_bool(lq_reader *rd, const cJSON *item, const char *name, bool *out);

/*
 * A string of at most max bytes, copied to *out (caller frees); nothing
 * when item is NULL.
 */
int lq_message_take_text(lq_reader *rd, const cJSON *item, const char *name, size_t max,
                         char **out);

/*
 * A JSON object of at most LQ_METADATA_MAX bytes once printed compactly,
 * printed to *out (caller frees); nothing when item is NULL.
 */
int lq_message_take_metadata(lq_reader *rd, const cJSON *item, char **out);

/* Whether s is 1 .. max characters of A-Z a-z 0-9 . _ : - */
bool lq_message_ident_valid(const char *s, size_t max);

/* A leg's members, in the order they are checked. */
enum { LQ_LEG_DEBIT, LQ_LEG_CREDIT, LQ_LEG_AMOUNT, LQ_LEG_CURRENCY, LQ_LEG_COUNT };

/*
 * The legs of a transfer or a hold, in either form of docs/protocol.md
 * section 4.3: single[] holds the top-level debit, credit, amount and
 * currency items (LQ_LEG_* order, NULL when absent), legs the "legs" item
 * (NULL when absent).  Checks the form, then each leg in order (debit,
 * credit, debit different from credit, amount, currency).  Fills c->legs
 * and c->n_legs; c owns c->legs even when this fails.
 */
int lq_message_take_legs(lq_reader *rd, const cJSON *const single[LQ_LEG_COUNT], const cJSON *legs,
                         lq_command *c);

/*
 * The families.  Each takes the fields of c->type from rd's object (its
 * "type", if any, already checked) into c, or says which rule the body
 * breaks.
 */
int lq_message_take_transfer(lq_reader *rd, lq_command *c);
int lq_message_take_account(lq_reader *rd, lq_command *c); /* account.open, account.update */
int lq_message_take_hold(lq_reader *rd, lq_command *c);    /* hold, capture, void */

/*
 * The canonical text of a command of the family from its fields, into *ret
 * (caller frees).  Returns LQ_OK, LQ_ERR_NOMEM or LQ_ERR_INTERNAL.
 */
int lq_message_transfer_canonical(const lq_command *c, char **ret);
int lq_message_account_canonical(const lq_command *c, char **ret);
int lq_message_hold_canonical(const lq_command *c, char **ret); /* hold, capture, void */

/*
 * Canonical texts are written with these into s (cap bytes) after its
 * first n bytes; each returns the new length, cap or more once the text no
 * longer fits (and then writes nothing more), so a caller checks only at
 * the end.
 */
size_t lq_message_add(char *s, size_t cap, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "|r<bytes>:<text>", or "|-" when text is NULL: last in a text, so text may hold anything. */
size_t lq_message_add_text(char *s, size_t cap, size_t n, const char *text);

/* "|<n_legs>|<debit>,<credit>,<amount>,<currency>|..." for each of c's legs. */
size_t lq_message_add_legs(char *s, size_t cap, size_t n, const lq_command *c);

/* Most bytes lq_message_add_legs() writes for one leg. */
#define LQ_LEG_TEXT_MAX (2 * LQ_ACCOUNT_ID_MAX + 28)

#endif
