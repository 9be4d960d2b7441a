// How a request reaches kiln: node:http with a keep-alive agent, over TCP for http:// base
// URLs and through `socketPath` for unix:/path ones; Node's fetch for https:// (kiln behind
// a TLS proxy). All answer with the status, the headers and the whole body. node:http, not
// fetch, for plain HTTP: on Node 20 fetch costs about three times the CPU per request
// (scripts/bench-client.sh measures both).

import http from 'node:http';

/** One request as the client sends it. */
export interface WireRequest {
  method: string;
  /** Path and query, starting with `/`. */
  path: string;
  headers: Record<string, string>;
  body?: Buffer | string | undefined;
  signal?: AbortSignal | undefined;
  /** Fail with {@link TIMEOUT} when no byte moves for this long (0: never). */
  timeoutMs: number;
}

/** The `code` of the error a transport fails with when its request timed out. */
export const TIMEOUT = 'KILN_CLIENT_TIMEOUT';

function timedOut(ms: number): Error {
  return Object.assign(new Error(`no answer within ${ms} ms`), { code: TIMEOUT });
}

/** One answer. */
export interface WireResponse {
  status: number;
  /** A header's value (names are case-insensitive), or null. */
  header(name: string): string | null;
  /** Every header as [lowercase name, value]. */
  headerEntries(): Array<[string, string]>;
  body: Buffer;
}

/** Sends requests to one kiln serve. */
export interface Transport {
  send(req: WireRequest): Promise<WireResponse>;
  /** The absolute URL of `path` where there is one (TCP); the path itself otherwise. */
  url(path: string): string;
  /** Closes idle connections. */
  close(): void;
}

/** The transport for `baseUrl`: `http://host:port[/prefix]`, `https://...` or
 * `unix:/abs/path.sock`; `useFetch` sends http:// through fetch too. */
export function transportFor(baseUrl: string, useFetch = false): Transport {
  if (baseUrl.startsWith('unix:')) {
    const socketPath = baseUrl.slice('unix:'.length);
    if (!socketPath.startsWith('/')) {
      throw new TypeError(`invalid baseUrl ${JSON.stringify(baseUrl)}: a Unix socket needs an absolute path (unix:/run/kiln.sock)`);
    }
    return new NodeHttpTransport({ socketPath }, baseUrl, '');
  }
  let parsed: URL;
  try {
    parsed = new URL(baseUrl);
  } catch {
    throw new TypeError(`invalid baseUrl ${JSON.stringify(baseUrl)}: expected http://HOST:PORT or unix:/path`);
  }
  const base = baseUrl.replace(/\/+$/, '');
  if (parsed.protocol === 'https:' || (useFetch && parsed.protocol === 'http:')) return new FetchTransport(base);
  if (parsed.protocol !== 'http:') {
    throw new TypeError(`invalid baseUrl ${JSON.stringify(baseUrl)}: expected http://HOST:PORT or unix:/path`);
  }
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = parsed.port === '' ? 80 : Number(parsed.port);
  return new NodeHttpTransport({ host, port }, base, parsed.pathname.replace(/\/+$/, ''));
}

/** How long an idle kept-alive connection is kept: well under kiln's `header_read_timeout`
 * (10 s), after which kiln closes a connection that sends no new request. */
const IDLE_SOCKET_MS = 4_000;

class FetchTransport implements Transport {
  constructor(private readonly base: string) {}

  url(path: string): string {
    return this.base + path;
  }

  async send(req: WireRequest): Promise<WireResponse> {
    const init: RequestInit = { method: req.method, headers: req.headers };
    if (req.body !== undefined) init.body = req.body;
    const timeout = req.timeoutMs > 0 ? AbortSignal.timeout(req.timeoutMs) : undefined;
    const signal = timeout && req.signal ? AbortSignal.any([timeout, req.signal]) : (timeout ?? req.signal);
    if (signal) init.signal = signal;
    try {
      const res = await fetch(this.base + req.path, init);
      const body = Buffer.from(await res.arrayBuffer());
      return {
        status: res.status,
        header: (n) => res.headers.get(n),
        headerEntries: () => [...res.headers.entries()],
        body,
      };
    } catch (e) {
      throw timeout?.aborted && !req.signal?.aborted ? timedOut(req.timeoutMs) : e;
    }
  }

  close(): void {
    // fetch's pool is global and closes idle sockets by itself.
  }
}

class NodeHttpTransport implements Transport {
  private readonly agent = new http.Agent({ keepAlive: true, timeout: IDLE_SOCKET_MS });

  /** `where` is `{host, port}` or `{socketPath}`; `prefix` a path the base URL had. */
  constructor(
    private readonly where: { host: string; port: number } | { socketPath: string },
    private readonly base: string,
    private readonly prefix: string,
  ) {}

  url(path: string): string {
    return 'socketPath' in this.where ? path : this.base + path;
  }

  send(req: WireRequest): Promise<WireResponse> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = 'socketPath' in this.where ? { host: 'localhost', ...req.headers } : req.headers;
      if (req.body !== undefined) headers['content-length'] = String(Buffer.byteLength(req.body));
      const options: http.RequestOptions = {
        ...this.where,
        path: this.prefix + req.path,
        method: req.method,
        headers,
        agent: this.agent,
      };
      if (req.signal) options.signal = req.signal;
      const r = http.request(options, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (b: Buffer) => parts.push(b));
        res.on('error', reject);
        res.on('close', () => {
          // Closed before the whole body came (a promise settles once: after 'end' this is moot).
          if (!res.complete) reject(Object.assign(new Error('the connection closed mid-response'), { code: 'ECONNRESET' }));
        });
        res.on('end', () => {
          const h = res.headers;
          resolve({
            status: res.statusCode ?? 0,
            header: (n) => {
              const v = h[n.toLowerCase()];
              return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
            },
            headerEntries: () =>
              Object.entries(h).flatMap(([n, v]): Array<[string, string]> =>
                v === undefined ? [] : [[n, Array.isArray(v) ? v.join(', ') : v]]),
            body: parts.length === 1 ? parts[0]! : Buffer.concat(parts),
          });
        });
      });
      r.on('error', reject);
      // The socket's idle timer: cheaper than an AbortSignal per request.
      if (req.timeoutMs > 0) r.setTimeout(req.timeoutMs, () => r.destroy(timedOut(req.timeoutMs)));
      r.end(req.body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
