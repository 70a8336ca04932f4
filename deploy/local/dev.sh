#!/usr/bin/env bash
# ledgerq developer entry point: build, run a live demo, run the test suites.
#
#   deploy/local/dev.sh run     # build, start a private stack, watch payments flow
#   deploy/local/dev.sh test    # what CI runs (.ci/run)
# As root; as another user it re-runs itself with sudo.
#
# Run `dev.sh help` for the usage. The RabbitMQ and PostgreSQL it uses are
# private ones started by deploy/local/stack.sh in a folder under /tmp.

set -euo pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
HERE="$(dirname "$SELF")"
ROOT="$(cd "$HERE/../.." && pwd)"
STACK="$HERE/stack.sh"
PROG="dev.sh"

usage() {
	cat <<EOF
usage: $PROG COMMAND [options]

commands:
  build [--sanitize]     install missing packages, configure (--werror) and
                         compile: build/ (or build-asan/ with ASan+UBSan)
  run [--seconds N] [--keep-stack]
                         build, start a private stack (/tmp/ledgerq-stack-dev,
                         AMQP 35672, PostgreSQL 35432), migrate, declare the
                         topology, open sample accounts, run the worker and
                         publish sample payments until Ctrl-C or N seconds;
                         then stop the worker, audit, stop the stack
  test                   build, format-check, start a fresh test stack
                         (/tmp/ledgerq-stack-test, AMQP 36672, PostgreSQL 36432),
                         meson test on build/ and build-asan/, stop the stack,
                         print "N passed, N failed, N skipped"

environment:
  LEDGERQ_DEV_STACK_DIR, LEDGERQ_DEV_AMQP_PORT, LEDGERQ_DEV_PG_PORT    (run)
  LEDGERQ_TEST_STACK_DIR, LEDGERQ_TEST_AMQP_PORT, LEDGERQ_TEST_PG_PORT (test)
EOF
}

die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

STEP_T0=$SECONDS
step() {
	printf '\n==> [%4ss] %s\n' "$((SECONDS - STEP_T0))" "$*"
}

# Every command that may take a while runs through `child`: in the background,
# waited for. A Ctrl-C or SIGTERM then interrupts the wait at once and the EXIT
# handler stops that command and cleans up, whatever the command does with
# SIGINT itself (bash would otherwise ignore a Ctrl-C its child caught).
CHILD=""
child() {
	local rc=0
	"$@" &
	CHILD=$!
	wait "$CHILD" || rc=$?
	CHILD=""
	return "$rc"
}

TMP=""
CLEANUP="" # the command's own cleanup, run by on_exit with the exit status
on_exit() {
	local rc=$?
	trap - EXIT
	trap '' INT TERM # a second Ctrl-C must not cut the cleanup short
	set +e
	if [[ -n "$CHILD" ]] && kill -0 "$CHILD" 2>/dev/null; then
		kill -TERM "$CHILD" 2>/dev/null
		local tries=300
		while kill -0 "$CHILD" 2>/dev/null && ((tries-- > 0)); do sleep 0.1; done
		kill -KILL "$CHILD" 2>/dev/null
		wait "$CHILD" 2>/dev/null
	fi
	if [[ -n "$CLEANUP" ]]; then
		"$CLEANUP" "$rc"
		rc=$?
	fi
	[[ -z "$TMP" ]] || rm -rf "$TMP"
	exit "$rc"
}

preflight() {
	if [[ ! -f /etc/debian_version ]] || ! command -v apt-get >/dev/null; then
		die "ledgerq's dev scripts need Debian 12 with apt (found no /etc/debian_version or apt-get)"
	fi
	if ((EUID != 0)); then
		command -v sudo >/dev/null || die "run as root: sudo is not installed"
		exec sudo -E -- bash "$SELF" "$@"
	fi
}

# ---------------------------------------------------------------- build

cmd_build() {
	local sanitize=0
	while (($#)); do
		case "$1" in
		--sanitize) sanitize=1 ;;
		*) die "build: unknown option \"$1\"" ;;
		esac
		shift
	done

	step "dependencies (stack.sh install-deps)"
	child "$STACK" install-deps

	local dir=build opts=(--werror)
	if ((sanitize)); then
		dir=build-asan
		opts+=("-Db_sanitize=address,undefined" -Db_lundef=false)
	fi
	cd "$ROOT"
	step "configure $dir (meson ${opts[*]})"
	if [[ -f "$dir/meson-private/coredata.dat" ]]; then
		child meson setup --reconfigure "${opts[@]}" "$dir" ||
			child meson setup --wipe "${opts[@]}" "$dir"
	else
		child meson setup "${opts[@]}" "$dir"
	fi
	step "compile $dir"
	child ninja -C "$dir"
}

# ---------------------------------------------------------------- run

