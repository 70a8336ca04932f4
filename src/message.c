/*
 * Commands: the strict JSON reader and the envelope (docs/protocol.md
 * sections 4.1, 4.2 and 12), and the helpers that take one field.  The
 * rules of each family live in message_transfer.c, message_hold.c and
 * message_account.c.
 *
 * cJSON builds the tree, but it is lenient where the protocol is not: it
 * accepts "01", "1.", raw control characters in strings and control bytes
 * as whitespace, it truncates strings at \u0000, and it keeps numbers only
 * as doubles.  So before cJSON sees a body we check its UTF-8 and its
 * tokens ourselves (lex_body), and we read JSON-number amounts from their
 * literal text, exactly, instead of from cJSON's double.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ledgerq/clock.h"
#include "ledgerq/error.h"
#include "ledgerq/message.h"
#include "message_internal.h"

#define LQ_AMOUNT_STRING_MAX INT64_MAX

static const char content_type_json[] = "application/json";

static void set_detail(char *detail, size_t detail_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write one detail line, if the caller gave room for it. */
static void set_detail(char *detail, size_t detail_len, const char *fmt, ...)
{
    va_list ap;

    if (detail == NULL || detail_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(detail, detail_len, fmt, ap);
    va_end(ap);
}

/*
 * A detail line becomes an AMQP header and a log field, so untrusted bytes
 * in it are shown escaped.
 */
const char *lq_message_shown(const char *s, size_t len, char buf[LQ_SHOWN_BUF])
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    for (size_t i = 0; i < len && i < LQ_SHOWN_MAX; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
            buf[n++] = (char)c;
        } else {
            buf[n++] = '\\';
            buf[n++] = 'x';
            buf[n++] = hex[c >> 4];
            buf[n++] = hex[c & 0xf];
        }
    }
    if (len > LQ_SHOWN_MAX) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

int lq_message_check_envelope(const char *content_type, size_t content_type_len, size_t body_len,
                              char *detail, size_t detail_len)
{
    if (detail != NULL && detail_len > 0)
        detail[0] = '\0';

    if (content_type != NULL) {
        const char *start = content_type;
        const char *end = content_type + content_type_len;
        const char *semi = memchr(start, ';', content_type_len);

        /* Parameters ("; charset=utf-8") do not change the media type. */
        if (semi != NULL)
            end = semi;
        while (start < end && is_space(*start))
            start++;
        while (end > start && is_space(end[-1]))
            end--;
        /* An empty content type says no more than an absent one. */
        if (end > start || semi != NULL) {
            size_t n = (size_t)(end - start);

            if (n != sizeof(content_type_json) - 1 ||
                strncasecmp(start, content_type_json, n) != 0) {
                char buf[LQ_SHOWN_BUF];

                set_detail(detail, detail_len, "content type \"%s\" is not application/json",
                           lq_message_shown(content_type, content_type_len, buf));
                return LQ_ERR_UNSUPPORTED_CONTENT_TYPE;
            }
        }
    }

    if (body_len > LQ_BODY_MAX) {
        set_detail(detail, detail_len, "body is %zu bytes, more than %d", body_len, LQ_BODY_MAX);
        return LQ_ERR_PAYLOAD_TOO_LARGE;
    }
    return LQ_OK;
}

/*
 * Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF, no truncated sequence.
 */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        unsigned char lo = 0x80, hi = 0xbf;
        size_t follow;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            follow = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            follow = 2;
            if (c == 0xe0)
                lo = 0xa0; /* overlong below U+0800 */
            else if (c == 0xed)
                hi = 0x9f; /* surrogates U+D800..U+DFFF */
        } else if (c >= 0xf0 && c <= 0xf4) {
            follow = 3;
            if (c == 0xf0)
                lo = 0x90; /* overlong below U+10000 */
            else if (c == 0xf4)
                hi = 0x8f; /* above U+10FFFF */
        } else {
            return false; /* a continuation byte, C0, C1 or F5..FF */
        }
        if (len - i - 1 < follow)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= follow; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return false;
        }
        i += follow + 1;
    }
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * The length of the JSON string token at s[0] == '"', or 0 when it is not
 * one (unterminated, a raw control character, a bad escape).
 */
