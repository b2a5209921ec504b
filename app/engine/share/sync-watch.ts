/**
 * Noticing changes to a synced folder on both sides: @parcel/watcher on the
 * host (our own temporary files ignored), inotifywait in the guest (opened
 * again after a reconnect, when events may have been missed). Each says
 * only "something changed"; the session decides when to look.
 */
import { EventEmitter } from 'node:events';
import path from 'node:path';
import parcelWatcher from '@parcel/watcher';
import type { Logger } from 'pino';
import type { GuestSession } from '../guest/session.js';
import { GuestWatcher } from './sync-guest.js';
import { SYNC_TEMP_PREFIX } from '../settings/sync-paths.js';

export class SyncWatch extends EventEmitter<{ changed: []; noGuestWatcher: [] }> {
  private hostSub?: parcelWatcher.AsyncSubscription;
  private guestWatch?: GuestWatcher;
  private stopped = false;

  constructor(
    private readonly hostPath: string,
    private readonly guestTree: string,
    private readonly session: GuestSession,
    private readonly log: Logger,
  ) {
    super();
  }

  start(): void {
    this.stopped = false;
    void parcelWatcher
      .subscribe(this.hostPath, (err, events) => {
        if (err) return void this.log.debug({ err: err.message }, 'sync host watcher error');
        if (events.some((e) => !path.basename(e.path).startsWith(SYNC_TEMP_PREFIX))) this.emit('changed');
      })
      .then(
        (sub) => {
          if (this.stopped) return void sub.unsubscribe().catch(() => undefined);
          this.hostSub = sub;
        },
        (err: Error) => this.log.warn({ err: err.message, folder: this.hostPath }, 'cannot watch the synced folder on the host; rescanning every minute'),
      );
    const gw = new GuestWatcher(this.session, this.guestTree, this.log);
    gw.on('changed', () => this.emit('changed'));
    gw.on('reopened', () => this.emit('changed'));
    gw.on('unavailable', (why) => {
      this.log.warn({ why }, 'no inotify watcher in the guest; the guest copy is rescanned every 2 s');
      gw.stop();
      this.emit('noGuestWatcher');
    });
    gw.start();
    this.guestWatch = gw;
  }

  stop(): void {
    this.stopped = true;
    void this.hostSub?.unsubscribe().catch(() => undefined);
    this.hostSub = undefined;
    this.guestWatch?.stop();
    this.guestWatch = undefined;
  }
}
