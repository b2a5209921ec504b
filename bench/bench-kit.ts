/**
 * What the bench's sections share: the bench's own BERTH_HOME in /tmp (the
 * user's instance is untouched), the berth and docker commands pointed at
 * it, and the number formats of the tables.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { VmStatus } from '../app/contract/contract.js';
import { packageRoot } from '../app/base/package-root.js';
import { HOSTFWD } from './ports.js';

export type RunResult = { code: number | null; stdout: string; stderr: string; ms: number };

/** One bench instance: its BERTH_HOME, its docker socket, berth and docker pointed at them. */
export interface BenchKit {
  home: string;
  sock: string;
  env: NodeJS.ProcessEnv;
  run(cmd: string, argv: string[], input?: string): Promise<RunResult>;
  berth(...a: string[]): Promise<RunResult>;
  status(): Promise<VmStatus>;
}

const bin = path.join(packageRoot(), 'bin', 'berth.js');

/** A new instance in a fresh /tmp folder; `extraEnv` reaches berth, the engine it starts, and docker. */
export function benchKit(extraEnv: NodeJS.ProcessEnv = {}): BenchKit {
  const home = fs.mkdtempSync('/tmp/bb-');
  const sock = path.join(home, 'default', 'docker.sock');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BERTH_HOME: home,
    DOCKER_CONFIG: path.join(home, '.docker'),
    DOCKER_HOST: `unix://${sock}`,
    NO_COLOR: '1',
    // QEMU's own forward to the same guest port, to compare Berth's with.
    BERTH_QEMU_HOSTFWD: `${HOSTFWD.host}:${HOSTFWD.guest}`,
    ...extraEnv,
  };
  const run = (cmd: string, argv: string[], input?: string): Promise<RunResult> =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      const c = spawn(cmd, argv, { env });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (d) => (stdout += d));
      c.stderr.on('data', (d) => (stderr += d));
      c.on('error', reject);
      c.on('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - t0 }));
      c.stdin.end(input ?? '');
    });
  const berth = (...a: string[]) => run(process.execPath, [bin, ...a]);
  const status = async (): Promise<VmStatus> => JSON.parse((await must(berth('status', '--json'), 'berth status')).stdout);
  return { home, sock, env, run, berth, status };
}

export async function must(p: Promise<RunResult>, what: string) {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** The bench's own instance, which every section uses. */
export const kit = benchKit();
export const { home, sock, env, run, berth, status } = kit;

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
export const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
export const s1 = (ms: number) => (ms / 1000).toFixed(1) + ' s';
export const ms1 = (ms: number) => ms.toFixed(1) + ' ms';
