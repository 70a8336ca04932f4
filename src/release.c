/* Releases and the schema versions they run against (docs/upgrades.md). */
#include <stdio.h>
#include <stdlib.h>

#include "ledgerq/migrations.h"
#include "ledgerq/release.h"

/* "X.Y.Z" into three numbers; false when s is anything else. */
static bool parse(const char *s, long ret[3])
{
    for (int i = 0; i < 3; i++) {
        char *end;
        if (*s < '0' || *s > '9')
            return false;
        ret[i] = strtol(s, &end, 10);
        if (end - s > 6)
            return false;
        s = end;
        if (*s != (i < 2 ? '.' : '\0'))
            return false;
        s++;
    }
    return true;
}

bool lq_release_compare(const char *a, const char *b, int *ret)
{
    long x[3], y[3];

    if (!parse(a, x) || !parse(b, y))
        return false;
    for (int i = 0; i < 3; i++) {
        if (x[i] != y[i]) {
            *ret = x[i] < y[i] ? -1 : 1;
            return true;
        }
    }
    *ret = 0;
    return true;
}

bool lq_release_fits(const char *release, int needed, int schema_version,
                     const char *oldest_release, char *why, size_t why_len)
{
    int cmp = 0;

    if (schema_version < needed) {
        snprintf(why, why_len,
                 "the database schema is at version %d, ledgerq %s needs version %d: run "
                 "`ledgerq migrate` with this release",
                 schema_version, release, needed);
        return false;
    }
    if (oldest_release[0] == '\0')
        return true;
    if (!lq_release_compare(release, oldest_release, &cmp)) {
        snprintf(why, why_len,
                 "the database schema (version %d) names \"%s\" as its oldest release, which "
                 "ledgerq %s cannot compare with its own",
                 schema_version, oldest_release, release);
        return false;
    }
    if (cmp < 0) {
        snprintf(why, why_len,
                 "the database schema (version %d) needs ledgerq %s or later, this is ledgerq %s: "
                 "replace this worker with a newer release",
                 schema_version, oldest_release, release);
        return false;
    }
    return true;
}

int lq_release_schema_needed(void)
{
    return lq_migrations[lq_migrations_count - 1].version;
}
