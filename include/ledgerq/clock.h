/* Time: RFC 3339 timestamps for events and headers, a monotonic clock for waits. */
#ifndef LEDGERQ_CLOCK_H
#define LEDGERQ_CLOCK_H

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

#endif
