/**
 * `berth daemon`: run the engine in this process (what connectOrLaunch in
 * engine-launcher.ts spawns). A file of its own so that only the CLI's
 * daemon command loads the engine: the other commands and Electron main's
 * bundle never do.
 */
import { dropEngineMallocEnv } from './engine-memory.js';

export async function runEngineHere(o: { instance: string; exitOnStop: boolean }): Promise<void> {
  dropEngineMallocEnv();
  const { runDaemonProcess } = await import('../engine/daemon.js');
  await runDaemonProcess(o);
}