static size_t lex_string(const char *s, size_t len, bool *nul_escape)
{
    size_t i = 1;

    while (i < len) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"')
            return i + 1;
        if (c < 0x20)
            return 0;
        if (c != '\\') {
            i++;
            continue;
        }
        if (i + 1 >= len)
            return 0;
        switch (s[i + 1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            i += 2;
            break;
        case 'u':
            if (len - i < 6)
                return 0;
            for (size_t k = 2; k < 6; k++) {
                if (!is_hex(s[i + k]))
                    return 0;
            }
            if (memcmp(s + i + 2, "0000", 4) == 0)
                *nul_escape = true;
            i += 6;
            break;
        default:
            return 0;
        }
    }
    return 0;
}

/*
 * The length of the JSON number token at s (RFC 8259: -?(0|[1-9][0-9]*)
 * (.[0-9]+)?([eE][+-]?[0-9]+)?), or 0 when s does not start one or the
 * token runs on into more number characters ("01", "1.", "1e").
 */
static size_t lex_number(const char *s, size_t len)
{
    size_t i = 0;

    if (i < len && s[i] == '-')
        i++;
    if (i >= len || !is_digit(s[i]))
        return 0;
    if (s[i] == '0') {
        i++;
    } else {
        while (i < len && is_digit(s[i]))
            i++;
    }
    if (i < len && s[i] == '.') {
        i++;
        if (i >= len || !is_digit(s[i]))
            return 0;
        while (i < len && is_digit(s[i]))
            i++;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= len || !is_digit(s[i]))
            return 0;
        while (i < len && is_digit(s[i]))
            i++;
    }
    if (i < len &&
        (is_digit(s[i]) || s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '+' || s[i] == '-'))
        return 0;
    return i;
}

static bool lexed_add_number(lq_lexed *lx, size_t offset)
{
    if (lx->n_numbers == lx->cap_numbers) {
        size_t cap = lx->cap_numbers ? lx->cap_numbers * 2 : 16;
        size_t *n = realloc(lx->numbers, cap * sizeof(*n));

        if (n == NULL)
            return false;
        lx->numbers = n;
        lx->cap_numbers = cap;
    }
    lx->numbers[lx->n_numbers++] = offset;
    return true;
}

static bool starts_number(char c)
{
    return c == '-' || is_digit(c);
}

/*
 * The length of the token at s: one byte of JSON whitespace or punctuation,
 * a string, a number or a literal; 0 when no valid token starts there.
 * Sets *nul_escape when the token is a string that holds \u0000.
 */
static size_t token_len(const char *s, size_t len, bool *nul_escape)
{
    switch (s[0]) {
    case ' ':
    case '\t':
    case '\n':
    case '\r':
    case '{':
    case '}':
    case '[':
    case ']':
    case ':':
    case ',':
        return 1;
    case '"':
        return lex_string(s, len, nul_escape);
    case 't':
        return len >= 4 && memcmp(s, "true", 4) == 0 ? 4 : 0;
    case 'f':
        return len >= 5 && memcmp(s, "false", 5) == 0 ? 5 : 0;
    case 'n':
        return len >= 4 && memcmp(s, "null", 4) == 0 ? 4 : 0;
    default:
        return starts_number(s[0]) ? lex_number(s, len) : 0;
    }
}

/* Where the text after a UTF-8 byte order mark begins: cJSON skips one, as RFC 8259 allows. */
static size_t skip_bom(const char *s, size_t len)
{
    return len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
}

/*
 * Check every token of s (len bytes, valid UTF-8) the way RFC 8259 spells
 * it; the structure is left to cJSON.  When lx is not NULL, record the
 * number tokens and whether a string holds \u0000.  Returns LQ_OK,
 * LQ_ERR_MALFORMED_JSON or LQ_ERR_NOMEM.
 */
static int lex_body(const char *s, size_t len, lq_lexed *lx)
{
    bool nul_escape = false;

    for (size_t i = skip_bom(s, len); i < len;) {
        size_t n = token_len(s + i, len - i, &nul_escape);

        if (n == 0)
            return LQ_ERR_MALFORMED_JSON;
        if (lx != NULL && starts_number(s[i]) && !lexed_add_number(lx, i))
            return LQ_ERR_NOMEM;
        i += n;
    }
    if (lx != NULL)
        lx->nul_escape = nul_escape;
    return LQ_OK;
}

/*
 * Parse body (len bytes) into *ret_root: strict UTF-8, no NUL byte, valid
 * tokens, one JSON value and nothing after it but whitespace.  Returns
 * LQ_OK, LQ_ERR_MALFORMED_JSON (with a detail naming the body as what) or
 * LQ_ERR_NOMEM.
 */
