/*
 * Commands: parse and validate a message body into a plain C struct
 * (docs/protocol.md sections 4, 12, 13 and 14).  The only module that
 * includes cJSON.h.
 *
 * message.c holds the strict JSON reader and the envelope (size, content
 * type, the "type" field that picks a command family); each family's field
 * rules live together: message_transfer.c (transfers), message_hold.c
 * (hold, capture, void), message_account.c (account.open, account.update,
 * and the lines of `account import`).
 */
#ifndef LEDGERQ_MESSAGE_H
#define LEDGERQ_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LQ_BODY_MAX        65536                       /* largest message body, bytes */
#define LQ_ID_MAX          128                         /* longest payment id */
#define LQ_ACCOUNT_ID_MAX  64                          /* longest account id */
#define LQ_LEGS_MAX        64                          /* most legs of one payment */
#define LQ_REFERENCE_MAX   256                         /* longest reference, bytes */
#define LQ_METADATA_MAX    4096                        /* longest serialized metadata, bytes */
#define LQ_AMOUNT_JSON_MAX ((int64_t)9007199254740991) /* 2^53 - 1 */
#define LQ_DETAIL_MAX      256 /* room for a one-line error detail, with NUL */

typedef struct lq_leg {
    char debit[LQ_ACCOUNT_ID_MAX + 1];
    char credit[LQ_ACCOUNT_ID_MAX + 1];
    int64_t amount; /* minor units, 1 .. INT64_MAX */
    char currency[4];
} lq_leg;

#define LQ_REASON_MAX  256      /* longest account.update reason, bytes */
#define LQ_TIMEOUT_MAX 31536000 /* longest hold timeout_s: 365 days */

/* What a command is: its "type" (docs/protocol.md section 12). */
typedef enum lq_command_type {
    LQ_CMD_TRANSFER = 0, /* "transfer", or no "type" at all */
    LQ_CMD_ACCOUNT_OPEN,
    LQ_CMD_ACCOUNT_UPDATE,
    LQ_CMD_HOLD,    /* reserve a transfer's legs for a later capture or void (section 14) */
    LQ_CMD_CAPTURE, /* post all or part of a hold */
    LQ_CMD_VOID,    /* release a hold */
} lq_command_type;

/*
 * The wire name of t: "transfer", "account.open", "account.update", "hold",
 * "capture", "void" ("unknown" for a value that is no type).  Static storage.
 */
const char *lq_command_type_name(lq_command_type t);

/*
 * The first word of t's result routing keys: "payment" (transfers),
 * "account", "hold", "capture" or "void".  Static storage.
 */
const char *lq_command_family(lq_command_type t);

/*
 * The type named name (a wire name, exactly: "Transfer" is none); false
 * when name is NULL or none, and then *ret is untouched.
 */
bool lq_command_type_parse(const char *name, lq_command_type *ret);

typedef enum lq_account_status {
    LQ_STATUS_ACTIVE = 0,
    LQ_STATUS_FROZEN, /* legs that debit it are rejected; credits still apply */
    LQ_STATUS_CLOSED, /* final: every leg that names it is rejected, it never changes again */
} lq_account_status;

/* "active", "frozen", "closed" ("unknown" for a value that is none).  Static storage. */
const char *lq_account_status_name(lq_account_status s);

/* The status named name, exactly; false when name is NULL or none, and then *ret is untouched. */
bool lq_account_status_parse(const char *name, lq_account_status *ret);

/*
 * What an account.open or account.update command says (docs/protocol.md
 * section 13), or a line of `account import`, or the CLI's flags.  A
 * set_* flag tells that the command gave the field.  For account.open the
 * fields not given keep their defaults: allow_negative false, overdraft
 * limit 0, no ceiling.
 */
typedef struct lq_account_change {
    char account[LQ_ACCOUNT_ID_MAX + 1];
    char currency[4]; /* account.open: three upper-case letters; "" for updates */
    bool set_status;  /* account.update only */
    lq_account_status status;
    bool set_allow_negative;
    bool allow_negative; /* true: no floor at all; never with set_overdraft_limit */
    bool set_overdraft_limit;
    int64_t overdraft_limit; /* 0 .. INT64_MAX: the balance may go down to minus this */
    bool set_max_balance;
    int64_t max_balance; /* 1 .. INT64_MAX, or 0: no ceiling (account.update's null) */
    char *reason;        /* owned; account.update only, at most LQ_REASON_MAX bytes; NULL: none */
} lq_account_change;

/*
 * A command, valid by the rules of its type.  The fields of the other
 * types are zero.
 */
