/**
 * One Berth instance with a real VM for an integration test file: its own
 * BERTH_HOME and docker config, the real docker CLI pointed at its socket,
 * and a teardown that leaves no VM behind whatever happened.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pidAlive } from '../../app/engine/process-util.js';
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
  cleanup: () => Promise<void>;
}

export function vmFixture(prefix: string): VmFixture {
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
      assert.equal(r.code, 0, `docker ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    },
    qemuPid,
    cleanup: async () => {
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
