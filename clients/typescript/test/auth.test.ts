// Tokens and scopes against a real kiln serve with [[token]]s (one by hash from
// `kiln token new`, one from an environment variable): 401 without or with an unknown
// token, 403 for a missing scope, success with the right one, and 4xx never retried.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';

import { chunk, fileUnder, Kiln, KilnError } from '../src/index.js';
import { requests, Scratch } from './helpers/kiln.js';

const Q = chunk.question('algebra/quadratic');

describe('tokens and scopes', () => {
  const scratch = new Scratch();
  const readerToken = randomBytes(32).toString('hex');
  let baseUrl: string;
  let appToken: string;

  before(async () => {
    const app = await scratch.token('app', ['read', 'ensure']);
    assert.deepEqual(app.scopes, ['read', 'ensure']);
    assert.match(app.hash, /^blake3:[0-9a-f]{64}$/);
    appToken = app.token;
    scratch.config([
      '[[token]]', 'name = "app"', 'scopes = ["read", "ensure"]', `hash = "${app.hash}"`, '',
      '[[token]]', 'name = "reader"', 'scopes = ["read"]', 'env = "KILN_TS_TEST_READER"', '',
    ].join('\n'));
    await scratch.sync(scratch.copyExample(), 'demo');
    baseUrl = (await scratch.serve({ env: { KILN_TS_TEST_READER: readerToken } })).baseUrl;
  });
  after(() => scratch.cleanup());

  it('refuses a call without a token with a 401 and a Bearer challenge', async () => {
    const kiln = new Kiln({ baseUrl });
    for (const call of [() => kiln.ensure('demo', Q), () => kiln.course('demo')]) {
      await assert.rejects(call(), (e: unknown) => {
        assert.ok(e instanceof KilnError);
        assert.equal(e.status, 401);
        assert.equal(e.error, 'unauthorized');
        assert.match(e.message, /bearer token/);
        assert.match(e.wwwAuthenticate ?? '', /^Bearer /);
        return true;
      });
    }
    // Liveness needs no token.
    assert.ok((await kiln.healthz()).status);
  });

  it('refuses an unknown token with a 401', async () => {
    const kiln = new Kiln({ baseUrl, token: 'not-a-token-of-this-server' });
    await assert.rejects(kiln.course('demo'), (e: unknown) =>
      e instanceof KilnError && e.status === 401 && /invalid_token/.test(e.wwwAuthenticate ?? ''));
  });

  it('refuses an ensure with a read-only token with a 403 naming the scope', async () => {
    const reader = new Kiln({ baseUrl, token: readerToken });
    await assert.rejects(reader.ensure('demo', Q), (e: unknown) => {
      assert.ok(e instanceof KilnError);
      assert.equal(e.status, 403);
      assert.equal(e.error, 'forbidden');
      assert.match(e.message, /ensure/);
      assert.match(e.message, /reader/);
      assert.match(e.wwwAuthenticate ?? '', /insufficient_scope/);
      return true;
    });
    // What the read scope does allow.
    const summary = await reader.course('demo');
    const file = await reader.readFile('demo', 'questions/algebra/quadratic/info.json', { version: summary.version });
    assert.equal(file.version, summary.version);
  });

  it('ensures, reads and releases with a token that has the scope', async () => {
    const kiln = new Kiln({ baseUrl, token: appToken });
    const text = await kiln.withChunks('demo', Q, (e) =>
      readFile(fileUnder(e.root, 'questions/algebra/quadratic/question.html'), 'utf8'));
    assert.ok(text.length > 0);
  });

  it('never retries a 4xx', async () => {
    const reader = new Kiln({ baseUrl, token: readerToken });
    const route = '/v1/courses/{course}/ensure';
    const before401 = await requests(reader, route, 401);
    const before403 = await requests(reader, route, 403);
    const retrying = { retries: 5, retryBaseDelayMs: 1 };
    await assert.rejects(new Kiln({ baseUrl, ...retrying }).ensure('demo', Q), KilnError);
    await assert.rejects(new Kiln({ baseUrl, token: readerToken, ...retrying }).ensure('demo', Q), KilnError);
    assert.equal(await requests(reader, route, 401), before401 + 1);
    assert.equal(await requests(reader, route, 403), before403 + 1);
  });
});
