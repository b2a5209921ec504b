/**
 * The guest copy of a synced folder: made ready at start (its folders, and
 * whether it is the copy the host's state describes), bind-mounted over the
 * folder's guest path (on top of the share's virtiofs or sshfs mount), and
 * taken away. Mounting and unmounting look at the top mount there first,
 * so running them again is harmless.
 */
import type { Logger } from 'pino';
import type { GuestSession } from '../guest/session.js';
import { bindMount, unbindMount } from '../guest/queries.js';
import type { guestSyncDirs } from '../settings/sync-paths.js';
import { sh } from '../../base/shell-quote.js';

/**
 * Make the copy's folders (clearing what a push the link dropped under left
 * in staging, best effort) and say whether the copy carries `token`, the
 * one the host's state names. A copy without it (a new data disk, a
 * factory reset) is not the one the ancestor describes.
 */
export async function copyIsOurs(session: GuestSession, d: ReturnType<typeof guestSyncDirs>, token: string): Promise<boolean> {
  const r = await session.exec(sh`mkdir -p ${d.tree} && { rm -rf ${d.stage}; mkdir -p ${d.stage}; cat ${d.token} 2>/dev/null; true; }`, { timeoutMs: 30_000 });
  return r.stdout.trim() === token;
}

/** What the top mount's folder ends in when the copy `id` is mounted. */
const copyMark = (id: string) => `/sync/${id}/tree`;

/** Bind-mount `tree` at `guestPath` unless the copy `id` is mounted there already (exit 3: no such folder). */
export async function mountCopy(session: GuestSession, guestPath: string, id: string, tree: string): Promise<{ code: number | null; stderr: string }> {
  return bindMount(session, tree, guestPath, copyMark(id)).catch((err: Error) => ({ code: -1, stdout: '', stderr: err.message }));
}

/** Unmount the copy `id` from `guestPath` if it is the top mount there (best effort). */
export async function unmountCopy(session: GuestSession, guestPath: string, id: string): Promise<void> {
  await unbindMount(session, guestPath, copyMark(id));
}

/** Whether a synced folder's copy is mounted over its guest path, and making it so. */
export class CopyMount {
  mounted = false;

  constructor(
    private readonly o: {
      session: GuestSession;
      /** The folder's guest path, or undefined when its share is gone. */
      guestPath: () => string | undefined;
      id: string;
      tree: string;
      hostPath: string;
      log: Logger;
      /** Told when `mounted` flips. */
      changed: () => void;
    },
  ) {}

  /** Mount the copy when `want` (and the folder has a guest path), else count it as not mounted. */
  async ensure(want: boolean): Promise<void> {
    const g = this.o.guestPath();
    if (!g || !want) {
      if (this.mounted) {
        this.mounted = false;
        this.o.changed();
      }
      return;
    }
    const r = await mountCopy(this.o.session, g, this.o.id, this.o.tree);
    const ok = r.code === 0;
    const at = { folder: this.o.hostPath, guestPath: g };
    if (!ok) this.o.log.warn({ ...at, code: r.code, err: r.stderr.trim() }, 'cannot mount the guest copy of a synced folder');
    else if (!this.mounted) this.o.log.info({ ...at, copy: this.o.tree }, 'synced folder: guest copy mounted');
    if (ok !== this.mounted) {
      this.mounted = ok;
      this.o.changed();
    }
  }

  async unmount(): Promise<void> {
    const g = this.o.guestPath();
    if (!g) return;
    await unmountCopy(this.o.session, g, this.o.id);
    this.mounted = false;
  }
}
