/*
 * Settings (docs/protocol.md section 2): one table says, for each setting, its flag,
 * its environment variable, its default, how its value is checked and where
 * it goes in lq_config.  Loading, flags, --help and the README's settings
 * table all come from that table.
 *
 * An environment variable that is set but empty is an invalid value, not
 * "unset": LEDGERQ_PREFETCH= is more likely a broken deployment template
 * than a wish for the default, and failing at start says so.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>

#include "ledgerq/config.h"
#include "ledgerq/error.h"
#include "ledgerq/log.h"

/* How a setting's value is checked and stored. */
typedef enum setting_kind {
    KIND_AMQP_URL, /* char *, starts with amqp:// or amqps://, secret */
    KIND_DB_URL,   /* char *, non-empty, secret */
    KIND_INT,      /* int within [min, max] */
    KIND_ADDR,     /* char *, "off" or host:port */
    KIND_NAME,     /* char *, an AMQP name: 1..255 bytes, no control characters */
    KIND_LEVEL,    /* int, an lq_log_level */
    KIND_FORMAT,   /* int, an lq_log_format */
    KIND_BOOL,     /* bool */
    KIND_PATH,     /* char *, a readable file; unset by default */
} setting_kind;

typedef struct setting {
    lq_setting_info info; /* flag, variable, default, meaning: what --help and the README show */
    setting_kind kind;
    bool from_file; /* the value is the content of the file the setting names */
    size_t offset;  /* of the field in lq_config */
    int min, max;   /* KIND_INT only */
} setting;

#define FIELD(f) offsetof(lq_config, f)

/*
 * The README's settings table is generated from this one (`ninja -C build
 * readme-settings`), and a unit test fails when they differ.
 */
