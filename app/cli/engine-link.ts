import path from 'node:path';
import type { ControlClient } from '../client/control-client.js';
import { connectOrLaunch } from '../client/engine-launcher.js';
import { packageRoot } from '../base/package-root.js';
import type { InstancePaths } from '../base/paths.js';

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
