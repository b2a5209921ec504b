import type { Logger } from 'pino';
import type { RunningVm } from '../drivers/driver.js';
import { poweroff } from '../guest/queries.js';
import type { GuestRuntime } from './guest-runtime.js';

export interface ShutDownOptions {
  vm?: RunningVm;
  runtime?: GuestRuntime;
  log: Logger;
  /** Kill the VM at once: no sync flush, no clean power-off. */
  force: boolean;
  /** Close the host's docker socket (not when the VM goes to rest: it keeps listening). */
  closeSocket?: () => Promise<void>;
  syncStopTimeoutMs: number;
  stopTimeoutMs: number;
}

/**
 * The same teardown list as a crash, in two halves: ports and the socket
 * go first (no new work reaches dockerd), the synced folders flush and
 * stop, then the guest powers off while its shares are still served, and
 * the shares and the session go last.
 */
export async function shutDown(o: ShutDownOptions): Promise<void> {
  const { vm, runtime: rt, log } = o;
  await rt?.unwindAbove('sync');
  await o.closeSocket?.();
  // What containers wrote in synced folders reaches the host before the VM goes.
  if (!o.force) await rt?.flushSync(o.syncStopTimeoutMs);
  await rt?.unwindAbove('shares');
  if (vm && vm.alive()) {
    let off = false;
    const session = rt?.session;
    if (!o.force && session?.currentState === 'connected') {
      log.info('asking the guest to power off');
      // The guest stops dockerd, flushes and unmounts the data disk, then
      // powers off; the ssh connection drops on the way.
      void poweroff(session);
      session.expectShutdown();
      off = await vm.waitExit(o.stopTimeoutMs);
      if (!off) log.warn('the guest did not power off in time; forcing it off');
    }
    if (!off) await vm.kill();
  }
  await rt?.close();
}