static const setting settings[] = {
    {.info = {"amqp-url", "LEDGERQ_AMQP_URL", "amqp://guest:guest@localhost:5672/%2f",
              "the broker's URL, `amqp://`, or `amqps://` for TLS"},
     .kind = KIND_AMQP_URL,
     .offset = FIELD(amqp_url)},
    {.info = {"amqp-url-file", "LEDGERQ_AMQP_URL_FILE", NULL,
              "read the broker's URL from this file (Kubernetes Secret mounts); set it or "
              "`LEDGERQ_AMQP_URL`, not both"},
     .kind = KIND_AMQP_URL,
     .from_file = true,
     .offset = FIELD(amqp_url)},
    {.info = {"database-url", "LEDGERQ_DATABASE_URL", "postgresql:///ledgerq",
              "libpq URI or conninfo; libpq's `PG*` variables also apply"},
     .kind = KIND_DB_URL,
     .offset = FIELD(database_url)},
    {.info = {"database-url-file", "LEDGERQ_DATABASE_URL_FILE", NULL,
              "read the libpq URI or conninfo from this file (Kubernetes Secret mounts); set it or "
              "`LEDGERQ_DATABASE_URL`, not both"},
     .kind = KIND_DB_URL,
     .from_file = true,
     .offset = FIELD(database_url)},
    {.info = {"prefetch", "LEDGERQ_PREFETCH", "1000", "consumer prefetch (1-65535)"},
     .kind = KIND_INT,
     .offset = FIELD(prefetch),
     .min = 1,
     .max = 65535},
    {.info = {"batch-max", "LEDGERQ_BATCH_MAX", "500",
              "most payments per database transaction (1-10000)"},
     .kind = KIND_INT,
     .offset = FIELD(batch_max),
     .min = 1,
     .max = 10000},
    {.info = {"batch-wait-ms", "LEDGERQ_BATCH_WAIT_MS", "0",
              "longest wait to fill a batch once its first payment arrived, in milliseconds "
              "(0-60000); `0` takes what has arrived: while the database works on one batch, "
              "the next one gathers by itself"},
     .kind = KIND_INT,
     .offset = FIELD(batch_wait_ms),
     .min = 0,
     .max = 60000},
    {.info = {"max-attempts", "LEDGERQ_MAX_ATTEMPTS", "5",
              "tries of a payment that fails for an unexpected reason before it is dead-lettered "
              "(1-1000)"},
     .kind = KIND_INT,
     .offset = FIELD(max_attempts),
     .min = 1,
     .max = 1000},
    {.info = {"http-addr", "LEDGERQ_HTTP_ADDR", "0.0.0.0:8080",
              "health and metrics endpoint, `host:port` or `[ipv6]:port`; `off` disables it"},
     .kind = KIND_ADDR,
     .offset = FIELD(http_addr)},
    {.info = {"log-level", "LEDGERQ_LOG_LEVEL", "info", "`debug`, `info`, `warn` or `error`"},
     .kind = KIND_LEVEL,
     .offset = FIELD(log_level)},
    {.info = {"log-format", "LEDGERQ_LOG_FORMAT", "json", "`json` or `text`"},
     .kind = KIND_FORMAT,
     .offset = FIELD(log_format)},
    {.info = {"shutdown-timeout-ms", "LEDGERQ_SHUTDOWN_TIMEOUT_MS", "25000",
              "longest graceful drain after SIGTERM, in milliseconds (1-3600000)"},
     .kind = KIND_INT,
     .offset = FIELD(shutdown_timeout_ms),
     .min = 1,
     .max = 3600000},
    {.info = {"exchange", "LEDGERQ_EXCHANGE", "payments",
              "exchange upstream services publish payment commands to"},
     .kind = KIND_NAME,
     .offset = FIELD(exchange)},
    {.info = {"queue", "LEDGERQ_QUEUE", "payments.process", "queue the worker consumes"},
     .kind = KIND_NAME,
     .offset = FIELD(queue)},
    {.info = {"results-exchange", "LEDGERQ_RESULTS_EXCHANGE", "payments.results",
              "exchange result events are published to"},
     .kind = KIND_NAME,
     .offset = FIELD(results_exchange)},
    {.info = {"dlx", "LEDGERQ_DLX", "payments.dlx", "dead-letter exchange"},
     .kind = KIND_NAME,
     .offset = FIELD(dlx)},
    {.info = {"dlq", "LEDGERQ_DLQ", "payments.dead", "dead-letter queue"},
     .kind = KIND_NAME,
     .offset = FIELD(dlq)},
    {.info = {"delivery-limit", "LEDGERQ_DELIVERY_LIMIT", "10",
              "the delivery limit declared on the work queue, `LEDGERQ_QUEUE` (1-1000000)"},
     .kind = KIND_INT,
     .offset = FIELD(delivery_limit),
     .min = 1,
     .max = 1000000},
    {.info = {"amqp-ca-file", "LEDGERQ_AMQP_CA_FILE", NULL,
              "`amqps://`: CA certificates (PEM) that verify the broker; unset: the system's, "
              "`/etc/ssl/certs/ca-certificates.crt`"},
     .kind = KIND_PATH,
     .offset = FIELD(amqp_ca_file)},
    {.info = {"amqp-cert-file", "LEDGERQ_AMQP_CERT_FILE", NULL,
              "`amqps://`: a client certificate (PEM); set both it and `LEDGERQ_AMQP_KEY_FILE`, or "
              "neither"},
     .kind = KIND_PATH,
     .offset = FIELD(amqp_cert_file)},
    {.info = {"amqp-key-file", "LEDGERQ_AMQP_KEY_FILE", NULL,
              "`amqps://`: the client certificate's key (PEM, not encrypted); set both it and "
              "`LEDGERQ_AMQP_CERT_FILE`, or neither"},
     .kind = KIND_PATH,
     .offset = FIELD(amqp_key_file)},
    {.info = {"declare", "LEDGERQ_DECLARE", "true",
              "the worker (and `publish`) declare the topology at start: `true`, or `false` where "
              "operators manage it"},
     .kind = KIND_BOOL,
     .offset = FIELD(declare)},
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

/* A secret file larger than this is not a URL but a mistake. */
#define MAX_FILE_SIZE 65536

const lq_setting_info *lq_config_setting(size_t i)
{
    return i < N_SETTINGS ? &settings[i].info : NULL;
}

static void fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    if (!err || err_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/*
 * The value as it may appear in a one-line message: control characters
 * shown as '?', long values cut with "...".
 */
static void quote_value(const char *value, char *out, size_t out_len)
{
    const size_t shown = 64;
    size_t i = 0, o = 0;

    for (; value[i] && i < shown && o + 1 < out_len; i++) {
        unsigned char c = (unsigned char)value[i];
        out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    out[o] = '\0';
    if (value[i] && o + 4 < out_len)
        strcpy(out + o, "...");
}

static void fail_value(char *err, size_t err_len, const char *name, const char *value,
                       const char *expected)
{
    char shown[80];

    quote_value(value, shown, sizeof(shown));
    fail(err, err_len, "invalid value for %s: \"%s\" (expected %s)", name, shown, expected);
}

/* A strict decimal integer: digits only, no sign, no spaces, within [min, max]. */
static bool parse_int(const char *s, int min, int max, int *ret)
{
    char *end;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *ret = (int)v;
    return true;
}

/* Case does not matter, as for the log level. */
static bool parse_bool(const char *s, bool *ret)
{
    static const char *const yes[] = {"true", "1", "yes"};
    static const char *const no[] = {"false", "0", "no"};

    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *ret = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *ret = false;
            return true;
        }
    }
    return false;
}

static bool has_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

/* An AMQP short string: 1 to 255 bytes, no control characters. */
static bool valid_name(const char *s)
{
    size_t len = strlen(s);
    return len >= 1 && len <= 255 && !has_control(s, len);
}

/* "off", "host:port" or "[v6]:port", with a non-empty host and a port from 1 to 65535. */
static bool valid_addr(const char *s)
{
    const char *port;
    int n;

    if (strcmp(s, "off") == 0)
        return true;
    if (has_control(s, strlen(s)) || strchr(s, ' '))
        return false;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close == s + 1 || close[1] != ':')
            return false;
        port = close + 2;
    } else {
        const char *colon = strchr(s, ':');
        /* An IPv6 address needs its brackets: one colon only. */
        if (!colon || colon == s || strchr(colon + 1, ':'))
            return false;
        port = colon + 1;
    }
    return parse_int(port, 1, 65535, &n);
}

