/* Unit tests of the json module: the writer of result events, CLI output and log lines. */
#include <check.h>
#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/json.h"

/* The text written so far; the writer is left released. */
static char *finish(lq_json *w)
{
    char *text = lq_json_steal(w);
    ck_assert_ptr_nonnull(text);
    return text;
}

static void assert_text(lq_json *w, const char *expected)
{
    char *text = finish(w);
    ck_assert_str_eq(text, expected);
    free(text);
}

/* A JSON parser reads text back: it is well-formed. */
static cJSON *parse(const char *text)
{
    cJSON *doc = cJSON_Parse(text);
    ck_assert_msg(doc != NULL, "not well-formed JSON: %s", text);
    return doc;
}

/* One value alone, as a document. */
static char *int_text(int64_t v)
{
    lq_json w;
    lq_json_init(&w);
    lq_json_int(&w, v);
    return finish(&w);
}

START_TEST(test_int_range_exact)
{
    char *text = int_text(INT64_MAX);
    ck_assert_str_eq(text, "9223372036854775807");
    free(text);
    text = int_text(INT64_MIN);
    ck_assert_str_eq(text, "-9223372036854775808");
    free(text);
    text = int_text(0);
    ck_assert_str_eq(text, "0");
    free(text);
    text = int_text(-1);
    ck_assert_str_eq(text, "-1");
    free(text);
    /* 2^53 + 1 is where a double would already round. */
    text = int_text(9007199254740993);
    ck_assert_str_eq(text, "9007199254740993");
    free(text);
}
END_TEST

/* As the array literals of a batch carry totals: outside the structure, nothing between them. */
START_TEST(test_append_int_exact)
{
    lq_json w;

    lq_json_init(&w);
    lq_json_append_int(&w, INT64_MIN);
    lq_json_append(&w, ",", 1);
    lq_json_append_int(&w, INT64_MAX);
    lq_json_append(&w, ",", 1);
    lq_json_append_int(&w, 0);
    lq_json_append(&w, ",", 1);
    lq_json_append_int(&w, -120);
    ck_assert(!w.failed);
    ck_assert_str_eq(w.buf, "-9223372036854775808,9223372036854775807,0,-120");
    lq_json_release(&w);
}
END_TEST

START_TEST(test_uint_range_exact)
{
    lq_json w;
    lq_json_init(&w);
    lq_json_array_begin(&w);
    lq_json_uint(&w, UINT64_MAX);
    lq_json_uint(&w, 0);
    lq_json_array_end(&w);
    assert_text(&w, "[18446744073709551615,0]");
}
END_TEST

START_TEST(test_balance_object_parses)
{
    lq_json w;
    lq_json_init(&w);
    lq_json_object_begin(&w);
    lq_json_key(&w, "balance");
    lq_json_int(&w, INT64_MIN);
    lq_json_key(&w, "credits");
    lq_json_int(&w, INT64_MAX);
    lq_json_object_end(&w);
    char *text = finish(&w);
    ck_assert_str_eq(text, "{\"balance\":-9223372036854775808,\"credits\":9223372036854775807}");
    cJSON *doc = parse(text);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(doc, "balance")));
    cJSON_Delete(doc);
    free(text);
}
END_TEST

static char *string_text(const char *s, size_t len)
{
    lq_json w;
    lq_json_init(&w);
    lq_json_string_len(&w, s, len);
    return finish(&w);
}

/* s written as a JSON string reads back as s, and looks like expected. */
static void assert_string(const char *s, size_t len, const char *expected)
{
    char *text = string_text(s, len);
    ck_assert_str_eq(text, expected);
    if (!memchr(s, '\0', len)) {
        cJSON *doc = parse(text);
        ck_assert(cJSON_IsString(doc));
        ck_assert_str_eq(doc->valuestring, s);
        cJSON_Delete(doc);
    }
    free(text);
}

START_TEST(test_escape_quote_backslash)
{
    assert_string("say \"hi\"", 8, "\"say \\\"hi\\\"\"");
    assert_string("C:\\path\\", 8, "\"C:\\\\path\\\\\"");
}
END_TEST

START_TEST(test_escape_controls)
{
    assert_string("a\nb", 3, "\"a\\nb\"");
    assert_string("\t\r\b\f", 4, "\"\\t\\r\\b\\f\"");
    assert_string("x\x01y", 3, "\"x\\u0001y\"");
    assert_string("\x1f", 1, "\"\\u001f\"");
    assert_string("a\0b", 3, "\"a\\u0000b\"");
    /* DEL and '/' need no escape. */
    assert_string("\x7f/", 2, "\"\x7f/\"");
}
END_TEST

