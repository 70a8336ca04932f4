/*
 * The schema migrations of sql/, embedded in the binary at build time by
 * sql/embed.py.
 */
#ifndef LEDGERQ_MIGRATIONS_H
#define LEDGERQ_MIGRATIONS_H

#include <stddef.h>

typedef struct lq_migration {
    int version; /* NNN of sql/NNN_name.sql; applied in increasing order */
    const char *name;
    const char *sql; /* the whole file */
} lq_migration;

extern const lq_migration lq_migrations[];
extern const size_t lq_migrations_count;

#endif
