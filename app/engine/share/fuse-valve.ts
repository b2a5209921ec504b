/**
 * Keeps virtiofsd under its open-files limit where it cannot raise it
 * (VirtiofsSupport.openFileLimit: no CAP_SYS_RESOURCE, as in a container).
 * virtiofsd holds an open file on the host for every file the guest's
 * kernel has cached, and the kernel keeps every name it looked up until
 * memory runs short: a tree bigger than the limit failed in containers with
 * "Too many open files".
 *
 * The guest side (programs/fuse-valve.pl) counts the kernel's FUSE inodes
 * and, past a mark, has the kernel drop the names and files nobody uses;
 * FUSE then tells virtiofsd to forget them. It counts in the guest, every
 * 50 ms while the count is high, because a stat-heavy walk looks up some
 * 15,000 files a second under TCG: a watch on the host counting
 * virtiofsd's files and asking the guest over ssh was too late (tried).
 * Names stay cached below the mark, so work on a tree that fits runs at
 * full speed. The other way, virtiofsd's timeout=0 (no name cached at all),
 * made a cold `ls -lR` of 25,000 files take 116 s instead of 2.8 s, and
 * reads failed with "Bad file descriptor" (QEMU 7.2's virtiofsd, measured).
 *
 * The count covers every FUSE mount in the guest (reverse sshfs ones too),
 * so the valve may open early, never late. Dropping is the kernel's
 * drop_caches: it also drops the guest's other unused names and inodes,
 * which costs a re-read later, only when a walk passes the mark.
 */
import type { Logger } from 'pino';
import { sleep } from '../../base/process-util.js';
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

export class FuseValve {
  private stopped = false;
  private closeChannel?: () => void;
  /** Drops so far, for the log and the tests. */
  drops = 0;

  constructor(
    private readonly session: GuestSession,
    private readonly log: Logger,
    private readonly mark: number,
  ) {}

  start(): void {
    void this.loop();
  }

  private async loop(): Promise<void> {
    let delay = 200;
    while (!this.stopped) {
      let gaveUp = false;
      try {
        const ch = await this.session.openExec(perlCommand('fuse-valve.pl', [this.mark]));
        if (this.stopped) {
          ch.close();
          break;
        }
        this.closeChannel = () => {
          ch.end();
          ch.close();
        };
        delay = 200;
        await new Promise<void>((resolve) => {
          let buf = '';
          ch.on('data', (d: Buffer) => {
            buf += d.toString('latin1');
            let nl: number;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = parseValveLine(buf.slice(0, nl));
              buf = buf.slice(nl + 1);
              if (line && 'drop' in line) {
                this.drops++;
                this.log.debug(line.drop, 'fuse valve: the guest let go of cached files');
              } else if (line) {
                gaveUp = true;
                this.log.warn({ why: line.none }, 'fuse valve cannot run: a tree bigger than virtiofsd may hold open fails in containers');
              }
            }
            if (buf.length > MAX_LINE) {
              buf = '';
              ch.close();
            }
          });
          ch.stderr.on('data', (d: Buffer) => this.log.debug({ stderr: d.toString('latin1').slice(0, MAX_LINE) }, 'fuse valve'));
          ch.on('close', () => resolve());
        });
      } catch (err) {
        if (this.stopped) break;
        this.log.debug({ err: (err as Error).message }, 'fuse valve cannot start yet');
      }
      this.closeChannel = undefined;
      if (this.stopped || gaveUp) break;
      // The channel closed under us (reconnect, guest trouble): start over.
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }

  stop(): void {
    this.stopped = true;
    // EOF on its stdin ends it in the guest.
    this.closeChannel?.();
    this.closeChannel = undefined;
  }
}
