#!/usr/bin/env bash
# Benchmarks of the load side (issue 3), side by side in one run:
#   1. cold ensure of a ~100 KB / 10-file question chunk from the local object store (p50, p99)
#      and warm ensure as a library call (p50)  -> crates/kiln-load/examples/bench_load.rs
#   2. warm file GET throughput with wrk: kiln serve vs nginx serving the same file from the
#      same directory on disk, both on loopback    -> crates/kiln-server/examples/bench_serve.rs
# Needs: cargo, curl, wrk and nginx (Debian: apt-get install -y wrk nginx).
# Knobs: COLD_CHUNKS (500), WARM_CALLS (100000), DURATION (10s), CONNECTIONS (64), THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."

COLD_CHUNKS=${COLD_CHUNKS:-500}
WARM_CALLS=${WARM_CALLS:-100000}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
KPORT=${KPORT:-18081}
NPORT=${NPORT:-18082}
TARGET=${CARGO_TARGET_DIR:-target}

for tool in curl wrk nginx; do
    command -v "$tool" >/dev/null || { echo "bench-load: $tool is not installed" >&2; exit 1; }
done

cargo build --release -q -p kiln-load -p kiln-server --examples
BIN=$TARGET/release/examples

echo "== ensure (library call, local object store)"
"$BIN/bench_load" "$COLD_CHUNKS" "$WARM_CALLS"

WORK=$(mktemp -d)
chmod 755 "$WORK" # nginx workers run as an unprivileged user
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN/bench_serve" "$WORK/kiln" "$KPORT" >"$WORK/root.txt" &
PIDS+=($!)
FILE=questions/topic/q1/file0.html
KURL=http://127.0.0.1:$KPORT/v1/courses/bench/files/$FILE
for _ in $(seq 1 300); do
    curl -fs -o /dev/null "$KURL" && break
    sleep 0.1
done
ROOT=$(head -n1 "$WORK/root.txt")

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$NPORT;
        root $ROOT;
        etag on;
    }
}
CONF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
PIDS+=($!)
NURL=http://127.0.0.1:$NPORT/$FILE
for _ in $(seq 1 100); do
    curl -fs -o /dev/null "$NURL" && break
    sleep 0.1
done

curl -fs "$KURL" >"$WORK/k.out"
curl -fs "$NURL" >"$WORK/n.out" || { cat "$WORK/nginx/error.log" >&2; exit 1; }
cmp "$WORK/k.out" "$WORK/n.out"
echo "== warm GET of $FILE ($(wc -c <"$WORK/k.out") bytes): wrk -t$THREADS -c$CONNECTIONS -d$DURATION"

rps() { wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$1" | awk '/Requests\/sec/ {print $2}'; }
K1=$(rps "$KURL")
N1=$(rps "$NURL")
KP=$(rps "$KURL?version=v1")
K2=$(rps "$KURL")
N2=$(rps "$NURL")
echo "kiln (current version)  req/s: $K1 $K2"
echo "kiln (?version=v1)      req/s: $KP"
echo "nginx                   req/s: $N1 $N2"
awk -v k1="$K1" -v k2="$K2" -v n1="$N1" -v n2="$N2" \
    'BEGIN { printf "ratio kiln/nginx (mean of two interleaved runs): %.2f (target >= 0.5)\n", (k1 + k2) / (n1 + n2) }'