static int json_load(const char *what, const char *body, size_t len, lq_lexed *lx, cJSON **ret_root,
                     char *detail, size_t detail_len)
{
    char *copy = NULL;
    cJSON *root;
    int r;

    if (body == NULL)
        len = 0;
    if (!utf8_valid((const unsigned char *)body, len)) {
        set_detail(detail, detail_len, "%s is not valid UTF-8", what);
        r = LQ_ERR_MALFORMED_JSON;
        goto out;
    }
    if (len > 0 && memchr(body, '\0', len) != NULL) {
        set_detail(detail, detail_len, "%s contains a NUL byte", what);
        r = LQ_ERR_MALFORMED_JSON;
        goto out;
    }
    r = lex_body(body, len, lx);
    if (r == LQ_ERR_MALFORMED_JSON)
        set_detail(detail, detail_len, "%s is not valid JSON", what);
    if (r != LQ_OK)
        goto out;

    /*
     * cJSON only checks for the end of the document by finding a NUL inside
     * the length it is given, so parse a NUL-terminated copy.  The body has
     * no NUL of its own, so that NUL is the end of the body.
     */
    copy = malloc(len + 1);
    if (copy == NULL) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    if (len > 0)
        memcpy(copy, body, len);
    copy[len] = '\0';
    root = cJSON_ParseWithLengthOpts(copy, len + 1, NULL, 1);
    if (root == NULL) {
        /* Also what cJSON says about nesting deeper than CJSON_NESTING_LIMIT. */
        set_detail(detail, detail_len, "%s is not valid JSON", what);
        r = LQ_ERR_MALFORMED_JSON;
        goto out;
    }
    *ret_root = root;
    r = LQ_OK;
out:
    free(copy);
    return r;
}

int lq_message_read(lq_reader *rd, const char *what, const char *body, size_t len, char *detail,
                    size_t detail_len)
{
    int r;

    memset(rd, 0, sizeof(*rd));
    rd->what = what;
    rd->body = body;
    rd->len = body != NULL ? len : 0;
    rd->detail = detail;
    rd->detail_len = detail_len;
    if (detail != NULL && detail_len > 0)
        detail[0] = '\0';
    r = json_load(what, body, len, &rd->lexed, &rd->root, detail, detail_len);
    if (r != LQ_OK)
        return r;
    /* cJSON would cut the string short, and PostgreSQL cannot store a NUL. */
    if (rd->lexed.nul_escape)
        return lq_message_invalid(rd, "%s: strings must not contain \\u0000", what);
    if (!cJSON_IsObject(rd->root))
        return lq_message_invalid(rd, "%s: must be a JSON object", what);
    return LQ_OK;
}

int lq_message_reader_finish(lq_reader *rd, int r)
{
    if (r == LQ_ERR_NOMEM)
        set_detail(rd->detail, rd->detail_len, "out of memory");
    else if (r == LQ_ERR_INTERNAL)
        set_detail(rd->detail, rd->detail_len, "internal error while parsing the %s", rd->what);
    free(rd->number_items);
    rd->number_items = NULL;
    free(rd->lexed.numbers);
    rd->lexed.numbers = NULL;
    cJSON_Delete(rd->root);
    rd->root = NULL;
    return r;
}

int lq_message_invalid(lq_reader *rd, const char *fmt, ...)
{
    va_list ap;

    if (rd->detail != NULL && rd->detail_len > 0) {
        va_start(ap, fmt);
        vsnprintf(rd->detail, rd->detail_len, fmt, ap);
        va_end(ap);
    }
    return LQ_ERR_INVALID_PAYMENT;
}

int lq_message_collect_fields(lq_reader *rd, const cJSON *obj, const char *prefix,
                              const char *const *names, size_t n, const cJSON **found)
{
    for (size_t k = 0; k < n; k++)
        found[k] = NULL;
    /* cJSON's own lookup ignores case: compare names here, exactly. */
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        const char *key = m->string != NULL ? m->string : "";
        size_t k;

        for (k = 0; k < n; k++) {
            if (strcmp(key, names[k]) == 0)
                break;
        }
        if (k == n) {
            char buf[LQ_SHOWN_BUF];

            return lq_message_invalid(rd, "%s%s: unknown field", prefix,
                                      lq_message_shown(key, strlen(key), buf));
        }
        if (found[k] != NULL)
            return lq_message_invalid(rd, "%s%s: appears twice", prefix, names[k]);
        found[k] = m;
    }
    return LQ_OK;
}

