// graphile-worker's side of scripts/bench-fleet.sh: enqueue JOBS no-op jobs in batches of
// BATCH with addJobs, then drain them with one runner (concurrentJobs CONCURRENCY, localQueue
// batching of size BATCH, batched completions), and print one JSON line like kiln's bench.
// Run from a directory where `graphile-worker` and `pg` are installed.
import { Logger, run, makeWorkerUtils } from "graphile-worker";

const env = (k, d) => process.env[k] ?? d;
const connectionString = env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test");
const jobs = Number(env("JOBS", "200000"));
const batch = Number(env("BATCH", "500"));
const concurrency = Number(env("CONCURRENCY", "24"));
const schema = env("GW_SCHEMA", `graphile_bench_${process.pid}`);

const preset = {
  worker: {
    connectionString,
    schema,
    concurrentJobs: concurrency,
    maxPoolSize: concurrency + 2,
    pollInterval: 1000,
    localQueue: { size: batch },
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
  },
};

// Silent: graphile-worker logs every job at INFO, which would measure the terminal.
const logger = new Logger(() => () => {});
const utils = await makeWorkerUtils({ preset, logger });
await utils.migrate();

let t0 = performance.now();
for (let i = 0; i < jobs; i += batch) {
  const specs = [];
  for (let j = i; j < Math.min(i + batch, jobs); j++) {
    specs.push({ identifier: "noop", payload: { key: `page/${j}` } });
  }
  await utils.addJobs(specs);
}
const enqueueSecs = (performance.now() - t0) / 1000;

let executed = 0;
let allExecuted;
const executedAll = new Promise((resolve) => (allExecuted = resolve));
t0 = performance.now();
const runner = await run({
  noHandleSignals: true,
  logger,
  preset,
  taskList: {
    noop: async () => {
      if (++executed === jobs) allExecuted();
    },
  },
});
await executedAll;
// Completions are batched: the drain ends when the jobs table is empty.
for (;;) {
  const { rows } = await utils.withPgClient((c) =>
    c.query(`select count(*)::int as n from "${schema}"._private_jobs`),
  );
  if (rows[0].n === 0) break;
  await new Promise((r) => setTimeout(r, 5));
}
const drainSecs = (performance.now() - t0) / 1000;
await runner.stop();
await utils.withPgClient((c) => c.query(`drop schema "${schema}" cascade`));
await utils.release();

console.log(
  JSON.stringify({
    system: "graphile-worker",
    jobs,
    concurrency,
    batch,
    enqueue_s: +enqueueSecs.toFixed(3),
    drain_s: +drainSecs.toFixed(3),
    enqueue_jobs_per_s: Math.round(jobs / enqueueSecs),
    drain_jobs_per_s: Math.round(jobs / drainSecs),
    end_to_end_jobs_per_s: Math.round(jobs / (enqueueSecs + drainSecs)),
  }),
);
