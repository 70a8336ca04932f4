/* Unit tests of the config module: the settings of docs/protocol.md section 2. */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledgerq/config.h"
#include "ledgerq/error.h"
#include "ledgerq/log.h"

/* Every variable of docs/protocol.md section 2. */
static const char *const all_vars[] = {
    "LEDGERQ_AMQP_URL",
    "LEDGERQ_DATABASE_URL",
    "LEDGERQ_AMQP_URL_FILE",
    "LEDGERQ_DATABASE_URL_FILE",
    "LEDGERQ_PREFETCH",
    "LEDGERQ_BATCH_MAX",
    "LEDGERQ_BATCH_WAIT_MS",
    "LEDGERQ_MAX_ATTEMPTS",
    "LEDGERQ_HTTP_ADDR",
    "LEDGERQ_LOG_LEVEL",
    "LEDGERQ_LOG_FORMAT",
    "LEDGERQ_SHUTDOWN_TIMEOUT_MS",
    "LEDGERQ_EXCHANGE",
    "LEDGERQ_QUEUE",
    "LEDGERQ_RESULTS_EXCHANGE",
    "LEDGERQ_DLX",
    "LEDGERQ_DLQ",
    "LEDGERQ_DELIVERY_LIMIT",
    "LEDGERQ_DECLARE",
    "LEDGERQ_AMQP_CA_FILE",
    "LEDGERQ_AMQP_CERT_FILE",
    "LEDGERQ_AMQP_KEY_FILE",
};

#define N_VARS (sizeof(all_vars) / sizeof(all_vars[0]))

static void clean_env(void)
{
    for (size_t i = 0; i < N_VARS; i++)
        unsetenv(all_vars[i]);
}

/* Load with var=value (NULL: unset) on top of a clean environment. */
static int load_with(const char *var, const char *value, lq_config *cfg, char *err, size_t err_len)
{
    clean_env();
    if (value)
        setenv(var, value, 1);
    int rc = lq_config_load_env(cfg, err, err_len);
    if (value)
        unsetenv(var);
    return rc;
}

/* var=value is refused at start with a message naming var. */
static void assert_env_invalid(const char *var, const char *value)
{
    lq_config cfg;
    char err[512] = "";
    int rc = load_with(var, value, &cfg, err, sizeof(err));
    ck_assert_msg(rc == LQ_ERR_CONFIG, "%s=\"%s\" was accepted (rc %d)", var, value, rc);
    ck_assert_msg(strstr(err, var) != NULL, "message does not name %s: %s", var, err);
    ck_assert_msg(strchr(err, '\n') == NULL, "message is not one line: %s", err);
    lq_config_release(&cfg);
}

/* var=value is accepted; returns the loaded configuration (caller releases). */
static lq_config env_valid(const char *var, const char *value)
{
    lq_config cfg;
    char err[512] = "";
    int rc = load_with(var, value, &cfg, err, sizeof(err));
    ck_assert_msg(rc == LQ_OK, "%s=\"%s\" was refused: %s", var, value, err);
    return cfg;
}

/* --flag=value is refused, with a message naming --flag. */
static void assert_flag_invalid(const char *flag, const char *value)
{
    lq_config cfg;
    char err[512] = "";
    char name[64];
    clean_env();
    ck_assert_int_eq(lq_config_load_env(&cfg, err, sizeof(err)), LQ_OK);
    ck_assert_int_eq(lq_config_set(&cfg, flag, value, err, sizeof(err)), LQ_ERR_CONFIG);
    snprintf(name, sizeof(name), "--%s", flag);
    ck_assert_msg(strstr(err, name) != NULL, "message does not name %s: %s", name, err);
    lq_config_release(&cfg);
}

/* ---- defaults ---- */

START_TEST(test_defaults)
{
    lq_config cfg = env_valid("LEDGERQ_PREFETCH", NULL);
    ck_assert_str_eq(cfg.amqp_url, "amqp://guest:guest@localhost:5672/%2f");
    ck_assert_str_eq(cfg.database_url, "postgresql:///ledgerq");
    ck_assert_int_eq(cfg.prefetch, 1000);
    ck_assert_int_eq(cfg.batch_max, 500);
    ck_assert_int_eq(cfg.batch_wait_ms, 0);
    ck_assert_int_eq(cfg.max_attempts, 5);
    ck_assert_str_eq(cfg.http_addr, "0.0.0.0:8080");
    ck_assert_int_eq(cfg.log_level, LQ_LOG_INFO);
    ck_assert_int_eq(cfg.log_format, LQ_LOG_JSON);
    ck_assert_int_eq(cfg.shutdown_timeout_ms, 25000);
    ck_assert_str_eq(cfg.exchange, "payments");
    ck_assert_str_eq(cfg.queue, "payments.process");
    ck_assert_str_eq(cfg.results_exchange, "payments.results");
    ck_assert_str_eq(cfg.dlx, "payments.dlx");
    ck_assert_str_eq(cfg.dlq, "payments.dead");
    ck_assert_int_eq(cfg.delivery_limit, 10);
    ck_assert(cfg.declare);
    lq_config_release(&cfg);
}
END_TEST

