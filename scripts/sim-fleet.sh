#!/usr/bin/env bash
# A simulated fleet of `kiln serve` processes (scripts/sim_fleet.py): N servers over one
# PostgreSQL catalog, one S3 store (s3s-fs) and Redis announcements, under an ensure load
# while courses are republished. Measures PostgreSQL connections and transactions, object
# store requests, publish-to-served latency, ensure errors and latency, the servers' RSS.
#
#   scripts/sim-fleet.sh [--servers N] [--courses C] [--seconds S] [--idle-seconds S]
#                        [--rate R] [--publish-every P] [--no-announce] [--keep] ...
#   (scripts/sim_fleet.py --help lists every option)
#
# One JSON summary line on stdout, a table and progress on stderr; exits 2 if the run saw
# errors (failed ensures, a crashed server, a publish some server never applied).
#
# Builds kiln and gen_course (release) unless SIM_NO_BUILD=1, starts the services with
# .ci/services.sh, and keeps the generated course repository under $SIM_WORK (default
# ~/.cache/kiln-sim) for the next run. The catalog is the PostgreSQL schema `kiln_sim`
# (dropped at the end), announcements go on the Redis channel `kiln-sim:published-head`,
# and the store is the bucket $SIM_BUCKET (default `kiln-sim`, created if missing), so
# that the simulation's `kiln/head.json` is not the one other users of the CI bucket
# `kiln-test` read or write. One simulation at a time (a lock file says so).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "sim-fleet: ERROR: $*" >&2; exit 1; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kiln-target}"
if [[ "${SIM_NO_BUILD:-}" != 1 ]]; then
    echo "sim-fleet: building kiln and gen_course (release)" >&2
    cargo build --release -q -p kiln-cli -p kiln-sync --examples --bins >&2
fi
kiln="$CARGO_TARGET_DIR/release/kiln"
gen="$CARGO_TARGET_DIR/release/examples/gen_course"
[[ -x "$kiln" && -x "$gen" ]] || die "$kiln or $gen is missing (build, or unset SIM_NO_BUILD)"

eval "$(bash .ci/services.sh)"

# Hundreds of servers: each has its own sockets and cache files; the driver keeps a few
# connections per server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -u unlimited 2>/dev/null || true

exec 9>"${TMPDIR:-/tmp}/kiln-sim-fleet.lock"
flock -n 9 || die "another simulation holds ${TMPDIR:-/tmp}/kiln-sim-fleet.lock"

# The simulation's own bucket (s3s-fs creates it on a signed PUT; an existing one is kept).
bucket="${SIM_BUCKET:-kiln-sim}"
empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
status=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X PUT \
    --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: $empty" "$TEST_S3_ENDPOINT/$bucket") || status=000
case "$status" in
    200 | 409) ;;
    *) die "cannot create bucket $bucket at $TEST_S3_ENDPOINT (HTTP $status)" ;;
esac

exec python3 scripts/sim_fleet.py --kiln "$kiln" --gen "$gen" \
    --pg-url "$TEST_POSTGRES_URL" --redis-url "$TEST_REDIS_URL" \
    --s3-endpoint "$TEST_S3_ENDPOINT" --bucket "$bucket" \
    --work "${SIM_WORK:-$HOME/.cache/kiln-sim}" "$@"
