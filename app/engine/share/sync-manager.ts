/**
 * Keeps one SyncSession per synced folder in settings while the VM runs:
 * starts new ones, removes dropped ones (a last sync, then the guest copy
 * goes), mounts the guest copies again when a share remounted, and runs a
 * last cycle of each before the VM stops.
 */
import { EventEmitter } from 'node:events';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { GuestSession } from '../guest/session.js';
import { GUEST_SYNC_ROOT, shareOf, syncGuestPath, syncId, type ShareLike } from '../settings/sync-paths.js';
// Only a synced folder needs the sync itself (and its tar and file watcher): loaded with the first.
import type { SyncSession, SyncConflictView, SyncView } from './sync-session.js';
import { listDir, removeTrees } from '../guest/queries.js';

export interface SyncSetting {
  hostPath: string;
}

export interface SyncManagerOptions {
  session: GuestSession;
  log: Logger;
  /** Host folder for the per-folder state files. */
  stateDir: string;
  syncs: () => SyncSetting[];
  shares: () => ShareLike[];
  /** Whether the share with this guest path is mounted now. */
  shareMounted: (shareGuestPath: string) => boolean;
}

export class SyncManager extends EventEmitter<{ change: [SyncView[]]; conflict: [{ hostPath: string; conflict: SyncConflictView }] }> {
  private sessions = new Map<string, SyncSession>();
  private refreshing: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly o: SyncManagerOptions) {
    super();
  }

  private async make(hostPath: string): Promise<SyncSession> {
    const { SyncSession } = await import('./sync-session.js');
    const s = new SyncSession({
      hostPath,
      guestPath: () => syncGuestPath(hostPath, this.o.shares()),
      shareMounted: () => {
        const sh = shareOf(hostPath, this.o.shares());
        return !!sh && this.o.shareMounted(sh.guestPath ?? sh.hostPath);
      },
      session: this.o.session,
      log: this.o.log,
      stateDir: this.o.stateDir,
    });
    s.on('change', () => this.emit('change', this.list()));
    s.on('conflict', (conflict) => this.emit('conflict', { hostPath: s.hostPath, conflict }));
    return s;
  }

  /**
   * Start syncing every folder in settings. Resolves once the folders whose
   * guest copy existed already are in sync again and mounted (a restart);
   * first copies go on in the background (`berth sync` shows them).
   */
  async start(): Promise<void> {
    await this.removeOrphans();
    await this.refresh();
  }

  /** Guest copies and state files of folders no longer synced (removed while the VM was stopped). */
  private async removeOrphans(): Promise<void> {
    const ids = new Set(this.o.syncs().map((s) => syncId(s.hostPath)));
    const names = await listDir(this.o.session, GUEST_SYNC_ROOT).catch(() => [] as string[]);
    const gone = names.filter((n) => /^[0-9a-f]{16}$/.test(n) && !ids.has(n));
    if (gone.length) {
      this.o.log.info({ gone }, 'removing guest copies of folders no longer synced');
      await removeTrees(
        this.o.session,
        gone.map((n) => path.posix.join(GUEST_SYNC_ROOT, n)),
      );
    }
    const files = await fsp.readdir(this.o.stateDir).catch(() => [] as string[]);
    for (const f of files) {
      const m = /^([0-9a-f]{16})\.json$/.exec(f);
      if (m && !ids.has(m[1]!)) await fsp.rm(path.join(this.o.stateDir, f), { force: true });
    }
  }

  /** Make the sessions match settings (a sync added or removed). */
  refresh(): Promise<void> {
    this.refreshing = this.refreshing.then(() => this.doRefresh()).catch((err: Error) => this.o.log.error({ err: err.message }, 'sync refresh failed'));
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const want = new Set(this.o.syncs().map((s) => path.resolve(s.hostPath)));
    for (const [p, s] of [...this.sessions]) {
      if (want.has(p)) continue;
      this.sessions.delete(p);
      this.o.log.info({ folder: p }, 'stopping the sync of a folder');
      await s.remove();
    }
    const starting: Promise<void>[] = [];
    for (const p of want) {
      if (this.sessions.has(p)) continue;
      const s = await this.make(p);
      // Stopped while the sync's code loaded: start nothing more.
      if (this.stopped) return;
      this.sessions.set(p, s);
      const started = s.start();
      // A folder synced before (a restart) is brought up to date before we
      // return, so containers started next see current files; a first copy
      // goes on in the background.
      if (await isInitialized(s)) starting.push(started);
    }
    await Promise.all(starting);
    this.emit('change', this.list());
  }

  /** Shares (re)mounted: mount the guest copies over them again. */
  sharesChanged(): void {
    for (const s of this.sessions.values()) void s.ensureMounted();
  }

  /** Run a cycle of every folder now (before the VM stops), bounded by `timeoutMs`. */
  async flush(timeoutMs: number): Promise<void> {
    const all = Promise.all([...this.sessions.values()].map((s) => s.flush().catch(() => undefined)));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    if (timer) clearTimeout(timer);
  }

  list(): SyncView[] {
    return [...this.sessions.values()].map((s) => s.view());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map((s) => s.stop()));
  }
}

/** Whether the session's state says its guest copy was complete before (read before start resolves). */
async function isInitialized(s: SyncSession): Promise<boolean> {
  try {
    const st = JSON.parse(await fsp.readFile(s.stateFile, 'utf8')) as { initialDone?: boolean };
    return !!st.initialDone;
  } catch {
    return false;
  }
}
