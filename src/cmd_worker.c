/* `ledgerq worker`, `migrate` and `topology`: the service and its setup. */
#include <stdio.h>

#include "ledgerq/amqp.h"
#include "ledgerq/cli.h"
#include "ledgerq/db.h"
#include "ledgerq/error.h"
#include "ledgerq/release.h"
#include "ledgerq/worker.h"

int lq_cmd_worker(int argc, char **argv)
{
    lq_cli_args args;
    int rc = lq_cli_parse("worker", "[settings]", NULL, argc, argv, &args);

    if (rc != LQ_CLI_CONTINUE)
        goto out;
    rc = LQ_EXIT_USAGE;
    if (!lq_cli_want_args("worker", &args, 0, 0))
        goto out;
    rc = lq_worker_run(&args.cfg) == LQ_OK ? LQ_EXIT_OK : LQ_EXIT_FAILURE;
out:
    lq_cli_args_release(&args);
    return rc;
}

/* A migration applied or retried: one line each, as it happens. */
static void migrate_notice(const char *line, void *arg)
{
    (void)arg;
    printf("%s\n", line);
    fflush(stdout);
}

int lq_cmd_migrate(int argc, char **argv)
{
    lq_cli_args args;
    lq_db *db = NULL;
    lq_schema_state state;
    char err[512];
    int applied = 0;
    int rc = lq_cli_parse("migrate", "[settings]", NULL, argc, argv, &args);

    if (rc != LQ_CLI_CONTINUE)
        goto out;
    rc = LQ_EXIT_USAGE;
    if (!lq_cli_want_args("migrate", &args, 0, 0))
        goto out;
    rc = LQ_EXIT_FAILURE;
    if (lq_db_connect(args.cfg.database_url, &db, err, sizeof(err)) != LQ_OK) {
        lq_cli_fail("%s", err);
        goto out;
    }
    if (lq_db_migrate(db, migrate_notice, NULL, &applied) != LQ_OK ||
        lq_db_schema_state(db, &state) != LQ_OK) {
        lq_cli_fail("%s", lq_db_error(db));
        goto out;
    }
    printf("applied %d migration%s; schema at version %d", applied, applied == 1 ? "" : "s",
           state.version);
    if (state.oldest_release[0])
        printf(", which releases from %s on may run against", state.oldest_release);
    if (state.version > lq_release_schema_needed())
        printf(" (newer than this release's %d)", lq_release_schema_needed());
    printf("\n");
    rc = LQ_EXIT_OK;
out:
    lq_db_close(db);
    lq_cli_args_release(&args);
    return rc;
}

int lq_cmd_topology(int argc, char **argv)
{
    lq_cli_args args;
    lq_amqp *amqp = NULL;
    char err[512];
    int rc = lq_cli_parse("topology", "[settings]", NULL, argc, argv, &args);

    if (rc != LQ_CLI_CONTINUE)
        goto out;
    rc = LQ_EXIT_USAGE;
    if (!lq_cli_want_args("topology", &args, 0, 0))
        goto out;
    rc = LQ_EXIT_FAILURE;
    if (lq_amqp_connect_config(&args.cfg, 0, &amqp, err, sizeof(err)) != LQ_OK) {
        lq_cli_fail("%s", err);
        goto out;
    }
    if (lq_amqp_declare_topology(amqp, &args.cfg) != LQ_OK) {
        lq_cli_fail("%s", lq_amqp_error(amqp));
        goto out;
    }
    printf("declared exchanges %s (topic), %s (topic), %s (fanout); queues %s (quorum, "
           "delivery limit %d), %s\n",
           args.cfg.exchange, args.cfg.results_exchange, args.cfg.dlx, args.cfg.queue,
           args.cfg.delivery_limit, args.cfg.dlq);
    rc = LQ_EXIT_OK;
out:
    lq_amqp_close(amqp);
    lq_cli_args_release(&args);
    return rc;
}
