// Ensure and read from disk against a real kiln serve: one version per ensure+read while
// new versions are published under 50 concurrent readers, files over HTTP (pinned version,
// range, ETag), fileUrl, course metadata.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';

import { chunk, fileUnder, Kiln, KilnError, type Ensured } from '../src/index.js';
import { append, eventually, Scratch, type Served } from './helpers/kiln.js';

/** Files of two chunks of the example course that each version marks with its number. */
const MARKED = [
  ['questions/algebra/linear/question.html', (r: number) => `\n<!-- rev ${r} -->\n`],
  ['questions/algebra/linear/server.py', (r: number) => `\n# rev ${r}\n`],
  ['clientFilesCourse/course.css', (r: number) => `\n/* rev ${r} */\n`],
] as const;

const CHUNKS = [chunk.question('algebra/linear'), chunk.clientFilesCourse()];

/** The revision a file's last marker names (0: the unmarked example). */
function revOf(text: string): number {
  const all = [...text.matchAll(/rev (\d+)/g)];
  return all.length === 0 ? 0 : Number(all[all.length - 1]![1]);
}

describe('ensure and read', () => {
  const scratch = new Scratch();
  let src: string;
  let served: Served;
  let kiln: Kiln;
  /** version id -> the revision its files are marked with. */
  const revOfVersion = new Map<string, number>();

  const publish = async (rev: number) => {
    for (const [rel, mark] of MARKED) append(src, rel, mark(rev));
    const { version } = await scratch.sync(src, 'demo');
    revOfVersion.set(version, rev);
    return version;
  };

  before(async () => {
    src = scratch.copyExample();
    await publish(1);
    served = await scratch.serve();
    kiln = new Kiln({ baseUrl: served.baseUrl });
  });
  after(() => scratch.cleanup());

  it('answers with the root, the version, one path per chunk and a lease', async () => {
    const e = await kiln.ensure('demo', CHUNKS);
    assert.equal(e.course, 'demo');
    assert.equal(revOfVersion.get(e.version), 1);
    assert.equal(e.paths.length, 2);
    assert.deepEqual(e.absent, []);
    assert.match(e.lease.id, /^[0-9a-f]{32}$/);
    assert.ok(e.lease.expires_at > Date.now());
    const html = await readFile(fileUnder(e.root, 'questions/algebra/linear/question.html'), 'utf8');
    assert.match(html, /rev 1/);
    await kiln.releaseLease(e.lease.id);
  });

  it('keeps each ensure+read on one version while 50 readers run and versions are published', async (t) => {
    const readers = 50;
    const deadline = Date.now() + 60_000;
    let publishing = true;
    let last = '';
    const seen = new Set<string>();
    // Checked once every publish has returned: a reader may see a version before its
    // sync has printed the version's id.
    const observed: Array<{ version: string; revs: number[] }> = [];

    const readOnce = async (e: Ensured) => {
      const revs = await Promise.all(MARKED.map(async ([rel]) => revOf(await readFile(fileUnder(e.root, rel), 'utf8'))));
      observed.push({ version: e.version, revs });
      seen.add(e.version);
    };
    const reader = async (i: number) => {
      // Bounded: stops once the last version has been read after publishing, or at the deadline.
      for (let n = 0; n < 10_000 && Date.now() < deadline; n++) {
        if (!publishing && seen.has(last)) return;
        if (i % 2 === 0) {
          await kiln.withChunks('demo', CHUNKS, readOnce);
        } else {
          const e = await kiln.ensure('demo', CHUNKS, { leaseTtlMs: 10_000 });
          try {
            await readOnce(e);
          } finally {
            await kiln.releaseLease(e.lease.id);
          }
        }
      }
    };
    const publisher = async () => {
      try {
        for (const rev of [2, 3, 4]) {
          await new Promise((r) => setTimeout(r, 300));
          last = await publish(rev);
        }
      } finally {
        publishing = false;
      }
    };
    await Promise.all([publisher(), ...Array.from({ length: readers }, (_, i) => reader(i))]);

    const mismatches = observed
      .filter(({ version, revs }) => revs.some((r) => r !== revOfVersion.get(version)))
      .map(({ version, revs }) => `${version} (rev ${revOfVersion.get(version)}) read revs ${revs.join(',')}`);
    t.diagnostic(`${observed.length} ensure+reads over ${seen.size} versions`);
    assert.deepEqual(mismatches, [], 'an ensure+read saw files of another version');
    assert.ok(seen.has(last), `the last version ${last} was never read (saw ${[...seen].join(', ')})`);
    assert.ok(seen.size >= 2, `readers saw only ${seen.size} version(s) across the publishes`);
    assert.ok(observed.length >= readers * 2, `only ${observed.length} reads`);
  });

  it('reads a file over HTTP at a pinned version, with its version, ETag and a range', async () => {
    const summary = await kiln.course('demo');
    const rev = revOfVersion.get(summary.version);
    assert.ok(rev !== undefined && rev > 1, 'the current version is one this test published');
    assert.ok(summary.chunks > 0 && summary.bytes > 0);
    assert.equal(summary.kinds.question, 6);

    const first = [...revOfVersion.entries()].find(([, r]) => r === 1)![0];
    const rel = 'questions/algebra/linear/question.html';
    const pinned = await kiln.readFile('demo', rel, { version: first });
    assert.equal(pinned.status, 200);
    assert.equal(pinned.version, first);
    assert.equal(revOf(pinned.data.toString('utf8')), 1);
    assert.match(pinned.contentType ?? '', /^text\/html/);
    assert.ok(pinned.etag);

    const current = await kiln.readFile('demo', rel);
    assert.equal(current.version, summary.version);
    assert.equal(revOf(current.data.toString('utf8')), rev);

    const part = await kiln.readFile('demo', rel, { version: first, range: { start: 0, end: 9 } });
    assert.equal(part.status, 206);
    assert.deepEqual(part.data, pinned.data.subarray(0, 10));
    assert.equal(part.contentRange, `bytes 0-9/${pinned.data.length}`);

    const same = await kiln.readFile('demo', rel, { version: first, ifNoneMatch: pinned.etag! });
    assert.equal(same.status, 304);
    assert.equal(same.data.length, 0);

    await assert.rejects(
      kiln.readFile('demo', rel, { range: { start: 1_000_000 } }),
      (e: unknown) => e instanceof KilnError && e.status === 416 && e.error === 'range_not_satisfiable',
    );
  });

  it('gives file URLs that fetch serves as readFile does', async () => {
    const { version } = await kiln.course('demo');
    const url = kiln.fileUrl('demo', 'clientFilesCourse/course.css', { version });
    assert.equal(url, `${served.baseUrl}/v1/courses/demo/files/clientFilesCourse/course.css?version=${version}`);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-kiln-version'), version);
    assert.match(res.headers.get('cache-control') ?? '', /immutable/);
    const viaClient = await kiln.readFile('demo', 'clientFilesCourse/course.css', { version });
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), viaClient.data);
  });

  it('reads the newest version after a publish, within the refresh interval', async () => {
    const version = await publish(5);
    assert.ok(await eventually(async () => (await kiln.course('demo')).version === version, 5_000));
    const e = await kiln.ensure('demo', CHUNKS);
    assert.equal(e.version, version);
    assert.equal(revOf(await readFile(fileUnder(e.root, 'clientFilesCourse/course.css'), 'utf8')), 5);
    await kiln.releaseLease(e.lease.id);
  });
});

