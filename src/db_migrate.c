/*
 * The schema migrations embedded in the binary (sql/), applied in order,
 * each in its own transaction, and the schema state a worker checks before
 * it touches a message (docs/upgrades.md).
 *
 * ledgerq_migrations is the bookkeeping: one row per applied migration with
 * the checksum of the file as applied and the oldest release that may run
 * against the schema from then on.  Release 0.1.0 created it with only
 * (version, name, applied_at): the first migrate of a later release adds
 * the two columns and fills the checksums of what was applied before.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db_internal.h"
#include "ledgerq/error.h"
#include "ledgerq/migrations.h"

/* Any fixed number: it only has to differ from other users' advisory locks. */
#define MIGRATION_LOCK "7465627471"

/*
 * A migration waits at most this long for a table lock.  Waiting longer
 * would queue every worker's batch behind it (a lock request blocks the
 * requests after it): rather give up, let the workers go on, and try again.
 */
#define LOCK_TIMEOUT_MS   "2000"
#define LOCK_TRIES        30
#define LOCK_PAUSE_MS     500 /* times the try number, at most LOCK_PAUSE_MAX_MS */
#define LOCK_PAUSE_MAX_MS 5000

static void notify(lq_db_notice_fn notice, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void notify(lq_db_notice_fn notice, void *arg, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (notice == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    notice(line, arg);
}

/* Apply one migration in its own transaction, recording it. */
static int apply_migration(lq_db *db, const lq_migration *m)
{
    char version[16];
    const char *params[4] = {version, m->name, m->checksum, m->oldest_release};
    PGresult *res;
    int r;

    snprintf(version, sizeof(version), "%d", m->version);
    r = lq_db_run(db, "begin migration", "BEGIN", 0, NULL, NULL);
    if (r != LQ_OK)
        return r;
    r = lq_db_run(db, "set the migration's lock timeout",
                  "SELECT set_config('lock_timeout', '" LOCK_TIMEOUT_MS "', true)", 0, NULL, NULL);
    if (r != LQ_OK)
        goto out;
    /* The simple protocol runs a file of several statements in one call. */
    res = PQexec(db->conn, m->sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        char what[128];
        snprintf(what, sizeof(what), "migration %03d_%s.sql", m->version, m->name);
        r = lq_db_fail(db, what, res);
        goto out;
    }
    PQclear(res);
    r = lq_db_run(db, "record migration",
                  "INSERT INTO ledgerq_migrations (version, name, checksum, oldest_release)"
                  " VALUES ($1::int, $2, $3, $4)",
                  4, params, NULL);
    if (r != LQ_OK)
        goto out;
    r = lq_db_run(db, "commit migration", "COMMIT", 0, NULL, NULL);
out:
    if (r != LQ_OK)
        lq_db_rollback(db);
    return r;
}

/* Apply m, trying again while it cannot get its locks in time. */
static int apply_patiently(lq_db *db, const lq_migration *m, lq_db_notice_fn notice, void *arg)
{
    for (int try = 1;; try++) {
        int r = apply_migration(db, m);
        int pause = LOCK_PAUSE_MS * try;
        if (r != LQ_ERR_DB_RETRY || try == LOCK_TRIES)
            return r;
        if (pause > LOCK_PAUSE_MAX_MS)
            pause = LOCK_PAUSE_MAX_MS;
        notify(notice, arg, "migration %03d_%s.sql: %s; trying again in %d ms (try %d of %d)",
               m->version, m->name, lq_db_error(db), pause, try + 1, LOCK_TRIES);
        usleep((useconds_t)pause * 1000);
    }
}

static const lq_migration *find_migration(int64_t version)
{
    for (size_t i = 0; i < lq_migrations_count; i++) {
        if (lq_migrations[i].version == version)
            return &lq_migrations[i];
    }
    return NULL;
}

/*
 * Compare the applied migrations (rows: version, name, checksum) with the
 * embedded ones: a checksum that differs means the file was edited after it
 * was applied, and the schema is not what this release's files say.
 * Checksums that were never recorded (applied by release 0.1.0) are filled
 * in from the embedded files.
 */
static int check_applied(lq_db *db, const PGresult *applied)
{
    for (int row = 0; row < PQntuples(applied); row++) {
        const lq_migration *m = find_migration(lq_db_int64(applied, row, 0));
        const char *params[2];
        char version[16];
        int r;
        if (m == NULL)
            continue; /* newer than this release: its own release checks it */
        if (!PQgetisnull(applied, row, 2)) {
            if (strcmp(PQgetvalue(applied, row, 2), m->checksum) == 0)
                continue;
            snprintf(db->err, sizeof(db->err),
                     "sql/%03d_%s.sql was changed after it was applied (sha256 %.12s... applied, "
                     "%.12s... in this release): restore it as it was and put the change in a "
                     "new migration",
                     m->version, m->name, PQgetvalue(applied, row, 2), m->checksum);
            return LQ_ERR_DB_FAILED;
        }
        snprintf(version, sizeof(version), "%d", m->version);
        params[0] = m->checksum;
        params[1] = version;
        r = lq_db_run(db, "record a migration's checksum",
                      "UPDATE ledgerq_migrations SET checksum = $1"
                      " WHERE version = $2::int AND checksum IS NULL",
                      2, params, NULL);
        if (r != LQ_OK)
            return r;
    }
    return LQ_OK;
}

int lq_db_migrate(lq_db *db, lq_db_notice_fn notice, void *arg, int *ret_applied)
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
                  " applied_at timestamptz NOT NULL DEFAULT now(),"
                  " checksum text,"
                  " oldest_release text)",
                  0, NULL, NULL);
    if (r != LQ_OK)
        goto out;
    /* Made by release 0.1.0 without them.  Nothing but migrate writes this table. */
    r = lq_db_run(db, "add the migrations table's checksums",
                  "ALTER TABLE ledgerq_migrations ADD COLUMN IF NOT EXISTS checksum text,"
                  " ADD COLUMN IF NOT EXISTS oldest_release text",
                  0, NULL, NULL);
    if (r != LQ_OK)
        goto out;
    r = lq_db_run(db, "read applied migrations",
                  "SELECT version, name, checksum FROM ledgerq_migrations ORDER BY version", 0,
                  NULL, &res);
    if (r != LQ_OK)
        goto out;
    r = check_applied(db, res);
    if (r != LQ_OK)
        goto out;
    for (size_t i = 0; i < lq_migrations_count; i++) {
        const lq_migration *m = &lq_migrations[i];
        bool done = false;
        for (int row = 0; row < PQntuples(res); row++)
            done = done || lq_db_int64(res, row, 0) == m->version;
        if (done)
            continue;
        r = apply_patiently(db, m, notice, arg);
        if (r != LQ_OK)
            goto out;
        notify(notice, arg, "applied migration %03d_%s.sql", m->version, m->name);
        applied++;
    }
out:
    PQclear(res);
    PQclear(PQexec(db->conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")"));
    if (r == LQ_OK && ret_applied)
        *ret_applied = applied;
    return r;
}

