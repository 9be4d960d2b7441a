// kiln's dashboard: a page per hash route (#/, #/course/ID[/VERSION], #/library/NAME,
// #/run/ID, #/entry/LIBRARY/KEY), each drawn once and then refreshed every second from the
// JSON API with the token signed in with (session storage, sent as a bearer token). Data is
// only ever put into the page as text, never as markup. Buttons that act show only for a
// token with the admin scope, and the server checks the scope again on every call.
'use strict';

const REFRESH_MS = 1000;
const state = { token: sessionStorage.getItem('kiln-token') || '', me: null, timer: null, page: 0 };

// ---- DOM and formatting ----------------------------------------------------------------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

const enc = encodeURIComponent;
const link = (href, text) => h('a', { href }, text);
const badge = (text, cls) => h('span', { class: `badge ${cls || text}` }, text);

function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}
const num = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en'));
const when = (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '–');
function dur(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
const short = (v) => (v && v.length > 14 ? v.slice(0, 12) : v || '–');

function table(head, rows, empty) {
  if (!rows.length) return h('p', { class: 'muted' }, empty || 'None.');
  return h('div', { class: 'scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, head.map((c) => h('th', { class: h_num(c) }, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c, i) => h('td', { class: h_num(head[i]) }, c)))))));
}
const h_num = (c) => (/^[#0-9]|Bytes|Jobs|Size|Count|Waiting|Leased|Done|Dead|Chunks|Shared/.test(c) ? 'num' : null);

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function bar(fraction, label, name) {
  const pct = Math.max(0, Math.min(100, Math.round((fraction || 0) * 100)));
  const fill = h('span', {});
  fill.style.width = `${pct}%`; // through the CSSOM: the page's policy refuses style attributes
  return h('div', { class: 'bar', role: 'progressbar', 'aria-valuenow': pct, 'aria-valuemin': 0, 'aria-valuemax': 100, 'data-name': name, 'data-percent': pct },
    fill, h('em', {}, label || `${pct}%`));
}

function card(title, wide) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const el = h('section', { class: wide ? 'card wide' : 'card' }, h('h2', {}, title), body);
  const set = (...kids) => body.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));
  return { el, set, hide: () => { el.hidden = true; } };
}

function crumbs(parts) {
  document.getElementById('crumbs').replaceChildren(...parts.map(([href, text]) => link(href, text)));
}

const can = (scope) => !!state.me && state.me.scopes.includes(scope);

// ---- the API ------------------------------------------------------------------------------

async function api(path, opts = {}) {
  const headers = { accept: 'application/json' };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  if (opts.method === 'POST') headers['content-type'] = 'application/json';
  const resp = await fetch(path, {
    method: opts.method || 'GET',
    headers,
    body: opts.method === 'POST' ? JSON.stringify(opts.body || {}) : undefined,
  });
  if (opts.raw) return resp;
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!resp.ok) {
    const e = new Error((body && body.message) || `${resp.status} ${resp.statusText}`);
    e.status = resp.status;
    throw e;
  }
  return body;
}

/** A button that runs `action`, then refreshes the page; its error shows beside it. */
function act(label, action, cls, name) {
  const out = h('span', { class: 'error' });
  const b = h('button', {
    class: cls, 'data-action': name || label.toLowerCase(),
    onclick: async () => {
      b.disabled = true; out.textContent = '';
      try { await action(); await refreshNow(); } catch (e) { out.textContent = e.message; } finally { b.disabled = false; }
    },
  }, label);
  return h('span', {}, b, ' ', out);
}

// ---- live refresh -----------------------------------------------------------------------------

let current = null;
async function refreshNow() {
  if (!current) return;
  const page = state.page;
  try {
    await current();
    if (page === state.page) document.getElementById('live').textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (e.status === 401) return signIn(e.message);
    document.getElementById('live').textContent = `refresh failed: ${e.message}`;
  }
}

function live(refresh) {
  current = refresh;
  const page = state.page;
  const tick = async () => {
    await refreshNow();
    if (page === state.page) state.timer = setTimeout(tick, REFRESH_MS);
  };
  tick();
}

// ---- pages ----------------------------------------------------------------------------------

function runRow(r) {
  const settled = r.jobs_done + r.jobs_dead + r.jobs_dropped;
  return [link(`#/run/${r.run}`, `#${r.run}`), r.library, short(r.build), badge(r.state),
    when(r.created_at), dur(r.summary.wall_ms), `${num(settled)} / ${num(r.jobs_enqueued)}`, num(r.jobs_dead)];
}

function progress(r) {
  const settled = r.jobs_done + r.jobs_dead + r.jobs_dropped;
  const frac = r.state === 'running' ? (r.jobs_enqueued ? settled / r.jobs_enqueued : 0) : 1;
  const rate = r.jobs_done / Math.max(r.summary.wall_ms / 1000, 0.001);
  const eta = r.state === 'running' && rate > 0 ? ((r.jobs_enqueued - settled) / rate) * 1000 : null;
  const label = `${Math.round(frac * 100)}% · ${num(settled)} / ${num(r.jobs_enqueued)} jobs` +
    (r.state === 'running' ? ` · ${rate.toFixed(0)}/s · ETA ${dur(eta)}` : ` · ${r.state}`);
  return bar(frac, label, `run-${r.run}`);
}

async function overview(main) {
  crumbs([]);
  const c = {
    runs: card('Runs in progress', true), courses: card('Courses'), libs: card('Libraries'),
    queue: card('Queue'), server: card("This server's chunk cache"), dead: card('Dead letters', true),
  };
  main.replaceChildren(h('h1', {}, 'Overview'), h('div', { class: 'grid' }, Object.values(c).map((x) => x.el)));
  if (!state.me.reheat) { c.runs.hide(); c.libs.hide(); c.queue.hide(); c.dead.hide(); }
  return async () => {
    const [courses, server] = await Promise.all([api('/v1/courses'), api('/v1/server')]);
    c.courses.set(table(['Course', 'Current version', 'Published'],
      courses.map((x) => [link(`#/course/${enc(x.course)}`, x.course), short(x.version), when(x.published_at)]), 'No course synced yet.'));
    const lookups = server.hits + server.misses;
    c.server.set(bar(server.budget_bytes ? server.cache_bytes / server.budget_bytes : 0,
      `${bytes(server.cache_bytes)} of ${bytes(server.budget_bytes)}`, 'budget'),
    kv([['Chunks on disk', num(server.cache_chunks)],
      ['Hit rate', lookups ? `${((100 * server.hits) / lookups).toFixed(1)}% of ${num(lookups)}` : '–'],
      ['Downloads', `${num(server.downloads)} (${bytes(server.bytes_downloaded)})`],
      ['Evictions', num(server.evictions)], ['Failed fetches', num(server.errors)],
      ['Leases held', num(server.leases_active)]]));
    if (!state.me.reheat) return;
    const [libs, runs, queue, dead] = await Promise.all([api('/v1/libraries'), api('/v1/runs?running=true'), api('/v1/queue'), api('/v1/dead-letters?limit=20')]);
    c.dead.set(table(['Job', 'Library', 'Run', 'Attempts', 'Error', 'Failed'], dead.map((d) => [
      d.job, d.library || '–', d.run ? link(`#/run/${d.run}`, `#${d.run}`) : 'live', num(d.attempts), d.error, when(d.failed_at)]), 'No dead letters.'),
    dead.length && can('admin') ? act('Redrive all', () => api('/v1/dead-letters/redrive', { method: 'POST' }), 'primary', 'redrive-all') : null,
    queue.dead > dead.length ? h('p', { class: 'muted' }, `The oldest ${dead.length} of ${num(queue.dead)}.`) : null);
    c.libs.set(table(['Library', 'State', 'Last run'], libs.map((l) => [
      link(`#/library/${enc(l.name)}`, l.name), l.paused ? badge('paused') : badge('active', 'complete'),
      l.last_run ? [link(`#/run/${l.last_run.run}`, `#${l.last_run.run}`), ' ', badge(l.last_run.state)] : '–'])));
    c.runs.set(runs.length ? runs.map((r) => h('div', { class: 'run' },
      h('p', {}, link(`#/run/${r.run}`, `Run #${r.run}`), ` of ${r.library} (build ${short(r.build)})`), progress(r)))
      : h('p', { class: 'muted' }, 'No run in progress.'));
    c.queue.set(table(['Job type', 'Waiting', 'Leased'], queue.by_type.map((q) => [q.job_type, num(q.waiting), num(q.leased)]), 'The queue is empty.'),
      h('p', {}, 'Dead letters: ', h('strong', { 'data-name': 'dead' }, num(queue.dead))),
      queue.paused.length ? h('p', {}, 'Paused: ', queue.paused.join(', ')) : null);
  };
}

async function coursePage(main, course, version) {
  crumbs([['#/', 'overview'], [`#/course/${enc(course)}`, course]]);
  const c = { versions: card('Versions', true), files: card('Files', true), manifest: card('Manifest', true) };
  main.replaceChildren(h('h1', {}, `Course ${course}`), h('div', { class: 'grid' }, Object.values(c).map((x) => x.el)));
  let shown = null;
  const viewer = h('div', {});
  const drawVersion = async (v) => {
    shown = v;
    const m = await api(`/v1/courses/${enc(course)}/versions/${enc(v)}`);
    const kinds = {};
    for (const ch of m.chunks) kinds[ch.kind] = (kinds[ch.kind] || 0) + 1;
    c.manifest.set(h('p', {}, `Version ${short(v)}: `, Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(', ')),
      table(['Chunk', 'Kind', 'Size'], m.chunks.map((ch) => [ch.chunk, ch.kind, bytes(ch.size)])));
    const tree = h('ul', {}, m.chunks.map((ch) => {
      const list = h('ul', {});
      const open = async () => {
        if (list.childElementCount) { list.replaceChildren(); return; }
        const files = await api(`/v1/courses/${enc(course)}/versions/${enc(v)}/files?chunk=${enc(ch.chunk)}`);
        list.replaceChildren(...files.map((f) => h('li', {}, h('a', {
          'data-file': f.path, onclick: () => showFile(course, v, f.path, viewer),
        }, f.path), h('span', { class: 'muted' }, ` ${bytes(f.size)}`))));
      };
      return h('li', {}, h('a', { 'data-chunk': ch.chunk, onclick: () => open().catch((e) => list.replaceChildren(h('li', { class: 'error' }, e.message))) },
        `▸ ${ch.root || ch.chunk}`), list);
    }));
    c.files.set(h('div', { class: 'tree' }, tree), viewer);
  };
  return async () => {
    const versions = await api(`/v1/courses/${enc(course)}/versions`);
    c.versions.set(table(['Version', 'Published', 'Chunks', 'Bytes', 'Shared with previous', ''],
      versions.map((v) => [link(`#/course/${enc(course)}/${enc(v.version)}`, short(v.version)), when(v.created_at), num(v.chunks), bytes(v.bytes),
        `${bytes(v.shared_bytes)} (${v.bytes ? Math.round((100 * v.shared_bytes) / v.bytes) : 0}%)`, v.current ? badge('current', 'complete') : ''])));
    const want = version || (versions.find((v) => v.current) || versions[0] || {}).version;
    if (want && want !== shown) await drawVersion(want);
  };
}

async function showFile(course, version, path, viewer) {
  const resp = await api(`/v1/courses/${enc(course)}/files/${path.split('/').map(enc).join('/')}?version=${enc(version)}`, { raw: true });
  const type = resp.headers.get('content-type') || '';
  const blob = await resp.blob();
  const text = /^(text\/|application\/(json|javascript|xml))/.test(type) ? await blob.text() : `(${type}, ${bytes(blob.size)})`;
  viewer.replaceChildren(h('h2', {}, path), h('pre', { 'data-name': 'file' }, resp.ok ? text : `${resp.status}: ${text}`));
}

async function libraryPage(main, name) {
  crumbs([['#/', 'overview'], [`#/library/${enc(name)}`, name]]);
  const c = { runs: card('Runs', true), cache: card('Render cache', true) };
  const status = h('span', {});
  const actions = h('div', { class: 'actions' });
  main.replaceChildren(h('h1', {}, `Library ${name} `, status), actions, h('div', { class: 'grid' }, Object.values(c).map((x) => x.el)));
  let group = '';
  const keys = h('div', {});
  const drawKeys = async () => {
    const page = await api(`/v1/cache/${enc(name)}?limit=50${group ? `&group=${enc(group)}` : ''}`);
    keys.replaceChildren(table(['Key', 'Group', 'Size', 'Written', ''], page.items.map((e) => [
      link(`#/entry/${enc(name)}/${e.key.split('/').map(enc).join('/')}`, e.key), e.group, bytes(e.size), when(e.written_at), e.stale ? badge('stale', 'paused') : '']),
    'No entries.'), page.next ? h('p', { class: 'muted' }, 'The first 50 keys.') : '');
    return page;
  };
  return async () => {
    const libs = await api('/v1/libraries');
    const lib = libs.find((l) => l.name === name);
    if (!lib) throw new Error(`no library ${name}`);
    status.replaceChildren(lib.paused ? badge('paused') : badge('active', 'complete'));
    actions.replaceChildren(...(can('admin') ? [
      act('Start reheat', () => api(`/v1/libraries/${enc(name)}/builds`, { method: 'POST' }).then((r) => { location.hash = `#/run/${r.run}`; }), 'primary', 'start'),
      lib.paused ? act('Resume', () => api(`/v1/libraries/${enc(name)}/resume`, { method: 'POST' }), null, 'resume')
        : act('Pause', () => api(`/v1/libraries/${enc(name)}/pause`, { method: 'POST' }), null, 'pause'),
    ] : []),
    kv([['Limits', [lib.concurrency ? `${lib.concurrency} at once` : null, lib.rate ? `${lib.rate}/s` : null].filter(Boolean).join(', ') || 'none'],
      ['Schedule', lib.schedule || 'none']]));
    const runs = await api(`/v1/libraries/${enc(name)}/runs?limit=50`);
    c.runs.set(table(['Run', 'Library', 'Build', 'State', 'Started', 'Duration', 'Jobs', 'Dead'], runs.map(runRow), 'No runs yet.'));
    const page = await drawKeys();
    if (page.groups) {
      const pick = h('select', { onchange: (ev) => { group = ev.target.value; drawKeys(); } },
        h('option', { value: '' }, 'every group'), page.groups.map((g) => h('option', { value: g.group, selected: g.group === group }, `${g.group || '(none)'} (${num(g.count)})`)));
      c.cache.set(h('p', {}, 'Group: ', pick), keys);
    }
  };
}

async function runPage(main, id) {
  const c = { progress: card('Progress', true), chart: card('Throughput', true), summary: card('Summary'), dead: card('Dead letters') };
  const actions = h('div', { class: 'actions' });
  main.replaceChildren(h('h1', {}, `Run #${id}`), actions, h('div', { class: 'grid' }, Object.values(c).map((x) => x.el)));
  return async () => {
    const [r, samples, dead] = await Promise.all([api(`/v1/runs/${id}`), api(`/v1/runs/${id}/throughput`), api(`/v1/dead-letters?run=${id}`)]);
    crumbs([['#/', 'overview'], [`#/library/${enc(r.library)}`, r.library], [`#/run/${id}`, `run ${id}`]]);
    actions.replaceChildren(...(can('admin') && r.state === 'running'
      ? [act('Cancel run', () => api(`/v1/runs/${id}/cancel`, { method: 'POST' }), 'danger', 'cancel')] : []));
    c.progress.set(progress(r), h('p', {}, badge(r.state), ` build ${r.build}, generation ${r.generation}${r.group ? `, group ${r.group}` : ''}`));
    c.chart.set(chart(samples));
    const s = r.summary;
    c.summary.set(kv([['Started', when(r.created_at)], ['Wall time', dur(s.wall_ms)], ['Renders', num(s.renders)],
      ['Render p50 / p99', `${s.render_p50_ms ?? '–'} / ${s.render_p99_ms ?? '–'} ms`], ['Failed attempts', num(r.jobs_failed)],
      ['Entries pruned', num(s.pruned)], ['Jobs dropped', num(r.jobs_dropped)]]),
    h('h2', {}, 'Failures by reason'),
    table(['Reason', 'Count'], Object.entries(s.failures).map(([k, n]) => [k, num(n)]), 'No failures.'));
    c.dead.set(table(['Job', 'Attempts', 'Error', 'Failed'], dead.map((d) => [d.job, num(d.attempts), d.error, when(d.failed_at)]), 'No dead letters.'),
      dead.length && can('admin') ? act('Redrive', () => api('/v1/dead-letters/redrive', { method: 'POST', body: { ids: dead.map((d) => d.id) } }), 'primary', 'redrive') : null);
  };
}

/** Jobs done per second between samples, as an SVG line. */
function chart(samples) {
  if (samples.length < 2) return h('p', { class: 'muted' }, 'Not enough samples yet (one every 2 s while this server sees the run).');
  // One level per interval between samples: a step line over the whole span.
  const pts = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].at - samples[i - 1].at) / 1000;
    if (dt > 0) pts.push([samples[i - 1].at, samples[i].at, (samples[i].done - samples[i - 1].done) / dt]);
  }
  const W = 1000, H = 220, P = 32;
  const t0 = samples[0].at, t1 = samples[samples.length - 1].at || t0 + 1;
  const top = Math.max(1, ...pts.map((p) => p[2]));
  const x = (t) => P + ((W - 2 * P) * (t - t0)) / Math.max(1, t1 - t0);
  const y = (v) => H - P + (-(H - 2 * P) * v) / top;
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('class', 'chart'); svg.setAttribute('viewBox', `0 0 ${W} ${H}`); svg.setAttribute('data-name', 'throughput');
  const add = (tag, attrs, text) => { const el = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v); if (text) el.textContent = text; svg.append(el); };
  add('line', { x1: P, y1: H - P, x2: W - P, y2: H - P });
  add('path', { d: pts.map(([a, b, v], i) => `${i ? 'L' : 'M'}${x(a).toFixed(1)},${y(v).toFixed(1)} L${x(b).toFixed(1)},${y(v).toFixed(1)}`).join(' ') });
  add('text', { x: 2, y: P - 6 }, `${top.toFixed(0)} jobs/s`);
  add('text', { x: P, y: H - 8 }, new Date(t0).toLocaleTimeString());
  add('text', { x: W - P - 70, y: H - 8 }, new Date(t1).toLocaleTimeString());
  return svg;
}

