#!/usr/bin/env bash
# Smoke test of examples/kvstore with the real redis-cli: start the local
# 3-node cluster with `go run`, write through one node, read through the
# others, print INFO's raft section, stop it with SIGINT and check that it
# exits cleanly. Needs redis-cli (Debian: apt-get install -y redis-tools)
# and the loopback ports 7001-7003, 6381-6383 and 8081-8083.
set -euo pipefail

cd "$(dirname "$0")/../.."
command -v redis-cli >/dev/null || { echo "smoke.sh: redis-cli not found (apt-get install -y redis-tools)" >&2; exit 1; }

data=$(mktemp -d)
log="$data/kvstore.log"
# A process group of its own, so that SIGINT reaches the server itself
# and not only `go run`.
setsid go run ./examples/kvstore --data "$data/cluster" --log-level warn >"$log" 2>&1 &
pid=$!
cleanup() {
	kill -KILL -- "-$pid" 2>/dev/null || true
	rm -rf "$data"
}
trap cleanup EXIT

fail() {
	echo "smoke.sh: $*" >&2
	echo "--- server output" >&2
	cat "$log" >&2
	exit 1
}

# Wait (go run compiles first) until every node answers and a leader is known.
for _ in $(seq 1 600); do
	if redis-cli -p 6383 INFO raft 2>/dev/null | grep -q '^raft_leader:[1-9]'; then
		break
	fi
	kill -0 "$pid" 2>/dev/null || fail "the server exited"
	sleep 0.2
done
redis-cli -p 6383 INFO raft | grep -q '^raft_leader:[1-9]' || fail "no leader after 120s"

expect() { # expect WANT redis-cli-args...
	local want=$1
	shift
	local got
	got=$(redis-cli "$@")
	[ "$got" = "$want" ] || fail "redis-cli $*: got '$got', want '$want'"
	echo "redis-cli $* -> $got"
}

expect OK -p 6381 SET smoke hello
expect hello -p 6382 GET smoke
expect hello -p 6383 GET smoke
expect 1 -p 6382 INCR smoke-counter
expect 2 -p 6383 INCR smoke-counter
expect PONG -p 6381 PING
redis-cli -p 6381 INFO raft | tr -d '\r' | grep '^raft_'

kill -INT -- "-$pid"
# `go run` itself exits 1 when interrupted, whatever the program did, so
# the program's own report is what is checked.
wait "$pid" || true
grep -q '^stopped cleanly' "$log" || fail "no clean stop"
echo "smoke.sh: OK"
