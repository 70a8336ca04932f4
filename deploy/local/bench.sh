#!/usr/bin/env bash
# ledgerq benchmark: one run on a private local stack, written to
# docs/benchmarks.md and docs/benchmarks.png.
#
#   deploy/local/bench.sh [--quick]     (as root; otherwise it re-runs itself with sudo)
#
# Measures, on this machine, with RabbitMQ, PostgreSQL and the workers all on it:
#   1. pgbench TPC-B-like, 8 clients, on the same PostgreSQL: the
#      one-transaction-per-payment reference;
#   2. drain of 100,000 preloaded payments over 10,000 accounts, 1 and 2 workers;
#   3. the same with every payment debiting one hot account;
#   4. latency percentiles at a steady 2,000 payments/s;
#   5. worker peak resident memory (VmHWM).
# Then, apart from the measured runs, a profiled drain (1 worker, uniform) whose
# figures are not results: it only shows where the time goes (perf, PostgreSQL's
# pg_stat_statements, the worker's own /metrics), so that profiling does not
# perturb what is measured.
# --quick runs smaller numbers (for trying the script, not for the record).
#
# LEDGERQ_BENCH_STACK_DIR, LEDGERQ_BENCH_AMQP_PORT, LEDGERQ_BENCH_PG_PORT,
# LEDGERQ_BENCH_BUILD_DIR (default build-bench) and LEDGERQ_BENCH_OUT_DIR (default
# docs) let a trial run stay clear of another one.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
STACK="$HERE/stack.sh"
DIR="${LEDGERQ_BENCH_STACK_DIR:-/tmp/ledgerq-stack-bench}"
AMQP_PORT="${LEDGERQ_BENCH_AMQP_PORT:-34672}"
PG_PORT="${LEDGERQ_BENCH_PG_PORT:-34432}"
BUILD="${LEDGERQ_BENCH_BUILD_DIR:-$ROOT/build-bench}"
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
if [ "${1:-}" = "--quick" ]; then
  PAYMENTS=20000 ACCOUNTS=2000 PGBENCH_SECONDS=5 RATE_SECONDS=5 PROFILE_PAYMENTS=4000
fi

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E bash "$0" "$@"
fi

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

# The worker's batching settings, as the workers below get them: the environment's
# value when set, else the default that `ledgerq worker --help` shows (its settings
# lines read: flag, variable, default).
worker_settings() {
  local help var def out="" lead="the worker runs with its defaults:"
  help=$("$LQ" worker --help)
  for var in LEDGERQ_BATCH_MAX LEDGERQ_BATCH_WAIT_MS LEDGERQ_PREFETCH; do
    if [ -n "${!var+set}" ]; then
      out+="${out:+, }$var=${!var} (set in the environment)"
      lead="the worker runs with:"
      continue
    fi
    def=$(awk -v var="$var" '$2 == var { print $3 }' <<<"$help")
    if [ -z "$def" ]; then
      echo "bench.sh: \`$LQ worker --help\` shows no default for $var" >&2
      exit 1
    fi
    out+="${out:+, }$var=$def"
  done
  echo "$lead $out"
}
WORKER_SETTINGS=$(worker_settings)

step "a fresh private stack in $DIR"
"$STACK" start --fresh --dir "$DIR" --amqp-port "$AMQP_PORT" --pg-port "$PG_PORT"
eval "$("$STACK" env --dir "$DIR" | grep '^export')"
export LEDGERQ_HTTP_ADDR=off LEDGERQ_LOG_LEVEL=warn
PG_BIN="$LEDGERQ_STACK_PG_BIN"
PG_URL_BASE="postgresql://ledgerq@127.0.0.1:$PG_PORT"

# A fresh ledger database for each measurement, so that runs do not share state;
# a checkpoint first, so that no measurement pays for the dirty pages of the last.
fresh_ledger() {
  "$PG_BIN/psql" -q "$PG_URL_BASE/postgres?sslmode=disable" -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" \
    -c "CREATE DATABASE bench" -c "CHECKPOINT" >/dev/null
  export LEDGERQ_DATABASE_URL="$PG_URL_BASE/bench?sslmode=disable"
  "$LQ" migrate >/dev/null
  "$LQ" topology >/dev/null
  "$STACK" --dir "$DIR" ctl purge_queue payments.process >/dev/null
}

