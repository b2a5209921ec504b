/**
 * The guest copy of a synced folder, bind-mounted over the folder's guest
 * path (on top of the share's virtiofs or sshfs mount), and taken away.
 * Both look at the top mount there first, so running them again is harmless.
 */
import type { GuestSession } from '../guest/session.js';
import { bindMount, unbindMount } from '../guest/queries.js';

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
