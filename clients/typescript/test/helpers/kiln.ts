// Test helpers: a scratch area that runs the real kiln binary (sync, token new, serve on
// port 0 or a Unix socket, worker) in temporary directories and cleans all of it up.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The kiln binary: `KILN_BIN`, else the shared debug build. */
export const KILN_BIN = process.env.KILN_BIN ?? '/root/.cache/kiln-target/debug/kiln';

/** The repository's root (this file is clients/typescript/dist/test/helpers/kiln.js). */
export const REPO = fileURLToPath(new URL('../../../../../', import.meta.url));

/** The example course. */
export const EXAMPLE_COURSE = join(REPO, 'examples', 'course');

/** How long a kiln process may take to say where it listens. */
const START_TIMEOUT_MS = 20_000;

export interface Served {
  /** `http://127.0.0.1:PORT` or `unix:/path`. */
  baseUrl: string;
  proc: ChildProcess;
  /** What the process wrote to stderr so far. */
  stderr(): string;
  stop(): Promise<void>;
}

export interface SyncResult {
  course: string;
  version: string;
}

export interface TokenResult {
  name: string;
  scopes: string[];
  token: string;
  hash: string;
}

/** Temporary directories and kiln processes, all removed by {@link cleanup}. */
export class Scratch {
  readonly root = mkdtempSync(join(tmpdir(), 'kiln-ts-'));
  readonly dataDir = join(this.root, 'data');
  private readonly procs: Served[] = [];
  configPath: string | undefined;

  /** A fresh directory under the scratch root. */
  dir(name: string): string {
    const d = join(this.root, name);
    rmSync(d, { recursive: true, force: true });
    return d;
  }

  /** Writes `text` as the kiln.toml every later command uses. */
  config(text: string): string {
    this.configPath = join(this.root, 'kiln.toml');
    writeFileSync(this.configPath, text);
    return this.configPath;
  }

  private globalArgs(): string[] {
    const args = ['--data-dir', this.dataDir];
    if (this.configPath) args.unshift('--config', this.configPath);
    return args;
  }

  /** Runs kiln to completion; resolves with stdout, rejects with stderr. */
  run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(KILN_BIN, [...this.globalArgs(), ...args], {
        env: { ...process.env, ...env },
        maxBuffer: 16 << 20,
        timeout: 120_000,
      }, (err, stdout, stderr) => {
        if (err) reject(new Error(`kiln ${args.join(' ')} failed: ${err.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
  }

  /** A copy of the example course to change and sync. */
  copyExample(name = 'course'): string {
    const d = this.dir(name);
    cpSync(EXAMPLE_COURSE, d, { recursive: true, verbatimSymlinks: true });
    return d;
  }

  /** Syncs the directory `src` as `course`. */
  async sync(src: string, course: string): Promise<SyncResult> {
    return JSON.parse(await this.run(['--json', 'sync', src, '--course', course])) as SyncResult;
  }

  /** `kiln token new NAME --scopes ...`. */
  async token(name: string, scopes: string[]): Promise<TokenResult> {
    return JSON.parse(await this.run(['--json', 'token', 'new', name, '--scopes', scopes.join(',')])) as TokenResult;
  }

  /** Starts `kiln serve` (port 0 on loopback unless `listen` says otherwise) and waits
   * for its first stdout line, `listening on ...`. */
  serve(options: { listen?: string; env?: NodeJS.ProcessEnv; args?: string[] } = {}): Promise<Served> {
    const listen = options.listen ?? '127.0.0.1:0';
    return this.spawnKiln(['serve', '--listen', listen, ...(options.args ?? [])], options.env ?? {}, true);
  }

  /** Starts `kiln worker`. */
  worker(env: NodeJS.ProcessEnv = {}): Promise<Served> {
    return this.spawnKiln(['worker'], env, false);
  }

  private spawnKiln(args: string[], env: NodeJS.ProcessEnv, waitListen: boolean): Promise<Served> {
    if (!existsSync(KILN_BIN)) throw new Error(`no kiln binary at ${KILN_BIN} (set KILN_BIN)`);
    const proc = spawn(KILN_BIN, [...this.globalArgs(), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    proc.stderr!.setEncoding('utf8').on('data', (s: string) => {
      err = (err + s).slice(-20_000);
    });
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    const served: Served = {
      baseUrl: '',
      proc,
      stderr: () => err,
      async stop() {
        if (proc.exitCode !== null || proc.signalCode !== null) return;
        proc.kill('SIGTERM');
        const killer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(killer);
      },
    };
    this.procs.push(served);
    if (!waitListen) return Promise.resolve(served);
    return new Promise((resolve, reject) => {
      let out = '';
      const fail = (why: string) => {
        clearTimeout(timer);
        reject(new Error(`kiln ${args.join(' ')}: ${why}\nstderr:\n${err}`));
      };
      const timer = setTimeout(() => fail(`no "listening on" line within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
      const early = (code: number | null, signal: string | null) => fail(`exited (${code ?? signal}) before listening`);
      proc.once('exit', early);
      proc.stdout!.setEncoding('utf8').on('data', (s: string) => {
        if (served.baseUrl) return;
        out += s;
        const nl = out.indexOf('\n');
        if (nl < 0) return;
        const line = out.slice(0, nl).trim();
        const m = /^listening on (http:\/\/\S+|unix:\S+)$/.exec(line);
        clearTimeout(timer);
        proc.removeListener('exit', early);
        if (!m) {
          reject(new Error(`kiln's first stdout line is ${JSON.stringify(line)}, not "listening on ..."`));
          return;
        }
        served.baseUrl = m[1]!;
        resolve(served);
      });
    });
  }

  /** Stops every process and removes every directory. */
  async cleanup(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop()));
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** Appends `text` to a file of a course copy. */
export function append(courseDir: string, rel: string, text: string): void {
  const p = join(courseDir, rel);
  writeFileSync(p, readFileSync(p, 'utf8') + text);
}

/** Polls `check` every 50 ms until it is true or `ms` pass; false then. */
export async function eventually(check: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

/** The count of `kiln_http_requests` for a route template and status, from /metrics. */
export async function requests(kiln: { metrics(): Promise<string> }, route: string, status: number): Promise<number> {
  const text = await kiln.metrics();
  const line = text.split('\n').find((l) =>
    l.startsWith('kiln_http_requests') && l.includes(`route="${route}"`) && l.includes(`status="${status}"`));
  return line ? Number(line.trim().split(/\s+/).pop()) : 0;
}
