// The Kiln class: every call of kiln serve's HTTP API (ensure and leases, files, course
// metadata, the render cache, builds and runs, health), with bearer tokens, retries on 503
// and connection errors, and typed errors.

import { encodePath, type Chunk } from './chunks.js';
import { errorFromBody, KilnError } from './errors.js';
import { keepLease } from './lease-keeper.js';
import {
  connectionCode,
  DEFAULT_RETRY,
  retryableConnection,
  retryDelay,
  sleep,
  type RetryPolicy,
} from './retry.js';
import { TIMEOUT, transportFor, type Transport, type WireResponse } from './transport.js';

/** The most lease ids one `DELETE /v1/leases` takes. */
const RELEASE_BATCH = 50_000;
import type {
  BuildRequest,
  CacheEntry,
  CourseSummary,
  EnsureRequest,
  Ensured,
  EntryInfo,
  EntryPage,
  HealthReport,
  Invalidated,
  InvalidateScope,
  KilnFile,
  Lease,
  Released,
  ReleaseRequest,
  RenewRequest,
  Run,
} from './types.js';

/** How to reach kiln serve. */
export interface KilnOptions {
  /** `http://127.0.0.1:7878` (the default) or `unix:/run/kiln/kiln.sock`. */
  baseUrl?: string;
  /** A bearer token (`kiln token new`); needed when the server has `[[token]]`s. */
  token?: string;
  /** Retries after a 503 or a connection error (default 3; 0: none). Other statuses are
   * never retried. */
  retries?: number;
  /** The first retry's delay bound in ms (default 50); each next one doubles, with jitter. */
  retryBaseDelayMs?: number;
  /** The largest retry delay in ms (default 2000). */
  retryMaxDelayMs?: number;
  /** Each attempt fails when no byte moves for this many ms (default 60000; 0: never). */
  timeoutMs?: number;
  /** How to send: `node` (node:http with kept-alive connections, the default for http://
   * and unix:) or `fetch` (Node's fetch, always used for https://). */
  transport?: 'node' | 'fetch';
}

/** Options every call takes. */
export interface CallOptions {
  signal?: AbortSignal;
}

/** Options of an ensure. */
export interface EnsureOptions extends CallOptions {
  /** Read this version instead of the current one. */
  version?: string;
  /** The lease's duration in ms (default: the server's `lease_ttl`, 60 s). */
  leaseTtlMs?: number;
}

/** What `withChunks` gives its function besides the ensure's answer. */
export interface ChunksContext {
  /** Aborts with a KilnError `lease_lost` if the lease could not be kept. */
  signal: AbortSignal;
}

/** Options of a file read. */
export interface ReadFileOptions extends CallOptions {
  /** Read this version (the URL then names bytes that never change). */
  version?: string;
  /** One byte range, `end` inclusive (default: to the end of the file). */
  range?: { start: number; end?: number };
  /** An ETag from an earlier read: a 304 with no data when it still matches. */
  ifNoneMatch?: string;
}

/** Options of a cache put. */
export interface PutOptions extends CallOptions {
  /** The entry's content type (default `application/octet-stream`). */
  contentType?: string;
  /** The producer group the entry belongs to. */
  group?: string;
  /** Expire the entry this many seconds after the write. */
  ttlSeconds?: number;
  /** Metadata stored beside the bytes and returned on reads (`x-kiln-meta-<name>`). */
  meta?: Record<string, string>;
}

/** Options of a cache read. */
export interface GetOptions extends CallOptions {
  /** An ETag from an earlier read: a 304 with no data when it still matches. */
  ifNoneMatch?: string;
}

/** Options of a listing. */
export interface ListOptions extends CallOptions {
  /** Only this producer group. */
  group?: string;
  /** Only keys that start with this. */
  prefix?: string;
  /** The `next` of the previous page. */
  cursor?: string;
  /** Items per page, 1 to 1000 (default 100). */
  limit?: number;
}

/** Options of `waitRun`. */
export interface WaitOptions extends CallOptions {
  /** Time between polls in ms (default 500). */
  intervalMs?: number;
  /** Give up after this many ms with a KilnError `timeout` (default: never). */
  timeoutMs?: number;
}

interface Call extends CallOptions {
  body?: Buffer | string;
  headers?: Record<string, string>;
  /** Whether sending the request twice does no harm (default true). A request that is not
   * is retried only when it surely never reached kiln. */
  idempotent?: boolean;
}

