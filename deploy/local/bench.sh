#!/usr/bin/env bash
# ledgerq benchmark: one run on a private local stack, written to
# docs/benchmarks.md and docs/benchmarks.png.
#
#   deploy/local/bench.sh [--quick]     (as root; otherwise it re-runs itself with sudo)
#
# Builds this tree and the previous release (deploy/local/previous-release.sh),
# both as release builds, and measures, on this machine, with RabbitMQ, PostgreSQL
# and the workers all on it:
#   1. pgbench TPC-B-like, 8 clients, on the same PostgreSQL: the
#      one-transaction-per-payment reference;
#   2. drain of 100,000 preloaded payments over 10,000 accounts, 1 and 2 workers;
#   3. the same with every payment debiting one hot account;
#   4. latency percentiles at a steady 2,000 payments/s, 1 worker;
#   5. worker peak resident memory (VmHWM);
#   6. holds (this release only): authorize-and-capture pairs at full speed, 1 worker,
#      with a share of voids and expiries (ledgerq bench --holds).
# Measurements 2 to 5 are taken for both releases, side by side on the same stack,
# in LEDGERQ_BENCH_ROUNDS rounds (default 2). Each release runs against a database
# of its own that its own `ledgerq migrate` created, and its own workers; the load
# generator is this tree's `ledgerq bench` for both. A round takes each measurement
# for both releases back to back, the release that goes first alternating from one
# measurement to the next and from one round to the next, so that the machine's
# drift weighs on both alike; the figures are the means over the rounds.
# Then, apart from the measured runs, a profiled drain (1 worker, uniform) whose
# figures are not results: it only shows where the time goes (perf, PostgreSQL's
# pg_stat_statements, the worker's own /metrics), so that profiling does not
# perturb what is measured.
# --quick runs smaller numbers (for trying the script, not for the record).
#
# LEDGERQ_BENCH_STACK_DIR, LEDGERQ_BENCH_AMQP_PORT, LEDGERQ_BENCH_PG_PORT,
# LEDGERQ_BENCH_BUILD_DIR (default build-bench), LEDGERQ_BENCH_PREV_BUILD_DIR
# (default build-bench-prev, where the previous release is built) and
# LEDGERQ_BENCH_OUT_DIR (default docs) let a trial run stay clear of another one.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
STACK="$HERE/stack.sh"
DIR="${LEDGERQ_BENCH_STACK_DIR:-/tmp/ledgerq-stack-bench}"
AMQP_PORT="${LEDGERQ_BENCH_AMQP_PORT:-34672}"
PG_PORT="${LEDGERQ_BENCH_PG_PORT:-34432}"
BUILD="${LEDGERQ_BENCH_BUILD_DIR:-$ROOT/build-bench}"
PREV_BUILD="${LEDGERQ_BENCH_PREV_BUILD_DIR:-$ROOT/build-bench-prev}"
ROUNDS="${LEDGERQ_BENCH_ROUNDS:-2}"
OUT_DIR="${LEDGERQ_BENCH_OUT_DIR:-$ROOT/docs}"
OUT_MD="$OUT_DIR/benchmarks.md"
OUT_PNG="$OUT_DIR/benchmarks.png"
WORK="$(mktemp -d /tmp/ledgerq-bench.XXXXXX)"

PAYMENTS=100000
ACCOUNTS=10000
PGBENCH_SECONDS=30
RATE=2000
RATE_SECONDS=30
PROFILE_PAYMENTS=30000
# Entries of the account whose history pages are timed.
HISTORY_ENTRIES=1000000
# Holds placed, each then captured, voided or left to expire (ledgerq bench --holds).
HOLDS=20000
# The budget: the drain of this release loses at most this many percent against
# the previous release's (issue 10 set 3 for the confirm tracking; issue 11 sets 15
# for the account history, both against the release before them).
BUDGET_PERCENT="${LEDGERQ_BENCH_BUDGET_PERCENT:-15}"
BUDGET_ISSUE="${LEDGERQ_BENCH_BUDGET_ISSUE:-issue 11}"
if [ "${1:-}" = "--quick" ]; then
  PAYMENTS=20000 ACCOUNTS=2000 PGBENCH_SECONDS=5 RATE_SECONDS=5 PROFILE_PAYMENTS=4000
  HISTORY_ENTRIES=100000 HOLDS=4000
fi

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E bash "$0" "$@"
fi
case "$ROUNDS" in
  '' | *[!0-9]* | 0) echo "bench.sh: LEDGERQ_BENCH_ROUNDS=$ROUNDS is not a number of rounds" >&2; exit 2 ;;
esac

step() { printf '\n==> %s\n' "$*"; }

