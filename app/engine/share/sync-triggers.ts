/**
 * When a synced folder runs a cycle: soon after either side's watcher
 * (sync-watch.ts) reports a change, a moment after the sync wrote files on
 * the host (to catch a delete the host's watcher folded away), and on a
 * safety timer: every minute, every 2 s when the guest has no watcher, and
 * backing off from 5 s while the sync is failing. What to look at is kept
 * by the pending look (sync-pending.ts); running cycles one at a time is
 * sync-cycles.ts's job.
 */
import type { Logger } from 'pino';
import type { GuestSession } from '../guest/session.js';
import type { GuestEchoes } from './sync-echo.js';
import type { PendingLook } from './sync-pending.js';
import { SyncWatch } from './sync-watch.js';

const SAFETY_RESCAN_MS = 60_000;
/** The safety timer where the guest cannot watch (no inotifywait): its changes are found only by looking. */
const NO_GUEST_WATCHER_MS = 2000;
/**
 * How long a cycle waits after a watcher's event, to take more of a burst
 * with it (the host's watcher already gathers its events for 50 ms).
 */
const EVENT_DELAY_MS = 5;
/**
 * Files a cycle wrote on the host are looked at again this long after:
 * the host's watcher folds a create and a delete in one batch into
 * nothing, so a file removed the moment the sync wrote it went unseen
 * until the safety rescan, a minute later.
 */
const RECHECK_MS = 250;

export interface TriggerOptions {
  hostPath: string;
  tree: string;
  session: GuestSession;
  log: Logger;
  echoes: GuestEchoes;
  look: PendingLook;
  /** Run a cycle after this delay (bursts coalesce). */
  request: (delayMs: number) => void;
  /** The safety timer fired: look at everything (or start over when the start did not get far). */
  safety: () => void;
  /** While failing: failures so far (the timer backs off from 5 s); undefined when not failing. */
  failures: () => number | undefined;
  /** The sync is stopped: no timer, no recheck. */
  stopped: () => boolean;
}

export class SyncTriggers {
  private timer?: NodeJS.Timeout;
  private safetyMs = SAFETY_RESCAN_MS;
  watcher?: SyncWatch;

  constructor(private readonly o: TriggerOptions) {}

  /** Start both sides' watchers and the safety timer. */
  watch(): void {
    const o = this.o;
    const w = new SyncWatch(o.hostPath, o.tree, o.session, o.log, o.echoes);
    w.on('changed', (paths, side) => {
      o.look.note(paths, side);
      o.request(EVENT_DELAY_MS);
    });
    w.on('noGuestWatcher', () => {
      o.look.guestWatched = false;
      this.safetyMs = NO_GUEST_WATCHER_MS;
      this.arm();
    });
    w.start();
    this.watcher = w;
    this.arm();
  }

  /** (Re)start the safety timer. */
  arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.o.stopped()) return;
    const failures = this.o.failures();
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.o.safety();
      },
      failures === undefined ? this.safetyMs : Math.min(this.safetyMs, 5000 * 2 ** Math.min(failures, 3)),
    );
    this.timer.unref?.();
  }

  /** Look at host paths again soon (see RECHECK_MS). */
  recheck(paths: string[]): void {
    setTimeout(() => {
      if (this.o.stopped()) return;
      this.o.look.note(paths, 'host');
      this.o.request(0);
    }, RECHECK_MS).unref?.();
  }

  /** Stop the watchers and the timer (the session says when to watch again). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.watcher?.stop();
    this.watcher = undefined;
  }
}
