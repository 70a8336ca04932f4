#!/usr/bin/env python3
"""Embed the SQL migrations in a C file, checking the rules of docs/upgrades.md.

    embed.py SQL_DIR RELEASE OUTPUT.c DEPFILE
    embed.py --check SQL_DIR RELEASE        (check only: exit 1 naming each problem)

The migrations are the files SQL_DIR/NNN_name.sql, found by listing the
folder: a new file is picked up without a list to keep in step.  Each
becomes one entry of lq_migrations[] in version order: (version, name, text,
SHA-256 of the text, oldest release).  DEPFILE names the folder and every
file read, so that adding or editing a migration rebuilds the binary.

From version FIRST_RULED on, every migration is checked for what a rolling
upgrade survives (the previous release's workers keep running against the
new schema until they are replaced):
  - it says `-- oldest release: X.Y.Z`: the oldest ledgerq release that may
    run against the schema once it is applied; never lower than the previous
    migration's, never above RELEASE (the release that ships it);
  - it removes, renames or retypes nothing (DROP TABLE/VIEW/COLUMN/FUNCTION,
    RENAME, ALTER COLUMN ... TYPE, SET NOT NULL) unless it raises the oldest
    release: the releases that used what it removes are then refused by the
    schema check instead of failing payments;
  - a CHECK or FOREIGN KEY constraint is added NOT VALID, and validated by a
    later migration (VALIDATE CONSTRAINT in the same transaction would hold
    the table's exclusive lock for the whole scan);
  - no index is built on a table the migration did not create (it would
    block writes for the whole build).
"""
import hashlib
import os
import re
import sys

FIRST_RULED = 4
NAME_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
RELEASE_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
OLDEST_RE = re.compile(r"^--\s*oldest release:\s*(\S+)\s*$", re.M)

DESTRUCTIVE = [
    (re.compile(r"\bDROP\s+(TABLE|VIEW|MATERIALIZED\s+VIEW|COLUMN|FUNCTION|TYPE|SEQUENCE)\b"),
     "drops a {0}"),
    (re.compile(r"\bRENAME\b"), "renames something"),
    (re.compile(r"\bALTER\s+COLUMN\s+\S+\s+(SET\s+DATA\s+)?TYPE\b"), "changes a column's type"),
    (re.compile(r"\bSET\s+NOT\s+NULL\b"), "sets NOT NULL on an existing column (a full scan under an exclusive lock)"),
]
ADD_CONSTRAINT = re.compile(
    r"\bADD\s+(CONSTRAINT\s+\S+\s+)?(CHECK|FOREIGN\s+KEY)\b[^;]*?;", re.S)
CREATE_TABLE = re.compile(r"\bCREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?([\w.\"]+)")
CREATE_INDEX = re.compile(
    r"\bCREATE\s+(UNIQUE\s+)?INDEX\b[^;]*?\bON\s+(ONLY\s+)?([\w.\"]+)", re.S)


def release_key(text):
    m = RELEASE_RE.match(text)
    return tuple(int(x) for x in m.groups()) if m else None


def code_of(text):
    """The SQL without comments and string literals: what the rules look at."""
    text = re.sub(r"--[^\n]*", " ", text)
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"\$(\w*)\$.*?\$\1\$", " ", text, flags=re.S)
    text = re.sub(r"'(?:[^']|'')*'", "''", text)
    return text.upper()


