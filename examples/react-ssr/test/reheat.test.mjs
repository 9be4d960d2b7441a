// The React render service reheated through kiln: a library over this example's listing and
// renderer, reheated by a real `kiln worker` and read through a real `kiln serve`. Every entry
// must be the renderer's own output; a rebuild that drops pages, while readers read, must
// miss no read and prune exactly the dropped pages. Needs KILN_BIN (the kiln binary).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { makePages } from '../pages.mjs';
import { render } from '../render.mjs';

const kilnBin = process.env.KILN_BIN;
const here = fileURLToPath(new URL('..', import.meta.url));

/** Starts a process; resolves with it and the first http:// URL it prints. */
function start(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} ${args.join(' ')} did not start: ${err}`)), 30_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /http:\/\/[^\s]+/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[0].replace(/\/$/, '') });
      }
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited with ${code}: ${err}`));
    });
  });
}

async function json(res) {
  const text = await res.text();
  assert.ok(res.ok, `${res.status}: ${text}`);
  return JSON.parse(text);
}

/** Polls a run until it leaves `running` (at most two minutes). */
async function waitRun(base, id) {
  for (let i = 0; i < 1200; i++) {
    const run = await json(await fetch(`${base}/v1/runs/${id}`));
    if (run.state !== 'running') return run;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`run ${id} still running after two minutes`);
}

/** Every key of the library, through the paginated listing. */
async function listed(base) {
  const keys = [];
  let cursor = null;
  do {
    const q = new URLSearchParams({ limit: '97' });
    if (cursor !== null) q.set('cursor', cursor);
    const page = await json(await fetch(`${base}/v1/cache/react?${q}`));
    keys.push(...page.items.map((i) => i.key));
    cursor = page.next;
  } while (cursor !== null);
  return keys;
}

const entryUrl = (base, key) => `${base}/v1/cache/react/${key.split('/').map(encodeURIComponent).join('/')}`;

describe('a React render service reheated through kiln', { skip: kilnBin === undefined && 'KILN_BIN is not set' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-react-'));
  const pagesFile = join(dir, 'pages.json');
  const procs = [];
  let base;
  const pages = makePages(300);

  before(async () => {
    writeFileSync(pagesFile, JSON.stringify(pages));
    const renderer = await start('node', [join(here, 'server.mjs'), '--pages', pagesFile]);
    procs.push(renderer.child);
    const config = join(dir, 'kiln.toml');
    writeFileSync(config, [
      '[[library]]',
      'name = "react"',
      `source = { http = "${renderer.url}/pages" }`,
      `renderer = { http = "${renderer.url}/render" }`,
      'page_size = 50',
      '',
    ].join('\n'));
    const common = ['--data-dir', join(dir, 'data'), '--config', config];
    const serve = await start(kilnBin, [...common, 'serve', '--listen', '127.0.0.1:0'], { env: { ...process.env, KILN_QUIET: '1' } });
    procs.push(serve.child);
    base = serve.url;
    for (let w = 0; w < 2; w++) {
      const worker = spawn(kilnBin, [...common, 'worker'], { stdio: 'ignore', env: { ...process.env, KILN_QUIET: '1' } });
      procs.push(worker);
    }
  });

  after(() => {
    for (const p of procs) p.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('reheats every page to exactly what the renderer renders', async () => {
    const run = await json(await fetch(`${base}/v1/libraries/react/builds`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"build":"b1"}',
    }));
    const done = await waitRun(base, run.run);
    assert.equal(done.state, 'complete', JSON.stringify(done));
    for (const p of pages) {
      const res = await fetch(entryUrl(base, p.key));
      assert.equal(res.status, 200, p.key);
      const want = render(p.props);
      assert.equal(await res.text(), want.html, p.key);
      assert.equal(res.headers.get('x-kiln-group'), p.group, p.key);
      assert.equal(res.headers.get('x-kiln-meta-assets'), JSON.stringify(want.assets), p.key);
      assert.equal(res.headers.get('x-kiln-generation'), String(done.generation));
    }
    assert.deepEqual(await listed(base), pages.map((p) => p.key).sort());
  });

  it('rebuilds with pages dropped while readers read: no miss, exact pruning', async () => {
    // Drop one whole guide (a producer group) and every fifth card.
    const dropped = pages.filter((p, i) => p.group === 'guide-0003' || (p.group === 'cards' && i % 5 === 0));
    assert.ok(dropped.length >= 10);
    const kept = pages.filter((p) => !dropped.includes(p));
    writeFileSync(pagesFile, JSON.stringify(kept));

    let reading = true;
    let reads = 0;
    const misses = [];
    const readers = Array.from({ length: 6 }, async (_, r) => {
      for (let i = r; reading; i += 6) {
        const p = kept[i % kept.length];
        const res = await fetch(entryUrl(base, p.key));
        await res.arrayBuffer();
        reads++;
        if (res.status !== 200) misses.push(`${p.key}: ${res.status}`);
      }
    });
    const run = await json(await fetch(`${base}/v1/libraries/react/builds`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"commitHash":"b2"}',
    }));
    assert.equal(run.build, 'b2');
    const done = await waitRun(base, run.run);
    reading = false;
    await Promise.all(readers);
    assert.equal(done.state, 'complete', JSON.stringify(done));
    assert.ok(reads > 0);
    assert.deepEqual(misses, [], `${misses.length} of ${reads} reads missed`);
    assert.deepEqual(await listed(base), kept.map((p) => p.key).sort(), 'exactly the dropped pages are pruned');
    for (const p of dropped) assert.equal((await fetch(entryUrl(base, p.key))).status, 404, p.key);
    for (const p of kept) {
      const res = await fetch(entryUrl(base, p.key));
      assert.equal(res.headers.get('x-kiln-generation'), String(done.generation), p.key);
      await res.arrayBuffer();
    }
  });

  it('renders one page with its props on demand, and passes on a refusal as a 502', async () => {
    const props = { component: 'Card', front: 'Now?', back: 'Now.' };
    const res = await fetch(`${entryUrl(base, 'cards/live')}/render?group=cards`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(props),
    });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), render(props).html);
    const bad = await fetch(`${entryUrl(base, 'cards/bad')}/render`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"component":"Nope"}',
    });
    assert.equal(bad.status, 502);
    assert.match((await json502(bad)).message, /no component/);
  });
});

async function json502(res) {
  return JSON.parse(await res.text());
}
