#!/usr/bin/env bash
# A private RabbitMQ and PostgreSQL for development, tests and CI.
#
# Everything lives in one folder (the "stack dir") and listens on 127.0.0.1
# only, on private ports, so it never touches the system's own services, the
# default clusters in /var/lib/postgresql and /var/lib/rabbitmq, or another
# stack in another folder. Only processes this script started (recorded by pid
# in the stack dir) are ever stopped or killed.
#
# Run `stack.sh help` for the usage.

set -euo pipefail

SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
PROG="stack.sh"
SYS_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_DIR="/tmp/ledgerq-stack"
DEFAULT_AMQP_PORT=35672
DEFAULT_PG_PORT=35432

# Packages the build, the tests and this stack need (Debian 12 names).
DEPS=(gcc libc6-dev pkg-config python3 meson ninja-build librabbitmq-dev libpq-dev
	libcjson-dev check clang-format libmicrohttpd-dev valgrind postgresql
	rabbitmq-server procps openssl)

usage() {
	cat <<EOF
usage: $PROG COMMAND [SERVICE] [--dir DIR] [--amqp-port N] [--pg-port N] [--fresh]

commands:
  start [amqp|pg] [--fresh]  start both services (or one); idempotent. --fresh
                             stops what runs in DIR, wipes DIR, starts anew
  stop [amqp|pg]             graceful stop (pg_ctl -m fast / SIGTERM to the
                             broker), then the private epmd
  kill amqp|pg               SIGKILL the broker's or the postmaster's process
                             (crash simulation for fault tests); epmd stays
  status                     print whether each service is up (exit 0 if both)
  env                        print shell exports: URLs, pid files, commands
  ctl ARGS...                run rabbitmqctl ARGS against this stack's node
  psql ARGS...               run psql against this stack's ledgerq database
  install-deps               apt-get install the build and runtime packages
                             that are missing (Debian/apt only)

options (also from the environment):
  --dir DIR        LEDGERQ_STACK_DIR        default $DEFAULT_DIR
  --amqp-port N    LEDGERQ_STACK_AMQP_PORT  default $DEFAULT_AMQP_PORT
  --pg-port N      LEDGERQ_STACK_PG_PORT    default $DEFAULT_PG_PORT

The ports a stack was started with are recorded in DIR/stack.env, so later
commands need only --dir. RabbitMQ uses AMQP port N plus N+1 (Erlang
distribution), N+2 (private epmd), N+3..N+12 (rabbitmqctl) and N+13 (AMQP
over TLS). DIR must be traversable by the postgres and rabbitmq users (not
under /root).

TLS: the first start in a stack dir makes test certificates with openssl in
DIR/tls (a private CA; a server certificate for the host name "localhost"
only, no IP address; a client certificate; an unrelated "wrong" CA). RabbitMQ
then also listens for amqps:// on 127.0.0.1:N+13 and PostgreSQL runs with
ssl = on (both verify client certificates of that CA when one is sent);
plain connections work as before. The env command prints the paths. A stack
dir made before TLS keeps running without it until start --fresh.
EOF
}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

# ---------------------------------------------------------------- settings

parse_args() {
	CMD=""
	SERVICE=""
	FRESH=0
	OPT_DIR=""
	OPT_AMQP=""
	OPT_PG=""
	PASSTHRU=()
	local passthru=0
	while (($#)); do
		# ctl and psql pass on every argument but this script's own options.
		if ((passthru)); then
			case "$1" in
			--dir | --amqp-port | --pg-port | --dir=* | --amqp-port=* | --pg-port=*) ;;
			*)
				PASSTHRU+=("$1")
				shift
				continue
				;;
			esac
		fi
		case "$1" in
		--dir) OPT_DIR="${2:?--dir needs a value}"; shift 2 ;;
		--dir=*) OPT_DIR="${1#*=}"; shift ;;
		--amqp-port) OPT_AMQP="${2:?--amqp-port needs a value}"; shift 2 ;;
		--amqp-port=*) OPT_AMQP="${1#*=}"; shift ;;
		--pg-port) OPT_PG="${2:?--pg-port needs a value}"; shift 2 ;;
		--pg-port=*) OPT_PG="${1#*=}"; shift ;;
		--fresh) FRESH=1; shift ;;
		-h | --help | help) CMD=help; shift ;;
		*)
			if [[ -z "$CMD" ]]; then
				CMD="$1"
				shift
				if [[ "$CMD" == ctl || "$CMD" == psql ]]; then passthru=1; fi
			elif [[ -z "$SERVICE" && ("$1" == amqp || "$1" == pg) ]]; then
				SERVICE="$1"
				shift
			else
				printf '%s: unexpected argument "%s"\n' "$PROG" "$1" >&2
				usage >&2
				exit 2
			fi
			;;
		esac
	done
}

check_port() {
	local name="$1" value="$2" max="${3:-65535}"
	if [[ ! "$value" =~ ^[0-9]+$ ]] || ((value < 1024 || value > max)); then
		die "$name must be a port number from 1024 to $max, not \"$value\""
	fi
}

