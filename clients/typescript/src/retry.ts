// The retry policy: which failures are retried (503 and connection errors, never another
// status) and the delay before each attempt (exponential with jitter in the upper half, as
// kiln's own backoff).

/** How many times to retry and how long to wait. */
export interface RetryPolicy {
  /** Retries after the first attempt (default 3). 0 turns retrying off. */
  retries: number;
  /** The first delay's upper bound in milliseconds (default 50). */
  baseDelayMs: number;
  /** The largest delay in milliseconds (default 2000). */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 3, baseDelayMs: 50, maxDelayMs: 2000 };

/** The delay before retry number `attempt` (0 for the first retry): a random point in the
 * upper half of `min(max, base * 2^attempt)`. */
export function retryDelay(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** Connection errors after which the request surely never reached kiln: safe to retry any
 * request, even one that is not idempotent. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOENT', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT']);

/** Connection errors after which the request may or may not have reached kiln: retried for
 * idempotent requests only. */
const MAYBE_SENT = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'UND_ERR_SOCKET',
  'UND_ERR_CLOSED', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** The system error code of a connection failure, looking through `fetch`'s wrapping
 * (`TypeError: fetch failed` with the socket error as its `cause`). */
export function connectionCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (NOT_SENT.has(code) || MAYBE_SENT.has(code))) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Whether a connection failure with `code` may be retried. */
export function retryableConnection(code: string, idempotent: boolean): boolean {
  return NOT_SENT.has(code) || (idempotent && MAYBE_SENT.has(code));
}

/** Sleeps `ms`, or rejects at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