const JSON_TYPE = 'application/json';

/** A client of one kiln serve. Cheap to keep for the life of the process. */
export class Kiln {
  readonly baseUrl: string;
  private readonly transport: Transport;
  private readonly retry: RetryPolicy;
  private readonly timeoutMs: number;
  private readonly auth: Record<string, string>;

  constructor(options: KilnOptions = {}) {
    this.baseUrl = options.baseUrl ?? 'http://127.0.0.1:7878';
    this.transport = transportFor(this.baseUrl, options.transport === 'fetch');
    this.retry = {
      retries: options.retries ?? DEFAULT_RETRY.retries,
      baseDelayMs: options.retryBaseDelayMs ?? DEFAULT_RETRY.baseDelayMs,
      maxDelayMs: options.retryMaxDelayMs ?? DEFAULT_RETRY.maxDelayMs,
    };
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.auth = options.token ? { authorization: `Bearer ${options.token}` } : {};
  }

  // ---- courses -------------------------------------------------------------------------

  /**
   * Makes `chunks` of one version of `course` present on disk and says where: read files
   * as `fileUnder(root, 'questions/topic/q1/question.html')`, only under `root`. What it
   * names stays on disk until `lease` ends: renew it while reading, release it after (or
   * use {@link withChunks}, which does both). A missing question is a 404 KilnError; other
   * kinds the version lacks are listed in `absent`.
   */
  async ensure(course: string, chunks: Chunk | readonly Chunk[], options: EnsureOptions = {}): Promise<Ensured> {
    const body: EnsureRequest = { chunks: typeof chunks === 'string' ? [chunks] : [...chunks] };
    if (options.version !== undefined) body.version = options.version;
    if (options.leaseTtlMs !== undefined) body.lease_ttl_ms = options.leaseTtlMs;
    return this.json<Ensured>('POST', `/v1/courses/${seg(course)}/ensure`, {
      body: JSON.stringify(body),
      signal: options.signal,
    });
  }

  /**
   * Ensures `chunks`, runs `fn` with the answer while holding the lease (renewed each time
   * half its duration passes, so `fn` may take as long as it needs), and releases the lease
   * when `fn` settles, whether it returns or throws. Returns what `fn` returns.
   */
  async withChunks<T>(
    course: string,
    chunks: Chunk | readonly Chunk[],
    fn: (ensured: Ensured, context: ChunksContext) => Promise<T> | T,
    options: EnsureOptions = {},
  ): Promise<T> {
    const ensured = await this.ensure(course, chunks, options);
    const kept = keepLease(this, ensured.lease, options.leaseTtlMs);
    try {
      return await fn(ensured, { signal: kept.signal });
    } finally {
      await kept.stop();
      try {
        await this.releaseLease(kept.current().id);
      } catch {
        // Already ended (404) or kiln unreachable: either way the lease ends at its
        // deadline by itself, and fn's own outcome is what the caller wants.
      }
    }
  }

  /** Extends a lease by `ttlMs` from now (default: the server's `lease_ttl`). A lease that
   * has ended is a 404 KilnError: ensure again. */
  renewLease(id: string, ttlMs?: number, options: CallOptions = {}): Promise<Lease> {
    return this.json<Lease>('POST', `/v1/leases/${seg(id)}/renew`, {
      body: JSON.stringify((ttlMs === undefined ? {} : { ttl_ms: ttlMs }) satisfies RenewRequest),
      signal: options.signal,
    });
  }

  /** Ends a lease now, so its chunks may be evicted. A lease that has ended is a 404. */
  async releaseLease(id: string, options: CallOptions = {}): Promise<void> {
    await this.ok('DELETE', `/v1/leases/${seg(id)}`, { signal: options.signal });
  }

  /** Ends many leases in as few requests as the server takes (50,000 ids each): what a
   * process that is shutting down calls. Resolves with how many were live and the ids that
   * had ended already. */
  async releaseLeases(ids: readonly string[], options: CallOptions = {}): Promise<Released> {
    const out: Released = { released: 0, ended: [] };
    for (let i = 0; i < ids.length; i += RELEASE_BATCH) {
      const r = await this.json<Released>('DELETE', '/v1/leases', {
        body: JSON.stringify({ ids: ids.slice(i, i + RELEASE_BATCH) } satisfies ReleaseRequest),
        signal: options.signal,
      });
      out.released += r.released;
      out.ended.push(...r.ended);
    }
    return out;
  }

