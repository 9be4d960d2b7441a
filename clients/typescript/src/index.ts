// The package's entry point: the Kiln client, its errors, chunk names and wire types. The
// PrairieLearn adapter is its own entry point, `@kiln/client/prairielearn`.

export { Kiln } from './client.js';
export type {
  CallOptions,
  ChunksContext,
  EnsureOptions,
  GetOptions,
  KilnOptions,
  ListOptions,
  PutOptions,
  ReadFileOptions,
  WaitOptions,
} from './client.js';
export { KilnError } from './errors.js';
export type { ErrorBody } from './errors.js';
export { chunk, fileUnder } from './chunks.js';
export type { Chunk, CourseWideKind, NamedKind } from './chunks.js';
export type {
  BackendHealth,
  CacheEntry,
  BuildRequest,
  EntryInfo,
  EntryPage,
  Invalidated,
  InvalidateScope,
  CourseSummary,
  EnsureRequest,
  Ensured,
  HealthReport,
  KilnFile,
  Lease,
  Released,
  ReleaseRequest,
  RenewRequest,
  Run,
  RunState,
} from './types.js';
export type { paths, components } from './generated/openapi.js';
