import type { ControlClient } from '../client/control-client.js';
import { connectOrLaunch } from '../client/engine-launcher.js';
import type { InstancePaths } from '../base/paths.js';

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
 * start `berth daemon` (engine-launcher.ts, as the CLI does; without
 * --exit-on-stop: while the app is open the engine stays, whether the VM
 * runs or not). The app never owns the VM: closing it leaves the engine and
 * the VM as they are.
 */
export function connectOrStartEngine(paths: InstancePaths, cmd: BerthCommand, spawnIfNeeded: boolean, client = 'berth-desktop'): Promise<ControlClient> {
  return connectOrLaunch(paths, spawnIfNeeded, { execPath: cmd.execPath, script: cmd.script, env: cmd.env, exitOnStop: false, client });
}