/*
 * Check value for setting s and store it in cfg, replacing (and freeing) the
 * old value.  name is what messages call the setting ("LEDGERQ_PREFETCH",
 * "--prefetch").  URLs are secrets: messages never echo them.  cfg is left
 * unchanged on failure.
 */
static int store(lq_config *cfg, const setting *s, const char *value, const char *name, char *err,
                 size_t err_len)
{
    void *field = (char *)cfg + s->offset;
    char expected[64];
    int n;
    bool b;

    switch (s->kind) {
    case KIND_AMQP_URL:
        if (strncmp(value, "amqp://", 7) != 0 && strncmp(value, "amqps://", 8) != 0) {
            fail(err, err_len, "invalid value for %s: must start with amqp:// or amqps://", name);
            return LQ_ERR_CONFIG;
        }
        break;
    case KIND_DB_URL:
        if (value[0] == '\0') {
            fail(err, err_len, "invalid value for %s: must not be empty", name);
            return LQ_ERR_CONFIG;
        }
        break;
    case KIND_ADDR:
        if (!valid_addr(value)) {
            fail_value(err, err_len, name, value,
                       "host:port with a port from 1 to 65535, [ipv6]:port, or off");
            return LQ_ERR_CONFIG;
        }
        break;
    case KIND_PATH:
        if (access(value, R_OK) != 0) {
            fail(err, err_len, "invalid value for %s: could not read file \"%.200s\": %s", name,
                 value, strerror(errno));
            return LQ_ERR_CONFIG;
        }
        break;
    case KIND_NAME:
        if (!valid_name(value)) {
            fail_value(err, err_len, name, value,
                       "a name of 1 to 255 bytes without control characters");
            return LQ_ERR_CONFIG;
        }
        break;
    case KIND_INT:
        if (!parse_int(value, s->min, s->max, &n)) {
            snprintf(expected, sizeof(expected), "an integer from %d to %d", s->min, s->max);
            fail_value(err, err_len, name, value, expected);
            return LQ_ERR_CONFIG;
        }
        *(int *)field = n;
        return LQ_OK;
    case KIND_LEVEL:
        n = lq_log_level_parse(value);
        if (n < 0) {
            fail_value(err, err_len, name, value, "debug, info, warn or error");
            return LQ_ERR_CONFIG;
        }
        *(int *)field = n;
        return LQ_OK;
    case KIND_FORMAT:
        n = lq_log_format_parse(value);
        if (n < 0) {
            fail_value(err, err_len, name, value, "json or text");
            return LQ_ERR_CONFIG;
        }
        *(int *)field = n;
        return LQ_OK;
    case KIND_BOOL:
        if (!parse_bool(value, &b)) {
            fail_value(err, err_len, name, value, "true or false");
            return LQ_ERR_CONFIG;
        }
        *(bool *)field = b;
        return LQ_OK;
    }

    /* The string kinds: the value passed its check above. */
    char *copy = strdup(value);
    if (!copy) {
        fail(err, err_len, "out of memory");
        return LQ_ERR_NOMEM;
    }
    free(*(char **)field);
    *(char **)field = copy;
    return LQ_OK;
}

/*
 * Read the file at path into *ret (caller frees), trailing whitespace
 * (a newline from an editor or `echo`) stripped.  name is the variable or
 * flag that named the file.
 */
