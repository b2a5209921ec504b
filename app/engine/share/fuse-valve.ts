/**
 * Keeps virtiofsd under its open-files limit where it cannot raise it
 * (VirtiofsSupport.openFileLimit: no CAP_SYS_RESOURCE, as in a container)
 * and cannot name files by handle (no CAP_DAC_READ_SEARCH, or a user
 * namespace). Only the Rust virtiofsd runs there: QEMU 7.2's C one stops
 * taking FORGETs after enough of them, so nothing the guest lets go of is
 * closed (drivers/virtiofsd-probe.ts).
 * virtiofsd holds an open file on the host for every file the guest's
 * kernel has cached, and the kernel keeps every name it looked up until
 * memory runs short: a tree bigger than the limit failed in containers with
 * "Too many open files".
 *
 * The guest side (programs/fuse-valve.pl) counts the kernel's FUSE inodes
 * and, past a mark, has the kernel drop the names and files nobody uses;
 * FUSE then tells virtiofsd to forget them. It counts in the guest, every
 * 50 ms while the count is high and every 10 ms while it grows, because a
 * stat-heavy walk looks up 15,000-26,000 files a second under TCG (one
 * walk passed a limit of 6,000 in CI with looks every 50 ms): a watch on the host counting
 * virtiofsd's files and asking the guest over ssh was too late (tried).
 * Names stay cached below the mark, so work on a tree that fits runs at
 * full speed. The other way, virtiofsd's timeout=0 (no name cached at all),
 * made a cold `ls -lR` of 25,000 files take 116 s instead of 2.8 s, and
 * reads failed with "Bad file descriptor" (QEMU 7.2's virtiofsd, measured).
 *
 * The count covers every FUSE mount in the guest (reverse sshfs ones too),
 * so the valve may open early, never late. It is the slab's count, where
 * objects in per-CPU slabs count as used: after a drop it can stay a few
 * hundred high (1,008 seen with next to nothing cached), which is why the
 * guest side judges a drop by the count's growth, not its level alone. Dropping is the kernel's
 * drop_caches: it also drops the guest's other unused names and inodes,
 * which costs a re-read later, only when a walk passes the mark.
 */
import type { Logger } from 'pino';
import { KeptGuestProgram } from '../guest/kept-program.js';
import { perlCommand } from '../guest/programs.js';
import type { GuestSession } from '../guest/session.js';

/**
 * The FUSE inode count the guest drops at, for a virtiofsd limit. The rest
 * of the limit must hold what a walk looks up while the valve looks and
 * drops (up to 50 ms, then ~250 ms for the drop under TCG: some 4,500 files
 * at 15,000 a second), and the files virtiofsd has open for reading.
 */
export function valveMark(limit: number): number {
  return Math.max(Math.floor(limit / 10), Math.min(Math.floor(limit * 0.4), limit - 5000));
}

/** A line from the guest side: a drop (count before and after, ms), or why it cannot run. */
export type ValveLine = { drop: { before: number; after: number; ms: number } } | { none: string };

/** One line of programs/fuse-valve.pl's output; anything else is ignored. */
export function parseValveLine(line: string): ValveLine | undefined {
  const d = /^drop (\d{1,9}) (\d{1,9}) (\d{1,9})$/.exec(line);
  if (d) return { drop: { before: Number(d[1]), after: Number(d[2]), ms: Number(d[3]) } };
  const n = /^none ([ -~]{1,200})$/.exec(line);
  return n ? { none: n[1]! } : undefined;
}

/** The longest line taken from the guest side; past it the channel closes and opens again. */
const MAX_LINE = 512;

/** Runs the guest side for as long as the shares are up. */
export class FuseValve {
  private readonly program: KeptGuestProgram;

  constructor(session: GuestSession, log: Logger, mark: number) {
    this.program = new KeptGuestProgram(session, log, {
      name: 'the fuse valve',
      command: perlCommand('fuse-valve.pl', [mark]),
      maxLine: MAX_LINE,
      onLine: (text) => {
        const line = parseValveLine(text);
        if (line && 'drop' in line) log.debug(line.drop, 'fuse valve: the guest let go of cached files');
        else if (line) {
          log.warn({ why: line.none }, 'fuse valve cannot run: a tree bigger than virtiofsd may hold open fails in containers');
          return 'done';
        }
      },
    });
  }

  start(): void {
    this.program.start();
  }

  stop(): void {
    this.program.stop();
  }
}
