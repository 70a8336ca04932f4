/*
 * ledgerq error codes.
 *
 * One enum for the whole program: 0 is success, failures are negative and
 * grouped in ranges by class.  The worker acts on the class
 * (lq_error_class()), never on strings.
 */
#ifndef LEDGERQ_ERROR_H
#define LEDGERQ_ERROR_H

typedef enum lq_error {
    LQ_OK = 0,

    /* -1 .. -99: general failures of the program itself */
    LQ_ERR_NOMEM = -1,
    LQ_ERR_USAGE = -2,     /* bad command line */
    LQ_ERR_CONFIG = -3,    /* a setting with an invalid value */
    LQ_ERR_IO = -4,        /* a file could not be read or written */
    LQ_ERR_NOT_FOUND = -5, /* a looked-up object does not exist */
    LQ_ERR_EXISTS = -6,    /* an object to create exists already */
    LQ_ERR_TIMEOUT = -7,   /* nothing happened within the wait asked for */
    LQ_ERR_INTERNAL = -8,  /* a bug: an invariant of the program broke */
    LQ_ERR_SCHEMA = -9,    /* the database schema does not fit this release */

    /* -100 .. -199: invalid messages, dead-lettered at once */
    LQ_ERR_MALFORMED_JSON = -100,
    LQ_ERR_INVALID_PAYMENT = -101,
    LQ_ERR_PAYLOAD_TOO_LARGE = -102,
    LQ_ERR_UNSUPPORTED_CONTENT_TYPE = -103,

    /* -200 .. -299: business rejections, a final outcome of a payment */
    LQ_ERR_ACCOUNT_NOT_FOUND = -200,
    LQ_ERR_CURRENCY_MISMATCH = -201,
    LQ_ERR_INSUFFICIENT_FUNDS = -202,
    LQ_ERR_AMOUNT_OVERFLOW = -203,
    LQ_ERR_IDEMPOTENCY_CONFLICT = -204,
    LQ_ERR_ACCOUNT_EXISTS = -205,         /* account.open of an id that exists */
    LQ_ERR_ACCOUNT_CLOSED = -206,         /* a leg or an update names a closed account */
    LQ_ERR_ACCOUNT_FROZEN = -207,         /* a leg debits a frozen account */
    LQ_ERR_ACCOUNT_NOT_EMPTY = -208,      /* closing an account whose balance is not 0 */
    LQ_ERR_ACCOUNT_HAS_HOLDS = -209,      /* closing an account with held amounts */
    LQ_ERR_BALANCE_OUTSIDE_LIMITS = -210, /* new limits the current balance breaks */
    LQ_ERR_EXCEEDS_MAX_BALANCE = -211,    /* a credit past the account's ceiling */
    LQ_ERR_HOLD_NOT_FOUND = -212,         /* a capture or void names no applied hold */
    LQ_ERR_HOLD_ALREADY_CAPTURED = -213,
    LQ_ERR_HOLD_ALREADY_VOIDED = -214,
    LQ_ERR_HOLD_EXPIRED = -215,                  /* released at its expiry, or past it */
    LQ_ERR_EXCEEDS_HOLD_AMOUNT = -216,           /* a capture above a single-leg hold's amount */
    LQ_ERR_PARTIAL_CAPTURE_NOT_SUPPORTED = -217, /* an amount on a hold of several legs */

    /* -300 .. -399: transient, retried after a reconnect or a pause */
    LQ_ERR_DB_UNAVAILABLE = -300,   /* the database connection is lost or refused */
    LQ_ERR_DB_RETRY = -301,         /* deadlock, serialization failure, a concurrent duplicate */
    LQ_ERR_AMQP_UNAVAILABLE = -302, /* the broker connection or channel is lost or refused */
    LQ_ERR_AMQP_NACK = -303,        /* the broker refused to confirm a publish */

    /* -400 .. -499: unexpected failures of one payment: retried, then dead-lettered */
    LQ_ERR_DB_FAILED = -400,
} lq_error;

typedef enum lq_error_class {
    LQ_CLASS_OK = 0,
    LQ_CLASS_GENERAL,   /* -1 .. -99 */
    LQ_CLASS_INVALID,   /* dead-letter the message */
    LQ_CLASS_REJECTED,  /* a business outcome */
    LQ_CLASS_TRANSIENT, /* reconnect or retry later, dead-letter nothing */
    LQ_CLASS_FAILED,    /* unexpected: retry a few times, then dead-letter */
} lq_error_class;

/* A human readable description of err; never NULL, static storage. */
const char *lq_strerror(int err);

/* The class err belongs to. */
lq_error_class lq_error_classify(int err);

/*
 * The wire code of err as docs/protocol.md spells it ("malformed_json",
 * "account_not_found", "processing_failed", ...), or NULL for errors that
 * never reach a message or an event.  Static storage.
 */
const char *lq_error_code(int err);

/* The error whose wire code is code, or LQ_OK when code names none. */
int lq_error_from_code(const char *code);

#endif
