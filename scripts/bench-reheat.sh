#!/usr/bin/env bash
# The reheat benchmark (BENCHMARKS.md): 1,000,000 render jobs with a no-op renderer over the
# SQLite queue and render cache, one worker process pinned to 2 cores, a reader hammering
# existing keys throughout. Prints the example's JSON summary.
#
#   scripts/bench-reheat.sh [--jobs N] [--batch N] [--concurrency N] [--lanes N] ...
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p kiln-reheat --example bench
bin="${CARGO_TARGET_DIR:-target}/release/examples/bench"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
cores=2
if command -v taskset >/dev/null && [ "$(nproc)" -ge "$cores" ]; then
    exec_pin=(taskset -c 0-$((cores - 1)))
else
    exec_pin=()
fi
"${exec_pin[@]}" "$bin" --dir "$dir" "$@"