bool lq_message_ident_valid(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n < 1 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '.' ||
              c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

static bool currency_valid(const char *s)
{
    return strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' &&
           s[2] >= 'A' && s[2] <= 'Z';
}

int lq_message_take_ident(lq_reader *rd, const cJSON *item, const char *prefix, const char *name,
                          size_t max, char *out)
{
    if (item == NULL)
        return lq_message_invalid(rd, "%s%s: is required", prefix, name);
    if (!cJSON_IsString(item) || item->valuestring == NULL ||
        !lq_message_ident_valid(item->valuestring, max))
        return lq_message_invalid(rd, "%s%s: must be 1-%zu characters of A-Z a-z 0-9 . _ : -",
                                  prefix, name, max);
    memcpy(out, item->valuestring, strlen(item->valuestring) + 1);
    return LQ_OK;
}

/* Collect the number items of the tree in document order (pre-order). */
static bool gather_numbers(lq_reader *rd, const cJSON *node, size_t *n)
{
    for (; node != NULL; node = node->next) {
        if (cJSON_IsNumber(node)) {
            if (*n == rd->lexed.n_numbers)
                return false;
            rd->number_items[(*n)++] = node;
        }
        if (node->child != NULL && !gather_numbers(rd, node->child, n))
            return false;
    }
    return true;
}

/*
 * The literal text of number item: cJSON keeps only a double, so match the
 * item with the number token at the same place in document order.  Amounts
 * are asked for in document order, so the search resumes where the last
 * one ended.
 */
static int number_literal(lq_reader *rd, const cJSON *item, const char **ret_s, size_t *ret_len)
{
    size_t i;

    if (rd->number_items == NULL) {
        size_t n = 0;

        rd->number_items = calloc(rd->lexed.n_numbers + 1, sizeof(*rd->number_items));
        if (rd->number_items == NULL)
            return LQ_ERR_NOMEM;
        if (!gather_numbers(rd, rd->root, &n) || n != rd->lexed.n_numbers)
            return LQ_ERR_INTERNAL;
        rd->n_number_items = n;
    }
    for (i = rd->next_number; i < rd->n_number_items; i++) {
        if (rd->number_items[i] == item)
            break;
    }
    if (i == rd->n_number_items) {
        for (i = 0; i < rd->next_number; i++) {
            if (rd->number_items[i] == item)
                break;
        }
        if (i == rd->next_number)
            return LQ_ERR_INTERNAL;
    }
    rd->next_number = i + 1;
    *ret_s = rd->body + rd->lexed.numbers[i];
    *ret_len = lex_number(*ret_s, rd->len - rd->lexed.numbers[i]);
    return LQ_OK;
}

/* A JSON number literal taken apart: the digits, split by the point. */
typedef struct lq_decimal {
    const char *int_part;
    size_t int_len;
    const char *frac;
    size_t frac_len;
} lq_decimal;

/* Digit k of the number written without its point. */
static char decimal_digit(const lq_decimal *d, size_t k)
{
    return k < d->int_len ? d->int_part[k] : d->frac[k - d->int_len];
}

typedef enum lq_whole {
    LQ_WHOLE_OK,        /* 0 .. INT64_MAX */
    LQ_WHOLE_NOT,       /* negative (-0 included) or a fraction */
    LQ_WHOLE_TOO_LARGE, /* a whole number above INT64_MAX */
} lq_whole;

/*
 * The value of a JSON number literal (valid per lex_number), decided on its
 * decimal text so that nothing is rounded: 1e3 and 100.0e1 are 1000,
 * 0.0 and 0e5 are 0, 1.0000000000000001 is no whole number.  A minus sign
 * is never a whole number here, not even in -0: no amount or limit has one.
 */
static lq_whole number_whole(const char *s, size_t len, int64_t *ret)
{
    lq_decimal d = {0};
    size_t i = 0, n_digits, first, last;
    long exp = 0, scale;
    int64_t v = 0;

    if (s[0] == '-')
        return LQ_WHOLE_NOT; /* negative, or -0 */
    d.int_part = s;
    while (i < len && is_digit(s[i]))
        i++;
    d.int_len = i;
    if (i < len && s[i] == '.') {
        d.frac = s + ++i;
        while (i < len && is_digit(s[i]))
            i++;
        d.frac_len = (size_t)(s + i - d.frac);
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        bool negative = false;

        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            negative = s[i++] == '-';
        /*
         * Saturate: a body of at most LQ_BODY_MAX bytes has fewer digits
         * than that, so an exponent beyond a million decides alone.
         */
        while (i < len && is_digit(s[i])) {
            if (exp < 1000000)
                exp = exp * 10 + (s[i] - '0');
            i++;
        }
        if (negative)
            exp = -exp;
    }

    n_digits = d.int_len + d.frac_len;
    for (first = 0; first < n_digits && decimal_digit(&d, first) == '0'; first++)
        ;
    if (first == n_digits) {
        *ret = 0;
        return LQ_WHOLE_OK;
    }
    for (last = n_digits - 1; decimal_digit(&d, last) == '0'; last--)
        ;
    /* The value is digits first .. last times 10^scale. */
    scale = exp - (long)d.frac_len + (long)(n_digits - 1 - last);
    if (scale < 0)
        return LQ_WHOLE_NOT;
    if ((long)(last - first + 1) + scale > 19)
        return LQ_WHOLE_TOO_LARGE; /* at least 10^19 */
    for (size_t k = first; k <= last; k++) {
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, decimal_digit(&d, k) - '0', &v))
            return LQ_WHOLE_TOO_LARGE;
    }
    for (long k = 0; k < scale; k++) {
        if (__builtin_mul_overflow(v, 10, &v))
            return LQ_WHOLE_TOO_LARGE;
    }
    *ret = v;
    return LQ_WHOLE_OK;
}

