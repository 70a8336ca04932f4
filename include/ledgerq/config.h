/*
 * Settings (docs/protocol.md section 2): defaults, then the environment, then
 * command-line flags.  The parsed configuration is read-only once the
 * program has started.
 */
#ifndef LEDGERQ_CONFIG_H
#define LEDGERQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct lq_config {
    char *amqp_url;     /* secret: never log it whole, see lq_config_redact_url() */
    char *database_url; /* secret */
    int prefetch;
    int batch_max;
    int batch_wait_ms;
    int max_attempts;
    char *http_addr; /* "host:port" or "off" */
    int log_level;   /* an lq_log_level */
    int log_format;  /* an lq_log_format */
    int shutdown_timeout_ms;
    char *exchange;
    char *queue;
    char *results_exchange;
    char *dlx;
    char *dlq;
    int delivery_limit;
    bool declare;
    char *amqp_ca_file;   /* NULL: the system's CA certificates */
    char *amqp_cert_file; /* NULL: no client certificate */
    char *amqp_key_file;
} lq_config;

/*
 * One setting as people read it, in --help and in the README's table.  In
 * help, `backticks` mark literal values: the README shows them as code,
 * --help without the backticks.
 */
typedef struct lq_setting_info {
    const char *flag; /* "amqp-url" (the flag --amqp-url) */
    const char *env;  /* "LEDGERQ_AMQP_URL" */
    const char *def;  /* the default value, as the variable would give it; NULL: unset */
    const char *help; /* the meaning and the accepted values */
} lq_setting_info;

/* The i-th setting (from 0), or NULL past the last.  Static: the caller frees nothing. */
const lq_setting_info *lq_config_setting(size_t i);

/*
 * Fill cfg with the defaults, then the environment (including the *_FILE
 * variants).  cfg owns its strings; release with lq_config_release().
 * Returns LQ_OK, or LQ_ERR_CONFIG / LQ_ERR_IO / LQ_ERR_NOMEM with one line
 * naming the setting and the value's problem in err (err_len bytes).
 */
int lq_config_load_env(lq_config *cfg, char *err, size_t err_len);

/*
 * Set the setting whose flag name is flag ("amqp-url", without dashes) to
 * value.  Returns LQ_OK, LQ_ERR_NOT_FOUND when no setting has that flag,
 * or LQ_ERR_CONFIG with a line in err naming the flag and the problem.
 */
int lq_config_set(lq_config *cfg, const char *flag, const char *value, char *err, size_t err_len);

/* Release what cfg owns.  Accepts a zeroed cfg. */
void lq_config_release(lq_config *cfg);

/*
 * Copy url into out (out_len bytes) with any password replaced by "***",
 * for logs and messages.  Works for AMQP URLs, PostgreSQL URIs and conninfo
 * strings ("password=...").
 */
void lq_config_redact_url(const char *url, char *out, size_t out_len);

#endif