async function entryPage(main, library, key) {
  crumbs([['#/', 'overview'], [`#/library/${enc(library)}`, library], [location.hash, key]]);
  const c = card(`Entry ${key}`, true);
  main.replaceChildren(h('h1', {}, `${library}: ${key}`), h('div', { class: 'grid' }, c.el));
  return async () => {
    const resp = await api(`/v1/cache/${enc(library)}/${key.split('/').map(enc).join('/')}`, { raw: true });
    const text = await resp.text();
    const head = [...resp.headers.entries()].filter(([k]) => k.startsWith('x-kiln') || ['content-type', 'etag', 'cache-control'].includes(k));
    c.set(h('p', {}, `${resp.status} ${resp.statusText}`), kv(head), h('pre', { 'data-name': 'entry' }, text));
  };
}

// ---- routing and signing in ----------------------------------------------------------------

const ROUTES = [
  [/^#?\/?$/, overview],
  [/^#\/course\/([^/]+)(?:\/([^/]+))?$/, coursePage],
  [/^#\/library\/([^/]+)$/, libraryPage],
  [/^#\/run\/(\d+)$/, runPage],
  [/^#\/entry\/([^/]+)\/(.+)$/, entryPage],
];

async function route() {
  clearTimeout(state.timer);
  state.page++;
  current = null;
  const main = document.getElementById('main');
  const hash = location.hash || '#/';
  for (const [re, page] of ROUTES) {
    const m = hash.match(re);
    if (!m) continue;
    try {
      const refresh = await page(main, ...m.slice(1).map((p) => (p === undefined ? undefined : decodeURIComponent(p))));
      live(refresh);
    } catch (e) {
      main.replaceChildren(h('p', { class: 'error' }, e.message));
    }
    return;
  }
  main.replaceChildren(h('p', { class: 'error' }, `No page ${hash}.`), link('#/', 'Overview'));
}

function signIn(message) {
  clearTimeout(state.timer);
  state.page++;
  current = null;
  document.getElementById('who').replaceChildren();
  crumbs([]);
  const input = h('input', { type: 'password', id: 'token', autocomplete: 'off', placeholder: 'kiln_…', 'aria-label': 'Token' });
  const go = () => {
    state.token = input.value.trim();
    sessionStorage.setItem('kiln-token', state.token);
    start();
  };
  input.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') go(); });
  document.getElementById('main').replaceChildren(h('section', { class: 'card' },
    h('h1', {}, 'Sign in'), h('p', {}, 'A token from ', h('code', {}, 'kiln token new'), ': read to look, admin to act.'),
    input, h('div', { class: 'actions' }, h('button', { class: 'primary', id: 'sign-in', onclick: go }, 'Sign in')),
    message && state.token ? h('p', { class: 'error' }, message) : null));
}

async function start() {
  try {
    state.me = await api('/v1/whoami');
  } catch (e) {
    if (e.status === 401) return signIn(e.message);
    document.getElementById('main').replaceChildren(h('p', { class: 'error' }, e.message));
    return;
  }
  const out = h('button', { onclick: () => { sessionStorage.removeItem('kiln-token'); state.token = ''; signIn(); } }, 'Sign out');
  document.getElementById('who').replaceChildren(
    state.me.token ? `${state.me.token} (${state.me.scopes.join(', ')}) ` : 'open server ',
    state.me.tokens_required ? out : '');
  route();
}

window.addEventListener('hashchange', () => { if (state.me) route(); });
start();
