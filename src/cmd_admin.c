/* `ledgerq payment show` and `ledgerq audit`: reading the ledger. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/cli.h"
#include "ledgerq/db.h"
#include "ledgerq/error.h"
#include "ledgerq/json.h"

static const lq_cli_option json_option[] = {
    {"json", false, "print JSON"},
    {NULL, false, NULL},
};

/* Connect for a read command; prints the failure. */
static lq_db *connect_or_fail(const lq_cli_args *args)
{
    char err[512];
    lq_db *db = NULL;

    if (lq_db_connect(args->cfg.database_url, &db, err, sizeof(err)) != LQ_OK)
        lq_cli_fail("%s", err);
    return db;
}

static int print_payment_json(const lq_payment_record *rec)
{
    const lq_outcome *o = &rec->outcome;
    lq_json j;

    lq_json_init(&j);
    lq_json_object_begin(&j);
    lq_json_key(&j, "id");
    lq_json_string(&j, rec->id);
    lq_json_key(&j, "type");
    lq_json_string(&j, rec->type);
    lq_outcome_json(&j, o);
    /* An account command: its account and the fields it gave (docs/protocol.md section 12). */
    if (rec->change) {
        lq_json_key(&j, "account");
        lq_json_string(&j, rec->account);
        lq_json_key(&j, "change");
        lq_json_raw(&j, rec->change);
    }
    /*
     * A hold: where it stands (null for a rejected hold, which holds
     * nothing); a capture or void: its hold (docs/protocol.md section 14).
     */
    if (strcmp(rec->type, "hold") == 0) {
        lq_json_key(&j, "hold_status");
        if (rec->hold_status[0])
            lq_json_string(&j, rec->hold_status);
        else
            lq_json_null(&j);
        lq_json_key(&j, "expires_at");
        if (rec->expires_at[0])
            lq_json_string(&j, rec->expires_at);
        else
            lq_json_null(&j);
    }
    if (rec->hold[0]) {
        lq_json_key(&j, "hold");
        lq_json_string(&j, rec->hold);
    }
    lq_json_key(&j, "legs");
    lq_json_array_begin(&j);
    for (size_t i = 0; i < rec->n_legs; i++) {
        lq_json_object_begin(&j);
        lq_json_key(&j, "debit");
        lq_json_string(&j, rec->legs[i].debit);
        lq_json_key(&j, "credit");
        lq_json_string(&j, rec->legs[i].credit);
        lq_json_key(&j, "amount");
        lq_json_int(&j, rec->legs[i].amount);
        lq_json_key(&j, "currency");
        lq_json_string(&j, rec->legs[i].currency);
        lq_json_object_end(&j);
    }
    lq_json_array_end(&j);
    lq_json_key(&j, "processed_at");
    lq_json_string(&j, o->processed_at);
    lq_json_object_end(&j);
    return lq_cli_print_json(&j);
}

static void print_payment_text(const lq_payment_record *rec)
{
    const lq_outcome *o = &rec->outcome;

    printf("id:           %s\n", rec->id);
    printf("type:         %s\n", rec->type);
    printf("status:       %s\n", o->result == LQ_OK ? "applied" : "rejected");
    if (o->result != LQ_OK)
        printf("reason:       %s\n", lq_error_code(o->result));
    if (o->detail[0])
        printf("detail:       %s\n", o->detail);
    printf("processed_at: %s\n", o->processed_at);
    if (rec->reference)
        printf("reference:    %s\n", rec->reference);
    if (rec->metadata)
        printf("metadata:     %s\n", rec->metadata);
    if (strcmp(rec->type, "hold") == 0 && rec->outcome.result == LQ_OK) {
        printf("hold_status:  %s\n", rec->hold_status);
        printf("expires_at:   %s\n", rec->expires_at[0] ? rec->expires_at : "never");
    }
    if (rec->hold[0])
        printf("hold:         %s\n", rec->hold);
    if (rec->change) {
        printf("account:      %s\n", rec->account);
        printf("change:       %s\n", rec->change);
        return;
    }
    printf("legs:\n");
    for (size_t i = 0; i < rec->n_legs; i++)
        printf("  %zu. %s -> %s  %" PRId64 " %s\n", i + 1, rec->legs[i].debit, rec->legs[i].credit,
               rec->legs[i].amount, rec->legs[i].currency);
}

