// Fails when src/generated/openapi.ts is not what `npm run generate` makes from
// ../../docs/openapi.json today, naming the command that brings it up to date.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const spec = join(pkg, '..', '..', 'docs', 'openapi.json');
const committed = join(pkg, 'src', 'generated', 'openapi.ts');
const fix = 'cd clients/typescript && npm run generate';

if (!existsSync(spec)) {
  console.error(`check-generated: ${spec} is missing (the Rust side writes it)`);
  process.exit(1);
}
const dir = mkdtempSync(join(tmpdir(), 'kiln-openapi-'));
try {
  const fresh = join(dir, 'openapi.ts');
  execFileSync(join(pkg, 'node_modules', '.bin', 'openapi-typescript'), [spec, '-o', fresh], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const want = readFileSync(fresh, 'utf8');
  const have = existsSync(committed) ? readFileSync(committed, 'utf8') : '';
  if (want !== have) {
    console.error(`check-generated: src/generated/openapi.ts is out of date with docs/openapi.json; run: ${fix}`);
    process.exit(1);
  }
  console.log('check-generated: src/generated/openapi.ts matches docs/openapi.json');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
