// Leases against a real kiln serve: withChunks releases its lease when fn returns and when
// it throws, renews it while fn outlives its duration, and says when it is lost; renew and
// release of an ended lease are 404.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';

import { chunk, fileUnder, Kiln, KilnError } from '../src/index.js';
import { Scratch } from './helpers/kiln.js';

const Q = chunk.question('probability/dice');

const isEnded = (e: unknown) => e instanceof KilnError && e.status === 404 && e.error === 'not_found';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('leases', () => {
  const scratch = new Scratch();
  let kiln: Kiln;

  before(async () => {
    await scratch.sync(scratch.copyExample(), 'demo');
    kiln = new Kiln({ baseUrl: (await scratch.serve()).baseUrl });
  });
  after(() => scratch.cleanup());

  it('renews and releases a lease; an ended one is 404 for both', async () => {
    const e = await kiln.ensure('demo', Q, { leaseTtlMs: 5_000 });
    assert.equal(e.lease.ttl_ms, 5_000);
    const renewed = await kiln.renewLease(e.lease.id, 20_000);
    assert.equal(renewed.id, e.lease.id);
    assert.equal(renewed.ttl_ms, 20_000);
    assert.ok(renewed.expires_at > e.lease.expires_at);
    await kiln.releaseLease(e.lease.id);
    await assert.rejects(kiln.renewLease(e.lease.id), isEnded);
    await assert.rejects(kiln.releaseLease(e.lease.id), isEnded);
  });

  it('releases many leases in one request, naming those that had ended', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await kiln.ensure('demo', Q, { leaseTtlMs: 60_000 })).lease.id);
    const first = ids[0]!;
    await kiln.releaseLease(first);
    const r = await kiln.releaseLeases(ids);
    assert.equal(r.released, 19);
    assert.deepEqual(r.ended, [first]);
    for (const id of ids) await assert.rejects(kiln.renewLease(id), isEnded);
    await assert.rejects(kiln.releaseLeases(['nope']), (e: unknown) => e instanceof KilnError && e.status === 400);
  });

  it('ends a lease at its deadline', async () => {
    const e = await kiln.ensure('demo', Q, { leaseTtlMs: 200 });
    await sleep(600);
    await assert.rejects(kiln.renewLease(e.lease.id), isEnded);
  });

  it('withChunks releases the lease after fn returns, and returns what fn returns', async () => {
    let id = '';
    const text = await kiln.withChunks('demo', [Q, chunk.elements()], async (e) => {
      id = e.lease.id;
      return readFile(fileUnder(e.root, 'questions/probability/dice/question.html'), 'utf8');
    });
    assert.ok(text.length > 0);
    await assert.rejects(kiln.renewLease(id), isEnded);
  });

  it('withChunks releases the lease when fn throws, and rethrows fn\'s error', async () => {
    let id = '';
    const boom = new Error('boom');
    await assert.rejects(
      kiln.withChunks('demo', Q, (e) => {
        id = e.lease.id;
        throw boom;
      }),
      (e: unknown) => e === boom,
    );
    assert.match(id, /^[0-9a-f]{32}$/);
    await assert.rejects(kiln.renewLease(id), isEnded);
  });

  it('withChunks keeps the lease while fn outlives its duration', async () => {
    const ttl = 300;
    let id = '';
    await kiln.withChunks('demo', Q, async (e, { signal }) => {
      id = e.lease.id;
      await sleep(ttl * 4);
      assert.equal(signal.aborted, false);
      // Without the renewals the lease would have ended three durations ago.
      const still = await kiln.renewLease(id, ttl);
      assert.equal(still.id, id);
      await readFile(fileUnder(e.root, 'questions/probability/dice/info.json'));
    }, { leaseTtlMs: ttl });
    await assert.rejects(kiln.renewLease(id), isEnded);
  });

  it('withChunks aborts fn\'s signal when the lease is lost', async () => {
    const reason = await kiln.withChunks('demo', Q, async (e, { signal }) => {
      await kiln.releaseLease(e.lease.id); // as if the server had restarted
      const aborted = new Promise<unknown>((resolve) => signal.addEventListener('abort', () => resolve(signal.reason)));
      return Promise.race([aborted, sleep(3_000).then(() => 'not aborted')]);
    }, { leaseTtlMs: 200 });
    assert.ok(reason instanceof KilnError, String(reason));
    assert.equal(reason.error, 'lease_lost');
  });
});
