/**
 * Turns the output of vm-images/build.sh into progress a person can follow:
 * its own steps ("== " lines), and through mmdebstrap's long silent stretch
 * counters of packages fetched, unpacked and configured (from apt's "Get:N"
 * and dpkg's "Unpacking"/"Setting up" lines, which `mmdebstrap --verbose`
 * prints), or the seconds a step without counters (extracting, squashfs) has
 * taken so far.
 *
 * Pure: the caller feeds lines and clock ticks and reports what comes back.
 * Counter messages are rate-limited (one per `minIntervalMs` per step, the
 * last state of a step always reported before the next step's first), so the
 * engine's event stream is not flooded by a thousand dpkg lines. The lines
 * come from tools and are treated as data: only known shapes are counted,
 * nothing of theirs but "== " steps is shown, and odd lines are ignored.
 */

export interface BuildProgressMessage {
  message: string;
  /**
   * What the message updates: consecutive messages with the same step
   * replace each other (one updating line in a terminal).
   */
  step: string;
  /** How far the step is, 0..1, when it counts toward a known total. */
  fraction?: number;
}

export interface BuildProgressOptions {
  /** At most one counter message per step this often (default 1000 ms). */
  minIntervalMs?: number;
  /** A step without counters reports its elapsed time this often (default 5000 ms). */
  tickMs?: number;
}

/** Longest line looked at; the rest of a longer one is ignored. */
const MAX_LINE = 1000;

type Counter = 'fetched' | 'unpacked' | 'configured';

interface Current {
  step: string;
  /** The text an elapsed-time message starts with, when the step has no counters. */
  timed?: string;
  startedAt: number;
}

/** Control characters and escape sequences out, length capped. */
export function cleanLine(raw: string): string {
  return raw
    .slice(0, MAX_LINE)
    .replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '')
    .replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/g, '')
    .replace(/\t/g, ' ');
}

