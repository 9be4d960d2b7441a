#!/usr/bin/env bash
# Sync benchmarks (BENCHMARKS.md): full sync of a generated 10,000-question course (~100k files,
# ~1 GB) against `git archive HEAD | zstd -T0 -3 > /dev/null` on the same repository, the peak
# RSS of that sync, and an incremental sync after one question changed on a 10,000- and a
# 1,000-question course.
#
#   scripts/bench-sync.sh                 # both sizes
#   QUESTIONS="1000" scripts/bench-sync.sh
#   BENCH_DIR=/tmp/kiln-bench RUNS=3 scripts/bench-sync.sh
#
# Generated repositories are kept in BENCH_DIR and reused by later runs.
set -euo pipefail
cd "$(dirname "$0")/.."

QUESTIONS=${QUESTIONS:-"1000 10000"}
RUNS=${RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/tmp/kiln-bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
command -v zstd >/dev/null || { echo "needs zstd: apt-get install -y zstd" >&2; exit 1; }

cargo build --quiet --release -p kiln-sync --examples
BIN=$CARGO_TARGET_DIR/release/examples
mkdir -p "$BENCH_DIR"

now_ms() { date +%s%3N; }
json_field() { sed -E "s/.*\"$1\":\"?([^,\"}]*).*/\1/"; }

for n in $QUESTIONS; do
  repo=$BENCH_DIR/course-$n.git
  if [ ! -d "$repo" ]; then
    t0=$(now_ms)
    "$BIN/gen_course" "$repo" "$n" --bare >/dev/null
    echo "generated $repo in $(( $(now_ms) - t0 )) ms"
  fi
  files=$(git -C "$repo" ls-tree -r HEAD | wc -l)
  bytes=$(git -C "$repo" archive HEAD | wc -c)
  echo "== $n questions: $files files, $(( bytes / 1000000 )) MB as tar, pack $(du -sm "$repo" | cut -f1) MB"

  for run in $(seq "$RUNS"); do
    t0=$(now_ms)
    git -C "$repo" archive HEAD | zstd -T0 -3 -q > /dev/null
    base=$(( $(now_ms) - t0 ))

    data=$BENCH_DIR/data-$n
    rm -rf "$data"
    sync -f "$BENCH_DIR" 2>/dev/null || true
    t0=$(now_ms)
    out=$(/usr/bin/time -f "%M" -o "$BENCH_DIR/rss" "$BIN/sync" "$data" "$repo" --course "bench$n")
    full=$(( $(now_ms) - t0 ))
    rss_mb=$(( $(cat "$BENCH_DIR/rss") / 1024 ))
    ratio=$(awk "BEGIN { printf \"%.2f\", $full / $base }")
    echo "run $run: full sync ${full} ms (library $(echo "$out" | json_field elapsed_ms) ms, $(echo "$out" | json_field chunks_total) chunks, $(( $(echo "$out" | json_field bytes_uploaded) / 1000000 )) MB stored), peak RSS ${rss_mb} MB; git archive | zstd -T0 -3: ${base} ms; ratio ${ratio}"
  done

  # Incremental: one question's question.html changes; sync the new commit. What the publish
  # wrote: the published view's objects (the sync's count) and the catalog's growth (its
  # database file and write-ahead log, checkpointed before each run).
  catalog_bytes() { cat "$BENCH_DIR/data-$n"/catalog.db* 2>/dev/null | wc -c; }
  for run in $(seq "$RUNS"); do
    round=$(( $(date +%s%N) % 1000000000 ))
    "$BIN/gen_course" "$repo" "$n" --change 17 --round "$round" >/dev/null
    python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)')" "$BENCH_DIR/data-$n/catalog.db"
    before=$(catalog_bytes)
    t0=$(now_ms)
    out=$("$BIN/sync" "$BENCH_DIR/data-$n" "$repo" --course "bench$n")
    wall=$(( $(now_ms) - t0 ))
    grew=$(( $(catalog_bytes) - before ))
    echo "run $run: incremental sync after one question changed: library $(echo "$out" | json_field elapsed_ms) ms, process ${wall} ms, uploaded $(echo "$out" | json_field chunks_uploaded) chunk(s); published view: $(echo "$out" | json_field published_objects) objects, $(echo "$out" | json_field published_bytes) bytes; catalog files grew ${grew} bytes"
  done
done
