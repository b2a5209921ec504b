import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BerthError, isBerthError } from '../contract/errors.js';
import { ensurePrivateDir, tailFile } from '../base/fs-util.js';
import type { InstancePaths } from '../base/paths.js';
import { pidAlive, sleep } from '../base/process-util.js';
import { ControlClient } from './control-client.js';

/**
 * Connecting to an instance's engine, and starting one when none runs: the
 * same for the CLI and the desktop app. The engine is `berth daemon`,
 * detached, so it outlives whoever started it.
 */
export interface LaunchOptions {
  /** How to run the berth CLI: node (or Electron's own) and bin/berth.js. */
  execPath: string;
  script: string;
  env: NodeJS.ProcessEnv;
  /** The CLI's engine exits once the VM is stopped; the desktop app's stays while the app is open. */
  exitOnStop: boolean;
  /** Says who connects, in the engine's log. */
  client: string;
  timeoutMs?: number;
}

/**
 * How the engine process holds memory. Measured with a real VM under a load
 * like the bench's before its Idle section (3 × 100 MiB through a published
 * port, a 100 MiB `docker cp`, 100 `docker version`, a synced folder of
 * 5,000 files), RSS 30 s after it: 101 MiB as node starts by default (one
 * run); 80 and 85 MiB with these (two runs). Fresh, 65 → 63 MiB. Why:
 * - glibc kept freed memory: its main arena held 34.6 MB of which 4.4 MB
 *   was in use (malloc_stats), and malloc_trim (called by hand through gdb)
 *   gave back 30 MiB. Node never calls malloc_trim, and glibc gives back
 *   only the top of its heap, so Buffers of a transfer, freed between
 *   longer-lived allocations, were held for good. With a fixed mmap
 *   threshold of 16 KiB, blocks that size and up (socket reads, ssh
 *   packets, files the sync packs) are mappings of their own, unmapped when
 *   freed; a fixed threshold also stops glibc from raising it (and the trim
 *   threshold with it, to 64 MiB) after the first big free. Two arenas
 *   instead of eight per core for the libuv and V8 helper threads.
 * - V8's young generation grew to 32 MB during a sync and stayed so at
 *   idle (nothing allocates, so no collection shrinks it): held at 1 MB a
 *   half here. The port forward's GETs ran at the same speed (16-19 MB/s
 *   under TCG either way).
 * glibc only (macOS's and Windows' allocators ignore the variables); a
 * value the user set wins. They are for the engine alone: glibc reads them
 * when the process starts, and the engine then takes out of its
 * environment those that hold the launcher's values, so QEMU, virtiofsd and
 * ssh, which it starts, run with glibc's defaults.
 */
export const ENGINE_NODE_FLAGS = ['--max-semi-space-size=1'];
export const ENGINE_MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '16384' };

/** The engine's command line and environment: `berth daemon`, detached. */
export function engineCommand(
  paths: Pick<InstancePaths, 'name'>,
  o: Pick<LaunchOptions, 'execPath' | 'script' | 'env' | 'exitOnStop'>,
): { file: string; args: string[]; env: NodeJS.ProcessEnv } {
  return {
    file: o.execPath,
    args: [...ENGINE_NODE_FLAGS, o.script, 'daemon', '--instance', paths.name, ...(o.exitOnStop ? ['--exit-on-stop'] : [])],
    env: { ...ENGINE_MALLOC_ENV, ...o.env },
  };
}

/** In the engine, at its start: take out the malloc settings that hold the launcher's values, so the processes it starts do not inherit them. */
export function dropEngineMallocEnv(env: NodeJS.ProcessEnv = process.env): void {
  for (const [k, v] of Object.entries(ENGINE_MALLOC_ENV)) if (env[k] === v) delete env[k];
}

export async function connectOrLaunch(paths: InstancePaths, spawnIfNeeded: boolean, o: LaunchOptions): Promise<ControlClient> {
  try {
    return await ControlClient.connect(paths, o.client);
  } catch (err) {
    if (!spawnIfNeeded || !isBerthError(err, 'ENGINE_NOT_RUNNING')) throw err;
  }
  ensurePrivateDir(path.dirname(paths.dir));
  ensurePrivateDir(paths.dir);
  const out = fs.openSync(paths.daemonOut, 'a', 0o600);
  const cmd = engineCommand(paths, o);
  const child = spawn(cmd.file, cmd.args, { detached: true, stdio: ['ignore', out, out], env: cmd.env });
  fs.closeSync(out);
  let exited: number | null | undefined;
  child.on('exit', (code) => (exited = code));
  child.on('error', () => (exited = -1));
  child.unref();
  const deadline = Date.now() + (o.timeoutMs ?? 20_000);
  let last: unknown;
  while (Date.now() < deadline && exited === undefined) {
    await sleep(50);
    try {
      return await ControlClient.connect(paths, o.client);
    } catch (err) {
      last = err;
    }
  }
  if (exited === undefined && child.pid && pidAlive(child.pid)) child.kill('SIGTERM');
  const tail = tailFile(paths.daemonOut, 15).join('\n');
  if (/INSTANCE_LOCKED|another Berth engine/.test(tail)) {
    throw new BerthError(
      'INSTANCE_LOCKED',
      'another Berth engine holds this instance but does not answer',
      `If no engine is running, delete ${paths.lock} and try again.`,
      tail,
    );
  }
  throw new BerthError(
    'ENGINE_START_FAILED',
    exited === undefined ? 'the Berth engine did not answer in time' : 'the Berth engine did not start',
    `Its output is in ${paths.daemonOut} (the last lines are below); \`berth logs --engine\` shows more.`,
    tail || (last instanceof Error ? last.message : undefined),
  );
}
