/* The generated workloads (see workload.h). */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "workload.h"

uint32_t lqt_rng(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (uint32_t)(*state >> 11);
}

void lqt_workload_accounts(lqt_ns *ns, lqt_workload_account *ret)
{
    char *import = malloc(LQT_WORKLOAD_ACCOUNTS * 96);
    size_t len = 0;

    ck_assert_msg(import != NULL, "out of memory");
    for (int i = 0; i < LQT_WORKLOAD_ACCOUNTS; i++) {
        lqt_workload_account *a = &ret[i];
        snprintf(a->id, sizeof(a->id), "acct:%03d", i);
        a->currency = i % 2 ? "USD" : "EUR";
        a->allow_negative = i % 10 != 0;
        a->expected = 0;
        len += (size_t)sprintf(import + len,
                               "{\"id\":\"%s\",\"currency\":\"%s\",\"allow_negative\":%s}\n", a->id,
                               a->currency, a->allow_negative ? "true" : "false");
    }
    lqt_run_ok(ns, "account", "import", "--file", lqt_write_file(ns, "accounts.jsonl", import));
    free(import);
}

void lqt_workload_payment(uint64_t *rng, int *ret_debit, int *ret_credit, int64_t *ret_amount)
{
    int debit = (int)(lqt_rng(rng) % LQT_WORKLOAD_ACCOUNTS), credit;

    /* Same parity, same currency; one pair in fifty of the others is let through. */
    do {
        credit = (int)(lqt_rng(rng) % LQT_WORKLOAD_ACCOUNTS);
    } while (credit == debit || ((credit - debit) % 2 != 0 && lqt_rng(rng) % 50 != 0));
    *ret_debit = debit;
    *ret_credit = credit;
    *ret_amount = 1 + lqt_rng(rng) % 10000;
}

void lqt_workload_json(char *out, size_t len, const char *id, const lqt_workload_account *debit,
                       const lqt_workload_account *credit, int64_t amount)
{
    snprintf(out, len,
             "{\"id\":\"%s\",\"debit\":\"%s\",\"credit\":\"%s\",\"amount\":%" PRId64
             ",\"currency\":\"%s\"}",
             id, debit->id, credit->id, amount, debit->currency);
}

void lqt_workload_check_balances(lqt_ns *ns, const lqt_workload_account *accounts)
{
    char *text = lqt_accounts_snapshot(ns);
    cJSON *list = cJSON_Parse(text), *a;
    int seen = 0;

    ck_assert_msg(cJSON_IsArray(list), "`account list --json` is not an array: %.200s", text);
    cJSON_ArrayForEach(a, list)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        const cJSON *balance = cJSON_GetObjectItemCaseSensitive(a, "balance");
        int k;
        ck_assert_msg(cJSON_IsString(id) && cJSON_IsNumber(balance), "an account: %.200s", text);
        ck_assert_msg(sscanf(id->valuestring, "acct:%d", &k) == 1 && k >= 0 &&
                          k < LQT_WORKLOAD_ACCOUNTS,
                      "unexpected account %s", id->valuestring);
        /* Well within 2^53: the double is exact. */
        ck_assert_msg((int64_t)balance->valuedouble == accounts[k].expected,
                      "account %s: balance %.0f, the outcomes add up to %" PRId64, id->valuestring,
                      balance->valuedouble, accounts[k].expected);
        seen++;
    }
    ck_assert_int_eq(seen, LQT_WORKLOAD_ACCOUNTS);
    cJSON_Delete(list);
    free(text);
}
