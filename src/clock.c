/* Time: wall-clock timestamps and a monotonic clock. */
#include <stdio.h>
#include <string.h>
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

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : days[m - 1];
}

/* n decimal digits at *p as a number, advancing *p; false when they are not all digits. */
static bool digits(const char **p, int n, int *ret)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *ret = v;
    return true;
}

/* Microseconds since 1970 of the first instant of year 1 and of year 10000. */
#define YEAR_1_US     (-62135596800LL * 1000000)
#define YEAR_10000_US (253402300800LL * 1000000)

bool lq_clock_parse_time(const char *s, bool round_up, int64_t *ret_unix_us)
{
    const char *p = s;
    int y, mo, d, h, mi, sec, off_h = 0, off_m = 0, sign = 0, micro = 0, scale = 100000;
    bool rest = false;
    int64_t us;

    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return false;
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
        !digits(&p, 2, &sec))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
        return false;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (scale > 0) {
                micro += (*p - '0') * scale;
                scale /= 10;
            } else if (*p != '0') {
                rest = true;
            }
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '+' ? 1 : -1;
        if (!digits(&p, 2, &off_h) || *p++ != ':' || !digits(&p, 2, &off_m) || off_h > 23 ||
            off_m > 59)
            return false;
    } else {
        return false;
    }
    if (*p != '\0')
        return false;
    /* A leap second counts as the first second of the next minute, as PostgreSQL has it. */
    us = (((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec -
          sign * (off_h * 3600 + off_m * 60)) *
             1000000 +
         micro + (round_up && rest);
    if (us < YEAR_1_US || us >= YEAR_10000_US)
        return false;
    *ret_unix_us = us;
    return true;
}

void lq_clock_format(int64_t unix_us, char buf[LQ_RFC3339_MAX])
{
    time_t t = (time_t)(unix_us >= 0 ? unix_us / 1000000 : -((-unix_us + 999999) / 1000000));
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, LQ_RFC3339_MAX, "invalid time");
        return;
    }
    /* The fraction is 0 .. 999999, the year 1 .. 9999: it fits. */
    snprintf(buf, LQ_RFC3339_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ",
             (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100,
             tm.tm_min % 100, tm.tm_sec % 100,
             (unsigned)(unix_us - (int64_t)t * 1000000) % 1000000);
}

bool lq_clock_parse_rfc3339(const char *s, int64_t *ret_unix_us)
{
    size_t n = strlen(s);

    /* As lq_clock_rfc3339() writes it: a T, and UTC. */
    if (n < 20 || s[10] != 'T' || s[n - 1] != 'Z')
        return false;
    return lq_clock_parse_time(s, false, ret_unix_us);
}
