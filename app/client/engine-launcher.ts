import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BerthError, isBerthError } from '../contract/errors.js';
import { ensurePrivateDir, tailFile } from '../base/fs-util.js';
import type { InstancePaths } from '../base/paths.js';
import { pidAlive, sleep } from '../base/process-util.js';
import { ControlClient } from './control-client.js';
import { ENGINE_MALLOC_ENV, ENGINE_NODE_FLAGS } from './engine-memory.js';

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