  /** The course's current version and a summary of its manifest. */
  course(course: string, options: CallOptions = {}): Promise<CourseSummary> {
    return this.json<CourseSummary>('GET', `/v1/courses/${seg(course)}`, options);
  }

  /** One file of a course over HTTP (the current version unless `version` is given). */
  async readFile(course: string, path: string, options: ReadFileOptions = {}): Promise<KilnFile> {
    const headers: Record<string, string> = {};
    if (options.range) {
      headers.range = `bytes=${options.range.start}-${options.range.end ?? ''}`;
    }
    if (options.ifNoneMatch) headers['if-none-match'] = options.ifNoneMatch;
    const res = await this.ok('GET', this.filePath(course, path, options.version), {
      headers,
      signal: options.signal,
    });
    return {
      status: res.status,
      data: res.body,
      version: res.header('x-kiln-version') ?? '',
      etag: res.header('etag'),
      contentType: res.header('content-type'),
      contentRange: res.header('content-range'),
    };
  }

  /** The URL of a file: absolute for an http:// base URL, the path alone for a Unix
   * socket (for a proxy in front of it). With `version`, the bytes never change. */
  fileUrl(course: string, path: string, options: { version?: string } = {}): string {
    return this.transport.url(this.filePath(course, path, options.version));
  }

  // ---- render cache --------------------------------------------------------------------

  /** A render entry, or null when kiln has none (a 404: no such entry, or no such
   * library). A library with `render_through` renders a miss at once. */
  async get(library: string, key: string, options: GetOptions = {}): Promise<CacheEntry | null> {
    const headers: Record<string, string> = {};
    if (options.ifNoneMatch !== undefined) headers['if-none-match'] = options.ifNoneMatch;
    const res = await this.send('GET', cachePath(library, key), { headers, signal: options.signal });
    if (res.status === 404) return null;
    return entry(this.check(res, 'GET', cachePath(library, key)));
  }

