// kiln's errors through the client against a real kiln serve: a missing question is a 404
// with kiln's message, a bad chunk a 400, chunks a version lacks are `absent`, and
// connection errors are retried (a server that comes up during the backoff is reached) and
// then reported with status 0, and a 503 (an object store made unreadable) is retried until
// the store is back.

import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chunk, fileUnder, Kiln, KilnError, type Chunk } from '../src/index.js';
import { eventually, requests, Scratch } from './helpers/kiln.js';

/** A course with one question and nothing else. */
function bareCourse(dir: string): string {
  mkdirSync(join(dir, 'questions', 'solo'), { recursive: true });
  writeFileSync(join(dir, 'infoCourse.json'), JSON.stringify({ uuid: '5f3c1d2e-0000-4000-8000-000000000001', name: 'BARE', title: 'Bare' }));
  writeFileSync(join(dir, 'questions', 'solo', 'info.json'), JSON.stringify({ uuid: '5f3c1d2e-0000-4000-8000-000000000002', title: 'Solo', type: 'v3' }));
  writeFileSync(join(dir, 'questions', 'solo', 'question.html'), '<p>solo</p>\n');
  return dir;
}

describe('errors and absent chunks', () => {
  const scratch = new Scratch();
  let kiln: Kiln;
  let baseUrl: string;

  before(async () => {
    await scratch.sync(scratch.copyExample(), 'demo');
    await scratch.sync(bareCourse(scratch.dir('bare')), 'bare');
    baseUrl = (await scratch.serve()).baseUrl;
    kiln = new Kiln({ baseUrl });
  });
  after(() => scratch.cleanup());

  it('rejects a missing question with a 404 carrying kiln\'s message', async () => {
    await assert.rejects(kiln.ensure('demo', [chunk.elements(), chunk.question('algebra/nope')]), (e: unknown) => {
      assert.ok(e instanceof KilnError);
      assert.equal(e.status, 404);
      assert.equal(e.error, 'not_found');
      assert.equal(e.notFound, true);
      assert.match(e.message, /algebra\/nope/);
      assert.equal(e.method, 'POST');
      assert.equal(e.path, '/v1/courses/demo/ensure');
      return true;
    });
  });

  it('rejects a course it does not know with a 404 naming it', async () => {
    await assert.rejects(kiln.course('no-such-course'), (e: unknown) =>
      e instanceof KilnError && e.status === 404 && /no-such-course/.test(e.message));
  });

  it('rejects a bad chunk with a 400 naming it', async () => {
    for (const [bad, named] of [['question', '"question"'], ['elements:extra', '"elements:extra"'], ['nonsense:x', '"nonsense"']]) {
      await assert.rejects(kiln.ensure('demo', [bad as Chunk]), (e: unknown) => {
        assert.ok(e instanceof KilnError, String(e));
        assert.equal(e.status, 400);
        assert.equal(e.error, 'invalid_input');
        assert.ok(e.message.includes(named!), `${e.message} names ${named}`);
        return true;
      });
    }
  });

  it('rejects a missing file with a 404', async () => {
    await assert.rejects(kiln.readFile('demo', 'questions/algebra/linear/nope.html'), (e: unknown) =>
      e instanceof KilnError && e.status === 404);
  });

  it('lists the chunks a version lacks as absent, and ensures the rest', async () => {
    const wanted: Chunk[] = [
      chunk.question('solo'),
      chunk.elements(),
      chunk.clientFilesCourse(),
      chunk.clientFilesCourseInstance('Sp25'),
      chunk.clientFilesAssessment('Sp25', 'hw1'),
    ];
    const e = await kiln.ensure('bare', wanted);
    assert.equal(e.paths.length, 1);
    assert.deepEqual(new Set(e.absent), new Set(wanted.slice(1)));
    assert.equal(await readFile(fileUnder(e.root, 'questions/solo/question.html'), 'utf8'), '<p>solo</p>\n');
    await kiln.releaseLease(e.lease.id);
  });

  it('ensures nested course instances and assessments by their directories', async () => {
    const e = await kiln.ensure('demo', [
      chunk.clientFilesCourseInstance('2026/Sp26'),
      chunk.clientFilesAssessment('2026/Sp26', 'exams/midterm'),
      chunk.serverFilesCourseInstance('Fa25'),
    ]);
    assert.deepEqual(e.absent, []);
    await readFile(fileUnder(e.root, 'courseInstances/2026/Sp26/clientFilesCourseInstance/syllabus.html'));
    await readFile(fileUnder(e.root, 'courseInstances/2026/Sp26/assessments/exams/midterm/clientFilesAssessment/instructions.md'));
    await readFile(fileUnder(e.root, 'courseInstances/Fa25/serverFilesCourseInstance/grading.py'));
    await kiln.releaseLease(e.lease.id);
  });

  it('refuses a path that leaves the root', () => {
    assert.throws(() => fileUnder('/cache/demo/v1', '../v2/questions/q/info.json'), RangeError);
    assert.throws(() => fileUnder('/cache/demo/v1', '/etc/passwd'), RangeError);
    assert.equal(fileUnder('/cache/demo/v1', 'questions/./q/../q/info.json'), '/cache/demo/v1/questions/q/info.json');
  });

  it('retries a refused connection until a server comes up on the address', async () => {
    const other = new Scratch();
    try {
      await other.sync(other.copyExample(), 'demo');
      const first = await other.serve();
      const addr = first.baseUrl.slice('http://'.length);
      await first.stop();
      const patient = new Kiln({ baseUrl: first.baseUrl, retries: 12, retryBaseDelayMs: 100, retryMaxDelayMs: 800 });
      const started = Date.now();
      const ensured = patient.ensure('demo', chunk.question('probability/dice'));
      await new Promise((r) => setTimeout(r, 300));
      await other.serve({ listen: addr });
      const e = await ensured;
      assert.ok(Date.now() - started >= 300, 'the first attempts failed and were retried');
      assert.equal(e.course, 'demo');
    } finally {
      await other.cleanup();
    }
  });

  it('reports a server it cannot reach as a KilnError with status 0 after its retries', async () => {
    const other = new Scratch();
    try {
      await other.sync(other.copyExample(), 'demo');
      const gone = await other.serve();
      await gone.stop();
      const k = new Kiln({ baseUrl: gone.baseUrl, retries: 2, retryBaseDelayMs: 1 });
      await assert.rejects(k.course('demo'), (e: unknown) => {
        assert.ok(e instanceof KilnError);
        assert.equal(e.status, 0);
        assert.equal(e.error, 'connection_failed');
        assert.match(e.message, /ECONNREFUSED/);
        return true;
      });
    } finally {
      await other.cleanup();
    }
  });
});

