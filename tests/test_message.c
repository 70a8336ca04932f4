/*
 * Unit tests of the message module, read as a specification: the transfer
 * of docs/protocol.md section 4, the command types of section 12, the
 * account commands of section 13 and the lines of `account import`.
 *
 * Bodies are handed over in a buffer of exactly their length, as a broker
 * delivers them, so AddressSanitizer catches any read past the end.
 */
#include <check.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/error.h"
#include "ledgerq/message.h"

/* A payment pointer parse must leave alone when it fails. */
static lq_command untouched_payment;
#define UNTOUCHED (&untouched_payment)

/* Parse len bytes of data from a buffer that ends where the body ends. */
static int parse_n(const char *data, size_t len, lq_command **ret, char *detail)
{
    char *buf = malloc(len > 0 ? len : 1);
    int r;

    ck_assert_ptr_nonnull(buf);
    memcpy(buf, data, len);
    r = lq_command_parse(buf, len, ret, detail, LQ_DETAIL_MAX);
    /* The payment must not point into the body: free it at once. */
    free(buf);
    return r;
}

static int parse_s(const char *text, lq_command **ret, char *detail)
{
    return parse_n(text, strlen(text), ret, detail);
}

/* A body built with printf; caller frees. */
static char *body_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *body_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    return s;
}

/* A string of n copies of c; caller frees. */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);

    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Parse text, expect success and return the payment. */
static lq_command *parse_ok(const char *text)
{
    lq_command *p = NULL;
    char detail[LQ_DETAIL_MAX] = "";
    int r = parse_s(text, &p, detail);

    ck_assert_msg(r == LQ_OK, "body %.200s: got %s (%s)", text, lq_strerror(r), detail);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(p->canonical);
    ck_assert_int_gt(strlen(p->canonical), 0);
    return p;
}

/*
 * Parse len bytes, expect err, a detail starting with detail_prefix, and
 * *ret left alone.
 */
static void expect_fail_n(const char *data, size_t len, int err, const char *detail_prefix)
{
    lq_command *p = UNTOUCHED;
    char detail[LQ_DETAIL_MAX] = "";
    int r = parse_n(data, len, &p, detail);

    ck_assert_msg(r == err, "body %.*s: got %s (%s), want %s", (int)(len > 200 ? 200 : len), data,
                  lq_strerror(r), detail, lq_strerror(err));
    ck_assert_ptr_eq(p, UNTOUCHED);
    ck_assert_msg(starts_with(detail, detail_prefix), "body %.*s: detail \"%s\", want \"%s...\"",
                  (int)(len > 200 ? 200 : len), data, detail, detail_prefix);
    ck_assert_ptr_null(strchr(detail, '\n'));
}

static void expect_fail(const char *text, int err, const char *detail_prefix)
{
    expect_fail_n(text, strlen(text), err, detail_prefix);
}

static void expect_invalid(const char *text, const char *detail_prefix)
{
    expect_fail(text, LQ_ERR_INVALID_PAYMENT, detail_prefix);
}

static void expect_malformed(const char *text)
{
    expect_fail(text, LQ_ERR_MALFORMED_JSON, "body is not valid");
}

#define PAY_HEAD "{\"id\":\"p-1\","
#define PAY_LEG  "\"debit\":\"acct:a\",\"credit\":\"acct:b\",\"amount\":100,\"currency\":\"EUR\""
/* A valid single-leg payment, with more fields spliced in at the end. */
#define PAY(extra) PAY_HEAD PAY_LEG extra "}"

/* ------------------------------------------------------------------ */
/* Envelope */

static int envelope(const char *content_type, size_t body_len, char *detail)
{
    return lq_message_check_envelope(content_type, content_type ? strlen(content_type) : 0,
                                     body_len, detail, LQ_DETAIL_MAX);
}

START_TEST(envelope_accepts_json_or_absent_content_type)
{
    static const char *const ok[] = {
        "application/json",
        "Application/JSON; charset=utf-8",
        "APPLICATION/JSON",
        "  application/json  ",
        "application/json;charset=UTF-8",
        "application/json ; charset=utf-8",
        "", /* present but empty says no more than absent */
    };
    char detail[LQ_DETAIL_MAX];

    ck_assert_int_eq(envelope(NULL, 10, detail), LQ_OK);
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        ck_assert_msg(envelope(ok[i], 10, detail) == LQ_OK, "content type \"%s\"", ok[i]);
}
END_TEST

START_TEST(envelope_rejects_other_content_types)
{
    static const char *const bad[] = {"text/plain",
                                      "application/jsonx",
                                      "application/json-patch+json",
                                      "application/xml",
                                      "json",
                                      "application/ json",
                                      "; charset=utf-8",
                                      "application",
                                      "text/json",
                                      "application/x-json"};
    char detail[LQ_DETAIL_MAX];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(envelope(bad[i], 10, detail) == LQ_ERR_UNSUPPORTED_CONTENT_TYPE,
                      "content type \"%s\"", bad[i]);
    }
    envelope("text/plain", 10, detail);
    ck_assert_str_eq(detail, "content type \"text/plain\" is not application/json");
}
END_TEST

START_TEST(envelope_content_type_uses_its_length_not_a_nul)
{
    /* As AMQP hands it over: not NUL-terminated. */
    static const char ct[] = "application/jsonGARBAGE";
    char detail[LQ_DETAIL_MAX];

    ck_assert_int_eq(lq_message_check_envelope(ct, 16, 10, detail, sizeof(detail)), LQ_OK);
    ck_assert_int_eq(lq_message_check_envelope(ct, 17, 10, detail, sizeof(detail)),
                     LQ_ERR_UNSUPPORTED_CONTENT_TYPE);
}
END_TEST

START_TEST(envelope_detail_is_one_safe_line)
{
    char ct[300];
    char detail[LQ_DETAIL_MAX];

    memset(ct, 'x', sizeof(ct));
    ct[3] = '\n';
    ct[4] = '\x1b';
    ct[5] = '"';
    ck_assert_int_eq(lq_message_check_envelope(ct, sizeof(ct), 10, detail, sizeof(detail)),
                     LQ_ERR_UNSUPPORTED_CONTENT_TYPE);
    ck_assert_ptr_null(strchr(detail, '\n'));
    ck_assert_ptr_null(strchr(detail, '\x1b'));
    ck_assert_int_lt(strlen(detail), 250);
    ck_assert(starts_with(detail, "content type \"xxx\\x0a\\x1b\\x22xxx"));
}
END_TEST

START_TEST(envelope_limits_body_size)
{
    char detail[LQ_DETAIL_MAX];

    ck_assert_int_eq(envelope(NULL, 0, detail), LQ_OK);
    ck_assert_int_eq(envelope(NULL, 65536, detail), LQ_OK);
    ck_assert_int_eq(envelope("application/json", 65537, detail), LQ_ERR_PAYLOAD_TOO_LARGE);
    ck_assert_str_eq(detail, "body is 65537 bytes, more than 65536");
    ck_assert_int_eq(envelope(NULL, 70000, detail), LQ_ERR_PAYLOAD_TOO_LARGE);
    ck_assert_str_eq(detail, "body is 70000 bytes, more than 65536");
}
END_TEST

