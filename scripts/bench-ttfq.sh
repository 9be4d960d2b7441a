#!/usr/bin/env bash
# Time to first question on a fresh server, for the generated 10,000-question course:
# `kiln serve` with an empty cache, from process start to the first question file served,
# against `git clone` of the course repository, in the same run.
# usage: [REPO=path/to/course.git] scripts/bench-ttfq.sh [WORKDIR] [QUESTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/kiln-bench-ttfq}"
questions="${2:-10000}"
runs=5
. scripts/bench-course.sh
q="questions/$("$kiln" --data-dir "$data" --json chunks big | python3 -c 'import json,sys; print(next(c["root"] for c in json.load(sys.stdin)["chunks"] if c["kind"]=="question")[len("questions/"):])')/question.html"
echo "course: $questions questions, $(du -sh "$repo" | cut -f1) of repository; first question file: $q"

kiln_ms=(); git_ms=()
for i in $(seq 1 $runs); do
  rm -rf "$work/cache" "$work/clone"
  t0=$(now_ms)
  # Emptied first: the background redirection may truncate the last run's file only after
  # the wait below has looked at it.
  : > "$work/serve.out"
  "$kiln" --data-dir "$data" serve --listen 127.0.0.1:0 --cache-dir "$work/cache" > "$work/serve.out" &
  pid=$!
  until grep -q "listening on" "$work/serve.out"; do sleep 0.001; done
  addr=$(head -1 "$work/serve.out" | awk '{print $3}')
  curl -fsS -o /dev/null "$addr/v1/courses/big/files/$q"
  t1=$(now_ms)
  kill $pid; wait $pid 2>/dev/null || true
  kiln_ms+=($((t1 - t0)))

  t0=$(now_ms)
  git clone -q --no-local "$repo" "$work/clone"
  t1=$(now_ms)
  git_ms+=($((t1 - t0)))
done
k=$(median "${kiln_ms[@]}"); g=$(median "${git_ms[@]}")
echo "kiln serve, empty cache, to first question: ${kiln_ms[*]} ms (median $k)"
echo "git clone --no-local:                      ${git_ms[*]} ms (median $g)"
python3 -c "print('ratio kiln/git = %.4f (target <= 0.01)' % ($k / $g))"
