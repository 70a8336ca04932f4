/*
 * What the cmd_account*.c files share: the subcommands of `ledgerq
 * account` and the helpers that read and print their values.  Private to
 * the account command; nothing else includes this file.
 *
 *   cmd_account.c        finding the subcommand and parsing against its
 *                        options; values shared by the subcommands
 *   cmd_account_write.c  open, import and update: account commands applied
 *                        through the batch path under ids of the CLI's own
 *   cmd_account_read.c   show (now and --at a time), list, history
 */
#ifndef LEDGERQ_CMD_ACCOUNT_INTERNAL_H
#define LEDGERQ_CMD_ACCOUNT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "ledgerq/cli.h"
#include "ledgerq/db.h"
#include "ledgerq/ledger.h"

/*
 * One subcommand: its options (only those: --allow-negative is a flag of
 * open but takes true or false in update), and what runs it once the
 * arguments were parsed against them and counted.  run returns an exit code.
 */
typedef struct lq_account_subcommand {
    const char *name;
    const char *synopsis; /* for --help, after "ledgerq account " */
    int n_args;           /* positional arguments, the subcommand's name included */
    const lq_cli_option *options;
    int (*run)(const struct lq_account_subcommand *sub, const lq_cli_args *args);
} lq_account_subcommand;

extern const lq_account_subcommand lq_account_open_cmd, lq_account_import_cmd,
    lq_account_update_cmd; /* cmd_account_write.c */
extern const lq_account_subcommand lq_account_show_cmd, lq_account_list_cmd,
    lq_account_history_cmd; /* cmd_account_read.c */

/* Print the usage error of a flag's value: what was given, what was expected. */
void lq_account_cli_bad_value(const char *flag, const char *value, const char *expected);

/*
 * A whole number written as decimal digits without sign or leading zero
 * ("0" itself is one), as amounts are (docs/protocol.md section 4), from min
 * to INT64_MAX.  False otherwise, *ret untouched.
 */
bool lq_account_cli_parse_whole(const char *s, int64_t min, int64_t *ret);

/* Whether id is an account id; prints the usage error when not. */
bool lq_account_cli_check_id(const char *id);

/* The floor of a as people read it: "none", "0", "-500" (in buf, or static). */
const char *lq_account_cli_floor(const lq_account *a, char buf[32]);

/* The ceiling of a: "none" or the number. */
const char *lq_account_cli_ceiling(const lq_account *a, char buf[32]);

/*
 * balance - held_debits as decimal text, exact even where it leaves the
 * 64-bit range (a balance near -2^63 with held debits): the JSON integers
 * of docs/protocol.md section 6.5.
 */
const char *lq_account_cli_available(int64_t balance, int64_t held_debits, char buf[32]);

/* Connect to the database of args; prints the failure and returns NULL. */
lq_db *lq_account_cli_connect(const lq_cli_args *args);

#endif
