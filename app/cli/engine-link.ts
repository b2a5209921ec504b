import path from 'node:path';
import type { ControlClient } from '../engine/api/control-client.js';
import { connectOrLaunch } from '../engine/api/engine-launcher.js';
import { packageRoot } from '../engine/package-root.js';
import type { InstancePaths } from '../engine/paths.js';

/**
 * The engine of an instance, connected; started in the background when
 * `spawnIfNeeded` (engine-launcher.ts, as the desktop app does). The CLI's
 * engine exits by itself once the VM is stopped.
 */
export function connectEngine(paths: InstancePaths, spawnIfNeeded: boolean): Promise<ControlClient> {
  return connectOrLaunch(paths, spawnIfNeeded, {
    execPath: process.execPath,
    script: path.join(packageRoot(), 'bin', 'berth.js'),
    env: process.env,
    exitOnStop: true,
    client: 'berth-cli',
  });
}