# Settings: flag > environment > ports recorded in DIR/stack.env > default.
resolve_settings() {
	DIR="${OPT_DIR:-${LEDGERQ_STACK_DIR:-$DEFAULT_DIR}}"
	[[ "$DIR" == /* ]] || DIR="$PWD/$DIR"
	DIR="${DIR%/}"
	[[ -n "$DIR" && "$DIR" != "/" ]] || die "refusing to use \"/\" as the stack dir"

	local rec_amqp="" rec_pg=""
	if [[ -f "$DIR/stack.env" ]]; then
		rec_amqp="$(sed -n 's/^AMQP_PORT=//p' "$DIR/stack.env")"
		rec_pg="$(sed -n 's/^PG_PORT=//p' "$DIR/stack.env")"
	fi
	AMQP_PORT="${OPT_AMQP:-${LEDGERQ_STACK_AMQP_PORT:-${rec_amqp:-$DEFAULT_AMQP_PORT}}}"
	PG_PORT="${OPT_PG:-${LEDGERQ_STACK_PG_PORT:-${rec_pg:-$DEFAULT_PG_PORT}}}"
	check_port "the AMQP port" "$AMQP_PORT" 65522
	check_port "the PostgreSQL port" "$PG_PORT"
	if ((PG_PORT >= AMQP_PORT && PG_PORT <= AMQP_PORT + 13)); then
		die "the PostgreSQL port $PG_PORT falls in the RabbitMQ range $AMQP_PORT..$((AMQP_PORT + 13))"
	fi
	DIST_PORT=$((AMQP_PORT + 1))
	EPMD_PORT=$((AMQP_PORT + 2))
	CTL_PORT_MIN=$((AMQP_PORT + 3))
	CTL_PORT_MAX=$((AMQP_PORT + 12))
	AMQPS_PORT=$((AMQP_PORT + 13))

	TLS_DIR="$DIR/tls"
	TLS_CA="$TLS_DIR/ca.pem"
	TLS_WRONG_CA="$TLS_DIR/wrong-ca.pem"
	TLS_SERVER_CERT="$TLS_DIR/server.pem"
	TLS_RMQ_KEY="$TLS_DIR/rabbitmq-server.key" # the server key, owned by each service's user
	TLS_PG_KEY="$TLS_DIR/postgres-server.key"
	TLS_CLIENT_CERT="$TLS_DIR/client.pem"
	TLS_CLIENT_KEY="$TLS_DIR/client.key"

	RMQ_DIR="$DIR/rabbitmq"
	RMQ_NODE="ledgerq-$AMQP_PORT@localhost"
	RMQ_PID_FILE="$RMQ_DIR/pid"              # the Erlang VM (beam.smp), written by the node
	RMQ_LAUNCHER_PID_FILE="$RMQ_DIR/launcher.pid" # the rabbitmq-server shell wrapper
	RMQ_RUNNER_PID_FILE="$RMQ_DIR/runner.pid"     # what this script forked to run it
	EPMD_PID_FILE="$RMQ_DIR/epmd.pid"
	RMQ_LOG="$RMQ_DIR/server.log"
	RMQ_BIN="/usr/lib/rabbitmq/bin"

	PG_DIR="$DIR/pg"
	PG_DATA="$PG_DIR/data"
	PG_LOG="$PG_DIR/log"
	PG_PID_FILE="$PG_DATA/postmaster.pid"
	PG_BIN=""
	local d
	# The highest installed major version.
	while IFS= read -r d; do
		if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then PG_BIN="$d"; fi
	done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)

	if ((EUID == 0)); then
		PG_USER=postgres
		RMQ_USER=rabbitmq
	else
		PG_USER="$(id -un)"
		RMQ_USER="$(id -un)"
	fi
}

need_pg_bin() {
	[[ -n "$PG_BIN" ]] || die "no PostgreSQL server found in /usr/lib/postgresql/*/bin (run: $PROG install-deps)"
}

need_rmq_bin() {
	[[ -x "$RMQ_BIN/rabbitmq-server" ]] ||
		die "no RabbitMQ server found in $RMQ_BIN (run: $PROG install-deps)"
	command -v epmd >/dev/null || die "epmd not found (run: $PROG install-deps)"
}

# ---------------------------------------------------------------- helpers

# Run a command as a service user (root) or as ourselves, with a clean
# environment so that no PG*, RABBITMQ_* or ERL_* variable of the caller leaks in.
# The working directory is the stack dir: the service users cannot enter /root.
as_user() {
	local user="$1"
	shift
	if ((EUID == 0)); then
		(cd "$DIR" && runuser -u "$user" -- env -i PATH="$SYS_PATH" LANG=C.UTF-8 LC_ALL=C.UTF-8 "$@")
	else
		(cd "$DIR" && env -i PATH="$SYS_PATH" HOME="${HOME:-/tmp}" LANG=C.UTF-8 LC_ALL=C.UTF-8 "$@")
	fi
}

rmq_env() {
	RMQ_ENV=(
		HOME="$RMQ_DIR"
		RABBITMQ_NODENAME="$RMQ_NODE"
		RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
		RABBITMQ_NODE_PORT="$AMQP_PORT"
		RABBITMQ_DIST_PORT="$DIST_PORT"
		ERL_EPMD_PORT="$EPMD_PORT"
		ERL_EPMD_ADDRESS=127.0.0.1
		RABBITMQ_CTL_DIST_PORT_MIN="$CTL_PORT_MIN"
		RABBITMQ_CTL_DIST_PORT_MAX="$CTL_PORT_MAX"
		RABBITMQ_CTL_ERL_ARGS="-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}"
		# +sbwt none...: Erlang schedulers do not spin waiting for work. Spinning
		# takes CPU from PostgreSQL and the workers on the same cores (RabbitMQ's
		# advice for shared hosts and containers).
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-start_epmd false -kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none"
		RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
		RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf"
		RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"
		RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
		RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
		RABBITMQ_LOG_BASE="$RMQ_DIR/log"
		RABBITMQ_PID_FILE="$RMQ_PID_FILE"
	)
}

rmqctl() {
	rmq_env
	as_user "$RMQ_USER" "${RMQ_ENV[@]}" "$RMQ_BIN/rabbitmqctl" -n "$RMQ_NODE" "$@"
}

# pid_alive FILE PATTERN...: print the pid in FILE (first line) if it is a live
# process whose command line contains every PATTERN. Guards against a recycled
# pid and against another stack's or the system's processes.
pid_alive() {
	local file="$1" pid cmdline pattern
	shift
	[[ -s "$file" ]] || return 1
	pid="$(head -n1 "$file" | tr -dc 0-9)"
	[[ -n "$pid" ]] || return 1
	[[ -r "/proc/$pid/cmdline" ]] || return 1
	cmdline="$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)" || return 1
	for pattern in "$@"; do
		[[ "$cmdline" == *"$pattern"* ]] || return 1
	done
	printf '%s\n' "$pid"
}

port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_gone PID SECONDS: wait until PID exits; 0 if it did.
wait_gone() {
	local pid="$1" tries=$(($2 * 10))
	while kill -0 "$pid" 2>/dev/null && ((tries-- > 0)); do
		sleep 0.1
	done
	! kill -0 "$pid" 2>/dev/null
}

# terminate PID NAME SECONDS: SIGTERM, wait, then SIGKILL.
terminate() {
	local pid="$1" name="$2" secs="$3"
	kill -TERM "$pid" 2>/dev/null || return 0
	if ! wait_gone "$pid" "$secs"; then
		log "$name (pid $pid) still running after ${secs}s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		wait_gone "$pid" 10 || die "$name (pid $pid) survives SIGKILL"
	fi
}

record_settings() {
	mkdir -p "$DIR"
	chmod 755 "$DIR"
	printf 'AMQP_PORT=%s\nPG_PORT=%s\n' "$AMQP_PORT" "$PG_PORT" >"$DIR/stack.env.tmp"
	mv -f "$DIR/stack.env.tmp" "$DIR/stack.env"
}

check_traversable() {
	((EUID == 0)) || return 0
	local user
	for user in "$@"; do
		runuser -u "$user" -- test -x "$DIR" ||
			die "$DIR is not reachable by the $user user (a parent folder is private?): pick --dir elsewhere, e.g. under /tmp"
	done
}

# ---------------------------------------------------------------- TLS

# The stack's test certificates, made with openssl at the first start in a
# stack dir (into a side folder, moved in place once complete): a private CA;
# a server certificate for the DNS name "localhost" only, with no IP address,
# so that a client that checks host names fails when it connects to
# 127.0.0.1; a client certificate of the same CA; and an unrelated "wrong" CA.
# Throwaway credentials for tests on this machine. Each service has its own
# copy of the server key, 0600 and owned by its user (PostgreSQL insists on
# it); the CA key and the client key are 0600 and belong to whoever started
# the stack, who runs the tests (libpq refuses a client key that others can
# read).
tls_complete() {
	local f
	for f in "$TLS_CA" "$TLS_WRONG_CA" "$TLS_SERVER_CERT" "$TLS_RMQ_KEY" "$TLS_PG_KEY" \
		"$TLS_CLIENT_CERT" "$TLS_CLIENT_KEY"; do
		[[ -s "$f" ]] || return 1
	done
}

tls_make() {
	if ! tls_complete; then
		if [[ ! -d "$TLS_DIR" && (-e "$PG_DATA" || -e "$RMQ_DIR/mnesia") ]]; then
			# Services made before TLS may be running: the whole stack keeps
			# going without TLS rather than halfway with it.
			log "tls: none in this stack dir (made before TLS): start --fresh adds it"
			return 0
		fi
		command -v openssl >/dev/null || die "openssl not found (run: $PROG install-deps)"
		local new="$TLS_DIR.new"
		rm -rf "$new"
		mkdir -p "$new"
		cat >"$new/openssl.cnf" <<'EOF'
# written by deploy/local/stack.sh: the test certificates of a private stack
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
		# EC P-256 keys: quick to make, and both servers take them.
		# shellcheck disable=SC2016 # expands in the inner shell
		if ! (cd "$new" && umask 077 && bash -euc '
			key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
			days=3650
			openssl req -x509 -config openssl.cnf -extensions ca_ext "${key[@]}" -days "$days" \
				-subj "/O=ledgerq test stack/CN=ledgerq test CA" -keyout ca.key -out ca.pem
			openssl req -x509 -config openssl.cnf -extensions ca_ext "${key[@]}" -days "$days" \
				-subj "/O=ledgerq test stack/CN=ledgerq wrong CA" -keyout wrong-ca.key -out wrong-ca.pem
			for who in server client; do
				if [[ $who == server ]]; then cn=localhost; else cn=ledgerq-test-client; fi
				openssl req -new -config openssl.cnf "${key[@]}" \
					-subj "/O=ledgerq test stack/CN=$cn" -keyout "$who.key" -out "$who.csr"
				openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -days "$days" \
					-set_serial "0x$(openssl rand -hex 16)" -extfile openssl.cnf \
					-extensions "${who}_ext" -out "$who.pem"
			done
			openssl verify -CAfile ca.pem server.pem client.pem
			cp server.key rabbitmq-server.key
			mv server.key postgres-server.key
			rm -f server.csr client.csr wrong-ca.key
		') >"$new/openssl.log" 2>&1; then
			tail -n 20 "$new/openssl.log" >&2
			die "could not make the TLS certificates (log: $new/openssl.log)"
		fi
		rm -f "$new/openssl.log"
		rm -rf "$TLS_DIR"
		mv "$new" "$TLS_DIR"
		log "tls: test certificates made in $TLS_DIR"
	fi
	# At each start: the owners and modes the services need.
	chmod 755 "$TLS_DIR"
	chmod 644 "$TLS_CA" "$TLS_WRONG_CA" "$TLS_SERVER_CERT" "$TLS_CLIENT_CERT"
	chmod 600 "$TLS_RMQ_KEY" "$TLS_PG_KEY" "$TLS_CLIENT_KEY"
	if ((EUID == 0)); then
		if id "$RMQ_USER" >/dev/null 2>&1; then chown "$RMQ_USER:" "$TLS_RMQ_KEY"; fi
		if id "$PG_USER" >/dev/null 2>&1; then chown "$PG_USER:" "$TLS_PG_KEY"; fi
	fi
}

# ---------------------------------------------------------------- PostgreSQL

pg_pid() { pid_alive "$PG_PID_FILE" "postgres" "$PG_DATA"; }

pg_start() {
	need_pg_bin
	id "$PG_USER" >/dev/null 2>&1 || die "no \"$PG_USER\" user (is postgresql installed? run: $PROG install-deps)"
	mkdir -p "$PG_DIR"
	chmod 755 "$PG_DIR"
	if ((EUID == 0)); then chown "$PG_USER:" "$PG_DIR"; fi
	check_traversable "$PG_USER"

	local pid
	if pid="$(pg_pid)"; then
		local running_port
		running_port="$(sed -n 4p "$PG_PID_FILE")"
		[[ "$running_port" == "$PG_PORT" ]] ||
			die "PostgreSQL in $PG_DATA already runs on port $running_port, not $PG_PORT: stop it first"
		log "postgresql: already running (pid $pid, port $PG_PORT)"
	else
		if port_open "$PG_PORT"; then
			die "port $PG_PORT on 127.0.0.1 is taken by another program: choose --pg-port"
		fi
		if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
			# Into a side folder, moved in place once complete: a start cut
			# short never leaves a half-made cluster that a later start
			# would take for ours.
			log "postgresql: initdb $PG_DATA"
			rm -rf "$PG_DATA" "$PG_DATA.new"
			as_user "$PG_USER" "$PG_BIN/initdb" -D "$PG_DATA.new" --username=ledgerq --auth=trust \
				-E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 ||
				{
					tail -n 20 "$PG_DIR/initdb.log" >&2
					die "initdb failed (log: $PG_DIR/initdb.log)"
				}
			echo "include = 'ledgerq.conf'" >>"$PG_DATA.new/postgresql.conf"
			mv "$PG_DATA.new" "$PG_DATA"
		fi
		grep -qx "include = 'ledgerq.conf'" "$PG_DATA/postgresql.conf" ||
			echo "include = 'ledgerq.conf'" >>"$PG_DATA/postgresql.conf"
		# Rewritten at every start: the port may differ from the last run.
		# Durability stays on (fsync, synchronous_commit, full_page_writes):
		# this is a payments ledger and the fault tests rely on it.
		cat >"$PG_DATA/ledgerq.conf.new" <<EOF
# written by deploy/local/stack.sh at each start
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 200
shared_buffers = 256MB
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
EOF
		if tls_complete; then
			# TLS for whoever asks (sslmode=require, verify-full, or libpq's
			# default "prefer"); pg_hba.conf's host lines take both kinds.
			cat >>"$PG_DATA/ledgerq.conf.new" <<EOF
ssl = on
ssl_cert_file = '$TLS_SERVER_CERT'
ssl_key_file = '$TLS_PG_KEY'
ssl_ca_file = '$TLS_CA'
ssl_min_protocol_version = 'TLSv1.2'
EOF
		fi
		if ((EUID == 0)); then chown "$PG_USER:" "$PG_DATA/ledgerq.conf.new"; fi
		mv -f "$PG_DATA/ledgerq.conf.new" "$PG_DATA/ledgerq.conf"
		[[ -e "$PG_LOG" ]] || : >"$PG_LOG"
		if ((EUID == 0)); then chown "$PG_USER:" "$PG_LOG"; fi

		log "postgresql: starting on 127.0.0.1:$PG_PORT"
		# After a SIGKILL of the postmaster its backends may hold the shared
		# memory for a moment: retry a few times.
		local attempt ok=0
		for attempt in 1 2 3 4 5; do
			if as_user "$PG_USER" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null; then
				ok=1
				break
			fi
			sleep "$attempt"
		done
		if ((!ok)); then
			tail -n 20 "$PG_LOG" >&2
			die "postgresql did not start (log: $PG_LOG)"
		fi
	fi

	local have
	have="$("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U ledgerq -d postgres -XtAq \
		-c "SELECT 1 FROM pg_database WHERE datname = 'ledgerq'")" ||
		die "cannot query postgresql on 127.0.0.1:$PG_PORT"
	if [[ "$have" != 1 ]]; then
		"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U ledgerq ledgerq
		log "postgresql: created database ledgerq"
	fi
	log "postgresql: up (pid $(pg_pid), port $PG_PORT)"
}

# A postmaster of this data dir that no postmaster.pid names (a start cut
# short before the server wrote it).
pg_strays() {
	local p cmdline
	for p in $(pgrep -x postgres || true); do
		cmdline="$({ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null)" || continue
		if [[ "$cmdline" == *"postgres -D $PG_DATA "* ]]; then echo "$p"; fi
	done
}

pg_stop() {
	local pid
	if ! pid="$(pg_pid)"; then
		for pid in $(pg_strays); do
			log "postgresql: fast shutdown of a postmaster without pid file (pid $pid)"
			kill -INT "$pid" 2>/dev/null || true
			wait_gone "$pid" 60 || terminate "$pid" postgres 10
		done
		log "postgresql: not running"
		return 0
	fi
	need_pg_bin
	log "postgresql: stopping (pid $pid)"
	as_user "$PG_USER" "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null ||
		terminate "$pid" postgres 30
	wait_gone "$pid" 30 || terminate "$pid" postgres 10
	log "postgresql: stopped"
}

pg_kill() {
	local pid children
	if ! pid="$(pg_pid)"; then
		log "postgresql: not running"
		return 0
	fi
	children="$(pgrep -P "$pid" || true)"
	log "postgresql: SIGKILL postmaster (pid $pid)"
	kill -KILL "$pid"
	wait_gone "$pid" 10 || die "postmaster $pid survives SIGKILL"
	# Its backends notice the postmaster's death and exit by themselves.
	local c
	for c in $children; do
		wait_gone "$c" 10 || kill -KILL "$c" 2>/dev/null || true
	done
}

pg_status() {
	local pid
	if pid="$(pg_pid)" && port_open "$PG_PORT"; then
		echo "postgresql: up (pid $pid, 127.0.0.1:$PG_PORT, data $PG_DATA)"
		return 0
	elif [[ -n "${pid:-}" ]]; then
		echo "postgresql: starting or stuck (pid $pid, port $PG_PORT not accepting)"
	else
		echo "postgresql: down"
	fi
	return 1
}

# ---------------------------------------------------------------- RabbitMQ

rmq_pid() { pid_alive "$RMQ_PID_FILE" "beam" "-home $RMQ_DIR "; }
rmq_launcher_pid() { pid_alive "$RMQ_LAUNCHER_PID_FILE" "rabbitmq-server"; }
rmq_runner_pid() { pid_alive "$RMQ_RUNNER_PID_FILE" "$RMQ_LAUNCHER_PID_FILE"; }

# environ_has PID NAME=VALUE...: the process's environment holds each of them.
environ_has() {
	local pid="$1" environ kv
	shift
	environ="$({ tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null)" || return 1
	environ=$'\n'"$environ"$'\n'
	for kv in "$@"; do
		[[ "$environ" == *$'\n'"$kv"$'\n'* ]] || return 1
	done
}

# Processes named NAME that run with this stack's RabbitMQ environment: ours,
# even when no pid file names them (a start cut short, an epmd that an Erlang
# VM spawned by itself).
rmq_strays() {
	local p
	for p in $(pgrep -x "$1" || true); do
		if environ_has "$p" "HOME=$RMQ_DIR" "ERL_EPMD_PORT=$EPMD_PORT"; then echo "$p"; fi
	done
}
epmd_pid() { pid_alive "$EPMD_PID_FILE" "epmd -port $EPMD_PORT "; }

# Whether the broker gets a TLS listener: the certificates are there, and
# their paths fit rabbitmq.conf (no white space).
rmq_tls() {
	tls_complete || return 1
	if [[ "$TLS_DIR" =~ [[:space:]] ]]; then
		log "rabbitmq: no TLS listener: rabbitmq.conf cannot name files under \"$TLS_DIR\" (white space)"
		return 1
	fi
}

rmq_write_config() {
	mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
	: >"$RMQ_DIR/rabbitmq-env.conf"
	echo '[].' >"$RMQ_DIR/enabled_plugins"
	cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
# written by deploy/local/stack.sh at each start
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
loopback_users = none
default_vhost = /
default_user = guest
default_pass = guest
log.console = false
log.file.level = info
EOF
	if rmq_tls; then
		cat >>"$RMQ_DIR/rabbitmq.conf" <<EOF
listeners.ssl.default = 127.0.0.1:$AMQPS_PORT
ssl_options.cacertfile = $TLS_CA
ssl_options.certfile = $TLS_SERVER_CERT
ssl_options.keyfile = $TLS_RMQ_KEY
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
EOF
	fi
	if [[ ! -s "$RMQ_DIR/.erlang.cookie" ]]; then
		local cookie
		# (tr dies of SIGPIPE once head has enough: not an error)
		cookie="$(LC_ALL=C tr -dc '[:upper:]' </dev/urandom | head -c 32 || true)"
		(umask 077 && printf '%s' "$cookie" >"$RMQ_DIR/.erlang.cookie")
	fi
	if ((EUID == 0)); then chown -R "$RMQ_USER:" "$RMQ_DIR"; fi
	chmod 400 "$RMQ_DIR/.erlang.cookie"
}

rmq_start() {
	need_rmq_bin
	id "$RMQ_USER" >/dev/null 2>&1 || die "no \"$RMQ_USER\" user (is rabbitmq-server installed? run: $PROG install-deps)"
	mkdir -p "$RMQ_DIR"
	chmod 755 "$RMQ_DIR"
	check_traversable "$RMQ_USER"

	local pid
	if pid="$(rmq_pid)"; then
		port_open "$AMQP_PORT" ||
			die "rabbitmq (pid $pid) runs in $RMQ_DIR but 127.0.0.1:$AMQP_PORT does not accept connections: stop it first"
		log "rabbitmq: already running (pid $pid, port $AMQP_PORT)"
		return 0
	fi
	local p tls_ports=()
	if rmq_tls 2>/dev/null; then tls_ports=("$AMQPS_PORT"); fi
	for p in "$AMQP_PORT" "$DIST_PORT" "${tls_ports[@]}"; do
		if port_open "$p"; then
			die "port $p on 127.0.0.1 is taken by another program: choose --amqp-port"
		fi
	done

	rmq_write_config
	rmq_env

	# A private epmd, so the node names and ports never meet the system's.
	if ! epmd_pid >/dev/null; then
		port_open "$EPMD_PORT" && die "port $EPMD_PORT (epmd) on 127.0.0.1 is taken by another program: choose --amqp-port"
		rm -f "$EPMD_PID_FILE"
		# shellcheck disable=SC2016 # $$ expands in the inner shell
		as_user "$RMQ_USER" setsid sh -c 'echo $$ >"$0"; exec epmd -port "$1" -address 127.0.0.1' \
			"$EPMD_PID_FILE" "$EPMD_PORT" >>"$RMQ_DIR/epmd.log" 2>&1 </dev/null &
		local tries=50
		until port_open "$EPMD_PORT"; do
			((tries-- > 0)) || die "epmd did not start on port $EPMD_PORT (log: $RMQ_DIR/epmd.log)"
			sleep 0.1
		done
	fi

	log "rabbitmq: starting node $RMQ_NODE on 127.0.0.1:$AMQP_PORT"
	rm -f "$RMQ_PID_FILE" "$RMQ_LAUNCHER_PID_FILE" "$RMQ_RUNNER_PID_FILE"
	# rabbitmq-server stays in the foreground (a shell that waits for the
	# Erlang VM and turns SIGTERM into a clean stop): run it in the background,
	# in its own session so a Ctrl-C in the caller's terminal does not reach it.
	# shellcheck disable=SC2016 # $$ expands in the inner shell
	(
		cd "$RMQ_DIR"
		if ((EUID == 0)); then
			exec nohup setsid runuser -u "$RMQ_USER" -- env -i PATH="$SYS_PATH" LANG=C.UTF-8 LC_ALL=C.UTF-8 \
				"${RMQ_ENV[@]}" sh -c 'echo $$ >"$0"; exec "$1"' "$RMQ_LAUNCHER_PID_FILE" "$RMQ_BIN/rabbitmq-server"
		else
			exec nohup setsid env -i PATH="$SYS_PATH" LANG=C.UTF-8 LC_ALL=C.UTF-8 \
				"${RMQ_ENV[@]}" sh -c 'echo $$ >"$0"; exec "$1"' "$RMQ_LAUNCHER_PID_FILE" "$RMQ_BIN/rabbitmq-server"
		fi
	) >>"$RMQ_LOG" 2>&1 </dev/null &
	echo "$!" >"$RMQ_RUNNER_PID_FILE"

	# Up = the node answers await_startup and the AMQP port accepts.
	local deadline=$((SECONDS + 90))
	while :; do
		if ((SECONDS >= deadline)); then
			tail -n 30 "$RMQ_LOG" >&2 || true
			die "rabbitmq did not start within 90s (logs: $RMQ_LOG, $RMQ_DIR/log)"
		fi
		if [[ -s "$RMQ_LAUNCHER_PID_FILE" ]] && ! rmq_launcher_pid >/dev/null && ! rmq_pid >/dev/null; then
			tail -n 30 "$RMQ_LOG" >&2 || true
			die "rabbitmq exited during start (logs: $RMQ_LOG, $RMQ_DIR/log)"
		fi
		if rmq_pid >/dev/null && port_open "$AMQP_PORT" &&
			{ ((${#tls_ports[@]} == 0)) || port_open "$AMQPS_PORT"; } &&
			rmqctl -q await_startup --timeout 30 >/dev/null 2>&1; then
			break
		fi
		sleep 0.5
	done
	if ((${#tls_ports[@]})); then
		log "rabbitmq: up (pid $(rmq_pid), port $AMQP_PORT, TLS port $AMQPS_PORT)"
	else
		log "rabbitmq: up (pid $(rmq_pid), port $AMQP_PORT)"
	fi
}

rmq_stop() {
	# The node (it handles SIGTERM as a clean shutdown, as rabbitmqctl stop
	# does), the rabbitmq-server wrapper (it passes SIGTERM on to the node) and
	# the runuser above it; any of them may be missing after a start cut short.
	local pids=() pid
	pid="$(rmq_pid)" && pids+=("$pid")
	pid="$(rmq_launcher_pid)" && pids+=("$pid")
	pid="$(rmq_runner_pid)" && pids+=("$pid")
	for pid in $(rmq_strays beam.smp); do
		[[ " ${pids[*]} " == *" $pid "* ]] || pids+=("$pid")
	done
	if ((${#pids[@]} == 0)); then
		log "rabbitmq: not running"
	else
		log "rabbitmq: stopping (pids ${pids[*]})"
		kill -TERM "${pids[@]}" 2>/dev/null || true
		local tries=600 alive
		while :; do
			alive=()
			for pid in "${pids[@]}"; do
				if kill -0 "$pid" 2>/dev/null; then alive+=("$pid"); fi
			done
			((${#alive[@]} && tries-- > 0)) || break
			sleep 0.1
		done
		if ((${#alive[@]})); then
			log "rabbitmq: still running after 60s: SIGKILL ${alive[*]}"
			kill -KILL "${alive[@]}" 2>/dev/null || true
			for pid in "${alive[@]}"; do wait_gone "$pid" 10 || true; done
		fi
		log "rabbitmq: stopped"
	fi
	rm -f "$RMQ_PID_FILE" "$RMQ_LAUNCHER_PID_FILE" "$RMQ_RUNNER_PID_FILE"
	epmd_stop
}

epmd_stop() {
	local pid
	if pid="$(epmd_pid)"; then
		as_user "$RMQ_USER" ERL_EPMD_PORT="$EPMD_PORT" epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
		wait_gone "$pid" 5 || terminate "$pid" epmd 5
		log "rabbitmq: private epmd (port $EPMD_PORT) stopped"
	fi
	rm -f "$EPMD_PID_FILE"
	# An Erlang VM started with this stack's environment spawns an
	# `epmd -daemon` of its own when ours is not running (rabbitmqctl does so
	# even with -start_epmd false). Such an epmd is ours by its environment.
	local p
	for p in $(rmq_strays epmd); do
		log "rabbitmq: stopping a stray epmd of this stack (pid $p)"
		terminate "$p" epmd 5
	done
}

rmq_kill() {
	local pid lpid
	if ! pid="$(rmq_pid)"; then
		log "rabbitmq: not running"
		return 0
	fi
	lpid="$(rmq_launcher_pid || true)"
	log "rabbitmq: SIGKILL the node (pid $pid)"
	kill -KILL "$pid"
	wait_gone "$pid" 10 || die "rabbitmq node $pid survives SIGKILL"
	[[ -z "$lpid" ]] || wait_gone "$lpid" 10 || true
}

rmq_status() {
	local pid
	if pid="$(rmq_pid)" && port_open "$AMQP_PORT"; then
		echo "rabbitmq: up (pid $pid, node $RMQ_NODE, 127.0.0.1:$AMQP_PORT)"
		return 0
	elif [[ -n "${pid:-}" ]]; then
		echo "rabbitmq: starting or stuck (pid $pid, port $AMQP_PORT not accepting)"
	else
		echo "rabbitmq: down"
	fi
	return 1
}

# ---------------------------------------------------------------- commands

# What runs in DIR, whatever ports the caller named.
stop_all() {
	if [[ "${SERVICE:-}" != pg ]]; then rmq_stop; fi
	if [[ "${SERVICE:-}" != amqp ]]; then pg_stop; fi
}

# Only a stack dir (or an empty one) is ever wiped, never an unrelated folder.
check_wipeable() {
	[[ -d "$DIR" ]] || return 0
	local entry
	for entry in "$DIR"/* "$DIR"/.[!.]*; do
		[[ -e "$entry" ]] || continue
		case "${entry##*/}" in
		pg | rabbitmq | tls | tls.new | stack.env | stack.env.tmp) ;;
		*) die "$DIR holds \"${entry##*/}\", which is not part of a stack: refusing to wipe it" ;;
		esac
	done
}

wipe_dir() {
	[[ -d "$DIR" ]] || return 0
	check_wipeable
	log "wiping $DIR"
	rm -rf "$DIR"
}

cmd_start() {
	if ((FRESH)); then
		[[ -z "$SERVICE" ]] || die "--fresh wipes the whole stack: use it without a service"
		check_wipeable
		stop_all
		wipe_dir
	fi
	record_settings
	local t0=$SECONDS
	tls_make
	case "$SERVICE" in
	pg) pg_start ;;
	amqp) rmq_start ;;
	*)
		pg_start
		rmq_start
		;;
	esac
	log "stack in $DIR ready in $((SECONDS - t0))s"
}

cmd_status() {
	echo "stack dir: $DIR"
	local rc=0
	pg_status || rc=3
	rmq_status || rc=3
	return "$rc"
}

# q VALUE: VALUE quoted for the shell.
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

cmd_env() {
	local self
	self="$SCRIPT_PATH --dir $DIR"
	cat <<EOF
# ledgerq private stack in $DIR (eval "\$($PROG env --dir DIR)")
export LEDGERQ_STACK_DIR=$(q "$DIR")
export LEDGERQ_AMQP_URL='amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f'
export LEDGERQ_DATABASE_URL='postgresql://ledgerq@127.0.0.1:$PG_PORT/ledgerq'
export LEDGERQ_STACK_SCRIPT=$(q "$SCRIPT_PATH")
# command prefixes (use unquoted, e.g. \$LEDGERQ_RABBITMQCTL list_queues)
export LEDGERQ_RABBITMQCTL=$(q "$self ctl")
export LEDGERQ_PSQL=$(q "$self psql")
# fault tests: \$LEDGERQ_STACK_SCRIPT --dir "\$LEDGERQ_STACK_DIR" stop|start|kill amqp|pg
export LEDGERQ_STACK_RABBITMQ_NODE=$(q "$RMQ_NODE")
export LEDGERQ_STACK_RABBITMQ_PID_FILE=$(q "$RMQ_PID_FILE")
export LEDGERQ_STACK_RABBITMQ_LOG_DIR=$(q "$RMQ_DIR/log")
export LEDGERQ_STACK_EPMD_PORT=$EPMD_PORT
export LEDGERQ_STACK_EPMD_PID_FILE=$(q "$EPMD_PID_FILE")
export LEDGERQ_STACK_PG_PID_FILE=$(q "$PG_PID_FILE")
export LEDGERQ_STACK_PG_DATA=$(q "$PG_DATA")
export LEDGERQ_STACK_PG_LOG=$(q "$PG_LOG")
export LEDGERQ_STACK_PG_BIN=$(q "$PG_BIN")
EOF
	if tls_complete; then
		cat <<EOF
# TLS: amqps:// (host name localhost: the certificate names no IP address) and
# PostgreSQL with ssl = on; test certificates of a private CA in the TLS dir
export LEDGERQ_STACK_AMQPS_PORT=$AMQPS_PORT
export LEDGERQ_STACK_AMQPS_URL='amqps://guest:guest@localhost:$AMQPS_PORT/%2f'
export LEDGERQ_STACK_TLS_DIR=$(q "$TLS_DIR")
export LEDGERQ_STACK_TLS_CA_FILE=$(q "$TLS_CA")
export LEDGERQ_STACK_TLS_WRONG_CA_FILE=$(q "$TLS_WRONG_CA")
export LEDGERQ_STACK_TLS_CLIENT_CERT_FILE=$(q "$TLS_CLIENT_CERT")
export LEDGERQ_STACK_TLS_CLIENT_KEY_FILE=$(q "$TLS_CLIENT_KEY")
EOF
	else
		echo "# no TLS certificates in $DIR/tls (a stack dir from before TLS: start --fresh makes them)"
	fi
}

cmd_ctl() {
	need_rmq_bin
	[[ -d "$RMQ_DIR" ]] || die "no stack in $DIR"
	# Without our epmd, rabbitmqctl would start a stray one of its own.
	epmd_pid >/dev/null || die "rabbitmq is not running in $DIR (no epmd on port $EPMD_PORT)"
	rmqctl "${PASSTHRU[@]}"
}

cmd_psql() {
	need_pg_bin
	exec "$PG_BIN/psql" "postgresql://ledgerq@127.0.0.1:$PG_PORT/ledgerq" "${PASSTHRU[@]}"
}

# ---------------------------------------------------------------- install-deps

cmd_install_deps() {
	if [[ ! -f /etc/debian_version ]] || ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
		die "install-deps supports Debian (12) with apt only; install these packages by hand: ${DEPS[*]}"
	fi
	local missing=() pkg
	for pkg in "${DEPS[@]}"; do
		if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != installed ]]; then
			missing+=("$pkg")
		fi
	done
	if ((${#missing[@]} == 0)); then
		log "all packages present"
		return 0
	fi
	((EUID == 0)) || die "installing ${missing[*]} needs root (run with sudo)"
	log "installing: ${missing[*]}"

	# Installing postgresql or rabbitmq-server must not start the system's
	# services: a policy-rc.d that denies every start, put back afterwards.
	local policy=/usr/sbin/policy-rc.d backup=""
	if [[ -e "$policy" ]]; then
		backup="$(mktemp /usr/sbin/policy-rc.d.ledgerq.XXXXXX)"
		cp -p "$policy" "$backup"
	fi
	# shellcheck disable=SC2064 # expand now: the paths are fixed
	trap "restore_policy '$policy' '$backup'" EXIT
	printf '#!/bin/sh\n# temporary, deploy/local/stack.sh install-deps\nexit 101\n' >"$policy"
	chmod 755 "$policy"

	export DEBIAN_FRONTEND=noninteractive
	local apt_opts=(-y -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=600
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
	apt-get -q -o DPkg::Lock::Timeout=600 update
	apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}"

	restore_policy "$policy" "$backup"
	trap - EXIT
	log "installed: ${missing[*]}"
}

restore_policy() {
	local policy="$1" backup="$2"
	if [[ -n "$backup" && -e "$backup" ]]; then
		mv -f "$backup" "$policy"
	elif [[ -z "$backup" ]]; then
		rm -f "$policy"
	fi
}

# ---------------------------------------------------------------- main

main() {
	parse_args "$@"
	case "$CMD" in
	help)
		usage
		return 0
		;;
	"")
		usage >&2
		exit 2
		;;
	install-deps)
		cmd_install_deps
		return
		;;
	esac
	resolve_settings
	case "$CMD" in
	start) cmd_start ;;
	stop) stop_all ;;
	kill)
		case "$SERVICE" in
		amqp) rmq_kill ;;
		pg) pg_kill ;;
		*) die "kill needs a service: amqp or pg" ;;
		esac
		;;
	status) cmd_status ;;
	env) cmd_env ;;
	ctl) cmd_ctl ;;
	psql) cmd_psql ;;
	*)
		printf '%s: unknown command "%s"\n' "$PROG" "$CMD" >&2
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
