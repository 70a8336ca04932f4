/*
 * Unit tests of release.c: which worker release may run against which
 * schema (docs/upgrades.md section 3).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/migrations.h"
#include "ledgerq/release.h"

static int compare(const char *a, const char *b)
{
    int r = 99;

    ck_assert_msg(lq_release_compare(a, b, &r), "%s and %s should compare", a, b);
    return r;
}

START_TEST(test_compare_orders_numerically)
{
    ck_assert_int_eq(compare("0.1.0", "0.2.0"), -1);
    ck_assert_int_eq(compare("0.2.0", "0.1.0"), 1);
    ck_assert_int_eq(compare("1.2.3", "1.2.3"), 0);
    /* Numbers, not strings: 0.10.0 is after 0.9.0, 2.0.0 after 1.99.99. */
    ck_assert_int_eq(compare("0.10.0", "0.9.0"), 1);
    ck_assert_int_eq(compare("2.0.0", "1.99.99"), 1);
    ck_assert_int_eq(compare("1.0.10", "1.0.9"), 1);
}
END_TEST

START_TEST(test_compare_refuses_what_is_not_a_release)
{
    static const char *const bad[] = {"",       "1",      "1.2",    "1.2.3.4",
                                      "v1.2.3", "1.2.x",  "1..3",   "1.2.3-rc1",
                                      " 1.2.3", "1.2.3 ", "-1.2.3", "1.2.3456789"};
    int r = 42;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(!lq_release_compare(bad[i], "1.2.3", &r), "\"%s\" was accepted", bad[i]);
        ck_assert_msg(!lq_release_compare("1.2.3", bad[i], &r), "\"%s\" was accepted", bad[i]);
    }
    ck_assert_int_eq(r, 42); /* untouched */
}
END_TEST

START_TEST(test_fits_a_schema_it_knows)
{
    char why[256] = "untouched";

    ck_assert(lq_release_fits("0.2.0", 4, 4, "0.1.0", why, sizeof(why)));
    /* A newer schema that still serves this release: an expand step. */
    ck_assert(lq_release_fits("0.2.0", 4, 7, "0.2.0", why, sizeof(why)));
    /* Migrations of releases that recorded no oldest release. */
    ck_assert(lq_release_fits("0.2.0", 4, 5, "", why, sizeof(why)));
    ck_assert_str_eq(why, "untouched");
}
END_TEST

START_TEST(test_refuses_a_schema_not_migrated_yet)
{
    char why[256];

    ck_assert(!lq_release_fits("0.2.0", 4, 3, "", why, sizeof(why)));
    ck_assert_str_eq(why, "the database schema is at version 3, ledgerq 0.2.0 needs version 4: "
                          "run `ledgerq migrate` with this release");
    ck_assert(!lq_release_fits("0.2.0", 4, 0, "", why, sizeof(why)));
    ck_assert_msg(strstr(why, "at version 0") != NULL, "%s", why);
}
END_TEST

START_TEST(test_refuses_a_schema_past_a_contract_step)
{
    char why[256];

    ck_assert(!lq_release_fits("0.2.0", 4, 9, "0.4.0", why, sizeof(why)));
    ck_assert_str_eq(why, "the database schema (version 9) needs ledgerq 0.4.0 or later, this is "
                          "ledgerq 0.2.0: replace this worker with a newer release");
    /* Numerically, not as strings. */
    ck_assert(!lq_release_fits("0.9.0", 4, 9, "0.10.0", why, sizeof(why)));
    ck_assert(lq_release_fits("0.10.0", 4, 9, "0.9.0", why, sizeof(why)));
}
END_TEST

START_TEST(test_refuses_an_oldest_release_it_cannot_read)
{
    char why[256];

    ck_assert(!lq_release_fits("0.2.0", 4, 5, "next", why, sizeof(why)));
    ck_assert_msg(strstr(why, "\"next\"") != NULL, "%s", why);
}
END_TEST

/* The binary's own numbers: what a worker of this build compares with the database. */
START_TEST(test_this_release_needs_its_newest_migration)
{
    int cmp = 99;

    ck_assert_int_eq(lq_release_schema_needed(), lq_migrations[lq_migrations_count - 1].version);
    ck_assert(lq_release_compare(LQ_RELEASE, LQ_RELEASE, &cmp));
    ck_assert_int_eq(cmp, 0);
    /* Versions 1, 2, 3, ... without gaps (sql/embed.py refuses anything else). */
    for (size_t i = 0; i < lq_migrations_count; i++)
        ck_assert_int_eq(lq_migrations[i].version, (int)i + 1);
    /* Every migration's oldest release is one this release satisfies. */
    for (size_t i = 0; i < lq_migrations_count; i++) {
        const char *oldest = lq_migrations[i].oldest_release;
        ck_assert_int_eq(strlen(lq_migrations[i].checksum), 64);
        if (oldest == NULL)
            continue;
        ck_assert(lq_release_compare(LQ_RELEASE, oldest, &cmp));
        ck_assert_int_ge(cmp, 0);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("release");
    TCase *tc = tcase_create("release");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_compare_orders_numerically);
    tcase_add_test(tc, test_compare_refuses_what_is_not_a_release);
    tcase_add_test(tc, test_fits_a_schema_it_knows);
    tcase_add_test(tc, test_refuses_a_schema_not_migrated_yet);
    tcase_add_test(tc, test_refuses_a_schema_past_a_contract_step);
    tcase_add_test(tc, test_refuses_an_oldest_release_it_cannot_read);
    tcase_add_test(tc, test_this_release_needs_its_newest_migration);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