START_TEST(test_release_zeroed_and_twice)
{
    lq_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    lq_config_release(&cfg);
    cfg = env_valid("LEDGERQ_PREFETCH", NULL);
    lq_config_release(&cfg);
    ck_assert_ptr_null(cfg.amqp_url);
    ck_assert_ptr_null(cfg.queue);
    lq_config_release(&cfg);
}
END_TEST

START_TEST(test_failed_load_leaves_nothing_to_free)
{
    lq_config cfg;
    char err[256];
    clean_env();
    setenv("LEDGERQ_QUEUE", "orders", 1);
    setenv("LEDGERQ_DECLARE", "perhaps", 1);
    ck_assert_int_eq(lq_config_load_env(&cfg, err, sizeof(err)), LQ_ERR_CONFIG);
    ck_assert_ptr_null(cfg.queue);
    ck_assert_ptr_null(cfg.amqp_url);
    lq_config_release(&cfg);
}
END_TEST

/* ---- integers ---- */

typedef struct int_setting {
    const char *var;
    const char *flag;
    size_t offset;
    int min, max;
} int_setting;

static const int_setting int_settings[] = {
    {"LEDGERQ_PREFETCH", "prefetch", offsetof(lq_config, prefetch), 1, 65535},
    {"LEDGERQ_BATCH_MAX", "batch-max", offsetof(lq_config, batch_max), 1, 10000},
    {"LEDGERQ_BATCH_WAIT_MS", "batch-wait-ms", offsetof(lq_config, batch_wait_ms), 0, 60000},
    {"LEDGERQ_MAX_ATTEMPTS", "max-attempts", offsetof(lq_config, max_attempts), 1, 1000},
    {"LEDGERQ_SHUTDOWN_TIMEOUT_MS", "shutdown-timeout-ms", offsetof(lq_config, shutdown_timeout_ms),
     1, 3600000},
    {"LEDGERQ_DELIVERY_LIMIT", "delivery-limit", offsetof(lq_config, delivery_limit), 1, 1000000},
};

static int int_field(const lq_config *cfg, const int_setting *s)
{
    return *(const int *)((const char *)cfg + s->offset);
}

START_TEST(test_int_edges_valid)
{
    const int_setting *s = &int_settings[_i];
    char text[32];
    int edges[] = {s->min, s->min + 1, s->max - 1, s->max};

    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
        snprintf(text, sizeof(text), "%d", edges[i]);
        lq_config cfg = env_valid(s->var, text);
        ck_assert_int_eq(int_field(&cfg, s), edges[i]);
        lq_config_release(&cfg);
    }
    /* Leading zeros are still a decimal number. */
    snprintf(text, sizeof(text), "0%d", s->max);
    lq_config cfg = env_valid(s->var, text);
    ck_assert_int_eq(int_field(&cfg, s), s->max);
    lq_config_release(&cfg);
}
END_TEST

START_TEST(test_int_edges_invalid)
{
    const int_setting *s = &int_settings[_i];
    char below[32], above[32];
    snprintf(below, sizeof(below), "%d", s->min - 1);
    snprintf(above, sizeof(above), "%d", s->max + 1);
    const char *bad[] = {below, above, "abc", "10x",  "",
                         "-1",  " 5",  "5 ",  "+5",   "0x10",
                         "1e3", "1.0", "\n",  "5\n5", "99999999999999999999"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_env_invalid(s->var, bad[i]);
        assert_flag_invalid(s->flag, bad[i]);
    }
}
END_TEST

START_TEST(test_int_message)
{
    lq_config cfg;
    char err[256];
    ck_assert_int_eq(load_with("LEDGERQ_PREFETCH", "abc", &cfg, err, sizeof(err)), LQ_ERR_CONFIG);
    ck_assert_str_eq(
        err, "invalid value for LEDGERQ_PREFETCH: \"abc\" (expected an integer from 1 to 65535)");
    lq_config_release(&cfg);

    ck_assert_int_eq(load_with("LEDGERQ_BATCH_WAIT_MS", "60001", &cfg, err, sizeof(err)),
                     LQ_ERR_CONFIG);
    ck_assert_str_eq(
        err,
        "invalid value for LEDGERQ_BATCH_WAIT_MS: \"60001\" (expected an integer from 0 to 60000)");
    lq_config_release(&cfg);
}
END_TEST

