/**
 * Progress messages written to a terminal or a log. A message may name the
 * step it updates (a counter or a timer, see the `step` of vm.progress):
 *  - on a terminal, consecutive messages of one step rewrite one line in
 *    place (\r, clear to the end of the line), cut to the terminal's width
 *    so the rewrite never leaves a wrapped half behind;
 *  - otherwise (a pipe, a CI log) each is a plain line, but one step prints
 *    at most once per `plainEveryMs`, and its latest state always before the
 *    next step's line (or at the end), so logs show where a count got to.
 */
export interface ProgressLinesOptions {
  write: (text: string) => void;
  tty: boolean;
  /** The terminal's width (process.stderr.columns); undefined: do not cut. */
  columns?: () => number | undefined;
  /** Printed before each message, e.g. the elapsed time; `width` is its visible length. */
  prefix?: () => { text: string; width: number };
  /** Plain output: the least time between two lines of one step (default 5000 ms). */
  plainEveryMs?: number;
  now?: () => number;
}

export class ProgressLines {
  /** The step of the line a terminal still shows unfinished. */
  private open: string | undefined;
  /** Plain output: the step last printed, when, and its newest unprinted message. */
  private last: { step: string | undefined; at: number; held?: string } = { step: undefined, at: 0 };

  constructor(private readonly o: ProgressLinesOptions) {}

  say(message: string, step?: string): void {
    if (this.o.tty) return this.sayTty(message, step);
    const now = (this.o.now ?? Date.now)();
    const every = this.o.plainEveryMs ?? 5000;
    if (step !== undefined && step === this.last.step && now - this.last.at < every) {
      this.last.held = message;
      return;
    }
    this.flushHeld(step);
    this.o.write(`${this.prefix().text}${message}\n`);
    this.last = { step, at: now };
  }

  /** Finish an open line or print a held one: call before other output and at the end. */
  end(): void {
    if (this.o.tty) {
      if (this.open !== undefined) this.o.write('\n');
      this.open = undefined;
    } else {
      this.flushHeld(undefined);
      this.last = { step: undefined, at: 0 };
    }
  }

  private sayTty(message: string, step?: string): void {
    const { text, width } = this.prefix();
    if (this.open !== undefined) this.o.write(step !== undefined && step === this.open ? '\r\x1b[2K' : '\n');
    if (step === undefined) {
      this.o.write(`${text}${message}\n`);
      this.open = undefined;
      return;
    }
    const cols = this.o.columns?.();
    const room = cols ? cols - 1 - width : Infinity;
    const shown = message.length > room ? `${message.slice(0, Math.max(0, room - 1))}…` : message;
    this.o.write(`${text}${shown}`);
    this.open = step;
  }

  private flushHeld(next: string | undefined): void {
    const held = this.last.held;
    this.last.held = undefined;
    if (held !== undefined && next !== this.last.step) this.o.write(`${this.prefix().text}${held}\n`);
  }

  private prefix(): { text: string; width: number } {
    return this.o.prefix?.() ?? { text: '', width: 0 };
  }
}