describe('the fetch transport', () => {
  const scratch = new Scratch();
  let kiln: Kiln;

  before(async () => {
    await scratch.sync(scratch.copyExample(), 'demo');
    kiln = new Kiln({ baseUrl: (await scratch.serve()).baseUrl, transport: 'fetch' });
  });
  after(() => scratch.cleanup());

  it('ensures, reads, releases and carries errors as the node:http one does', async () => {
    let id = '';
    const text = await kiln.withChunks('demo', chunk.question('calculus/derivatives/power-rule'), (e) => {
      id = e.lease.id;
      return readFile(fileUnder(e.root, 'questions/calculus/derivatives/power-rule/question.html'), 'utf8');
    });
    assert.ok(text.length > 0);
    await assert.rejects(kiln.renewLease(id), (e: unknown) => e instanceof KilnError && e.status === 404);
    const { version } = await kiln.course('demo');
    const file = await kiln.readFile('demo', 'clientFilesCourse/course.css', { version, range: { start: 2, end: 5 } });
    assert.equal(file.status, 206);
    assert.equal(file.data.length, 4);
    assert.equal(file.version, version);
    await assert.rejects(kiln.ensure('demo', chunk.question('x/y')), (e: unknown) =>
      e instanceof KilnError && e.status === 404 && /x\/y/.test(e.message));
  });
});