START_TEST(test_utf8_passthrough)
{
    const char *s = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xb6";
    char expected[64];
    snprintf(expected, sizeof(expected), "\"%s\"", s);
    assert_string(s, strlen(s), expected);
}
END_TEST

START_TEST(test_null_string)
{
    lq_json w;
    lq_json_init(&w);
    lq_json_object_begin(&w);
    lq_json_key(&w, "reason");
    lq_json_string(&w, NULL);
    lq_json_key(&w, "detail");
    lq_json_string_len(&w, NULL, 0);
    lq_json_key(&w, "x");
    lq_json_null(&w);
    lq_json_object_end(&w);
    assert_text(&w, "{\"reason\":null,\"detail\":null,\"x\":null}");
}
END_TEST

START_TEST(test_escaped_key)
{
    lq_json w;
    lq_json_init(&w);
    lq_json_object_begin(&w);
    lq_json_key(&w, "a\"b\n");
    lq_json_bool(&w, true);
    lq_json_object_end(&w);
    char *text = finish(&w);
    ck_assert_str_eq(text, "{\"a\\\"b\\n\":true}");
    cJSON *doc = parse(text);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "a\"b\n")));
    cJSON_Delete(doc);
    free(text);
}
END_TEST

START_TEST(test_result_event_shape)
{
    lq_json w;
    lq_json_init(&w);
    lq_json_object_begin(&w);
    lq_json_key(&w, "id");
    lq_json_string(&w, "p-1");
    lq_json_key(&w, "status");
    lq_json_string(&w, "applied");
    lq_json_key(&w, "reason");
    lq_json_null(&w);
    lq_json_key(&w, "detail");
    lq_json_null(&w);
    lq_json_key(&w, "duplicate");
    lq_json_bool(&w, false);
    lq_json_key(&w, "processed_at");
    lq_json_string(&w, "2026-11-22T10:00:00.123456Z");
    lq_json_object_end(&w);
    assert_text(&w, "{\"id\":\"p-1\",\"status\":\"applied\",\"reason\":null,\"detail\":null,"
                    "\"duplicate\":false,\"processed_at\":\"2026-11-22T10:00:00.123456Z\"}");
}
END_TEST

START_TEST(test_nested_commas)
{
    lq_json w;
    lq_json_init(&w);
    lq_json_object_begin(&w);
    lq_json_key(&w, "id");
    lq_json_string(&w, "split-77");
    lq_json_key(&w, "legs");
    lq_json_array_begin(&w);
    for (int i = 0; i < 2; i++) {
        lq_json_object_begin(&w);
        lq_json_key(&w, "amount");
        lq_json_int(&w, 100 * (i + 1));
        lq_json_key(&w, "tags");
        lq_json_array_begin(&w);
        lq_json_array_end(&w);
        lq_json_key(&w, "meta");
        lq_json_object_begin(&w);
        lq_json_object_end(&w);
        lq_json_object_end(&w);
    }
    lq_json_array_end(&w);
    lq_json_key(&w, "matrix");
    lq_json_array_begin(&w);
    lq_json_array_begin(&w);
    lq_json_int(&w, 1);
    lq_json_int(&w, 2);
    lq_json_array_end(&w);
    lq_json_array_begin(&w);
    lq_json_array_end(&w);
    lq_json_bool(&w, true);
    lq_json_array_end(&w);
    lq_json_object_end(&w);

    char *text = finish(&w);
    ck_assert_str_eq(text,
                     "{\"id\":\"split-77\",\"legs\":[{\"amount\":100,\"tags\":[],\"meta\":{}},"
                     "{\"amount\":200,\"tags\":[],\"meta\":{}}],"
                     "\"matrix\":[[1,2],[],true]}");
    cJSON *doc = parse(text);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "legs")), 2);
    cJSON_Delete(doc);
    free(text);
}
END_TEST

START_TEST(test_empty_containers)
{
    lq_json w;
    lq_json_init(&w);
    lq_json_array_begin(&w);
    lq_json_array_end(&w);
    assert_text(&w, "[]");
    lq_json_init(&w);
    lq_json_object_begin(&w);
    lq_json_object_end(&w);
    assert_text(&w, "{}");
}
END_TEST

START_TEST(test_raw_value)
{
    lq_json w;
    lq_json_init(&w);
    lq_json_object_begin(&w);
    lq_json_key(&w, "id");
    lq_json_string(&w, "p-1");
    lq_json_key(&w, "metadata");
    lq_json_raw(&w, "{\"channel\":\"web\",\"n\":[1,2]}");
    lq_json_key(&w, "after");
    lq_json_int(&w, 1);
    lq_json_object_end(&w);
    char *text = finish(&w);
    ck_assert_str_eq(text,
                     "{\"id\":\"p-1\",\"metadata\":{\"channel\":\"web\",\"n\":[1,2]},\"after\":1}");
    cJSON *doc = parse(text);
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(doc, "metadata");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(meta, "channel")->valuestring, "web");
    cJSON_Delete(doc);
    free(text);
}
END_TEST

