import { BerthError } from '../engine/errors.js';
import type { InstancePaths } from '../engine/paths.js';

export interface DashboardOptions {
  paths: InstancePaths;
  json: boolean;
  /** Open the default browser (false: only print the URL). */
  open: boolean;
  port?: number;
}

/** `berth dashboard`: the renderer on loopback with a per-start token, bridged to the engine. */
export async function runDashboard(_o: DashboardOptions): Promise<number> {
  throw new BerthError('INTERNAL', 'the dashboard is not built yet', 'It arrives with the desktop app issue.');
}
