// A drop-in for PrairieLearn's chunk loader (apps/prairielearn/src/lib/chunks.ts):
// ensureChunksForCourseAsync and getRuntimeDirectoryForCourse over kiln, with PrairieLearn's
// chunk objects, one runtime directory per course that moves to a new version only once the
// chunks requests still hold are present there too, and one lease per call.

import type { Chunk } from './chunks.js';
import { chunk } from './chunks.js';
import type { EnsureOptions, Kiln } from './client.js';
import { KilnError } from './errors.js';
import type { Ensured } from './types.js';

/** PrairieLearn's chunk objects. The ids are kiln's names: `questionId` is the qid
 * (`topic/q1`), `courseInstanceId` the instance's directory under `courseInstances/`
 * (`Sp25`), `assessmentId` the assessment's directory under `assessments/` (`hw1`). */
export type PrairieLearnChunk =
  | { type: 'elements' }
  | { type: 'elementExtensions' }
  | { type: 'clientFilesCourse' }
  | { type: 'serverFilesCourse' }
  | { type: 'clientFilesCourseInstance'; courseInstanceId: string | number }
  | { type: 'serverFilesCourseInstance'; courseInstanceId: string | number }
  | { type: 'clientFilesAssessment'; courseInstanceId: string | number; assessmentId: string | number }
  | { type: 'question'; questionId: string | number };

/** What `getRuntimeDirectoryForCourse` is given: PrairieLearn's course row (only `id` is
 * read). */
export interface CourseLike {
  id: string | number;
}

export interface ChunksAdapterOptions {
  /** kiln's course id: one for every call, or a function of PrairieLearn's course id
   * (default: the course id itself, as a string). */
  course?: string | ((courseId: string) => string);
  /** Each call's lease in ms: how long a request may read what it ensured (default: the
   * server's `lease_ttl`, 60 s). */
  leaseTtlMs?: number;
}

export interface ChunksAdapter {
  /** Makes the chunks present under the course's runtime directory; answers with kiln's
   * ensure (its `root` is the runtime directory). A missing question rejects with a 404
   * KilnError; other missing chunks are empty, as in PrairieLearn. */
  ensureChunksForCourseAsync(courseId: string | number, chunks: PrairieLearnChunk | PrairieLearnChunk[]): Promise<Ensured>;
  /** The directory to read the course's files from: the version directory of the course's
   * current view. Throws until a chunk of the course has been ensured in this process. */
  getRuntimeDirectoryForCourse(course: CourseLike): string;
  /** kiln's name of a PrairieLearn chunk (`{type: 'question', questionId: 'a/b'}` ->
   * `question:a/b`). */
  chunkName(c: PrairieLearnChunk): Chunk;
  /** Releases every lease the adapter holds (at shutdown). */
  close(): Promise<void>;
}

/** A lease the adapter took, and the chunks it keeps. */
interface Held {
  chunks: readonly Chunk[];
  expiresAt: number;
}

/** One kiln course as this process sees it. */
interface View {
  version: string | undefined;
  root: string | undefined;
  /** Bumped at each move to another version: an answer to a request sent before the
   * latest move may describe an older state of the server. */
  epoch: number;
  /** Leases at `version`, by id, oldest first. */
  held: Map<string, Held>;
  /** Leases at versions moved away from (readers may still be on them), for close(). */
  old: Map<string, number>;
  moving: Promise<void> | undefined;
}

/** A bound on the retries of a call that keeps meeting moves to other versions. */
const MAX_ROUNDS = 5;

