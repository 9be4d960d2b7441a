// The Unix socket transport against a real kiln serve on `--listen unix:/path`: ensure and
// read, withChunks, files over HTTP, errors, and fileUrl's path form.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chunk, fileUnder, Kiln, KilnError } from '../src/index.js';
import { Scratch } from './helpers/kiln.js';

describe('unix socket', () => {
  const scratch = new Scratch();
  let kiln: Kiln;
  let socket: string;

  before(async () => {
    await scratch.sync(scratch.copyExample(), 'demo');
    socket = join(scratch.root, 'kiln.sock');
    const served = await scratch.serve({ listen: `unix:${socket}` });
    assert.equal(served.baseUrl, `unix:${socket}`);
    kiln = new Kiln({ baseUrl: served.baseUrl });
  });
  after(async () => {
    kiln?.close();
    await scratch.cleanup();
  });

  it('ensures and reads from disk, and releases the lease', async () => {
    let id = '';
    const html = await kiln.withChunks('demo', [chunk.question('calculus/integrals/area'), chunk.elements()], (e) => {
      id = e.lease.id;
      assert.equal(e.paths.length, 2);
      return readFile(fileUnder(e.root, 'questions/calculus/integrals/area/question.html'), 'utf8');
    });
    assert.ok(html.length > 0);
    await assert.rejects(kiln.renewLease(id), (e: unknown) => e instanceof KilnError && e.status === 404);
  });

  it('reads files and metadata over the socket', async () => {
    const summary = await kiln.course('demo');
    const file = await kiln.readFile('demo', 'clientFilesCourse/course.css', { version: summary.version });
    assert.equal(file.version, summary.version);
    assert.match(file.contentType ?? '', /^text\/css/);
    const health = await kiln.healthz();
    assert.ok(health.status === 'ok' || health.status === 'degraded');
  });

  it('carries kiln\'s errors over the socket', async () => {
    await assert.rejects(kiln.ensure('demo', chunk.question('nope/nope')), (e: unknown) =>
      e instanceof KilnError && e.status === 404 && /nope\/nope/.test(e.message));
  });

  it('gives the path alone as a file URL', () => {
    assert.equal(kiln.fileUrl('demo', 'clientFilesCourse/course.css', { version: 'v1' }),
      '/v1/courses/demo/files/clientFilesCourse/course.css?version=v1');
  });

  it('serves many requests at once over kept-alive connections', async () => {
    const all = await Promise.all(Array.from({ length: 40 }, () => kiln.course('demo')));
    assert.equal(new Set(all.map((s) => s.version)).size, 1);
  });
});