static int read_file(const char *path, const char *name, char **ret, char *err, size_t err_len)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0;
    int rc = LQ_ERR_IO;

    f = fopen(path, "r");
    if (!f) {
        fail(err, err_len, "could not open file \"%s\" named by %s: %s", path, name,
             strerror(errno));
        goto out;
    }
    buf = malloc(MAX_FILE_SIZE + 1);
    if (!buf) {
        fail(err, err_len, "out of memory");
        rc = LQ_ERR_NOMEM;
        goto out;
    }
    len = fread(buf, 1, MAX_FILE_SIZE + 1, f);
    if (ferror(f)) {
        fail(err, err_len, "could not read file \"%s\" named by %s: %s", path, name,
             strerror(errno));
        goto out;
    }
    if (len > MAX_FILE_SIZE) {
        fail(err, err_len, "file \"%s\" named by %s is larger than %d bytes", path, name,
             MAX_FILE_SIZE);
        rc = LQ_ERR_CONFIG;
        goto out;
    }
    if (memchr(buf, '\0', len)) {
        fail(err, err_len, "file \"%s\" named by %s contains a NUL byte", path, name);
        rc = LQ_ERR_CONFIG;
        goto out;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
                       buf[len - 1] == '\t'))
        len--;
    buf[len] = '\0';
    *ret = buf;
    buf = NULL;
    rc = LQ_OK;
out:
    free(buf);
    if (f)
        fclose(f);
    return rc;
}

/* Apply value to setting s; for a *_FILE setting value is the path. */
static int apply(lq_config *cfg, const setting *s, const char *value, const char *name, char *err,
                 size_t err_len)
{
    char *content = NULL;
    char file_name[512];
    char shown[256];
    int rc;

    if (!s->from_file)
        return store(cfg, s, value, name, err, err_len);

    if (value[0] == '\0') {
        fail(err, err_len, "invalid value for %s: \"\" (expected a file path)", name);
        return LQ_ERR_CONFIG;
    }
    rc = read_file(value, name, &content, err, err_len);
    if (rc != LQ_OK)
        goto out;

    /* Messages about the content name the file; the content itself is a secret. */
    quote_value(value, shown, sizeof(shown));
    snprintf(file_name, sizeof(file_name), "%s (file \"%s\")", name, shown);
    rc = store(cfg, s, content, file_name, err, err_len);
out:
    free(content);
    return rc;
}

/* The setting whose value the *_FILE setting s also gives. */
static const setting *file_twin(const setting *s)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (!settings[i].from_file && settings[i].offset == s->offset)
            return &settings[i];
    }
    return NULL;
}

/*
 * cfg is written only on success; on failure it is left zeroed, so that a
 * caller's lq_config_release() is harmless either way.
 */
int lq_config_load_env(lq_config *cfg, char *err, size_t err_len)
{
    lq_config tmp;
    int rc = LQ_OK;

    memset(&tmp, 0, sizeof(tmp));
    memset(cfg, 0, sizeof(*cfg));
    if (err && err_len)
        err[0] = '\0';

    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (!settings[i].info.def)
            continue;
        rc = store(&tmp, &settings[i], settings[i].info.def, settings[i].info.env, err, err_len);
        if (rc != LQ_OK)
            goto out;
    }

    /* Both X and X_FILE set is reported first: neither value is the one to check. */
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting *twin = settings[i].from_file ? file_twin(&settings[i]) : NULL;
        if (twin && getenv(settings[i].info.env) && getenv(twin->info.env)) {
            fail(err, err_len, "%s and %s are both set: set only one", twin->info.env,
                 settings[i].info.env);
            rc = LQ_ERR_CONFIG;
            goto out;
        }
    }

    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting *s = &settings[i];
        const char *value = getenv(s->info.env);

        if (!value)
            continue;
        rc = apply(&tmp, s, value, s->info.env, err, err_len);
        if (rc != LQ_OK)
            goto out;
    }

    *cfg = tmp;
    memset(&tmp, 0, sizeof(tmp));
out:
    lq_config_release(&tmp);
    return rc;
}

int lq_config_set(lq_config *cfg, const char *flag, const char *value, char *err, size_t err_len)
{
    char name[64];

    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (strcmp(settings[i].info.flag, flag) != 0)
            continue;
        snprintf(name, sizeof(name), "--%s", flag);
        return apply(cfg, &settings[i], value, name, err, err_len);
    }
    fail(err, err_len, "unknown setting --%s", flag);
    return LQ_ERR_NOT_FOUND;
}

