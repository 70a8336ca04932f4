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
 * Parse a UTC timestamp as lq_clock_rfc3339() writes it ("...T10:00:00.123456Z",
 * 0 to 6 fraction digits) into microseconds since 1970.  False if it is not one.
 */
bool lq_clock_parse_rfc3339(const char *s, int64_t *ret_unix_us);

#endif