WORKERS=()
cleanup() {
  for pid in "${WORKERS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$STACK" stop --dir "$DIR" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

step "dependencies and a release build ($BUILD)"
"$STACK" install-deps
for pkg in gnuplot-nox postgresql-contrib linux-perf; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
done
if [ -d "$BUILD" ]; then
  meson configure "$BUILD" -Dbuildtype=release >/dev/null
else
  meson setup "$BUILD" "$ROOT" -Dbuildtype=release >/dev/null
fi
ninja -C "$BUILD" ledgerq >/dev/null
LQ="$BUILD/ledgerq"

step "the previous release, a release build too ($PREV_BUILD)"
PREV_OUT=$(LEDGERQ_PREV_BUILDTYPE=release "$HERE/previous-release.sh" "$PREV_BUILD")
echo "$PREV_OUT"

# The two releases: "prev" and "cur". Each has its binary (workers, migrate,
# topology, account setup, audit) and a database of its own; the load generator is
# always this tree's.
declare -A BIN VERSION DB SCHEMA PEAK_RSS
BIN[prev]=$(sed -n 's/^LEDGERQ_PREV_BIN=//p' <<<"$PREV_OUT")
BIN[cur]=$LQ
for rel in prev cur; do
  VERSION[$rel]=$("${BIN[$rel]}" --version | awk '{print $2}')
  PEAK_RSS[$rel]=0
done
if [ -z "${BIN[prev]}" ] || [ "${VERSION[prev]}" = "${VERSION[cur]}" ]; then
  echo "bench.sh: previous-release.sh gave no release other than ${VERSION[cur]}" >&2
  exit 1
fi
DB[prev]=bench_prev DB[cur]=bench
PREV_COMMIT=$(awk -v v="${VERSION[prev]}" '$1 == v {print substr($2, 1, 7)}' "$ROOT/deploy/releases.txt")

# The worker's batching settings, as the workers of both releases get them: the
# environment's value when set, else the default that this tree's
# `ledgerq worker --help` shows (its settings lines read: flag, variable, default).
# They are exported, so that the previous release's workers run with the same ones
# whatever its own defaults (its --help does not show them).
worker_settings() {
  local help var def out="" lead="the workers of both releases run with this release's defaults:"
  help=$("$LQ" worker --help)
  for var in LEDGERQ_BATCH_MAX LEDGERQ_BATCH_WAIT_MS LEDGERQ_PREFETCH; do
    if [ -n "${!var+set}" ]; then
      out+="${out:+, }$var=${!var} (set in the environment)"
      lead="the workers of both releases run with:"
      continue
    fi
    def=$(awk -v var="$var" '$2 == var { print $3 }' <<<"$help")
    if [ -z "$def" ]; then
      echo "bench.sh: \`$LQ worker --help\` shows no default for $var" >&2
      exit 1
    fi
    export "$var=$def"
    out+="${out:+, }$var=$def"
  done
  WORKER_SETTINGS="$lead $out"
}
worker_settings

step "a fresh private stack in $DIR"
"$STACK" start --fresh --dir "$DIR" --amqp-port "$AMQP_PORT" --pg-port "$PG_PORT"
eval "$("$STACK" env --dir "$DIR" | grep '^export')"
export LEDGERQ_HTTP_ADDR=off LEDGERQ_LOG_LEVEL=warn
PG_BIN="$LEDGERQ_STACK_PG_BIN"
PG_URL_BASE="postgresql://ledgerq@127.0.0.1:$PG_PORT"

# fresh_ledger REL: a fresh ledger database for each measurement, so that runs do
# not share state, migrated by REL's own binary (the previous release to its own
# schema version, which the current worker refuses); only one release's database
# exists at a time. A checkpoint first, so that no measurement pays for the dirty
# pages of the last.
fresh_ledger() {
  local rel=$1
  "$PG_BIN/psql" -q "$PG_URL_BASE/postgres?sslmode=disable" -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS ${DB[prev]} WITH (FORCE)" -c "DROP DATABASE IF EXISTS ${DB[cur]} WITH (FORCE)" \
    -c "CREATE DATABASE ${DB[$rel]}" -c "CHECKPOINT" >/dev/null
  export LEDGERQ_DATABASE_URL="$PG_URL_BASE/${DB[$rel]}?sslmode=disable"
  "${BIN[$rel]}" migrate >/dev/null
  SCHEMA[$rel]=$("$PG_BIN/psql" -XAtq "$LEDGERQ_DATABASE_URL" -c "SELECT max(version) FROM ledgerq_migrations")
  "${BIN[$rel]}" topology >/dev/null
  "$STACK" --dir "$DIR" ctl purge_queue payments.process >/dev/null
}

# setup_accounts REL: the accounts, opened by REL's own binary in its database.
setup_accounts() {
  "${BIN[$1]}" bench --setup --accounts "$ACCOUNTS" --count 0
}

# start_workers REL N [HTTP_ADDR]: N workers of release REL; HTTP_ADDR turns the
# health and metrics endpoint on (1 worker).
start_workers() {
  WORKERS=()
  for _ in $(seq "$2"); do
    LEDGERQ_HTTP_ADDR="${3:-off}" "${BIN[$1]}" worker 2>>"$WORK/worker-$1.log" &
    WORKERS+=("$!")
  done
}

# Peak resident memory of the running workers, in KiB (the largest).
peak_rss() {
  local max=0 kb
  for pid in "${WORKERS[@]}"; do
    kb=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "${kb:-0}" -gt "$max" ] && max=$kb
  done
  echo "$max"
}

stop_workers() {
  for pid in "${WORKERS[@]}"; do kill -TERM "$pid"; done
  for pid in "${WORKERS[@]}"; do wait "$pid" || { echo "worker $pid failed" >&2; exit 1; }; done
  WORKERS=()
}

