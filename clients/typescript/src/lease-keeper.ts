// Keeping a lease alive while a caller works: renews it each time half its duration has
// passed, and says (through an AbortSignal) when it is lost. Used by Kiln.withChunks.

import { KilnError } from './errors.js';
import type { Lease } from './types.js';

/** What the keeper needs from the client. */
export interface Renewer {
  renewLease(id: string, ttlMs?: number): Promise<Lease>;
}

/** A lease being kept. */
export interface KeptLease {
  /** Aborts (with a KilnError `lease_lost`) when the lease could not be kept. */
  readonly signal: AbortSignal;
  /** The lease as last taken or renewed. */
  current(): Lease;
  /** Stops renewing and waits for a renewal in flight. */
  stop(): Promise<void>;
}

/** Renews `lease` at half its duration until stopped; `ttlMs` is the duration asked on
 * each renewal (default: the lease's own). */
export function keepLease(kiln: Renewer, lease: Lease, ttlMs?: number): KeptLease {
  const lost = new AbortController();
  let last = lease;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> = Promise.resolve();

  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(tick, Math.max(1, ms));
    timer.unref();
  };
  const tick = () => {
    inFlight = (async () => {
      try {
        last = await kiln.renewLease(last.id, ttlMs ?? last.ttl_ms);
        schedule(last.ttl_ms / 2);
      } catch (e) {
        if (stopped) return;
        const remaining = last.expires_at - Date.now();
        if (e instanceof KilnError && e.status === 404) {
          lost.abort(new KilnError({ status: 404, error: 'lease_lost',
            message: `lease ${last.id} ended before the work was done: ${e.message}`, cause: e }));
        } else if (remaining <= 0) {
          lost.abort(new KilnError({ status: 0, error: 'lease_lost',
            message: `lease ${last.id} could not be renewed before it ended: ${(e as Error).message}`, cause: e }));
        } else {
          // Transient: try again well before the lease ends.
          schedule(Math.min(last.ttl_ms / 8, remaining / 2));
        }
      }
    })();
  };
  schedule(lease.ttl_ms / 2);

  return {
    signal: lost.signal,
    current: () => last,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await inFlight;
    },
  };
}