START_TEST(test_message_shows_control_characters_safely)
{
    lq_config cfg;
    char err[256];
    ck_assert_int_eq(load_with("LEDGERQ_PREFETCH", "5\n5", &cfg, err, sizeof(err)), LQ_ERR_CONFIG);
    ck_assert_ptr_null(strchr(err, '\n'));
    ck_assert_ptr_nonnull(strstr(err, "\"5?5\""));
    lq_config_release(&cfg);
}
END_TEST

START_TEST(test_small_error_buffer)
{
    lq_config cfg;
    char err[16];
    memset(err, 'x', sizeof(err));
    ck_assert_int_eq(load_with("LEDGERQ_PREFETCH", "abc", &cfg, err, sizeof(err)), LQ_ERR_CONFIG);
    ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
    lq_config_release(&cfg);
    ck_assert_int_eq(load_with("LEDGERQ_PREFETCH", "abc", &cfg, NULL, 0), LQ_ERR_CONFIG);
    lq_config_release(&cfg);
}
END_TEST

/* ---- names ---- */

static const char *const name_vars[] = {"LEDGERQ_EXCHANGE", "LEDGERQ_QUEUE",
                                        "LEDGERQ_RESULTS_EXCHANGE", "LEDGERQ_DLX", "LEDGERQ_DLQ"};

static const char *name_field(const lq_config *cfg, size_t i)
{
    const char *fields[] = {cfg->exchange, cfg->queue, cfg->results_exchange, cfg->dlx, cfg->dlq};
    return fields[i];
}

START_TEST(test_names)
{
    char longest[256], too_long[257];
    memset(longest, 'q', 255);
    longest[255] = '\0';
    memset(too_long, 'q', 256);
    too_long[256] = '\0';
    const char *good[] = {"a", "orders.v2", "caf\xc3\xa9", "with space", longest};
    const char *bad[] = {"", too_long, "a\nb", "tab\there", "del\x7f"};

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        lq_config cfg = env_valid(name_vars[_i], good[i]);
        ck_assert_str_eq(name_field(&cfg, (size_t)_i), good[i]);
        lq_config_release(&cfg);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_env_invalid(name_vars[_i], bad[i]);
}
END_TEST

/* ---- declare, log level and format ---- */

START_TEST(test_declare_spellings)
{
    const char *yes[] = {"true", "TRUE", "True", "1", "yes", "YES"};
    const char *no[] = {"false", "FALSE", "0", "no", "No"};
    const char *bad[] = {"", "maybe", "2", "on", "off", "y", "n", " true", "true "};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        lq_config cfg = env_valid("LEDGERQ_DECLARE", yes[i]);
        ck_assert_msg(cfg.declare, "%s", yes[i]);
        lq_config_release(&cfg);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        lq_config cfg = env_valid("LEDGERQ_DECLARE", no[i]);
        ck_assert_msg(!cfg.declare, "%s", no[i]);
        lq_config_release(&cfg);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_env_invalid("LEDGERQ_DECLARE", bad[i]);
    assert_flag_invalid("declare", "maybe");
}
END_TEST

START_TEST(test_log_level)
{
    const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        lq_config cfg = env_valid("LEDGERQ_LOG_LEVEL", names[i]);
        ck_assert_int_eq(cfg.log_level, i);
        lq_config_release(&cfg);
    }
    ck_assert_int_eq(LQ_LOG_DEBUG, 0);
    ck_assert_int_eq(LQ_LOG_ERROR, 3);
    assert_env_invalid("LEDGERQ_LOG_LEVEL", "");
    assert_env_invalid("LEDGERQ_LOG_LEVEL", "verbose");
    assert_env_invalid("LEDGERQ_LOG_LEVEL", "warning");
    assert_flag_invalid("log-level", "trace");
}
END_TEST

START_TEST(test_log_format)
{
    lq_config cfg = env_valid("LEDGERQ_LOG_FORMAT", "text");
    ck_assert_int_eq(cfg.log_format, LQ_LOG_TEXT);
    lq_config_release(&cfg);
    cfg = env_valid("LEDGERQ_LOG_FORMAT", "json");
    ck_assert_int_eq(cfg.log_format, LQ_LOG_JSON);
    lq_config_release(&cfg);
    assert_env_invalid("LEDGERQ_LOG_FORMAT", "");
    assert_env_invalid("LEDGERQ_LOG_FORMAT", "logfmt");
}
END_TEST

