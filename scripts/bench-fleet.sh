#!/usr/bin/env bash
# Fleet benchmarks (BENCHMARKS.md):
#  1. PostgreSQL queue: JOBS no-op render jobs, enqueued in batches then drained by kiln
#     (lease a batch, put one render result per job into the Redis cache, ack the batch),
#     against graphile-worker (npm, localQueue batching, batched completions) draining the
#     same number of no-op jobs on the same PostgreSQL in the same run, ROUNDS times each,
#     alternating. Target: kiln's drain >= 1.5x graphile-worker's.
#  2. Redis render cache: get latency under CONCURRENCY concurrent readers. Target p99 <= 1 ms.
# Each line of results is one JSON object; the summary lines compare them.
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS="${JOBS:-200000}"
BATCH="${BATCH:-500}"
WORKERS="${WORKERS:-4}"
GW_CONCURRENCY="${GW_CONCURRENCY:-24}"
ROUNDS="${ROUNDS:-2}"
CONCURRENCY="${CONCURRENCY:-32}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kiln-target}"

eval "$(bash .ci/services.sh)"

echo "building the benchmarks (release)" >&2
cargo build --release -q -p kiln-postgres --example pg_queue_bench -p kiln-redis --example cache_bench
bin="$CARGO_TARGET_DIR/release/examples"

gw_dir="$(mktemp -d)"
trap 'rm -rf "$gw_dir"' EXIT
echo "installing graphile-worker into $gw_dir" >&2
(cd "$gw_dir" && npm init -y >/dev/null &&
    npm install --no-audit --no-fund --silent graphile-worker@0.18.0 pg@8 >&2)
cp scripts/bench/graphile.mjs "$gw_dir/"

results="$(mktemp)"
echo "== PostgreSQL queue: $JOBS no-op jobs, batches of $BATCH, $(nproc) cores" >&2
for round in $(seq "$ROUNDS"); do
    "$bin/pg_queue_bench" --jobs "$JOBS" --workers "$WORKERS" --batch "$BATCH" \
        --pg "$TEST_POSTGRES_URL" --redis "$TEST_REDIS_URL" | tee -a "$results"
    (cd "$gw_dir" && DATABASE_URL="$TEST_POSTGRES_URL" JOBS="$JOBS" BATCH="$BATCH" \
        CONCURRENCY="$GW_CONCURRENCY" node graphile.mjs) | tee -a "$results"
done

echo "== Redis render cache: get latency, $CONCURRENCY concurrent readers" >&2
"$bin/cache_bench" --concurrency "$CONCURRENCY" --seconds "$SECONDS_PER_RUN" \
    --redis "$TEST_REDIS_URL" | tee -a "$results"

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def best(system, field):
    return max(r[field] for r in rows if r["system"] == system)
k, g = best("kiln", "drain_jobs_per_s"), best("graphile-worker", "drain_jobs_per_s")
ke, ge = best("kiln", "end_to_end_jobs_per_s"), best("graphile-worker", "end_to_end_jobs_per_s")
print(f"queue drain (best of rounds): kiln {k:.0f} jobs/s, graphile-worker {g:.0f} jobs/s, "
      f"ratio {k / g:.2f}x (target >= 1.5x)")
print(f"queue enqueue+drain: kiln {ke:.0f} jobs/s, graphile-worker {ge:.0f} jobs/s, "
      f"ratio {ke / ge:.2f}x")
c = [r for r in rows if r["system"] == "kiln-redis"][0]
print(f"redis get: p50 {c['p50_ms']:.3f} ms, p99 {c['p99_ms']:.3f} ms (target <= 1 ms), "
      f"{c['gets_per_s']:.0f} gets/s at concurrency {c['concurrency']}")
PY
rm -f "$results"