  /** Writes a render entry at the library's newest generation (kiln's `PUT
   * /v1/cache/{library}/{key}`); answers with what was stored. */
  async put(library: string, key: string, data: Buffer | Uint8Array | string, options: PutOptions = {}): Promise<EntryInfo> {
    const headers: Record<string, string> = {
      'content-type': options.contentType ?? 'application/octet-stream',
    };
    if (options.group !== undefined) headers['x-kiln-group'] = options.group;
    if (options.ttlSeconds !== undefined) headers['x-kiln-ttl'] = String(options.ttlSeconds);
    for (const [name, value] of Object.entries(options.meta ?? {})) headers[`x-kiln-meta-${name.toLowerCase()}`] = value;
    return this.json<EntryInfo>('PUT', cachePath(library, key), {
      body: typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength),
      headers,
      signal: options.signal,
    });
  }

  /** Deletes a render entry; false when there was none. */
  async delete(library: string, key: string, options: CallOptions = {}): Promise<boolean> {
    const res = await this.send('DELETE', cachePath(library, key), options);
    if (res.status === 404) return false;
    this.check(res, 'DELETE', cachePath(library, key));
    return true;
  }

  /** Renders `key` with `props` now through the library's renderer and stores the result
   * (kiln's `POST /v1/cache/{library}/{key}/render`); answers with the entry. A renderer
   * that refuses is a KilnError with status 502 carrying its message. */
  async render(library: string, key: string, props: unknown, options: CallOptions & { group?: string } = {}): Promise<CacheEntry> {
    const query = options.group !== undefined ? `?group=${encodeURIComponent(options.group)}` : '';
    const path = `${cachePath(library, key)}/render${query}`;
    const res = await this.ok('POST', path, { body: JSON.stringify(props ?? null), signal: options.signal, idempotent: true });
    return entry(res);
  }

  /** One page of the library's entries, in key order; `next` is the cursor of the next. */
  list(library: string, options: ListOptions = {}): Promise<EntryPage> {
    const q = new URLSearchParams();
    if (options.group !== undefined) q.set('group', options.group);
    if (options.prefix !== undefined) q.set('prefix', options.prefix);
    if (options.cursor !== undefined) q.set('cursor', options.cursor);
    if (options.limit !== undefined) q.set('limit', String(options.limit));
    const qs = q.toString();
    return this.json<EntryPage>('GET', `/v1/cache/${seg(library)}${qs ? `?${qs}` : ''}`, { signal: options.signal });
  }

  /** Every entry of the library (or of a group, or under a prefix), page by page. */
  async *entries(library: string, options: Omit<ListOptions, 'cursor'> = {}): AsyncGenerator<EntryInfo> {
    let cursor: string | undefined;
    do {
      const page = await this.list(library, { ...options, cursor });
      yield* page.items;
      cursor = page.next ?? undefined;
    } while (cursor !== undefined);
  }

  /** Soft invalidation: marks entries stale (reads keep getting them, with `stale` set) and
   * re-renders them: keys at live priority, a group or the library as a run. */
  invalidate(library: string, scope: InvalidateScope, options: CallOptions = {}): Promise<Invalidated> {
    return this.json<Invalidated>('POST', `/v1/libraries/${seg(library)}/invalidate`, {
      body: JSON.stringify(scope),
      signal: options.signal,
    });
  }

  // ---- builds and runs -----------------------------------------------------------------

  /** Pauses a library: no worker takes its runs' jobs until `resume` (scope admin). */
  pause(library: string, options: CallOptions = {}): Promise<{ library: string; paused: boolean; changed: boolean }> {
    return this.json('POST', `/v1/libraries/${seg(library)}/pause`, { body: '', headers: { 'content-type': 'application/json' }, signal: options.signal });
  }

  /** Resumes a paused library. */
  resume(library: string, options: CallOptions = {}): Promise<{ library: string; paused: boolean; changed: boolean }> {
    return this.json('POST', `/v1/libraries/${seg(library)}/resume`, { body: '', headers: { 'content-type': 'application/json' }, signal: options.signal });
  }

  /** Cancels a running run: its pending jobs are dropped and nothing is pruned; answers
   * with the run (a run that is not running is a KilnError with status 409). */
  cancelRun(run: number | Run, options: CallOptions = {}): Promise<Run> {
    const id = typeof run === 'number' ? run : run.run;
    return this.json<Run>('POST', `/v1/runs/${id}/cancel`, { body: '', headers: { 'content-type': 'application/json' }, signal: options.signal });
  }

  /** Starts a reheat: a new build of `library` (optionally labelled, or for one producer
   * group only). Retried only when it surely never reached kiln, so it never starts twice. */
  startBuild(library: string, build?: string | { build?: string; group?: string }, options: CallOptions = {}): Promise<Run> {
    const body: BuildRequest = typeof build === 'string' ? { build } : (build ?? {});
    return this.json<Run>('POST', `/v1/libraries/${seg(library)}/builds`, {
      body: JSON.stringify(body),
      idempotent: false,
      signal: options.signal,
    });
  }

  /** A run and its counters. */
  run(run: number, options: CallOptions = {}): Promise<Run> {
    return this.json<Run>('GET', `/v1/runs/${run}`, options);
  }

  /** Polls a run until it is no longer `running`, calling `onProgress` with each poll's
   * state; answers with the final one (`complete`, `failed` or `superseded`). */
  async waitRun(run: number | Run, onProgress?: (run: Run) => void, options: WaitOptions = {}): Promise<Run> {
    const id = typeof run === 'number' ? run : run.run;
    const interval = options.intervalMs ?? 500;
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    for (;;) {
      const now = await this.run(id, options);
      onProgress?.(now);
      if (now.state !== 'running') return now;
      if (Date.now() + interval > deadline) {
        throw new KilnError({ status: 0, error: 'timeout', path: `/v1/runs/${id}`,
          message: `run ${id} still running after ${options.timeoutMs} ms (${now.jobs_done} of ${now.jobs_enqueued} jobs done)` });
      }
      await sleep(interval, options.signal);
    }
  }

  // ---- health --------------------------------------------------------------------------

  /** Liveness: each backend's last seen state (never calls a backend). */
  healthz(options: CallOptions = {}): Promise<HealthReport> {
    return this.json<HealthReport>('GET', '/healthz', options);
  }

  /** Readiness: probes every backend now; `ready` is false when one did not answer. */
  async readyz(options: CallOptions = {}): Promise<{ ready: boolean; report: HealthReport }> {
    const res = await this.send('GET', '/readyz', { ...options, retryUnavailable: false });
    if (res.status !== 200 && res.status !== 503) this.check(res, 'GET', '/readyz');
    return { ready: res.status === 200, report: JSON.parse(res.body.toString('utf8')) as HealthReport };
  }

  /** Prometheus metrics, as text. */
  async metrics(options: CallOptions = {}): Promise<string> {
    return (await this.ok('GET', '/metrics', options)).body.toString('utf8');
  }

  /** The OpenAPI document the server serves. */
  openapi(options: CallOptions = {}): Promise<Record<string, unknown>> {
    return this.json('GET', '/v1/openapi.json', options);
  }

  /** Closes idle connections (Unix sockets; fetch's pool closes its own). */
  close(): void {
    this.transport.close();
  }

  // ---- plumbing ------------------------------------------------------------------------

  private filePath(course: string, path: string, version: string | undefined): string {
    const q = version === undefined ? '' : `?version=${encodeURIComponent(version)}`;
    return `/v1/courses/${seg(course)}/files/${encodePath(path)}${q}`;
  }

  private async json<T>(method: string, path: string, call: Call = {}): Promise<T> {
    const res = await this.ok(method, path, call);
    return JSON.parse(res.body.toString('utf8')) as T;
  }

  /** Sends and throws a KilnError unless the status is 2xx or 304. */
  private async ok(method: string, path: string, call: Call = {}): Promise<WireResponse> {
    return this.check(await this.send(method, path, call), method, path);
  }

  private check(res: WireResponse, method: string, path: string): WireResponse {
    if ((res.status >= 200 && res.status < 300) || res.status === 304) return res;
    throw errorFromBody(res.status, res.body, method, path, res.header('www-authenticate'));
  }

  /** Sends with retries: after a 503 (unless told not to) and after a connection error
   * (for a request that is not idempotent, only one that surely never reached kiln). */
  private async send(method: string, path: string, call: Call & { retryUnavailable?: boolean }): Promise<WireResponse> {
    let headers = this.auth;
    if (call.headers !== undefined || call.body !== undefined) {
      headers = { ...this.auth, ...call.headers };
      if (call.body !== undefined && headers['content-type'] === undefined) headers['content-type'] = JSON_TYPE;
    }
    const idempotent = call.idempotent ?? true;
    const req = { method, path, headers, body: call.body, signal: call.signal, timeoutMs: this.timeoutMs };
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= this.retry.retries;
      try {
        const res = await this.transport.send(req);
        if (res.status === 503 && call.retryUnavailable !== false && !last) {
          await sleep(retryDelay(this.retry, attempt), call.signal);
          continue;
        }
        return res;
      } catch (e) {
        if (call.signal?.aborted) {
          throw new KilnError({ status: 0, error: 'aborted', method, path,
            message: `${method} ${path}: aborted`, cause: call.signal.reason });
        }
        if ((e as { code?: unknown }).code === TIMEOUT) {
          throw new KilnError({ status: 0, error: 'timeout', method, path,
            message: `${method} ${path}: no answer from kiln at ${this.baseUrl} within ${this.timeoutMs} ms`, cause: e });
        }
        const code = connectionCode(e);
        if (code !== undefined && retryableConnection(code, idempotent) && !last) {
          await sleep(retryDelay(this.retry, attempt), call.signal);
          continue;
        }
        throw new KilnError({ status: 0, error: 'connection_failed', method, path,
          message: `${method} ${path}: cannot reach kiln at ${this.baseUrl}: ${code ?? (e as Error).message}`, cause: e });
      }
    }
  }
}

/** One path segment, percent-encoded. */
function seg(s: string): string {
  return encodeURIComponent(s);
}

/** A cache key may hold `/` (kept) and any other character (percent-encoded). */
function cachePath(library: string, key: string): string {
  return `/v1/cache/${seg(library)}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

function entry(res: WireResponse): CacheEntry {
  const meta: Record<string, string> = {};
  for (const [name, value] of res.headerEntries()) {
    if (name.startsWith('x-kiln-meta-')) meta[name.slice('x-kiln-meta-'.length)] = value;
  }
  return {
    status: res.status,
    data: res.body,
    contentType: res.header('content-type'),
    etag: res.header('etag'),
    cacheControl: res.header('cache-control'),
    stale: res.header('x-kiln-stale') === 'true',
    meta,
    generation: Number(res.header('x-kiln-generation') ?? 0),
    group: res.header('x-kiln-group'),
    writtenAt: Number(res.header('x-kiln-written-at') ?? 0),
  };
}
