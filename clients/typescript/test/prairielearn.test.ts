// The PrairieLearn adapter against a real kiln serve: PrairieLearn's chunk objects map to
// kiln's names, files are read under getRuntimeDirectoryForCourse, missing kinds are empty
// and a missing question rejects, and after a publish the runtime directory moves to the
// new version with the chunks ensured before still present there.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Kiln, KilnError } from '../src/index.js';
import { chunkName, createChunksAdapter, type PrairieLearnChunk } from '../src/prairielearn.js';
import { append, eventually, Scratch } from './helpers/kiln.js';

describe('PrairieLearn adapter', () => {
  const scratch = new Scratch();
  let kiln: Kiln;
  let src: string;

  before(async () => {
    src = scratch.copyExample();
    await scratch.sync(src, 'demo');
    kiln = new Kiln({ baseUrl: (await scratch.serve()).baseUrl });
  });
  after(() => scratch.cleanup());

  it('names PrairieLearn\'s chunks as kiln does', () => {
    const cases: Array<[PrairieLearnChunk, string]> = [
      [{ type: 'elements' }, 'elements'],
      [{ type: 'elementExtensions' }, 'elementExtensions'],
      [{ type: 'clientFilesCourse' }, 'clientFilesCourse'],
      [{ type: 'serverFilesCourse' }, 'serverFilesCourse'],
      [{ type: 'clientFilesCourseInstance', courseInstanceId: 'Fa25' }, 'clientFilesCourseInstance:Fa25'],
      [{ type: 'clientFilesAssessment', courseInstanceId: 'Fa25', assessmentId: 'hw1' }, 'clientFilesAssessment:Fa25/assessments/hw1'],
      [{ type: 'clientFilesAssessment', courseInstanceId: '2026/Sp26', assessmentId: 'exams/midterm' }, 'clientFilesAssessment:2026/Sp26/assessments/exams/midterm'],
      [{ type: 'question', questionId: 'algebra/linear' }, 'question:algebra/linear'],
    ];
    for (const [c, name] of cases) assert.equal(chunkName(c), name);
  });

  it('ensures chunks and serves their files under the runtime directory', async () => {
    const chunks = createChunksAdapter(kiln, { course: 'demo' });
    assert.throws(() => chunks.getRuntimeDirectoryForCourse({ id: 1 }), /ensureChunksForCourseAsync first/);
    await chunks.ensureChunksForCourseAsync(1, [
      { type: 'question', questionId: 'calculus/derivatives/chain-rule' },
      { type: 'elements' },
      { type: 'elementExtensions' },
      { type: 'serverFilesCourse' },
      { type: 'clientFilesCourseInstance', courseInstanceId: 'Fa25' },
      { type: 'clientFilesAssessment', courseInstanceId: 'Fa25', assessmentId: 'hw1' },
    ]);
    const dir = chunks.getRuntimeDirectoryForCourse({ id: 1 });
    for (const rel of [
      'questions/calculus/derivatives/chain-rule/question.html',
      'elements/kiln-hint/kiln-hint.py',
      'elementExtensions/pl-number-input/units/units.py',
      'serverFilesCourse/kiln_util.py',
      'courseInstances/Fa25/clientFilesCourseInstance/syllabus.html',
      'courseInstances/Fa25/assessments/hw1/clientFilesAssessment/instructions.md',
    ]) {
      assert.ok((await readFile(join(dir, rel))).length > 0, rel);
    }
    await chunks.close();
  });

  it('maps PrairieLearn course ids to kiln courses with a function', async () => {
    const chunks = createChunksAdapter(kiln, { course: (id) => (id === '42' ? 'demo' : `course-${id}`) });
    const e = await chunks.ensureChunksForCourseAsync(42, { type: 'question', questionId: 'probability/dice' });
    assert.equal(e.course, 'demo');
    assert.equal(chunks.getRuntimeDirectoryForCourse({ id: '42' }), e.root);
    await chunks.close();
  });

  it('treats missing kinds as empty and rejects a missing question', async () => {
    const chunks = createChunksAdapter(kiln, { course: 'demo' });
    const e = await chunks.ensureChunksForCourseAsync('demo', [
      { type: 'question', questionId: 'algebra/linear' },
      { type: 'clientFilesCourseInstance', courseInstanceId: 'NoSuchInstance' },
    ]);
    assert.deepEqual(e.absent, ['clientFilesCourseInstance:NoSuchInstance']);
    await assert.rejects(
      chunks.ensureChunksForCourseAsync('demo', { type: 'question', questionId: 'algebra/missing' }),
      (err: unknown) => err instanceof KilnError && err.status === 404 && /algebra\/missing/.test(err.message),
    );
    await chunks.close();
  });

  it('moves the runtime directory to a new version with what it held still there', async () => {
    const chunks = createChunksAdapter(kiln, { course: 'demo' });
    const course = { id: 'demo' };
    await chunks.ensureChunksForCourseAsync('demo', { type: 'question', questionId: 'algebra/linear' });
    const before = chunks.getRuntimeDirectoryForCourse(course);

    append(src, 'questions/algebra/linear/question.html', '\n<!-- moved -->\n');
    append(src, 'questions/algebra/quadratic/question.html', '\n<!-- moved -->\n');
    const { version } = await scratch.sync(src, 'demo');
    assert.ok(await eventually(async () => (await kiln.course('demo')).version === version, 5_000));

    // A request for another question sees the new version ...
    await chunks.ensureChunksForCourseAsync('demo', { type: 'question', questionId: 'algebra/quadratic' });
    const now = chunks.getRuntimeDirectoryForCourse(course);
    assert.notEqual(now, before);
    assert.match(await readFile(join(now, 'questions/algebra/quadratic/question.html'), 'utf8'), /moved/);
    // ... and a request that ensured the first question before the move finds it there too,
    assert.match(await readFile(join(now, 'questions/algebra/linear/question.html'), 'utf8'), /moved/);
    // while the old directory stays readable for readers still on it (their lease holds it).
    assert.ok(existsSync(join(before, 'questions/algebra/linear/question.html')));
    await chunks.close();
  });
});
