import type { BootStep } from '../../contract/boot-timeline.js';
import type { GuestSession } from './session.js';

/**
 * The guest's half of the boot timeline. Each boot step in the guest
 * appends "STEP SECONDS" (its own clock, /proc/uptime) to
 * /run/berth/boot-timeline (vm-images/rootfs/etc/berth/stamp.sh). The engine
 * reads that file together with the guest's clock now, and places each step
 * on its own clock. What the guest sends is untrusted: bounded, parsed
 * strictly, and whatever does not parse is dropped, never thrown.
 */

/** The most of the stamps file the engine reads. */
export const MAX_TIMELINE_BYTES = 4096;
/** The most guest steps kept (the guest stamps about ten). */
export const MAX_GUEST_STEPS = 32;
/** A guest clock past this (about 115 days) is not a boot's. */
const MAX_UPTIME_SEC = 1e7;

const SECONDS = '(\\d{1,7}(?:\\.\\d{1,6})?)';
const STEP_LINE = new RegExp(`^([a-z][a-z0-9-]{0,31}) ${SECONDS}$`);
const UPTIME_LINE = new RegExp(`^@uptime ${SECONDS}(?: [0-9.]*)?$`);

/**
 * The guest's stamps, then its clock now, on a last line of its own ("@"
 * cannot start a step's name). The clock is read last, so it is as close as
 * it can be to the moment the answer reaches the engine.
 */
export const READ_TIMELINE_COMMAND = `head -c ${MAX_TIMELINE_BYTES} /run/berth/boot-timeline 2>/dev/null; printf '\\n@uptime '; cat /proc/uptime`;

/** The steps of the guest's own names that the engine stamps itself or makes up: a guest line of that name is dropped. */
const NOT_FROM_THE_GUEST = new Set(['kernel', 'vm-spawn', 'vm-process-up', 'ssh-connected', 'docker-ready', 'socket-ready']);

export interface GuestStamps {
  /** Each step once (the first line wins), in the order the guest wrote them. */
  steps: { step: string; sec: number }[];
  /** The guest's clock when it answered. */
  nowSec: number;
}

/** The answer to READ_TIMELINE_COMMAND; undefined when it holds no clock reading. */
export function parseGuestStamps(text: string): GuestStamps | undefined {
  // The file is cut by head in the guest; a guest that sends more is cut here.
  const lines = text.slice(0, MAX_TIMELINE_BYTES + 256).split('\n');
  let nowSec: number | undefined;
  let end = lines.length;
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = UPTIME_LINE.exec(lines[i]!.trimEnd());
    if (m) {
      nowSec = Number(m[1]);
      end = i;
      break;
    }
  }
  if (nowSec === undefined || !Number.isFinite(nowSec) || nowSec > MAX_UPTIME_SEC) return undefined;
  const steps: GuestStamps['steps'] = [];
  const seen = new Set<string>();
  for (const line of lines.slice(0, end)) {
    if (steps.length >= MAX_GUEST_STEPS) break;
    const m = STEP_LINE.exec(line);
    if (!m) continue;
    const step = m[1]!;
    const sec = Number(m[2]);
    if (seen.has(step) || NOT_FROM_THE_GUEST.has(step)) continue;
    seen.add(step);
    // A stamp after the clock that was read with it is not a real one.
    if (!Number.isFinite(sec) || sec > nowSec) continue;
    steps.push({ step, sec });
  }
  return { steps, nowSec };
}

/**
 * Guest steps on the engine's clock: `readAtMs` is when (engine ms, from the
 * start's origin) the guest's clock said `nowSec`. The kernel started at the
 * guest clock's zero.
 */
export function placeGuestSteps(stamps: GuestStamps, readAtMs: number): BootStep[] {
  const at = (sec: number) => Math.round(readAtMs - (stamps.nowSec - sec) * 1000);
  return [{ step: 'kernel', atMs: at(0), source: 'guest' as const }, ...stamps.steps.map((s) => ({ step: s.step, atMs: at(s.sec), source: 'guest' as const }))];
}

/**
 * Read the guest's stamps over the session. `clock` is the engine's
 * (milliseconds from the start's origin). The guest's clock is taken to be
 * read halfway through the round trip; it is really read near the end (the
 * command reads it last), so guest steps land up to half a round trip early
 * rather than late, never after a host step they caused. Undefined when the
 * guest has no timeline (an older image) or did not answer; never throws.
 */
export async function readGuestStamps(
  session: Pick<GuestSession, 'exec'>,
  clock: () => number,
  timeoutMs = 5000,
): Promise<{ stamps: GuestStamps; readAtMs: number } | undefined> {
  try {
    const t0 = clock();
    const r = await session.exec(READ_TIMELINE_COMMAND, { timeoutMs });
    const t1 = clock();
    const stamps = parseGuestStamps(r.stdout);
    return stamps ? { stamps, readAtMs: (t0 + t1) / 2 } : undefined;
  } catch {
    return undefined;
  }
}
