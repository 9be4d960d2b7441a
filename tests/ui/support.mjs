// What the browser suites share: starting kiln processes.

import { spawn } from 'node:child_process';

/** Starts a process; resolves with it and the first http:// URL it prints. */
export function start(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} ${args.join(' ')} did not start: ${err}`)), 30_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /http:\/\/[^\s]+/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[0].replace(/\/$/, '') });
      }
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited with ${code}: ${err}`));
    });
  });
}

