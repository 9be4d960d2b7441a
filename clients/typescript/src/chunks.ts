// Chunk names as kiln spells them (`question:topic/q1`, `elements`,
// `clientFilesAssessment:Sp25/hw1`), helpers that build them, and the one safe way to turn
// a course-relative path into a path under an ensure's root.

import path from 'node:path';

/** The kinds with one chunk per course, named by the kind alone. */
export type CourseWideKind =
  | 'elements'
  | 'elementExtensions'
  | 'clientFilesCourse'
  | 'serverFilesCourse'
  | 'questionThumbnails'
  | 'courseInfo';

/** The kinds named by a question, course instance or assessment. */
export type NamedKind =
  | 'question'
  | 'clientFilesCourseInstance'
  | 'serverFilesCourseInstance'
  | 'clientFilesAssessment';

/** A chunk as kiln's API names it: `KIND` for a course-wide kind, `KIND:NAME` otherwise. */
export type Chunk = CourseWideKind | `${NamedKind}:${string}`;

/** Builders of chunk names, so that callers need not remember the spelling. */
export const chunk = {
  /** A question by its qid (`topic/q1`, the directory under `questions/`). */
  question: (qid: string): Chunk => `question:${qid}`,
  elements: (): Chunk => 'elements',
  elementExtensions: (): Chunk => 'elementExtensions',
  clientFilesCourse: (): Chunk => 'clientFilesCourse',
  serverFilesCourse: (): Chunk => 'serverFilesCourse',
  questionThumbnails: (): Chunk => 'questionThumbnails',
  courseInfo: (): Chunk => 'courseInfo',
  /** A course instance's client files, by the instance's directory under
   * `courseInstances/` (`Sp25`, or nested: `2026/Sp26`). */
  clientFilesCourseInstance: (instance: string): Chunk => `clientFilesCourseInstance:${instance}`,
  serverFilesCourseInstance: (instance: string): Chunk => `serverFilesCourseInstance:${instance}`,
  /** An assessment's client files, by instance and the assessment's directory under
   * `assessments/` (`hw1`, or nested: `exams/midterm`). kiln names the chunk by its path
   * between `courseInstances/` and `/clientFilesAssessment`: `Sp25/assessments/hw1`. */
  clientFilesAssessment: (instance: string, assessment: string): Chunk =>
    `clientFilesAssessment:${instance}/assessments/${assessment}`,
} as const;

/**
 * `root` joined with the course-relative `rel` (`questions/topic/q1/question.html`),
 * refusing a path that would leave `root` (absolute, or `..` past it). Reading only under
 * the root is what keeps a read inside the version the ensure answered with.
 */
export function fileUnder(root: string, rel: string): string {
  const norm = path.posix.normalize(rel.replace(/\\/g, '/'));
  if (path.posix.isAbsolute(norm) || norm === '..' || norm.startsWith('../')) {
    throw new RangeError(`path ${JSON.stringify(rel)} leaves the course root`);
  }
  return path.join(root, norm);
}

/** A course-relative path as a URL path: each segment percent-encoded, `/` kept. */
export function encodePath(rel: string): string {
  return rel.split('/').filter((s) => s !== '').map(encodeURIComponent).join('/');
}
