/*
 * The schema migrations of sql/, embedded in the binary at build time by
 * sql/embed.py, which finds them by listing the folder and checks the
 * rolling-upgrade rules of docs/upgrades.md.
 */
#ifndef LEDGERQ_MIGRATIONS_H
#define LEDGERQ_MIGRATIONS_H

#include <stddef.h>

typedef struct lq_migration {
    int version; /* NNN of sql/NNN_name.sql: 1, 2, 3, ... applied in that order */
    const char *name;
    const char *sql;      /* the whole file */
    const char *checksum; /* SHA-256 of the file, lower-case hex: an applied file never changes */
    /*
     * The oldest ledgerq release that may run against the schema once this
     * migration is applied ("X.Y.Z"); NULL for the migrations of releases
     * that did not record it (before 0.2.0).
     */
    const char *oldest_release;
} lq_migration;

/* In version order; lq_migrations[lq_migrations_count - 1] is the newest. */
extern const lq_migration lq_migrations[];
extern const size_t lq_migrations_count;

#endif
