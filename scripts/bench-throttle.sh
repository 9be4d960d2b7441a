#!/usr/bin/env bash
# A library's rate limit (BENCHMARKS.md): a reheat of PAGES (100,000) pages of
# examples/react-ssr through WORKERS (2) `kiln worker` processes on the embedded default,
# sharing one data directory, first without limits
# (what the pipeline can do here: it must be well above RATE for the limit to be what
# binds), then with `limits = { rate = RATE }`. The renderer counts its renders per second.
# Targets: the achieved rate (renders / the renderer's first-to-last render) within 5% of
# RATE, and the reheat's wall time within 10% of PAGES / RATE.
# Needs: a release kiln (KILN_BIN, default $CARGO_TARGET_DIR/release/kiln), node with
# examples/react-ssr's packages installed (`npm ci` there), curl, python3.
# Knobs: PAGES (100000), RATE (500), WORKERS (2), CONCURRENCY (per worker, 64).
set -euo pipefail
cd "$(dirname "$0")/.."
PAGES=${PAGES:-100000}
RATE=${RATE:-500}
CONCURRENCY=${CONCURRENCY:-64}
WORKERS=${WORKERS:-2}
KILN_BIN=${KILN_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/kiln-target}/release/kiln}
for tool in node curl python3; do
    command -v "$tool" >/dev/null || { echo "bench-throttle: $tool is not installed" >&2; exit 1; }
done
[ -x "$KILN_BIN" ] || { echo "bench-throttle: no kiln at $KILN_BIN" >&2; exit 1; }
[ -d examples/react-ssr/node_modules ] || { echo "bench-throttle: run npm ci in examples/react-ssr" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export KILN_QUIET=1

node examples/react-ssr/pages.mjs "$PAGES" >"$work/pages.json"
node examples/react-ssr/server.mjs --port 0 --pages "$work/pages.json" >"$work/renderer.out" 2>&1 &
pids+=($!)
renderer=""
for _ in $(seq 1 100); do
    renderer=$(grep -o 'http://[^ ]*' "$work/renderer.out" | head -n1 || true)
    [ -n "$renderer" ] && break
    sleep 0.1
done
[ -n "$renderer" ] || { echo "bench-throttle: the renderer did not start" >&2; cat "$work/renderer.out" >&2; exit 1; }

library() {
    cat <<TOML
[[library]]
name = "$1"
source = { http = "$renderer/pages" }
renderer = { http = "$renderer/render" }
page_size = 1000
$2
TOML
}
{
    printf '[worker]\nconcurrency = %s\n\n' "$CONCURRENCY"
    library free ""
    library limited "limits = { rate = $RATE }"
} >"$work/kiln.toml"
kiln=("$KILN_BIN" --data-dir "$work/data" --config "$work/kiln.toml")
for w in $(seq 1 "$WORKERS"); do
    "${kiln[@]}" worker >"$work/worker-$w.out" 2>"$work/worker-$w.err" &
    pids+=($!)
done

for lib in free limited; do
    curl -fsS -X DELETE "$renderer/stats" >/dev/null
    "${kiln[@]}" reheat "$lib" --wait --json >"$work/$lib.json"
    curl -fsS "$renderer/stats" >"$work/$lib.stats.json"
done

python3 - "$work" "$PAGES" "$RATE" <<'PY'
import json, sys
work, pages, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def load(lib):
    run = json.load(open(f"{work}/{lib}.json"))
    stats = json.load(open(f"{work}/{lib}.stats.json"))
    assert run["state"] == "complete", run
    assert stats["renders"] == pages and run["jobs_dead"] == 0, (stats["renders"], run)
    span = (stats["last_ms"] - stats["first_ms"]) / 1000
    achieved = (stats["renders"] - 1) / span
    whole = stats["per_second"][1:-1] or stats["per_second"]
    return run, stats, achieved, whole
run, stats, free_rate, _ = load("free")
print(f"unlimited: {pages} renders in {run['elapsed_ms'] / 1000:.1f} s: {free_rate:.0f} renders/s")
run, stats, achieved, whole = load("limited")
wall = run["elapsed_ms"] / 1000
ideal = pages / rate
print(f"limited to {rate:g}/s: {pages} renders in {wall:.1f} s: {achieved:.1f} renders/s "
      f"(whole seconds: min {min(whole)}, max {max(whole)})")
print(f"achieved rate / limit: {achieved / rate:.3f} (target 0.95..1.05)")
print(f"wall time / {pages}/{rate:g} s: {wall / ideal:.3f} (target <= 1.10)")
PY