void lq_config_release(lq_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting *s = &settings[i];
        switch (s->kind) {
        case KIND_AMQP_URL:
        case KIND_DB_URL:
        case KIND_ADDR:
        case KIND_NAME:
        case KIND_PATH: {
            char **field = (char **)((char *)cfg + s->offset);
            free(*field);
            *field = NULL;
            break;
        }
        case KIND_INT:
        case KIND_LEVEL:
        case KIND_FORMAT:
        case KIND_BOOL:
            break;
        }
    }
}

/* A bounded output: appends what fits, always NUL-terminated. */
typedef struct out_buf {
    char *buf;
    size_t len, cap;
} out_buf;

static void out_put(out_buf *o, const char *s, size_t len)
{
    if (o->cap == 0)
        return;
    size_t room = o->cap - 1 - o->len;
    if (len > room)
        len = room;
    memcpy(o->buf + o->len, s, len);
    o->len += len;
    o->buf[o->len] = '\0';
}

/* Keys whose values are secrets: "password", and libpq's "sslpassword". */
static bool secret_key(const char *key, size_t len)
{
    static const char suffix[] = "password";
    const size_t n = sizeof(suffix) - 1;
    return len >= n && strncasecmp(key + len - n, suffix, n) == 0;
}

/* scheme://[user[:password]@]host...[?k=v&...][#...] */
static void redact_uri(const char *url, const char *authority, out_buf *o)
{
    const char *p = authority;
    /*
     * The userinfo ends at the last '@' of the whole URL, not of the
     * authority: a password with an unencoded '@', '/', '?' or '#' then
     * stays hidden.  An '@' later in the path or query hides too much in
     * a rare case, never too little.
     */
    const char *at = strrchr(authority, '@');

    out_put(o, url, (size_t)(authority - url));
    if (at) {
        const char *colon = memchr(authority, ':', (size_t)(at - authority));
        if (colon) {
            out_put(o, authority, (size_t)(colon + 1 - authority));
            out_put(o, "***", 3);
            p = at;
        }
    }

    const char *query = strchr(p, '?');
    if (!query) {
        out_put(o, p, strlen(p));
        return;
    }
    out_put(o, p, (size_t)(query + 1 - p));
    p = query + 1;
    while (*p && *p != '#') {
        size_t pair_len = strcspn(p, "&#");
        const char *eq = memchr(p, '=', pair_len);
        if (eq && secret_key(p, (size_t)(eq - p))) {
            out_put(o, p, (size_t)(eq + 1 - p));
            out_put(o, "***", 3);
        } else {
            out_put(o, p, pair_len);
        }
        p += pair_len;
        if (*p == '&')
            out_put(o, p++, 1);
    }
    out_put(o, p, strlen(p));
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* key = value pairs as libpq reads them; value unquoted or 'single quoted' with \ escapes. */
static void redact_conninfo(const char *p, out_buf *o)
{
    while (*p) {
        const char *start = p;
        while (is_space(*p))
            p++;
        const char *key = p;
        while (*p && *p != '=' && !is_space(*p))
            p++;
        size_t key_len = (size_t)(p - key);
        while (is_space(*p))
            p++;
        if (key_len == 0 && *p == '\0') {
            out_put(o, start, (size_t)(p - start));
            return;
        }
        if (*p != '=' || key_len == 0) {
            /* Not conninfo libpq would accept: hide the rest rather than guess. */
            out_put(o, start, (size_t)(key - start));
            out_put(o, "***", 3);
            return;
        }
        p++;
        while (is_space(*p))
            p++;
        out_put(o, start, (size_t)(p - start));

        const char *value = p;
        if (*p == '\'') {
            p++;
            while (*p && *p != '\'') {
                if (*p == '\\' && p[1])
                    p++;
                p++;
            }
            if (*p == '\'')
                p++;
        } else {
            while (*p && !is_space(*p)) {
                if (*p == '\\' && p[1])
                    p++;
                p++;
            }
        }
        if (secret_key(key, key_len))
            out_put(o, "***", 3);
        else
            out_put(o, value, (size_t)(p - value));
    }
}

void lq_config_redact_url(const char *url, char *out, size_t out_len)
{
    out_buf o = {out, 0, out_len};

    if (out_len == 0)
        return;
    out[0] = '\0';
    if (!url)
        return;

    /* A URI has a scheme: letters, digits, '+', '-', '.' and then "://". */
    const char *p = url;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '+' || *p == '-' || *p == '.')
        p++;
    if (p != url && strncmp(p, "://", 3) == 0)
        redact_uri(url, p + 3, &o);
    else
        redact_conninfo(url, &o);
}