START_TEST(test_log_parsers)
{
    ck_assert_int_eq(lq_log_level_parse("debug"), LQ_LOG_DEBUG);
    ck_assert_int_eq(lq_log_level_parse("info"), LQ_LOG_INFO);
    ck_assert_int_eq(lq_log_level_parse("warn"), LQ_LOG_WARN);
    ck_assert_int_eq(lq_log_level_parse("error"), LQ_LOG_ERROR);
    ck_assert_int_eq(lq_log_level_parse("INFO"), LQ_LOG_INFO);
    ck_assert_int_eq(lq_log_level_parse(""), -1);
    ck_assert_int_eq(lq_log_level_parse("fatal"), -1);
    ck_assert_int_eq(lq_log_level_parse(NULL), -1);
    ck_assert_int_eq(lq_log_format_parse("json"), LQ_LOG_JSON);
    ck_assert_int_eq(lq_log_format_parse("text"), LQ_LOG_TEXT);
    ck_assert_int_eq(lq_log_format_parse("xml"), -1);
    ck_assert_int_eq(lq_log_format_parse(NULL), -1);
}
END_TEST

/* ---- HTTP address ---- */

START_TEST(test_http_addr)
{
    const char *good[] = {"off",        "0.0.0.0:8080", "127.0.0.1:1", "localhost:65535",
                          "[::1]:8080", "[::]:9090",    "host:08080"};
    const char *bad[] = {
        "",        "OFF",      "8080",  ":8080", "host:",     "host:0", "host:65536", "host:80x",
        "host:-1", "::1:8080", "[::1]", "[]:80", "[::1]8080", "a b:80", "host:+80"};

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        lq_config cfg = env_valid("LEDGERQ_HTTP_ADDR", good[i]);
        ck_assert_str_eq(cfg.http_addr, good[i]);
        lq_config_release(&cfg);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_env_invalid("LEDGERQ_HTTP_ADDR", bad[i]);
}
END_TEST

/* ---- URLs and secrets ---- */

START_TEST(test_amqp_url)
{
    lq_config cfg = env_valid("LEDGERQ_AMQP_URL", "amqps://u:p@broker:5671/prod");
    ck_assert_str_eq(cfg.amqp_url, "amqps://u:p@broker:5671/prod");
    lq_config_release(&cfg);

    assert_env_invalid("LEDGERQ_AMQP_URL", "");
    assert_env_invalid("LEDGERQ_AMQP_URL", "amqp:/x");
    assert_env_invalid("LEDGERQ_AMQP_URL", "AMQP://host");
}
END_TEST

START_TEST(test_amqp_url_error_hides_password)
{
    lq_config cfg;
    char err[512];
    ck_assert_int_eq(
        load_with("LEDGERQ_AMQP_URL", "http://admin:s3cr3t@host:5672/", &cfg, err, sizeof(err)),
        LQ_ERR_CONFIG);
    ck_assert_str_eq(err,
                     "invalid value for LEDGERQ_AMQP_URL: must start with amqp:// or amqps://");
    ck_assert_ptr_null(strstr(err, "s3cr3t"));
    lq_config_release(&cfg);

    clean_env();
    ck_assert_int_eq(lq_config_load_env(&cfg, err, sizeof(err)), LQ_OK);
    ck_assert_int_eq(
        lq_config_set(&cfg, "amqp-url", "rabbit://admin:s3cr3t@host", err, sizeof(err)),
        LQ_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "--amqp-url"));
    ck_assert_ptr_null(strstr(err, "s3cr3t"));
    /* A refused value leaves the previous one. */
    ck_assert_str_eq(cfg.amqp_url, "amqp://guest:guest@localhost:5672/%2f");
    lq_config_release(&cfg);
}
END_TEST

START_TEST(test_database_url)
{
    lq_config cfg = env_valid("LEDGERQ_DATABASE_URL", "host=db password=s3cr3t dbname=ledgerq");
    ck_assert_str_eq(cfg.database_url, "host=db password=s3cr3t dbname=ledgerq");
    lq_config_release(&cfg);

    char err[512];
    ck_assert_int_eq(load_with("LEDGERQ_DATABASE_URL", "", &cfg, err, sizeof(err)), LQ_ERR_CONFIG);
    ck_assert_str_eq(err, "invalid value for LEDGERQ_DATABASE_URL: must not be empty");
    lq_config_release(&cfg);
}
END_TEST

/* ---- *_FILE variants ---- */

/* A temporary file holding text; returns its path (static storage until the next call). */
static const char *temp_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/ledgerq-test-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(text);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

START_TEST(test_amqp_url_file)
{
    const char *path = temp_file("amqp://svc:from-file@rabbit:5672/%2f\n");
    lq_config cfg = env_valid("LEDGERQ_AMQP_URL_FILE", path);
    ck_assert_str_eq(cfg.amqp_url, "amqp://svc:from-file@rabbit:5672/%2f");
    lq_config_release(&cfg);
    unlink(path);
}
END_TEST

START_TEST(test_database_url_file_strips_trailing_whitespace)
{
    const char *path = temp_file("postgresql://svc:pw@db/ledgerq \r\n\n");
    lq_config cfg = env_valid("LEDGERQ_DATABASE_URL_FILE", path);
    ck_assert_str_eq(cfg.database_url, "postgresql://svc:pw@db/ledgerq");
    lq_config_release(&cfg);
    unlink(path);
}
END_TEST

