import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { ControlClient } from '../engine/api/control-client.js';
import { BerthError, isBerthError } from '../contract/errors.js';
import { ensurePrivateDir, tailFile } from '../engine/fs-util.js';
import type { InstancePaths } from '../engine/paths.js';
import { sleep } from '../engine/process-util.js';

/** How to run the berth CLI from the desktop app (Electron's own Node in a packaged app). */
export interface BerthCommand {
  execPath: string;
  /** bin/berth.js */
  script: string;
  env: NodeJS.ProcessEnv;
}

/** The CLI command line as a list, for "Open Terminal" and the engine. */
export function berthArgv(cmd: BerthCommand, instance: string): string[] {
  return [cmd.execPath, cmd.script, '--instance', instance];
}

/**
 * Connect to the instance's engine; when `spawnIfNeeded` and none runs,
 * start `berth daemon` (detached, and without --exit-on-stop: while the
 * app is open the engine stays, whether the VM runs or not). The app never
 * owns the VM: closing it leaves the engine and the VM as they are.
 */
export async function connectOrStartEngine(paths: InstancePaths, cmd: BerthCommand, spawnIfNeeded: boolean, client = 'berth-desktop'): Promise<ControlClient> {
  try {
    return await ControlClient.connect(paths, client);
  } catch (err) {
    if (!spawnIfNeeded || !isBerthError(err, 'ENGINE_NOT_RUNNING')) throw err;
  }
  ensurePrivateDir(paths.dir);
  const out = fs.openSync(paths.daemonOut, 'a', 0o600);
  const child = spawn(cmd.execPath, [cmd.script, 'daemon', '--instance', paths.name], {
    detached: true,
    stdio: ['ignore', out, out],
    env: cmd.env,
  });
  fs.closeSync(out);
  let exited: number | null | undefined;
  child.on('exit', (code) => (exited = code));
  child.on('error', () => (exited = -1));
  child.unref();
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && exited === undefined) {
    await sleep(100);
    try {
      return await ControlClient.connect(paths, client);
    } catch {
      /* not yet */
    }
  }
  const tail = tailFile(paths.daemonOut, 15).join('\n');
  throw new BerthError(
    'ENGINE_START_FAILED',
    exited === undefined ? 'the Berth engine did not answer in time' : 'the Berth engine did not start',
    `Its output is in ${paths.daemonOut}; \`berth logs --engine\` shows more.`,
    tail || undefined,
  );
}
