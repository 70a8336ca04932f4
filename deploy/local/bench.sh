#!/usr/bin/env bash
# ledgerq benchmark: one run on a private local stack, written to
# docs/benchmarks.md and docs/benchmarks.png.
#
#   sudo deploy/local/bench.sh [--quick]
#
# Measures, on this machine, with RabbitMQ, PostgreSQL and the workers all on it:
#   1. pgbench TPC-B-like, 8 clients, on the same PostgreSQL: the
#      one-transaction-per-payment reference;
#   2. drain of 100,000 preloaded payments over 10,000 accounts, 1 and 2 workers;
#   3. the same with every payment debiting one hot account;
#   4. latency percentiles at a steady 2,000 payments/s;
#   5. worker peak resident memory (VmHWM).
# --quick runs smaller numbers (for trying the script, not for the record).

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
STACK="$HERE/stack.sh"
DIR="${LEDGERQ_BENCH_STACK_DIR:-/tmp/ledgerq-stack-bench}"
AMQP_PORT="${LEDGERQ_BENCH_AMQP_PORT:-34672}"
PG_PORT="${LEDGERQ_BENCH_PG_PORT:-34432}"
BUILD="$ROOT/build-bench"
OUT_MD="$ROOT/docs/benchmarks.md"
OUT_PNG="$ROOT/docs/benchmarks.png"
WORK="$(mktemp -d /tmp/ledgerq-bench.XXXXXX)"

PAYMENTS=100000
ACCOUNTS=10000
PGBENCH_SECONDS=30
RATE=2000
RATE_SECONDS=30
if [ "${1:-}" = "--quick" ]; then
  PAYMENTS=20000 ACCOUNTS=2000 PGBENCH_SECONDS=5 RATE_SECONDS=5
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

step "a fresh private stack in $DIR"
"$STACK" start --fresh --dir "$DIR" --amqp-port "$AMQP_PORT" --pg-port "$PG_PORT"
eval "$("$STACK" env --dir "$DIR" | grep '^export')"
export LEDGERQ_HTTP_ADDR=off LEDGERQ_LOG_LEVEL=warn
PG_BIN="$LEDGERQ_STACK_PG_BIN"
PG_URL_BASE="postgresql://ledgerq@127.0.0.1:$PG_PORT"

# A fresh ledger database for each measurement, so that runs do not share state.
fresh_ledger() {
  "$PG_BIN/psql" -q "$PG_URL_BASE/postgres?sslmode=disable" -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" \
    -c "CREATE DATABASE bench" >/dev/null
  export LEDGERQ_DATABASE_URL="$PG_URL_BASE/bench?sslmode=disable"
  "$LQ" migrate >/dev/null
  "$LQ" topology >/dev/null
  "$STACK" --dir "$DIR" ctl purge_queue payments.process >/dev/null
}

start_workers() {
  WORKERS=()
  for _ in $(seq "$1"); do
    "$LQ" worker 2>>"$WORK/worker.log" &
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

# drain NAME WORKERS SKEW: preload the payments, then start the workers and time the drain.
drain() {
  local name=$1 workers=$2 skew=$3 cmd
  fresh_ledger
  "$LQ" bench --setup --accounts "$ACCOUNTS" --count 0
  cmd="ledgerq bench --preload --accounts $ACCOUNTS --count $PAYMENTS --skew $skew --json"
  step "drain: $PAYMENTS payments, $ACCOUNTS accounts, $skew, $workers worker(s)"
  "$LQ" bench --preload --accounts "$ACCOUNTS" --count "$PAYMENTS" --skew "$skew" --json \
    >"$WORK/$name.json" 2>"$WORK/$name.err" &
  local bench_pid=$!
  until grep -q "^published" "$WORK/$name.err" 2>/dev/null; do
    kill -0 "$bench_pid" 2>/dev/null || { cat "$WORK/$name.err" >&2; exit 1; }
    sleep 0.2
  done
  start_workers "$workers"
  local before after perf_pid=""
  # The 1-worker uniform drain is also profiled, system-wide (cpu-clock: no hardware
  # counters needed), to show where the time goes.
  if [ "$name" = drain1 ] && command -v perf >/dev/null; then
    perf record -a -g -e cpu-clock -F 499 -o "$WORK/perf.data" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  before=$(cpu_snapshot "$bench_pid")
  while kill -0 "$bench_pid" 2>/dev/null; do
    after=$(cpu_snapshot "$bench_pid")
    sleep 0.2
  done
  wait "$bench_pid"
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
  fi
  echo "$before" >"$WORK/$name.cpu0"
  echo "$after" >"$WORK/$name.cpu1"
  note_rss
  stop_workers
  "$LQ" audit >/dev/null
  echo "$cmd (workers: $workers)" >"$WORK/$name.cmd"
  cat "$WORK/$name.json"
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

step "writing $OUT_MD and $OUT_PNG"
mkdir -p "$ROOT/docs"
tp() { json_field "$WORK/$1.json" "['throughput_per_s']"; }
lat() { json_field "$WORK/$1.json" "['latency_ms']['$2']"; }
D1=$(tp drain1) D2=$(tp drain2) H1=$(tp hot1) H2=$(tp hot2)
BEST=$(python3 -c "print(max($D1, $D2))")
BEST_HOT=$(python3 -c "print(max($H1, $H2))")
RATIO=$(python3 -c "print(f'{$BEST / $PGBENCH_TPS:.1f}')")
HOT_RATIO=$(python3 -c "print(f'{$BEST_HOT / $BEST:.2f}')")
RSS_MIB=$(python3 -c "print(f'{$PEAK_RSS / 1024:.1f}')")
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MEM=$(free -g | awk '/^Mem/ {print $2 " GiB"}')

# The profile section of the page, when perf could record.
: >"$WORK/perf.md"
if [ -s "$WORK/perf.data" ]; then
  {
    echo 'A system-wide profile of the same drain (`perf record -a -g -e cpu-clock -F 499`): the'
    echo 'share of samples by process and library, then the hottest functions of the worker and'
    echo 'of PostgreSQL (RabbitMQ runs JIT-compiled Erlang, which shows as anonymous memory):'
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
  } >"$WORK/perf.md"
fi

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

Written by \`sudo deploy/local/bench.sh\` on $(date -u +"%Y-%m-%d %H:%M UTC"). Every figure
below comes from that one run, on one machine, with RabbitMQ, PostgreSQL, the workers
and the load generator all on it.

- machine: $(nproc) cores ($CPU), $MEM, $(. /etc/os-release && echo "$PRETTY_NAME")
- PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') (fsync and synchronous_commit on),
  RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server), ledgerq $("$LQ" --version | awk '{print $2}')
  (release build)
- the worker runs with its defaults: LEDGERQ_BATCH_MAX=500, LEDGERQ_BATCH_WAIT_MS=5,
  LEDGERQ_PREFETCH=1000

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

Where the CPU went during the drain with 1 worker (CPU seconds, user + system, from
\`/proc\`; the machine has $(nproc) cores, and the drain took $(json_field "$WORK/drain1.json" "['seconds']") s):

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