# A port on 127.0.0.1 that nothing listens on now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

EUR_ACCOUNTS=(acct:alice acct:bob acct:carol acct:dave acct:erin acct:frank acct:grace
	acct:heidi acct:ivan acct:judy acct:mallory acct:niaj acct:olivia acct:peggy
	acct:rupert acct:sybil acct:trent acct:victor)
USD_ACCOUNTS=(acct:walter acct:wendy)

LQ=""
RUN_WORKER_PID=""
RUN_KEEP_STACK=0
RUN_STACK_ARGS=()

run_cleanup() {
	local rc="$1"
	((rc != 130)) || rc=0 # Ctrl-C is how a run ends
	if [[ -n "$RUN_WORKER_PID" ]] && kill -0 "$RUN_WORKER_PID" 2>/dev/null; then
		step "stop the worker (SIGTERM, pid $RUN_WORKER_PID)"
		kill -TERM "$RUN_WORKER_PID"
		local tries=300
		while kill -0 "$RUN_WORKER_PID" 2>/dev/null && ((tries-- > 0)); do sleep 0.1; done
		if kill -0 "$RUN_WORKER_PID" 2>/dev/null; then
			echo "worker still running after 30s: SIGKILL"
			kill -KILL "$RUN_WORKER_PID"
		fi
		wait "$RUN_WORKER_PID"
		echo "worker exited with status $?"
	fi
	if [[ -n "$LQ" && -x "$LQ" ]] && "$STACK" "${RUN_STACK_ARGS[@]}" status >/dev/null 2>&1; then
		step "ledgerq audit"
		"$LQ" audit || rc=1
		step "balances"
		"$LQ" account list
	fi
	if ((RUN_KEEP_STACK)); then
		step "stack left running (--keep-stack): eval \"\$($STACK ${RUN_STACK_ARGS[*]} env)\""
	elif ((${#RUN_STACK_ARGS[@]})); then
		step "stop the stack"
		"$STACK" "${RUN_STACK_ARGS[@]}" stop
	fi
	return "$rc"
}

# One sample payment command as a JSON line, in PAYMENT. Mostly ordinary
# transfers; some that must be rejected (insufficient funds, currency mismatch,
# unknown account), a split payment now and then, and an occasional re-send of
# the previous command (a duplicate: same id, same content).
PAYMENT=""
sample_payment() {
	local id="$1" r=$((RANDOM % 20)) n=${#EUR_ACCOUNTS[@]} t
	local a="${EUR_ACCOUNTS[RANDOM % n]}" b
	b="${EUR_ACCOUNTS[RANDOM % n]}"
	while [[ "$b" == "$a" ]]; do b="${EUR_ACCOUNTS[RANDOM % n]}"; done
	local amount=$((100 + RANDOM % 5000))
	case "$r" in
	0)
		if [[ -n "$PAYMENT" ]]; then
			return # the previous one again
		fi
		;;
	1 | 2) amount=$((50000000 + RANDOM)) ;; # insufficient_funds
	3)
		PAYMENT="$(printf '{"id":"%s","legs":[{"debit":"%s","credit":"acct:shop","amount":%d,"currency":"EUR"},{"debit":"%s","credit":"acct:fees","amount":"%d","currency":"EUR"}]}' \
			"$id" "$a" "$amount" "$a" "$((1 + amount / 50))")"
		return
		;;
	4)
		a="${USD_ACCOUNTS[0]}" b="${USD_ACCOUNTS[1]}"
		if ((RANDOM % 2)); then t="$a" a="$b" b="$t"; fi
		PAYMENT="$(printf '{"id":"%s","debit":"%s","credit":"%s","amount":%d,"currency":"USD","reference":"usd-transfer"}' \
			"$id" "$a" "$b" "$amount")"
		return
		;;
	5) b="${USD_ACCOUNTS[0]}" ;; # currency_mismatch
	6) b="acct:nobody" ;;        # account_not_found
	esac
	PAYMENT="$(printf '{"id":"%s","debit":"%s","credit":"%s","amount":%d,"currency":"EUR","reference":"order-%d","metadata":{"channel":"dev.sh"}}' \
		"$id" "$a" "$b" "$amount" "$RANDOM")"
}

ensure_account() {
	local id="$1"
	shift
	if "$LQ" account show "$id" >/dev/null 2>&1; then
		return 0
	fi
	"$LQ" account open "$id" "$@" >/dev/null
	echo "opened $id $*"
}

