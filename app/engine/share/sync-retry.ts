/**
 * Per-path retries for sync: a change that could not be applied (the target
 * changed under us, a folder the host will not let us write, a name the
 * host folds onto another, a link on the way) is tried again later, each
 * path on its own doubling delay, and reported once it keeps failing or is
 * refused outright. Without this, one change that can never be applied
 * re-ran the whole cycle at once, forever (25 full cycles in 2 s, issue 14);
 * Mutagen likewise records such paths as "problems" and keeps going.
 *
 * A path leaves the list when a change to it lands, or when a cycle no
 * longer plans anything for it (the user fixed it on either side).
 */
import type { SyncProblemWire } from '../../contract/contract.js';

/** The wire's shape (contract.ts holds the schema and its field notes). */
export type SyncProblemView = SyncProblemWire;

interface Failing {
  attempts: number;
  /** Not before this time (ms). */
  due: number;
  /** The delay that set `due` (ms). */
  delay: number;
  problem: string;
  since: number;
  reported: boolean;
}

export interface RetryOptions {
  /** First delay; doubles with each failure. */
  baseMs?: number;
  maxMs?: number;
  /** Report a path after this many failures (a refusal is reported at once). */
  reportAfter?: number;
  /** At most this many paths are remembered (the oldest go first). */
  maxPaths?: number;
  now?: () => number;
}

export class PathRetries {
  private readonly failing = new Map<string, Failing>();
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly reportAfter: number;
  private readonly maxPaths: number;
  private readonly now: () => number;

  constructor(o: RetryOptions = {}) {
    this.baseMs = o.baseMs ?? 500;
    this.maxMs = o.maxMs ?? 5 * 60_000;
    this.reportAfter = o.reportAfter ?? 3;
    this.maxPaths = o.maxPaths ?? 10_000;
    this.now = o.now ?? Date.now;
  }

  /**
   * The path failed before and its next try is not due yet: leave it out of
   * this cycle. A path due within half its delay goes with a cycle that runs
   * anyway, so paths failing on their own schedules share cycles instead of
   * each costing one.
   */
  waiting(p: string): boolean {
    const f = this.failing.get(p);
    return !!f && f.due - this.now() > f.delay / 2;
  }

  /**
   * A change to `p` did not apply. Returns true when the path is newly
   * reported (refused, or failed `reportAfter` times).
   */
  failed(p: string, problem: string, refused = false): boolean {
    return this.fail(p, problem, refused);
  }

  private fail(p: string, problem: string, refused: boolean): boolean {
    const now = this.now();
    const f = this.failing.get(p) ?? { attempts: 0, due: 0, delay: 0, problem, since: now, reported: false };
    f.attempts++;
    f.problem = problem;
    f.delay = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(f.attempts - 1, 30));
    f.due = now + f.delay;
    this.failing.delete(p);
    this.failing.set(p, f);
    if (this.failing.size > this.maxPaths) this.failing.delete(this.failing.keys().next().value!);
    if (f.reported || !(refused || f.attempts >= this.reportAfter)) return false;
    f.reported = true;
    return true;
  }

  /** A change to `p` landed. Returns true when it had been reported. */
  succeeded(p: string): boolean {
    const f = this.failing.get(p);
    this.failing.delete(p);
    return !!f?.reported;
  }

  /**
   * After a cycle: paths the plan no longer touches are in sync again (or
   * the user resolved them). Returns true when a reported one went.
   */
  keepOnly(planned: Set<string>): boolean {
    let changed = false;
    for (const [p, f] of this.failing) {
      if (planned.has(p)) continue;
      this.failing.delete(p);
      changed ||= f.reported;
    }
    return changed;
  }

  /**
   * A cycle's outcome in one call: what landed leaves the list, what failed
   * is noted, and (after a look at everything, `planned` being every path
   * it planned a change for) paths no longer planned leave too. Returns the
   * paths to report now, each once, as the view shows them.
   */
  settle(
    applied: Iterable<string>,
    failed: ReadonlyMap<string, { info: string; refused: boolean }>,
    planned: Set<string> | undefined,
    toHost: (p: string) => string,
  ): SyncProblemView[] {
    for (const p of applied) this.succeeded(p);
    const now: string[] = [];
    for (const [p, f] of failed) if (this.fail(p, f.info, f.refused)) now.push(toHost(p));
    if (planned) this.keepOnly(planned);
    const all = this.problems(toHost);
    return now.flatMap((h) => all.filter((v) => v.path === h));
  }

  /** When the earliest waiting path is due (ms), if any. */
  nextDue(): number | undefined {
    let min: number | undefined;
    for (const f of this.failing.values()) if (min === undefined || f.due < min) min = f.due;
    return min;
  }

  /** Reported paths, as the view shows them (`toHost` makes the absolute host path). */
  problems(toHost: (p: string) => string): SyncProblemView[] {
    const out: SyncProblemView[] = [];
    for (const [p, f] of this.failing) {
      if (!f.reported) continue;
      out.push({ path: toHost(p), problem: f.problem, attempts: f.attempts, since: new Date(f.since).toISOString(), nextTry: new Date(f.due).toISOString() });
    }
    return out;
  }

  private timer?: NodeJS.Timeout;

  /** Call `onDue` when the earliest waiting path is due (replaces an earlier call; nothing when none waits). */
  arm(onDue: () => void): void {
    this.disarm();
    const due = this.nextDue();
    if (due === undefined) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        onDue();
      },
      Math.max(0, due - this.now()) + 10,
    );
    this.timer.unref?.();
  }

  disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  get size(): number {
    return this.failing.size;
  }
}
