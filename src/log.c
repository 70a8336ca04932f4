/*
 * Logging: one line per call on stderr, JSON for machines or text for people.
 *
 * Each line is written with one write(2) while holding a mutex, so lines of
 * the worker and the HTTP thread never interleave.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ledgerq/json.h"
#include "ledgerq/log.h"

/*
 * The program's only mutable globals: every module logs, from the worker's
 * thread and the HTTP thread, and handing these to each call would thread
 * them through every function.  Set at start by lq_log_setup(), guarded by
 * lock.
 */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static lq_log_level threshold = LQ_LOG_INFO;
static lq_log_format format = LQ_LOG_JSON;
static char worker_name[128]; /* "" when unset */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void lq_log_setup(lq_log_level level, lq_log_format fmt, const char *worker)
{
    pthread_mutex_lock(&lock);
    threshold = level;
    format = fmt;
    snprintf(worker_name, sizeof(worker_name), "%s", worker ? worker : "");
    pthread_mutex_unlock(&lock);
}

/* Case does not matter: LEDGERQ_LOG_LEVEL=INFO is what an operator means. */
int lq_log_level_parse(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++) {
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    }
    return -1;
}

int lq_log_format_parse(const char *s)
{
    if (!s)
        return -1;
    if (strcasecmp(s, "json") == 0)
        return LQ_LOG_JSON;
    if (strcasecmp(s, "text") == 0)
        return LQ_LOG_TEXT;
    return -1;
}

static const char *level_name(lq_log_level level)
{
    if ((int)level < 0 || (int)level >= (int)(sizeof(level_names) / sizeof(level_names[0])))
        return "error";
    return level_names[level];
}

/* "2026-11-22T10:00:00" and the fraction of the second, in digits (3 or 6). */
static void timestamp(char *out, size_t out_len, int digits)
{
    struct timespec now;
    struct tm tm;
    char date[32];

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    if (digits == 3)
        snprintf(out, out_len, "%s.%03ldZ", date, now.tv_nsec / 1000000);
    else
        snprintf(out, out_len, "%s.%06ldZ", date, now.tv_nsec / 1000);
}

/* Write all of buf to stderr; a failing stderr has nowhere to be reported. */
static void write_line(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Text lines stay one line: control characters become spaces. */
static void put_text(char *out, size_t out_len, size_t *pos, const char *s)
{
    for (; *s && *pos + 1 < out_len; s++) {
        unsigned char c = (unsigned char)*s;
        out[(*pos)++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[*pos] = '\0';
}

static void emit_text(lq_log_level level, const lq_log_ctx *ctx, const char *worker,
                      const char *msg)
{
    char line[4096];
    char ts[64];
    char num[48];
    size_t pos = 0;

    timestamp(ts, sizeof(ts), 3);
    put_text(line, sizeof(line), &pos, ts);
    put_text(line, sizeof(line), &pos, " ");
    snprintf(num, sizeof(num), "%-5s ", level_name(level));
    put_text(line, sizeof(line), &pos, num);
    put_text(line, sizeof(line), &pos, msg);
    if (ctx && ctx->payment_id) {
        put_text(line, sizeof(line), &pos, " payment_id=");
        put_text(line, sizeof(line), &pos, ctx->payment_id);
    }
    if (ctx && ctx->delivery_tag) {
        snprintf(num, sizeof(num), " delivery_tag=%" PRIu64, ctx->delivery_tag);
        put_text(line, sizeof(line), &pos, num);
    }
    if (worker[0]) {
        put_text(line, sizeof(line), &pos, " worker=");
        put_text(line, sizeof(line), &pos, worker);
    }
    /* The newline always fits: a long message is cut, never the line end. */
    if (pos + 1 >= sizeof(line))
        pos = sizeof(line) - 2;
    line[pos++] = '\n';
    write_line(line, pos);
}

static void emit_json(lq_log_level level, const lq_log_ctx *ctx, const char *worker,
                      const char *msg)
{
    static const char no_memory[] =
        "{\"level\":\"error\",\"msg\":\"out of memory while logging\"}\n";
    char ts[64];
    lq_json w;

    timestamp(ts, sizeof(ts), 6);
    lq_json_init(&w);
    lq_json_object_begin(&w);
    lq_json_key(&w, "ts");
    lq_json_string(&w, ts);
    lq_json_key(&w, "level");
    lq_json_string(&w, level_name(level));
    lq_json_key(&w, "msg");
    lq_json_string(&w, msg);
    if (worker[0]) {
        lq_json_key(&w, "worker");
        lq_json_string(&w, worker);
    }
    if (ctx && ctx->payment_id) {
        lq_json_key(&w, "payment_id");
        lq_json_string(&w, ctx->payment_id);
    }
    if (ctx && ctx->delivery_tag) {
        lq_json_key(&w, "delivery_tag");
        lq_json_uint(&w, ctx->delivery_tag);
    }
    lq_json_object_end(&w);
    lq_json_append(&w, "\n", 1);

    char *line = lq_json_steal(&w);
    if (line) {
        write_line(line, strlen(line));
        free(line);
    } else {
        write_line(no_memory, sizeof(no_memory) - 1);
    }
}

void lq_log(lq_log_level level, const lq_log_ctx *ctx, const char *fmt, ...)
{
    char small[1024];
    char *msg = small;
    char *big = NULL;
    va_list ap;

    pthread_mutex_lock(&lock);
    if (level < threshold)
        goto out;

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        msg = "(message could not be formatted)";
    } else if ((size_t)n >= sizeof(small)) {
        /* Rare long lines get the heap; without memory, the cut message is logged. */
        big = malloc((size_t)n + 1);
        if (big) {
            va_start(ap, fmt);
            vsnprintf(big, (size_t)n + 1, fmt, ap);
            va_end(ap);
            msg = big;
        }
    }

    if (format == LQ_LOG_TEXT)
        emit_text(level, ctx, worker_name, msg);
    else
        emit_json(level, ctx, worker_name, msg);

out:
    pthread_mutex_unlock(&lock);
    free(big);
}