int lq_db_schema_state(lq_db *db, lq_schema_state *ret)
{
    lq_schema_state state;
    PGresult *res = NULL;
    int r;

    memset(&state, 0, sizeof(state));
    r = lq_db_run(db, "could not read the schema version",
                  "SELECT to_regclass('ledgerq_migrations') IS NOT NULL", 0, NULL, &res);
    if (r != LQ_OK)
        return r;
    if (!lq_db_bool(res, 0, 0))
        goto done;
    PQclear(res);
    res = NULL;
    /*
     * to_jsonb(m): the column oldest_release is missing where only release
     * 0.1.0 migrated.  The newest migration's value is the schema's: they
     * never decrease (sql/embed.py checks it).
     */
    r = lq_db_run(db, "could not read the schema version",
                  "SELECT m.version, coalesce(to_jsonb(m) ->> 'oldest_release', '')"
                  " FROM ledgerq_migrations m ORDER BY m.version DESC LIMIT 1",
                  0, NULL, &res);
    if (r != LQ_OK)
        return r;
    if (PQntuples(res) == 1) {
        state.version = (int)lq_db_int64(res, 0, 0);
        lq_db_copy(state.oldest_release, sizeof(state.oldest_release), res, 0, 1);
    }
done:
    PQclear(res);
    *ret = state;
    return LQ_OK;
}
