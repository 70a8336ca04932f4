/* A JSON writer: a growable buffer, exact integers, RFC 8259 string escapes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/json.h"

void lq_json_init(lq_json *w)
{
    memset(w, 0, sizeof(*w));
}

void lq_json_release(lq_json *w)
{
    free(w->buf);
    lq_json_init(w);
}

char *lq_json_steal(lq_json *w)
{
    char *text = NULL;

    if (w->failed)
        goto out;
    if (!w->buf) {
        /* An empty writer hands over "", so that NULL means only "no memory". */
        text = malloc(1);
        if (text)
            text[0] = '\0';
        goto out;
    }
    text = w->buf;
    w->buf = NULL;
out:
    lq_json_release(w);
    return text;
}

/* Make room for extra more bytes and the NUL; false (and w->failed) when out of memory. */
static bool reserve(lq_json *w, size_t extra)
{
    if (w->failed)
        return false;
    if (w->buf && extra < w->cap - w->len)
        return true;

    size_t need;
    if (__builtin_add_overflow(w->len, extra, &need) || __builtin_add_overflow(need, 1, &need))
        goto fail;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < need) {
        if (__builtin_mul_overflow(cap, 2, &cap))
            goto fail;
    }
    char *buf = realloc(w->buf, cap);
    if (!buf)
        goto fail;
    w->buf = buf;
    w->cap = cap;
    return true;

fail:
    w->failed = true;
    return false;
}

static void put(lq_json *w, const char *s, size_t len)
{
    if (!reserve(w, len))
        return;
    memcpy(w->buf + w->len, s, len);
    w->len += len;
    w->buf[w->len] = '\0';
}

/* Before a key or a value: the comma that separates it from the previous one. */
static void separate(lq_json *w)
{
    if (w->need_comma)
        put(w, ",", 1);
}

/* Write a scalar value's text. */
static void value(lq_json *w, const char *text, size_t len)
{
    separate(w);
    put(w, text, len);
    w->need_comma = true;
}

static void quoted(lq_json *w, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0; /* start of the bytes not yet written */

    put(w, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t esc_len = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue; /* bytes >= 0x80 pass through: callers give UTF-8 */
        esc[0] = '\\';
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            esc_len = 6;
            break;
        }
        put(w, s + run, i - run);
        put(w, esc, esc_len);
        run = i + 1;
    }
    put(w, s + run, len - run);
    put(w, "\"", 1);
}

void lq_json_object_begin(lq_json *w)
{
    separate(w);
    put(w, "{", 1);
    w->need_comma = false;
}

void lq_json_object_end(lq_json *w)
{
    put(w, "}", 1);
    w->need_comma = true;
}

void lq_json_array_begin(lq_json *w)
{
    separate(w);
    put(w, "[", 1);
    w->need_comma = false;
}

void lq_json_array_end(lq_json *w)
{
    put(w, "]", 1);
    w->need_comma = true;
}

void lq_json_key(lq_json *w, const char *key)
{
    separate(w);
    quoted(w, key, strlen(key));
    put(w, ":", 1);
    w->need_comma = false;
}

void lq_json_string(lq_json *w, const char *s)
{
    if (!s) {
        lq_json_null(w);
        return;
    }
    lq_json_string_len(w, s, strlen(s));
}

void lq_json_string_len(lq_json *w, const char *s, size_t len)
{
    if (!s) {
        lq_json_null(w);
        return;
    }
    separate(w);
    quoted(w, s, len);
    w->need_comma = true;
}

/* v in decimal, ending at end; returns where it starts. */
static char *decimal(char *end, int64_t v)
{
    char *p = end;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0)
        *--p = '-';
    return p;
}

void lq_json_int(lq_json *w, int64_t v)
{
    char text[24], *end = text + sizeof(text), *p = decimal(end, v);
    value(w, p, (size_t)(end - p));
}

void lq_json_append_int(lq_json *w, int64_t v)
{
    char text[24], *end = text + sizeof(text), *p = decimal(end, v);
    lq_json_append(w, p, (size_t)(end - p));
}

void lq_json_uint(lq_json *w, uint64_t v)
{
    char text[24];
    int n = snprintf(text, sizeof(text), "%" PRIu64, v);
    value(w, text, (size_t)n);
}

void lq_json_bool(lq_json *w, bool v)
{
    if (v)
        value(w, "true", 4);
    else
        value(w, "false", 5);
}

void lq_json_null(lq_json *w)
{
    value(w, "null", 4);
}

void lq_json_raw(lq_json *w, const char *json)
{
    if (!json) {
        lq_json_null(w);
        return;
    }
    value(w, json, strlen(json));
}

void lq_json_append(lq_json *w, const char *s, size_t len)
{
    put(w, s, len);
    /* Text outside the structure ends a top-level value: the next one starts fresh. */
    w->need_comma = false;
}