START_TEST(test_file_and_value_both_set)
{
    const char *path = temp_file("amqp://a@b\n");
    lq_config cfg;
    char err[512];
    clean_env();
    setenv("LEDGERQ_AMQP_URL", "amqp://x@y", 1);
    setenv("LEDGERQ_AMQP_URL_FILE", path, 1);
    ck_assert_int_eq(lq_config_load_env(&cfg, err, sizeof(err)), LQ_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "LEDGERQ_AMQP_URL "));
    ck_assert_ptr_nonnull(strstr(err, "LEDGERQ_AMQP_URL_FILE"));
    lq_config_release(&cfg);

    clean_env();
    setenv("LEDGERQ_DATABASE_URL", "postgresql:///x", 1);
    setenv("LEDGERQ_DATABASE_URL_FILE", path, 1);
    ck_assert_int_eq(lq_config_load_env(&cfg, err, sizeof(err)), LQ_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "LEDGERQ_DATABASE_URL "));
    ck_assert_ptr_nonnull(strstr(err, "LEDGERQ_DATABASE_URL_FILE"));
    lq_config_release(&cfg);

    /* Reported before either value is checked; an empty value is still set. */
    clean_env();
    setenv("LEDGERQ_AMQP_URL", "", 1);
    setenv("LEDGERQ_AMQP_URL_FILE", "/nonexistent", 1);
    ck_assert_int_eq(lq_config_load_env(&cfg, err, sizeof(err)), LQ_ERR_CONFIG);
    ck_assert_str_eq(err, "LEDGERQ_AMQP_URL and LEDGERQ_AMQP_URL_FILE are both set: set only one");
    lq_config_release(&cfg);
    clean_env();
    unlink(path);
}
END_TEST

START_TEST(test_missing_file)
{
    const char *path = "/nonexistent/ledgerq/amqp-url";
    lq_config cfg;
    char err[512];
    ck_assert_int_eq(load_with("LEDGERQ_AMQP_URL_FILE", path, &cfg, err, sizeof(err)), LQ_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err, "LEDGERQ_AMQP_URL_FILE"));
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_nonnull(strstr(err, "No such file or directory"));
    lq_config_release(&cfg);

    assert_env_invalid("LEDGERQ_DATABASE_URL_FILE", "");
}
END_TEST

START_TEST(test_file_with_invalid_url_hides_it)
{
    const char *path = temp_file("http://admin:s3cr3t@host\n");
    lq_config cfg;
    char err[512];
    ck_assert_int_eq(load_with("LEDGERQ_AMQP_URL_FILE", path, &cfg, err, sizeof(err)),
                     LQ_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "LEDGERQ_AMQP_URL_FILE"));
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_null(strstr(err, "s3cr3t"));
    lq_config_release(&cfg);
    unlink(path);

    path = temp_file("\n");
    ck_assert_int_eq(load_with("LEDGERQ_DATABASE_URL_FILE", path, &cfg, err, sizeof(err)),
                     LQ_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "LEDGERQ_DATABASE_URL_FILE"));
    lq_config_release(&cfg);
    unlink(path);
}
END_TEST

START_TEST(test_file_flags)
{
    const char *path = temp_file("amqps://svc:pw@rabbit/%2f\n");
    lq_config cfg;
    char err[512];
    clean_env();
    ck_assert_int_eq(lq_config_load_env(&cfg, err, sizeof(err)), LQ_OK);
    ck_assert_int_eq(lq_config_set(&cfg, "amqp-url-file", path, err, sizeof(err)), LQ_OK);
    ck_assert_str_eq(cfg.amqp_url, "amqps://svc:pw@rabbit/%2f");
    unlink(path);

    ck_assert_int_eq(lq_config_set(&cfg, "database-url-file", "/nonexistent/db", err, sizeof(err)),
                     LQ_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err, "--database-url-file"));
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/db"));
    ck_assert_str_eq(cfg.database_url, "postgresql:///ledgerq");
    lq_config_release(&cfg);
}
END_TEST

/* ---- flags ---- */

