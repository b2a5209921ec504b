/**
 * A guest that stops answering while its VM process runs (a kernel hung in
 * an RCU stall, a guest out of memory that cannot schedule sshd): the ssh
 * session keeps trying to reconnect and nothing else would ever notice, so
 * `docker` calls hang for good. The watchdog gives the session a while to
 * come back, then calls the guest hung and kills its VM; the engine sees
 * the VM exit as a crash (with the watchdog's reason), and the crash path
 * starts it again within its budget.
 */
import type { Logger } from 'pino';
import type { RunningVm } from '../drivers/driver.js';

export class GuestWatchdog {
  private timer?: NodeJS.Timeout;
  private why?: string;

  constructor(
    private readonly o: {
      /** How long the session may be lost before the guest counts as hung. */
      limitMs: () => number;
      /** The VM while the engine calls it running. */
      runningVm: () => RunningVm | undefined;
      log: Logger;
    },
  ) {}

  /** The session's state changed: a lost link starts the clock, a link back stops it. */
  session(state: string): void {
    if (state === 'connected' || state === 'closed') return this.stop();
    if (state !== 'reconnecting' || this.timer) return;
    const limit = this.o.limitMs();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const vm = this.o.runningVm();
      if (!vm?.alive()) return;
      this.why = `the guest stopped answering for ${Math.round(limit / 1000)} s while its VM ran (a hung guest kernel?)`;
      this.o.log.error({ ms: limit }, 'the guest stopped answering; stopping its VM to start it again');
      void vm.kill().catch(() => undefined);
    }, limit);
    this.timer.unref?.();
  }

  /** Why the watchdog killed the VM (once), if it did. */
  takeReason(): string | undefined {
    const why = this.why;
    this.why = undefined;
    return why;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