describe('an object store outage (503)', () => {
  const scratch = new Scratch();
  let baseUrl: string;
  const objects = () => join(scratch.dataDir, 'objects');
  const away = () => join(scratch.root, 'objects.away');

  /** Makes the local object store unreadable: its directory becomes a plain file. */
  const breakStore = () => {
    renameSync(objects(), away());
    writeFileSync(objects(), 'not a directory\n');
  };
  const mendStore = () => {
    rmSync(objects(), { force: true });
    renameSync(away(), objects());
  };

  before(async () => {
    await scratch.sync(scratch.copyExample(), 'demo');
    baseUrl = (await scratch.serve()).baseUrl;
  });
  after(() => scratch.cleanup());

  it('reports unreadiness and a 503 without retries', async () => {
    breakStore();
    try {
      const kiln = new Kiln({ baseUrl, retries: 0 });
      const ready = await kiln.readyz();
      assert.equal(ready.ready, false);
      assert.equal(ready.report.backends.object_store?.ok, false);
      await assert.rejects(kiln.ensure('demo', chunk.question('algebra/linear')), (e: unknown) =>
        e instanceof KilnError && e.status === 503 && e.error === 'unavailable' && /retry later/.test(e.message));
    } finally {
      mendStore();
    }
    assert.equal((await new Kiln({ baseUrl }).readyz()).ready, true);
  });

  it('gives up on an answer slower than timeoutMs, and on the caller\'s signal', async () => {
    // kiln retries the broken store itself for about half a second before it answers 503.
    breakStore();
    try {
      for (const transport of ['node', 'fetch'] as const) {
        const impatient = new Kiln({ baseUrl, timeoutMs: 50, retries: 3, transport });
        const started = Date.now();
        await assert.rejects(impatient.ensure('demo', chunk.question('calculus/integrals/area')), (e: unknown) =>
          e instanceof KilnError && e.status === 0 && e.error === 'timeout');
        assert.ok(Date.now() - started < 400, `${transport}: a timeout is not retried`);
        const kiln = new Kiln({ baseUrl, transport });
        await assert.rejects(kiln.ensure('demo', chunk.question('calculus/integrals/area'), { signal: AbortSignal.timeout(50) }),
          (e: unknown) => e instanceof KilnError && e.status === 0 && e.error === 'aborted');
      }
    } finally {
      mendStore();
    }
  });

  it('retries a 503 until the store is back', async () => {
    const kiln = new Kiln({ baseUrl, retries: 12, retryBaseDelayMs: 100, retryMaxDelayMs: 800 });
    const before503 = await requests(kiln, '/v1/courses/{course}/ensure', 503);
    breakStore();
    let mended = false;
    try {
      const ensured = kiln.ensure('demo', chunk.question('algebra/quadratic'));
      await eventually(async () => (await requests(kiln, '/v1/courses/{course}/ensure', 503)) > before503, 10_000);
      mendStore();
      mended = true;
      const e = await ensured;
      assert.deepEqual(e.downloaded, ['question:algebra/quadratic']);
      assert.ok((await requests(kiln, '/v1/courses/{course}/ensure', 503)) > before503, 'kiln answered 503 first');
      await kiln.releaseLease(e.lease.id);
    } finally {
      if (!mended) mendStore();
    }
  });
});
