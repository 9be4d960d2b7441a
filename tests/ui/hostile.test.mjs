// kiln against hostile content in a real browser: headless Chromium (Debian's, or CHROMIUM)
// driven by playwright-core, against a `kiln serve` without tokens on loopback (the default
// sidecar) that serves one library. A course file and a render-cache entry hold HTML and SVG
// whose scripts try to pause the library from kiln's own origin, and a page on a name that
// rebinds to 127.0.0.1 tries the same and to read a course. None of it may work: the library
// stays active. Needs KILN_BIN (the kiln binary).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { start } from './support.mjs';

const kilnBin = process.env.KILN_BIN;
const repo = fileURLToPath(new URL('../..', import.meta.url));
const browserPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const QUESTION = 'questions/probability/dice';
const EVIL = 'attacker.example';

// A synchronous request: if the script runs at all, the pause has happened by the time the
// page's load event fires, so the test needs no wait for it.
const PAUSE = `
var x = new XMLHttpRequest();
x.open('POST', '/v1/libraries/pages/pause', false);
x.setRequestHeader('content-type', 'application/json');
try { x.send('{}'); document.title = 'ran: ' + x.status; } catch (e) { document.title = 'ran: ' + e; }
`;
const HTML = `<!doctype html><title>inert</title><p>a course file</p><script>${PAUSE}</script>`;
const SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>${PAUSE.replace(/document\.title = /g, 'void ')}</script></svg>`;

function git(dir, ...args) {
  const r = spawnSync('git', ['-C', dir, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

describe('hostile content in a browser', { skip: kilnBin === undefined && 'KILN_BIN is not set' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-hostile-'));
  const procs = [];
  let base;
  let port;
  let browser;
  let page;
  const env = { ...process.env, KILN_DATA_DIR: join(dir, 'data'), KILN_CONFIG: join(dir, 'kiln.toml'), KILN_QUIET: '1' };

  before(async () => {
    // The example course with a hostile question file: anything in the repository is
    // served as it is.
    const course = join(dir, 'course');
    cpSync(join(repo, 'examples/course'), course, { recursive: true, verbatimSymlinks: true });
    writeFileSync(join(course, QUESTION, 'evil.html'), HTML);
    writeFileSync(join(course, QUESTION, 'evil.svg'), SVG);
    git(course, 'init', '-q');
    git(course, 'add', '-A');
    git(course, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'hostile');
    // No token: the loopback default. The library's listing and renderer are never called.
    writeFileSync(env.KILN_CONFIG, `
[[library]]
name = "pages"
source = { http = "http://127.0.0.1:9/pages" }
renderer = { http = "http://127.0.0.1:9/render" }
`);
    const sync = spawnSync(kilnBin, ['sync', course, '--course', 'demo'], { env, encoding: 'utf8' });
    assert.equal(sync.status, 0, sync.stderr);
    const serve = await start(kilnBin, ['serve', '--listen', '127.0.0.1:0'], { env });
    procs.push(serve.child);
    base = serve.url;
    port = new URL(base).port;
    // A renderer's (or a write client's) output, stored with the type it gave.
    const put = await fetch(`${base}/v1/cache/pages/evil`, { method: 'PUT', headers: { 'content-type': 'text/html' }, body: HTML });
    assert.equal(put.status, 200, await put.text());
    browser = await chromium.launch({
      executablePath: browserPath,
      // DNS rebinding, settled: the attacker's name now resolves to this machine.
      // Chromium's own check of requests into the local network is off: not every browser
      // has it, and kiln must not depend on it.
      args: [
        '--no-sandbox',
        `--host-resolver-rules=MAP ${EVIL} 127.0.0.1`,
        '--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessSendPreflights,PrivateNetworkAccessRespectPreflightResults,BlockInsecurePrivateNetworkRequests',
      ],
    });
    page = await browser.newPage();
    page.setDefaultTimeout(30_000);
  });

  after(async () => {
    await browser?.close();
    for (const p of procs) p.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  async function paused() {
    const r = await fetch(`${base}/v1/libraries`);
    assert.equal(r.status, 200);
    const libs = await r.json();
    const lib = libs.find((l) => l.name === 'pages');
    assert.ok(lib, JSON.stringify(libs));
    return lib.paused;
  }

  for (const [what, path] of [
    ['an HTML course file', `/v1/courses/demo/files/${QUESTION}/evil.html`],
    ['an SVG course file', `/v1/courses/demo/files/${QUESTION}/evil.svg`],
    ['an HTML render-cache entry', '/v1/cache/pages/evil'],
  ]) {
    it(`runs no script of ${what} on kiln's origin`, async () => {
      const resp = await page.goto(`${base}${path}`);
      assert.equal(resp.status(), 200);
      const h = resp.headers();
      assert.equal(h['content-security-policy'], 'sandbox');
      assert.equal(h['x-content-type-options'], 'nosniff');
      if (path.endsWith('.html') || path.endsWith('/evil')) {
        assert.equal(await page.title(), 'inert', 'the script ran');
      }
      assert.equal(await paused(), false, `${what} paused the library`);
    });
  }

  it('answers no page on a rebound name, and lets it change nothing', async () => {
    const evil = `http://${EVIL}:${port}`;
    // The attacker's page, as its own server sent it before the name was rebound.
    await page.route(`${evil}/start`, (route) => route.fulfill({
      contentType: 'text/html',
      body: `<!doctype html><title>waiting</title><script>
        (async () => {
          const out = [];
          for (const [method, path, body] of [['POST', '/v1/libraries/pages/pause', '{}'], ['GET', '/v1/courses/demo', undefined]]) {
            try {
              const r = await fetch(path, { method, body, headers: body ? { 'content-type': 'application/json' } : {} });
              out.push(r.status + ' ' + (await r.json()).error);
            } catch (e) { out.push('failed: ' + e); }
          }
          document.title = 'done: ' + out.join(', ');
        })();
      </script>`,
    }));
    await page.goto(`${evil}/start`);
    await page.waitForFunction(() => document.title.startsWith('done'));
    assert.equal(await page.title(), 'done: 403 host_not_allowed, 403 host_not_allowed');
    assert.equal(await paused(), false, 'the rebound page paused the library');
  });
});
