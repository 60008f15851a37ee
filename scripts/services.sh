#!/usr/bin/env bash
# Start the Redis and PostgreSQL that the memory tests run against (`make services`).
#
# Idempotent and quiet on success. On a fresh Debian machine as root it installs
# redis-server if missing, starts Redis on 127.0.0.1:6379 and the PostgreSQL cluster
# on port 5432, and creates role/database `bastion` (password `bastion`). Where it
# cannot (not root, no apt, no PostgreSQL), it warns and exits 0: the tests that need
# a service then skip, except under CI=true, where they fail instead.
set -u

REDIS_HOST=127.0.0.1
REDIS_PORT=6379
PG_HOST=127.0.0.1
PG_PORT=5432
WAIT_SECONDS=30 # bound on waiting for each service to answer after starting it

warn() { echo "services.sh: warning: $*" >&2; }

is_root() { [ "$(id -u)" -eq 0 ]; }

redis_up() {
	if command -v redis-cli >/dev/null 2>&1; then
		[ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
		return
	fi
	# No client installed (Redis runs elsewhere): speak RESP over bash's /dev/tcp, in a
	# subshell so that the descriptor and a "connection refused" message stay in it.
	(
		exec 3<>"/dev/tcp/$REDIS_HOST/$REDIS_PORT" || exit 1
		printf 'PING\r\n' >&3
		reply=""
		read -r -t 2 reply <&3 || true
		[ "${reply%$'\r'}" = "+PONG" ]
	) 2>/dev/null
}

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" >/dev/null 2>&1; }

# wait_for NAME CHECK: poll CHECK every 0.2 s for at most WAIT_SECONDS.
wait_for() {
	local name=$1 check=$2 tries=$((WAIT_SECONDS * 5))
	while ! "$check"; do
		tries=$((tries - 1))
		if [ "$tries" -le 0 ]; then
			warn "$name did not answer within ${WAIT_SECONDS}s"
			return 1
		fi
		sleep 0.2
	done
}

start_redis() {
	redis_up && return 0
	if ! command -v redis-server >/dev/null 2>&1; then
		if ! is_root || ! command -v apt-get >/dev/null 2>&1; then
			warn "redis-server is not installed and cannot be installed here (needs root and apt)"
			return 1
		fi
		export DEBIAN_FRONTEND=noninteractive
		if ! { apt-get update -qq && apt-get install -y -qq redis-server; } >/dev/null 2>&1; then
			warn "apt-get install redis-server failed"
			return 1
		fi
		redis_up && return 0 # the package may have started its own service
	fi
	# No persistence: test data only, and nothing written to disk in the background.
	redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" \
		--save '' --appendonly no >/dev/null 2>&1 || {
		warn "redis-server failed to start"
		return 1
	}
	wait_for Redis redis_up
}

# From / so psql does not warn that it cannot read the caller's working directory.
as_postgres() (
	cd / || return 1
	if command -v runuser >/dev/null 2>&1; then
		runuser -u postgres -- "$@"
	else
		su postgres -c "$(printf '%q ' "$@")"
	fi
)

start_postgres() {
	if ! pg_up; then
		if ! command -v pg_lsclusters >/dev/null 2>&1; then
			warn "PostgreSQL is not answering on $PG_HOST:$PG_PORT and is not installed here"
			return 1
		fi
		if ! is_root; then
			warn "PostgreSQL is not answering and starting it needs root"
			return 1
		fi
		# The cluster that owns our port, whatever its version (15 on the CI image).
		local version name
		read -r version name < <(pg_lsclusters --no-header | awk -v p="$PG_PORT" '$3 == p {print $1, $2; exit}')
		if [ -z "${version:-}" ]; then
			warn "no PostgreSQL cluster is configured on port $PG_PORT"
			return 1
		fi
		pg_ctlcluster "$version" "$name" start >/dev/null 2>&1 || {
			warn "pg_ctlcluster $version $name start failed"
			return 1
		}
		wait_for PostgreSQL pg_up || return 1
	fi
	is_root || return 0 # already running; the role is someone else's business
	local psql=(psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -tA)
	if [ "$(as_postgres "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'bastion'")" != "1" ]; then
		as_postgres "${psql[@]}" -c "CREATE ROLE bastion LOGIN PASSWORD 'bastion'" >/dev/null ||
			{ warn "could not create role bastion"; return 1; }
	fi
	if [ "$(as_postgres "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'bastion'")" != "1" ]; then
		as_postgres "${psql[@]}" -c "CREATE DATABASE bastion OWNER bastion" >/dev/null ||
			{ warn "could not create database bastion"; return 1; }
	fi
}

# Each service is independent: one failing must not keep the other from starting.
start_redis || true
start_postgres || true
exit 0
