/*
 * Payment commands: parse and validate a message body into a plain C
 * struct (docs/protocol.md section 4).  The only module that includes cJSON.h.
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

typedef struct lq_command {
    char id[LQ_ID_MAX + 1];
    size_t n_legs;   /* 1 .. LQ_LEGS_MAX; the single-leg form gives 1 */
    lq_leg *legs;    /* owned, n_legs entries */
    char *reference; /* owned; NULL when absent */
    char *metadata;  /* owned; the object serialized compactly, NULL when absent */
    /*
     * Owned; the content that makes two commands with the same id "the
     * same" (every field but metadata, by value): both forms and either
     * spelling of an amount give the same text.  Never empty.
     */
    char *canonical;
} lq_command;

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
 * Parse and validate body (len bytes, not NUL-terminated) as a payment
 * command.
 *
 * On success returns LQ_OK and stores a new payment in *ret (caller frees
 * with lq_command_free()).  Otherwise returns LQ_ERR_MALFORMED_JSON (not
 * UTF-8, not JSON, nested too deep), LQ_ERR_INVALID_PAYMENT (any rule of
 * docs/protocol.md section 4) or LQ_ERR_NOMEM, leaves *ret untouched and writes one
 * line naming the field and the rule to detail, e.g.
 * "amount: must be a positive whole number".
 */
int lq_command_parse(const char *body, size_t len, lq_command **ret, char *detail,
                     size_t detail_len);

/* Free p and everything it owns.  Accepts NULL; returns NULL. */
lq_command *lq_command_free(lq_command *p);

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
 * Parse one line of `account import`: a JSON object with exactly "id"
 * (string), "currency" (string) and optionally "allow_negative" (boolean,
 * default false), each valid as for `account open`.  Writes ret_id,
 * ret_currency and *ret_allow_negative on success; otherwise returns
 * LQ_ERR_MALFORMED_JSON or LQ_ERR_INVALID_PAYMENT with a line in detail.
 */
int lq_message_parse_account(const char *line, size_t len, char ret_id[LQ_ACCOUNT_ID_MAX + 1],
                             char ret_currency[4], bool *ret_allow_negative, char *detail,
                             size_t detail_len);

/*
 * Reformat a JSON document for people: body (len bytes) is parsed and
 * printed indented.  Returns a new NUL-terminated string (caller frees with
 * free()) or NULL when body is not JSON.
 */
char *lq_message_pretty(const char *body, size_t len);

#endif
