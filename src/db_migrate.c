/*
 * The schema migrations embedded in the binary (sql/), applied in order,
 * each in its own transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "ledgerq/error.h"
#include "ledgerq/migrations.h"

/* Any fixed number: it only has to differ from other users' advisory locks. */
#define MIGRATION_LOCK "7465627471"

/* Apply one migration in its own transaction, recording it. */
static int apply_migration(lq_db *db, const lq_migration *m)
{
    char version[16];
    const char *params[2] = {version, m->name};
    PGresult *res;
    int r;

    snprintf(version, sizeof(version), "%d", m->version);
    r = lq_db_run(db, "begin migration", "BEGIN", 0, NULL, NULL);
    if (r != LQ_OK)
        return r;
    /* The simple protocol runs a file of several statements in one call. */
    res = PQexec(db->conn, m->sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        char what[128];
        snprintf(what, sizeof(what), "migration %03d_%s", m->version, m->name);
        r = lq_db_fail(db, what, res);
        goto out;
    }
    PQclear(res);
    r = lq_db_run(db, "record migration",
                  "INSERT INTO ledgerq_migrations (version, name) VALUES ($1::int, $2)", 2, params,
                  NULL);
    if (r != LQ_OK)
        goto out;
    r = lq_db_run(db, "commit migration", "COMMIT", 0, NULL, NULL);
out:
    if (r != LQ_OK)
        lq_db_rollback(db);
    return r;
}

int lq_db_migrate(lq_db *db, int *ret_applied)
{
    int applied = 0, r;
    PGresult *res = NULL;

    /* Many pods may run `migrate` at once: one at a time. */
    r = lq_db_run(db, "take the migration lock", "SELECT pg_advisory_lock(" MIGRATION_LOCK ")", 0,
                  NULL, NULL);
    if (r != LQ_OK)
        return r;
    r = lq_db_run(db, "create the migrations table",
                  "CREATE TABLE IF NOT EXISTS ledgerq_migrations ("
                  " version integer PRIMARY KEY,"
                  " name text NOT NULL,"
                  " applied_at timestamptz NOT NULL DEFAULT now())",
                  0, NULL, NULL);
    if (r != LQ_OK)
        goto out;
    r = lq_db_run(db, "read applied migrations", "SELECT version FROM ledgerq_migrations", 0, NULL,
                  &res);
    if (r != LQ_OK)
        goto out;
    for (size_t i = 0; i < lq_migrations_count; i++) {
        bool done = false;
        for (int row = 0; row < PQntuples(res); row++)
            done = done || lq_db_int64(res, row, 0) == lq_migrations[i].version;
        if (done)
            continue;
        r = apply_migration(db, &lq_migrations[i]);
        if (r != LQ_OK)
            goto out;
        applied++;
    }
out:
    PQclear(res);
    PQclear(PQexec(db->conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")"));
    if (r == LQ_OK && ret_applied)
        *ret_applied = applied;
    return r;
}
