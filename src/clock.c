/* Time: wall-clock timestamps and a monotonic clock. */
#include <ctype.h>
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

int64_t lq_clock_unix_us(void)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

bool lq_clock_parse_rfc3339(const char *s, int64_t *ret_unix_us)
{
    int y, mo, d, h, mi, sec, n = 0;
    int64_t frac = 0, scale = 1000000;

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || h < 0 || mi < 0 ||
        sec < 0)
        return false;
    s += n;
    if (*s == '.') {
        for (s++; isdigit((unsigned char)*s) && scale > 1; s++) {
            scale /= 10;
            frac += (*s - '0') * scale;
        }
    }
    if (s[0] != 'Z' || s[1] != '\0')
        return false;
    *ret_unix_us = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000000LL +
                   (int64_t)sec * 1000000 + frac;
    return true;
}
