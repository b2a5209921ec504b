import fs from 'node:fs';
import { writeFileAtomic } from '../../base/fs-util.js';
import { START_PHASES, type StartPhase, type StateChange } from '../../contract/vm-states.js';

/**
 * How long each start phase took in the last starts, kept in the instance
 * folder (start-times.json), so a start can show beside each phase how long
 * it usually takes. Fed by the engine's progress and state events; only a
 * start that reached `running` counts.
 */

/** Starts remembered; the expected time of a phase is their median. */
export const STARTS_KEPT = 5;

export interface StartRecord {
  at: string;
  totalMs: number;
  phases: Partial<Record<StartPhase, number>>;
}

/** What a status shows: the median of each phase over the last starts, and how many starts that is. */
export interface ExpectedTimes {
  starts: number;
  totalMs: number;
  phases: Partial<Record<StartPhase, number>>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : Math.round((s[mid - 1]! + s[mid]!) / 2);
}

/** The last starts from the file; anything unreadable or malformed counts as none. */
export function readStarts(file: string): StartRecord[] {
  try {
    const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as { starts?: unknown };
    if (!Array.isArray(raw.starts)) return [];
    return raw.starts
      .filter(
        (r): r is StartRecord =>
          !!r &&
          typeof r === 'object' &&
          typeof (r as StartRecord).totalMs === 'number' &&
          typeof (r as StartRecord).phases === 'object' &&
          (r as StartRecord).phases !== null,
      )
      .map((r) => ({
        at: String(r.at),
        totalMs: r.totalMs,
        phases: Object.fromEntries(START_PHASES.flatMap((p) => (typeof r.phases[p] === 'number' && r.phases[p]! >= 0 ? [[p, r.phases[p]!]] : []))),
      }))
      .slice(-STARTS_KEPT);
  } catch {
    return [];
  }
}

export function expectedTimes(starts: StartRecord[]): ExpectedTimes | undefined {
  if (!starts.length) return undefined;
  const phases: ExpectedTimes['phases'] = {};
  for (const p of START_PHASES) {
    const xs = starts.flatMap((s) => (s.phases[p] !== undefined ? [s.phases[p]!] : []));
    if (xs.length) phases[p] = median(xs);
  }
  return { starts: starts.length, totalMs: median(starts.map((s) => s.totalMs)), phases };
}

export class StartClock {
  private began?: number;
  private current?: { phase: StartPhase; at: number };
  private phases: StartRecord['phases'] = {};

  constructor(
    private readonly file: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** A progress event: a new phase closes the one before (a phase's further messages do not). */
  progress(phase: StartPhase): void {
    if (this.began === undefined || this.current?.phase === phase) return;
    this.close();
    this.current = { phase, at: this.now() };
  }

  /** A state change: `starting` begins a start, `running` records it, anything else drops it. */
  state(c: Pick<StateChange, 'state' | 'previous'>): void {
    if (c.state === 'starting') {
      if (c.previous !== 'starting') this.reset(this.now());
      return;
    }
    if (c.state === 'running' && c.previous === 'starting' && this.began !== undefined) {
      this.close();
      this.save({ at: new Date(this.now()).toISOString(), totalMs: this.now() - this.began, phases: this.phases });
    }
    this.reset(undefined);
  }

  expected(): ExpectedTimes | undefined {
    return expectedTimes(readStarts(this.file));
  }

  private close(): void {
    if (this.current) this.phases[this.current.phase] = (this.phases[this.current.phase] ?? 0) + (this.now() - this.current.at);
    this.current = undefined;
  }

  private reset(began: number | undefined): void {
    this.began = began;
    this.current = undefined;
    this.phases = {};
  }

  private save(r: StartRecord): void {
    const starts = [...readStarts(this.file), r].slice(-STARTS_KEPT);
    try {
      writeFileAtomic(this.file, JSON.stringify({ starts }, null, 2) + '\n');
    } catch {
      /* an unwritable folder: the next start shows no expected times, nothing else changes */
    }
  }
}
