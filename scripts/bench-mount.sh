#!/usr/bin/env bash
# kiln mount on the generated course (10,000 questions by default), each figure beside its
# reference in the same run:
#   - time from `kiln mount` start (empty cache) to the first question file read, against
#     `git clone --no-local` of the course repository;
#   - warm reads of 10,000 small files through the mount against the same files read from
#     the ensured version directory, holding open files (the default) and with --no-hold;
#   - cold first opens of question files through the mount against POST /ensure plus a read,
#     both served by one `kiln serve --mount` process.
# usage: [REPO=path/to/course.git] scripts/bench-mount.sh [WORKDIR] [QUESTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/kiln-bench-mount}"
questions="${2:-10000}"
runs=3
. scripts/bench-course.sh
qids=$("$kiln" --data-dir "$data" --json chunks big | python3 -c 'import json,sys; print(" ".join(c["name"] for c in json.load(sys.stdin)["chunks"] if c["kind"]=="question"))')
first=$(echo "$qids" | cut -d' ' -f1)
echo "course: $questions questions, $(du -sh "$repo" | cut -f1) of repository"
mnt="$work/mnt"
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null || true; }
# Starts a mounting process writing its stdout to $work/mount.out; sets $pid.
start() {
  : > "$work/mount.out"
  "$@" > "$work/mount.out" &
  pid=$!
  until grep -q "mounted at" "$work/mount.out" 2>/dev/null; do sleep 0.001; done
}

mount_ms=(); tree_ms=(); git_ms=()
for i in $(seq 1 $runs); do
  rm -rf "$work/cache" "$work/clone"
  t0=$(now_ms)
  start "$kiln" --data-dir "$data" mount "$mnt" --cache-dir "$work/cache"
  ta=$(now_ms)
  ls "$mnt/big/current" > /dev/null   # builds the version's tree from the catalog
  tb=$(now_ms)
  cat "$mnt/big/current/questions/$first/question.html" > /dev/null
  t1=$(now_ms)
  stop $pid
  mount_ms+=($((t1 - t0))); tree_ms+=($((tb - ta)))
  t0=$(now_ms)
  git clone -q --no-local "$repo" "$work/clone"
  t1=$(now_ms)
  git_ms+=($((t1 - t0)))
done
m=$(median "${mount_ms[@]}"); g=$(median "${git_ms[@]}")
echo "kiln mount, empty cache, start to first question file read: ${mount_ms[*]} ms (median $m)"
echo "  of which listing current (the version's tree built):       ${tree_ms[*]} ms (median $(median "${tree_ms[@]}"))"
echo "git clone --no-local:                                      ${git_ms[*]} ms (median $g)"
python3 -c "print('ratio mount/git = %.4f (target <= 0.01)' % ($m / $g))"
rm -rf "$work/clone"

for mode in hold no-hold; do
  rm -rf "$work/cache"
  extra=(); [ "$mode" = no-hold ] && extra=(--no-hold)
  start "$kiln" --data-dir "$data" mount "$mnt" --cache-dir "$work/cache" "${extra[@]}"
  version=$(readlink "$mnt/big/current")
  echo "== warm, $mode"
  python3 scripts/bench-mount.py warm "$mnt/big/$version" "$work/cache/courses/big/$version" 10000 $pid
  stop $pid
done

echo "== cold"
rm -rf "$work/cache"
: > "$work/serve.out"
"$kiln" --data-dir "$data" serve --listen 127.0.0.1:0 --cache-dir "$work/cache" --mount "$mnt" > "$work/serve.out" 2> "$work/serve.err" &
pid=$!
until grep -q "mounted at" "$work/serve.err" 2>/dev/null; do sleep 0.001; done
base=$(head -1 "$work/serve.out" | awk '{print $3}')
# Listing first: the version's tree is built (from the catalog) before any timed open.
ls "$mnt/big/current/questions" > /dev/null
python3 scripts/bench-mount.py cold "$mnt/big" "$base" big $(echo "$qids" | tr ' ' '\n' | sed -n '100,299p')
stop $pid
