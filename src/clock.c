/* Time: wall-clock timestamps and a monotonic clock. */
#include <stdio.h>
#include <time.h>

#include "ledgerq/clock.h"

void lq_clock_rfc3339(char buf[LQ_RFC3339_MAX])
{
    struct timespec now;
    struct tm tm;
    int len;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    len = (int)strftime(buf, LQ_RFC3339_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + len, (size_t)(LQ_RFC3339_MAX - len), ".%06dZ", (int)(now.tv_nsec / 1000));
}

int64_t lq_clock_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int64_t lq_clock_us(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}