# CPU seconds (user + system) used so far by: the workers, RabbitMQ (beam and its
# children), PostgreSQL (the postmaster and its backends), and the load generator.
cpu_snapshot() {
  python3 - "$LEDGERQ_STACK_RABBITMQ_PID_FILE" "$LEDGERQ_STACK_PG_PID_FILE" "$1" "${WORKERS[@]}" <<'PY'
import os, sys
hz = os.sysconf("SC_CLK_TCK")
def stat(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return int(f[1]), (int(f[11]) + int(f[12])) / hz  # ppid, utime+stime
    except OSError:
        return None, 0.0
procs = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        ppid, t = stat(d)
        if ppid is not None:
            procs[int(d)] = (ppid, t)
def tree(root):
    total, todo = 0.0, [root]
    while todo:
        p = todo.pop()
        total += procs.get(p, (0, 0.0))[1]
        todo += [c for c, (pp, _) in procs.items() if pp == p]
    return total
def first_int(path):
    try:
        return int(open(path).readline().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
beam = first_int(sys.argv[1])
pg = first_int(sys.argv[2])
bench = int(sys.argv[3])
workers = sum(procs.get(int(w), (0, 0.0))[1] for w in sys.argv[4:])
# RabbitMQ's pid file may name the wrapper: count the whole tree under it.
print(f"{workers:.2f} {tree(beam):.2f} {tree(pg):.2f} {procs.get(bench, (0, 0.0))[1]:.2f}")
PY
}

json_field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval('d' + sys.argv[2]))" "$@"; }

# note_rss REL: the largest peak resident memory of REL's workers so far.
note_rss() { local kb; kb=$(peak_rss); [ "$kb" -gt "${PEAK_RSS[$1]}" ] && PEAK_RSS[$1]=$kb; return 0; }

# drain NAME REL WORKERS SKEW [COUNT [profile]]: preload the payments, then start
# the workers of release REL and time the drain. With "profile", the drain is
# recorded instead (perf, pg_stat_statements, the worker's /metrics): see
# profile_begin and profile_end.
drain() {
  local name=$1 rel=$2 workers=$3 skew=$4 count=${5:-$PAYMENTS} profile=${6:-} cmd http_addr=off
  fresh_ledger "$rel"
  setup_accounts "$rel"
  cmd="ledgerq bench --preload --accounts $ACCOUNTS --count $count --skew $skew --json"
  step "${profile:+profiled }drain: $count payments, $ACCOUNTS accounts, $skew, $workers worker(s) of ${VERSION[$rel]} ($name)"
  "$LQ" bench --preload --accounts "$ACCOUNTS" --count "$count" --skew "$skew" --json \
    >"$WORK/$name.json" 2>"$WORK/$name.err" &
  local bench_pid=$!
  until grep -q "^published" "$WORK/$name.err" 2>/dev/null; do
    kill -0 "$bench_pid" 2>/dev/null || { cat "$WORK/$name.err" >&2; exit 1; }
    sleep 0.2
  done
  if [ -n "$profile" ]; then
    http_addr="127.0.0.1:$(free_port)"
    profile_begin
  fi
  # CPU: one snapshot before the workers start, one after the load generator has
  # exited (the workers, RabbitMQ and PostgreSQL still run); nothing samples /proc
  # in between. The load generator reports its own CPU time (cpu_s).
  local before after bench_cpu0
  before=$(cpu_snapshot "$bench_pid")
  start_workers "$rel" "$workers" "$http_addr"
  wait "$bench_pid"
  after=$(cpu_snapshot "$bench_pid")
  if [ -n "$profile" ]; then
    profile_end "$http_addr"
  else
    note_rss "$rel"
  fi
  echo "$before" >"$WORK/$name.cpu0"
  # The load generator's column: its CPU time at the end, from its own report.
  bench_cpu0=$(awk '{print $4}' <<<"$before")
  awk -v end="$(json_field "$WORK/$name.json" "['cpu_s']")" -v start="$bench_cpu0" \
    '{printf "%s %s %s %.2f\n", $1, $2, $3, (end > start ? end : start)}' <<<"$after" >"$WORK/$name.cpu1"
  stop_workers
  "${BIN[$rel]}" audit >/dev/null
  echo "$cmd (workers: $workers)" >"$WORK/$name.cmd"
  cat "$WORK/$name.json"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# pg_stat_statements needs its library loaded at PostgreSQL's start: ALTER SYSTEM
# writes postgresql.auto.conf, which the stack's start leaves alone (it rewrites
# ledgerq.conf only) and which PostgreSQL reads last. Done after the measured runs.
PG_STATEMENTS=no
enable_pg_stat_statements() {
  step "PostgreSQL restarted with pg_stat_statements, for the profiled drain"
  "$PG_BIN/psql" -q "$PG_URL_BASE/postgres?sslmode=disable" \
    -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
  "$STACK" stop pg --dir "$DIR" >/dev/null
  "$STACK" start pg --dir "$DIR" >/dev/null
  if [ "$("$PG_BIN/psql" -XAtq "$PG_URL_BASE/postgres?sslmode=disable" -c "SHOW shared_preload_libraries")" = \
    pg_stat_statements ]; then
    PG_STATEMENTS=yes
  else
    echo "pg_stat_statements did not load: the profile goes without PostgreSQL's statements" >&2
  fi
}

# Right before the profiled workers start: statistics from zero, perf recording.
profile_begin() {
  if [ "$PG_STATEMENTS" = yes ]; then
    "$PG_BIN/psql" -XAtq "$LEDGERQ_DATABASE_URL" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
      -c "SELECT pg_stat_statements_reset()" >/dev/null
  fi
  PERF_PID=""
  if command -v perf >/dev/null; then
    # System-wide, cpu-clock: no hardware counters needed.
    perf record -a -g -e cpu-clock -F 499 -o "$WORK/perf.data" >/dev/null 2>&1 &
    PERF_PID=$!
    sleep 1 # perf is recording before the first batch
  fi
}

# Once the profiled drain is over: the worker's metrics, the recording, the statements.
profile_end() {
  curl -fsS "http://$1/metrics" >"$WORK/metrics.txt" 2>"$WORK/metrics.err" || : >"$WORK/metrics.txt"
  if [ -n "$PERF_PID" ]; then
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
  fi
  if [ "$PG_STATEMENTS" = yes ]; then
    # Tab-separated: statement (whitespace folded, | escaped for the table), calls,
    # total ms, ms per call, rows, and the total ms of all statements; the top 8 by
    # total time, this database only, but for this script's own reset.
    "$PG_BIN/psql" -XAtq -F $'\t' "$LEDGERQ_DATABASE_URL" -c "
      SELECT replace(left(regexp_replace(query, '\s+', ' ', 'g'), 60), '|', '\|'), calls,
             round(total_exec_time::numeric, 1), round((total_exec_time / calls)::numeric, 3), rows,
             round(sum(total_exec_time) OVER ()::numeric, 1)
        FROM pg_stat_statements
       WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND query NOT LIKE '%pg_stat_statements_reset%'
       ORDER BY total_exec_time DESC LIMIT 8" >"$WORK/statements.tsv"
  fi
}

step "pgbench TPC-B-like, 8 clients, ${PGBENCH_SECONDS}s (one transaction per transfer)"
"$PG_BIN/psql" -q "$PG_URL_BASE/postgres?sslmode=disable" -c "DROP DATABASE IF EXISTS pgbench WITH (FORCE)" \
  -c "CREATE DATABASE pgbench" >/dev/null
"$PG_BIN/pgbench" -q -i -s 10 "$PG_URL_BASE/pgbench?sslmode=disable" >/dev/null 2>&1
"$PG_BIN/pgbench" -c 8 -j 2 -T "$PGBENCH_SECONDS" -b tpcb-like "$PG_URL_BASE/pgbench?sslmode=disable" \
  >"$WORK/pgbench.txt" 2>&1
PGBENCH_TPS=$(awk -F'= ' '/^tps/ {split($2, a, " "); printf "%.0f", a[1]; exit}' "$WORK/pgbench.txt")
echo "pgbench: $PGBENCH_TPS tps"

# latency NAME REL: a steady rate through 1 worker of release REL.
latency() {
  local name=$1 rel=$2
  step "latency at a steady $RATE payments/s for ${RATE_SECONDS}s, 1 worker of ${VERSION[$rel]} ($name)"
  fresh_ledger "$rel"
  setup_accounts "$rel"
  start_workers "$rel" 1
  sleep 1
  "$LQ" bench --accounts "$ACCOUNTS" --rate "$RATE" --duration "$RATE_SECONDS" --json \
    >"$WORK/$name.json"
  note_rss "$rel"
  stop_workers
  cat "$WORK/$name.json"
}

# The measurements, each taken for both releases back to back; run KIND-REL-ROUND
# writes $WORK/KIND-REL-ROUND.json. The release that goes first alternates from one
# measurement to the next and from one round to the next (round 1: drain1 prev then
# cur, drain2 cur then prev, ...; round 2 the other way round).
KINDS=(drain1 drain2 hot1 hot2 rate)
RUNS=()
for round in $(seq "$ROUNDS"); do
  for i in "${!KINDS[@]}"; do
    if [ $(((i + round) % 2)) -eq 1 ]; then order=(prev cur); else order=(cur prev); fi
    for rel in "${order[@]}"; do
      name="${KINDS[$i]}-$rel-$round"
      case "${KINDS[$i]}" in
        drain1) drain "$name" "$rel" 1 uniform ;;
        drain2) drain "$name" "$rel" 2 uniform ;;
        hot1) drain "$name" "$rel" 1 hot ;;
        hot2) drain "$name" "$rel" 2 hot ;;
        rate) latency "$name" "$rel" ;;
      esac
      RUNS+=("$name")
    done
  done
