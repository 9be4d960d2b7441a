#!/usr/bin/env bash
# What token checking costs: warm file GET throughput (wrk) of one ~10 KB file from two kiln
# servers over the same kind of course, one open and one that checks a bearer token on every
# request, measured in alternating rounds in one run. Target: with-token / open >= 0.95.
# Needs: cargo, curl, wrk. Knobs: ROUNDS (3), DURATION (10s), CONNECTIONS (64), THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
TARGET=${CARGO_TARGET_DIR:-target}
for tool in curl wrk python3; do
    command -v "$tool" >/dev/null || { echo "bench-auth: $tool is not installed" >&2; exit 1; }
done
cargo build --release -q -p kiln-server --example bench_serve
BIN=$TARGET/release/examples/bench_serve

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TOKEN=kiln_bench_$(python3 -c 'import secrets; print(secrets.token_hex(32))')
OPEN_PORT=$(free_port)
AUTH_PORT=$(free_port)
"$BIN" "$WORK/open" "$OPEN_PORT" >/dev/null & PIDS+=($!)
"$BIN" "$WORK/auth" "$AUTH_PORT" "$TOKEN" >/dev/null & PIDS+=($!)
FILE=questions/topic/q1/file0.html
for port in "$OPEN_PORT" "$AUTH_PORT"; do
    for _ in $(seq 1 300); do
        curl -fs -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/v1/courses/bench/files/$FILE" && break
        sleep 0.1
    done
done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AUTH_PORT/v1/courses/bench/files/$FILE")
[ "$code" = 401 ] || { echo "bench-auth: the token server answered $code without a token" >&2; exit 1; }

rps() { wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$@" | awk '/Requests\/sec/ {print $2}'; }
open_all=(); auth_all=()
for r in $(seq 1 "$ROUNDS"); do
    o=$(rps "http://127.0.0.1:$OPEN_PORT/v1/courses/bench/files/$FILE")
    a=$(rps -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$AUTH_PORT/v1/courses/bench/files/$FILE")
    echo "round $r: open $o req/s, with token $a req/s"
    open_all+=("$o"); auth_all+=("$a")
done
python3 - "${open_all[*]}" "${auth_all[*]}" <<'PY'
import statistics, sys
o = [float(x) for x in sys.argv[1].split()]
a = [float(x) for x in sys.argv[2].split()]
mo, ma = statistics.median(o), statistics.median(a)
print(f"median: open {mo:.0f} req/s, with token {ma:.0f} req/s, ratio {ma/mo:.3f} (target >= 0.95)")
PY
