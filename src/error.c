/* Error codes: descriptions, classes and the wire codes of docs/protocol.md. */
#include <string.h>

#include "ledgerq/error.h"

typedef struct error_info {
    int err;
    const char *code; /* as docs/protocol.md spells it, NULL when never on the wire */
    const char *text;
} error_info;

static const error_info errors[] = {
    {LQ_OK, NULL, "success"},
    {LQ_ERR_NOMEM, NULL, "out of memory"},
    {LQ_ERR_USAGE, NULL, "bad usage"},
    {LQ_ERR_CONFIG, NULL, "invalid setting"},
    {LQ_ERR_IO, NULL, "input/output error"},
    {LQ_ERR_NOT_FOUND, NULL, "not found"},
    {LQ_ERR_EXISTS, NULL, "already exists"},
    {LQ_ERR_TIMEOUT, NULL, "timed out"},
    {LQ_ERR_INTERNAL, NULL, "internal error"},
    {LQ_ERR_SCHEMA, NULL, "the database schema does not fit this release"},
    {LQ_ERR_MALFORMED_JSON, "malformed_json", "body is not well-formed UTF-8 JSON"},
    {LQ_ERR_INVALID_PAYMENT, "invalid_payment", "not a valid payment command"},
    {LQ_ERR_PAYLOAD_TOO_LARGE, "payload_too_large", "body is larger than 65536 bytes"},
    {LQ_ERR_UNSUPPORTED_CONTENT_TYPE, "unsupported_content_type",
     "content type is not application/json"},
    {LQ_ERR_ACCOUNT_NOT_FOUND, "account_not_found", "account does not exist"},
    {LQ_ERR_CURRENCY_MISMATCH, "currency_mismatch", "currency differs from the account's"},
    {LQ_ERR_INSUFFICIENT_FUNDS, "insufficient_funds", "insufficient funds"},
    {LQ_ERR_AMOUNT_OVERFLOW, "amount_overflow", "amount would overflow an account total"},
    {LQ_ERR_IDEMPOTENCY_CONFLICT, "idempotency_conflict",
     "command id already used with other content"},
    {LQ_ERR_ACCOUNT_EXISTS, "account_exists", "account exists already"},
    {LQ_ERR_ACCOUNT_CLOSED, "account_closed", "account is closed"},
    {LQ_ERR_ACCOUNT_FROZEN, "account_frozen", "account is frozen"},
    {LQ_ERR_ACCOUNT_NOT_EMPTY, "account_not_empty", "account balance is not 0"},
    {LQ_ERR_ACCOUNT_HAS_HOLDS, "account_has_holds", "account has held amounts"},
    {LQ_ERR_BALANCE_OUTSIDE_LIMITS, "balance_outside_limits",
     "account balance is outside the new limits"},
    {LQ_ERR_EXCEEDS_MAX_BALANCE, "exceeds_max_balance", "credit would exceed the maximum balance"},
    {LQ_ERR_HOLD_NOT_FOUND, "hold_not_found", "no hold was applied under that id"},
    {LQ_ERR_HOLD_ALREADY_CAPTURED, "hold_already_captured", "hold was captured already"},
    {LQ_ERR_HOLD_ALREADY_VOIDED, "hold_already_voided", "hold was voided already"},
    {LQ_ERR_HOLD_EXPIRED, "hold_expired", "hold has expired"},
    {LQ_ERR_EXCEEDS_HOLD_AMOUNT, "exceeds_hold_amount", "capture exceeds the held amount"},
    {LQ_ERR_PARTIAL_CAPTURE_NOT_SUPPORTED, "partial_capture_not_supported",
     "a hold of several legs is captured in full"},
    {LQ_ERR_DB_UNAVAILABLE, NULL, "database unavailable"},
    {LQ_ERR_DB_RETRY, NULL, "database transaction must be retried"},
    {LQ_ERR_AMQP_UNAVAILABLE, NULL, "broker unavailable"},
    {LQ_ERR_AMQP_NACK, NULL, "broker refused a publish"},
    {LQ_ERR_DB_FAILED, "processing_failed", "database failure"},
};

static const error_info *find(int err)
{
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        if (errors[i].err == err)
            return &errors[i];
    }
    return NULL;
}

const char *lq_strerror(int err)
{
    const error_info *e = find(err);
    return e ? e->text : "unknown error";
}

lq_error_class lq_error_classify(int err)
{
    if (err == LQ_OK)
        return LQ_CLASS_OK;
    if (err <= -100 && err > -200)
        return LQ_CLASS_INVALID;
    if (err <= -200 && err > -300)
        return LQ_CLASS_REJECTED;
    if (err <= -300 && err > -400)
        return LQ_CLASS_TRANSIENT;
    if (err <= -400 && err > -500)
        return LQ_CLASS_FAILED;
    return LQ_CLASS_GENERAL;
}

const char *lq_error_code(int err)
{
    const error_info *e = find(err);
    return e ? e->code : NULL;
}

int lq_error_from_code(const char *code)
{
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        if (errors[i].code && strcmp(errors[i].code, code) == 0)
            return errors[i].err;
    }
    return LQ_OK;
}