START_TEST(test_flags_override_env)
{
    lq_config cfg;
    char err[512];
    clean_env();
    setenv("LEDGERQ_PREFETCH", "50", 1);
    setenv("LEDGERQ_QUEUE", "from-env", 1);
    ck_assert_int_eq(lq_config_load_env(&cfg, err, sizeof(err)), LQ_OK);
    ck_assert_int_eq(cfg.prefetch, 50);
    ck_assert_int_eq(lq_config_set(&cfg, "prefetch", "10", err, sizeof(err)), LQ_OK);
    ck_assert_int_eq(cfg.prefetch, 10);
    /* Setting a string twice replaces it (AddressSanitizer checks for the leak). */
    ck_assert_int_eq(lq_config_set(&cfg, "queue", "first", err, sizeof(err)), LQ_OK);
    ck_assert_int_eq(lq_config_set(&cfg, "queue", "second", err, sizeof(err)), LQ_OK);
    ck_assert_str_eq(cfg.queue, "second");
    ck_assert_int_eq(lq_config_set(&cfg, "declare", "false", err, sizeof(err)), LQ_OK);
    ck_assert(!cfg.declare);
    ck_assert_int_eq(lq_config_set(&cfg, "http-addr", "off", err, sizeof(err)), LQ_OK);
    ck_assert_str_eq(cfg.http_addr, "off");
    ck_assert_int_eq(lq_config_set(&cfg, "log-format", "text", err, sizeof(err)), LQ_OK);
    ck_assert_int_eq(cfg.log_format, LQ_LOG_TEXT);
    lq_config_release(&cfg);
    clean_env();
}
END_TEST

START_TEST(test_flag_message)
{
    lq_config cfg;
    char err[512];
    clean_env();
    ck_assert_int_eq(lq_config_load_env(&cfg, err, sizeof(err)), LQ_OK);
    ck_assert_int_eq(lq_config_set(&cfg, "prefetch", "0", err, sizeof(err)), LQ_ERR_CONFIG);
    ck_assert_str_eq(err,
                     "invalid value for --prefetch: \"0\" (expected an integer from 1 to 65535)");
    ck_assert_int_eq(cfg.prefetch, 1000);
    lq_config_release(&cfg);
}
END_TEST

START_TEST(test_unknown_flag)
{
    lq_config cfg;
    char err[512];
    clean_env();
    ck_assert_int_eq(lq_config_load_env(&cfg, err, sizeof(err)), LQ_OK);
    ck_assert_int_eq(lq_config_set(&cfg, "prefetch-count", "10", err, sizeof(err)),
                     LQ_ERR_NOT_FOUND);
    ck_assert_int_eq(lq_config_set(&cfg, "LEDGERQ_PREFETCH", "10", err, sizeof(err)),
                     LQ_ERR_NOT_FOUND);
    ck_assert_int_eq(lq_config_set(&cfg, "", "10", err, sizeof(err)), LQ_ERR_NOT_FOUND);
    ck_assert_int_eq(cfg.prefetch, 1000);
    lq_config_release(&cfg);
}
END_TEST

/* ---- the settings table ---- */

START_TEST(test_settings_list_every_variable)
{
    size_t n = 0;
    while (lq_config_setting(n))
        n++;
    ck_assert_uint_eq(n, N_VARS);

    for (size_t v = 0; v < N_VARS; v++) {
        bool found = false;
        for (size_t i = 0; i < n; i++)
            found = found || strcmp(lq_config_setting(i)->env, all_vars[v]) == 0;
        ck_assert_msg(found, "%s is not in the settings table", all_vars[v]);
    }
}
END_TEST

/* The table's defaults are the values a load without the environment gives, and valid values. */
START_TEST(test_settings_defaults_are_the_loaded_values)
{
    const lq_setting_info *s;
    lq_config cfg;
    char err[512];
    size_t n_def = 0;

    clean_env();
    ck_assert_int_eq(lq_config_load_env(&cfg, err, sizeof(err)), LQ_OK);
    for (size_t i = 0; (s = lq_config_setting(i)) != NULL; i++) {
        if (!s->def)
            continue;
        n_def++;
        ck_assert_msg(lq_config_set(&cfg, s->flag, s->def, err, sizeof(err)) == LQ_OK,
                      "--%s refuses its own default \"%s\": %s", s->flag, s->def, err);
    }
    lq_config_release(&cfg);
    /* Only the *_FILE variants and the TLS files have no default value. */
    ck_assert_uint_eq(n_def, N_VARS - 5);

    ck_assert_int_eq(lq_config_load_env(&cfg, err, sizeof(err)), LQ_OK);
    for (size_t i = 0; (s = lq_config_setting(i)) != NULL; i++) {
        if (strcmp(s->env, "LEDGERQ_PREFETCH") == 0)
            ck_assert_int_eq(cfg.prefetch, atoi(s->def));
        else if (strcmp(s->env, "LEDGERQ_BATCH_WAIT_MS") == 0)
            ck_assert_int_eq(cfg.batch_wait_ms, atoi(s->def));
        else if (strcmp(s->env, "LEDGERQ_QUEUE") == 0)
            ck_assert_str_eq(cfg.queue, s->def);
        else if (strcmp(s->env, "LEDGERQ_AMQP_URL") == 0)
            ck_assert_str_eq(cfg.amqp_url, s->def);
        else if (strcmp(s->env, "LEDGERQ_AMQP_CA_FILE") == 0)
            ck_assert_ptr_null(s->def);
    }
    lq_config_release(&cfg);
}
END_TEST