START_TEST(envelope_checks_content_type_first_and_accepts_no_detail_buffer)
{
    char detail[LQ_DETAIL_MAX];

    ck_assert_int_eq(envelope("text/plain", 70000, detail), LQ_ERR_UNSUPPORTED_CONTENT_TYPE);
    ck_assert_int_eq(lq_message_check_envelope("text/plain", 10, 1, NULL, 0),
                     LQ_ERR_UNSUPPORTED_CONTENT_TYPE);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Well-formed payments */

START_TEST(single_form_is_parsed)
{
    lq_command *p = parse_ok("{\"id\": \"9b2f0c1e-5d1a-4c55-9a53-1d4f0e0b7c11\", \"debit\": "
                             "\"acct:alice\", \"credit\": \"acct:bob\",\n \"amount\": 1250, "
                             "\"currency\": \"EUR\", \"reference\": \"order-42\", \"metadata\": "
                             "{\"channel\": \"web\"}}");

    ck_assert_str_eq(p->id, "9b2f0c1e-5d1a-4c55-9a53-1d4f0e0b7c11");
    ck_assert_uint_eq(p->n_legs, 1);
    ck_assert_str_eq(p->legs[0].debit, "acct:alice");
    ck_assert_str_eq(p->legs[0].credit, "acct:bob");
    ck_assert_int_eq(p->legs[0].amount, 1250);
    ck_assert_str_eq(p->legs[0].currency, "EUR");
    ck_assert_str_eq(p->reference, "order-42");
    ck_assert_str_eq(p->metadata, "{\"channel\":\"web\"}");
    ck_assert_str_eq(p->canonical, "v1|1|acct:alice,acct:bob,1250,EUR|r8:order-42");
    ck_assert_ptr_null(lq_command_free(p));
}
END_TEST

START_TEST(legs_form_is_parsed)
{
    lq_command *p =
        parse_ok("{\"id\": \"split-77\", \"legs\": [\n"
                 "  {\"debit\": \"acct:alice\", \"credit\": \"acct:shop\", \"amount\": 900, "
                 "\"currency\": \"EUR\"},\n"
                 "  {\"debit\": \"acct:alice\", \"credit\": \"acct:fees\", \"amount\": \"100\", "
                 "\"currency\": \"EUR\"}]}");

    ck_assert_str_eq(p->id, "split-77");
    ck_assert_uint_eq(p->n_legs, 2);
    ck_assert_str_eq(p->legs[0].credit, "acct:shop");
    ck_assert_int_eq(p->legs[0].amount, 900);
    ck_assert_str_eq(p->legs[1].debit, "acct:alice");
    ck_assert_str_eq(p->legs[1].credit, "acct:fees");
    ck_assert_int_eq(p->legs[1].amount, 100);
    ck_assert_str_eq(p->legs[1].currency, "EUR");
    ck_assert_ptr_null(p->reference);
    ck_assert_ptr_null(p->metadata);
    ck_assert_str_eq(p->canonical,
                     "v1|2|acct:alice,acct:shop,900,EUR|acct:alice,acct:fees,100,EUR|-");
    lq_command_free(p);
}
END_TEST

START_TEST(field_order_and_whitespace_do_not_matter)
{
    lq_command *p = parse_ok("\r\n\t {\"currency\":\"USD\" , \"amount\" : 7 ,\"credit\":\"b\","
                             "\"debit\":\"a\",\"id\":\"x\"} \n\t\r ");

    ck_assert_str_eq(p->id, "x");
    ck_assert_str_eq(p->legs[0].debit, "a");
    ck_assert_int_eq(p->legs[0].amount, 7);
    lq_command_free(p);
}
END_TEST

START_TEST(free_accepts_null)
{
    ck_assert_ptr_null(lq_command_free(NULL));
}
END_TEST

START_TEST(parse_accepts_no_detail_buffer)
{
    lq_command *p = UNTOUCHED;

    ck_assert_int_eq(lq_command_parse("{", 1, &p, NULL, 0), LQ_ERR_MALFORMED_JSON);
    ck_assert_int_eq(lq_command_parse("[]", 2, &p, NULL, 0), LQ_ERR_INVALID_PAYMENT);
    ck_assert_ptr_eq(p, UNTOUCHED);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Not UTF-8, not JSON: malformed_json */

static const struct {
    const char *bytes;
    size_t len;
} bad_utf8[] = {
#define B(s)                                                                                       \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
    B("{\"id\":\"\x80\"}"),                           /* lone continuation byte */
    B("{\"id\":\"\xc0\xaf\"}"),                       /* overlong '/' */
    B("{\"id\":\"\xc1\xbf\"}"),                       /* overlong */
    B("{\"id\":\"\xe0\x80\xaf\"}"),                   /* overlong, 3 bytes */
    B("{\"id\":\"\xf0\x80\x80\xaf\"}"),               /* overlong, 4 bytes */
    B("{\"id\":\"\xe2\x82\"}"),                       /* truncated euro sign */
    B("{\"id\":\"x\"}\xe2\x82"),                      /* truncated at the end of the body */
    B("{\"id\":\"\xed\xa0\x80\"}"),                   /* surrogate U+D800 */
    B("{\"id\":\"\xed\xbf\xbf\"}"),                   /* surrogate U+DFFF */
    B("{\"id\":\"\xf4\x90\x80\x80\"}"),               /* U+110000 */
    B("{\"id\":\"\xf5\x80\x80\x80\"}"),               /* F5 is never UTF-8 */
    B("{\"id\":\"\xff\"}"),                           /* FF is never UTF-8 */
    B("{\"id\":\"\xc3\"}"),                           /* lead byte, no continuation */
    B("{\"reference\":\"ok\",\"id\":\"\xe9t\xe9\"}"), /* Latin-1 */
#undef B
};

START_TEST(invalid_utf8_is_malformed)
{
    expect_fail_n(bad_utf8[_i].bytes, bad_utf8[_i].len, LQ_ERR_MALFORMED_JSON,
                  "body is not valid UTF-8");
}
END_TEST

START_TEST(valid_non_ascii_utf8_is_accepted_in_reference)
{
    /* 2, 3 and 4 byte forms, the edges around the surrogates and U+10FFFF */
    lq_command *p =
        parse_ok(PAY(",\"reference\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xb6 \xed\x9f\xbf "
                     "\xee\x80\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf\""));

    ck_assert_str_eq(p->reference, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xb6 \xed\x9f\xbf "
                                   "\xee\x80\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf");
    lq_command_free(p);

    /* \u escapes, a surrogate pair included, are decoded to UTF-8 */
    p = parse_ok(PAY(",\"reference\":\"caf\\u00e9 \\ud83d\\udcb6\""));
    ck_assert_str_eq(p->reference, "caf\xc3\xa9 \xf0\x9f\x92\xb6");
    lq_command_free(p);
}
END_TEST

static const char *const not_json[] = {
    "",
    " ",
    "{",
    "}",
    "{\"id\":\"p-1\"",
    PAY("") " x",
    PAY("") ",",
    PAY("") PAY(""),
    "{\"id\":\"p-1\",}",
    "{'id':'p-1'}",
    "{id:\"p-1\"}",
    PAY(",\"metadata\":{\"a\":[1,2,]}"),
    "/* comment */" PAY(""),
    PAY(",\"reference\":\"tab\there\""),      /* raw control character in a string */
    PAY(",\"reference\":\"new\nline\""),      /* raw newline in a string */
    "\x0b" PAY(""),                           /* vertical tab is no JSON whitespace */
    PAY("") "\x0c",                           /* nor is form feed */
    PAY(",\"reference\":\"bad \\x escape\""), /* unknown escape */
    PAY(",\"reference\":\"\\u12\""),          /* short \u escape */
    PAY(",\"reference\":\"\\ud800\""),        /* lone high surrogate */
    PAY(",\"reference\":\"\\udc00 x\""),      /* lone low surrogate */
    PAY(",\"reference\":\"unterminated}"),
    PAY(",\"reference\":\"ends in a backslash\\"),
    PAY(",\"metadata\":{\"n\":NaN}"),
    PAY(",\"metadata\":{\"n\":Infinity}"),
    PAY(",\"metadata\":{\"n\":tru}"),
    PAY(",\"metadata\":{\"n\":nul}"),
    PAY(",\"metadata\":{\"n\":True}"),
};

START_TEST(non_json_is_malformed)
{
    expect_malformed(not_json[_i]);
}
END_TEST

START_TEST(nul_bytes_and_null_body_are_malformed)
{
    static const char in_string[] = PAY_HEAD "\"reference\":\"a\0b\"," PAY_LEG "}";
    static const char after[] = PAY("") "\0";

    expect_fail_n(in_string, sizeof(in_string) - 1, LQ_ERR_MALFORMED_JSON, "body contains a NUL");
    expect_fail_n(after, sizeof(after) - 1, LQ_ERR_MALFORMED_JSON, "body contains a NUL");

    lq_command *p = UNTOUCHED;
    char detail[LQ_DETAIL_MAX];

    ck_assert_int_eq(lq_command_parse(NULL, 0, &p, detail, sizeof(detail)), LQ_ERR_MALFORMED_JSON);
    ck_assert_ptr_eq(p, UNTOUCHED);
}
END_TEST

/* A body of depth nested arrays, alone or as the value of metadata. */
static char *nested(size_t depth, bool in_metadata)
{
    char *open = repeat('[', depth), *close = repeat(']', depth);
    char *s = in_metadata ? body_printf(PAY(",\"metadata\":{\"deep\":%s%s}"), open, close)
                          : body_printf("%s%s", open, close);

    free(open);
    free(close);
    return s;
}

START_TEST(nesting_deeper_than_the_parser_allows_is_malformed)
{
    char *whole = nested(2000, false);
    char *meta = nested(2000, true);
    char *braces = repeat('{', 5000);

    expect_malformed(whole);
    expect_malformed(meta);
    expect_malformed(braces);
    free(braces);
    free(meta);
    free(whole);
}
END_TEST

START_TEST(moderate_nesting_in_metadata_is_kept)
{
    char *body = nested(100, true);
    lq_command *p = parse_ok(body);

    ck_assert(starts_with(p->metadata, "{\"deep\":[[[[["));
    ck_assert_uint_eq(strlen(p->metadata), strlen("{\"deep\":}") + 200);
    lq_command_free(p);
    free(body);
}
END_TEST

START_TEST(byte_order_mark_is_ignored)
{
    lq_command *p = parse_ok("\xef\xbb\xbf" PAY(""));

    ck_assert_str_eq(p->id, "p-1");
    lq_command_free(p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Shape of the command: invalid_payment */

START_TEST(json_that_is_not_an_object_is_invalid)
{
    static const char *const bodies[] = {"[]", "42", "\"x\"", "null", "true", "[{\"id\":\"p\"}]",
                                         " 0 "};

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        expect_invalid(bodies[i], "body: must be a JSON object");
}
END_TEST

START_TEST(empty_object_is_invalid)
{
    expect_invalid("{}", "id: is required");
    expect_invalid("{\"id\":\"p-1\"}",
                   "body: must have debit, credit, amount and currency, or legs");
}
END_TEST

START_TEST(unknown_fields_are_invalid)
{
    expect_invalid(PAY(",\"foo\":1"), "foo: unknown field");
    expect_invalid(PAY(",\"ID\":\"p-2\""), "ID: unknown field"); /* names are case-sensitive */
    expect_invalid(PAY(",\"Amount\":5"), "Amount: unknown field");
    expect_invalid(PAY(",\"\":5"), ": unknown field");
    expect_invalid("{\"id\":\"p\",\"legs\":[{" PAY_LEG ",\"memo\":\"x\"}]}",
                   "legs[0].memo: unknown field");
    expect_invalid("{\"id\":\"p\",\"legs\":[{" PAY_LEG "},{" PAY_LEG ",\"reference\":\"x\"}]}",
                   "legs[1].reference: unknown field");
}
END_TEST

START_TEST(unknown_field_names_are_shown_safely)
{
    char *long_name = repeat('k', 500);
    char *body = body_printf(PAY(",\"%s\":1"), long_name);
    lq_command *p = UNTOUCHED;
    char detail[LQ_DETAIL_MAX];

    ck_assert_int_eq(parse_s(body, &p, detail), LQ_ERR_INVALID_PAYMENT);
    ck_assert_int_lt(strlen(detail), 80);
    ck_assert(starts_with(detail, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...: unknown field"));

    ck_assert_int_eq(parse_s(PAY(",\"a\\nb\\u001b\":1"), &p, detail), LQ_ERR_INVALID_PAYMENT);
    ck_assert_str_eq(detail, "a\\x0ab\\x1b: unknown field");
    ck_assert_ptr_eq(p, UNTOUCHED);
    free(body);
    free(long_name);
}
END_TEST

START_TEST(duplicate_keys_are_invalid)
{
    expect_invalid(PAY(",\"id\":\"p-2\""), "id: appears twice");
    expect_invalid(PAY(",\"amount\":100"), "amount: appears twice");
    expect_invalid(PAY(",\"reference\":\"a\",\"reference\":\"a\""), "reference: appears twice");
    expect_invalid("{\"id\":\"p\",\"legs\":[{" PAY_LEG "}],\"legs\":[{" PAY_LEG "}]}",
                   "legs: appears twice");
    expect_invalid("{\"id\":\"p\",\"legs\":[{" PAY_LEG "},{" PAY_LEG ",\"debit\":\"acct:c\"}]}",
                   "legs[1].debit: appears twice");
    /* a key spelled with an escape is the same key */
    expect_invalid(PAY(",\"\\u0069d\":\"p-2\""), "id: appears twice");
}
END_TEST

START_TEST(missing_required_fields_are_invalid)
{
    expect_invalid("{\"debit\":\"a\",\"credit\":\"b\",\"amount\":1,\"currency\":\"EUR\"}",
                   "id: is required");
    expect_invalid("{\"id\":\"p\",\"credit\":\"b\",\"amount\":1,\"currency\":\"EUR\"}",
                   "debit: is required");
    expect_invalid("{\"id\":\"p\",\"debit\":\"a\",\"amount\":1,\"currency\":\"EUR\"}",
                   "credit: is required");
    expect_invalid("{\"id\":\"p\",\"debit\":\"a\",\"credit\":\"b\",\"currency\":\"EUR\"}",
                   "amount: is required");
    expect_invalid("{\"id\":\"p\",\"debit\":\"a\",\"credit\":\"b\",\"amount\":1}",
                   "currency: is required");
    expect_invalid("{\"id\":\"p\",\"legs\":[{\"credit\":\"b\",\"amount\":1,\"currency\":\"EUR\"}]}",
                   "legs[0].debit: is required");
    expect_invalid("{\"id\":\"p\",\"legs\":[{\"debit\":\"a\",\"amount\":1,\"currency\":\"EUR\"}]}",
                   "legs[0].credit: is required");
    expect_invalid(
        "{\"id\":\"p\",\"legs\":[{\"debit\":\"a\",\"credit\":\"b\",\"currency\":\"EUR\"}]}",
        "legs[0].amount: is required");
    expect_invalid("{\"id\":\"p\",\"legs\":[{\"debit\":\"a\",\"credit\":\"b\",\"amount\":1}]}",
                   "legs[0].currency: is required");
}
END_TEST

START_TEST(nul_escape_is_invalid_but_escaped_backslash_is_not)
{
    lq_command *p;

    /* cJSON would cut the string at the NUL; PostgreSQL cannot store it */
    expect_invalid(PAY(",\"reference\":\"a\\u0000b\""), "body: strings must not contain \\u0000");
    expect_invalid(PAY(",\"metadata\":{\"k\":\"\\u0000\"}"), "body: strings must not contain");
    expect_invalid(PAY(",\"metadata\":{\"\\u0000\":1}"), "body: strings must not contain");
    /* an escaped backslash, then a real \u0000 escape */
    expect_invalid(PAY(",\"reference\":\"\\\\\\u0000\""), "body: strings must not contain");

    /* an escaped backslash followed by the text u0000 is six harmless characters */
    p = parse_ok(PAY(",\"reference\":\"\\\\u0000\""));
    ck_assert_str_eq(p->reference, "\\u0000");
    lq_command_free(p);
    /* other escapes, control characters included, are fine */
    p = parse_ok(PAY(",\"reference\":\"\\u0001\\\"\\/\\b\\f\\n\\r\\t\""));
    ck_assert_str_eq(p->reference, "\x01\"/\b\f\n\r\t");
    lq_command_free(p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* id */

START_TEST(id_rules)
{
    char *id128 = repeat('a', 128), *id129 = repeat('a', 129);
    char *body;
    lq_command *p;

    body = body_printf("{\"id\":\"%s\"," PAY_LEG "}", id128);
    p = parse_ok(body);
    ck_assert_str_eq(p->id, id128);
    lq_command_free(p);
    free(body);

    body = body_printf("{\"id\":\"%s\"," PAY_LEG "}", id129);
    expect_invalid(body, "id: must be 1-128 characters of A-Z a-z 0-9 . _ : -");
    free(body);

    p = parse_ok("{\"id\":\"AZaz09._:-\"," PAY_LEG "}");
    ck_assert_str_eq(p->id, "AZaz09._:-");
    lq_command_free(p);
    p = parse_ok("{\"id\":\"x\"," PAY_LEG "}");
    ck_assert_str_eq(p->id, "x");
    lq_command_free(p);

    static const char *const bad[] = {"\"\"",         "\"a b\"",   "\"a/b\"", "\"caf\xc3\xa9\"",
                                      "\"a|b\"",      "\"a,b\"",   "\" a\"",  "\"a\\n\"",
                                      "\"a\\u00e9\"", "42",        "null",    "true",
                                      "[\"a\"]",      "{}",        "\"a+b\"", "\"a@b\"",
                                      "\"a#b\"",      "\"a\\\\b\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        body = body_printf("{\"id\":%s," PAY_LEG "}", bad[i]);
        expect_invalid(body, "id: must be 1-128 characters");
        free(body);
    }
    free(id129);
    free(id128);
}
END_TEST

/* ------------------------------------------------------------------ */
/* debit, credit */

START_TEST(account_id_rules)
{
    char *a64 = repeat('d', 64), *a65 = repeat('d', 65);
    char *body;
    lq_command *p;

    body = body_printf("{\"id\":\"p\",\"debit\":\"%s\",\"credit\":\"%s\",\"amount\":1,"
                       "\"currency\":\"EUR\"}",
                       a64, "c");
    p = parse_ok(body);
    ck_assert_str_eq(p->legs[0].debit, a64);
    lq_command_free(p);
    free(body);

    body = body_printf("{\"id\":\"p\",\"debit\":\"b\",\"credit\":\"%s\",\"amount\":1,"
                       "\"currency\":\"EUR\"}",
                       a64);
    p = parse_ok(body);
    ck_assert_str_eq(p->legs[0].credit, a64);
    lq_command_free(p);
    free(body);

    body = body_printf("{\"id\":\"p\",\"debit\":\"%s\",\"credit\":\"c\",\"amount\":1,"
                       "\"currency\":\"EUR\"}",
                       a65);
    expect_invalid(body, "debit: must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    free(body);

    body = body_printf("{\"id\":\"p\",\"debit\":\"b\",\"credit\":\"%s\",\"amount\":1,"
                       "\"currency\":\"EUR\"}",
                       a65);
    expect_invalid(body, "credit: must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    free(body);

    expect_invalid("{\"id\":\"p\",\"debit\":\"\",\"credit\":\"b\",\"amount\":1,\"currency\":"
                   "\"EUR\"}",
                   "debit: must be 1-64 characters");
    expect_invalid("{\"id\":\"p\",\"debit\":\"a b\",\"credit\":\"b\",\"amount\":1,\"currency\":"
                   "\"EUR\"}",
                   "debit: must be 1-64 characters");
    expect_invalid("{\"id\":\"p\",\"debit\":7,\"credit\":\"b\",\"amount\":1,\"currency\":\"EUR\"}",
                   "debit: must be 1-64 characters");
    expect_invalid("{\"id\":\"p\",\"debit\":\"a\",\"credit\":null,\"amount\":1,\"currency\":"
                   "\"EUR\"}",
                   "credit: must be 1-64 characters");
    free(a65);
    free(a64);
}
END_TEST

START_TEST(debit_must_differ_from_credit)
{
    expect_invalid("{\"id\":\"p\",\"debit\":\"acct:a\",\"credit\":\"acct:a\",\"amount\":1,"
                   "\"currency\":\"EUR\"}",
                   "debit: must differ from credit");
    expect_invalid("{\"id\":\"p\",\"legs\":[{" PAY_LEG "},{\"debit\":\"x\",\"credit\":\"x\","
                   "\"amount\":1,\"currency\":\"EUR\"}]}",
                   "legs[1].debit: must differ from credit");
    /* ids are case-sensitive: these are two accounts */
    lq_command *p =
        parse_ok("{\"id\":\"p\",\"debit\":\"acct:a\",\"credit\":\"acct:A\",\"amount\":1,"
                 "\"currency\":\"EUR\"}");
    lq_command_free(p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* amount */

static const struct {
    const char *json;
    int err;
    int64_t value;
} amounts[] = {
    /* JSON numbers: whole values from 1 to 2^53-1, however spelled */
    {"1", LQ_OK, 1},
    {"100", LQ_OK, 100},
    {"9007199254740991", LQ_OK, INT64_C(9007199254740991)},
    {"1.0", LQ_OK, 1},
    {"1e3", LQ_OK, 1000},
    {"1E3", LQ_OK, 1000},
    {"1e+3", LQ_OK, 1000},
    {"100e-2", LQ_OK, 1},
    {"2.5e1", LQ_OK, 25},
    {"0.01e2", LQ_OK, 1},
    {"9007199254740991.000", LQ_OK, INT64_C(9007199254740991)},
    {"9.007199254740991e15", LQ_OK, INT64_C(9007199254740991)},
    {"9007199254740992", LQ_ERR_INVALID_PAYMENT, 0},
    {"9007199254740993", LQ_ERR_INVALID_PAYMENT, 0},
    {"1e16", LQ_ERR_INVALID_PAYMENT, 0},
    {"1e19", LQ_ERR_INVALID_PAYMENT, 0},
    {"1e400", LQ_ERR_INVALID_PAYMENT, 0},
    {"1e999999999999", LQ_ERR_INVALID_PAYMENT, 0},
    {"1.5", LQ_ERR_INVALID_PAYMENT, 0},
    {"0.5", LQ_ERR_INVALID_PAYMENT, 0},
    {"1e-3", LQ_ERR_INVALID_PAYMENT, 0},
    {"1e-999999999999", LQ_ERR_INVALID_PAYMENT, 0},
    /* fractions a double would round to a whole number are still fractions */
    {"1.0000000000000001", LQ_ERR_INVALID_PAYMENT, 0},
    {"9007199254740990.5", LQ_ERR_INVALID_PAYMENT, 0},
    {"0", LQ_ERR_INVALID_PAYMENT, 0},
    {"0.0", LQ_ERR_INVALID_PAYMENT, 0},
    {"0e5", LQ_ERR_INVALID_PAYMENT, 0},
    {"-0", LQ_ERR_INVALID_PAYMENT, 0},
    {"-1", LQ_ERR_INVALID_PAYMENT, 0},
    {"-1e3", LQ_ERR_INVALID_PAYMENT, 0},
    /* strings: decimal digits, no sign, no leading zero, up to INT64_MAX */
    {"\"1\"", LQ_OK, 1},
    {"\"100\"", LQ_OK, 100},
    {"\"9007199254740992\"", LQ_OK, INT64_C(9007199254740992)},
    {"\"9223372036854775807\"", LQ_OK, INT64_MAX},
    {"\"9223372036854775808\"", LQ_ERR_INVALID_PAYMENT, 0},
    {"\"99999999999999999999999\"", LQ_ERR_INVALID_PAYMENT, 0},
    {"\"0\"", LQ_ERR_INVALID_PAYMENT, 0},
    {"\"01\"", LQ_ERR_INVALID_PAYMENT, 0},
    {"\"\"", LQ_ERR_INVALID_PAYMENT, 0},
    {"\"+5\"", LQ_ERR_INVALID_PAYMENT, 0},
    {"\"-5\"", LQ_ERR_INVALID_PAYMENT, 0},
    {"\" 5\"", LQ_ERR_INVALID_PAYMENT, 0},
    {"\"5 \"", LQ_ERR_INVALID_PAYMENT, 0},
    {"\"5a\"", LQ_ERR_INVALID_PAYMENT, 0},
    {"\"1.0\"", LQ_ERR_INVALID_PAYMENT, 0},
    {"\"1e3\"", LQ_ERR_INVALID_PAYMENT, 0},
    {"\"0x10\"", LQ_ERR_INVALID_PAYMENT, 0},
    {"\"\xd9\xa1\"", LQ_ERR_INVALID_PAYMENT, 0}, /* ARABIC-INDIC DIGIT ONE */
    /* other types */
    {"true", LQ_ERR_INVALID_PAYMENT, 0},
    {"false", LQ_ERR_INVALID_PAYMENT, 0},
    {"null", LQ_ERR_INVALID_PAYMENT, 0},
    {"{}", LQ_ERR_INVALID_PAYMENT, 0},
    {"[1]", LQ_ERR_INVALID_PAYMENT, 0},
    /* not JSON numbers at all */
    {"01", LQ_ERR_MALFORMED_JSON, 0},
    {"-01", LQ_ERR_MALFORMED_JSON, 0},
    {"1.", LQ_ERR_MALFORMED_JSON, 0},
    {".5", LQ_ERR_MALFORMED_JSON, 0},
    {"+5", LQ_ERR_MALFORMED_JSON, 0},
    {"1e", LQ_ERR_MALFORMED_JSON, 0},
    {"1e+", LQ_ERR_MALFORMED_JSON, 0},
    {"1.e3", LQ_ERR_MALFORMED_JSON, 0},
    {"0x10", LQ_ERR_MALFORMED_JSON, 0},
    {"-", LQ_ERR_MALFORMED_JSON, 0},
    {"--1", LQ_ERR_MALFORMED_JSON, 0},
    {"1 2", LQ_ERR_MALFORMED_JSON, 0},
};

START_TEST(amount_rules)
{
    const char *json = amounts[_i].json;
    char *single = body_printf("{\"id\":\"p\",\"debit\":\"a\",\"credit\":\"b\",\"amount\":%s,"
                               "\"currency\":\"EUR\"}",
                               json);
    char *legs = body_printf("{\"id\":\"p\",\"legs\":[{" PAY_LEG "},{" PAY_LEG "},"
                             "{\"debit\":\"a\",\"credit\":\"b\",\"amount\":%s,"
                             "\"currency\":\"EUR\"}]}",
                             json);

    if (amounts[_i].err == LQ_OK) {
        lq_command *p = parse_ok(single);

        ck_assert_msg(p->legs[0].amount == amounts[_i].value, "amount %s: got %lld", json,
                      (long long)p->legs[0].amount);
        lq_command_free(p);
        p = parse_ok(legs);
        ck_assert_int_eq(p->legs[0].amount, 100);
        ck_assert_int_eq(p->legs[2].amount, amounts[_i].value);
        lq_command_free(p);
    } else if (amounts[_i].err == LQ_ERR_INVALID_PAYMENT) {
        expect_invalid(single, "amount: ");
        expect_invalid(legs, "legs[2].amount: ");
    } else {
        expect_malformed(single);
        expect_malformed(legs);
    }
    free(legs);
    free(single);
}
END_TEST

START_TEST(amount_details)
{
    expect_invalid(PAY_HEAD "\"debit\":\"a\",\"credit\":\"b\",\"amount\":1.5,\"currency\":\"EUR\"}",
                   "amount: must be a positive whole number");
    expect_invalid("{\"id\":\"p\",\"legs\":[{" PAY_LEG "},{" PAY_LEG "},{\"debit\":\"a\","
                   "\"credit\":\"b\",\"amount\":0,\"currency\":\"EUR\"}]}",
                   "legs[2].amount: must be a positive whole number");
    expect_invalid(PAY_HEAD "\"debit\":\"a\",\"credit\":\"b\",\"amount\":9007199254740992,"
                            "\"currency\":\"EUR\"}",
                   "amount: a JSON number must be at most 9007199254740991; write larger "
                   "amounts as a string");
    expect_invalid(PAY_HEAD "\"debit\":\"a\",\"credit\":\"b\",\"amount\":\"9223372036854775808\","
                            "\"currency\":\"EUR\"}",
                   "amount: must be at most 9223372036854775807");
}
END_TEST

START_TEST(amounts_elsewhere_do_not_confuse_the_amount)
{
    /* numbers before the amount, in metadata and in other legs, keep amounts apart */
    lq_command *p =
        parse_ok("{\"metadata\":{\"n\":[1.5,-2,3e400,{\"amount\":0.5}],\"amount\":7},\"id\":\"p\","
                 "\"legs\":[{\"amount\":11,\"debit\":\"a\",\"credit\":\"b\",\"currency\":\"EUR\"},"
                 "{\"debit\":\"a\",\"credit\":\"b\",\"currency\":\"EUR\",\"amount\":\"22\"},"
                 "{\"debit\":\"a\",\"credit\":\"b\",\"currency\":\"EUR\",\"amount\":3.3e1}]}");

    ck_assert_uint_eq(p->n_legs, 3);
    ck_assert_int_eq(p->legs[0].amount, 11);
    ck_assert_int_eq(p->legs[1].amount, 22);
    ck_assert_int_eq(p->legs[2].amount, 33);
    lq_command_free(p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* currency */

START_TEST(currency_rules)
{
    static const char *const bad[] = {"\"eur\"", "\"Eur\"",   "\"EURO\"",      "\"EU\"",
                                      "\"E1R\"", "\"\"",      "\"E R\"",       "978",
                                      "null",    "[\"EUR\"]", "\"\xc3\x89UR\""};
    lq_command *p;

    p = parse_ok(
        "{\"id\":\"p\",\"debit\":\"a\",\"credit\":\"b\",\"amount\":1,\"currency\":\"JPY\"}");
    ck_assert_str_eq(p->legs[0].currency, "JPY");
    lq_command_free(p);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *body = body_printf("{\"id\":\"p\",\"debit\":\"a\",\"credit\":\"b\",\"amount\":1,"
                                 "\"currency\":%s}",
                                 bad[i]);

        expect_invalid(body, "currency: must be three upper-case letters");
        free(body);
    }
    expect_invalid("{\"id\":\"p\",\"legs\":[{\"debit\":\"a\",\"credit\":\"b\",\"amount\":1,"
                   "\"currency\":\"eur\"}]}",
                   "legs[0].currency: must be three upper-case letters");
}
END_TEST

/* ------------------------------------------------------------------ */
/* legs */

/* A body with n legs, leg i moving i + 1 from "a<i>" to "b<i>"; caller frees. */
static char *legs_body(size_t n)
{
    size_t cap = 64 + n * 80, len = 0;
    char *s = malloc(cap);

    ck_assert_ptr_nonnull(s);
    len += (size_t)snprintf(s + len, cap - len, "{\"id\":\"many\",\"legs\":[");
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(s + len, cap - len,
                                "%s{\"debit\":\"a%zu\",\"credit\":\"b%zu\",\"amount\":%zu,"
                                "\"currency\":\"EUR\"}",
                                i ? "," : "", i, i, i + 1);
    }
    len += (size_t)snprintf(s + len, cap - len, "]}");
    ck_assert_uint_lt(len, cap);
    return s;
}

START_TEST(legs_count_from_1_to_64)
{
    char *one = legs_body(1), *max = legs_body(64), *over = legs_body(65);
    lq_command *p;

    p = parse_ok(one);
    ck_assert_uint_eq(p->n_legs, 1);
    lq_command_free(p);

    p = parse_ok(max);
    ck_assert_uint_eq(p->n_legs, 64);
    ck_assert_str_eq(p->legs[63].debit, "a63");
    ck_assert_str_eq(p->legs[63].credit, "b63");
    ck_assert_int_eq(p->legs[63].amount, 64);
    lq_command_free(p);

    expect_invalid(over, "legs: must have 1 to 64 legs");
    expect_invalid("{\"id\":\"p\",\"legs\":[]}", "legs: must have 1 to 64 legs");
    free(over);
    free(max);
    free(one);
}
END_TEST

START_TEST(legs_shape)
{
    expect_invalid("{\"id\":\"p\",\"legs\":{" PAY_LEG "}}", "legs: must be an array");
    expect_invalid("{\"id\":\"p\",\"legs\":null}", "legs: must be an array");
    expect_invalid("{\"id\":\"p\",\"legs\":\"x\"}", "legs: must be an array");
    expect_invalid("{\"id\":\"p\",\"legs\":[1]}", "legs[0]: must be an object");
    expect_invalid("{\"id\":\"p\",\"legs\":[{" PAY_LEG "},[]]}", "legs[1]: must be an object");
    expect_invalid("{\"id\":\"p\",\"legs\":[{" PAY_LEG "},null]}", "legs[1]: must be an object");
    expect_invalid("{\"id\":\"p\",\"legs\":[{}]}", "legs[0].debit: is required");
}
END_TEST

START_TEST(legs_exclude_the_single_leg_fields)
{
    static const char *const single[] = {"\"debit\":\"a\"", "\"credit\":\"b\"", "\"amount\":1",
                                         "\"currency\":\"EUR\""};

    for (size_t i = 0; i < sizeof(single) / sizeof(single[0]); i++) {
        char *body = body_printf("{\"id\":\"p\",%s,\"legs\":[{" PAY_LEG "}]}", single[i]);

        expect_invalid(body, "legs: cannot be combined with debit, credit, amount or currency");
        free(body);
    }
    expect_invalid(PAY(",\"legs\":[{" PAY_LEG "}]"),
                   "legs: cannot be combined with debit, credit, amount or currency");
}
END_TEST

/* ------------------------------------------------------------------ */
/* reference */

START_TEST(reference_rules)
{
    char *r256 = repeat('r', 256), *r257 = repeat('r', 257);
    char *body;
    lq_command *p;

    body = body_printf(PAY(",\"reference\":\"%s\""), r256);
    p = parse_ok(body);
    ck_assert_str_eq(p->reference, r256);
    lq_command_free(p);
    free(body);

    body = body_printf(PAY(",\"reference\":\"%s\""), r257);
    expect_invalid(body, "reference: must be a string of at most 256 bytes");
    free(body);

    /* bytes, not characters: 128 two-byte characters fit, 86 three-byte ones do not */
    {
        char ok[2 * 128 + 1], over[3 * 86 + 1];

        for (size_t i = 0; i < 128; i++)
            memcpy(ok + 2 * i, "\xc3\xa9", 2);
        ok[256] = '\0';
        for (size_t i = 0; i < 86; i++)
            memcpy(over + 3 * i, "\xe2\x82\xac", 3);
        over[258] = '\0';
        body = body_printf(PAY(",\"reference\":\"%s\""), ok);
        p = parse_ok(body);
        ck_assert_str_eq(p->reference, ok);
        lq_command_free(p);
        free(body);
        body = body_printf(PAY(",\"reference\":\"%s\""), over);
        expect_invalid(body, "reference: must be a string of at most 256 bytes");
        free(body);
    }

    expect_invalid(PAY(",\"reference\":42"), "reference: must be a string");
    expect_invalid(PAY(",\"reference\":null"), "reference: must be a string");
    expect_invalid(PAY(",\"reference\":{}"), "reference: must be a string");

    p = parse_ok(PAY(",\"reference\":\"\""));
    ck_assert_str_eq(p->reference, "");
    lq_command_free(p);
    p = parse_ok(PAY(""));
    ck_assert_ptr_null(p->reference);
    lq_command_free(p);
    free(r257);
    free(r256);
}
END_TEST

/* ------------------------------------------------------------------ */
/* metadata */

START_TEST(metadata_is_kept_compact)
{
    lq_command *p =
        parse_ok(PAY(",\"metadata\": { \"channel\" : \"web\",\n \"n\": [1, 2.5, true, null],"
                     " \"o\": {}, \"s\": \"caf\xc3\xa9\" }"));

    ck_assert_str_eq(
        p->metadata,
        "{\"channel\":\"web\",\"n\":[1,2.5,true,null],\"o\":{},\"s\":\"caf\xc3\xa9\"}");
    lq_command_free(p);

    p = parse_ok(PAY(",\"metadata\":{}"));
    ck_assert_str_eq(p->metadata, "{}");
    lq_command_free(p);
}
END_TEST

START_TEST(metadata_rules)
{
    char *fill = repeat('m', 4096);
    char *body;
    lq_command *p;

    expect_invalid(PAY(",\"metadata\":[]"),
                   "metadata: must be a JSON object of at most 4096 bytes");
    expect_invalid(PAY(",\"metadata\":null"), "metadata: must be a JSON object");
    expect_invalid(PAY(",\"metadata\":\"x\""), "metadata: must be a JSON object");
    expect_invalid(PAY(",\"metadata\":1"), "metadata: must be a JSON object");

    /* {"k":"..."} is 8 bytes around the value: 4088 fill bytes make 4096 */
    fill[4088] = '\0';
    body = body_printf(PAY(",\"metadata\":{\"k\":\"%s\"}"), fill);
    p = parse_ok(body);
    ck_assert_uint_eq(strlen(p->metadata), 4096);
    lq_command_free(p);
    free(body);

    fill[4088] = 'm';
    fill[4089] = '\0';
    body = body_printf(PAY(",\"metadata\":{\"k\":\"%s\"}"), fill);
    expect_invalid(body, "metadata: must be a JSON object of at most 4096 bytes");
    free(body);

    /* far too large: cJSON gives up printing it early */
    {
        char *big = repeat('b', 20000);

        body = body_printf(PAY(",\"metadata\":{\"k\":\"%s\"}"), big);
        expect_invalid(body, "metadata: must be a JSON object of at most 4096 bytes");
        free(big);
    }
    free(body);

    /* exactly 4096 bytes ending in a number and in nested containers */
    fill[4078] = '\0';
    body = body_printf(PAY(",\"metadata\":{\"k\":\"%s\",\"n\":12345}"), fill);
    p = parse_ok(body);
    ck_assert_uint_eq(strlen(p->metadata), 4096);
    ck_assert(strstr(p->metadata, ",\"n\":12345}") != NULL);
    lq_command_free(p);
    free(body);
    fill[4078] = 'm';
    fill[4079] = '\0';
    body = body_printf(PAY(",\"metadata\":{\"k\":\"%s\",\"a\":[{}]}"), fill);
    p = parse_ok(body);
    ck_assert_uint_eq(strlen(p->metadata), 4096);
    lq_command_free(p);
    free(body);
    fill[4079] = 'm';

    /* the limit is on the compact form: whitespace in the body does not count */
    fill[4088] = '\0';
    body = body_printf(PAY(",\"metadata\":{     \"k\"   :    \"%s\"     }"), fill);
    p = parse_ok(body);
    ck_assert_uint_eq(strlen(p->metadata), 4096);
    lq_command_free(p);
    free(body);
    free(fill);
}
END_TEST

/* ------------------------------------------------------------------ */
/* canonical content: what makes a repeated id "the same payment" */

/* The canonical text of body; caller frees. */
static char *canonical(const char *body)
{
    lq_command *p = parse_ok(body);
    char *c = strdup(p->canonical);

    lq_command_free(p);
    ck_assert_ptr_nonnull(c);
    return c;
}

static void expect_same(const char *a, const char *b)
{
    char *ca = canonical(a), *cb = canonical(b);

    ck_assert_msg(strcmp(ca, cb) == 0, "%s\nand\n%s\nshould be the same payment: %s vs %s", a, b,
                  ca, cb);
    free(cb);
    free(ca);
}

static void expect_different(const char *a, const char *b)
{
    char *ca = canonical(a), *cb = canonical(b);

    ck_assert_msg(strcmp(ca, cb) != 0, "%s\nand\n%s\nshould differ, both %s", a, b, ca);
    free(cb);
    free(ca);
}

#define LEG_AB(amount) "\"debit\":\"a\",\"credit\":\"b\",\"amount\":" amount ",\"currency\":\"EUR\""

START_TEST(canonical_is_the_same_for_the_same_content)
{
    /* the single form is a one-leg legs form */
    expect_same("{\"id\":\"p\"," LEG_AB("100") ",\"reference\":\"r\"}",
                "{\"id\":\"p\",\"legs\":[{" LEG_AB("100") "}],\"reference\":\"r\"}");
    /* an amount by value, however it is spelled */
    expect_same("{\"id\":\"p\"," LEG_AB("100") "}", "{\"id\":\"p\"," LEG_AB("\"100\"") "}");
    expect_same("{\"id\":\"p\"," LEG_AB("100") "}", "{\"id\":\"p\"," LEG_AB("1e2") "}");
    expect_same("{\"id\":\"p\"," LEG_AB("100") "}", "{\"id\":\"p\"," LEG_AB("100.0") "}");
    /* member order, whitespace and escapes are spelling */
    expect_same("{\"id\":\"p\"," LEG_AB("1") "}",
                "{ \"currency\" : \"EUR\", \"amount\": 1, \"credit\": \"\\u0062\", \"debit\": "
                "\"a\", \"id\": \"p\" }");
    /* metadata is not part of the content */
    expect_same("{\"id\":\"p\"," LEG_AB("1") ",\"metadata\":{\"channel\":\"web\"}}",
                "{\"id\":\"p\"," LEG_AB("1") ",\"metadata\":{\"channel\":\"app\"}}");
    expect_same("{\"id\":\"p\"," LEG_AB("1") "}",
                "{\"id\":\"p\"," LEG_AB("1") ",\"metadata\":{\"x\":1}}");
}
END_TEST

START_TEST(canonical_differs_for_different_content)
{
    expect_different("{\"id\":\"p\"," LEG_AB("1") ",\"reference\":\"x\"}",
                     "{\"id\":\"p\"," LEG_AB("1") ",\"reference\":\"y\"}");
    /* a reference absent and an empty one are not the same */
    expect_different("{\"id\":\"p\"," LEG_AB("1") "}",
                     "{\"id\":\"p\"," LEG_AB("1") ",\"reference\":\"\"}");
    expect_different("{\"id\":\"p\"," LEG_AB("1") "}", "{\"id\":\"p\"," LEG_AB("2") "}");
    expect_different("{\"id\":\"p\"," LEG_AB("1") "}",
                     "{\"id\":\"p\",\"debit\":\"b\",\"credit\":\"a\",\"amount\":1,"
                     "\"currency\":\"EUR\"}");
    expect_different("{\"id\":\"p\"," LEG_AB("1") "}",
                     "{\"id\":\"p\",\"debit\":\"a\",\"credit\":\"b\",\"amount\":1,"
                     "\"currency\":\"USD\"}");
    /* leg order matters: legs are applied in order */
    expect_different("{\"id\":\"p\",\"legs\":[{" LEG_AB("1") "},{" LEG_AB("2") "}]}",
                     "{\"id\":\"p\",\"legs\":[{" LEG_AB("2") "},{" LEG_AB("1") "}]}");
    expect_different("{\"id\":\"p\",\"legs\":[{" LEG_AB("1") "}]}",
                     "{\"id\":\"p\",\"legs\":[{" LEG_AB("1") "},{" LEG_AB("1") "}]}");
    /* a reference that looks like more legs cannot be mistaken for them */
    expect_different("{\"id\":\"p\"," LEG_AB("1") ",\"reference\":\"|a,b,1,EUR|-\"}",
                     "{\"id\":\"p\",\"legs\":[{" LEG_AB("1") "},{" LEG_AB("1") "}]}");
}
END_TEST

/* ------------------------------------------------------------------ */
/* peek_id and pretty */

static bool peek(const char *text, char id[LQ_ID_MAX + 1])
{
    size_t n = strlen(text);
    char *buf = malloc(n > 0 ? n : 1);
    bool found;

    ck_assert_ptr_nonnull(buf);
    memcpy(buf, text, n);
    found = lq_message_peek_id(buf, n, id);
    free(buf);
    return found;
}

START_TEST(peek_id_finds_the_id_of_any_json_object)
{
    char id[LQ_ID_MAX + 1];
    char *id128 = repeat('i', 128), *id129 = repeat('i', 129);
    char *body;

    ck_assert(peek(PAY(""), id));
    ck_assert_str_eq(id, "p-1");
    /* also of invalid payments: that is what it is for */
    ck_assert(peek("{\"amount\":-1,\"id\":\"bad one\"}", id));
    ck_assert_str_eq(id, "bad one");

    body = body_printf("{\"id\":\"%s\"}", id128);
    ck_assert(peek(body, id));
    ck_assert_str_eq(id, id128);
    free(body);
    body = body_printf("{\"id\":\"%s\"}", id129);
    ck_assert(!peek(body, id));
    free(body);
    free(id129);
    free(id128);
}
END_TEST

START_TEST(peek_id_gives_up_quietly)
{
    static const char *const bodies[] = {"",
                                         "garbage",
                                         "{",
                                         "{\"id\":\"p\"",
                                         "[\"id\"]",
                                         "{\"id\":42}",
                                         "{\"id\":\"\"}",
                                         "{\"ID\":\"p\"}",
                                         "{\"id\":\"\xff\"}",
                                         "\xc0\xaf{\"id\":\"p\"}",
                                         "{\"id\":\"p\"} x"};
    static const char nul[] = "{\"id\":\"p\"}\0";
    char id[LQ_ID_MAX + 1];

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        ck_assert_msg(!peek(bodies[i], id), "body %s", bodies[i]);
    ck_assert(!lq_message_peek_id(nul, sizeof(nul) - 1, id));
    ck_assert(!lq_message_peek_id(NULL, 0, id));
}
END_TEST

/* The load generator splits latencies at an event's processed_at. */
START_TEST(peek_event_reads_processed_at)
{
    static const struct {
        const char *at;
        int64_t us; /* 0: not a timestamp */
    } cases[] = {
        {"2026-11-22T10:00:00.123456Z", 1795341600123456},
        {"2024-02-29T23:59:59.5Z", 1709251199500000},
        {"1970-01-01T00:00:01Z", 1000000},
        {"2026-11-22T10:00:00.123456", 0},
        {"2026-11-22 10:00:00.123456Z", 0},
        {"2026-13-22T10:00:00Z", 0},
        {"2026-11-22T10:00:00.123456Z junk", 0},
        {"yesterday", 0},
    };
    char body[256], id[LQ_ID_MAX + 1];
    int64_t us = -1;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = snprintf(body, sizeof(body),
                         "{\"id\":\"p-%zu\",\"status\":\"applied\",\"processed_at\":\"%s\"}", i,
                         cases[i].at);
        ck_assert(lq_message_peek_event(body, (size_t)n, id, &us));
        ck_assert_msg(us == cases[i].us, "%s: %" PRId64, cases[i].at, us);
    }
    ck_assert(lq_message_peek_event("{\"id\":\"p\"}", strlen("{\"id\":\"p\"}"), id, &us));
    ck_assert_str_eq(id, "p");
    ck_assert_int_eq(us, 0);
    snprintf(body, sizeof(body), "{\"processed_at\":\"2026-11-22T10:00:00Z\"}");
    ck_assert(!lq_message_peek_event(body, strlen(body), id, &us));
}
END_TEST

START_TEST(pretty_reformats_json_and_refuses_the_rest)
{
    static const char body[] = "{\"a\":1,\"b\":[true,null,{}],\"c\":{ },\"d\":[ {\"e\":\"x\"} ]}"
                               "   trailing";
    char *s = lq_message_pretty(body, sizeof(body) - 1 - strlen("   trailing"));

    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "{\n"
                        "  \"a\": 1,\n"
                        "  \"b\": [\n"
                        "    true,\n"
                        "    null,\n"
                        "    {}\n"
                        "  ],\n"
                        "  \"c\": {},\n"
                        "  \"d\": [\n"
                        "    {\n"
                        "      \"e\": \"x\"\n"
                        "    }\n"
                        "  ]\n"
                        "}");
    free(s);

    ck_assert_ptr_null(lq_message_pretty(body, sizeof(body) - 1));
    ck_assert_ptr_null(lq_message_pretty("{", 1));
    ck_assert_ptr_null(lq_message_pretty("", 0));
    ck_assert_ptr_null(lq_message_pretty("\"\xff\"", 3));
    ck_assert_ptr_null(lq_message_pretty("01", 2));
    ck_assert_ptr_null(lq_message_pretty(NULL, 0));
    s = lq_message_pretty(" [ ] ", 5);
    ck_assert_str_eq(s, "[]");
    free(s);
    s = lq_message_pretty("42", 2);
    ck_assert_str_eq(s, "42");
    free(s);
}
END_TEST

START_TEST(pretty_shows_numbers_and_strings_as_written)
{
    /* a double would show 9007199254740992 and 1e+400 would become null */
    static const char body[] = "{\"amount\":9007199254740993,\"x\":1e400,\"y\":1.50,"
                               "\"s\":\"caf\\u00e9 \\\"q\\\"\"}";
    char *s = lq_message_pretty(body, sizeof(body) - 1);

    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "{\n"
                        "  \"amount\": 9007199254740993,\n"
                        "  \"x\": 1e400,\n"
                        "  \"y\": 1.50,\n"
                        "  \"s\": \"caf\\u00e9 \\\"q\\\"\"\n"
                        "}");
    free(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* accounts: `account open` arguments and `account import` lines */

START_TEST(account_id_and_currency_checks)
{
    char *a64 = repeat('a', 64), *a65 = repeat('a', 65);

    ck_assert(lq_message_valid_account_id("acct:alice"));
    ck_assert(lq_message_valid_account_id("AZaz09._:-"));
    ck_assert(lq_message_valid_account_id(a64));
    ck_assert(!lq_message_valid_account_id(a65));
    ck_assert(!lq_message_valid_account_id(""));
    ck_assert(!lq_message_valid_account_id("a b"));
    ck_assert(!lq_message_valid_account_id("a|b"));
    ck_assert(!lq_message_valid_account_id("caf\xc3\xa9"));
    ck_assert(!lq_message_valid_account_id(NULL));

    ck_assert(lq_message_valid_currency("EUR"));
    ck_assert(!lq_message_valid_currency("eur"));
    ck_assert(!lq_message_valid_currency("EURO"));
    ck_assert(!lq_message_valid_currency("EU"));
    ck_assert(!lq_message_valid_currency("E1R"));
    ck_assert(!lq_message_valid_currency(""));
    ck_assert(!lq_message_valid_currency(NULL));
    free(a65);
    free(a64);
}
END_TEST

/* Parse an import line from a buffer of exactly its length. */
static int import_line(const char *text, char id[LQ_ACCOUNT_ID_MAX + 1], char currency[4],
                       bool *allow_negative, char *detail)
{
    size_t n = strlen(text);
    char *buf = malloc(n > 0 ? n : 1);
    int r;

    ck_assert_ptr_nonnull(buf);
    memcpy(buf, text, n);
    lq_account_change c;

    memset(&c, 0, sizeof(c));
    r = lq_message_parse_account(buf, n, &c, detail, LQ_DETAIL_MAX);
    if (r == LQ_OK) {
        memcpy(id, c.account, LQ_ACCOUNT_ID_MAX + 1);
        memcpy(currency, c.currency, 4);
        *allow_negative = c.allow_negative;
    }
    free(buf);
    return r;
}

START_TEST(account_import_lines)
{
    char id[LQ_ACCOUNT_ID_MAX + 1], currency[4], detail[LQ_DETAIL_MAX];
    bool neg = true;

    ck_assert_int_eq(
        import_line("{\"id\":\"acct:alice\",\"currency\":\"EUR\"}", id, currency, &neg, detail),
        LQ_OK);
    ck_assert_str_eq(id, "acct:alice");
    ck_assert_str_eq(currency, "EUR");
    ck_assert(!neg);

    ck_assert_int_eq(import_line("{\"currency\":\"USD\",\"allow_negative\":true,\"id\":\"bank\"}",
                                 id, currency, &neg, detail),
                     LQ_OK);
    ck_assert_str_eq(id, "bank");
    ck_assert_str_eq(currency, "USD");
    ck_assert(neg);

    ck_assert_int_eq(import_line("{\"id\":\"b\",\"currency\":\"USD\",\"allow_negative\":false}", id,
                                 currency, &neg, detail),
                     LQ_OK);
    ck_assert(!neg);
}
END_TEST

START_TEST(account_import_bad_lines)
{
    static const struct {
        const char *line;
        int err;
        const char *detail;
    } bad[] = {
        {"{\"id\":\"a\",\"currency\":\"EUR\"", LQ_ERR_MALFORMED_JSON, "line is not valid JSON"},
        {"", LQ_ERR_MALFORMED_JSON, "line is not valid JSON"},
        {"{\"id\":\"\xff\"}", LQ_ERR_MALFORMED_JSON, "line is not valid UTF-8"},
        {"[]", LQ_ERR_INVALID_PAYMENT, "line: must be a JSON object"},
        {"{\"currency\":\"EUR\"}", LQ_ERR_INVALID_PAYMENT, "id: is required"},
        {"{\"id\":\"a\"}", LQ_ERR_INVALID_PAYMENT, "currency: is required"},
        {"{\"id\":\"a b\",\"currency\":\"EUR\"}", LQ_ERR_INVALID_PAYMENT,
         "id: must be 1-64 characters of A-Z a-z 0-9 . _ : -"},
        {"{\"id\":\"a\",\"currency\":\"eur\"}", LQ_ERR_INVALID_PAYMENT,
         "currency: must be three upper-case letters"},
        {"{\"id\":\"a\",\"currency\":\"EUR\",\"allow_negative\":\"yes\"}", LQ_ERR_INVALID_PAYMENT,
         "allow_negative: must be true or false"},
        {"{\"id\":\"a\",\"currency\":\"EUR\",\"allow_negative\":null}", LQ_ERR_INVALID_PAYMENT,
         "allow_negative: must be true or false"},
        {"{\"id\":\"a\",\"currency\":\"EUR\",\"balance\":5}", LQ_ERR_INVALID_PAYMENT,
         "balance: unknown field"},
        {"{\"id\":\"a\",\"id\":\"b\",\"currency\":\"EUR\"}", LQ_ERR_INVALID_PAYMENT,
         "id: appears twice"},
        {"{\"id\":\"a\\u0000\",\"currency\":\"EUR\"}", LQ_ERR_INVALID_PAYMENT,
         "line: strings must not contain \\u0000"},
    };
    char id[LQ_ACCOUNT_ID_MAX + 1] = "untouched", currency[4] = "XXX", detail[LQ_DETAIL_MAX];
    bool neg = true;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = import_line(bad[i].line, id, currency, &neg, detail);

        ck_assert_msg(r == bad[i].err, "line %s: got %s", bad[i].line, lq_strerror(r));
        ck_assert_str_eq(detail, bad[i].detail);
    }
    /* outputs are written only on success */
    ck_assert_str_eq(id, "untouched");
    ck_assert_str_eq(currency, "XXX");
    ck_assert(neg);
}
END_TEST

/*
 * The limits of an account (docs/protocol.md section 13), the same in
 * account.open, account.update and `account import` lines.
 */

#define LIMIT_RULE   "overdraft_limit: must be a whole number, 0 or more"
#define CEILING_RULE "max_balance: must be a positive whole number"

/* overdraft_limit: a whole number 0 .. 2^63-1, written as amounts are. */
static const struct {
    const char *json;
    int64_t value;
    const char *detail; /* NULL: valid */
} limits[] = {
    {"0", 0, NULL},
    {"1", 1, NULL},
    {"500", 500, NULL},
    {"9007199254740991", INT64_C(9007199254740991), NULL},
    {"0.0", 0, NULL},
    {"0e5", 0, NULL},
    {"1e3", 1000, NULL},
    {"\"0\"", 0, NULL},
    {"\"1\"", 1, NULL},
    {"\"500\"", 500, NULL},
    {"\"9007199254740992\"", INT64_C(9007199254740992), NULL},
    {"\"9223372036854775807\"", INT64_MAX, NULL},
    {"9007199254740992", 0,
     "overdraft_limit: a JSON number must be at most 9007199254740991; write larger limits as a "
     "string"},
    {"9223372036854775807", 0,
     "overdraft_limit: a JSON number must be at most 9007199254740991; write larger limits as a "
     "string"},
    {"1e19", 0,
     "overdraft_limit: a JSON number must be at most 9007199254740991; write larger limits as a "
     "string"},
    {"\"9223372036854775808\"", 0, "overdraft_limit: must be at most 9223372036854775807"},
    {"\"99999999999999999999999\"", 0, "overdraft_limit: must be at most 9223372036854775807"},
    {"\"00\"", 0, LIMIT_RULE},
    {"\"01\"", 0, LIMIT_RULE},
    {"\"\"", 0, LIMIT_RULE},
    {"-1", 0, LIMIT_RULE},
    {"-0", 0, LIMIT_RULE},
    {"\"-1\"", 0, LIMIT_RULE},
    {"\"+1\"", 0, LIMIT_RULE},
    {"1.5", 0, LIMIT_RULE},
    {"0.5", 0, LIMIT_RULE},
    {"1e-3", 0, LIMIT_RULE},
    {"\"1.0\"", 0, LIMIT_RULE},
    {"\"1e3\"", 0, LIMIT_RULE},
    {"\" 1\"", 0, LIMIT_RULE},
    {"null", 0, LIMIT_RULE},
    {"true", 0, LIMIT_RULE},
    {"[0]", 0, LIMIT_RULE},
    {"{}", 0, LIMIT_RULE},
};

/* max_balance: an amount, 1 .. 2^63-1 (null has a meaning of its own: see the tests). */
static const struct {
    const char *json;
    int64_t value;
    const char *detail; /* NULL: valid */
} ceilings[] = {
    {"1", 1, NULL},
    {"500000", 500000, NULL},
    {"9007199254740991", INT64_C(9007199254740991), NULL},
    {"1e3", 1000, NULL},
    {"\"1\"", 1, NULL},
    {"\"9223372036854775807\"", INT64_MAX, NULL},
    {"0", 0, CEILING_RULE},
    {"0.0", 0, CEILING_RULE},
    {"\"0\"", 0, CEILING_RULE},
    {"\"01\"", 0, CEILING_RULE},
    {"-5", 0, CEILING_RULE},
    {"1.5", 0, CEILING_RULE},
    {"true", 0, CEILING_RULE},
    {"9007199254740992", 0,
     "max_balance: a JSON number must be at most 9007199254740991; write larger amounts as a "
     "string"},
    {"\"9223372036854775808\"", 0, "max_balance: must be at most 9223372036854775807"},
};

/* Parse an import line into *ret from a buffer of exactly its length. */
static int import_change(const char *text, lq_account_change *ret, char *detail)
{
    size_t n = strlen(text);
    char *buf = malloc(n > 0 ? n : 1);
    int r;

    ck_assert_ptr_nonnull(buf);
    memcpy(buf, text, n);
    r = lq_message_parse_account(buf, n, ret, detail, LQ_DETAIL_MAX);
    free(buf);
    return r;
}

static lq_account_change import_ok(const char *text)
{
    lq_account_change c;
    char detail[LQ_DETAIL_MAX] = "";
    int r;

    memset(&c, 0xa5, sizeof(c));
    r = import_change(text, &c, detail);
    ck_assert_msg(r == LQ_OK, "line %s: got %s (%s)", text, lq_strerror(r), detail);
    ck_assert_ptr_null(c.reason);
    return c;
}

static void expect_bad_import(const char *text, const char *want)
{
    lq_account_change c;
    char detail[LQ_DETAIL_MAX] = "";
    int r;

    memset(&c, 0xa5, sizeof(c));
    r = import_change(text, &c, detail);
    ck_assert_msg(r == LQ_ERR_INVALID_PAYMENT, "line %s: got %s", text, lq_strerror(r));
    ck_assert_msg(strcmp(detail, want) == 0, "line %s: detail \"%s\", want \"%s\"", text, detail,
                  want);
    /* nothing written on failure */
    ck_assert_uint_eq(((unsigned char *)&c)[0], 0xa5);
    ck_assert_uint_eq(((unsigned char *)&c)[sizeof(c) - 1], 0xa5);
}

START_TEST(account_import_overdraft_limit)
{
    char *line =
        body_printf("{\"id\":\"a\",\"currency\":\"EUR\",\"overdraft_limit\":%s}", limits[_i].json);

    if (limits[_i].detail == NULL) {
        lq_account_change c = import_ok(line);

        ck_assert(c.set_overdraft_limit);
        ck_assert_msg(c.overdraft_limit == limits[_i].value, "%s: got %" PRId64, limits[_i].json,
                      c.overdraft_limit);
        ck_assert(!c.set_allow_negative && !c.allow_negative);
        ck_assert(!c.set_max_balance);
    } else {
        expect_bad_import(line, limits[_i].detail);
    }
    free(line);
}
END_TEST

START_TEST(account_import_max_balance)
{
    char *line =
        body_printf("{\"id\":\"a\",\"currency\":\"EUR\",\"max_balance\":%s}", ceilings[_i].json);

    if (ceilings[_i].detail == NULL) {
        lq_account_change c = import_ok(line);

        ck_assert(c.set_max_balance);
        ck_assert_msg(c.max_balance == ceilings[_i].value, "%s: got %" PRId64, ceilings[_i].json,
                      c.max_balance);
        ck_assert(!c.set_overdraft_limit && !c.set_allow_negative);
    } else {
        expect_bad_import(line, ceilings[_i].detail);
    }
    free(line);
}
END_TEST

START_TEST(account_import_limits_together)
{
    lq_account_change c;

    /* nothing given: every set_* flag false, the defaults of an opened account */
    c = import_ok("{\"id\":\"a\",\"currency\":\"EUR\"}");
    ck_assert(!c.set_allow_negative && !c.set_overdraft_limit && !c.set_max_balance);
    ck_assert(!c.set_status);
    ck_assert(!c.allow_negative);
    ck_assert_int_eq(c.overdraft_limit, 0);
    ck_assert_int_eq(c.max_balance, 0);

    c = import_ok("{\"id\":\"a\",\"currency\":\"EUR\",\"overdraft_limit\":\"250\","
                  "\"max_balance\":1000}");
    ck_assert(c.set_overdraft_limit && c.set_max_balance && !c.set_allow_negative);
    ck_assert_int_eq(c.overdraft_limit, 250);
    ck_assert_int_eq(c.max_balance, 1000);

    /* false with a limit says the same thing twice */
    c = import_ok("{\"id\":\"a\",\"currency\":\"EUR\",\"allow_negative\":false,"
                  "\"overdraft_limit\":250}");
    ck_assert(c.set_allow_negative && !c.allow_negative && c.set_overdraft_limit);
    ck_assert_int_eq(c.overdraft_limit, 250);

    c = import_ok("{\"id\":\"a\",\"currency\":\"EUR\",\"allow_negative\":true,"
                  "\"max_balance\":\"9223372036854775807\"}");
    ck_assert(c.set_allow_negative && c.allow_negative && !c.set_overdraft_limit);
    ck_assert_int_eq(c.max_balance, INT64_MAX);

    /* true with any limit, even 0, is a contradiction, in either order */
    expect_bad_import("{\"id\":\"a\",\"currency\":\"EUR\",\"allow_negative\":true,"
                      "\"overdraft_limit\":0}",
                      "allow_negative: cannot be true together with overdraft_limit");
    expect_bad_import("{\"id\":\"a\",\"currency\":\"EUR\",\"overdraft_limit\":\"100\","
                      "\"allow_negative\":true}",
                      "allow_negative: cannot be true together with overdraft_limit");
    /* absent already means no ceiling */
    expect_bad_import("{\"id\":\"a\",\"currency\":\"EUR\",\"max_balance\":null}",
                      "max_balance: must be a positive whole number; leave it out for no ceiling");
    /* each field is checked before the two are weighed together */
    expect_bad_import("{\"id\":\"a\",\"currency\":\"EUR\",\"allow_negative\":true,"
                      "\"overdraft_limit\":-1}",
                      LIMIT_RULE);
}
END_TEST

START_TEST(account_import_lines_are_not_commands)
{
    /* the line's id is the account's: the command fields have no place in it */
    expect_bad_import("{\"id\":\"a\",\"currency\":\"EUR\",\"type\":\"account.open\"}",
                      "type: unknown field");
    expect_bad_import("{\"id\":\"a\",\"currency\":\"EUR\",\"account\":\"a\"}",
                      "account: unknown field");
    expect_bad_import("{\"id\":\"a\",\"currency\":\"EUR\",\"metadata\":{}}",
                      "metadata: unknown field");
    expect_bad_import("{\"id\":\"a\",\"currency\":\"EUR\",\"status\":\"frozen\"}",
                      "status: unknown field");
    expect_bad_import("{\"id\":\"a\",\"currency\":\"EUR\",\"reason\":\"x\"}",
                      "reason: unknown field");
    expect_bad_import("{\"id\":\"a\",\"currency\":\"EUR\",\"max_balance\":1,\"max_balance\":2}",
                      "max_balance: appears twice");
}
END_TEST

/* ------------------------------------------------------------------ */
/* command types (docs/protocol.md section 12) */

#define OPEN_HEAD                                                                                  \
    "{\"type\":\"account.open\",\"id\":\"o-1\",\"account\":\"acct:alice\",\"currency\":\"EUR\""
/* A valid account.open, with more fields spliced in at the end. */
#define OPEN(extra) OPEN_HEAD extra "}"
#define UPDATE_HEAD "{\"type\":\"account.update\",\"id\":\"u-1\",\"account\":\"acct:alice\""
/* An account.update that changes nothing yet: splice in at least one change. */
#define UPDATE(extra) UPDATE_HEAD extra "}"

START_TEST(type_names)
{
    static const struct {
        lq_command_type type;
        const char *name, *family;
    } types[] = {
        {LQ_CMD_TRANSFER, "transfer", "payment"},
        {LQ_CMD_ACCOUNT_OPEN, "account.open", "account"},
        {LQ_CMD_ACCOUNT_UPDATE, "account.update", "account"},
        {LQ_CMD_HOLD, "hold", "hold"},
        {LQ_CMD_CAPTURE, "capture", "capture"},
        {LQ_CMD_VOID, "void", "void"},
    };
    static const char *const not_types[] = {"Transfer", "",          "Hold",          "hold ",
                                            "captured", "account",   "account.close", "transfer ",
                                            "payment",  "authorize", "refund"};
    lq_command_type t = LQ_CMD_ACCOUNT_UPDATE;

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        ck_assert_str_eq(lq_command_type_name(types[i].type), types[i].name);
        ck_assert_str_eq(lq_command_family(types[i].type), types[i].family);
        ck_assert(lq_command_type_parse(types[i].name, &t));
        ck_assert_int_eq(t, types[i].type);
    }
    t = LQ_CMD_ACCOUNT_OPEN;
    for (size_t i = 0; i < sizeof(not_types) / sizeof(not_types[0]); i++)
        ck_assert_msg(!lq_command_type_parse(not_types[i], &t), "%s", not_types[i]);
    ck_assert(!lq_command_type_parse(NULL, &t));
    ck_assert_int_eq(t, LQ_CMD_ACCOUNT_OPEN);
    ck_assert_str_eq(lq_command_type_name((lq_command_type)99), "unknown");
    ck_assert_str_eq(lq_command_family((lq_command_type)99), "unknown");
}
END_TEST

START_TEST(status_names)
{
    static const struct {
        lq_account_status status;
        const char *name;
    } statuses[] = {
        {LQ_STATUS_ACTIVE, "active"},
        {LQ_STATUS_FROZEN, "frozen"},
        {LQ_STATUS_CLOSED, "closed"},
    };
    lq_account_status st = LQ_STATUS_CLOSED;

    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        ck_assert_str_eq(lq_account_status_name(statuses[i].status), statuses[i].name);
        ck_assert(lq_account_status_parse(statuses[i].name, &st));
        ck_assert_int_eq(st, statuses[i].status);
    }
    st = LQ_STATUS_FROZEN;
    ck_assert(!lq_account_status_parse("Active", &st));
    ck_assert(!lq_account_status_parse("open", &st));
    ck_assert(!lq_account_status_parse("", &st));
    ck_assert(!lq_account_status_parse(NULL, &st));
    ck_assert_int_eq(st, LQ_STATUS_FROZEN);
}
END_TEST

START_TEST(type_transfer_is_a_transfer)
{
    lq_command *p = parse_ok(PAY(",\"type\":\"transfer\""));

    ck_assert_int_eq(p->type, LQ_CMD_TRANSFER);
    ck_assert_uint_eq(p->n_legs, 1);
    ck_assert_str_eq(p->legs[0].debit, "acct:a");
    lq_command_free(p);
    p = parse_ok("{\"type\":\"transfer\",\"id\":\"p\",\"legs\":[{" PAY_LEG "}]}");
    ck_assert_int_eq(p->type, LQ_CMD_TRANSFER);
    lq_command_free(p);
    p = parse_ok(PAY(""));
    ck_assert_int_eq(p->type, LQ_CMD_TRANSFER);
    /* a transfer has no account change */
    ck_assert_str_eq(p->change.account, "");
    ck_assert_ptr_null(p->change.reason);
    lq_command_free(p);
}
END_TEST

START_TEST(unknown_types_are_invalid)
{
    char *long_type = repeat('t', 300);
    char *body = body_printf(PAY(",\"type\":\"%s\""), long_type);
    lq_command *p = UNTOUCHED;
    char detail[LQ_DETAIL_MAX];

    /* types no release has */
    expect_invalid(PAY(",\"type\":\"refund\""), "type: unknown command type \"refund\"");
    expect_invalid("{\"type\":\"authorize\"}", "type: unknown command type \"authorize\"");
    /* names are exact */
    expect_invalid(PAY(",\"type\":\"Transfer\""), "type: unknown command type \"Transfer\"");
    expect_invalid(PAY(",\"type\":\"Hold\""), "type: unknown command type \"Hold\"");
    expect_invalid("{\"type\":\"capture \",\"id\":\"c\",\"hold\":\"h\"}",
                   "type: unknown command type \"capture \"");
    expect_invalid(PAY(",\"type\":\"\""), "type: unknown command type \"\"");
    expect_invalid(OPEN_HEAD ",\"type\":\"account.close\"}", "type: appears twice");
    expect_invalid("{\"type\":\"account.close\",\"id\":\"x\",\"account\":\"a\"}",
                   "type: unknown command type \"account.close\"");
    /* shown safely: quotes, control characters and length */
    ck_assert_int_eq(parse_s(PAY(",\"type\":\"a\\\"b\\n\""), &p, detail), LQ_ERR_INVALID_PAYMENT);
    ck_assert_str_eq(detail, "type: unknown command type \"a\\x22b\\x0a\"");
    ck_assert_int_eq(parse_s(body, &p, detail), LQ_ERR_INVALID_PAYMENT);
    ck_assert_str_eq(detail,
                     "type: unknown command type \"tttttttttttttttttttttttttttttttttttttttt...\"");
    ck_assert_ptr_eq(p, UNTOUCHED);
    free(body);
    free(long_type);
}
END_TEST

START_TEST(type_must_be_one_string)
{
    static const char *const not_strings[] = {"1", "null", "true", "[\"transfer\"]",
                                              "{\"type\":\"transfer\"}"};

    for (size_t i = 0; i < sizeof(not_strings) / sizeof(not_strings[0]); i++) {
        char *body = body_printf(PAY(",\"type\":%s"), not_strings[i]);

        expect_invalid(body, "type: must be a string");
        free(body);
    }
    expect_invalid(PAY(",\"type\":\"transfer\",\"type\":\"transfer\""), "type: appears twice");
    expect_invalid(OPEN(",\"type\":\"account.open\""), "type: appears twice");
    /* a key spelled with an escape is the same key */
    expect_invalid(PAY(",\"type\":\"transfer\",\"\\u0074ype\":\"transfer\""),
                   "type: appears twice");
    /* "type" is a name, compared exactly */
    expect_invalid(PAY(",\"Type\":\"transfer\""), "Type: unknown field");
}
END_TEST

START_TEST(type_is_read_before_the_other_fields)
{
    /* the type decides which fields are known, so it is checked first */
    expect_invalid("{\"foo\":1,\"type\":\"refund\"}", "type: unknown command type \"refund\"");
    expect_invalid("{\"id\":\"a\",\"id\":\"b\",\"type\":7}", "type: must be a string");
    /* then the type's own rules, in their order */
    expect_invalid("{\"foo\":1,\"type\":\"account.open\"}", "foo: unknown field");
    expect_invalid("{\"type\":\"account.open\"}", "id: is required");
    expect_invalid("{\"type\":\"transfer\"}", "id: is required");
    expect_invalid("{\"foo\":1,\"type\":\"hold\"}", "foo: unknown field");
    expect_invalid("{\"type\":\"hold\"}", "id: is required");
    expect_invalid("{\"type\":\"capture\"}", "id: is required");
    expect_invalid("{\"type\":\"void\"}", "id: is required");
}
END_TEST

START_TEST(fields_of_another_type_are_unknown)
{
    /* a transfer's fields on account commands */
    expect_invalid(OPEN(",\"debit\":\"acct:a\""), "debit: unknown field");
    expect_invalid(OPEN(",\"amount\":1"), "amount: unknown field");
    expect_invalid(OPEN(",\"legs\":[]"), "legs: unknown field");
    expect_invalid(OPEN(",\"reference\":\"r\""), "reference: unknown field");
    expect_invalid(UPDATE(",\"status\":\"frozen\",\"credit\":\"acct:b\""), "credit: unknown field");
    expect_invalid(UPDATE(",\"status\":\"frozen\",\"reference\":\"r\""),
                   "reference: unknown field");
    /* an account command's fields on a transfer, with or without its type */
    expect_invalid(PAY(",\"account\":\"acct:a\""), "account: unknown field");
    expect_invalid(PAY(",\"type\":\"transfer\",\"account\":\"acct:a\""), "account: unknown field");
    expect_invalid(PAY(",\"status\":\"frozen\""), "status: unknown field");
    expect_invalid(PAY(",\"allow_negative\":true"), "allow_negative: unknown field");
    expect_invalid(PAY(",\"overdraft_limit\":0"), "overdraft_limit: unknown field");
    expect_invalid(PAY(",\"max_balance\":1"), "max_balance: unknown field");
    expect_invalid(PAY(",\"reason\":\"r\""), "reason: unknown field");
    expect_invalid("{\"id\":\"p\",\"legs\":[{" PAY_LEG ",\"type\":\"transfer\"}]}",
                   "legs[0].type: unknown field");
    /* an update's fields on an open, and an open's on an update */
    expect_invalid(OPEN(",\"status\":\"active\""), "status: unknown field");
    expect_invalid(OPEN(",\"reason\":\"new customer\""), "reason: unknown field");
    expect_invalid(UPDATE(",\"status\":\"frozen\",\"currency\":\"EUR\""),
                   "currency: unknown field");
    /* neither has a balance to set */
    expect_invalid(OPEN(",\"balance\":0"), "balance: unknown field");
}
END_TEST

START_TEST(peek_id_finds_the_id_of_every_type)
{
    char id[LQ_ID_MAX + 1];

    ck_assert(peek(OPEN(""), id));
    ck_assert_str_eq(id, "o-1");
    ck_assert(peek(UPDATE(",\"status\":\"closed\""), id));
    ck_assert_str_eq(id, "u-1");
    ck_assert(peek(PAY(",\"type\":\"transfer\""), id));
    ck_assert_str_eq(id, "p-1");
    ck_assert(peek("{\"type\":\"void\",\"id\":\"v-1\",\"hold\":\"h-1\"}", id));
    ck_assert_str_eq(id, "v-1");
    /* also of types not known: they are dead-lettered under their id */
    ck_assert(peek("{\"type\":\"refund\",\"id\":\"r-1\"}", id));
    ck_assert_str_eq(id, "r-1");
}
END_TEST

/* ------------------------------------------------------------------ */
/* account.open (docs/protocol.md section 13) */

START_TEST(account_open_is_parsed)
{
    lq_command *c = parse_ok("{\"type\": \"account.open\", \"id\": \"open-acct-alice\", "
                             "\"account\": \"acct:alice\", \"currency\": \"EUR\", "
                             "\"overdraft_limit\": 0, \"max_balance\": 500000, \"metadata\": {}}");

    ck_assert_int_eq(c->type, LQ_CMD_ACCOUNT_OPEN);
    ck_assert_str_eq(c->id, "open-acct-alice");
    ck_assert_str_eq(c->change.account, "acct:alice");
    ck_assert_str_eq(c->change.currency, "EUR");
    ck_assert(!c->change.set_status);
    ck_assert(!c->change.set_allow_negative);
    ck_assert(!c->change.allow_negative);
    ck_assert(c->change.set_overdraft_limit);
    ck_assert_int_eq(c->change.overdraft_limit, 0);
    ck_assert(c->change.set_max_balance);
    ck_assert_int_eq(c->change.max_balance, 500000);
    ck_assert_ptr_null(c->change.reason);
    ck_assert_str_eq(c->metadata, "{}");
    /* no transfer fields */
    ck_assert_uint_eq(c->n_legs, 0);
    ck_assert_ptr_null(c->legs);
    ck_assert_ptr_null(c->reference);
    lq_command_free(c);

    /* the least an open says: the defaults, none of them given */
    c = parse_ok(
        "{\"currency\":\"USD\",\"account\":\"bank\",\"id\":\"o\",\"type\":\"account.open\"}");
    ck_assert_str_eq(c->change.account, "bank");
    ck_assert_str_eq(c->change.currency, "USD");
    ck_assert(!c->change.set_allow_negative && !c->change.set_overdraft_limit &&
              !c->change.set_max_balance);
    ck_assert(!c->change.allow_negative);
    ck_assert_int_eq(c->change.overdraft_limit, 0);
    ck_assert_int_eq(c->change.max_balance, 0);
    ck_assert_ptr_null(c->metadata);
    lq_command_free(c);

    c = parse_ok(OPEN(",\"allow_negative\":true,\"metadata\":{\"by\":\"onboarding\"}"));
    ck_assert(c->change.set_allow_negative && c->change.allow_negative);
    ck_assert(!c->change.set_overdraft_limit);
    ck_assert_str_eq(c->metadata, "{\"by\":\"onboarding\"}");
    lq_command_free(c);
}
END_TEST

START_TEST(account_open_fields)
{
    char *a64 = repeat('a', 64), *a65 = repeat('a', 65), *body;
    lq_command *c;

    expect_invalid("{\"type\":\"account.open\",\"account\":\"a\",\"currency\":\"EUR\"}",
                   "id: is required");
    expect_invalid("{\"type\":\"account.open\",\"id\":\"o\",\"currency\":\"EUR\"}",
                   "account: is required");
    expect_invalid("{\"type\":\"account.open\",\"id\":\"o\",\"account\":\"a\"}",
                   "currency: is required");
    expect_invalid(
        "{\"type\":\"account.open\",\"id\":\"o o\",\"account\":\"a\",\"currency\":\"EUR\"}",
        "id: must be 1-128 characters of A-Z a-z 0-9 . _ : -");
    expect_invalid(
        "{\"type\":\"account.open\",\"id\":\"o\",\"account\":\"a|b\",\"currency\":\"EUR\"}",
        "account: must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    expect_invalid("{\"type\":\"account.open\",\"id\":\"o\",\"account\":7,\"currency\":\"EUR\"}",
                   "account: must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    expect_invalid(
        "{\"type\":\"account.open\",\"id\":\"o\",\"account\":\"a\",\"currency\":\"eur\"}",
        "currency: must be three upper-case letters");
    expect_invalid(OPEN(",\"allow_negative\":\"yes\""), "allow_negative: must be true or false");
    expect_invalid(OPEN(",\"allow_negative\":null"), "allow_negative: must be true or false");
    expect_invalid(OPEN(",\"metadata\":[]"),
                   "metadata: must be a JSON object of at most 4096 bytes");
    expect_invalid(OPEN(",\"account\":\"acct:bob\""), "account: appears twice");
    expect_invalid(OPEN(",\"metadata\":{\"k\":\"\\u0000\"}"), "body: strings must not contain");

    body = body_printf("{\"type\":\"account.open\",\"id\":\"o\",\"account\":\"%s\","
                       "\"currency\":\"EUR\"}",
                       a64);
    c = parse_ok(body);
    ck_assert_str_eq(c->change.account, a64);
    lq_command_free(c);
    free(body);
    body = body_printf("{\"type\":\"account.open\",\"id\":\"o\",\"account\":\"%s\","
                       "\"currency\":\"EUR\"}",
                       a65);
    expect_invalid(body, "account: must be 1-64 characters");
    free(body);
    free(a65);
    free(a64);
}
END_TEST

START_TEST(account_open_overdraft_limit)
{
    char *body = body_printf(OPEN(",\"overdraft_limit\":%s"), limits[_i].json);

    if (limits[_i].detail == NULL) {
        lq_command *c = parse_ok(body);

        ck_assert(c->change.set_overdraft_limit);
        ck_assert_msg(c->change.overdraft_limit == limits[_i].value, "%s: got %" PRId64,
                      limits[_i].json, c->change.overdraft_limit);
        lq_command_free(c);
    } else {
        expect_invalid(body, limits[_i].detail);
    }
    free(body);
}
END_TEST

START_TEST(account_open_max_balance)
{
    char *body = body_printf(OPEN(",\"max_balance\":%s"), ceilings[_i].json);

    if (ceilings[_i].detail == NULL) {
        lq_command *c = parse_ok(body);

        ck_assert(c->change.set_max_balance);
        ck_assert_msg(c->change.max_balance == ceilings[_i].value, "%s: got %" PRId64,
                      ceilings[_i].json, c->change.max_balance);
        lq_command_free(c);
    } else {
        expect_invalid(body, ceilings[_i].detail);
    }
    free(body);
}
END_TEST

START_TEST(account_open_floor_and_ceiling)
{
    lq_command *c;

    /* no floor and a limit on the floor contradict each other, whatever the limit */
    expect_invalid(OPEN(",\"allow_negative\":true,\"overdraft_limit\":100"),
                   "allow_negative: cannot be true together with overdraft_limit");
    expect_invalid(OPEN(",\"overdraft_limit\":\"0\",\"allow_negative\":true"),
                   "allow_negative: cannot be true together with overdraft_limit");
    /* false with a limit is consistent */
    c = parse_ok(OPEN(",\"allow_negative\":false,\"overdraft_limit\":100"));
    ck_assert(c->change.set_allow_negative && !c->change.allow_negative);
    ck_assert(c->change.set_overdraft_limit);
    ck_assert_int_eq(c->change.overdraft_limit, 100);
    lq_command_free(c);
    /* absent already means no ceiling: null is refused, not guessed at */
    expect_invalid(OPEN(",\"max_balance\":null"),
                   "max_balance: must be a positive whole number; leave it out for no ceiling");
    /* a floor and a ceiling together */
    c = parse_ok(OPEN(",\"overdraft_limit\":\"9223372036854775807\","
                      "\"max_balance\":\"9223372036854775807\""));
    ck_assert_int_eq(c->change.overdraft_limit, INT64_MAX);
    ck_assert_int_eq(c->change.max_balance, INT64_MAX);
    lq_command_free(c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* account.update (docs/protocol.md section 13) */

START_TEST(account_update_is_parsed)
{
    lq_command *c = parse_ok("{\"type\": \"account.update\", \"id\": \"freeze-alice-1\", "
                             "\"account\": \"acct:alice\", \"status\": \"frozen\", "
                             "\"reason\": \"fraud review\"}");

    ck_assert_int_eq(c->type, LQ_CMD_ACCOUNT_UPDATE);
    ck_assert_str_eq(c->id, "freeze-alice-1");
    ck_assert_str_eq(c->change.account, "acct:alice");
    ck_assert_str_eq(c->change.currency, "");
    ck_assert(c->change.set_status);
    ck_assert_int_eq(c->change.status, LQ_STATUS_FROZEN);
    ck_assert(!c->change.set_allow_negative && !c->change.set_overdraft_limit &&
              !c->change.set_max_balance);
    ck_assert_str_eq(c->change.reason, "fraud review");
    ck_assert_ptr_null(c->metadata);
    ck_assert_uint_eq(c->n_legs, 0);
    ck_assert_ptr_null(c->reference);
    lq_command_free(c);

    c = parse_ok(UPDATE(",\"status\":\"active\""));
    ck_assert_int_eq(c->change.status, LQ_STATUS_ACTIVE);
    ck_assert_ptr_null(c->change.reason);
    lq_command_free(c);
    c = parse_ok(UPDATE(",\"status\":\"closed\",\"metadata\":{\"ticket\":42}"));
    ck_assert_int_eq(c->change.status, LQ_STATUS_CLOSED);
    ck_assert_str_eq(c->metadata, "{\"ticket\":42}");
    lq_command_free(c);

    /* each change alone is enough, and the flags say exactly what was given */
    c = parse_ok(UPDATE(",\"allow_negative\":true"));
    ck_assert(!c->change.set_status);
    ck_assert(c->change.set_allow_negative && c->change.allow_negative);
    ck_assert(!c->change.set_overdraft_limit && !c->change.set_max_balance);
    lq_command_free(c);
    c = parse_ok(UPDATE(",\"allow_negative\":false"));
    ck_assert(c->change.set_allow_negative && !c->change.allow_negative);
    ck_assert(!c->change.set_overdraft_limit);
    lq_command_free(c);
    c = parse_ok(UPDATE(",\"overdraft_limit\":0"));
    ck_assert(!c->change.set_allow_negative);
    ck_assert(c->change.set_overdraft_limit);
    ck_assert_int_eq(c->change.overdraft_limit, 0);
    lq_command_free(c);
    c = parse_ok(UPDATE(",\"max_balance\":1"));
    ck_assert(c->change.set_max_balance);
    ck_assert_int_eq(c->change.max_balance, 1);
    lq_command_free(c);
    /* null removes the ceiling */
    c = parse_ok(UPDATE(",\"max_balance\":null"));
    ck_assert(c->change.set_max_balance);
    ck_assert_int_eq(c->change.max_balance, 0);
    ck_assert(!c->change.set_status);
    lq_command_free(c);

    c = parse_ok(UPDATE(",\"status\":\"active\",\"allow_negative\":false,"
                        "\"overdraft_limit\":\"250\",\"max_balance\":null,\"reason\":\"\""));
    ck_assert(c->change.set_status && c->change.set_allow_negative &&
              c->change.set_overdraft_limit && c->change.set_max_balance);
    ck_assert_int_eq(c->change.overdraft_limit, 250);
    ck_assert_str_eq(c->change.reason, "");
    lq_command_free(c);
}
END_TEST

START_TEST(account_update_must_change_something)
{
    static const char want[] = "body: an account.update must set at least one of status, "
                               "allow_negative, overdraft_limit or max_balance";

    expect_invalid(UPDATE(""), want);
    expect_invalid(UPDATE(",\"reason\":\"fraud review\""), want);
    expect_invalid(UPDATE(",\"metadata\":{\"a\":1}"), want);
    /* the fields it needs come first */
    expect_invalid("{\"type\":\"account.update\",\"account\":\"a\"}", "id: is required");
    expect_invalid("{\"type\":\"account.update\",\"id\":\"u\",\"status\":\"frozen\"}",
                   "account: is required");
    expect_invalid("{\"type\":\"account.update\",\"id\":\"u\",\"account\":\"a b\"}",
                   "account: must be 1-64 characters of A-Z a-z 0-9 . _ : -");
}
END_TEST

START_TEST(account_update_status_values)
{
    static const char *const bad[] = {"\"Frozen\"", "\"open\"", "\"\"",         "\"frozen \"",
                                      "null",       "1",        "[\"closed\"]", "true"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *body = body_printf(UPDATE(",\"status\":%s"), bad[i]);

        expect_invalid(body, "status: must be \"active\", \"frozen\" or \"closed\"");
        free(body);
    }
    expect_invalid(UPDATE(",\"status\":\"frozen\",\"status\":\"active\""), "status: appears twice");
}
END_TEST

START_TEST(account_update_overdraft_limit)
{
    char *body = body_printf(UPDATE(",\"overdraft_limit\":%s"), limits[_i].json);

    if (limits[_i].detail == NULL) {
        lq_command *c = parse_ok(body);

        ck_assert(c->change.set_overdraft_limit);
        ck_assert_msg(c->change.overdraft_limit == limits[_i].value, "%s: got %" PRId64,
                      limits[_i].json, c->change.overdraft_limit);
        lq_command_free(c);
    } else {
        expect_invalid(body, limits[_i].detail);
    }
    free(body);
}
END_TEST

START_TEST(account_update_max_balance)
{
    char *body = body_printf(UPDATE(",\"max_balance\":%s"), ceilings[_i].json);

    if (ceilings[_i].detail == NULL) {
        lq_command *c = parse_ok(body);

        ck_assert(c->change.set_max_balance);
        ck_assert_msg(c->change.max_balance == ceilings[_i].value, "%s: got %" PRId64,
                      ceilings[_i].json, c->change.max_balance);
        lq_command_free(c);
    } else {
        expect_invalid(body, ceilings[_i].detail);
    }
    free(body);
}
END_TEST

START_TEST(account_update_floor)
{
    lq_command *c;

    expect_invalid(UPDATE(",\"allow_negative\":true,\"overdraft_limit\":100"),
                   "allow_negative: cannot be true together with overdraft_limit");
    expect_invalid(UPDATE(",\"overdraft_limit\":0,\"allow_negative\":true"),
                   "allow_negative: cannot be true together with overdraft_limit");
    c = parse_ok(UPDATE(",\"allow_negative\":false,\"overdraft_limit\":100"));
    ck_assert(c->change.set_allow_negative && !c->change.allow_negative);
    ck_assert(c->change.set_overdraft_limit);
    ck_assert_int_eq(c->change.overdraft_limit, 100);
    lq_command_free(c);
    /* each field is checked before the two are weighed together */
    expect_invalid(UPDATE(",\"allow_negative\":1,\"overdraft_limit\":100"),
                   "allow_negative: must be true or false");
    expect_invalid(UPDATE(",\"allow_negative\":true,\"overdraft_limit\":-100"), LIMIT_RULE);
    /* and the status before them */
    expect_invalid(UPDATE(",\"status\":\"gone\",\"allow_negative\":true,\"overdraft_limit\":1"),
                   "status: must be");
}
END_TEST

/* A string of n copies of the UTF-8 text unit; caller frees. */
static char *repeat_text(const char *unit, size_t n)
{
    size_t k = strlen(unit);
    char *s = malloc(n * k + 1);

    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * k, unit, k);
    s[n * k] = '\0';
    return s;
}

START_TEST(account_update_reason_counts_bytes)
{
    static const struct {
        const char *unit; /* as written in the body */
        size_t copies;
        size_t bytes; /* of the decoded reason */
    } ok[] = {
        {"a", 256, 256},
        {"\xc3\xa9", 128, 256},        /* é, two bytes */
        {"\\u00e9", 128, 256},         /* the same, escaped: bytes of the value, not of the body */
        {"\xe2\x82\xac", 85, 255},     /* €, three bytes */
        {"\xf0\x9f\x92\xb6", 64, 256}, /* four bytes */
    };
    static const struct {
        const char *unit;
        size_t copies;
    } too_long[] = {
        {"a", 257},           {"\xc3\xa9", 129},        {"\\u00e9", 129},
        {"\xe2\x82\xac", 86}, {"\xf0\x9f\x92\xb6", 65},
    };
    lq_command *c;
    char *reason, *body;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        reason = repeat_text(ok[i].unit, ok[i].copies);
        body = body_printf(UPDATE(",\"status\":\"frozen\",\"reason\":\"%s\""), reason);
        c = parse_ok(body);
        ck_assert_uint_eq(strlen(c->change.reason), ok[i].bytes);
        lq_command_free(c);
        free(body);
        free(reason);
    }
    for (size_t i = 0; i < sizeof(too_long) / sizeof(too_long[0]); i++) {
        reason = repeat_text(too_long[i].unit, too_long[i].copies);
        body = body_printf(UPDATE(",\"status\":\"frozen\",\"reason\":\"%s\""), reason);
        expect_invalid(body, "reason: must be a string of at most 256 bytes");
        free(body);
        free(reason);
    }
    /* 255 bytes and then a character of two: 257 */
    reason = repeat_text("a", 255);
    body = body_printf(UPDATE(",\"status\":\"frozen\",\"reason\":\"%s\xc3\xa9\""), reason);
    expect_invalid(body, "reason: must be a string of at most 256 bytes");
    free(body);
    free(reason);

    expect_invalid(UPDATE(",\"status\":\"frozen\",\"reason\":null"),
                   "reason: must be a string of at most 256 bytes");
    expect_invalid(UPDATE(",\"status\":\"frozen\",\"reason\":42"),
                   "reason: must be a string of at most 256 bytes");
    expect_invalid(UPDATE(",\"status\":\"frozen\",\"reason\":\"a\\u0000\""),
                   "body: strings must not contain \\u0000");
    /* anything else goes, the separators of the canonical text included */
    c = parse_ok(UPDATE(",\"status\":\"frozen\",\"reason\":\"a|b,c\\n\\\"d\\\"\""));
    ck_assert_str_eq(c->change.reason, "a|b,c\n\"d\"");
    lq_command_free(c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* canonical content of every type */

START_TEST(canonical_text_of_a_transfer_is_that_of_release_0_2_0)
{
    /* outcomes stored by release 0.2.0 are compared by the SHA-256 of these texts */
    static const struct {
        const char *body, *canonical;
    } cases[] = {
        {PAY(""), "v1|1|acct:a,acct:b,100,EUR|-"},
        {PAY(",\"type\":\"transfer\""), "v1|1|acct:a,acct:b,100,EUR|-"},
        {"{\"type\":\"transfer\"," LEG_AB(
             "\"9223372036854775807\"") ",\"id\":\"p\","
                                        "\"reference\":\"x|y,\\u00e9\",\"metadata\":{\"k\":1}}",
         "v1|1|a,b,9223372036854775807,EUR|r6:x|y,\xc3\xa9"},
        {"{\"id\":\"p\",\"legs\":[{" LEG_AB(
             "1e3") "},{\"debit\":\"c\",\"credit\":\"d\","
                    "\"amount\":\"7\",\"currency\":\"USD\"}],\"reference\":\"\"}",
         "v1|2|a,b,1000,EUR|c,d,7,USD|r0:"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *c = canonical(cases[i].body);

        ck_assert_str_eq(c, cases[i].canonical);
        free(c);
    }
    expect_same(PAY(""), PAY(",\"type\":\"transfer\""));
    expect_same(
        "{\"id\":\"p\",\"legs\":[{" LEG_AB("1") "},{" LEG_AB("2") "}]}",
        "{\"id\":\"p\",\"type\":\"transfer\",\"legs\":[{" LEG_AB("1") "},{" LEG_AB("2") "}]}");
}
END_TEST

START_TEST(canonical_text_of_account_commands)
{
    static const struct {
        const char *body, *canonical;
    } cases[] = {
        {OPEN(""),
         "v1|account.open|acct:alice|EUR|allow_negative=false|overdraft_limit=0|max_balance=none"},
        {OPEN(",\"overdraft_limit\":250,\"max_balance\":\"9223372036854775807\""),
         "v1|account.open|acct:alice|EUR|allow_negative=false|overdraft_limit=250|"
         "max_balance=9223372036854775807"},
        {OPEN(",\"allow_negative\":true"),
         "v1|account.open|acct:alice|EUR|allow_negative=true|overdraft_limit=0|max_balance=none"},
        {UPDATE(",\"status\":\"frozen\",\"reason\":\"fraud review\""),
         "v1|account.update|acct:alice|status=frozen|allow_negative=-|overdraft_limit=-|"
         "max_balance=-|r12:fraud review"},
        {UPDATE(",\"allow_negative\":false,\"overdraft_limit\":\"0\",\"max_balance\":null"),
         "v1|account.update|acct:alice|status=-|allow_negative=false|overdraft_limit=0|"
         "max_balance=none|-"},
        {UPDATE(",\"allow_negative\":true,\"max_balance\":1e3,\"reason\":\"\""),
         "v1|account.update|acct:alice|status=-|allow_negative=true|overdraft_limit=-|"
         "max_balance=1000|r0:"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *c = canonical(cases[i].body);

        ck_assert_str_eq(c, cases[i].canonical);
        free(c);
    }
}
END_TEST

START_TEST(canonical_of_account_commands_is_by_value)
{
    /* numbers by value, however spelled */
    expect_same(OPEN(",\"overdraft_limit\":500"), OPEN(",\"overdraft_limit\":\"500\""));
    expect_same(OPEN(",\"max_balance\":500"), OPEN(",\"max_balance\":\"500\""));
    expect_same(OPEN(",\"max_balance\":500"), OPEN(",\"max_balance\":5e2"));
    expect_same(UPDATE(",\"overdraft_limit\":500"), UPDATE(",\"overdraft_limit\":\"500\""));
    expect_same(UPDATE(",\"overdraft_limit\":0"), UPDATE(",\"overdraft_limit\":\"0\""));
    expect_same(UPDATE(",\"max_balance\":500"), UPDATE(",\"max_balance\":\"500\""));
    /* metadata is not content; member order and whitespace are spelling */
    expect_same(OPEN(""), OPEN(",\"metadata\":{\"by\":\"onboarding\"}"));
    expect_same(UPDATE(",\"status\":\"frozen\""),
                UPDATE(",\"status\":\"frozen\",\"metadata\":{\"ticket\":1}"));
    expect_same(UPDATE(",\"status\":\"frozen\",\"reason\":\"r\""),
                "{ \"reason\": \"r\", \"status\": \"frozen\", \"account\": \"acct:alice\", "
                "\"id\": \"u-2\", \"type\": \"account.update\" }");
    /* an open is what the account will be: a default written out is the default */
    expect_same(OPEN(""), OPEN(",\"allow_negative\":false"));
    expect_same(OPEN(""), OPEN(",\"overdraft_limit\":0"));
    expect_same(OPEN(""), OPEN(",\"allow_negative\":false,\"overdraft_limit\":\"0\""));
}
END_TEST

START_TEST(canonical_of_account_commands_tells_content_apart)
{
    /* another type with the same fields is another command */
    expect_different(OPEN(",\"allow_negative\":true"),
                     "{\"type\":\"account.update\",\"id\":\"o-1\",\"account\":\"acct:alice\","
                     "\"allow_negative\":true}");
    expect_different(OPEN(""), "{\"type\":\"account.open\",\"id\":\"o-1\",\"account\":\"acct:bob\","
                               "\"currency\":\"EUR\"}");
    expect_different(OPEN(""),
                     "{\"type\":\"account.open\",\"id\":\"o-1\",\"account\":\"acct:alice\","
                     "\"currency\":\"USD\"}");
    expect_different(OPEN(""), OPEN(",\"allow_negative\":true"));
    expect_different(OPEN(""), OPEN(",\"overdraft_limit\":1"));
    expect_different(OPEN(""), OPEN(",\"max_balance\":1"));
    expect_different(OPEN(",\"max_balance\":1"), OPEN(",\"max_balance\":2"));
    /* an update says what it changes: leaving a field alone is not setting it */
    expect_different(UPDATE(",\"status\":\"frozen\""), UPDATE(",\"status\":\"closed\""));
    expect_different(UPDATE(",\"status\":\"active\""),
                     UPDATE(",\"status\":\"active\",\"allow_negative\":false"));
    expect_different(UPDATE(",\"allow_negative\":false"),
                     UPDATE(",\"allow_negative\":false,\"overdraft_limit\":0"));
    expect_different(UPDATE(",\"allow_negative\":false"), UPDATE(",\"allow_negative\":true"));
    expect_different(UPDATE(",\"status\":\"active\""),
                     UPDATE(",\"status\":\"active\",\"max_balance\":null"));
    expect_different(UPDATE(",\"max_balance\":null"), UPDATE(",\"max_balance\":1"));
    /* the reason is content: absent, empty and another text differ */
    expect_different(UPDATE(",\"status\":\"frozen\""),
                     UPDATE(",\"status\":\"frozen\",\"reason\":\"\""));
    expect_different(UPDATE(",\"status\":\"frozen\",\"reason\":\"a\""),
                     UPDATE(",\"status\":\"frozen\",\"reason\":\"b\""));
    /* a reason that looks like more fields cannot be mistaken for them */
    expect_different(UPDATE(",\"status\":\"frozen\",\"reason\":\"x|-\""),
                     UPDATE(",\"status\":\"frozen\",\"reason\":\"x\""));
}
END_TEST

START_TEST(canonical_of_a_transfer_is_never_an_account_commands)
{
    /* the second field of a transfer's text is its number of legs, never a type's name */
    char *t = canonical(PAY(""));
    char *o = canonical(OPEN(""));
    char *u = canonical(UPDATE(",\"status\":\"frozen\""));

    ck_assert(starts_with(t, "v1|1|"));
    ck_assert(starts_with(o, "v1|account.open|"));
    ck_assert(starts_with(u, "v1|account.update|"));
    free(u);
    free(o);
    free(t);
}
END_TEST

/* A command built field by field, as the CLI builds one. */
static lq_command *built(lq_command_type type, const char *account)
{
    lq_command *c = calloc(1, sizeof(*c));

    ck_assert_ptr_nonnull(c);
    c->type = type;
    snprintf(c->id, sizeof(c->id), "cli-1");
    snprintf(c->change.account, sizeof(c->change.account), "%s", account);
    return c;
}

static void expect_built_same(lq_command *c, const char *body)
{
    lq_command *p = parse_ok(body);

    ck_assert_int_eq(lq_command_canonicalize(c), LQ_OK);
    ck_assert_ptr_nonnull(c->canonical);
    ck_assert_str_eq(c->canonical, p->canonical);
    lq_command_free(p);
}

START_TEST(canonicalize_gives_a_built_command_the_parsed_text)
{
    lq_command *c;
    char *before;

    c = built(LQ_CMD_ACCOUNT_OPEN, "acct:alice");
    snprintf(c->change.currency, sizeof(c->change.currency), "EUR");
    c->change.set_overdraft_limit = true;
    c->change.overdraft_limit = 500;
    expect_built_same(c, OPEN(",\"overdraft_limit\":\"500\""));
    /* again: the text is replaced, not leaked */
    c->change.set_max_balance = true;
    c->change.max_balance = 900;
    expect_built_same(c, OPEN(",\"max_balance\":900,\"overdraft_limit\":500"));
    lq_command_free(c);

    c = built(LQ_CMD_ACCOUNT_UPDATE, "acct:alice");
    c->change.set_status = true;
    c->change.status = LQ_STATUS_FROZEN;
    c->change.reason = strdup("fraud review");
    ck_assert_ptr_nonnull(c->change.reason);
    expect_built_same(c, UPDATE(",\"status\":\"frozen\",\"reason\":\"fraud review\""));
    c->change.set_status = false;
    c->change.set_max_balance = true;
    c->change.max_balance = 0;
    expect_built_same(c, UPDATE(",\"max_balance\":null,\"reason\":\"fraud review\""));
    lq_command_free(c); /* frees the reason too */

    c = built(LQ_CMD_TRANSFER, "");
    c->legs = calloc(1, sizeof(*c->legs));
    ck_assert_ptr_nonnull(c->legs);
    c->n_legs = 1;
    snprintf(c->legs[0].debit, sizeof(c->legs[0].debit), "acct:a");
    snprintf(c->legs[0].credit, sizeof(c->legs[0].credit), "acct:b");
    snprintf(c->legs[0].currency, sizeof(c->legs[0].currency), "EUR");
    c->legs[0].amount = 100;
    expect_built_same(c, PAY(""));

    /* a type that is none: nothing changes */
    before = strdup(c->canonical);
    ck_assert_ptr_nonnull(before);
    c->type = (lq_command_type)99;
    ck_assert_int_eq(lq_command_canonicalize(c), LQ_ERR_INTERNAL);
    ck_assert_str_eq(c->canonical, before);
    free(before);
    lq_command_free(c);
}
END_TEST

START_TEST(account_change_release_accepts_an_empty_change)
{
    lq_account_change a;

    memset(&a, 0, sizeof(a));
    lq_account_change_release(&a);
    ck_assert_ptr_null(a.reason);
    a.reason = strdup("x");
    ck_assert_ptr_nonnull(a.reason);
    lq_account_change_release(&a);
    ck_assert_ptr_null(a.reason);
    lq_account_change_release(&a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* hold, capture, void (docs/protocol.md section 14) */

#define HOLD_HEAD "{\"type\":\"hold\",\"id\":\"h-1\","
/* A valid single-leg hold, with more fields spliced in at the end. */
#define HOLD(extra)  HOLD_HEAD PAY_LEG extra "}"
#define CAPTURE_HEAD "{\"type\":\"capture\",\"id\":\"c-1\",\"hold\":\"h-1\""
/* A valid capture of the full held amount, with more fields spliced in at the end. */
#define CAPTURE(extra) CAPTURE_HEAD extra "}"
#define VOID_HEAD      "{\"type\":\"void\",\"id\":\"v-1\",\"hold\":\"h-1\""
/* A valid void, with more fields spliced in at the end. */
#define VOID(extra) VOID_HEAD extra "}"

START_TEST(hold_single_form_is_parsed)
{
    lq_command *c = parse_ok(HOLD(",\"timeout_s\":600,\"reference\":\"order-42\","
                                  "\"metadata\":{\"channel\":\"web\"}"));

    ck_assert_int_eq(c->type, LQ_CMD_HOLD);
    ck_assert_str_eq(c->id, "h-1");
    ck_assert_uint_eq(c->n_legs, 1);
    ck_assert_str_eq(c->legs[0].debit, "acct:a");
    ck_assert_str_eq(c->legs[0].credit, "acct:b");
    ck_assert_int_eq(c->legs[0].amount, 100);
    ck_assert_str_eq(c->legs[0].currency, "EUR");
    ck_assert_int_eq(c->timeout_s, 600);
    ck_assert_str_eq(c->reference, "order-42");
    ck_assert_str_eq(c->metadata, "{\"channel\":\"web\"}");
    /* the fields of the other types stay zero */
    ck_assert_str_eq(c->hold, "");
    ck_assert_int_eq(c->amount, 0);
    ck_assert_str_eq(c->change.account, "");
    lq_command_free(c);

    /* no timeout_s: it never expires */
    c = parse_ok(HOLD(""));
    ck_assert_int_eq(c->timeout_s, 0);
    ck_assert_ptr_null(c->reference);
    ck_assert_ptr_null(c->metadata);
    lq_command_free(c);
}
END_TEST

START_TEST(hold_legs_form_is_parsed)
{
    lq_command *c = parse_ok(
        "{\"type\":\"hold\",\"id\":\"h-2\",\"timeout_s\":1,\"legs\":["
        "{\"debit\":\"acct:alice\",\"credit\":\"acct:shop\",\"amount\":900,\"currency\":\"EUR\"},"
        "{\"debit\":\"acct:alice\",\"credit\":\"acct:fees\",\"amount\":\"100\","
        "\"currency\":\"EUR\"}]}");

    ck_assert_int_eq(c->type, LQ_CMD_HOLD);
    ck_assert_uint_eq(c->n_legs, 2);
    ck_assert_str_eq(c->legs[0].credit, "acct:shop");
    ck_assert_int_eq(c->legs[0].amount, 900);
    ck_assert_str_eq(c->legs[1].credit, "acct:fees");
    ck_assert_int_eq(c->legs[1].amount, 100);
    ck_assert_int_eq(c->timeout_s, 1);
    lq_command_free(c);
}
END_TEST

/* timeout_s: a JSON integer literal, 1 .. 31536000, nothing else */
static const struct {
    const char *json;
    int err;
    int64_t value;
} timeouts[] = {
    {"1", LQ_OK, 1},
    {"60", LQ_OK, 60},
    {"31536000", LQ_OK, 31536000},
    {"0", LQ_ERR_INVALID_PAYMENT, 0},
    {"31536001", LQ_ERR_INVALID_PAYMENT, 0},
    {"99999999999999999999999", LQ_ERR_INVALID_PAYMENT, 0},
    {"-1", LQ_ERR_INVALID_PAYMENT, 0},
    {"-0", LQ_ERR_INVALID_PAYMENT, 0},
    /* whole values spelled otherwise are not integer literals */
    {"1.0", LQ_ERR_INVALID_PAYMENT, 0},
    {"60.0", LQ_ERR_INVALID_PAYMENT, 0},
    {"1e3", LQ_ERR_INVALID_PAYMENT, 0},
    {"1E3", LQ_ERR_INVALID_PAYMENT, 0},
    {"6e+1", LQ_ERR_INVALID_PAYMENT, 0},
    {"1.5", LQ_ERR_INVALID_PAYMENT, 0},
    {"0.5", LQ_ERR_INVALID_PAYMENT, 0},
    /* other types */
    {"\"60\"", LQ_ERR_INVALID_PAYMENT, 0},
    {"\"\"", LQ_ERR_INVALID_PAYMENT, 0},
    {"null", LQ_ERR_INVALID_PAYMENT, 0},
    {"true", LQ_ERR_INVALID_PAYMENT, 0},
    {"false", LQ_ERR_INVALID_PAYMENT, 0},
    {"[60]", LQ_ERR_INVALID_PAYMENT, 0},
    {"{}", LQ_ERR_INVALID_PAYMENT, 0},
    /* not JSON */
    {"060", LQ_ERR_MALFORMED_JSON, 0},
    {"+60", LQ_ERR_MALFORMED_JSON, 0},
};

START_TEST(hold_timeout_s_rules)
{
    const char *json = timeouts[_i].json;
    char *single = body_printf(HOLD(",\"timeout_s\":%s"), json);
    /* numbers before it, in the legs and in metadata, do not stand in for it */
    char *legs = body_printf("{\"metadata\":{\"n\":[0,1.5]},\"type\":\"hold\",\"id\":\"h\","
                             "\"legs\":[{" PAY_LEG "}],\"timeout_s\":%s}",
                             json);

    if (timeouts[_i].err == LQ_OK) {
        lq_command *c = parse_ok(single);

        ck_assert_int_eq(c->timeout_s, timeouts[_i].value);
        lq_command_free(c);
        c = parse_ok(legs);
        ck_assert_int_eq(c->timeout_s, timeouts[_i].value);
        ck_assert_int_eq(c->legs[0].amount, 100);
        lq_command_free(c);
    } else if (timeouts[_i].err == LQ_ERR_INVALID_PAYMENT) {
        lq_command *c = UNTOUCHED;
        char detail[LQ_DETAIL_MAX] = "";

        ck_assert_int_eq(parse_s(single, &c, detail), LQ_ERR_INVALID_PAYMENT);
        ck_assert_str_eq(detail, "timeout_s: must be a JSON integer from 1 to 31536000");
        ck_assert_ptr_eq(c, UNTOUCHED);
        expect_invalid(legs, "timeout_s: must be a JSON integer from 1 to 31536000");
    } else {
        expect_malformed(single);
        expect_malformed(legs);
    }
    free(legs);
    free(single);
}
END_TEST

START_TEST(hold_legs_follow_the_transfer_rules)
{
    /* the form */
    expect_invalid("{\"type\":\"hold\",\"id\":\"h\"}",
                   "body: must have debit, credit, amount and currency, or legs");
    expect_invalid("{\"type\":\"hold\",\"id\":\"h\",\"timeout_s\":60}",
                   "body: must have debit, credit, amount and currency, or legs");
    expect_invalid(HOLD(",\"legs\":[{" PAY_LEG "}]"),
                   "legs: cannot be combined with debit, credit, amount or currency");
    expect_invalid("{\"type\":\"hold\",\"id\":\"h\",\"legs\":[]}", "legs: must have 1 to 64 legs");
    expect_invalid("{\"type\":\"hold\",\"id\":\"h\",\"legs\":{}}",
                   "legs: must be an array of 1 to 64 legs");
    expect_invalid("{\"type\":\"hold\",\"id\":\"h\",\"legs\":[{" PAY_LEG "},7]}",
                   "legs[1]: must be an object");
    /* each leg, in order */
    expect_invalid(HOLD_HEAD "\"credit\":\"b\",\"amount\":1,\"currency\":\"EUR\"}",
                   "debit: is required");
    expect_invalid(HOLD_HEAD "\"debit\":\"a\",\"credit\":\"a\",\"amount\":1,\"currency\":\"EUR\"}",
                   "debit: must differ from credit");
    expect_invalid(HOLD_HEAD "\"debit\":\"a\",\"credit\":\"b\",\"amount\":0,\"currency\":\"EUR\"}",
                   "amount: must be a positive whole number");
    expect_invalid(HOLD_HEAD "\"debit\":\"a\",\"credit\":\"b\",\"amount\":1,\"currency\":\"eur\"}",
                   "currency: must be three upper-case letters");
    expect_invalid("{\"type\":\"hold\",\"id\":\"h\",\"legs\":[{" PAY_LEG "},{\"debit\":\"a\","
                   "\"credit\":\"b\",\"amount\":1.5,\"currency\":\"EUR\"}]}",
                   "legs[1].amount: must be a positive whole number");
    expect_invalid("{\"type\":\"hold\",\"id\":\"h\",\"legs\":[{" PAY_LEG ",\"timeout_s\":60}]}",
                   "legs[0].timeout_s: unknown field");
    /* amounts, however spelled, as a transfer's */
    {
        lq_command *c =
            parse_ok(HOLD_HEAD "\"debit\":\"a\",\"credit\":\"b\","
                               "\"amount\":\"9223372036854775807\",\"currency\":\"EUR\"}");

        ck_assert_int_eq(c->legs[0].amount, INT64_MAX);
        lq_command_free(c);
        c = parse_ok(HOLD_HEAD
                     "\"debit\":\"a\",\"credit\":\"b\",\"amount\":1e3,\"currency\":\"EUR\"}");
        ck_assert_int_eq(c->legs[0].amount, 1000);
        lq_command_free(c);
    }
}
END_TEST

START_TEST(hold_fields_are_checked_in_order)
{
    /* unknown or repeated names first, in document order */
    expect_invalid("{\"type\":\"hold\",\"foo\":1,\"id\":7}", "foo: unknown field");
    expect_invalid(HOLD(",\"timeout_s\":1,\"timeout_s\":2"), "timeout_s: appears twice");
    /* then id, the legs, timeout_s, reference, metadata */
    expect_invalid("{\"type\":\"hold\",\"timeout_s\":0," PAY_LEG "}", "id: is required");
    expect_invalid(HOLD_HEAD "\"debit\":\"a\",\"credit\":\"a\",\"amount\":1,\"currency\":\"EUR\","
                             "\"timeout_s\":0}",
                   "debit: must differ from credit");
    expect_invalid(HOLD(",\"reference\":7,\"timeout_s\":0"), "timeout_s: must be");
    expect_invalid(HOLD(",\"metadata\":7,\"reference\":7"), "reference: must be");
    expect_invalid(HOLD(",\"metadata\":7"), "metadata: must be a JSON object");
}
END_TEST

START_TEST(hold_reference_and_metadata_rules)
{
    char *r256 = repeat('r', 256), *r257 = repeat('r', 257);
    const char *const heads[] = {HOLD(""), CAPTURE(""), VOID("")};

    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        /* the body without its closing brace, then more fields */
        int n = (int)strlen(heads[i]) - 1;
        char *body;
        lq_command *c;

        body = body_printf("%.*s,\"reference\":\"%s\"}", n, heads[i], r256);
        c = parse_ok(body);
        ck_assert_str_eq(c->reference, r256);
        lq_command_free(c);
        free(body);
        body = body_printf("%.*s,\"reference\":\"%s\"}", n, heads[i], r257);
        expect_invalid(body, "reference: must be a string of at most 256 bytes");
        free(body);
        body = body_printf("%.*s,\"reference\":null}", n, heads[i]);
        expect_invalid(body, "reference: must be a string of at most 256 bytes");
        free(body);
        body =
            body_printf("%.*s,\"reference\":\"\",\"metadata\":{\"k\": [1, \"v\"]}}", n, heads[i]);
        c = parse_ok(body);
        ck_assert_str_eq(c->reference, "");
        ck_assert_str_eq(c->metadata, "{\"k\":[1,\"v\"]}");
        lq_command_free(c);
        free(body);
        body = body_printf("%.*s,\"metadata\":[]}", n, heads[i]);
        expect_invalid(body, "metadata: must be a JSON object of at most 4096 bytes");
        free(body);
    }
    free(r257);
    free(r256);
}
END_TEST

START_TEST(capture_is_parsed)
{
    lq_command *c = parse_ok("{\"type\": \"capture\", \"id\": \"cap-1\", \"hold\": \"auth-1\", "
                             "\"amount\": 900, \"reference\": \"ship-1\", \"metadata\": {}}");

    ck_assert_int_eq(c->type, LQ_CMD_CAPTURE);
    ck_assert_str_eq(c->id, "cap-1");
    ck_assert_str_eq(c->hold, "auth-1");
    ck_assert_int_eq(c->amount, 900);
    ck_assert_str_eq(c->reference, "ship-1");
    ck_assert_str_eq(c->metadata, "{}");
    ck_assert_uint_eq(c->n_legs, 0);
    ck_assert_ptr_null(c->legs);
    ck_assert_int_eq(c->timeout_s, 0);
    lq_command_free(c);

    /* no amount: the full held amount */
    c = parse_ok(CAPTURE(""));
    ck_assert_int_eq(c->type, LQ_CMD_CAPTURE);
    ck_assert_str_eq(c->hold, "h-1");
    ck_assert_int_eq(c->amount, 0);
    ck_assert_ptr_null(c->reference);
    ck_assert_ptr_null(c->metadata);
    lq_command_free(c);
}
END_TEST

START_TEST(capture_amount_rules)
{
    /* the amounts of a transfer's legs, same spellings, same edges */
    const char *json = amounts[_i].json;
    char *body = body_printf(CAPTURE(",\"amount\":%s"), json);

    if (amounts[_i].err == LQ_OK) {
        lq_command *c = parse_ok(body);

        ck_assert_msg(c->amount == amounts[_i].value, "amount %s: got %lld", json,
                      (long long)c->amount);
        lq_command_free(c);
    } else if (amounts[_i].err == LQ_ERR_INVALID_PAYMENT) {
        expect_invalid(body, "amount: ");
    } else {
        expect_malformed(body);
    }
    free(body);
}
END_TEST

START_TEST(capture_amount_details)
{
    expect_invalid(CAPTURE(",\"amount\":0"), "amount: must be a positive whole number");
    expect_invalid(CAPTURE(",\"amount\":1.5"), "amount: must be a positive whole number");
    expect_invalid(CAPTURE(",\"amount\":null"), "amount: must be a positive whole number");
    expect_invalid(CAPTURE(",\"amount\":9007199254740992"),
                   "amount: a JSON number must be at most 9007199254740991; write larger "
                   "amounts as a string");
    expect_invalid(CAPTURE(",\"amount\":\"9223372036854775808\""),
                   "amount: must be at most 9223372036854775807");
}
END_TEST

START_TEST(void_is_parsed)
{
    lq_command *c = parse_ok("{\"type\": \"void\", \"id\": \"void-1\", \"hold\": \"auth-1\"}");

    ck_assert_int_eq(c->type, LQ_CMD_VOID);
    ck_assert_str_eq(c->id, "void-1");
    ck_assert_str_eq(c->hold, "auth-1");
    ck_assert_int_eq(c->amount, 0);
    ck_assert_ptr_null(c->reference);
    ck_assert_ptr_null(c->metadata);
    ck_assert_ptr_null(c->legs);
    lq_command_free(c);
    c = parse_ok(VOID(",\"reference\":\"customer cancelled\",\"metadata\":{\"by\":\"ops\"}"));
    ck_assert_str_eq(c->reference, "customer cancelled");
    ck_assert_str_eq(c->metadata, "{\"by\":\"ops\"}");
    lq_command_free(c);
}
END_TEST

START_TEST(hold_field_of_capture_and_void)
{
    /* the hold is named by its command id: the id's rules */
    static const char *const heads[] = {"{\"type\":\"capture\",\"id\":\"c\"",
                                        "{\"type\":\"void\",\"id\":\"v\""};
    static const char *const bad[] = {"\"\"", "\"a b\"", "\"a|b\"", "\"caf\xc3\xa9\"",
                                      "42",   "null",    "true",    "[\"h-1\"]",
                                      "{}",   "\"a/b\""};
    char *h128 = repeat('h', 128), *h129 = repeat('h', 129);

    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        char *body;
        lq_command *c;

        body = body_printf("%s}", heads[i]);
        expect_invalid(body, "hold: is required");
        free(body);
        body = body_printf("%s,\"hold\":\"%s\"}", heads[i], h128);
        c = parse_ok(body);
        ck_assert_str_eq(c->hold, h128);
        lq_command_free(c);
        free(body);
        body = body_printf("%s,\"hold\":\"AZaz09._:-\"}", heads[i]);
        c = parse_ok(body);
        ck_assert_str_eq(c->hold, "AZaz09._:-");
        lq_command_free(c);
        free(body);
        body = body_printf("%s,\"hold\":\"%s\"}", heads[i], h129);
        expect_invalid(body, "hold: must be 1-128 characters of A-Z a-z 0-9 . _ : -");
        free(body);
        for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            body = body_printf("%s,\"hold\":%s}", heads[i], bad[k]);
            expect_invalid(body, "hold: must be 1-128 characters of A-Z a-z 0-9 . _ : -");
            free(body);
        }
    }
    free(h129);
    free(h128);
}
END_TEST

START_TEST(capture_and_void_fields_are_checked_in_order)
{
    /* unknown or repeated names first, in document order */
    expect_invalid("{\"type\":\"capture\",\"legs\":[],\"id\":7}", "legs: unknown field");
    expect_invalid(CAPTURE(",\"amount\":1,\"amount\":2"), "amount: appears twice");
    expect_invalid(VOID(",\"hold\":\"h-2\""), "hold: appears twice");
    /* then id, hold, amount, reference, metadata */
    expect_invalid("{\"type\":\"capture\",\"hold\":7,\"amount\":0}", "id: is required");
    expect_invalid("{\"type\":\"capture\",\"id\":\"c\",\"amount\":0}", "hold: is required");
    expect_invalid(CAPTURE(",\"reference\":7,\"amount\":0"), "amount: must be");
    expect_invalid(CAPTURE(",\"metadata\":7,\"reference\":7"), "reference: must be");
    expect_invalid(CAPTURE(",\"metadata\":7"), "metadata: must be");
    expect_invalid("{\"type\":\"void\",\"hold\":\"\",\"reference\":7}", "id: is required");
    expect_invalid("{\"type\":\"void\",\"id\":\"v\",\"reference\":7}", "hold: is required");
    expect_invalid(VOID(",\"metadata\":7,\"reference\":7"), "reference: must be");
}
END_TEST

START_TEST(fields_the_hold_types_do_not_define_are_unknown)
{
    /* a void has no amount; a capture has no legs and no timeout */
    expect_invalid(VOID(",\"amount\":100"), "amount: unknown field");
    expect_invalid(CAPTURE(",\"timeout_s\":60"), "timeout_s: unknown field");
    expect_invalid(VOID(",\"timeout_s\":60"), "timeout_s: unknown field");
    expect_invalid(CAPTURE(",\"legs\":[{" PAY_LEG "}]"), "legs: unknown field");
    expect_invalid(CAPTURE(",\"debit\":\"acct:a\""), "debit: unknown field");
    expect_invalid(CAPTURE(",\"currency\":\"EUR\""), "currency: unknown field");
    expect_invalid(VOID(",\"credit\":\"acct:b\""), "credit: unknown field");
    expect_invalid(VOID(",\"legs\":[]"), "legs: unknown field");
    /* a transfer has no timeout and names no hold */
    expect_invalid(PAY(",\"timeout_s\":60"), "timeout_s: unknown field");
    expect_invalid(PAY(",\"type\":\"transfer\",\"timeout_s\":60"), "timeout_s: unknown field");
    expect_invalid(PAY(",\"hold\":\"h-1\""), "hold: unknown field");
    /* a hold names no other hold */
    expect_invalid(HOLD(",\"hold\":\"h-0\""), "hold: unknown field");
    /* the account commands' fields, and theirs on the account commands */
    expect_invalid(HOLD(",\"account\":\"acct:a\""), "account: unknown field");
    expect_invalid(CAPTURE(",\"reason\":\"r\""), "reason: unknown field");
    expect_invalid(VOID(",\"status\":\"frozen\""), "status: unknown field");
    expect_invalid(OPEN(",\"hold\":\"h-1\""), "hold: unknown field");
    expect_invalid(OPEN(",\"timeout_s\":60"), "timeout_s: unknown field");
    /* names are exact */
    expect_invalid(HOLD(",\"Timeout_s\":60"), "Timeout_s: unknown field");
    expect_invalid(CAPTURE(",\"Amount\":1"), "Amount: unknown field");
}
END_TEST

/* ------------------------------------------------------------------ */
/* canonical content of the hold types */

START_TEST(canonical_text_of_hold_commands)
{
    static const struct {
        const char *body, *canonical;
    } cases[] = {
        {HOLD(""), "v1|hold|1|acct:a,acct:b,100,EUR|timeout_s=-|-"},
        {HOLD(",\"timeout_s\":31536000,\"reference\":\"x|y\",\"metadata\":{\"k\":1}"),
         "v1|hold|1|acct:a,acct:b,100,EUR|timeout_s=31536000|r3:x|y"},
        {"{\"type\":\"hold\",\"id\":\"h\",\"legs\":[{" LEG_AB(
             "1e3") "},{\"debit\":\"c\","
                    "\"credit\":\"d\",\"amount\":\"7\",\"currency\":\"USD\"}],\"timeout_s\":60,"
                    "\"reference\":\"\"}",
         "v1|hold|2|a,b,1000,EUR|c,d,7,USD|timeout_s=60|r0:"},
        {CAPTURE(""), "v1|capture|h-1|amount=-|-"},
        {CAPTURE(",\"amount\":\"9223372036854775807\",\"reference\":\"r\""),
         "v1|capture|h-1|amount=9223372036854775807|r1:r"},
        {VOID(""), "v1|void|h-1|-"},
        {VOID(",\"reference\":\"caf\\u00e9\",\"metadata\":{}"), "v1|void|h-1|r5:caf\xc3\xa9"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *c = canonical(cases[i].body);

        ck_assert_str_eq(c, cases[i].canonical);
        free(c);
    }
}
END_TEST

START_TEST(canonical_of_hold_commands_is_by_value)
{
    /* a hold's legs as a transfer's: either form, any spelling of an amount */
    expect_same(HOLD(",\"timeout_s\":60"),
                "{\"type\":\"hold\",\"id\":\"h-1\",\"timeout_s\":60,\"legs\":[{" PAY_LEG "}]}");
    expect_same(HOLD(""), HOLD_HEAD "\"debit\":\"acct:a\",\"credit\":\"acct:b\",\"amount\":\"100\","
                                    "\"currency\":\"EUR\"}");
    expect_same(HOLD(""), HOLD_HEAD "\"debit\":\"acct:a\",\"credit\":\"acct:b\",\"amount\":1e2,"
                                    "\"currency\":\"EUR\"}");
    expect_same(CAPTURE(",\"amount\":100"), CAPTURE(",\"amount\":\"100\""));
    expect_same(CAPTURE(",\"amount\":100"), CAPTURE(",\"amount\":1.00e2"));
    /* metadata is not content; member order and whitespace are spelling */
    expect_same(HOLD(",\"timeout_s\":60"), HOLD(",\"timeout_s\":60,\"metadata\":{\"a\":1}"));
    expect_same(CAPTURE(""), CAPTURE(",\"metadata\":{\"a\":1}"));
    expect_same(VOID(""), VOID(",\"metadata\":{\"a\":1}"));
    expect_same(CAPTURE(",\"amount\":5,\"reference\":\"r\""),
                "{ \"reference\" : \"r\", \"amount\" : 5, \"hold\" : \"h-1\", \"id\" : \"c-1\", "
                "\"type\" : \"capture\" }");
}
END_TEST

START_TEST(canonical_of_hold_commands_tells_content_apart)
{
    /* the type is content: a hold is not a transfer of the same legs */
    expect_different(HOLD(""), PAY(""));
    expect_different("{\"type\":\"hold\",\"id\":\"p-1\"," PAY_LEG "}", PAY(""));
    expect_different(
        "{\"type\":\"hold\",\"id\":\"p\",\"legs\":[{" LEG_AB("1") "},{" LEG_AB("2") "}]}",
        "{\"id\":\"p\",\"legs\":[{" LEG_AB("1") "},{" LEG_AB("2") "}]}");
    /* and a capture is not a void of the same hold */
    expect_different(CAPTURE(""), VOID(""));
    expect_different("{\"type\":\"capture\",\"id\":\"x\",\"hold\":\"h\"}",
                     "{\"type\":\"void\",\"id\":\"x\",\"hold\":\"h\"}");
    /* timeout_s: absent, given and another value differ */
    expect_different(HOLD(""), HOLD(",\"timeout_s\":60"));
    expect_different(HOLD(",\"timeout_s\":60"), HOLD(",\"timeout_s\":61"));
    /* the legs */
    expect_different(HOLD(""), HOLD_HEAD "\"debit\":\"acct:a\",\"credit\":\"acct:b\","
                                         "\"amount\":101,\"currency\":\"EUR\"}");
    expect_different(HOLD(""), HOLD_HEAD "\"debit\":\"acct:b\",\"credit\":\"acct:a\","
                                         "\"amount\":100,\"currency\":\"EUR\"}");
    /* a capture's amount: absent is not any amount given, and amounts differ */
    expect_different(CAPTURE(""), CAPTURE(",\"amount\":100"));
    expect_different(CAPTURE(",\"amount\":100"), CAPTURE(",\"amount\":101"));
    /* the hold they name */
    expect_different(CAPTURE(""), "{\"type\":\"capture\",\"id\":\"c-1\",\"hold\":\"h-2\"}");
    expect_different(VOID(""), "{\"type\":\"void\",\"id\":\"v-1\",\"hold\":\"h-2\"}");
    /* the reference: absent, empty and another text differ; one that looks like fields too */
    expect_different(VOID(""), VOID(",\"reference\":\"\""));
    expect_different(CAPTURE(",\"reference\":\"a\""), CAPTURE(",\"reference\":\"b\""));
    expect_different(HOLD(",\"reference\":\"x\""), HOLD(",\"reference\":\"y\""));
    expect_different(CAPTURE(",\"reference\":\"|-\""), CAPTURE(""));
    expect_different(HOLD(",\"reference\":\"|timeout_s=60|-\""), HOLD(",\"timeout_s\":60"));
}
END_TEST

START_TEST(canonicalize_gives_a_built_hold_command_the_parsed_text)
{
    lq_command *c;

    c = built(LQ_CMD_HOLD, "");
    c->legs = calloc(1, sizeof(*c->legs));
    ck_assert_ptr_nonnull(c->legs);
    c->n_legs = 1;
    snprintf(c->legs[0].debit, sizeof(c->legs[0].debit), "acct:a");
    snprintf(c->legs[0].credit, sizeof(c->legs[0].credit), "acct:b");
    snprintf(c->legs[0].currency, sizeof(c->legs[0].currency), "EUR");
    c->legs[0].amount = 100;
    expect_built_same(c, "{\"type\":\"hold\",\"id\":\"cli-1\"," PAY_LEG "}");
    c->timeout_s = 30;
    c->reference = strdup("r");
    ck_assert_ptr_nonnull(c->reference);
    expect_built_same(c, "{\"type\":\"hold\",\"id\":\"cli-1\"," PAY_LEG
                         ",\"timeout_s\":30,\"reference\":\"r\"}");
    lq_command_free(c);

    c = built(LQ_CMD_CAPTURE, "");
    snprintf(c->hold, sizeof(c->hold), "h-1");
    expect_built_same(c, "{\"type\":\"capture\",\"id\":\"cli-1\",\"hold\":\"h-1\"}");
    c->amount = 250;
    expect_built_same(c, "{\"type\":\"capture\",\"id\":\"cli-1\",\"hold\":\"h-1\",\"amount\":250}");
    lq_command_free(c);

    c = built(LQ_CMD_VOID, "");
    snprintf(c->hold, sizeof(c->hold), "h-1");
    expect_built_same(c, "{\"type\":\"void\",\"id\":\"cli-1\",\"hold\":\"h-1\"}");
    lq_command_free(c);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *message_suite(void)
{
    Suite *s = suite_create("message");
    TCase *tc;

    tc = tcase_create("envelope");
    tcase_add_test(tc, envelope_accepts_json_or_absent_content_type);
    tcase_add_test(tc, envelope_rejects_other_content_types);
    tcase_add_test(tc, envelope_content_type_uses_its_length_not_a_nul);
    tcase_add_test(tc, envelope_detail_is_one_safe_line);
    tcase_add_test(tc, envelope_limits_body_size);
    tcase_add_test(tc, envelope_checks_content_type_first_and_accepts_no_detail_buffer);
    suite_add_tcase(s, tc);

    tc = tcase_create("valid");
    tcase_add_test(tc, single_form_is_parsed);
    tcase_add_test(tc, legs_form_is_parsed);
    tcase_add_test(tc, field_order_and_whitespace_do_not_matter);
    tcase_add_test(tc, free_accepts_null);
    tcase_add_test(tc, parse_accepts_no_detail_buffer);
    suite_add_tcase(s, tc);

    tc = tcase_create("malformed_json");
    tcase_add_loop_test(tc, invalid_utf8_is_malformed, 0, sizeof(bad_utf8) / sizeof(bad_utf8[0]));
    tcase_add_test(tc, valid_non_ascii_utf8_is_accepted_in_reference);
    tcase_add_loop_test(tc, non_json_is_malformed, 0, sizeof(not_json) / sizeof(not_json[0]));
    tcase_add_test(tc, nul_bytes_and_null_body_are_malformed);
    tcase_add_test(tc, nesting_deeper_than_the_parser_allows_is_malformed);
    tcase_add_test(tc, moderate_nesting_in_metadata_is_kept);
    tcase_add_test(tc, byte_order_mark_is_ignored);
    suite_add_tcase(s, tc);

    tc = tcase_create("shape");
    tcase_add_test(tc, json_that_is_not_an_object_is_invalid);
    tcase_add_test(tc, empty_object_is_invalid);
    tcase_add_test(tc, unknown_fields_are_invalid);
    tcase_add_test(tc, unknown_field_names_are_shown_safely);
    tcase_add_test(tc, duplicate_keys_are_invalid);
    tcase_add_test(tc, missing_required_fields_are_invalid);
    tcase_add_test(tc, nul_escape_is_invalid_but_escaped_backslash_is_not);
    suite_add_tcase(s, tc);

    tc = tcase_create("fields");
    tcase_add_test(tc, id_rules);
    tcase_add_test(tc, account_id_rules);
    tcase_add_test(tc, debit_must_differ_from_credit);
    tcase_add_loop_test(tc, amount_rules, 0, sizeof(amounts) / sizeof(amounts[0]));
    tcase_add_test(tc, amount_details);
    tcase_add_test(tc, amounts_elsewhere_do_not_confuse_the_amount);
    tcase_add_test(tc, currency_rules);
    tcase_add_test(tc, legs_count_from_1_to_64);
    tcase_add_test(tc, legs_shape);
    tcase_add_test(tc, legs_exclude_the_single_leg_fields);
    tcase_add_test(tc, reference_rules);
    tcase_add_test(tc, metadata_is_kept_compact);
    tcase_add_test(tc, metadata_rules);
    suite_add_tcase(s, tc);

    tc = tcase_create("canonical");
    tcase_add_test(tc, canonical_is_the_same_for_the_same_content);
    tcase_add_test(tc, canonical_differs_for_different_content);
    suite_add_tcase(s, tc);

    tc = tcase_create("peek_and_pretty");
    tcase_add_test(tc, peek_id_finds_the_id_of_any_json_object);
    tcase_add_test(tc, peek_id_gives_up_quietly);
    tcase_add_test(tc, peek_event_reads_processed_at);
    tcase_add_test(tc, pretty_reformats_json_and_refuses_the_rest);
    tcase_add_test(tc, pretty_shows_numbers_and_strings_as_written);
    suite_add_tcase(s, tc);

    tc = tcase_create("accounts");
    tcase_add_test(tc, account_id_and_currency_checks);
    tcase_add_test(tc, account_import_lines);
    tcase_add_test(tc, account_import_bad_lines);
    tcase_add_loop_test(tc, account_import_overdraft_limit, 0, sizeof(limits) / sizeof(limits[0]));
    tcase_add_loop_test(tc, account_import_max_balance, 0, sizeof(ceilings) / sizeof(ceilings[0]));
    tcase_add_test(tc, account_import_limits_together);
    tcase_add_test(tc, account_import_lines_are_not_commands);
    suite_add_tcase(s, tc);

    tc = tcase_create("types");
    tcase_add_test(tc, type_names);
    tcase_add_test(tc, status_names);
    tcase_add_test(tc, type_transfer_is_a_transfer);
    tcase_add_test(tc, unknown_types_are_invalid);
    tcase_add_test(tc, type_must_be_one_string);
    tcase_add_test(tc, type_is_read_before_the_other_fields);
    tcase_add_test(tc, fields_of_another_type_are_unknown);
    tcase_add_test(tc, peek_id_finds_the_id_of_every_type);
    suite_add_tcase(s, tc);

    tc = tcase_create("account_commands");
    tcase_add_test(tc, account_open_is_parsed);
    tcase_add_test(tc, account_open_fields);
    tcase_add_loop_test(tc, account_open_overdraft_limit, 0, sizeof(limits) / sizeof(limits[0]));
    tcase_add_loop_test(tc, account_open_max_balance, 0, sizeof(ceilings) / sizeof(ceilings[0]));
    tcase_add_test(tc, account_open_floor_and_ceiling);
    tcase_add_test(tc, account_update_is_parsed);
    tcase_add_test(tc, account_update_must_change_something);
    tcase_add_test(tc, account_update_status_values);
    tcase_add_loop_test(tc, account_update_overdraft_limit, 0, sizeof(limits) / sizeof(limits[0]));
    tcase_add_loop_test(tc, account_update_max_balance, 0, sizeof(ceilings) / sizeof(ceilings[0]));
    tcase_add_test(tc, account_update_floor);
    tcase_add_test(tc, account_update_reason_counts_bytes);
    tcase_add_test(tc, account_change_release_accepts_an_empty_change);
    suite_add_tcase(s, tc);

    tc = tcase_create("canonical_of_every_type");
    tcase_add_test(tc, canonical_text_of_a_transfer_is_that_of_release_0_2_0);
    tcase_add_test(tc, canonical_text_of_account_commands);
    tcase_add_test(tc, canonical_of_account_commands_is_by_value);
    tcase_add_test(tc, canonical_of_account_commands_tells_content_apart);
    tcase_add_test(tc, canonical_of_a_transfer_is_never_an_account_commands);
    tcase_add_test(tc, canonicalize_gives_a_built_command_the_parsed_text);
    tcase_add_test(tc, canonical_text_of_hold_commands);
    tcase_add_test(tc, canonical_of_hold_commands_is_by_value);
    tcase_add_test(tc, canonical_of_hold_commands_tells_content_apart);
    tcase_add_test(tc, canonicalize_gives_a_built_hold_command_the_parsed_text);
    suite_add_tcase(s, tc);

    tc = tcase_create("hold_commands");
    tcase_add_test(tc, hold_single_form_is_parsed);
    tcase_add_test(tc, hold_legs_form_is_parsed);
    tcase_add_loop_test(tc, hold_timeout_s_rules, 0, sizeof(timeouts) / sizeof(timeouts[0]));
    tcase_add_test(tc, hold_legs_follow_the_transfer_rules);
    tcase_add_test(tc, hold_fields_are_checked_in_order);
    tcase_add_test(tc, hold_reference_and_metadata_rules);
    tcase_add_test(tc, capture_is_parsed);
    tcase_add_loop_test(tc, capture_amount_rules, 0, sizeof(amounts) / sizeof(amounts[0]));
    tcase_add_test(tc, capture_amount_details);
    tcase_add_test(tc, void_is_parsed);
    tcase_add_test(tc, hold_field_of_capture_and_void);
    tcase_add_test(tc, capture_and_void_fields_are_checked_in_order);
    tcase_add_test(tc, fields_the_hold_types_do_not_define_are_unknown);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(message_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