START_TEST(test_raw_in_array)
{
    lq_json w;
    lq_json_init(&w);
    lq_json_array_begin(&w);
    lq_json_raw(&w, "{}");
    lq_json_raw(&w, "[1]");
    lq_json_raw(&w, NULL);
    lq_json_array_end(&w);
    assert_text(&w, "[{},[1],null]");
}
END_TEST

START_TEST(test_append_lines)
{
    lq_json w;
    lq_json_init(&w);
    lq_json_object_begin(&w);
    lq_json_key(&w, "n");
    lq_json_int(&w, 1);
    lq_json_object_end(&w);
    lq_json_append(&w, "\n", 1);
    lq_json_object_begin(&w);
    lq_json_key(&w, "n");
    lq_json_int(&w, 2);
    lq_json_object_end(&w);
    lq_json_append(&w, "\n", 1);
    assert_text(&w, "{\"n\":1}\n{\"n\":2}\n");
}
END_TEST

START_TEST(test_steal_empty)
{
    lq_json w;
    lq_json_init(&w);
    char *text = lq_json_steal(&w);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, "");
    free(text);
    /* The writer is reset: it can be used again. */
    lq_json_int(&w, 7);
    assert_text(&w, "7");
}
END_TEST

START_TEST(test_steal_resets)
{
    lq_json w;
    lq_json_init(&w);
    lq_json_string(&w, "a");
    char *text = lq_json_steal(&w);
    ck_assert_str_eq(text, "\"a\"");
    ck_assert_ptr_null(w.buf);
    ck_assert_uint_eq(w.len, 0);
    ck_assert(!w.need_comma);
    free(text);
    lq_json_string(&w, "b");
    assert_text(&w, "\"b\"");
}
END_TEST

START_TEST(test_release_unused)
{
    lq_json w;
    lq_json_init(&w);
    lq_json_release(&w);
    lq_json_release(&w);
    lq_json_int(&w, 1);
    lq_json_release(&w);
    ck_assert_ptr_null(w.buf);
}
END_TEST

START_TEST(test_failed_writer_steals_null)
{
    lq_json w;
    lq_json_init(&w);
    lq_json_int(&w, 1);
    w.failed = true; /* as after an allocation failure */
    lq_json_int(&w, 2);
    ck_assert_ptr_null(lq_json_steal(&w));
    ck_assert_ptr_null(w.buf);
}
END_TEST

START_TEST(test_large_output)
{
    lq_json w;
    char key[32];
    lq_json_init(&w);
    lq_json_object_begin(&w);
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        lq_json_key(&w, key);
        lq_json_string(&w, "value with \"quotes\" and \n newline");
    }
    lq_json_object_end(&w);
    char *text = finish(&w);
    cJSON *doc = parse(text);
    ck_assert_int_eq(cJSON_GetArraySize(doc), 10000);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(doc, "k9999")->valuestring,
                     "value with \"quotes\" and \n newline");
    cJSON_Delete(doc);
    free(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json");

    TCase *tc = tcase_create("integers");
    tcase_add_test(tc, test_int_range_exact);
    tcase_add_test(tc, test_append_int_exact);
    tcase_add_test(tc, test_uint_range_exact);
    tcase_add_test(tc, test_balance_object_parses);
    suite_add_tcase(s, tc);

    tc = tcase_create("strings");
    tcase_add_test(tc, test_escape_quote_backslash);
    tcase_add_test(tc, test_escape_controls);
    tcase_add_test(tc, test_utf8_passthrough);
    tcase_add_test(tc, test_null_string);
    tcase_add_test(tc, test_escaped_key);
    suite_add_tcase(s, tc);

    tc = tcase_create("structure");
    tcase_add_test(tc, test_result_event_shape);
    tcase_add_test(tc, test_nested_commas);
    tcase_add_test(tc, test_empty_containers);
    tcase_add_test(tc, test_raw_value);
    tcase_add_test(tc, test_raw_in_array);
    tcase_add_test(tc, test_append_lines);
    tcase_add_test(tc, test_large_output);
    suite_add_tcase(s, tc);

    tc = tcase_create("ownership");
    tcase_add_test(tc, test_steal_empty);
    tcase_add_test(tc, test_steal_resets);
    tcase_add_test(tc, test_release_unused);
    tcase_add_test(tc, test_failed_writer_steals_null);
    suite_add_tcase(s, tc);

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