/*
 * A digit string: decimal digits, no sign, no leading zero ("0" alone is
 * 0), at most INT64_MAX (LQ_ERR_AMOUNT_OVERFLOW above it).
 */
static int string_whole(const char *s, int64_t *ret)
{
    int64_t v = 0;

    if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
        return LQ_ERR_INVALID_PAYMENT;
    for (const char *c = s; *c != '\0'; c++) {
        if (!is_digit(*c))
            return LQ_ERR_INVALID_PAYMENT;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *c - '0', &v))
            return LQ_ERR_AMOUNT_OVERFLOW;
    }
    *ret = v;
    return LQ_OK;
}

/* How take_whole() words its details for one kind of number. */
typedef struct lq_whole_words {
    int64_t min;      /* 0 or 1 */
    const char *rule; /* what the value must be */
    const char *many; /* what larger values are called */
} lq_whole_words;

static const lq_whole_words amount_words = {1, "a positive whole number", "amounts"};
static const lq_whole_words limit_words = {0, "a whole number, 0 or more", "limits"};

/*
 * A whole number from w->min to INT64_MAX: a JSON number up to 2^53-1,
 * read from its literal text, or a digit string.  item must not be NULL.
 */
static int take_whole(lq_reader *rd, const cJSON *item, const char *prefix, const char *name,
                      const lq_whole_words *w, int64_t *out)
{
    int64_t v = 0;

    if (cJSON_IsNumber(item)) {
        const char *lit = NULL;
        size_t lit_len = 0;
        int r = number_literal(rd, item, &lit, &lit_len);

        if (r != LQ_OK)
            return r;
        switch (number_whole(lit, lit_len, &v)) {
        case LQ_WHOLE_OK:
            if (v < w->min)
                break;
            if (v <= LQ_AMOUNT_JSON_MAX) {
                *out = v;
                return LQ_OK;
            }
            /* fall through */
        case LQ_WHOLE_TOO_LARGE:
            return lq_message_invalid(
                rd, "%s%s: a JSON number must be at most %" PRId64 "; write larger %s as a string",
                prefix, name, LQ_AMOUNT_JSON_MAX, w->many);
        case LQ_WHOLE_NOT:
            break;
        }
    } else if (cJSON_IsString(item) && item->valuestring != NULL) {
        int r = string_whole(item->valuestring, &v);

        if (r == LQ_OK && v >= w->min) {
            *out = v;
            return LQ_OK;
        }
        if (r == LQ_ERR_AMOUNT_OVERFLOW)
            return lq_message_invalid(rd, "%s%s: must be at most %" PRId64, prefix, name,
                                      LQ_AMOUNT_STRING_MAX);
    }
    return lq_message_invalid(rd, "%s%s: must be %s", prefix, name, w->rule);
}

