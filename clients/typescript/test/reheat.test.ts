// Builds, runs and render-cache reads against a real kiln serve and kiln worker: a library
// whose source is the example course's questions and whose renderer is `cat` (the entry is
// the props), started with startBuild, followed with waitRun, read with get.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Kiln, KilnError, type Run } from '../src/index.js';
import { Scratch } from './helpers/kiln.js';

describe('reheat and the render cache', () => {
  const scratch = new Scratch();
  let kiln: Kiln;

  before(async () => {
    scratch.config([
      '[[library]]', 'name = "cards"', 'source = { course = "demo" }', 'renderer = { command = ["cat"] }',
      'content_type = "application/json"', '',
    ].join('\n'));
    await scratch.sync(scratch.copyExample(), 'demo');
    kiln = new Kiln({ baseUrl: (await scratch.serve()).baseUrl });
    await scratch.worker();
  });
  after(() => scratch.cleanup());

  it('starts a build and waits for its run to complete, reporting progress', async () => {
    const started = await kiln.startBuild('cards', 'b1');
    assert.equal(started.library, 'cards');
    assert.equal(started.build, 'b1');
    assert.ok(started.generation >= 1);
    const progress: Run[] = [];
    const done = await kiln.waitRun(started, (r) => progress.push(r), { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(done.state, 'complete');
    assert.equal(done.run, started.run);
    assert.ok(progress.length >= 1);
    assert.equal(progress[progress.length - 1]!.state, 'complete');
    // A new-build job, a producer and one render per question (six).
    assert.ok(done.jobs_done >= 8, `jobs_done ${done.jobs_done}`);
    assert.equal(done.jobs_dead, 0);
    assert.ok(done.finished_at !== null && done.finished_at !== undefined && done.finished_at >= done.created_at);
    assert.deepEqual(await kiln.run(started.run), done);

    const entry = await kiln.get('cards', 'algebra/linear');
    assert.ok(entry, 'the run wrote algebra/linear');
    assert.equal(entry.generation, started.generation);
    assert.equal(entry.group, 'demo');
    assert.match(entry.contentType ?? '', /^application\/json/);
    assert.ok(entry.writtenAt >= done.created_at);
    const props = JSON.parse(entry.data.toString('utf8')) as { qid: string; course: string };
    assert.equal(props.qid, 'algebra/linear');
    assert.equal(props.course, 'demo');
  });

  it('gives each build a higher generation', async () => {
    const a = await kiln.startBuild('cards', { build: 'b2' });
    const b = await kiln.startBuild('cards');
    assert.ok(b.generation > a.generation);
    const last = await kiln.waitRun(b.run, undefined, { intervalMs: 100, timeoutMs: 60_000 });
    assert.notEqual(last.state, 'running');
  });

  it('answers null for an entry the cache does not have', async () => {
    assert.equal(await kiln.get('cards', 'no/such/question'), null);
  });

  it('rejects a build of an unknown library and an unknown run with 404s', async () => {
    await assert.rejects(kiln.startBuild('nope'), (e: unknown) => e instanceof KilnError && e.status === 404);
    await assert.rejects(kiln.run(987654), (e: unknown) => e instanceof KilnError && e.status === 404);
  });

});

describe('a run no worker works on', () => {
  const scratch = new Scratch();
  let kiln: Kiln;

  before(async () => {
    scratch.config(['[[library]]', 'name = "cards"', 'source = { course = "demo" }', 'renderer = { command = ["cat"] }', ''].join('\n'));
    await scratch.sync(scratch.copyExample(), 'demo');
    kiln = new Kiln({ baseUrl: (await scratch.serve()).baseUrl });
  });
  after(() => scratch.cleanup());

  it('pauses and resumes a library, saying whether it changed', async () => {
    assert.deepEqual(await kiln.pause('cards'), { library: 'cards', paused: true, changed: true });
    assert.equal((await kiln.pause('cards')).changed, false);
    assert.deepEqual(await kiln.resume('cards'), { library: 'cards', paused: false, changed: true });
    await assert.rejects(kiln.pause('nope'), (e: unknown) => e instanceof KilnError && e.status === 404);
  });

  it('cancels a running run, and refuses to cancel it twice', async () => {
    const run = await kiln.startBuild('cards', 'to-cancel');
    const cancelled = await kiln.cancelRun(run);
    assert.equal(cancelled.state, 'cancelled');
    assert.ok(cancelled.jobs_dropped >= 1);
    await assert.rejects(kiln.cancelRun(run.run), (e: unknown) => e instanceof KilnError && e.status === 409);
  });

  it('stays running, and waitRun gives up after its timeout', async () => {
    const run = await kiln.startBuild('cards', 'b-idle');
    assert.equal(run.state, 'running');
    const seen: string[] = [];
    const started = Date.now();
    await assert.rejects(
      kiln.waitRun(run, (r) => seen.push(r.state), { intervalMs: 50, timeoutMs: 400 }),
      (e: unknown) => e instanceof KilnError && e.error === 'timeout' && e.status === 0,
    );
    assert.ok(Date.now() - started >= 300);
    assert.ok(seen.length >= 3 && seen.every((s) => s === 'running'), seen.join(','));
  });
});
