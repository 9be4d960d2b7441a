#!/usr/bin/env bash
# Prefetch on publish (BENCHMARKS.md): two `kiln serve` processes over one data directory
# hold every question of a generated course; then ROUNDS times one question changes and is
# published, and each server's first ensure of it is timed, on one server that prefetches a
# new version's changes ([load] prefetch_changes = true, the default) and beside it one that
# does not, against warm ensures of questions already on disk.
# usage: scripts/bench-prefetch.sh [WORKDIR] [QUESTIONS] [ROUNDS] [DELAY_MS]
#   DELAY_MS: how long after a server shows the new version its first ensure is sent
#   (default 100: a request arriving right after the flip; 0 races the prefetch itself).
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/kiln-bench-prefetch}"
questions="${2:-200}"
rounds="${3:-30}"
delay_ms="${4:-100}"
. scripts/bench-course.sh
exec python3 scripts/bench_prefetch.py "$kiln" "$gen" "$repo" "$data" "$work" "$questions" "$rounds" "$delay_ms"