export function formatSeconds(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

export class BuildProgress {
  private readonly minIntervalMs: number;
  private readonly tickMs: number;
  private current: Current | undefined;
  /** Packages the running apt call installs (its "N newly installed" line). */
  private total = 0;
  /** mmdebstrap's part of the work, named for people. */
  private stage = 'base system';
  private downloading = false;
  private counts: Record<Counter, number> = { fetched: 0, unpacked: 0, configured: 0 };
  private lastAt = -Infinity;
  private pending: BuildProgressMessage | undefined;

  constructor(opts: BuildProgressOptions = {}) {
    this.minIntervalMs = opts.minIntervalMs ?? 1000;
    this.tickMs = opts.tickMs ?? 5000;
  }

  /** One line of build.sh's output (stdout or stderr); what to report now. */
  line(raw: string, now: number): BuildProgressMessage[] {
    const line = cleanLine(raw);
    if (line.startsWith('== ')) {
      const title = line.slice(3).trim();
      if (!title) return [];
      return this.begin({ step: `step:${title}`, timed: title, startedAt: now }, title, now);
    }
    // mmdebstrap's lines, indented by build.sh.
    const text = line.trim();
    let m: RegExpMatchArray | null;
    if ((m = /^I: (.*?)\.*$/.exec(text))) return this.info(m[1]!, now);
    if ((m = /^(\d{1,6}) upgraded, (\d{1,6}) newly installed/.exec(text))) {
      this.total = Number(m[1]) + Number(m[2]);
      this.counts = { fetched: 0, unpacked: 0, configured: 0 };
      this.downloading = true;
      return [];
    }
    if ((m = /^Get:(\d{1,6}) \S/.exec(text))) {
      // apt-get update's index files come before any "newly installed": not packages.
      if (!this.downloading || !this.total) return [];
      return this.count('fetched', Number(m[1]), now);
    }
    if (/^Fetched \S+ .*in /.test(text)) {
      this.downloading = false;
      return this.flush(now);
    }
    if (/^Unpacking \S+ \(.*\) \.\.\.$/.test(text)) return this.count('unpacked', this.counts.unpacked + 1, now);
    if (/^Setting up \S+ \(.*\) \.\.\.$/.test(text)) return this.count('configured', this.counts.configured + 1, now);
    return [];
  }

  /**
   * Called about once a second: a held-back counter whose time has come,
   * or how long a step without counters has run.
   */
  tick(now: number): BuildProgressMessage[] {
    if (this.pending) {
      if (now - this.lastAt < this.minIntervalMs) return [];
      return this.flush(now);
    }
    const cur = this.current;
    if (!cur?.timed || now - this.lastAt < this.tickMs) return [];
    return this.emit({ step: cur.step, message: `${cur.timed} (${formatSeconds(now - cur.startedAt)})` }, now);
  }

  /** The last held-back message, if any (at the end of the build). */
  finish(now: number): BuildProgressMessage[] {
    return this.flush(now);
  }

  private info(what: string, now: number): BuildProgressMessage[] {
    if (/^downloading packages/.test(what)) {
      this.stage = 'base system';
      return this.begin({ step: 'download', startedAt: now }, `${this.stage}: downloading packages`, now);
    }
    if (/^extracting archives/.test(what)) {
      const n = this.total ? `${this.total} ` : '';
      const title = `${this.stage}: extracting ${n}packages`;
      return this.begin({ step: 'extract', timed: title, startedAt: now }, title, now);
    }
    if (/^installing essential packages/.test(what)) {
      this.counts = { fetched: 0, unpacked: 0, configured: 0 };
      return this.begin({ step: 'essential', startedAt: now }, `${this.stage}: installing packages`, now);
    }
    if (/^installing remaining packages/.test(what)) {
      this.stage = 'guest packages';
      this.total = 0;
      this.counts = { fetched: 0, unpacked: 0, configured: 0 };
      return this.begin({ step: 'remaining', startedAt: now }, `${this.stage}: resolving`, now);
    }
    if (/^running --customize-hook/.test(what)) {
      const title = 'fetching the kernel and boot loader packages';
      return this.begin({ step: 'hook', timed: title, startedAt: now }, title, now);
    }
    if (/^cleaning package lists and apt cache/.test(what)) {
      const title = 'cleaning up';
      return this.begin({ step: 'clean', timed: title, startedAt: now }, title, now);
    }
    return [];
  }

  /**
   * Fetching is one step; unpacking and configuring are another (apt
   * interleaves them, and one line that flips between the two would be
   * unreadable), counted together: each package is unpacked, then configured.
   */
  private count(what: Counter, n: number, now: number): BuildProgressMessage[] {
    if (!Number.isSafeInteger(n) || n < 0) return [];
    this.counts[what] = n;
    const total = this.total;
    const of = (k: Counter) => `${total ? Math.min(this.counts[k], total) : this.counts[k]}${total ? `/${total}` : ''}`;
    const clamp = (k: Counter) => (total ? Math.min(this.counts[k], total) : 0);
    const msg: BuildProgressMessage =
      what === 'fetched'
        ? {
            step: `${this.stage}:fetch`,
            message: `${this.stage}: packages fetched ${of('fetched')}`,
            ...(total ? { fraction: clamp('fetched') / total } : {}),
          }
        : {
            step: `${this.stage}:install`,
            message: `${this.stage}: packages unpacked ${of('unpacked')}, configured ${of('configured')}`,
            ...(total ? { fraction: (clamp('unpacked') + clamp('configured')) / (2 * total) } : {}),
          };
    if (this.current?.step !== msg.step) {
      return this.begin({ step: msg.step, startedAt: now }, msg.message, now, msg.fraction);
    }
    if (now - this.lastAt >= this.minIntervalMs) return this.emit(msg, now);
    this.pending = msg;
    return [];
  }

  /** A new step: the old one's held-back state first, then the new one at once. */
  private begin(next: Current, message: string, now: number, fraction?: number): BuildProgressMessage[] {
    const out = this.flush(now);
    this.current = next;
    return [...out, ...this.emit({ step: next.step, message, ...(fraction !== undefined ? { fraction } : {}) }, now)];
  }

  private flush(now: number): BuildProgressMessage[] {
    const p = this.pending;
    return p ? this.emit(p, now) : [];
  }

  private emit(msg: BuildProgressMessage, now: number): BuildProgressMessage[] {
    this.pending = undefined;
    this.lastAt = now;
    return [msg];
  }
}
