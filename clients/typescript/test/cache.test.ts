// The render cache as a service, through the client against a real kiln serve: put with
// group, TTL and metadata, get with ETags, delete, render with props through a command
// renderer, listings page by page, and soft invalidation that keeps serving stale entries.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Kiln, KilnError } from '../src/index.js';
import { Scratch } from './helpers/kiln.js';

describe('the render cache as a service', () => {
  const scratch = new Scratch();
  let kiln: Kiln;

  before(async () => {
    // `cat` renders the props as they are: the entry is the props' JSON.
    scratch.config([
      '[[library]]', 'name = "pages"', 'source = { course = "demo" }', 'renderer = { command = ["cat"] }',
      'content_type = "application/json"', '',
    ].join('\n'));
    await scratch.sync(scratch.copyExample(), 'demo');
    kiln = new Kiln({ baseUrl: (await scratch.serve()).baseUrl });
  });
  after(() => scratch.cleanup());

  it('puts an entry with its group, type and metadata, and reads it back with an ETag', async () => {
    const stored = await kiln.put('pages', 'guides/intro', '<h1>Intro</h1>', {
      contentType: 'text/html; charset=utf-8',
      group: 'course-7',
      meta: { assets: '["main.css"]' },
    });
    assert.equal(stored.key, 'guides/intro');
    assert.equal(stored.group, 'course-7');
    assert.equal(stored.size, 14);
    const got = await kiln.get('pages', 'guides/intro');
    assert.ok(got);
    assert.equal(got.status, 200);
    assert.equal(got.data.toString(), '<h1>Intro</h1>');
    assert.equal(got.contentType, 'text/html; charset=utf-8');
    assert.equal(got.group, 'course-7');
    assert.deepEqual(got.meta, { assets: '["main.css"]' });
    assert.equal(got.cacheControl, 'no-cache');
    assert.equal(got.stale, false);
    assert.ok(got.etag);
    const again = await kiln.get('pages', 'guides/intro', { ifNoneMatch: got.etag });
    assert.equal(again?.status, 304);
    assert.equal(again?.data.length, 0);
  });

  it('gives an entry with a TTL a max-age', async () => {
    await kiln.put('pages', 'short', 'x', { ttlSeconds: 120 });
    const got = await kiln.get('pages', 'short');
    assert.match(got?.cacheControl ?? '', /^max-age=1[12][0-9]$/);
  });

  it('deletes one entry', async () => {
    await kiln.put('pages', 'gone', 'x');
    assert.equal(await kiln.delete('pages', 'gone'), true);
    assert.equal(await kiln.delete('pages', 'gone'), false);
    assert.equal(await kiln.get('pages', 'gone'), null);
  });

  it('renders a key with props through the library renderer and stores it', async () => {
    const rendered = await kiln.render('pages', 'cards/7', { title: 'Seven' }, { group: 'deck' });
    assert.equal(rendered.status, 200);
    assert.deepEqual(JSON.parse(rendered.data.toString()), { title: 'Seven' });
    assert.equal(rendered.group, 'deck');
    const stored = await kiln.get('pages', 'cards/7');
    assert.deepEqual(JSON.parse(stored!.data.toString()), { title: 'Seven' });
  });

  it('lists entries page by page with counts per group', async () => {
    for (let i = 0; i < 7; i++) await kiln.put('pages', `list/${i}`, 'x', { group: 'listed' });
    const first = await kiln.list('pages', { prefix: 'list/', limit: 3 });
    assert.equal(first.items.length, 3);
    assert.ok(first.next);
    assert.ok(first.groups?.some((g: { group: string; count: number }) => g.group === 'listed' && g.count === 7));
    const keys: string[] = [];
    for await (const e of kiln.entries('pages', { prefix: 'list/', limit: 3 })) keys.push(e.key);
    assert.deepEqual(keys, [0, 1, 2, 3, 4, 5, 6].map((i) => `list/${i}`));
    const group = await kiln.list('pages', { group: 'listed', limit: 100 });
    assert.equal(group.items.length, 7);
    await assert.rejects(kiln.list('pages', { limit: 0 }), (e: unknown) => e instanceof KilnError && e.status === 400);
  });

  it('invalidates keys: still served, marked stale, re-rendered when the library knows them', async () => {
    // A course library renders its questions only: a question is queued, another key not.
    await kiln.put('pages', 'algebra/linear', 'old', { group: 'demo' });
    await kiln.put('pages', 'inv/a', 'old too', { group: 'g' });
    const done = await kiln.invalidate('pages', { keys: ['algebra/linear', 'inv/a'] });
    assert.equal(done.marked, 2);
    assert.equal(done.queued, 1);
    assert.equal((await kiln.get('pages', 'inv/a'))?.stale, true);
    const got = await kiln.get('pages', 'algebra/linear');
    assert.equal(got?.data.toString(), 'old');
    assert.equal(got?.stale, true);
    await assert.rejects(
      kiln.invalidate('pages', {} as never),
      (e: unknown) => e instanceof KilnError && e.status === 400 && e.error === 'invalid_input',
    );
  });

  it('refuses a write to an unknown library with a 404 naming it', async () => {
    await assert.rejects(
      kiln.put('nolib', 'k', 'x'),
      (e: unknown) => e instanceof KilnError && e.status === 404 && /nolib/.test(e.message),
    );
  });
});