int lq_message_take_amount(lq_reader *rd, const cJSON *item, const char *prefix, const char *name,
                           int64_t *out)
{
    if (item == NULL)
        return lq_message_invalid(rd, "%s%s: is required", prefix, name);
    return take_whole(rd, item, prefix, name, &amount_words, out);
}

int lq_message_take_limit(lq_reader *rd, const cJSON *item, const char *name, int64_t *out)
{
    return take_whole(rd, item, "", name, &limit_words, out);
}

/*
 * Unlike an amount, a count of seconds has no other spelling: the protocol
 * asks for a JSON integer, so 60.0, 6e1 and "60" are refused rather than
 * read for their value.
 */
int lq_message_take_integer(lq_reader *rd, const cJSON *item, const char *name, int64_t min,
                            int64_t max, int64_t *out)
{
    if (cJSON_IsNumber(item)) {
        const char *lit = NULL;
        size_t lit_len = 0;
        bool digits = true, overflow = false;
        int64_t v = 0;
        int r = number_literal(rd, item, &lit, &lit_len);

        if (r != LQ_OK)
            return r;
        for (size_t i = 0; i < lit_len && digits; i++) {
            digits = is_digit(lit[i]);
            if (digits && !overflow)
                overflow = __builtin_mul_overflow(v, 10, &v) ||
                           __builtin_add_overflow(v, lit[i] - '0', &v);
        }
        if (digits && !overflow && v >= min && v <= max) {
            *out = v;
            return LQ_OK;
        }
    }
    return lq_message_invalid(rd, "%s: must be a JSON integer from %" PRId64 " to %" PRId64, name,
                              min, max);
}

int lq_message_take_currency(lq_reader *rd, const cJSON *item, const char *prefix, char out[4])
{
    const char *s;

    if (item == NULL)
        return lq_message_invalid(rd, "%scurrency: is required", prefix);
    s = cJSON_IsString(item) ? item->valuestring : NULL;
    if (s == NULL || !currency_valid(s))
        return lq_message_invalid(rd, "%scurrency: must be three upper-case letters", prefix);
    memcpy(out, s, 4);
    return LQ_OK;
}

int lq_message_take_bool(lq_reader *rd, const cJSON *item, const char *name, bool *out)
{
    if (!cJSON_IsBool(item))
        return lq_message_invalid(rd, "%s: must be true or false", name);
    *out = cJSON_IsTrue(item);
    return LQ_OK;
}

int lq_message_take_text(lq_reader *rd, const cJSON *item, const char *name, size_t max, char **out)
{
    if (item == NULL)
        return LQ_OK;
    if (!cJSON_IsString(item) || item->valuestring == NULL || strlen(item->valuestring) > max)
        return lq_message_invalid(rd, "%s: must be a string of at most %zu bytes", name, max);
    *out = strdup(item->valuestring);
    return *out != NULL ? LQ_OK : LQ_ERR_NOMEM;
}

int lq_message_take_metadata(lq_reader *rd, const cJSON *item, char **out)
{
    if (item == NULL)
        return LQ_OK;
    if (cJSON_IsObject(item)) {
        /*
         * Print into a fixed buffer: cJSON gives up as soon as the text
         * outgrows it, instead of formatting a whole 64 KiB object only to
         * refuse it.  The slack covers cJSON asking for a little more room
         * than it writes.
         */
        char text[LQ_METADATA_MAX + 64];

        if (cJSON_PrintPreallocated((cJSON *)item, text, (int)sizeof(text), 0) &&
            strlen(text) <= LQ_METADATA_MAX) {
            *out = strdup(text);
            return *out != NULL ? LQ_OK : LQ_ERR_NOMEM;
        }
    }
    return lq_message_invalid(rd, "metadata: must be a JSON object of at most %d bytes",
                              LQ_METADATA_MAX);
}

size_t lq_message_add(char *s, size_t cap, size_t n, const char *fmt, ...)
{
    va_list ap;
    int k;

    if (n >= cap)
        return n;
    va_start(ap, fmt);
    k = vsnprintf(s + n, cap - n, fmt, ap);
    va_end(ap);
    return k < 0 ? cap : n + (size_t)k;
}

size_t lq_message_add_text(char *s, size_t cap, size_t n, const char *text)
{
    if (text == NULL)
        return lq_message_add(s, cap, n, "|-");
    return lq_message_add(s, cap, n, "|r%zu:%s", strlen(text), text);
}

