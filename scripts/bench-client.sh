#!/usr/bin/env bash
# The TypeScript client (clients/typescript) against plain fetch + fs on one kiln serve: the
# ensure + read of a warm question, and the same with the lease released, in alternating
# rounds; prints ops/s of both and the ratio client/plain (the target is >= 0.9).
#
#   KILN_BIN=path/to/kiln scripts/bench-client.sh [--iterations N] [--rounds R] [--concurrency C] [--json]
#   (defaults: 40 rounds of 250 ops per side and mode, concurrency 1)
#
# KILN_BIN defaults to $CARGO_TARGET_DIR (or ~/.cache/kiln-target)/release/kiln, else debug/kiln.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$HOME/.cache/kiln-target}"
if [ -z "${KILN_BIN:-}" ]; then
  if [ -x "$target/release/kiln" ]; then KILN_BIN="$target/release/kiln"; else KILN_BIN="$target/debug/kiln"; fi
fi
[ -x "$KILN_BIN" ] || { echo "bench-client: no kiln binary at $KILN_BIN (build it, or set KILN_BIN)" >&2; exit 1; }
export KILN_BIN
(
  cd clients/typescript
  [ -d node_modules ] || npm ci --no-audit --no-fund
  npm run -s build
)
exec node scripts/bench-client.mjs "$@"
