import type { Logger } from 'pino';

export interface IdleRestOptions {
  log: Logger;
  /** The `idleMinutes` setting now (0: never rest). */
  idleMinutes: () => number;
  /** Why the VM is in use now, or undefined when it is not. */
  busyReason: () => Promise<string | undefined>;
  /** Put the VM to rest (the engine's clean stop that keeps the socket). */
  rest: () => void;
  /** How often to look; default a quarter of the idle time, between 1 s and 30 s (30 s when it is 0: only to see the setting change). */
  checkMs?: number;
}

/**
 * Watches a running VM for the idle rest: it rests once nothing has been
 * in use for `idleMinutes`, counted from the last check that found
 * something in use (or from when it started watching). Cheap at idle: one
 * docker API call and one guest command per check, at most every 30 s.
 */
export class IdleRest {
  private timer?: NodeJS.Timeout;
  private idleSince = Date.now();
  private lastBusy?: string;
  private armed = false;

  constructor(private readonly o: IdleRestOptions) {}

  /** The VM runs: start counting from now. */
  arm(): void {
    this.disarm();
    this.armed = true;
    this.idleSince = Date.now();
    this.lastBusy = undefined;
    this.schedule();
  }

  disarm(): void {
    this.armed = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** For status: since when nothing has been in use, or what is. */
  view(): { idleSince?: string; busy?: string } {
    if (!this.armed) return {};
    return this.lastBusy ? { busy: this.lastBusy } : { idleSince: new Date(this.idleSince).toISOString() };
  }

  private periodMs(): number {
    if (this.o.checkMs) return this.o.checkMs;
    const idleMs = this.o.idleMinutes() * 60_000;
    // Never resting: nothing to count, only the setting to see change (the
    // bench runs so, and it woke the engine every second for nothing).
    if (!(idleMs > 0)) return 30_000;
    return Math.min(30_000, Math.max(1000, idleMs / 4));
  }

  private schedule(): void {
    if (!this.armed) return;
    this.timer = setTimeout(() => void this.check(), this.periodMs());
    this.timer.unref();
  }

  private async check(): Promise<void> {
    this.timer = undefined;
    const minutes = this.o.idleMinutes();
    if (!(minutes > 0)) {
      this.idleSince = Date.now();
      this.lastBusy = undefined;
      return this.schedule();
    }
    let busy: string | undefined;
    try {
      busy = await this.o.busyReason();
    } catch (err) {
      busy = `cannot tell whether the VM is in use (${(err as Error).message})`;
    }
    if (!this.armed) return;
    const now = Date.now();
    if (busy) {
      this.idleSince = now;
      this.lastBusy = busy;
      return this.schedule();
    }
    this.lastBusy = undefined;
    if (now - this.idleSince >= minutes * 60_000) {
      this.o.log.info({ idleMinutes: minutes }, 'nothing in use for the idle time: the VM rests');
      this.o.rest();
      return;
    }
    this.schedule();
  }
}