typedef struct lq_command {
    lq_command_type type;
    char id[LQ_ID_MAX + 1];
    /* LQ_CMD_TRANSFER, LQ_CMD_HOLD */
    size_t n_legs; /* 1 .. LQ_LEGS_MAX; the single-leg form gives 1 */
    lq_leg *legs;  /* owned, n_legs entries */
    /* LQ_CMD_HOLD: 1 .. LQ_TIMEOUT_MAX seconds after it is applied, it expires; 0: never */
    int64_t timeout_s;
    /* LQ_CMD_CAPTURE, LQ_CMD_VOID: the id of the hold they resolve */
    char hold[LQ_ID_MAX + 1];
    /* LQ_CMD_CAPTURE: 1 .. INT64_MAX, or 0: absent (the full held amount) */
    int64_t amount;
    /* Every type but the account ones */
    char *reference; /* owned; NULL when absent */
    /* LQ_CMD_ACCOUNT_OPEN, LQ_CMD_ACCOUNT_UPDATE */
    lq_account_change change;
    /* Every type */
    char *metadata; /* owned; the object serialized compactly, NULL when absent */
    /*
     * Owned; the content that makes two commands with the same id "the
     * same" (every field but metadata, by value, the type included): both
     * forms of a transfer and either spelling of an amount give the same
     * text.  A transfer's text is the same as release 0.2.0 made it, so
     * that outcomes stored then still match.  Never empty.
     */
    char *canonical;
} lq_command;

/*
 * Fill c->canonical from c's fields (a command built by the CLI rather than
 * parsed; lq_command_parse() calls it too, so the same content gives the
 * same text either way).  It does not check the rules: the fields must be
 * valid for c->type.  An account.open's text reads the values only (a
 * field not given is its default), an account.update's the set_* flags
 * and the values they cover, and c->change.reason.  Returns LQ_OK,
 * LQ_ERR_NOMEM, or LQ_ERR_INTERNAL when c->type is none of the types; a
 * canonical text already there is replaced only on success.
 */
int lq_command_canonicalize(lq_command *c);

/*
 * Check what can be checked before parsing: the content type (NULL or
 * "application/json", case-insensitive, parameters such as
 * "; charset=utf-8" allowed) and the body size.
 *
 * Returns LQ_OK, LQ_ERR_UNSUPPORTED_CONTENT_TYPE or
 * LQ_ERR_PAYLOAD_TOO_LARGE, and then writes a one-line explanation to
 * detail (detail_len bytes, NUL-terminated).  content_type need not be
 * NUL-terminated: its length is content_type_len.
 */
int lq_message_check_envelope(const char *content_type, size_t content_type_len, size_t body_len,
                              char *detail, size_t detail_len);

/*
 * Parse and validate body (len bytes, not NUL-terminated) as a command: its
 * "type" (absent: a transfer) picks the rules (docs/protocol.md sections 4,
 * 12, 13 and 14); an unknown type, or a field the type does not define, is
 * invalid.
 *
 * On success returns LQ_OK and stores a new command in *ret (caller frees
 * with lq_command_free()).  Otherwise returns LQ_ERR_MALFORMED_JSON (not
 * UTF-8, not JSON, nested too deep), LQ_ERR_INVALID_PAYMENT (any rule of
 * the command's type) or LQ_ERR_NOMEM, leaves *ret untouched and writes one
 * line naming the field and the rule to detail, e.g.
 * "amount: must be a positive whole number".
 */
int lq_command_parse(const char *body, size_t len, lq_command **ret, char *detail,
                     size_t detail_len);

/* Free c and everything it owns.  Accepts NULL; returns NULL. */
lq_command *lq_command_free(lq_command *c);

/*
 * Best effort: the string "id" field of body when body is a JSON object
 * whose "id" is a string of 1 .. LQ_ID_MAX bytes; used to label messages
 * that may be invalid.  Writes ret_id (LQ_ID_MAX + 1 bytes) and returns
 * true only then.
 */
bool lq_message_peek_id(const char *body, size_t len, char ret_id[LQ_ID_MAX + 1]);

/*
 * lq_message_peek_id() for a result event (docs/protocol.md section 6), also
 * giving its processed_at in microseconds since 1970 (0 when absent or
 * not a timestamp).
 */
bool lq_message_peek_event(const char *body, size_t len, char ret_id[LQ_ID_MAX + 1],
                           int64_t *ret_processed_us);

/* Whether s is a valid account id: 1-64 characters of A-Z a-z 0-9 . _ : - */
bool lq_message_valid_account_id(const char *s);

/* Whether s is a currency code: three upper-case ASCII letters. */
bool lq_message_valid_currency(const char *s);

/*
 * Parse one line of `account import`: a JSON object with "id" and
 * "currency" (strings, required) and optionally "allow_negative",
 * "overdraft_limit" and "max_balance", each valid as in an account.open
 * command, with the same details (the "id" is the account's; "type",
 * "account" and "metadata" are unknown fields here).  On success returns
 * LQ_OK and fills *ret as lq_command_parse() fills an account.open's
 * change (ret->reason stays NULL); otherwise returns LQ_ERR_MALFORMED_JSON,
 * LQ_ERR_INVALID_PAYMENT or LQ_ERR_NOMEM with a line in detail, and leaves
 * *ret untouched.
 */
int lq_message_parse_account(const char *line, size_t len, lq_account_change *ret, char *detail,
                             size_t detail_len);

/* Release what a change owns (its reason).  Accepts a zeroed change. */
void lq_account_change_release(lq_account_change *c);

/*
 * Reformat a JSON document for people: body (len bytes) is parsed and
 * printed indented.  Returns a new NUL-terminated string (caller frees with
 * free()) or NULL when body is not JSON.
 */
char *lq_message_pretty(const char *body, size_t len);

#endif
