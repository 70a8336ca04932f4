/*
 * Logging: one JSON object per line on stderr (or "text" for people).
 * The level and format are the only mutable globals of the program, set
 * once at start.
 */
#ifndef LEDGERQ_LOG_H
#define LEDGERQ_LOG_H

#include <stdint.h>

typedef enum lq_log_level {
    LQ_LOG_DEBUG = 0,
    LQ_LOG_INFO,
    LQ_LOG_WARN,
    LQ_LOG_ERROR,
} lq_log_level;

typedef enum lq_log_format {
    LQ_LOG_JSON = 0,
    LQ_LOG_TEXT,
} lq_log_format;

/* Where known, what a log line is about. */
typedef struct lq_log_ctx {
    const char *payment_id; /* NULL when unknown */
    uint64_t delivery_tag;  /* 0 when unknown */
} lq_log_ctx;

/* Set the threshold, the format and the worker name put on every line. */
void lq_log_setup(lq_log_level level, lq_log_format format, const char *worker);

/* Parse "debug|info|warn|error" / "json|text"; -1 when unknown. */
int lq_log_level_parse(const char *s);
int lq_log_format_parse(const char *s);

/* Log one line; ctx may be NULL. */
void lq_log(lq_log_level level, const lq_log_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define lq_debug(...) lq_log(LQ_LOG_DEBUG, NULL, __VA_ARGS__)
#define lq_info(...)  lq_log(LQ_LOG_INFO, NULL, __VA_ARGS__)
#define lq_warn(...)  lq_log(LQ_LOG_WARN, NULL, __VA_ARGS__)
#define lq_error(...) lq_log(LQ_LOG_ERROR, NULL, __VA_ARGS__)

#endif
