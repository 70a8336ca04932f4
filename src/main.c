/* ledgerq: one binary, subcommands (docs/protocol.md section 1). */
#include <stdio.h>
#include <string.h>

#include "ledgerq/cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"worker", lq_cmd_worker, "consume payment commands, apply them, publish results"},
    {"migrate", lq_cmd_migrate, "apply the schema migrations (idempotent)"},
    {"topology", lq_cmd_topology, "declare the exchanges, queues and bindings (idempotent)"},
    {"account", lq_cmd_account, "open, import, show and list accounts"},
    {"payment", lq_cmd_payment, "show a payment's stored outcome and legs"},
    {"audit", lq_cmd_audit, "check the ledger invariants"},
    {"publish", lq_cmd_publish, "publish payment commands, one JSON object per line"},
    {"dlq", lq_cmd_dlq, "list, show, count, replay and purge dead-lettered messages"},
    {"bench", lq_cmd_bench, "load generator: throughput and latency through result events"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: ledgerq <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n`ledgerq <command> --help` describes a command and the settings.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return LQ_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return LQ_EXIT_OK;
    }
    /* Not in the usage: tests/readme-settings.sh makes README.md's settings table with it. */
    if (strcmp(argv[1], "--settings-markdown") == 0)
        return lq_cli_print_settings_markdown();
    if (strcmp(argv[1], "--version") == 0) {
        printf("ledgerq %s\n", LEDGERQ_VERSION);
        return LQ_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 2, argv + 2);
    }
    lq_cli_fail("unknown command \"%s\" (see ledgerq --help)", argv[1]);
    return LQ_EXIT_USAGE;
}
