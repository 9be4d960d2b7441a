// The retry policy on its own: delays double from the base up to the cap with jitter in the
// upper half, and which connection errors are retried for which requests.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { connectionCode, retryableConnection, retryDelay } from '../src/retry.js';

describe('retry policy', () => {
  it('doubles the delay from the base up to the cap, in the upper half of each', () => {
    const policy = { retries: 10, baseDelayMs: 50, maxDelayMs: 2000 };
    for (let attempt = 0; attempt < 10; attempt++) {
      const ceiling = Math.min(2000, 50 * 2 ** attempt);
      for (let i = 0; i < 200; i++) {
        const d = retryDelay(policy, attempt);
        assert.ok(d >= ceiling / 2 && d <= ceiling, `attempt ${attempt}: ${d} outside [${ceiling / 2}, ${ceiling}]`);
      }
    }
  });

  it('finds the socket error under fetch\'s wrapping', () => {
    const wrapped = new TypeError('fetch failed', { cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) });
    assert.equal(connectionCode(wrapped), 'ECONNREFUSED');
    assert.equal(connectionCode(new Error('other')), undefined);
  });

  it('retries a reset connection only for an idempotent request', () => {
    assert.equal(retryableConnection('ECONNREFUSED', false), true);
    assert.equal(retryableConnection('ECONNRESET', true), true);
    assert.equal(retryableConnection('ECONNRESET', false), false);
  });
});
