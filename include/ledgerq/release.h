/*
 * This release's version and whether it may run against a database schema
 * (docs/upgrades.md).  Pure: the schema state comes from the db module.
 */
#ifndef LEDGERQ_RELEASE_H
#define LEDGERQ_RELEASE_H

#include <stdbool.h>
#include <stddef.h>

/* This release, "X.Y.Z" (meson.build's project version). */
#define LQ_RELEASE LEDGERQ_VERSION

/*
 * Compare two releases "X.Y.Z" (each part a decimal number): *ret gets
 * -1, 0 or 1 as a is older than, the same as, or newer than b.  Returns
 * false, leaving *ret alone, when either is not of that form.
 */
bool lq_release_compare(const char *a, const char *b, int *ret);

/*
 * Whether release (normally LQ_RELEASE), which needs the schema at
 * version needed or later, may run against a schema at schema_version whose
 * oldest allowed release is oldest_release ("" when none is set).  When it
 * may not, writes one line naming both versions and what to do into why.
 */
bool lq_release_fits(const char *release, int needed, int schema_version,
                     const char *oldest_release, char *why, size_t why_len);

/* The schema version this release needs: its newest embedded migration. */
int lq_release_schema_needed(void);

#endif