cmd_run() {
	local seconds=0
	while (($#)); do
		case "$1" in
		--seconds)
			seconds="${2:-}"
			shift
			;;
		--seconds=*) seconds="${1#*=}" ;;
		--keep-stack) RUN_KEEP_STACK=1 ;;
		*) die "run: unknown option \"$1\"" ;;
		esac
		shift
	done
	[[ "$seconds" =~ ^[0-9]+$ ]] || die "run: --seconds needs a whole number, not \"$seconds\""

	cmd_build
	cd "$ROOT"
	LQ="$ROOT/build/ledgerq"
	[[ -x "$LQ" ]] || die "$LQ was not built"

	RUN_STACK_ARGS=(--dir "${LEDGERQ_DEV_STACK_DIR:-/tmp/ledgerq-stack-dev}"
		--amqp-port "${LEDGERQ_DEV_AMQP_PORT:-35672}" --pg-port "${LEDGERQ_DEV_PG_PORT:-35432}")
	CLEANUP=run_cleanup
	TMP="$(mktemp -d /tmp/ledgerq-dev.XXXXXX)"

	step "start the stack (stack.sh ${RUN_STACK_ARGS[*]} start)"
	child "$STACK" "${RUN_STACK_ARGS[@]}" start
	eval "$("$STACK" "${RUN_STACK_ARGS[@]}" env)"
	echo "LEDGERQ_AMQP_URL=$LEDGERQ_AMQP_URL"
	echo "LEDGERQ_DATABASE_URL=$LEDGERQ_DATABASE_URL"

	step "ledgerq migrate"
	child "$LQ" migrate
	step "ledgerq topology"
	child "$LQ" topology

	step "sample accounts"
	ensure_account acct:bank-eur --currency EUR --allow-negative
	ensure_account acct:bank-usd --currency USD --allow-negative
	ensure_account acct:shop --currency EUR
	ensure_account acct:fees --currency EUR
	local acct
	for acct in "${EUR_ACCOUNTS[@]}"; do ensure_account "$acct" --currency EUR; done
	for acct in "${USD_ACCOUNTS[@]}"; do ensure_account "$acct" --currency USD; done

	# Unique across runs: payment ids are never reused (section 5).
	local run_id
	run_id="dev-$(date -u +%Y%m%dT%H%M%S)-$RANDOM"

	local http_port
	http_port="$(free_port)"
	step "start the worker (metrics on http://127.0.0.1:$http_port/metrics)"
	LEDGERQ_HTTP_ADDR="127.0.0.1:$http_port" LEDGERQ_LOG_FORMAT=text LEDGERQ_LOG_LEVEL=info \
		"$LQ" worker &
	RUN_WORKER_PID=$!
	child sleep 1
	kill -0 "$RUN_WORKER_PID" 2>/dev/null || die "the worker exited at start (see its log above)"

	step "fund the accounts from acct:bank-eur / acct:bank-usd"
	{
		for acct in "${EUR_ACCOUNTS[@]}"; do
			printf '{"id":"%s-fund-%s","debit":"acct:bank-eur","credit":"%s","amount":100000,"currency":"EUR","reference":"opening balance"}\n' \
				"$run_id" "$acct" "$acct"
		done
		for acct in "${USD_ACCOUNTS[@]}"; do
			printf '{"id":"%s-fund-%s","debit":"acct:bank-usd","credit":"%s","amount":100000,"currency":"USD","reference":"opening balance"}\n' \
				"$run_id" "$acct" "$acct"
		done
	} >"$TMP/funding.jsonl"
	child "$LQ" publish --file "$TMP/funding.jsonl"

	if ((seconds)); then
		step "publishing sample payments for ${seconds}s (Ctrl-C to stop)"
	else
		step "publishing sample payments (Ctrl-C to stop)"
	fi
	local end=$((SECONDS + seconds)) seq=0 tick=0 i count batch
	while ((seconds == 0 || SECONDS < end)); do
		kill -0 "$RUN_WORKER_PID" 2>/dev/null || die "the worker has exited"
		count=$((2 + RANDOM % 4))
		batch=""
		for ((i = 0; i < count; i++)); do
			seq=$((seq + 1))
			sample_payment "$run_id-$seq"
			batch+="$PAYMENT"$'\n'
		done
		printf '%s' "$batch" >"$TMP/batch.jsonl"
		child "$LQ" publish --file "$TMP/batch.jsonl"
		tick=$((tick + 1))
		if ((tick % 5 == 0)); then
			step "balances after $seq payments"
			child "$LQ" account list
		fi
		child sleep 1
	done
}

# ---------------------------------------------------------------- test

TEST_STACK_ARGS=()