# start_workers N [HTTP_ADDR]: HTTP_ADDR turns the health and metrics endpoint on (1 worker).
start_workers() {
  WORKERS=()
  for _ in $(seq "$1"); do
    LEDGERQ_HTTP_ADDR="${2:-off}" "$LQ" worker 2>>"$WORK/worker.log" &
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

PEAK_RSS=0
note_rss() { local kb; kb=$(peak_rss); [ "$kb" -gt "$PEAK_RSS" ] && PEAK_RSS=$kb; return 0; }

# drain NAME WORKERS SKEW [COUNT [profile]]: preload the payments, then start the
# workers and time the drain. With "profile", the drain is recorded instead (perf,
# pg_stat_statements, the worker's /metrics): see profile_begin and profile_end.
drain() {
  local name=$1 workers=$2 skew=$3 count=${4:-$PAYMENTS} profile=${5:-} cmd http_addr=off
  fresh_ledger
  "$LQ" bench --setup --accounts "$ACCOUNTS" --count 0
  cmd="ledgerq bench --preload --accounts $ACCOUNTS --count $count --skew $skew --json"
  step "${profile:+profiled }drain: $count payments, $ACCOUNTS accounts, $skew, $workers worker(s)"
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
  start_workers "$workers" "$http_addr"
  wait "$bench_pid"
  after=$(cpu_snapshot "$bench_pid")
  if [ -n "$profile" ]; then
    profile_end "$http_addr"
  else
    note_rss
  fi
  echo "$before" >"$WORK/$name.cpu0"
  # The load generator's column: its CPU time at the end, from its own report.
  bench_cpu0=$(awk '{print $4}' <<<"$before")
  awk -v end="$(json_field "$WORK/$name.json" "['cpu_s']")" -v start="$bench_cpu0" \
    '{printf "%s %s %s %.2f\n", $1, $2, $3, (end > start ? end : start)}' <<<"$after" >"$WORK/$name.cpu1"
  stop_workers
  "$LQ" audit >/dev/null
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

drain drain1 1 uniform
drain drain2 2 uniform
drain hot1 1 hot
drain hot2 2 hot

step "latency at a steady $RATE payments/s for ${RATE_SECONDS}s, 1 worker"
fresh_ledger
"$LQ" bench --setup --accounts "$ACCOUNTS" --count 0
start_workers 1
sleep 1
"$LQ" bench --accounts "$ACCOUNTS" --rate "$RATE" --duration "$RATE_SECONDS" --json \
  >"$WORK/rate.json"
note_rss
stop_workers
cat "$WORK/rate.json"

# Not a measurement: a separate drain, recorded, after the measured ones.
enable_pg_stat_statements
drain profile 1 uniform "$PROFILE_PAYMENTS" profile

step "writing $OUT_MD and $OUT_PNG"
mkdir -p "$OUT_DIR"
tp() { json_field "$WORK/$1.json" "['throughput_per_s']"; }
lat() { json_field "$WORK/$1.json" "['latency_ms']['$2']"; }
lat_split() { json_field "$WORK/$1.json" "['latency_split_ms']['$2']['$3']"; }
D1=$(tp drain1) D2=$(tp drain2) H1=$(tp hot1) H2=$(tp hot2)
BEST=$(python3 -c "print(max($D1, $D2))")
BEST_HOT=$(python3 -c "print(max($H1, $H2))")
RATIO=$(python3 -c "print(f'{$BEST / $PGBENCH_TPS:.1f}')")
HOT_RATIO=$(python3 -c "print(f'{$BEST_HOT / $BEST:.2f}')")
RSS_MIB=$(python3 -c "print(f'{$PEAK_RSS / 1024:.1f}')")
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

cat >"$WORK/plot.dat" <<EOF
"pgbench TPC-B" $PGBENCH_TPS
"drain 1 worker" $D1
"drain 2 workers" $D2
"hot 1 worker" $H1
"hot 2 workers" $H2
EOF
cat >"$WORK/lat.dat" <<EOF
p50 $(lat rate p50)
p99 $(lat rate p99)
p99.9 $(lat rate p99_9)
max $(lat rate max)
EOF
gnuplot <<EOF
set terminal pngcairo size 1100,450 font "sans,10"
set output "$OUT_PNG"
set multiplot layout 1,2 title "ledgerq on $(nproc) cores, everything co-located ($(date -u +%Y-%m-%d))"
set style fill solid 0.8
set boxwidth 0.6
set grid ytics
set yrange [0:*]
set title "throughput (payments or transactions per second)"
plot "$WORK/plot.dat" using 0:2:xtic(1) with boxes lc rgb "#3b7dd8" notitle, \
     "" using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.8 notitle
set title "end-to-end latency at $RATE/s offered (ms)"
plot "$WORK/lat.dat" using 0:2:xtic(1) with boxes lc rgb "#d8893b" notitle, \
     "" using 0:2:(sprintf("%.1f", \$2)) with labels offset 0,0.8 notitle
unset multiplot
EOF

cat >"$OUT_MD" <<EOF
# Benchmarks

Written by \`deploy/local/bench.sh\` on $(date -u +"%Y-%m-%d %H:%M UTC"). Every figure
below comes from that one run, on one machine, with RabbitMQ, PostgreSQL, the workers
and the load generator all on it.

- machine: $(nproc) cores ($CPU), $MEM, $OS
- PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') (fsync and synchronous_commit on),
  RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server), ledgerq $("$LQ" --version | awk '{print $2}')
  (release build)
- $WORKER_SETTINGS

![throughput and latency](benchmarks.png)

| measurement | command | result |
|---|---|---|
| one transaction per transfer (reference) | \`pgbench -c 8 -j 2 -T $PGBENCH_SECONDS -b tpcb-like\` (scale 10) | **$PGBENCH_TPS** tps |
| drain, uniform, 1 worker | \`$(cat "$WORK/drain1.cmd")\` | **$D1** payments/s |
| drain, uniform, 2 workers | \`$(cat "$WORK/drain2.cmd")\` | **$D2** payments/s |
| drain, hot account, 1 worker | \`$(cat "$WORK/hot1.cmd")\` | **$H1** payments/s |
| drain, hot account, 2 workers | \`$(cat "$WORK/hot2.cmd")\` | **$H2** payments/s |
| latency at $RATE/s, 1 worker | \`ledgerq bench --accounts $ACCOUNTS --rate $RATE --duration $RATE_SECONDS --json\` | p50 **$(lat rate p50)** ms, p99 **$(lat rate p99)** ms, p99.9 **$(lat rate p99_9)** ms, max $(lat rate max) ms |
| worker peak resident memory | \`VmHWM\` of every worker above | **$RSS_MIB** MiB |

Against the targets of issue 4:

| target | measured |
|---|---|
| drain at least 20,000 payments/s | best drain $BEST payments/s |
| at least 4x the pgbench figure | ${RATIO}x |
| hot account at least half of uniform | ${HOT_RATIO}x of the uniform figure |
| p99 at most 10 ms at 2,000/s offered | p99 $(lat rate p99) ms |
| worker peak RSS at most 16 MiB | $RSS_MIB MiB |

Where the latency at $RATE/s goes: \`ledgerq bench\` splits each payment's latency at its
event's \`processed_at\`, the start of the database transaction on PostgreSQL's clock
(all on one host, so one clock):

| part | p50 | p99 |
|---|---|---|
| publish to \`processed_at\`: the broker's hop to the worker (a quorum queue delivers a message once it is written to its log and synced), then the wait for the worker's current batch to finish | $(lat_split rate to_processed_at p50) ms | $(lat_split rate to_processed_at p99) ms |
| \`processed_at\` to the result event: the transaction (two round trips and the commit's WAL flush), the event's publish and the broker's hop back | $(lat_split rate from_processed_at p50) ms | $(lat_split rate from_processed_at p99) ms |

Where the CPU went during the drain with 1 worker (CPU seconds, user + system: from
\`/proc\` just before the workers started and just after the load generator exited, nothing
sampled in between, and the load generator's own \`cpu_s\`; the machine has $(nproc) cores,
and the drain took $(json_field "$WORK/drain1.json" "['seconds']") s):

$(python3 - "$WORK/drain1.cpu0" "$WORK/drain1.cpu1" <<'PY'
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

The raw JSON of each run:

\`\`\`
$(for f in drain1 drain2 hot1 hot2 rate; do echo "$f: $(cat "$WORK/$f.json")"; done)
\`\`\`
EOF
echo "wrote $OUT_MD"