/* Meanings are one paragraph whose `literal values` are closed, for --help and the README. */
START_TEST(test_settings_meanings_are_one_paragraph)
{
    const lq_setting_info *s;

    for (size_t i = 0; (s = lq_config_setting(i)) != NULL; i++) {
        size_t ticks = 0;

        ck_assert_ptr_nonnull(s->help);
        ck_assert_msg(strcspn(s->help, "\n\t") == strlen(s->help), "--%s: a line break", s->flag);
        for (const char *p = s->help; *p; p++)
            ticks += *p == '`';
        ck_assert_msg(ticks % 2 == 0, "--%s: a ` is not closed: %s", s->flag, s->help);
    }
    ck_assert_ptr_null(lq_config_setting(N_VARS));
}
END_TEST

START_TEST(test_tls_files_must_be_readable)
{
    lq_config cfg;
    char err[512];
    char path[] = "/tmp/lq-test-ca-XXXXXX";
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    close(fd);
    /* Unset by default: the system's CA certificates, no client certificate. */
    ck_assert_int_eq(load_with(NULL, NULL, &cfg, err, sizeof(err)), LQ_OK);
    ck_assert_ptr_null(cfg.amqp_ca_file);
    ck_assert_ptr_null(cfg.amqp_cert_file);
    ck_assert_ptr_null(cfg.amqp_key_file);
    lq_config_release(&cfg);

    ck_assert_int_eq(load_with("LEDGERQ_AMQP_CA_FILE", path, &cfg, err, sizeof(err)), LQ_OK);
    ck_assert_str_eq(cfg.amqp_ca_file, path);
    lq_config_release(&cfg);

    ck_assert_int_eq(
        load_with("LEDGERQ_AMQP_KEY_FILE", "/nonexistent/key.pem", &cfg, err, sizeof(err)),
        LQ_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "LEDGERQ_AMQP_KEY_FILE"));
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/key.pem"));
    unlink(path);
}
END_TEST

START_TEST(test_settings_flags_are_accepted)
{
    const lq_setting_info *s;
    lq_config cfg;
    char err[512];
    clean_env();
    ck_assert_int_eq(lq_config_load_env(&cfg, err, sizeof(err)), LQ_OK);
    for (size_t i = 0; (s = lq_config_setting(i)) != NULL; i++) {
        ck_assert_ptr_nonnull(s->help);
        ck_assert_uint_gt(strlen(s->help), 0);
        /* "" is never valid, but the flag must be known. */
        int rc = lq_config_set(&cfg, s->flag, "", err, sizeof(err));
        ck_assert_msg(rc != LQ_ERR_NOT_FOUND, "--%s is listed but not accepted", s->flag);
    }
    lq_config_release(&cfg);
}
END_TEST

/* ---- redaction ---- */

static void assert_redacted(const char *url, const char *expected)
{
    char out[256];
    memset(out, 'x', sizeof(out));
    lq_config_redact_url(url, out, sizeof(out));
    ck_assert_str_eq(out, expected);
}

START_TEST(test_redact_uris)
{
    assert_redacted("amqp://user:secret@host:5672/%2f", "amqp://user:***@host:5672/%2f");
    assert_redacted("amqps://guest:guest@localhost/", "amqps://guest:***@localhost/");
    assert_redacted("postgresql://u:pw@h/db", "postgresql://u:***@h/db");
    assert_redacted("postgres://u:p%40ss@h:5432/db?sslmode=require",
                    "postgres://u:***@h:5432/db?sslmode=require");
    /* An unencoded '@' in the password is still hidden. */
    assert_redacted("amqp://u:p@ss@host/", "amqp://u:***@host/");
    assert_redacted("postgresql://u:@h/db", "postgresql://u:***@h/db");
    /* Unencoded delimiters in a password: hidden all the same. */
    assert_redacted("amqp://u:ab/c?d#e@host/%2f", "amqp://u:***@host/%2f");
    /* An '@' in the query may hide more than the password, never less. */
    char out[128];
    lq_config_redact_url("postgresql://u:pw@h/db?application_name=a@b", out, sizeof(out));
    ck_assert_ptr_null(strstr(out, "pw"));
}
END_TEST

START_TEST(test_redact_without_password)
{
    assert_redacted("amqp://user@host:5672/%2f", "amqp://user@host:5672/%2f");
    assert_redacted("amqp://localhost", "amqp://localhost");
    assert_redacted("postgresql:///ledgerq", "postgresql:///ledgerq");
    assert_redacted("postgresql://h:5432/db", "postgresql://h:5432/db");
    assert_redacted("host=db dbname=ledgerq", "host=db dbname=ledgerq");
    assert_redacted("", "");
}
END_TEST