static const char *const type_names[] = {
    [LQ_CMD_TRANSFER] = "transfer",
    [LQ_CMD_ACCOUNT_OPEN] = "account.open",
    [LQ_CMD_ACCOUNT_UPDATE] = "account.update",
    [LQ_CMD_HOLD] = "hold",
    [LQ_CMD_CAPTURE] = "capture",
    [LQ_CMD_VOID] = "void",
};
#define TYPE_COUNT (sizeof(type_names) / sizeof(type_names[0]))

const char *lq_command_type_name(lq_command_type t)
{
    return (size_t)t < TYPE_COUNT ? type_names[t] : "unknown";
}

const char *lq_command_family(lq_command_type t)
{
    switch (t) {
    case LQ_CMD_TRANSFER:
        return "payment";
    case LQ_CMD_ACCOUNT_OPEN:
    case LQ_CMD_ACCOUNT_UPDATE:
        return "account";
    case LQ_CMD_HOLD:
        return "hold";
    case LQ_CMD_CAPTURE:
        return "capture";
    case LQ_CMD_VOID:
        return "void";
    }
    return "unknown";
}

bool lq_command_type_parse(const char *name, lq_command_type *ret)
{
    if (name == NULL)
        return false;
    for (size_t t = 0; t < TYPE_COUNT; t++) {
        if (strcmp(name, type_names[t]) == 0) {
            *ret = (lq_command_type)t;
            return true;
        }
    }
    return false;
}

/*
 * The body's "type" (absent: a transfer).  Read before any other member:
 * the type decides which members are known, and what a hold or a capture
 * body holds is no transfer's business.
 */
static int take_type(lq_reader *rd, lq_command_type *ret)
{
    const cJSON *type = NULL;
    char buf[LQ_SHOWN_BUF];

    for (const cJSON *m = rd->root->child; m != NULL; m = m->next) {
        if (m->string == NULL || strcmp(m->string, "type") != 0)
            continue;
        if (type != NULL)
            return lq_message_invalid(rd, "type: appears twice");
        type = m;
    }
    if (type == NULL) {
        *ret = LQ_CMD_TRANSFER;
        return LQ_OK;
    }
    if (!cJSON_IsString(type) || type->valuestring == NULL)
        return lq_message_invalid(rd, "type: must be a string");
    if (!lq_command_type_parse(type->valuestring, ret))
        return lq_message_invalid(
            rd, "type: unknown command type \"%s\"",
            lq_message_shown(type->valuestring, strlen(type->valuestring), buf));
    return LQ_OK;
}

int lq_command_parse(const char *body, size_t len, lq_command **ret, char *detail,
                     size_t detail_len)
{
    lq_reader rd;
    lq_command *c = NULL;
    int r;

    r = lq_message_read(&rd, "body", body, len, detail, detail_len);
    if (r != LQ_OK)
        goto out;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        r = LQ_ERR_NOMEM;
        goto out;
    }
    r = take_type(&rd, &c->type);
    if (r != LQ_OK)
        goto out;
    switch (c->type) {
    case LQ_CMD_TRANSFER:
        r = lq_message_take_transfer(&rd, c);
        break;
    case LQ_CMD_ACCOUNT_OPEN:
    case LQ_CMD_ACCOUNT_UPDATE:
        r = lq_message_take_account(&rd, c);
        break;
    case LQ_CMD_HOLD:
    case LQ_CMD_CAPTURE:
    case LQ_CMD_VOID:
        r = lq_message_take_hold(&rd, c);
        break;
    }
    if (r != LQ_OK)
        goto out;
    /* The CLI builds its commands and calls this too: same content, same text. */
    r = lq_command_canonicalize(c);
    if (r != LQ_OK)
        goto out;

    *ret = c;
    c = NULL;
out:
    lq_command_free(c);
    return lq_message_reader_finish(&rd, r);
}

int lq_command_canonicalize(lq_command *c)
{
    char *s = NULL;
    int r = LQ_ERR_INTERNAL;

    switch (c->type) {
    case LQ_CMD_TRANSFER:
        r = lq_message_transfer_canonical(c, &s);
        break;
    case LQ_CMD_ACCOUNT_OPEN:
    case LQ_CMD_ACCOUNT_UPDATE:
        r = lq_message_account_canonical(c, &s);
        break;
    case LQ_CMD_HOLD:
    case LQ_CMD_CAPTURE:
    case LQ_CMD_VOID:
        r = lq_message_hold_canonical(c, &s);
        break;
    }
    if (r != LQ_OK)
        return r;
    free(c->canonical);
    c->canonical = s;
    return LQ_OK;
}

