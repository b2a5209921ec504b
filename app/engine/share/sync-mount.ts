/**
 * The guest copy of a synced folder, bind-mounted over the folder's guest
 * path (on top of the share's virtiofs or sshfs mount), and taken away.
 * Both look at the top mount there first, so running them again is harmless.
 */
import type { GuestSession } from '../guest/session.js';
import { mountsEscape } from './share-manager.js';
import { shq } from '../../base/shell-quote.js';

const topMount = (g: string) => `top=$(P=${shq(mountsEscape(g))} awk '$5 == ENVIRON["P"] { r = $4 } END { print r }' /proc/self/mountinfo)`;

/** Bind-mount `tree` at `guestPath` unless the copy `id` is mounted there already (exit 3: no such folder). */
export async function mountCopy(session: GuestSession, guestPath: string, id: string, tree: string): Promise<{ code: number | null; stderr: string }> {
  const script = [
    topMount(guestPath),
    `case "$top" in */sync/${id}/tree) exit 0;; esac`,
    `[ -d ${shq(guestPath)} ] || exit 3`,
    `mount --bind ${shq(tree)} ${shq(guestPath)}`,
  ].join('\n');
  return session.exec(script, { timeoutMs: 15_000 }).catch((err: Error) => ({ code: -1, stdout: '', stderr: err.message }));
}

/** Unmount the copy `id` from `guestPath` if it is the top mount there (best effort). */
export async function unmountCopy(session: GuestSession, guestPath: string, id: string): Promise<void> {
  const script = [topMount(guestPath), `case "$top" in */sync/${id}/tree) umount -l ${shq(guestPath)};; esac`].join('\n');
  await session.exec(script, { timeoutMs: 15_000 }).catch(() => undefined);
}
