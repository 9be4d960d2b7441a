#!/usr/bin/env bash
# README's first command: kiln's main job end to end on the embedded default.
# Syncs the example course, shows its chunks, serves a file through `kiln serve`, reheats.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kiln-target}"
export KILN_DATA_DIR="${KILN_DATA_DIR:-$PWD/kiln-data}"
export KILN_CONFIG="${KILN_CONFIG:-$PWD/docs/demo.toml}"
# Port 0: the OS picks a free one; kiln serve prints its address on its first line.
port="${KILN_DEMO_PORT:-0}"

echo "== building kiln"
cargo build --release -q -p kiln-cli
kiln="$CARGO_TARGET_DIR/release/kiln"

echo "== kiln sync: the example course, from this repository's git history"
if git rev-parse --verify -q HEAD >/dev/null 2>&1 && [ -z "$(git status --porcelain examples/course)" ]; then
  "$kiln" sync . --subdir examples/course --course demo
else
  # A copy without git history, or local edits: sync the directory as it is.
  "$kiln" sync examples/course --course demo
fi

echo "== kiln chunks demo"
"$kiln" chunks demo

echo "== kiln serve, and a question file through it"
serve_out="$(mktemp)"
"$kiln" serve --listen "127.0.0.1:$port" >"$serve_out" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$serve_out"' EXIT
base=""
for _ in $(seq 1 100); do
  base="$(head -n1 "$serve_out" | grep -o 'http://[^ ]*' || true)"
  [ -n "$base" ] && curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
[ -n "$base" ] || { echo "kiln serve did not start" >&2; exit 1; }
echo "kiln serve is at $base"
curl -fsS "$base/v1/courses/demo/files/questions/algebra/linear/question.html"
echo

echo "== kiln mount: the same course as plain files, loaded on first open"
if [ -c /dev/fuse ] && { [ "$(id -u)" -eq 0 ] || command -v fusermount3 >/dev/null; }; then
  mnt="$KILN_DATA_DIR/mnt"
  mount_out="$(mktemp)"
  "$kiln" mount "$mnt" --course demo >"$mount_out" &
  mounter=$!
  trap 'kill $server 2>/dev/null || true; kill $mounter 2>/dev/null || true; rm -f "$serve_out" "$mount_out"' EXIT
  for _ in $(seq 1 100); do grep -q "mounted at" "$mount_out" && break; sleep 0.1; done
  grep -q "mounted at" "$mount_out" || { echo "kiln mount did not start" >&2; exit 1; }
  ls -l "$mnt/demo"
  ls "$mnt/demo/current/questions/algebra/linear"
  head -n 3 "$mnt/demo/current/questions/algebra/linear/question.html"
  kill -TERM $mounter; wait $mounter || true
else
  echo "(skipped: FUSE is not available here; see README, Mount a course)"
fi

echo "== kiln worker: the sync started a reheat of question-cards (its source is the course)"
"$kiln" worker --exit-when-idle 500ms
"$kiln" runs question-cards --limit 1

echo "== kiln reheat question-cards --wait: a new build, rendered in this process"
"$kiln" reheat question-cards --build demo-rebuild --wait --work
"$kiln" runs question-cards --limit 2
