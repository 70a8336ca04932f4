/* Command-line parsing shared by every command. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledgerq/cli.h"
#include "ledgerq/error.h"
#include "ledgerq/log.h"

void lq_cli_fail(const char *fmt, ...)
{
    va_list ap;

    fputs("ledgerq: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* What a setting without a default value shows in the default column. */
#define NO_DEFAULT "unset"

/*
 * Print text without the backticks that mark literal values for the README,
 * wrapped at 80 columns, each line indented by indent spaces.
 */
static void print_wrapped(const char *text, int indent)
{
    int col = 0;

    for (const char *p = text; *p;) {
        size_t len = strcspn(p, " "), shown = len;

        for (size_t i = 0; i < len; i++)
            shown -= p[i] == '`';
        if (col > 0 && col + 1 + (int)shown > 80) {
            putchar('\n');
            col = 0;
        }
        if (col == 0)
            col = printf("%*s", indent, "");
        else
            col += printf(" ");
        for (size_t i = 0; i < len; i++) {
            if (p[i] != '`')
                putchar(p[i]);
        }
        col += (int)shown;
        p += len;
        p += strspn(p, " ");
    }
    if (col > 0)
        putchar('\n');
}

static void print_help(const char *command, const char *synopsis, const lq_cli_option *options)
{
    const lq_setting_info *s;

    printf("usage: ledgerq %s %s\n", command, synopsis);
    if (options && options[0].name) {
        printf("\noptions:\n");
        for (const lq_cli_option *o = options; o->name; o++)
            printf("  --%-22s %s\n", o->name, o->help);
    }
    printf("  --%-22s %s\n", "help", "show this help and exit");
    printf("\nsettings (each also read from its environment variable; a flag overrides it):\n");
    printf("  %-24s %-28s %s\n", "flag", "variable", "default");
    for (size_t i = 0; (s = lq_config_setting(i)) != NULL; i++) {
        printf("  --%-22s %-28s %s\n", s->flag, s->env, s->def ? s->def : NO_DEFAULT);
        print_wrapped(s->help, 6);
    }
}

/* Print one cell of a Markdown table: a '|' in it is escaped. */
static void print_cell(const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == '|')
            putchar('\\');
        putchar(*p);
    }
}

int lq_cli_print_settings_markdown(void)
{
    const lq_setting_info *s;

    printf("| variable | flag | default | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; (s = lq_config_setting(i)) != NULL; i++) {
        printf("| `%s` | `--%s` | ", s->env, s->flag);
        if (s->def) {
            printf("`");
            print_cell(s->def);
            printf("`");
        } else {
            printf("%s", NO_DEFAULT);
        }
        printf(" | ");
        print_cell(s->help);
        printf(" |\n");
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        lq_cli_fail("could not write the settings table: %m");
        return LQ_EXIT_FAILURE;
    }
    return LQ_EXIT_OK;
}

static int find_option(const lq_cli_option *options, const char *name, size_t len)
{
    for (int i = 0; options && options[i].name; i++) {
        if (strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0)
            return i;
    }
    return -1;
}

int lq_cli_parse(const char *command, const char *synopsis, const lq_cli_option *options, int argc,
                 char **argv, lq_cli_args *args)
{
    char err[512], name[64];
    int n_options = 0;
    bool only_positional = false;

    memset(args, 0, sizeof(*args));
    while (options && options[n_options].name)
        n_options++;
    args->values = calloc((size_t)n_options + 1, sizeof(*args->values));
    args->rest = calloc((size_t)argc + 1, sizeof(*args->rest));
    if (args->values == NULL || args->rest == NULL) {
        lq_cli_fail("out of memory");
        return LQ_EXIT_FAILURE;
    }
    /* --help works even when a setting in the environment is broken. */
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help(command, synopsis, options);
            return LQ_EXIT_OK;
        }
    }
    if (lq_config_load_env(&args->cfg, err, sizeof(err)) != LQ_OK) {
        lq_cli_fail("%s", err);
        return LQ_EXIT_FAILURE;
    }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *eq, *value = NULL;
        size_t len;
        int opt;

        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            args->rest[args->n_rest++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = true;
            continue;
        }
        if (arg[1] != '-') {
            lq_cli_fail("unknown option %s (see ledgerq %s --help)", arg, command);
            return LQ_EXIT_USAGE;
        }
        arg += 2;
        eq = strchr(arg, '=');
        len = eq ? (size_t)(eq - arg) : strlen(arg);
        opt = find_option(options, arg, len);
        if (opt >= 0 && !options[opt].has_arg) {
            if (eq) {
                lq_cli_fail("option --%s takes no value", options[opt].name);
                return LQ_EXIT_USAGE;
            }
            args->values[opt] = "";
            continue;
        }
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            lq_cli_fail("option --%.*s needs a value", (int)len, arg);
            return LQ_EXIT_USAGE;
        }
        if (opt >= 0) {
            args->values[opt] = value;
            continue;
        }
        snprintf(name, sizeof(name), "%.*s", (int)(len < 63 ? len : 63), arg);
        switch (lq_config_set(&args->cfg, name, value, err, sizeof(err))) {
        case LQ_OK:
            break;
        case LQ_ERR_NOT_FOUND:
            lq_cli_fail("unknown option --%s (see ledgerq %s --help)", name, command);
            return LQ_EXIT_USAGE;
        default:
            lq_cli_fail("%s", err);
            return LQ_EXIT_USAGE;
        }
    }
    /* A client certificate comes with its key, whether from the environment or flags. */
    if ((args->cfg.amqp_cert_file == NULL) != (args->cfg.amqp_key_file == NULL)) {
        bool cert = args->cfg.amqp_cert_file != NULL;
        lq_cli_fail("%s is set without %s: a client certificate needs both files",
                    cert ? "LEDGERQ_AMQP_CERT_FILE (--amqp-cert-file)"
                         : "LEDGERQ_AMQP_KEY_FILE (--amqp-key-file)",
                    cert ? "LEDGERQ_AMQP_KEY_FILE (--amqp-key-file)"
                         : "LEDGERQ_AMQP_CERT_FILE (--amqp-cert-file)");
        return LQ_EXIT_FAILURE;
    }
    {
        char host[64] = "ledgerq", worker[96];
        gethostname(host, sizeof(host) - 1);
        snprintf(worker, sizeof(worker), "%s/%d", host, (int)getpid());
        lq_log_setup(args->cfg.log_level, args->cfg.log_format, worker);
    }
    return LQ_CLI_CONTINUE;
}

void lq_cli_args_release(lq_cli_args *args)
{
    lq_config_release(&args->cfg);
    free(args->values);
    free(args->rest);
    memset(args, 0, sizeof(*args));
}

const char *lq_cli_value(const lq_cli_args *args, const lq_cli_option *options, const char *name)
{
    int i = find_option(options, name, strlen(name));
    return i >= 0 ? args->values[i] : NULL;
}

bool lq_cli_want_args(const char *command, const lq_cli_args *args, int min, int max)
{
    if (args->n_rest < min) {
        lq_cli_fail("%s: missing argument (see ledgerq %s --help)", command, command);
        return false;
    }
    if (args->n_rest > max) {
        lq_cli_fail("%s: unexpected argument \"%s\" (see ledgerq %s --help)", command,
                    args->rest[max], command);
        return false;
    }
    return true;
}

int lq_cli_print_json(lq_json *j)
{
    char *text = lq_json_steal(j);

    if (text == NULL) {
        lq_cli_fail("out of memory");
        return LQ_EXIT_FAILURE;
    }
    puts(text);
    free(text);
    return LQ_EXIT_OK;
}
