/* Time: RFC 3339 timestamps for events and headers, a monotonic clock for waits. */
#ifndef LEDGERQ_CLOCK_H
#define LEDGERQ_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for "2026-11-22T10:00:00.123456Z" and its NUL. */
#define LQ_RFC3339_MAX 40

/* Write the current UTC time as "2026-11-22T10:00:00.123456Z" into buf. */
void lq_clock_rfc3339(char buf[LQ_RFC3339_MAX]);

/* Milliseconds on a clock that never goes back; only differences mean anything. */
int64_t lq_clock_ms(void);

/* The same clock in microseconds, for measuring latencies. */
int64_t lq_clock_us(void);

/* Wall-clock time: microseconds since 1970-01-01 UTC. */
int64_t lq_clock_unix_us(void);

/*
 * Parse an RFC 3339 time ("2026-11-22T10:00:00Z", "2026-11-22T11:00:00.25+01:00":
 * any number of fraction digits, Z or an offset; t or a space may stand for T)
 * into microseconds since 1970 UTC.  Digits past the microsecond are dropped,
 * or round the time up to the next microsecond when round_up (a lower bound
 * then lets no earlier instant in).  False when s is not such a time, or lies
 * outside the years 1 to 9999 once in UTC.
 */
bool lq_clock_parse_time(const char *s, bool round_up, int64_t *ret_unix_us);

/*
 * A UTC time as lq_clock_rfc3339() writes it ("...T10:00:00.123456Z", any
 * number of fraction digits) into microseconds since 1970.  False if it is
 * not one.
 */
bool lq_clock_parse_rfc3339(const char *s, int64_t *ret_unix_us);

/*
 * Write unix_us (microseconds since 1970, within the years 1 to 9999) as
 * RFC 3339 UTC with microseconds: "2026-11-22T10:00:00.250000Z".
 */
void lq_clock_format(int64_t unix_us, char buf[LQ_RFC3339_MAX]);

#endif
