// The body of scripts/bench-client.sh: starts one kiln serve on a synced copy of the example
// course, then times the same work done by @kiln/client and by hand, in alternating rounds
// on the same server: (a) ensure a warm question and read one of its files from disk; (b)
// the same with the lease released after the read (withChunks against ensure + read +
// DELETE). "plain" is fetch + fs, what the ratio is taken against; "plain-http" is node:http
// with a keep-alive agent + fs, the client's own transport by hand, so client/plain-http is
// what the client itself costs. Prints ops/s of each over all rounds, and the ratios.

import { spawn, execFileSync } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repo = fileURLToPath(new URL('..', import.meta.url));
const { Kiln, fileUnder } = await import(join(repo, 'clients/typescript/dist/src/index.js'));

const { values: opts } = parseArgs({
  options: {
    // Many short rounds, alternating which side goes first, so that load from anything
    // else on the machine falls on both sides alike.
    iterations: { type: 'string', default: '250' },
    rounds: { type: 'string', default: '40' },
    concurrency: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
  },
});
const iterations = Number(opts.iterations);
const rounds = Number(opts.rounds);
const concurrency = Number(opts.concurrency);
const bin = process.env.KILN_BIN;
if (!bin) throw new Error('KILN_BIN is not set (run scripts/bench-client.sh)');

const COURSE = 'demo';
const QUESTION = 'question:algebra/linear';
const FILE = 'questions/algebra/linear/question.html';
// Short leases keep the server's lease table small across many iterations, on both sides.
const LEASE_TTL_MS = 5_000;

const scratch = mkdtempSync(join(tmpdir(), 'kiln-bench-client-'));
const data = join(scratch, 'data');
let server;
try {
  execFileSync(bin, ['--data-dir', data, 'sync', join(repo, 'examples/course'), '--course', COURSE], { stdio: 'ignore' });
  server = spawn(bin, ['--data-dir', data, 'serve', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const base = await firstLine(server);
  const kiln = new Kiln({ baseUrl: base });

  const plainEnsure = async () => {
    const res = await fetch(`${base}/v1/courses/${COURSE}/ensure`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ chunks: [QUESTION], lease_ttl_ms: LEASE_TTL_MS }),
    });
    if (res.status !== 200) throw new Error(`ensure: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const { hostname, port } = new URL(base);
  const agent = new http.Agent({ keepAlive: true, timeout: 4_000 });
  const httpCall = (method, path, body) => new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    const req = http.request({ host: hostname, port, path, method, headers, agent }, (res) => {
      const parts = [];
      res.on('data', (b) => parts.push(b));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end(body);
  });
  const httpEnsure = async () => {
    const res = await httpCall('POST', `/v1/courses/${COURSE}/ensure`, JSON.stringify({ chunks: [QUESTION], lease_ttl_ms: LEASE_TTL_MS }));
    if (res.status !== 200) throw new Error(`ensure: ${res.status} ${res.body}`);
    return JSON.parse(res.body.toString('utf8'));
  };
  const work = {
    'ensure+read': {
      client: async () => {
        const e = await kiln.ensure(COURSE, [QUESTION], { leaseTtlMs: LEASE_TTL_MS });
        return readFile(fileUnder(e.root, FILE));
      },
      plain: async () => {
        const e = await plainEnsure();
        return readFile(join(e.root, FILE));
      },
      'plain-http': async () => {
        const e = await httpEnsure();
        return readFile(join(e.root, FILE));
      },
    },
    'ensure+read+release': {
      client: () => kiln.withChunks(COURSE, [QUESTION], (e) => readFile(fileUnder(e.root, FILE)), { leaseTtlMs: LEASE_TTL_MS }),
      plain: async () => {
        const e = await plainEnsure();
        const bytes = await readFile(join(e.root, FILE));
        const res = await fetch(`${base}/v1/leases/${e.lease.id}`, { method: 'DELETE' });
        if (res.status !== 204) throw new Error(`release: ${res.status}`);
        await res.arrayBuffer();
        return bytes;
      },
      'plain-http': async () => {
        const e = await httpEnsure();
        const bytes = await readFile(join(e.root, FILE));
        const res = await httpCall('DELETE', `/v1/leases/${e.lease.id}`);
        if (res.status !== 204) throw new Error(`release: ${res.status}`);
        return bytes;
      },
    },
  };
  const SIDES = ['client', 'plain', 'plain-http'];

  const results = [];
  for (const [mode, fns] of Object.entries(work)) {
    // Warm: the chunk is on disk and every side's connections are open.
    for (let i = 0; i < 200; i++) for (const side of SIDES) await fns[side]();
    const ms = Object.fromEntries(SIDES.map((side) => [side, 0]));
    const roundRatios = [];
    for (let r = 0; r < rounds; r++) {
      // Rotate which side goes first, so drift in the machine's load favours none.
      const order = SIDES.map((_, i) => SIDES[(i + r) % SIDES.length]);
      const round = {};
      for (const side of order) {
        round[side] = await timed(fns[side], iterations, concurrency);
        ms[side] += round[side];
      }
      roundRatios.push(round.plain / round.client);
    }
    const opsPerS = (side) => Math.round((iterations * rounds / ms[side]) * 1000);
    roundRatios.sort((a, b) => a - b);
    results.push({
      mode,
      client_ops_s: opsPerS('client'),
      plain_ops_s: opsPerS('plain'),
      plain_http_ops_s: opsPerS('plain-http'),
      ratio: Number((ms.plain / ms.client).toFixed(3)),
      median_round_ratio: Number(roundRatios[Math.floor(roundRatios.length / 2)].toFixed(3)),
      ratio_vs_plain_http: Number((ms['plain-http'] / ms.client).toFixed(3)),
    });
  }

  if (opts.json) {
    console.log(JSON.stringify({ iterations, rounds, concurrency, kiln: bin, results }));
  } else {
    console.log(`kiln ${bin}; ${rounds} rounds x ${iterations} ops per side, concurrency ${concurrency}`);
    for (const r of results) {
      console.log(`${r.mode.padEnd(20)} client ${String(r.client_ops_s).padStart(6)} ops/s   plain (fetch) ${String(r.plain_ops_s).padStart(6)} ops/s   ` +
        `ratio client/plain ${r.ratio.toFixed(3)} (median round ${r.median_round_ratio.toFixed(3)})   ` +
        `plain-http ${String(r.plain_http_ops_s).padStart(6)} ops/s, client/plain-http ${r.ratio_vs_plain_http.toFixed(3)}`);
    }
  }
  agent.destroy();
  kiln.close();
} finally {
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
  rmSync(scratch, { recursive: true, force: true });
}

/** Runs `fn` `n` times on `c` concurrent lanes; the elapsed milliseconds. */
async function timed(fn, n, c) {
  let left = n;
  const lane = async () => {
    while (left > 0) {
      left--;
      await fn();
    }
  };
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: c }, lane));
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** The address in kiln serve's first stdout line. */
function firstLine(proc) {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('kiln serve did not start within 20 s')), 20_000);
    proc.once('exit', (code) => reject(new Error(`kiln serve exited (${code}) before listening`)));
    proc.stdout.setEncoding('utf8').on('data', (s) => {
      out += s;
      const m = /^listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
}
