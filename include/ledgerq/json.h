/*
 * A small JSON writer for output: result events, CLI --json, log lines.
 *
 * Integers are written exactly over the whole int64 range (cJSON keeps
 * numbers in a double and cannot).  Strings are escaped as RFC 8259 asks.
 * The writer does not check that calls nest correctly: callers do.
 */
#ifndef LEDGERQ_JSON_H
#define LEDGERQ_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lq_json {
    char *buf;   /* owned, NUL-terminated */
    size_t len;  /* bytes written, without the NUL */
    size_t cap;  /* bytes allocated */
    bool failed; /* an allocation failed: the text is incomplete */
    bool need_comma;
} lq_json;

/* Start an empty writer.  Nothing is allocated until the first write. */
void lq_json_init(lq_json *w);

/* Release the buffer.  Accepts a writer that never wrote. */
void lq_json_release(lq_json *w);

/*
 * Hand over the text: returns the NUL-terminated buffer (caller frees with
 * free()) and resets w, or NULL (and releases w) when an allocation failed.
 */
char *lq_json_steal(lq_json *w);

void lq_json_object_begin(lq_json *w);
void lq_json_object_end(lq_json *w);
void lq_json_array_begin(lq_json *w);
void lq_json_array_end(lq_json *w);

/* Write an object key; the next call writes its value. */
void lq_json_key(lq_json *w, const char *key);

void lq_json_string(lq_json *w, const char *s); /* NULL writes null */
void lq_json_string_len(lq_json *w, const char *s, size_t len);
void lq_json_int(lq_json *w, int64_t v);
void lq_json_uint(lq_json *w, uint64_t v);
void lq_json_bool(lq_json *w, bool v);
void lq_json_null(lq_json *w);

/* Write text that is already JSON (for example stored metadata) as a value. */
void lq_json_raw(lq_json *w, const char *json);

/* Append text outside the JSON structure (for example a newline). */
void lq_json_append(lq_json *w, const char *s, size_t len);

/* Append v in decimal, outside the JSON structure (without printf: the hot path writes many). */
void lq_json_append_int(lq_json *w, int64_t v);

#endif
