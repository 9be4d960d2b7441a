// The API's wire types, named: aliases of the schemas that openapi-typescript generated from
// docs/openapi.json (src/generated/openapi.ts), plus the client's own result shapes.

import type { components } from './generated/openapi.js';

type Schemas = components['schemas'];

/** `POST /v1/courses/{course}/ensure`'s body. */
export type EnsureRequest = Schemas['EnsureRequest'];
/** `POST /v1/leases/{id}/renew`'s body. */
export type RenewRequest = Schemas['RenewRequest'];
/** A bulk release: `DELETE /v1/leases`. */
export type ReleaseRequest = Schemas['ReleaseRequest'];
/** What a bulk release ended. */
export type Released = Schemas['Released'];
/** `POST /v1/libraries/{library}/builds`'s body. */
export type BuildRequest = Schemas['BuildRequest'];
/** `POST /v1/courses/{course}/ensure`'s answer: where the chunks are and the lease. */
export type Ensured = Schemas['EnsureResponse'];
/** A lease: `{id, expires_at (Unix ms), ttl_ms}`. */
export type Lease = Schemas['LeaseView'];
/** `GET /v1/courses/{course}`: the current version and a summary of its manifest. */
export type CourseSummary = Schemas['CourseSummary'];
/** A run's state (the document types it as a string; these are the values kiln writes). */
export type RunState = 'running' | 'complete' | 'failed' | 'superseded' | 'cancelled';
/** A reheat run and its counters. */
export type Run = Omit<Schemas['RunView'], 'state'> & { state: RunState };
/** One backend's state in a health report. */
export interface BackendHealth {
  ok: boolean;
  error?: string;
  last_ok_ms_ago?: number;
}
/** `/healthz` and `/readyz`'s body (the document types `backends` as a bare object). */
export type HealthReport = Omit<Schemas['Report'], 'backends' | 'status'> & {
  status: 'ok' | 'degraded';
  backends: Record<string, BackendHealth>;
};

/** A file read over HTTP. */
export interface KilnFile {
  /** 200, 206 for a range, 304 when `ifNoneMatch` matched (then `data` is empty). */
  status: number;
  data: Buffer;
  /** The version the bytes belong to (`x-kiln-version`). */
  version: string;
  etag: string | null;
  contentType: string | null;
  /** `bytes START-END/LENGTH` for a range. */
  contentRange: string | null;
}

/** An entry without its bytes, as a listing or a put answers it. */
export type EntryInfo = Schemas['EntryView'];
/** A page of `GET /v1/cache/{library}`. */
export type EntryPage = Schemas['ListView'];
/** What `POST /v1/libraries/{library}/invalidate` did. */
export type Invalidated = Omit<Schemas['InvalidateView'], 'run'> & { run?: Run | null };
/** What to invalidate: some keys, one producer group, or the whole library. */
export type InvalidateScope = { keys: string[] } | { group: string } | { all: true };

/** A render-cache entry. */
export interface CacheEntry {
  /** 200, or 304 when `ifNoneMatch` matched (then `data` is empty). */
  status: number;
  data: Buffer;
  contentType: string | null;
  /** Strong: the same bytes and type have the same ETag. */
  etag: string | null;
  /** `max-age=N` until the entry expires, else `no-cache`. */
  cacheControl: string | null;
  /** Marked stale (`x-kiln-stale`): served while a re-render replaces it. */
  stale: boolean;
  /** The entry's metadata: its `x-kiln-meta-<name>` headers, by name. */
  meta: Record<string, string>;
  /** The generation of the build that wrote it (`x-kiln-generation`). */
  generation: number;
  /** Its producer group (`x-kiln-group`). */
  group: string | null;
  /** When it was written, Unix milliseconds (`x-kiln-written-at`). */
  writtenAt: number;
}
