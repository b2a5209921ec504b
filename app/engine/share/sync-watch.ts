/**
 * Noticing changes to a synced folder on both sides: @parcel/watcher on the
 * host (our own temporary files ignored), inotifywait in the guest (opened
 * again after a reconnect, when events may have been missed). Each says
 * which paths changed (a hint of where to look: the session looks there,
 * and at everything when a watcher cannot say); the session decides when.
 *
 * A watcher sees only what happens after its watches are in place, so each
 * one also says "changed" (everything) once they are (the host's subscription made, the
 * guest's inotifywait established, first or again): whatever happened
 * before is then looked at, never left for the safety rescan. `ready()`
 * lets the session start its first cycle only once both are watching.
 */
import { EventEmitter } from 'node:events';
import path from 'node:path';
import parcelWatcher from '@parcel/watcher';
import type { Logger } from 'pino';
import type { GuestSession } from '../guest/session.js';
import { GuestWatcher } from './sync-guest.js';
import type { GuestEchoes } from './sync-echo.js';
import { SYNC_TEMP_PREFIX } from '../settings/sync-paths.js';

/** Paths (relative, POSIX) that changed on a side, or undefined: look at everything. */
export type Changed = string[] | undefined;

export class SyncWatch extends EventEmitter<{ changed: [paths: Changed, side: 'host' | 'guest']; noGuestWatcher: [] }> {
  private hostSub?: parcelWatcher.AsyncSubscription;
  private guestWatch?: GuestWatcher;
  private stopped = false;
  private hostReady: Promise<void> = Promise.resolve();
  private guestReady: Promise<void> = Promise.resolve();
  private halt!: () => void;
  private readonly halted = new Promise<void>((r) => (this.halt = r));

  constructor(
    private readonly hostPath: string,
    private readonly guestTree: string,
    private readonly session: GuestSession,
    private readonly log: Logger,
    /** The sync's own guest changes, whose events are not changes to look at. */
    private readonly echoes?: GuestEchoes,
  ) {
    super();
  }

  start(): void {
    this.stopped = false;
    this.hostReady = parcelWatcher
      .subscribe(this.hostPath, (err, events) => {
        if (err) return void this.log.debug({ err: err.message }, 'sync host watcher error');
        const paths: string[] = [];
        let all = false;
        for (const e of events) {
          if (path.basename(e.path).startsWith(SYNC_TEMP_PREFIX)) continue;
          const rel = path.relative(this.hostPath, e.path);
          if (!rel || rel.startsWith('..') || path.isAbsolute(rel)) all = true;
          else paths.push(rel.split(path.sep).join('/'));
        }
        if (all) this.emit('changed', undefined, 'host');
        else if (paths.length) this.emit('changed', paths, 'host');
      })
      .then(
        (sub) => {
          if (this.stopped) return void sub.unsubscribe().catch(() => undefined);
          this.hostSub = sub;
          this.emit('changed', undefined, 'host');
        },
        (err: Error) => this.log.warn({ err: err.message, folder: this.hostPath }, 'cannot watch the synced folder on the host; rescanning every minute'),
      );
    const gw = new GuestWatcher(this.session, this.guestTree, this.log, (p, kinds) => this.echoes?.consume(p, kinds) ?? false);
    this.guestReady = new Promise((resolve) => {
      gw.once('established', resolve);
      gw.once('unavailable', () => resolve());
    });
    gw.on('changed', (paths) => this.emit('changed', paths, 'guest'));
    gw.on('established', () => this.emit('changed', undefined, 'guest'));
    gw.on('unavailable', (why) => {
      this.log.warn({ why }, 'no inotify watcher in the guest; the guest copy is rescanned every 2 s');
      gw.stop();
      this.emit('noGuestWatcher');
    });
    gw.start();
    this.guestWatch = gw;
  }

  /**
   * Both sides are watching (or known not to: then rescans stand in), or
   * `timeoutMs` passed (a watcher that comes up later still says "changed"),
   * or the watch was stopped. Returns whether both were ready.
   */
  async ready(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const both = Promise.all([this.hostReady, this.guestReady]).then(() => true);
    const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
    try {
      return await Promise.race([both, late, this.halted.then(() => false)]);
    } finally {
      clearTimeout(timer);
    }
  }

  stop(): void {
    this.stopped = true;
    this.halt();
    void this.hostSub?.unsubscribe().catch(() => undefined);
    this.hostSub = undefined;
    this.guestWatch?.stop();
    this.guestWatch = undefined;
  }
}