done

# The history of one account with HISTORY_ENTRIES entries: a page of it read by the
# CLI (process start and connection included), at its start, middle and end, by seq
# and by time, and its balance as of a time; the median of 5 runs each. The entries
# are written by SQL, not through the worker: only the reading is measured here.
history_pages() {
  step "account history: an account with $HISTORY_ENTRIES entries, pages of 100"
  fresh_ledger cur
  "$LQ" account open bench:history --currency EUR --allow-negative >/dev/null
  "$PG_BIN/psql" -q "$LEDGERQ_DATABASE_URL" -v n="$HISTORY_ENTRIES" <<'SQL' >/dev/null
-- After the opening entry (seq 1): +7 and -5 in turn, a microsecond apart.
INSERT INTO account_entries (account_id, seq, command_id, type, leg, amount, balance,
                             held_debits, held_credits, at)
SELECT 'bench:history', 1 + g, 'bench-h-' || g, 'transfer', 1,
       CASE WHEN g % 2 = 0 THEN 7 ELSE -5 END, 7 * (g / 2) - 5 * ((g + 1) / 2), 0, 0,
       o.at + g * interval '1 microsecond'
  FROM generate_series(1, :n) AS g,
       (SELECT at FROM account_entries WHERE account_id = 'bench:history' AND seq = 1) AS o;
UPDATE accounts SET entries = :n + 1, debits = 5 * ((:n + 1) / 2), credits = 7 * (:n / 2)
 WHERE id = 'bench:history';
ANALYZE account_entries;
SQL
  local mid_at
  mid_at=$("$PG_BIN/psql" -XAtq "$LEDGERQ_DATABASE_URL" -c \
    "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM account_entries
      WHERE account_id = 'bench:history' AND seq = $((HISTORY_ENTRIES / 2))")
  python3 - "$LQ" "$HISTORY_ENTRIES" "$mid_at" <<'PY' >"$WORK/history.json"
import json, statistics, subprocess, sys, time
lq, n, mid_at = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cases = [
    ("first page", ["account", "history", "bench:history", "--json"]),
    ("a page in the middle (--after)", ["account", "history", "bench:history", "--after", str(n // 2), "--json"]),
    ("the last page (--after)", ["account", "history", "bench:history", "--after", str(n - 50), "--json"]),
    ("a page from a time in the middle (--since)", ["account", "history", "bench:history", "--since", mid_at, "--json"]),
    ("a page up to a time in the middle (--until)", ["account", "history", "bench:history", "--until", mid_at, "--json"]),
    ("balance as of a time in the middle (show --at)", ["account", "show", "bench:history", "--at", mid_at, "--json"]),
]
out = []
for name, args in cases:
    times = []
    for _ in range(5):
        t0 = time.monotonic()
        p = subprocess.run([lq] + args, capture_output=True, text=True)
        times.append(1000 * (time.monotonic() - t0))
        if p.returncode != 0:
            sys.exit(f"{' '.join(args)}: exit {p.returncode}: {p.stderr}")
    out.append({"case": name, "command": "ledgerq " + " ".join(args), "ms": round(statistics.median(times), 1)})
print(json.dumps(out))
PY
  cat "$WORK/history.json"
}

# The back-fill: this release's migrate of a ledger the previous release made and drained.
backfill() {
  drain backfill prev 2 uniform
  step "migrate of ${VERSION[cur]} on the ledger ${VERSION[prev]} drained (back-fill of the history)"
  local t0 t1
  t0=$(date +%s.%N)
  "${BIN[cur]}" migrate >"$WORK/backfill-migrate.txt"
  t1=$(date +%s.%N)
  BACKFILL_S=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
  BACKFILL_ENTRIES=$("$PG_BIN/psql" -XAtq "$LEDGERQ_DATABASE_URL" -c "SELECT count(*) FROM account_entries")
  "${BIN[cur]}" audit >/dev/null
  echo "back-fill: $BACKFILL_ENTRIES entries in $BACKFILL_S s"
}
# Holds: each placed, then (once its event is in) captured, voided or left to expire,
# through 1 worker of this release.
holds() {
  step "holds: $HOLDS authorized, then captured, voided or expired, 1 worker of ${VERSION[cur]}"
  fresh_ledger cur
  setup_accounts cur
  start_workers cur 1
  sleep 1
  "$LQ" bench --holds --accounts "$ACCOUNTS" --count "$HOLDS" --json >"$WORK/holds.json"
  stop_workers
  "${BIN[cur]}" audit >/dev/null
  cat "$WORK/holds.json"
}
history_pages
backfill
holds

# Not a measurement: a separate drain of this release, recorded, after the measured ones.
enable_pg_stat_statements
drain profile cur 1 uniform "$PROFILE_PAYMENTS" profile

step "writing $OUT_MD and $OUT_PNG"
mkdir -p "$OUT_DIR"
# mean KIND REL FIELD DECIMALS: the mean over the rounds of one field of the runs
# KIND-REL-1 .. KIND-REL-ROUNDS (FIELD as json_field takes it).
mean() {
  python3 - "$WORK" "$1-$2" "$ROUNDS" "$3" "$4" <<'PY'
import json, sys
work, run, rounds, field, decimals = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
values = [eval("d" + field, {"d": json.load(open(f"{work}/{run}-{r}.json"))}) for r in range(1, rounds + 1)]
print(f"{sum(values) / len(values):.{decimals}f}")
PY
}
tp() { mean "$1" "${2:-cur}" "['throughput_per_s']" 1; }
lat() { mean rate "${2:-cur}" "['latency_ms']['$1']" 3; }
lat_split() { mean rate cur "['latency_split_ms']['$1']['$2']" 3; }
D1=$(tp drain1) D2=$(tp drain2) H1=$(tp hot1) H2=$(tp hot2)
BEST=$(python3 -c "print(max($D1, $D2))")
BEST_HOT=$(python3 -c "print(max($H1, $H2))")
RATIO=$(python3 -c "print(f'{$BEST / $PGBENCH_TPS:.1f}')")
HOT_RATIO=$(python3 -c "print(f'{$BEST_HOT / $BEST:.2f}')")
mib() { python3 -c "print(f'{$1 / 1024:.1f}')"; }
RSS_MIB=$(mib "${PEAK_RSS[cur]}")
if [ "$ROUNDS" -eq 1 ]; then
  MEANS="one run each" ROUND_WORDS="1 round"
else
  MEANS="means of $ROUNDS runs" ROUND_WORDS="$ROUNDS rounds"
fi

# The side by side with the previous release, and the issue 10 budget.
python3 - "$WORK" "$ROUNDS" "${VERSION[prev]}" "${VERSION[cur]}" "$BUDGET_PERCENT" "$BUDGET_ISSUE" <<'PY' >"$WORK/side.md"
import json, sys
work, rounds, prev, cur, budget = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
issue = sys.argv[6]
def tps(kind, rel):
    return [json.load(open(f"{work}/{kind}-{rel}-{r}.json"))["throughput_per_s"] for r in range(1, rounds + 1)]
def pct(new, old):
    return 100.0 * (new - old) / old
drains = [("drain1", "uniform", 1), ("drain2", "uniform", 2), ("hot1", "hot account", 1), ("hot2", "hot account", 2)]
each = "payments/s, each round" if rounds > 1 else "payments/s"
print(f"| drain | workers | release | {each} | mean payments/s | difference, each round | difference of the means |")
print("|---|---|---|---|---|---|---|")
losses = []
for kind, skew, workers in drains:
    p, c = tps(kind, "prev"), tps(kind, "cur")
    mp, mc = sum(p) / len(p), sum(c) / len(c)
    d = pct(mc, mp)
    losses.append((d, f"{skew}, {workers} worker{'s' if workers > 1 else ''}"))
    print(f"| {skew} | {workers} | {prev} | {', '.join(f'{x:.1f}' for x in p)} | {mp:.1f} | | |")
    rounds_d = ", ".join(f"{pct(y, x):+.1f}%" for x, y in zip(p, c))
    print(f"| {skew} | {workers} | {cur} | {', '.join(f'{x:.1f}' for x in c)} | {mc:.1f} | {rounds_d} | **{d:+.1f}%** |")
print()
worst, where = min(losses)
failed = [(d, w) for d, w in losses if d < -budget]
line = (f"Budget ({issue}): the drain of {cur} loses at most {budget:g}% against {prev}, "
        f"in each of the four drains above (the difference of the means): ")
if failed:
    line += "**not met**: " + "; ".join(f"{w} loses {-d:.1f}%" for d, w in sorted(failed)) + "."
elif worst < 0:
    line += f"**met**; the largest loss is {-worst:.1f}% ({where})."
else:
    line += f"**met**; no drain loses (the smallest difference is {worst:+.1f}%, {where})."
print(line)
PY
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MEM=$(free -g | awk '/^Mem/ {print $2 " GiB"}')
# shellcheck source=/dev/null
OS=$(. /etc/os-release && echo "$PRETTY_NAME")

# The profile section of the page, from the separate profiled drain.
{
  echo "Where the time goes, below, comes from a separate drain run after the measured ones and"
  echo "recorded while it ran: \`$(cat "$WORK/profile.cmd")\`, its worker with"
  echo "\`LEDGERQ_HTTP_ADDR\` on. Its own throughput is not a result (recording takes CPU from what"
  echo "it records): every figure above comes from the unrecorded runs."
  echo
  if [ -s "$WORK/perf.data" ]; then
    # shellcheck disable=SC2016 # backquotes for Markdown, not for the shell
    echo 'A system-wide profile (`perf record -a -g -e cpu-clock -F 499`): the share of samples by'
    echo 'process and library, then the hottest functions of the worker and of PostgreSQL'
    echo '(RabbitMQ runs JIT-compiled Erlang, which shows as anonymous memory):'
    echo
    echo '```'
    # head closes the pipe early: not a failure.
    { perf report -i "$WORK/perf.data" -g none --no-children --sort comm,dso --stdio 2>/dev/null |
      grep -E '^ +[0-9]' | head -15; } || true
    echo
    { perf report -i "$WORK/perf.data" -g none --no-children --comms ledgerq,postgres \
      --sort comm,symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -30; } || true
    echo '```'
    echo
  fi
  if [ -s "$WORK/statements.tsv" ]; then
    echo "PostgreSQL's statements during that drain (\`pg_stat_statements\`, reset right before it;"
    echo 'the top 8 by total execution time, planning excluded):'
    echo
    echo '| statement | calls | total ms | ms per call | rows |'
    echo '|---|---|---|---|---|'
    awk -F'\t' '{printf "| `%s` | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}' "$WORK/statements.tsv"
    echo
    echo "All its statements together: $(awk -F'\t' 'NR == 1 {print $6}' "$WORK/statements.tsv") ms. A"
    echo "\`COMMIT\`'s flush of the write-ahead log happens after the statement and is not counted"
    echo "here; the worker's database time below includes it."
    echo
  fi
  if [ -s "$WORK/metrics.txt" ]; then
    echo "The worker's own view of that drain, from its \`/metrics\`:"
    echo
    python3 - "$WORK/metrics.txt" "$(json_field "$WORK/profile.json" "['seconds']")" <<'PY'
import sys
m = {}
for line in open(sys.argv[1]):
    if line and not line.startswith("#"):
        name, _, value = line.rpartition(" ")
        m[name] = float(value)
wall = float(sys.argv[2])
batches = m.get("ledgerq_batch_size_count", 0)
payments = m.get("ledgerq_batch_size_sum", 0)
db = m.get("ledgerq_db_commit_duration_seconds_sum", 0)
print("| | |")
print("|---|---|")
print(f"| batches (database transactions) | {batches:.0f} |")
print(f"| mean batch size | {payments / batches if batches else 0:.1f} payments |")
print(f"| database time, begin to commit, summed | {db:.2f} s ({1000 * db / batches if batches else 0:.2f} ms per batch) |")
print(f"| drain wall time, first to last result event | {wall:.2f} s |")
print(f"| database time / wall time | {100 * db / wall if wall else 0:.0f}% |")
PY
    echo
  fi
} >"$WORK/perf.md"

# Columns: label, previous release, this release ("-": not measured).
cat >"$WORK/plot.dat" <<EOF
"pgbench\nTPC-B" - $PGBENCH_TPS
"drain\n1 worker" $(tp drain1 prev) $D1
"drain\n2 workers" $(tp drain2 prev) $D2
"hot account\n1 worker" $(tp hot1 prev) $H1
"hot account\n2 workers" $(tp hot2 prev) $H2
EOF
cat >"$WORK/lat.dat" <<EOF
p50 $(lat p50 prev) $(lat p50)
p99 $(lat p99 prev) $(lat p99)
p99.9 $(lat p99_9 prev) $(lat p99_9)
max $(lat max prev) $(lat max)
EOF
# Clustered bars, two to a group: each bar a third of the group's width, centred a
# sixth to the left (previous release) or to the right (this release) of the group.
gnuplot <<EOF
set terminal pngcairo size 1100,800 font "sans,10"
set output "$OUT_PNG"
set multiplot layout 2,1 title "ledgerq ${VERSION[cur]} beside ${VERSION[prev]} on $(nproc) cores, everything co-located ($(date -u +%Y-%m-%d))"
set datafile missing "-"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.8
set grid ytics
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
set key top left
set title "throughput (payments or transactions per second)"
plot "$WORK/plot.dat" using 2:xtic(1) lc rgb "#9bbce8" title "${VERSION[prev]}", \
     "" using 3 lc rgb "#3b7dd8" title "${VERSION[cur]}", \
     "" using (\$0 - 1./6):2:(sprintf("%.0f", \$2)) with labels font "sans,8" offset 0,0.7 notitle, \
     "" using (\$0 + 1./6):3:(sprintf("%.0f", \$3)) with labels font "sans,8" offset 0,0.7 notitle
set title "end-to-end latency at $RATE/s offered, 1 worker (ms)"
plot "$WORK/lat.dat" using 2:xtic(1) lc rgb "#f0c08f" title "${VERSION[prev]}", \
     "" using 3 lc rgb "#d8893b" title "${VERSION[cur]}", \
     "" using (\$0 - 1./6):2:(sprintf("%.1f", \$2)) with labels font "sans,8" offset 0,0.7 notitle, \
     "" using (\$0 + 1./6):3:(sprintf("%.1f", \$3)) with labels font "sans,8" offset 0,0.7 notitle
unset multiplot
EOF

cat >"$OUT_MD" <<EOF
# Benchmarks

Written by \`deploy/local/bench.sh\` on $(date -u +"%Y-%m-%d %H:%M UTC"). Every figure
below comes from that one run, on one machine, with RabbitMQ, PostgreSQL, the workers
and the load generator all on it. The run measured ledgerq ${VERSION[cur]} and, side by side
on the same stack, the previous release ${VERSION[prev]}; the figures of ${VERSION[cur]} in the
first table are $MEANS.

- machine: $(nproc) cores ($CPU), $MEM, $OS
- PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') (fsync and synchronous_commit on),
  RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server), ledgerq ${VERSION[cur]} and ${VERSION[prev]}
  (commit $PREV_COMMIT), both release builds
- $WORKER_SETTINGS

![throughput and latency](benchmarks.png)

| measurement | command | result |
|---|---|---|
| one transaction per transfer (reference) | \`pgbench -c 8 -j 2 -T $PGBENCH_SECONDS -b tpcb-like\` (scale 10) | **$PGBENCH_TPS** tps |
| drain, uniform, 1 worker | \`$(cat "$WORK/drain1-cur-1.cmd")\` | **$D1** payments/s |
| drain, uniform, 2 workers | \`$(cat "$WORK/drain2-cur-1.cmd")\` | **$D2** payments/s |
| drain, hot account, 1 worker | \`$(cat "$WORK/hot1-cur-1.cmd")\` | **$H1** payments/s |
| drain, hot account, 2 workers | \`$(cat "$WORK/hot2-cur-1.cmd")\` | **$H2** payments/s |
| latency at $RATE/s, 1 worker | \`ledgerq bench --accounts $ACCOUNTS --rate $RATE --duration $RATE_SECONDS --json\` | p50 **$(lat p50)** ms, p99 **$(lat p99)** ms, p99.9 **$(lat p99_9)** ms, max $(lat max) ms |
| worker peak resident memory | \`VmHWM\` of every ${VERSION[cur]} worker above | **$RSS_MIB** MiB |

Against the previous release, ${VERSION[prev]} (commit $PREV_COMMIT, built by
\`deploy/local/previous-release.sh\` with \`LEDGERQ_PREV_BUILDTYPE=release\`). Both releases ran
in this run on the same stack, with the same worker settings and the same load generator
(this tree's \`ledgerq bench\`); each against a database of its own, migrated by its own
\`ledgerq migrate\` (schema version ${SCHEMA[prev]} for ${VERSION[prev]}, ${SCHEMA[cur]} for ${VERSION[cur]}); its own binary also
opened the accounts and, after each drain, ran the audit. Each measurement was taken for both
releases back to back, in $ROUND_WORDS; the release going first alternated from one measurement to the
next and from one round to the next, so that the machine's drift weighs on both alike (the
raw JSON at the end lists the runs in the order they ran). A difference is
${VERSION[cur]} against ${VERSION[prev]}: negative, ${VERSION[cur]} drained slower.

$(cat "$WORK/side.md")

| release | schema version | latency at $RATE/s, 1 worker: p50 | p99 | p99.9 | worker peak resident memory |
|---|---|---|---|---|---|
| ${VERSION[prev]} | ${SCHEMA[prev]} | $(lat p50 prev) ms | $(lat p99 prev) ms | $(lat p99_9 prev) ms | $(mib "${PEAK_RSS[prev]}") MiB |
| ${VERSION[cur]} | ${SCHEMA[cur]} | $(lat p50) ms | $(lat p99) ms | $(lat p99_9) ms | $RSS_MIB MiB |

Against the targets of issue 4:

| target | measured |
|---|---|
| drain at least 20,000 payments/s | best drain $BEST payments/s |
| at least 4x the pgbench figure | ${RATIO}x |
| hot account at least half of uniform | ${HOT_RATIO}x of the uniform figure |
| p99 at most 10 ms at 2,000/s offered | p99 $(lat p99) ms |
| worker peak RSS at most 16 MiB | $RSS_MIB MiB |

The account history (docs/protocol.md section 15) of one account with $HISTORY_ENTRIES entries,
read by the CLI: the whole command (process start, connection, query, JSON), median of 5
runs each; the target of issue 11 is a page in under 50 ms.

$(python3 - "$WORK/history.json" <<'PY'
import json, sys
print("| read | command | ms |")
print("|---|---|---|")
for c in json.load(open(sys.argv[1])):
    tick = chr(96)
    print(f"| {c['case']} | {tick}{c['command']}{tick} | **{c['ms']}** |")
PY
)

Holds (docs/protocol.md section 14), this release only: \`ledgerq bench --holds\` places
$HOLDS holds over $ACCOUNTS accounts at full speed through 1 worker; as each hold's event
arrives it sends the hold's capture (in full or, for every other one, half of it) or, for 1
hold in 10, its void; 1 in 20 holds is left to expire (\`timeout_s\` 1). For each kind, the
time from publishing the command to its result event; for expiries, from the expiry time to
the \`hold.expired\` event (the sweep runs about once a second).

$(python3 - "$WORK/holds.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{d['holds']} holds resolved in {d['seconds']} s: **{d['holds_per_s']:.0f} holds/s**, "
      f"each a hold and its capture, void or expiry ({d['messages']} commands, {d['events']} events).")
print()
print("| kind | count | p50 | p99 | max |")
print("|---|---|---|---|---|")
for k in ("hold", "capture", "void", "expiry"):
    v = d[k]
    print(f"| {k} | {v['count']} | {v['p50_ms']:.1f} ms | {v['p99_ms']:.1f} ms | {v['max_ms']:.1f} ms |")
PY
)

The back-fill of the history (migration 005): \`ledgerq migrate\` of ${VERSION[cur]} on a ledger that
${VERSION[prev]} made and drained ($PAYMENTS payments over $ACCOUNTS accounts) wrote $BACKFILL_ENTRIES history
entries in **$BACKFILL_S s**, all migrations of the upgrade included. The workers' batches wait that
long during an upgrade (docs/upgrades.md).

Where the latency at $RATE/s goes: \`ledgerq bench\` splits each payment's latency at its
event's \`processed_at\`, the start of the database transaction on PostgreSQL's clock
(all on one host, so one clock):

| part | p50 | p99 |
|---|---|---|
| publish to \`processed_at\`: the broker's hop to the worker (a quorum queue delivers a message once it is written to its log and synced), then the wait for the worker's current batch to finish | $(lat_split to_processed_at p50) ms | $(lat_split to_processed_at p99) ms |
| \`processed_at\` to the result event: the transaction (two round trips and the commit's WAL flush), the event's publish and the broker's hop back | $(lat_split from_processed_at p50) ms | $(lat_split from_processed_at p99) ms |

Where the CPU went during the first drain with 1 worker of ${VERSION[cur]} (CPU seconds, user +
system: from \`/proc\` just before the workers started and just after the load generator
exited, nothing sampled in between, and the load generator's own \`cpu_s\`; the machine has
$(nproc) cores, and the drain took $(json_field "$WORK/drain1-cur-1.json" "['seconds']") s):

$(python3 - "$WORK/drain1-cur-1.cpu0" "$WORK/drain1-cur-1.cpu1" <<'PY'
import sys
a = [float(x) for x in open(sys.argv[1]).read().split()]
b = [float(x) for x in open(sys.argv[2]).read().split()]
names = ["ledgerq worker", "RabbitMQ", "PostgreSQL", "load generator (ledgerq bench)"]
d = [max(0.0, y - x) for x, y in zip(a, b)]
total = sum(d) or 1.0
print("| component | CPU seconds | share |")
print("|---|---|---|")
for n, v in zip(names, d):
    print(f"| {n} | {v:.2f} | {100 * v / total:.0f}% |")
PY
)

$(cat "$WORK/perf.md")

A drain is measured from the first result event to the last, after all payments were
published with the workers stopped. Latency is from publishing a command to receiving its
result event. Each drain checks \`ledgerq audit\` afterwards.

The raw JSON of each run, in the order they ran (NAME-RELEASE-ROUND; prev is ${VERSION[prev]},
cur is ${VERSION[cur]}):

\`\`\`
$(for f in "${RUNS[@]}"; do echo "$f: $(cat "$WORK/$f.json")"; done)
\`\`\`
EOF
echo "wrote $OUT_MD"
echo
echo "${VERSION[cur]} against ${VERSION[prev]}:"
cat "$WORK/side.md"
