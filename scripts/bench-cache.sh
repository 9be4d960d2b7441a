#!/usr/bin/env bash
# The render cache through `kiln serve`: PUT and GET of a VALUE-byte entry over KEYS keys with
# wrk (--latency: p99), on the embedded default (SQLite) and on Redis, beside
# `redis-benchmark` SET/GET of the same value size against the same Redis, in one run.
# Target: kiln's GET p99 within 2x of redis-benchmark's GET p99.
# Needs: a release kiln (KILN_BIN, default $CARGO_TARGET_DIR/release/kiln), wrk,
# redis-benchmark, a Redis at REDIS_URL (default redis://127.0.0.1:6379).
# Knobs: VALUE (4096), KEYS (1000), DURATION (10s), CONNECTIONS (64), THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
VALUE=${VALUE:-4096}
KEYS=${KEYS:-1000}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
KILN_BIN=${KILN_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/kiln-target}/release/kiln}
for tool in wrk redis-benchmark curl python3; do
    command -v "$tool" >/dev/null || { echo "bench-cache: $tool is not installed" >&2; exit 1; }
done
[ -x "$KILN_BIN" ] || { echo "bench-cache: no kiln at $KILN_BIN" >&2; exit 1; }
redis_host=$(python3 -c 'import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p.hostname, p.port or 6379)' "$REDIS_URL")
read -r rhost rport <<<"$redis_host"
[ "$(redis-cli -h "$rhost" -p "$rport" ping)" = PONG ] || { echo "bench-cache: no Redis at $REDIS_URL" >&2; exit 1; }

work=$(mktemp -d)
server=""
prefix="kiln-bench-cache-$$"
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
    redis-cli -h "$rhost" -p "$rport" --scan --pattern "$prefix:*" | xargs -r redis-cli -h "$rhost" -p "$rport" unlink >/dev/null || true
    redis-cli -h "$rhost" -p "$rport" --scan --pattern "key:????????????" | xargs -r redis-cli -h "$rhost" -p "$rport" unlink >/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export KILN_QUIET=1

cat >"$work/put.lua" <<LUA
local body = string.rep("x", $VALUE)
local n = 0
request = function()
  n = n + 1
  return wrk.format("PUT", "/v1/cache/pages/k" .. (n % $KEYS), {["content-type"] = "text/html"}, body)
end
LUA
cat >"$work/get.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/cache/pages/k" .. (n % $KEYS))
end
LUA

# "req/s p99-ms" of a wrk run.
wrk_run() {
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$1" "$2" | python3 -c '
import re, sys
t = sys.stdin.read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)
m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", t)
v = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
if errors: sys.exit(f"wrk: {errors.group(1)} non-2xx answers")
print(rps, f"{v:.3f}")'
}

run_backend() {
    local name=$1 cache_toml=$2
    local data="$work/$name"
    mkdir -p "$data"
    cat >"$data/kiln.toml" <<TOML
$cache_toml

[[library]]
name = "pages"
source = { http = "http://127.0.0.1:9/pages" }
renderer = { http = "http://127.0.0.1:9/render" }
max_render_bytes = 1048576
TOML
    "$KILN_BIN" --data-dir "$data/data" --config "$data/kiln.toml" serve --listen 127.0.0.1:0 >"$data/serve.out" 2>"$data/serve.err" &
    server=$!
    local base=""
    for _ in $(seq 1 100); do
        base=$(grep -o 'http://[^ ]*' "$data/serve.out" | head -n1 || true)
        [ -n "$base" ] && break
        sleep 0.1
    done
    [ -n "$base" ] || { echo "bench-cache: kiln serve did not start" >&2; cat "$data/serve.err" >&2; exit 1; }
    read -r put_rps put_p99 < <(wrk_run "$work/put.lua" "$base")
    read -r get_rps get_p99 < <(wrk_run "$work/get.lua" "$base")
    echo "kiln $name: PUT $put_rps req/s p99 $put_p99 ms; GET $get_rps req/s p99 $get_p99 ms"
    eval "${name}_get_p99=$get_p99"
    kill "$server"; wait "$server" 2>/dev/null || true; server=""
}

run_backend sqlite '[cache]
backend = "sqlite"'
run_backend redis "[cache]
backend = \"redis\"
url = \"$REDIS_URL\"
namespace = \"$prefix\""

rb=$(redis-benchmark -h "$rhost" -p "$rport" -t set,get -d "$VALUE" -r "$KEYS" -n 200000 -c "$CONNECTIONS" --threads "$THREADS" --csv)
RB="$rb" python3 - "$sqlite_get_p99" "$redis_get_p99" <<'PY'
import csv, io, os, sys
rows = {r["test"]: r for r in csv.DictReader(io.StringIO(os.environ["RB"]))}
for t in ("SET", "GET"):
    r = rows[t]
    print(f"redis-benchmark {t}: {float(r['rps']):.0f} req/s p99 {float(r['p99_latency_ms']):.3f} ms")
ref = float(rows["GET"]["p99_latency_ms"])
for name, p99 in (("sqlite", sys.argv[1]), ("redis", sys.argv[2])):
    print(f"GET p99 kiln {name} / redis-benchmark: {float(p99) / ref:.2f} (target <= 2)")
PY