/** Creates the adapter over `kiln`. */
export function createChunksAdapter(kiln: Kiln, options: ChunksAdapterOptions = {}): ChunksAdapter {
  const views = new Map<string, View>();
  const courseOf = (courseId: string | number): string => {
    const c = options.course;
    return typeof c === 'string' ? c : c ? c(String(courseId)) : String(courseId);
  };
  const ttl: EnsureOptions = options.leaseTtlMs === undefined ? {} : { leaseTtlMs: options.leaseTtlMs };
  const viewOf = (course: string): View => {
    let v = views.get(course);
    if (!v) {
      v = { version: undefined, root: undefined, epoch: 0, held: new Map(), old: new Map(), moving: undefined };
      views.set(course, v);
    }
    return v;
  };

  const hold = (v: View, res: Ensured, chunks: readonly Chunk[]) => {
    const now = Date.now();
    for (const [id, h] of v.held) {
      if (h.expiresAt > now) break;
      v.held.delete(id);
    }
    for (const [id, at] of v.old) {
      if (at > now) break;
      v.old.delete(id);
    }
    v.held.set(res.lease.id, { chunks, expiresAt: res.lease.expires_at });
  };

  /** Moves `v` to `res.version` once every chunk held at the current version is present
   * there too, so that a request that ensured before the move finds its files under the
   * new runtime directory. */
  const move = async (course: string, v: View, res: Ensured, chunks: readonly Chunk[]) => {
    const now = Date.now();
    const carried = new Set<Chunk>();
    for (const h of v.held.values()) {
      if (h.expiresAt > now) for (const c of h.chunks) carried.add(c);
    }
    for (const c of chunks) carried.delete(c);
    const leases: Array<[Ensured, readonly Chunk[]]> = [[res, chunks]];
    if (carried.size > 0) {
      const list = [...carried];
      try {
        leases.push([await kiln.ensure(course, list, { ...ttl, version: res.version }), list]);
      } catch (e) {
        if (!(e instanceof KilnError && e.status === 404)) throw e;
        // A question held at the old version is gone from the new one: carry the others.
        for (const c of list) {
          try {
            leases.push([await kiln.ensure(course, [c], { ...ttl, version: res.version }), [c]]);
          } catch (e1) {
            if (!(e1 instanceof KilnError && e1.status === 404)) throw e1;
          }
        }
      }
    }
    for (const [id, h] of v.held) v.old.set(id, h.expiresAt);
    v.held = new Map();
    v.version = res.version;
    v.root = res.root;
    v.epoch++;
    for (const [r, c] of leases) hold(v, r, c);
  };

  return {
    chunkName,

    async ensureChunksForCourseAsync(courseId, chunks) {
      const course = courseOf(courseId);
      const names = [...new Set((Array.isArray(chunks) ? chunks : [chunks]).map(chunkName))];
      const v = viewOf(course);
      let epoch = v.epoch;
      let res = await kiln.ensure(course, names, ttl);
      for (let round = 1; ; round++) {
        while (v.moving) await v.moving.catch(() => undefined);
        if (v.version === undefined || res.version === v.version) {
          if (v.version === undefined) {
            v.version = res.version;
            v.root = res.root;
          }
          hold(v, res, names);
          return res;
        }
        // Kept only for close() from here on: the answer is not about the current view.
        v.old.set(res.lease.id, res.lease.expires_at);
        if (round >= MAX_ROUNDS) return res; // its own root holds its chunks all the same
        if (epoch !== v.epoch) {
          // Sent before the latest move: ask again for the server's present state.
          epoch = v.epoch;
          res = await kiln.ensure(course, names, ttl);
          continue;
        }
        // A newer state of the server: move this course's view to it.
        v.moving = move(course, v, res, names).finally(() => {
          v.moving = undefined;
        });
        await v.moving;
        return res;
      }
    },

    getRuntimeDirectoryForCourse(course) {
      const v = views.get(courseOf(course.id));
      if (!v?.root) {
        throw new Error(`no chunk of course ${JSON.stringify(String(course.id))} has been ensured in this process: call ensureChunksForCourseAsync first`);
      }
      return v.root;
    },

    async close() {
      const ids: string[] = [];
      for (const v of views.values()) {
        ids.push(...v.held.keys(), ...v.old.keys());
        v.held.clear();
        v.old.clear();
      }
      // One request for them all (a process may hold thousands).
      await kiln.releaseLeases(ids).catch(() => undefined);
    },
  };
}

/** kiln's name of a PrairieLearn chunk. */
export function chunkName(c: PrairieLearnChunk): Chunk {
  switch (c.type) {
    case 'elements':
    case 'elementExtensions':
    case 'clientFilesCourse':
    case 'serverFilesCourse':
      return c.type;
    case 'clientFilesCourseInstance':
      return chunk.clientFilesCourseInstance(String(c.courseInstanceId));
    case 'serverFilesCourseInstance':
      return chunk.serverFilesCourseInstance(String(c.courseInstanceId));
    case 'clientFilesAssessment':
      return chunk.clientFilesAssessment(String(c.courseInstanceId), String(c.assessmentId));
    case 'question':
      return chunk.question(String(c.questionId));
    default: {
      const never: never = c;
      throw new TypeError(`unknown chunk type ${JSON.stringify((never as { type: unknown }).type)}`);
    }
  }
}
