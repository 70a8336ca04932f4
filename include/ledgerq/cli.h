/*
 * The command line: `ledgerq <command> [options]` (docs/protocol.md section 1).
 * Each command is a function taking its arguments after the command name.
 */
#ifndef LEDGERQ_CLI_H
#define LEDGERQ_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "ledgerq/config.h"
#include "ledgerq/json.h"

/* Exit codes of every command. */
#define LQ_EXIT_OK      0
#define LQ_EXIT_FAILURE 1
#define LQ_EXIT_USAGE   2
/* lq_cli_parse(): go on with the command. */
#define LQ_CLI_CONTINUE (-1)

/* One option a command accepts besides the settings of section 2. */
typedef struct lq_cli_option {
    const char *name; /* without dashes: "file" */
    bool has_arg;
    const char *help; /* "F  read from F instead of stdin" */
} lq_cli_option;

/* Parsed arguments of a command. */
typedef struct lq_cli_args {
    lq_config cfg;       /* settings: defaults, environment, flags */
    const char **values; /* values[i] for options[i]: NULL if not given, "" for a flag */
    const char **rest;   /* positional arguments */
    int n_rest;
} lq_cli_args;

/*
 * Parse argv (after the command name) for a command accepting options:
 * settings flags (--amqp-url ...), the command's own options, and --help.
 * Also sets up logging from the settings.  Returns LQ_CLI_CONTINUE to go
 * on, or an exit code to return at once (after printing help or an error).
 * Release args with lq_cli_args_release() in either case.
 */
int lq_cli_parse(const char *command, const char *synopsis, const lq_cli_option *options, int argc,
                 char **argv, lq_cli_args *args);

void lq_cli_args_release(lq_cli_args *args);

/* The value given for option name, or NULL. */
const char *lq_cli_value(const lq_cli_args *args, const lq_cli_option *options, const char *name);

/* Check the count of positional arguments; print a usage error when off. */
bool lq_cli_want_args(const char *command, const lq_cli_args *args, int min, int max);

/*
 * Print the JSON text j holds on stdout, one line, and release j.  Returns
 * LQ_EXIT_OK, or LQ_EXIT_FAILURE (reported) when building it ran out of memory.
 */
int lq_cli_print_json(lq_json *j);

/*
 * Print the settings table (variable, flag, default, meaning) as the
 * Markdown table that README.md's "Settings" section holds.  Returns
 * LQ_EXIT_OK, or LQ_EXIT_FAILURE (reported) when stdout could not be written.
 */
int lq_cli_print_settings_markdown(void);

/* Print "ledgerq: <message>" on stderr as one line. */
void lq_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int lq_cmd_worker(int argc, char **argv);
int lq_cmd_migrate(int argc, char **argv);
int lq_cmd_topology(int argc, char **argv);
int lq_cmd_account(int argc, char **argv);
int lq_cmd_payment(int argc, char **argv);
int lq_cmd_audit(int argc, char **argv);
int lq_cmd_publish(int argc, char **argv);
int lq_cmd_bench(int argc, char **argv);
int lq_cmd_dlq(int argc, char **argv);

#endif
