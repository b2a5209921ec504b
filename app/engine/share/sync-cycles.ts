/**
 * When a synced folder's cycles run: soon after a request (a burst of
 * requests makes one cycle), at once for a flush, never two at a time, and
 * again right after one that ends while more was asked for. What a cycle
 * does is the session's (sync-session.ts); a failed cycle asks the session
 * whether to run again at once.
 */
export interface CycleOptions {
  /** One cycle. */
  cycle: () => Promise<void>;
  /** More waits for a look (the session's pending paths). */
  waiting: () => boolean;
  /** A cycle failed: true runs another at once, false ends the run. */
  failed: (err: unknown) => boolean;
  stopped: () => boolean;
}

export class CycleRunner {
  private running?: Promise<void>;
  private dirty = false;
  private debounce?: NodeJS.Timeout;

  constructor(private readonly o: CycleOptions) {}

  /** Run a cycle soon (bursts coalesce); one running gets another after it. */
  request(delayMs = 100): void {
    if (this.o.stopped()) return;
    if (this.running) {
      this.dirty = true;
      return;
    }
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.run();
    }, delayMs);
  }

  /** Run a cycle now, or join the one running and the one after it. */
  async flush(): Promise<void> {
    if (this.running) {
      this.dirty = true;
      await this.running;
      if (this.running) await this.running;
      return;
    }
    await this.run();
  }

  /** Run cycles until nothing more is asked for (or join the run going on). */
  run(): Promise<void> {
    if (this.running) {
      this.dirty = true;
      return this.running;
    }
    // This run's scan comes after any look asked for so far: it answers it.
    this.cancel();
    const p = (async () => {
      do {
        this.dirty = false;
        try {
          await this.o.cycle();
        } catch (err) {
          if (!this.o.failed(err)) break;
          this.dirty = true;
        }
      } while ((this.dirty || this.o.waiting()) && !this.o.stopped());
    })();
    this.running = p.finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Forget a requested cycle that has not started. */
  cancel(): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = undefined;
  }

  /** The run going on ends (never rejects). */
  async idle(): Promise<void> {
    await this.running?.catch(() => undefined);
  }
}
