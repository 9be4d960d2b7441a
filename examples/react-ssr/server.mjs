// A React render service as kiln sees one: a paginated listing of its pages and a renderer.
//
//   node server.mjs [--port 0] [--pages pages.json] [--delay-ms 0]
//
// GET  /pages?page=N&page_size=S[&group=G] -> {"items":[{"key","group","props"}],"next":N+1|null}
//      (pages from the --pages file, read again whenever it changes; pages start at 0)
// POST /render  (props as JSON, the key in x-kiln-key) -> the page's HTML, with its
//      stylesheets as `x-kiln-meta-assets`; an unknown component is a 422.
// GET  /stats -> {"renders", "peak_in_flight", "first_ms", "last_ms", "per_second": [N...]}
//      (renders in flight at once at the most; renders finished in each whole second
//      from the first); DELETE /stats starts the counts again.
//
// The first line printed is `listening on http://127.0.0.1:PORT`.

import { readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import { makePages } from './pages.mjs';
import { BadPage, render } from './render.mjs';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    pages: { type: 'string' },
    'delay-ms': { type: 'string', default: '0' },
  },
});
const delayMs = Number(args['delay-ms']);
let renders = 0;
let inFlight = 0;
let peakInFlight = 0;
let firstMs = null;
let lastMs = null;
let perSecond = [];

function counted() {
  const now = Date.now();
  firstMs ??= now;
  lastMs = now;
  const second = Math.floor((now - firstMs) / 1000);
  while (perSecond.length <= second) perSecond.push(0);
  perSecond[second]++;
  renders++;
}
let cached = { mtimeMs: -1, pages: makePages(30) };

function pages() {
  if (args.pages === undefined) return cached.pages;
  const { mtimeMs } = statSync(args.pages);
  if (mtimeMs !== cached.mtimeMs) cached = { mtimeMs, pages: JSON.parse(readFileSync(args.pages, 'utf8')) };
  return cached.pages;
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

async function readBody(req) {
  const parts = [];
  for await (const p of req) parts.push(p);
  return Buffer.concat(parts).toString('utf8');
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  try {
    if (req.method === 'GET' && url.pathname === '/pages') {
      const page = Number(url.searchParams.get('page') ?? 0);
      const size = Number(url.searchParams.get('page_size') ?? 100);
      const group = url.searchParams.get('group');
      const all = pages().filter((p) => group === null || p.group === group);
      const items = all.slice(page * size, (page + 1) * size);
      // `total` is not in kiln's format: kiln ignores what it does not know.
      return send(res, 200, { items, next: (page + 1) * size < all.length ? page + 1 : null, total: all.length });
    }
    if (req.method === 'POST' && url.pathname === '/render') {
      let props;
      try {
        props = JSON.parse((await readBody(req)) || 'null');
      } catch (e) {
        return send(res, 400, { error: `props are not JSON: ${e.message}` });
      }
      inFlight++;
      peakInFlight = Math.max(peakInFlight, inFlight);
      let out;
      try {
        if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
        out = render(props);
      } finally {
        inFlight--;
      }
      const { html, assets } = out;
      counted();
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'x-kiln-meta-assets': JSON.stringify(assets) });
      return res.end(html);
    }
    if (req.method === 'GET' && url.pathname === '/stats') {
      return send(res, 200, {
        renders,
        peak_in_flight: peakInFlight,
        first_ms: firstMs,
        last_ms: lastMs,
        per_second: perSecond,
      });
    }
    if (req.method === 'DELETE' && url.pathname === '/stats') {
      renders = 0;
      peakInFlight = inFlight;
      firstMs = lastMs = null;
      perSecond = [];
      return send(res, 200, { renders });
    }
    send(res, 404, { error: `no route ${req.method} ${url.pathname}` });
  } catch (e) {
    if (e instanceof BadPage) return send(res, 422, { error: e.message });
    send(res, 500, { error: String(e) });
  }
});

server.listen(Number(args.port), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
