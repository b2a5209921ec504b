import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ControlClient } from '../engine/api/control-client.js';
import { BerthError, isBerthError } from '../contract/errors.js';
import { ensurePrivateDir, tailFile } from '../engine/fs-util.js';
import { packageRoot } from '../engine/package-root.js';
import { berthHome, type InstancePaths } from '../engine/paths.js';
import { pidAlive, sleep } from '../engine/process-util.js';

/** The engine of an instance, connected; started in the background when `spawnIfNeeded`. */
export async function connectEngine(paths: InstancePaths, spawnIfNeeded: boolean): Promise<ControlClient> {
  try {
    return await ControlClient.connect(paths);
  } catch (err) {
    if (!spawnIfNeeded || !isBerthError(err, 'ENGINE_NOT_RUNNING')) throw err;
  }
  return spawnEngine(paths);
}

/**
 * Start `berth daemon` detached (it outlives this CLI) and wait for its
 * control socket. It exits by itself once the VM is stopped.
 */
async function spawnEngine(paths: InstancePaths): Promise<ControlClient> {
  ensurePrivateDir(berthHome());
  ensurePrivateDir(paths.dir);
  const out = fs.openSync(paths.daemonOut, 'a', 0o600);
  const bin = path.join(packageRoot(), 'bin', 'berth.js');
  const child = spawn(process.execPath, [bin, 'daemon', '--instance', paths.name, '--exit-on-stop'], {
    detached: true,
    stdio: ['ignore', out, out],
    env: process.env,
  });
  fs.closeSync(out);
  let exited: number | null | undefined;
  child.on('exit', (code) => (exited = code));
  child.unref();
  const deadline = Date.now() + 20_000;
  let last: unknown;
  while (Date.now() < deadline) {
    await sleep(50);
    if (exited !== undefined) break;
    try {
      return await ControlClient.connect(paths);
    } catch (err) {
      last = err;
    }
  }
  if (exited === undefined && child.pid && pidAlive(child.pid)) child.kill('SIGTERM');
  const tail = tailFile(paths.daemonOut, 15).join('\n');
  const locked = /INSTANCE_LOCKED|another Berth engine/.test(tail);
  throw new BerthError(
    locked ? 'INSTANCE_LOCKED' : 'ENGINE_START_FAILED',
    locked ? 'another Berth engine holds this instance but does not answer' : 'the Berth engine did not start',
    locked
      ? `If no engine is running, delete ${paths.lock} and try again.`
      : `Its output is in ${paths.daemonOut}; the last lines are below.`,
    tail || (last instanceof Error ? last.message : undefined),
  );
}
