// kiln's dashboard in a real browser: headless Chromium (Debian's, or CHROMIUM) driven by
// playwright-core, against a real `kiln serve` and `kiln worker` on a fresh data directory
// holding the example course and one library over a renderer in this file. Signs in with a
// token, opens each page, starts a reheat and watches its bar reach 100%, redrives a dead
// letter, cancels a run, browses a course file; a read token sees no action button and its
// admin call is refused. Each page is saved as a screenshot in SCREENSHOTS (default
// ./screenshots). Needs KILN_BIN (the kiln binary).

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { start } from './support.mjs';

const kilnBin = process.env.KILN_BIN;
const repo = fileURLToPath(new URL('../..', import.meta.url));
const shots = process.env.SCREENSHOTS ?? fileURLToPath(new URL('./screenshots', import.meta.url));
const browserPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ADMIN = 'kiln_ui-admin-0123456789abcdef';
const READER = 'kiln_ui-reader-0123456789abcdef';
const PAGES = 80;
const FLAKY = 'p/13';
const QUESTION = 'questions/probability/dice';

/** A listing of PAGES pages in three groups, and a renderer that refuses FLAKY once. */
function renderer() {
  let refused = false;
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/pages') {
      const page = Number(url.searchParams.get('page') ?? 0);
      const size = 20;
      const items = [];
      for (let i = page * size; i < Math.min(PAGES, (page + 1) * size); i++) {
        items.push({ key: `p/${i}`, group: `g${i % 3}`, props: { title: `Page ${i}` } });
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ items, next: (page + 1) * size < PAGES ? page + 1 : null }));
    }
    if (url.pathname === '/render') {
      let body = '';
      for await (const c of req) body += c;
      const key = decodeURIComponent(req.headers['x-kiln-key'] ?? '');
      if (key === FLAKY && !refused) {
        refused = true;
        res.writeHead(422, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: `not ready: ${key}` }));
      }
      const props = JSON.parse(body || 'null');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(`<h1>${props?.title ?? key}</h1>`);
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('the dashboard in a browser', { skip: kilnBin === undefined && 'KILN_BIN is not set' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-ui-'));
  const procs = [];
  let site;
  let base;
  let browser;
  let page;
  const problems = [];
  const env = { ...process.env, KILN_DATA_DIR: join(dir, 'data'), KILN_CONFIG: join(dir, 'kiln.toml'), KILN_QUIET: '1', KILN_UI_ADMIN: ADMIN, KILN_UI_READER: READER };

  before(async () => {
    assert.ok(existsSync(browserPath), `no Chromium at ${browserPath} (apt-get install chromium, or set CHROMIUM)`);
    mkdirSync(shots, { recursive: true });
    site = await renderer();
    const r = `http://127.0.0.1:${site.address().port}`;
    writeFileSync(env.KILN_CONFIG, `
[[token]]
name = "ops"
scopes = ["read", "admin"]
env = "KILN_UI_ADMIN"

[[token]]
name = "viewer"
scopes = ["read"]
env = "KILN_UI_READER"

[[library]]
name = "pages"
source = { http = "${r}/pages" }
renderer = { http = "${r}/render" }
page_size = 20
max_attempts = 1
limits = { rate = 20, burst = 2 }
`);
    const sync = spawnSync(kilnBin, ['sync', join(repo, 'examples/course'), '--course', 'demo'], { env, encoding: 'utf8' });
    assert.equal(sync.status, 0, sync.stderr);
    const serve = await start(kilnBin, ['serve', '--listen', '127.0.0.1:0'], { env });
    procs.push(serve.child);
    base = serve.url;
    const worker = spawn(kilnBin, ['worker'], { env, stdio: 'ignore' });
    procs.push(worker);
    browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.setDefaultTimeout(30_000);
    // A refused script, style or call (the page's policy) or an uncaught error fails the run.
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(m.text()); });
  });

  after(async () => {
    await browser?.close();
    for (const p of procs) p.kill('SIGTERM');
    site?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function signIn(token) {
    await page.goto(`${base}/ui#/`);
    const out = page.locator('#who button');
    if (await out.count()) await out.click();
    await page.fill('#token', token);
    await page.click('#sign-in');
    await page.locator('#who').filter({ hasText: token === ADMIN ? 'ops' : 'viewer' }).waitFor();
  }

  const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  it('refuses a wrong token and signs in with a right one', async () => {
    await page.goto(`${base}/ui`);
    await page.fill('#token', 'kiln_wrong');
    await page.click('#sign-in');
    await page.locator('.error').filter({ hasText: 'not known' }).waitFor();
    await signIn(READER);
    await page.locator('h1', { hasText: 'Overview' }).waitFor();
    await page.locator('a[href="#/course/demo"]').waitFor();
    await page.locator('[data-name=budget]').waitFor();
    await page.locator('a[href="#/library/pages"]').waitFor();
    await shot('overview');
  });

  it('shows a read token no action button, and refuses its admin call', async () => {
    await page.goto(`${base}/ui#/library/pages`);
    await page.locator('h2', { hasText: 'Runs' }).waitFor();
    await page.locator('text=No runs yet.').waitFor();
    assert.equal(await page.locator('[data-action]').count(), 0);
    const status = await page.evaluate(async ([url, token]) => {
      const r = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
      return r.status;
    }, [`${base}/v1/libraries/pages/builds`, READER]);
    assert.equal(status, 403);
  });

  it('starts a reheat and watches its bar reach 100%', async () => {
    await signIn(ADMIN);
    await page.goto(`${base}/ui#/library/pages`);
    await page.click('[data-action=start]');
    await page.waitForURL(/#\/run\/\d+$/);
    const run = page.url().match(/#\/run\/(\d+)$/)[1];
    const bar = page.locator(`[data-name=run-${run}]`);
    await bar.waitFor();
    const seen = new Set();
    for (let i = 0; i < 600; i++) {
      seen.add(await bar.getAttribute('data-percent'));
      if (seen.has('100')) break;
      await page.waitForTimeout(100);
    }
    assert.ok(seen.has('100'), `the bar went ${[...seen].join(' -> ')}`);
    assert.ok([...seen].some((p) => Number(p) > 0 && Number(p) < 100), `a bar between 0 and 100 was seen: ${[...seen]}`);
    await page.locator('.badge', { hasText: 'failed' }).waitFor();
    await page.locator('td', { hasText: `render "${FLAKY}"` }).waitFor();
    await page.locator('[data-name=throughput]').waitFor();
    await shot('run');
  });

  it('redrives a dead letter', async () => {
    const runPage = page.url();
    await page.goto(`${base}/ui#/`);
    await page.locator('td', { hasText: `render "${FLAKY}"` }).waitFor();
    assert.equal(await page.locator('[data-action=redrive-all]').count(), 1, 'the overview lists it too');
    await page.goto(runPage);
    await page.click('[data-action=redrive]');
    await page.locator('text=No dead letters.').waitFor();
    for (let i = 0; i < 100; i++) {
      const r = await fetch(`${base}/v1/cache/pages/${FLAKY}`, { headers: { authorization: `Bearer ${READER}` } });
      if (r.status === 200) return assert.equal(await r.text(), '<h1>Page 13</h1>');
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.fail('the redriven render never landed');
  });

  it('cancels a run', async () => {
    await page.goto(`${base}/ui#/library/pages`);
    await page.click('[data-action=pause]');
    await page.locator('h1 .badge', { hasText: 'paused' }).waitFor();
    await page.click('[data-action=start]');
    await page.waitForURL(/#\/run\/\d+$/);
    await page.click('[data-action=cancel]');
    await page.locator('.badge', { hasText: 'cancelled' }).waitFor();
    assert.equal(await page.locator('[data-action=cancel]').count(), 0);
    await page.goto(`${base}/ui#/library/pages`);
    await page.click('[data-action=resume]');
    await page.locator('h1 .badge', { hasText: 'active' }).waitFor();
    await page.locator('td .badge', { hasText: 'cancelled' }).waitFor();
    await page.locator('a', { hasText: 'p/0' }).first().waitFor();
    await shot('library');
    await page.locator('a', { hasText: 'p/0' }).first().click();
    await page.locator('pre[data-name=entry]', { hasText: '<h1>Page 0</h1>' }).waitFor();
    await shot('entry');
  });

  it('browses a course file', async () => {
    await page.goto(`${base}/ui#/course/demo`);
    await page.locator('h2', { hasText: 'Versions' }).waitFor();
    await page.locator('.badge', { hasText: 'current' }).waitFor();
    await page.click(`[data-chunk="question:probability/dice"]`);
    await page.click(`[data-file="${QUESTION}/question.html"]`);
    const want = readFileSync(join(repo, 'examples/course', QUESTION, 'question.html'), 'utf8');
    const pre = page.locator('pre[data-name=file]');
    await pre.waitFor();
    assert.equal(await pre.textContent(), want);
    await shot('course');
  });

  it('reads on a phone', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base}/ui#/`);
    await page.locator('a[href="#/course/demo"]').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
    await shot('overview-phone');
    assert.deepEqual(problems, [], 'no error in the page');
  });
});