START_TEST(test_redact_query)
{
    assert_redacted("postgresql://h/db?user=u&password=secret",
                    "postgresql://h/db?user=u&password=***");
    assert_redacted("postgresql://h/db?password=secret&sslmode=verify-full",
                    "postgresql://h/db?password=***&sslmode=verify-full");
    assert_redacted("postgresql://u:a@h/db?sslpassword=k&password=b",
                    "postgresql://u:***@h/db?sslpassword=***&password=***");
}
END_TEST

START_TEST(test_redact_conninfo)
{
    assert_redacted("host=x password=secret dbname=y", "host=x password=*** dbname=y");
    assert_redacted("host=x password='quoted value' dbname=y", "host=x password=*** dbname=y");
    assert_redacted("password='it\\'s secret'", "password=***");
    assert_redacted("host = x password = secret", "host = x password = ***");
    assert_redacted("  user=u\tpassword=s  ", "  user=u\tpassword=***  ");
    assert_redacted("host=x sslpassword=k", "host=x sslpassword=***");
    /* Not conninfo libpq would read: the rest is hidden rather than guessed at. */
    assert_redacted("host=x password secret", "host=x ***");
}
END_TEST

START_TEST(test_redact_truncates_safely)
{
    const char *url = "amqp://user:secret@host:5672/%2f";
    char out[64];

    for (size_t len = 1; len <= sizeof(out); len++) {
        memset(out, 'x', sizeof(out));
        lq_config_redact_url(url, out, len);
        ck_assert_uint_lt(strlen(out), len);
        ck_assert_ptr_null(strstr(out, "secret"));
        ck_assert_ptr_null(strstr(out, "sec"));
        ck_assert_int_eq(strncmp(out, "amqp://user:***@host:5672/%2f", strlen(out)), 0);
    }
    out[0] = 'x';
    lq_config_redact_url(url, out, 0);
    ck_assert_int_eq(out[0], 'x');
    lq_config_redact_url(NULL, out, sizeof(out));
    ck_assert_str_eq(out, "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    const int n_int = (int)(sizeof(int_settings) / sizeof(int_settings[0]));
    const int n_names = (int)(sizeof(name_vars) / sizeof(name_vars[0]));

    TCase *tc = tcase_create("defaults");
    tcase_add_checked_fixture(tc, clean_env, clean_env);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_release_zeroed_and_twice);
    tcase_add_test(tc, test_failed_load_leaves_nothing_to_free);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_checked_fixture(tc, clean_env, clean_env);
    tcase_add_loop_test(tc, test_int_edges_valid, 0, n_int);
    tcase_add_loop_test(tc, test_int_edges_invalid, 0, n_int);
    tcase_add_test(tc, test_int_message);
    tcase_add_test(tc, test_message_shows_control_characters_safely);
    tcase_add_test(tc, test_small_error_buffer);
    tcase_add_loop_test(tc, test_names, 0, n_names);
    tcase_add_test(tc, test_declare_spellings);
    tcase_add_test(tc, test_log_level);
    tcase_add_test(tc, test_log_format);
    tcase_add_test(tc, test_log_parsers);
    tcase_add_test(tc, test_http_addr);
    suite_add_tcase(s, tc);

    tc = tcase_create("secrets");
    tcase_add_checked_fixture(tc, clean_env, clean_env);
    tcase_add_test(tc, test_amqp_url);
    tcase_add_test(tc, test_amqp_url_error_hides_password);
    tcase_add_test(tc, test_database_url);
    tcase_add_test(tc, test_amqp_url_file);
    tcase_add_test(tc, test_database_url_file_strips_trailing_whitespace);
    tcase_add_test(tc, test_file_and_value_both_set);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_file_with_invalid_url_hides_it);
    tcase_add_test(tc, test_file_flags);
    suite_add_tcase(s, tc);

    tc = tcase_create("flags");
    tcase_add_checked_fixture(tc, clean_env, clean_env);
    tcase_add_test(tc, test_flags_override_env);
    tcase_add_test(tc, test_flag_message);
    tcase_add_test(tc, test_unknown_flag);
    tcase_add_test(tc, test_settings_list_every_variable);
    tcase_add_test(tc, test_settings_defaults_are_the_loaded_values);
    tcase_add_test(tc, test_settings_meanings_are_one_paragraph);
    tcase_add_test(tc, test_settings_flags_are_accepted);
    tcase_add_test(tc, test_tls_files_must_be_readable);
    suite_add_tcase(s, tc);

    tc = tcase_create("redaction");
    tcase_add_test(tc, test_redact_uris);
    tcase_add_test(tc, test_redact_without_password);
    tcase_add_test(tc, test_redact_query);
    tcase_add_test(tc, test_redact_conninfo);
    tcase_add_test(tc, test_redact_truncates_safely);
    suite_add_tcase(s, tc);

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