test_cleanup() {
	if ((${#TEST_STACK_ARGS[@]})); then
		step "stop the test stack"
		"$STACK" "${TEST_STACK_ARGS[@]}" stop
	fi
	return "$1"
}

# Print "N passed, N failed, N skipped" over the meson test logs given; exit
# status 1 when a test failed or none passed.
summarize() {
	python3 - "$@" <<'EOF'
import json, os, sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    p = f = s = 0
    if os.path.exists(path):
        with open(path, encoding="utf-8") as log:
            for line in log:
                line = line.strip()
                if not line:
                    continue
                result = json.loads(line).get("result")
                if result in ("OK", "EXPECTEDFAIL"):
                    p += 1
                elif result == "SKIP":
                    s += 1
                else:
                    f += 1
    print(f"{os.path.dirname(os.path.dirname(path))}: {p} ok / {f} not ok / {s} skip")
    passed, failed, skipped = passed + p, failed + f, skipped + s
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
EOF
}

cmd_test() {
	(($# == 0)) || die "test: unknown option \"$1\""
	cmd_build
	cd "$ROOT"

	step "format check (ninja -C build format-check)"
	child ninja -C build format-check

	# The upgrade tests run the previous release against this one's schema.
	step "previous release, built from its commit (previous-release.sh)"
	local prev
	prev="$(child "$HERE/previous-release.sh")" || die "could not build the previous release"
	echo "$prev"
	export "${prev%%$'\n'*}" "${prev#*$'\n'}"

	local dir="${LEDGERQ_TEST_STACK_DIR:-/tmp/ledgerq-stack-test}"
	local amqp_port="${LEDGERQ_TEST_AMQP_PORT:-36672}" pg_port="${LEDGERQ_TEST_PG_PORT:-36432}"
	TEST_STACK_ARGS=(--dir "$dir" --amqp-port "$amqp_port" --pg-port "$pg_port")
	CLEANUP=test_cleanup

	# The tests reach the stack only through these; nothing of a developer's
	# own stack (LEDGERQ_STACK_*, a dev stack's URLs) may leak into them.
	unset LEDGERQ_STACK_DIR LEDGERQ_STACK_AMQP_PORT LEDGERQ_STACK_PG_PORT
	export LEDGERQ_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$amqp_port/%2f"
	export LEDGERQ_TEST_DATABASE_URL="postgresql://ledgerq@127.0.0.1:$pg_port/ledgerq"
	export LEDGERQ_TEST_STACK_DIR="$dir"
	export LEDGERQ_TEST_STACK_SCRIPT="$STACK"
	export LEDGERQ_TEST_AMQP_PORT="$amqp_port" LEDGERQ_TEST_PG_PORT="$pg_port"
	export LEDGERQ_AMQP_URL="$LEDGERQ_TEST_AMQP_URL"
	export LEDGERQ_DATABASE_URL="$LEDGERQ_TEST_DATABASE_URL"

	local rc_plain=0 rc_asan=0
	step "start a fresh test stack (stack.sh ${TEST_STACK_ARGS[*]} start --fresh)"
	child "$STACK" "${TEST_STACK_ARGS[@]}" start --fresh

	step "meson test -C build"
	rm -f build/meson-logs/testlog.json
	child meson test -C build --print-errorlogs --num-processes 2 || rc_plain=$?

	step "sanitizer build"
	cmd_build --sanitize
	cd "$ROOT"

	# A fresh stack again: the first run may have left messages, rows, or (fault
	# tests) a stopped service behind.
	step "restart the test stack fresh"
	child "$STACK" "${TEST_STACK_ARGS[@]}" start --fresh

	step "meson test -C build-asan (AddressSanitizer, UndefinedBehaviorSanitizer)"
	rm -f build-asan/meson-logs/testlog.json
	# Leaks are reported with no suppression: none is needed.
	child env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		meson test -C build-asan --print-errorlogs --num-processes 2 --timeout-multiplier 3 || rc_asan=$?

	step "stop the test stack"
	child "$STACK" "${TEST_STACK_ARGS[@]}" stop
	TEST_STACK_ARGS=()

	step "summary"
	((rc_plain == 0)) || echo "meson test -C build exited with status $rc_plain"
	((rc_asan == 0)) || echo "meson test -C build-asan exited with status $rc_asan"
	local rc_sum=0
	summarize build/meson-logs/testlog.json build-asan/meson-logs/testlog.json || rc_sum=$?
	if ((rc_sum != 0 || rc_plain != 0 || rc_asan != 0)); then
		exit 1
	fi
}

# ---------------------------------------------------------------- main

main() {
	local cmd="${1:-}"
	case "$cmd" in
	"")
		usage >&2
		exit 2
		;;
	help | -h | --help)
		usage
		return 0
		;;
	build | run | test) ;;
	*)
		printf '%s: unknown command "%s"\n' "$PROG" "$cmd" >&2
		usage >&2
		exit 2
		;;
	esac
	preflight "$@"
	shift
	trap on_exit EXIT
	trap 'echo "$PROG: interrupted" >&2; exit 130' INT
	trap 'echo "$PROG: terminated" >&2; exit 143' TERM
	case "$cmd" in
	build) cmd_build "$@" ;;
	run) cmd_run "$@" ;;
	test) cmd_test "$@" ;;
	esac
}

main "$@"