lq_command *lq_command_free(lq_command *c)
{
    if (c == NULL)
        return NULL;
    free(c->canonical);
    free(c->metadata);
    lq_account_change_release(&c->change);
    free(c->reference);
    free(c->legs);
    free(c);
    return NULL;
}

bool lq_message_peek_id(const char *body, size_t len, char ret_id[LQ_ID_MAX + 1])
{
    return lq_message_peek_event(body, len, ret_id, NULL);
}

bool lq_message_peek_event(const char *body, size_t len, char ret_id[LQ_ID_MAX + 1],
                           int64_t *ret_processed_us)
{
    cJSON *root = NULL;
    const cJSON *id, *at;
    bool found = false;
    size_t n;

    if (ret_processed_us)
        *ret_processed_us = 0;
    if (json_load("body", body, len, NULL, &root, NULL, 0) != LQ_OK || !cJSON_IsObject(root))
        goto out;
    at = cJSON_GetObjectItemCaseSensitive(root, "processed_at");
    if (ret_processed_us && cJSON_IsString(at) && at->valuestring &&
        !lq_clock_parse_rfc3339(at->valuestring, ret_processed_us))
        *ret_processed_us = 0;
    id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (!cJSON_IsString(id) || id->valuestring == NULL)
        goto out;
    n = strlen(id->valuestring);
    if (n < 1 || n > LQ_ID_MAX)
        goto out;
    memcpy(ret_id, id->valuestring, n + 1);
    found = true;
out:
    cJSON_Delete(root);
    return found;
}

bool lq_message_valid_account_id(const char *s)
{
    return s != NULL && lq_message_ident_valid(s, LQ_ACCOUNT_ID_MAX);
}

bool lq_message_valid_currency(const char *s)
{
    return s != NULL && currency_valid(s);
}

/* A growing text buffer for lq_message_pretty(). */
typedef struct lq_text {
    char *buf;
    size_t len;
    size_t cap;
    bool failed;
} lq_text;

static void text_add(lq_text *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    if (t->cap - t->len < n + 1) {
        size_t cap = t->cap ? t->cap : 256;
        char *b;

        while (cap - t->len < n + 1) {
            if (__builtin_mul_overflow(cap, 2, &cap)) {
                t->failed = true;
                return;
            }
        }
        b = realloc(t->buf, cap);
        if (b == NULL) {
            t->failed = true;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void text_newline(lq_text *t, size_t depth)
{
    text_add(t, "\n", 1);
    for (size_t k = 0; k < depth; k++)
        text_add(t, "  ", 2);
}

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * The tokens are copied as they are written, not printed from cJSON's
 * tree: cJSON would round a number such as 9007199254740993 through a
 * double and show an operator a value the message does not hold.
 */
char *lq_message_pretty(const char *body, size_t len)
{
    lq_text t = {0};
    cJSON *root = NULL;
    bool nul_escape = false;
    size_t depth = 0;

    /* Only a document cJSON accepts, so the tokens below nest properly. */
    if (json_load("body", body, len, NULL, &root, NULL, 0) != LQ_OK)
        goto out;
    for (size_t i = skip_bom(body, len); i < len;) {
        char c = body[i];
        size_t n = token_len(body + i, len - i, &nul_escape), j;

        if (is_json_space(c)) {
            i += n;
            continue;
        }
        switch (c) {
        case '{':
        case '[':
            for (j = i + 1; j < len && is_json_space(body[j]); j++)
                ;
            if (j < len && (body[j] == '}' || body[j] == ']')) {
                text_add(&t, c == '{' ? "{}" : "[]", 2);
                n = j + 1 - i;
            } else {
                text_add(&t, &c, 1);
                text_newline(&t, ++depth);
            }
            break;
        case '}':
        case ']':
            text_newline(&t, --depth);
            text_add(&t, &c, 1);
            break;
        case ',':
            text_add(&t, ",", 1);
            text_newline(&t, depth);
            break;
        case ':':
            text_add(&t, ": ", 2);
            break;
        default:
            text_add(&t, body + i, n);
            break;
        }
        i += n;
    }
out:
    cJSON_Delete(root);
    if (root == NULL || t.failed) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}