int lq_cmd_payment(int argc, char **argv)
{
    lq_cli_args args;
    lq_payment_record rec;
    lq_db *db = NULL;
    int rc = lq_cli_parse("payment", "show ID [--json]", json_option, argc, argv, &args);

    memset(&rec, 0, sizeof(rec));
    if (rc != LQ_CLI_CONTINUE)
        goto out;
    rc = LQ_EXIT_USAGE;
    if (!lq_cli_want_args("payment", &args, 2, 2))
        goto out;
    if (strcmp(args.rest[0], "show") != 0) {
        lq_cli_fail("payment: unknown subcommand \"%s\" (show)", args.rest[0]);
        goto out;
    }
    rc = LQ_EXIT_FAILURE;
    db = connect_or_fail(&args);
    if (db == NULL)
        goto out;
    if (lq_db_payment_get(db, args.rest[1], &rec) != LQ_OK) {
        lq_cli_fail("%s", lq_db_error(db));
        goto out;
    }
    if (lq_cli_value(&args, json_option, "json")) {
        rc = print_payment_json(&rec);
    } else {
        print_payment_text(&rec);
        rc = LQ_EXIT_OK;
    }
out:
    lq_payment_record_release(&rec);
    lq_db_close(db);
    lq_cli_args_release(&args);
    return rc;
}

static void violation_text(const char *invariant, const char *detail, void *arg)
{
    (void)arg;
    printf("violation: %s: %s\n", invariant, detail);
}

static void violation_json(const char *invariant, const char *detail, void *arg)
{
    lq_json *j = arg;

    lq_json_object_begin(j);
    lq_json_key(j, "invariant");
    lq_json_string(j, invariant);
    lq_json_key(j, "detail");
    lq_json_string(j, detail);
    lq_json_object_end(j);
}

int lq_cmd_audit(int argc, char **argv)
{
    lq_cli_args args;
    lq_db *db = NULL;
    lq_json j;
    size_t violations = 0;
    bool json;
    int rc = lq_cli_parse("audit", "[--json]", json_option, argc, argv, &args);

    lq_json_init(&j);
    if (rc != LQ_CLI_CONTINUE)
        goto out;
    rc = LQ_EXIT_USAGE;
    if (!lq_cli_want_args("audit", &args, 0, 0))
        goto out;
    rc = LQ_EXIT_FAILURE;
    db = connect_or_fail(&args);
    if (db == NULL)
        goto out;
    json = lq_cli_value(&args, json_option, "json") != NULL;
    lq_json_object_begin(&j);
    lq_json_key(&j, "violations");
    lq_json_array_begin(&j);
    if (lq_db_audit(db, json ? violation_json : violation_text, &j, &violations) != LQ_OK) {
        lq_cli_fail("%s", lq_db_error(db));
        goto out;
    }
    lq_json_array_end(&j);
    lq_json_key(&j, "ok");
    lq_json_bool(&j, violations == 0);
    lq_json_object_end(&j);
    if (json) {
        if (lq_cli_print_json(&j) != LQ_EXIT_OK)
            goto out;
    } else if (violations == 0) {
        printf("ok: every ledger invariant holds\n");
    } else {
        printf("%zu violation%s\n", violations, violations == 1 ? "" : "s");
    }
    rc = violations == 0 ? LQ_EXIT_OK : LQ_EXIT_FAILURE;
out:
    lq_json_release(&j);
    lq_db_close(db);
    lq_cli_args_release(&args);
    return rc;
}
