#!/usr/bin/env python3
"""The migration rules of docs/upgrades.md, as sql/embed.py checks them.

    test_embed.py SQL_DIR EMBED_PY

Each case copies the real migrations of SQL_DIR into a folder of its own, adds
or changes files, and runs `embed.py --check` on it: a migration that breaks a
rule must fail the build naming the file and the rule; one that follows them
must pass.  The real folder itself must pass, and the generated C must carry
one entry per file with its SHA-256.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

SQL_DIR, EMBED = sys.argv[1], sys.argv[2]
RELEASE = "0.2.0"
failures = []


def run(folder, release=RELEASE):
    p = subprocess.run([sys.executable, EMBED, "--check", folder, release],
                       capture_output=True, text=True)
    return p.returncode, p.stderr


def case(name, files, expect_ok, expect_text=None, release=RELEASE, drop=()):
    """files: {basename: text} added to (or replacing) a copy of the real migrations."""
    with tempfile.TemporaryDirectory() as d:
        for base in os.listdir(SQL_DIR):
            if base.endswith(".sql") and base not in drop:
                shutil.copy(os.path.join(SQL_DIR, base), d)
        for base, text in files.items():
            with open(os.path.join(d, base), "w", encoding="utf-8") as f:
                f.write(text)
        code, err = run(d, release)
    ok = code == 0
    if ok != expect_ok:
        failures.append(f"{name}: expected {'success' if expect_ok else 'failure'}, "
                        f"got exit {code}: {err.strip()}")
    elif expect_text and expect_text not in err:
        failures.append(f"{name}: the message should say {expect_text!r}: {err.strip()}")


# The version a new migration takes, and the one after it.
NEXT = 1 + sum(1 for b in os.listdir(SQL_DIR) if b.endswith(".sql"))


def nxt(n=NEXT):
    return f"{n:03d}_change.sql"


OLDEST = "-- oldest release: 0.1.0\n"
RAISED = "-- oldest release: 0.2.0\n"

# The real migrations follow the rules.
code, err = run(SQL_DIR)
if code != 0:
    failures.append(f"the migrations of {SQL_DIR} fail the check: {err.strip()}")

# Expand steps pass.
case("a nullable column", {nxt(): OLDEST + "ALTER TABLE payments ADD COLUMN note text;\n"}, True)
case("a new table with an index",
     {nxt(): OLDEST + "CREATE TABLE ops_x (id text PRIMARY KEY, at timestamptz);\n"
              "CREATE INDEX ops_x_at ON ops_x (at);\n"}, True)
case("a constraint NOT VALID",
     {nxt(): OLDEST + "ALTER TABLE accounts ADD CONSTRAINT c CHECK (debits >= 0) NOT VALID;\n"},
     True)
case("validated in a later migration",
     {nxt(NEXT): OLDEST + "ALTER TABLE accounts ADD CONSTRAINT c CHECK (debits >= 0) NOT VALID;\n",
      nxt(NEXT + 1): OLDEST + "ALTER TABLE accounts VALIDATE CONSTRAINT c;\n"}, True)
case("words in comments and strings do not count",
     {nxt(): OLDEST + "-- we DROP COLUMN nothing here, and RENAME nothing\n"
              "COMMENT ON TABLE payments IS 'never DROP TABLE this';\n"}, True)
case("a contract step raises the oldest release",
     {nxt(): RAISED + "ALTER TABLE payments DROP COLUMN batch_id;\n"}, True)

# Rules broken: each names the file and the rule.
case("no oldest release line", {nxt(): "ALTER TABLE payments ADD COLUMN note text;\n"}, False,
     f"{nxt()}: needs exactly one line `-- oldest release: X.Y.Z`")
case("an oldest release that is not X.Y.Z", {nxt(): "-- oldest release: soon\nSELECT 1;\n"},
     False, 'oldest release "soon" is not X.Y.Z')
case("an oldest release lower than the previous one",
     {nxt(NEXT): RAISED + "SELECT 1;\n", nxt(NEXT + 1): OLDEST + "SELECT 1;\n"}, False,
     f"{nxt(NEXT + 1)}: oldest release 0.1.0 is below the previous migration's 0.2.0")
case("an oldest release newer than the release", {nxt(): "-- oldest release: 0.3.0\nSELECT 1;\n"},
     False, "oldest release 0.3.0 is newer than this release 0.2.0")
case("a column dropped in an expand step",
     {nxt(): OLDEST + "ALTER TABLE payments DROP COLUMN batch_id;\n"}, False, "drops a column")
case("a table dropped", {nxt(): OLDEST + "DROP TABLE ops_confirmed_payments;\n"}, False,
     "drops a table")
case("a column renamed", {nxt(): OLDEST + "ALTER TABLE payments RENAME COLUMN detail TO d;\n"},
     False, "renames something")
case("a column retyped", {nxt(): OLDEST + "ALTER TABLE payments ALTER COLUMN detail TYPE varchar;\n"},
     False, "changes a column's type")
case("NOT NULL set", {nxt(): OLDEST + "ALTER TABLE payments ALTER COLUMN batch_id SET NOT NULL;\n"},
     False, "sets NOT NULL")
case("a check constraint that scans under the lock",
     {nxt(): OLDEST + "ALTER TABLE accounts ADD CONSTRAINT c CHECK (debits >= 0);\n"}, False,
     "adds a check constraint without NOT VALID")
case("a foreign key that scans under the lock",
     {nxt(): OLDEST + "ALTER TABLE payments ADD FOREIGN KEY (batch_id) REFERENCES x (id);\n"},
     False, "adds a foreign key constraint without NOT VALID")
case("added and validated in one transaction",
     {nxt(): OLDEST + "ALTER TABLE accounts ADD CONSTRAINT c CHECK (debits >= 0) NOT VALID;\n"
              "ALTER TABLE accounts VALIDATE CONSTRAINT c;\n"}, False,
     "validates it in the same transaction")
case("an index on a table that holds data",
     {nxt(): OLDEST + "CREATE INDEX payments_at ON payments (processed_at);\n"}, False,
     "builds an index on the existing table payments")

# Numbering.
case("a gap", {nxt(NEXT + 1): OLDEST + "SELECT 1;\n"}, False, f"expected {NEXT:03d}")
case("a version used twice", {"004_again.sql": OLDEST + "SELECT 1;\n"}, False,
     "version 004 is used twice")
case("a name that is not NNN_name.sql", {"5_change.sql": OLDEST + "SELECT 1;\n"}, False,
     "5_change.sql: a migration is named NNN_name.sql")
case("a missing early file", {}, False, "expected 002", drop=("002_postings_view.sql",))

# The generated C: one entry per file, with the file's SHA-256.
with tempfile.TemporaryDirectory() as d:
    out, dep = os.path.join(d, "m.c"), os.path.join(d, "m.d")
    p = subprocess.run([sys.executable, EMBED, SQL_DIR, RELEASE, out, dep],
                       capture_output=True, text=True)
    if p.returncode != 0:
        failures.append(f"embed.py could not write the C file: {p.stderr.strip()}")
    else:
        text = open(out, encoding="utf-8").read()
        deps = open(dep, encoding="utf-8").read()
        files = sorted(b for b in os.listdir(SQL_DIR) if b.endswith(".sql"))
        for base in files:
            digest = hashlib.sha256(open(os.path.join(SQL_DIR, base), "rb").read()).hexdigest()
            if digest not in text:
                failures.append(f"{base}: its SHA-256 is not in the generated C")
            if base not in deps:
                failures.append(f"{base}: not in the depfile")
        if f"lq_migrations_count = {len(files)};" not in text:
            failures.append(f"the generated C does not count {len(files)} migrations")

for f in failures:
    print("FAIL:", f)
print(f"{'FAIL' if failures else 'ok'}: sql/embed.py rules, {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
