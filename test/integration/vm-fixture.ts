/**
 * One Berth instance with a real VM for an integration test file: its own
 * BERTH_HOME and docker config, the real docker CLI pointed at its socket,
 * and a teardown that leaves no VM behind whatever happened.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tailFile } from '../../app/base/fs-util.js';
import { pidAlive } from '../../app/base/process-util.js';
import { berth, run } from '../helpers/run.js';
import { shortTempDir } from '../helpers/temp.js';

export interface VmFixture {
  dir: string;
  home: string;
  inst: string;
  sock: string;
  env: NodeJS.ProcessEnv;
  berth: (args: string[], opts?: { timeoutMs?: number; input?: string }) => ReturnType<typeof berth>;
  docker: (args: string[], opts?: { input?: string; timeoutMs?: number }) => ReturnType<typeof run>;
  /** docker, asserting exit 0; returns stdout. */
  ok: (args: string[], opts?: { input?: string; timeoutMs?: number }) => Promise<string>;
  qemuPid: () => number;
  /** The last lines of the engine's and the guest's logs, to put in a failure's message. */
  logTail: () => string;
  cleanup: () => Promise<void>;
}

/**
 * BERTH_TEST_KEEP_LOGS=DIR: the instance's logs (engine, serial, vfkit,
 * virtiofsd) are copied to DIR/<prefix>-<time>/ before the fixture's
 * folder goes, so a failed VM test can be read afterwards.
 */
/**
 * What a failed VM test shows besides its own assertion: CI prints only the
 * test output, and the instance's folder is gone after the run.
 */
function logTail(inst: string, lines = 25): string {
  const part = (name: string) => {
    const got = tailFile(path.join(inst, name), lines).map((l) => (l.length > 400 ? `${l.slice(0, 400)}…` : l));
    return `--- the last ${got.length} lines of ${name}\n${got.join('\n')}`;
  };
  return `${part('engine.log')}\n${part('serial.log')}`;
}

function keepLogs(inst: string, prefix: string): void {
  const to = process.env.BERTH_TEST_KEEP_LOGS;
  if (!to) return;
  try {
    const dest = path.join(to, `${prefix}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
    fs.mkdirSync(dest, { recursive: true });
    for (const dir of [inst, path.join(inst, 'virtiofs')]) {
      if (!fs.existsSync(dir)) continue;
      for (const f of fs.readdirSync(dir)) if (/\.log(\.\d+)?$/.test(f)) fs.copyFileSync(path.join(dir, f), path.join(dest, f));
    }
  } catch {
    /* best effort */
  }
}

/** `env`: more of the engine's environment (BERTH_* overrides) for this instance. */
export function vmFixture(prefix: string, extraEnv: NodeJS.ProcessEnv = {}): VmFixture {
  const t = shortTempDir(prefix);
  const home = path.join(t.dir, 'h');
  const inst = path.join(home, 'default');
  const sock = path.join(inst, 'docker.sock');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BERTH_HOME: home,
    DOCKER_CONFIG: path.join(t.dir, 'docker-config'),
    DOCKER_HOST: `unix://${sock}`,
    BERTH_ACCEL: process.env.BERTH_ACCEL || 'tcg',
    NO_COLOR: '1',
    ...extraEnv,
  };
  const docker = (args: string[], opts: { input?: string; timeoutMs?: number } = {}) =>
    run('docker', args, { env, timeoutMs: opts.timeoutMs ?? 180_000, input: opts.input });
  const qemuPid = () => Number(fs.readFileSync(path.join(inst, 'qemu.pid'), 'utf8'));
  return {
    dir: t.dir,
    home,
    inst,
    sock,
    env,
    berth: (args, opts) => berth(args, env, opts),
    docker,
    ok: async (args, opts) => {
      const r = await docker(args, opts);
      assert.equal(r.code, 0, `docker ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}\n${logTail(inst)}`);
      return r.stdout;
    },
    qemuPid,
    logTail: () => logTail(inst),
    cleanup: async () => {
      keepLogs(inst, prefix);
      await berth(['stop', '--force'], env, { timeoutMs: 120_000 }).catch(() => undefined);
      try {
        const pid = qemuPid();
        if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      t.cleanup();
    },
  };
}