def check_rules(name, text, previous_oldest, release, problems):
    """Check one migration of version >= FIRST_RULED; return its oldest release."""
    found = OLDEST_RE.findall(text)
    if len(found) != 1:
        problems.append(f"{name}: needs exactly one line `-- oldest release: X.Y.Z` "
                        "(docs/upgrades.md)")
        return previous_oldest
    oldest = found[0]
    key = release_key(oldest)
    if key is None:
        problems.append(f"{name}: oldest release \"{oldest}\" is not X.Y.Z")
        return previous_oldest
    if previous_oldest and key < release_key(previous_oldest):
        problems.append(f"{name}: oldest release {oldest} is below the previous migration's "
                        f"{previous_oldest}")
    if key > release_key(release):
        problems.append(f"{name}: oldest release {oldest} is newer than this release {release}")
    raises = previous_oldest is None or key > release_key(previous_oldest)
    code = code_of(text)
    for pattern, what in DESTRUCTIVE:
        m = pattern.search(code)
        if m and not raises:
            what = what.format(m.group(1).lower() if m.groups() and m.group(1) else "")
            problems.append(f"{name}: {what}, which a worker of an older release may still use: "
                            "expand now, remove one release later and raise its oldest release "
                            "(docs/upgrades.md)")
    for m in ADD_CONSTRAINT.finditer(code):
        if "NOT VALID" not in m.group(0):
            problems.append(f"{name}: adds a {m.group(2).lower()} constraint without NOT VALID "
                            "(it would scan the table under an exclusive lock): add it NOT VALID "
                            "and VALIDATE it in a later migration")
    if "NOT VALID" in code and "VALIDATE CONSTRAINT" in code:
        problems.append(f"{name}: adds a constraint NOT VALID and validates it in the same "
                        "transaction: validate it in a later migration")
    created = {m.group(2).strip('"').lower() for m in CREATE_TABLE.finditer(code)}
    for m in CREATE_INDEX.finditer(code):
        table = m.group(3).strip('"').lower()
        if table not in created:
            problems.append(f"{name}: builds an index on the existing table {table}, which blocks "
                            "its writes for the whole build")
    return oldest


def read_migrations(sql_dir, release):
    """[(version, name, path, text, oldest)] in version order, and the problems found."""
    problems = []
    entries = []
    if release_key(release) is None:
        problems.append(f"release \"{release}\" is not X.Y.Z")
        return entries, problems
    for base in sorted(os.listdir(sql_dir)):
        if not base.endswith(".sql"):
            continue
        m = NAME_RE.match(base)
        if not m:
            problems.append(f"{base}: a migration is named NNN_name.sql (three digits, then "
                            "lower-case letters, digits and _)")
            continue
        path = os.path.join(sql_dir, base)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        entries.append((int(m.group(1)), m.group(2), path, text))
    entries.sort()
    out = []
    oldest = None
    for i, (version, name, path, text) in enumerate(entries):
        base = os.path.basename(path)
        if i > 0 and version == entries[i - 1][0]:
            problems.append(f"{base}: version {version:03d} is used twice")
        elif version != i + 1:
            problems.append(f"{base}: versions go 001, 002, ... without gaps; expected {i + 1:03d}")
        if version >= FIRST_RULED:
            oldest = check_rules(base, text, oldest, release, problems)
        out.append((version, name, path, text, oldest if version >= FIRST_RULED else None))
    if not out:
        problems.append(f"{sql_dir}: no migrations")
    return out, problems


def c_string(text):
    out = []
    for line in text.splitlines(keepends=True):
        esc = line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        out.append('    "' + esc + '"')
    return "\n".join(out) if out else '    ""'


def write_c(entries, output):
    with open(output, "w", encoding="utf-8") as f:
        f.write("/* Generated by sql/embed.py from the sql/ migrations: do not edit. */\n")
        f.write('#include "ledgerq/migrations.h"\n\n')
        f.write("const lq_migration lq_migrations[] = {\n")
        for version, name, _, text, oldest in entries:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            oldest_c = '"%s"' % oldest if oldest else "NULL"
            f.write('    {%d, "%s",\n%s,\n     "%s", %s},\n' %
                    (version, name, c_string(text), digest, oldest_c))
        f.write("};\n")
        f.write("const size_t lq_migrations_count = %d;\n" % len(entries))


def write_depfile(entries, sql_dir, output, depfile):
    deps = [sql_dir] + [path for _, _, path, _, _ in entries]
    with open(depfile, "w", encoding="utf-8") as f:
        f.write("%s: %s\n" % (output.replace(" ", "\\ "),
                              " ".join(d.replace(" ", "\\ ") for d in deps)))


def main(argv):
    check_only = argv[:1] == ["--check"]
    args = argv[1:] if check_only else argv
    if len(args) != (2 if check_only else 4):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    sql_dir, release = args[0], args[1]
    entries, problems = read_migrations(sql_dir, release)
    for p in problems:
        print("sql/embed.py: %s" % p, file=sys.stderr)
    if problems:
        return 1
    if not check_only:
        write_c(entries, args[2])
        write_depfile(entries, sql_dir, args[2], args[3])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
