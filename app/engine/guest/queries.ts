/**
 * What the engine asks of the guest, by name: every command here quotes
 * each value it carries (shell-quote.ts), and the mount logic is one shell
 * program of its own (programs/mounts.sh). Callers say what they want
 * (`isMounted`, `setClock`, `poweroff`), never write guest shell text.
 *
 * Best-effort queries (an unmount on the way out, a clock sync) say so in
 * their name or their comment and never throw; the others return the
 * command's result or throw what the session throws.
 */
import { shellCommand } from './programs.js';
import type { ExecResult, GuestSession } from './session.js';
import { sh } from '../../base/shell-quote.js';

/** What the queries need of a session (GuestSession, or a test's fake). */
export type GuestExec = Pick<GuestSession, 'exec'>;

/** A path as /proc/mounts and /proc/self/mountinfo write it: space, tab, newline and backslash octal-escaped. */
export function mountsEscape(p: string): string {
  return p.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

/** A guest mount point: absolute, and nothing the mount tables cannot hold. */
function checkMountPoint(p: string): string {
  if (!p.startsWith('/') || p.includes('\0') || p.includes('\n')) throw new Error(`bad mount point ${JSON.stringify(p)}`);
  return p;
}

/** The mounts.sh command for `cmd` at `guestPath`. */
export function mountsCommand(cmd: 'is-mounted' | 'mount-virtiofs' | 'unmount-virtiofs' | 'bind' | 'unbind', guestPath: string, ...args: string[]): string {
  return shellCommand('mounts.sh', [cmd, guestPath, mountsEscape(guestPath), ...args]);
}

export interface MountFilter {
  /** Only a mount of this type (`fuse`: any FUSE type, as sshfs's fuse.sshfs). */
  type?: 'fuse' | 'virtiofs';
  /** Only a mount of this source (a virtio-fs tag). */
  source?: string;
}

/** Whether something (of `filter`) is mounted at exactly `guestPath`; false when the guest cannot say. */
export async function isMounted(session: GuestExec, guestPath: string, filter: MountFilter = {}): Promise<boolean> {
  const r = await session.exec(mountsCommand('is-mounted', guestPath, filter.type ?? '', filter.source ?? ''), { timeoutMs: 10_000 }).catch(() => undefined);
  return r?.code === 0;
}

/**
 * Mount the virtio-fs device `tag` at `guestPath` (made if missing; `ro`
 * when read-only). One already there (a reattach) is kept; a reverse sshfs
 * mount an earlier engine left there is detached first. `mount -t virtiofs
 * TAG DIR` is the kernel's own usage (Documentation/filesystems/virtiofs.rst).
 */
export async function mountVirtiofs(session: GuestExec, tag: string, guestPath: string, readOnly: boolean): Promise<ExecResult> {
  if (!/^[A-Za-z0-9._-]{1,36}$/.test(tag)) throw new Error(`bad virtiofs tag ${JSON.stringify(tag)}`);
  return session.exec(mountsCommand('mount-virtiofs', checkMountPoint(guestPath), tag, readOnly ? 'ro' : 'rw'), { timeoutMs: 30_000 });
}

/** Detach the virtio-fs device `tag` from `guestPath`, only if it is mounted at exactly that path (best effort). */
export async function unmountVirtiofs(session: GuestExec, tag: string, guestPath: string): Promise<void> {
  await session.exec(mountsCommand('unmount-virtiofs', guestPath, tag), { timeoutMs: 5000 }).catch(() => undefined);
}

/**
 * Bind-mount `folder` at `guestPath` unless the top mount there already is
 * a folder whose path ends in `mark`. Exit status 3: `guestPath` is no folder.
 */
export async function bindMount(session: GuestExec, folder: string, guestPath: string, mark: string): Promise<ExecResult> {
  if (!mark) throw new Error('a bind mount needs a mark');
  return session.exec(mountsCommand('bind', guestPath, folder, mark), { timeoutMs: 15_000 });
}

/** Detach the top mount at `guestPath` if its folder's path ends in `mark` (best effort). */
export async function unbindMount(session: GuestExec, guestPath: string, mark: string): Promise<void> {
  if (!mark) throw new Error('a bind mount needs a mark');
  await session.exec(mountsCommand('unbind', guestPath, mark), { timeoutMs: 15_000 }).catch(() => undefined);
}

/**
 * Lazily detach whatever is mounted at `guestPath` (best effort, not
 * awaited by callers that must not wait: the umount of a device whose
 * server is gone may never return, while the path is free at once).
 */
export async function detachMount(session: GuestExec, guestPath: string): Promise<void> {
  await session.exec(sh`umount -l ${guestPath} 2>/dev/null`, { timeoutMs: 10_000 }).catch(() => undefined);
}

/**
 * Make `guestPath` ready for a FUSE mount: a mount left there by a dead
 * channel (it answers "transport endpoint is not connected") is detached,
 * then the folder is made if missing.
 */
export function prepareFuseMountPoint(session: GuestExec, guestPath: string): Promise<ExecResult> {
  return session.exec(sh`fusermount3 -u -z ${guestPath} 2>/dev/null; mkdir -p ${guestPath}`, { timeoutMs: 20_000 });
}

/** Lazily unmount the FUSE mount at `guestPath` (best effort). */
export async function fuseUnmount(session: GuestExec, guestPath: string): Promise<void> {
  await session.exec(sh`fusermount3 -u -z ${guestPath}`, { timeoutMs: 5000 }).catch(() => undefined);
}

/** Set the guest's clock (UTC, to the millisecond). */
export async function setClock(session: GuestExec, date: Date): Promise<void> {
  const secs = (date.getTime() / 1000).toFixed(3);
  await session.exec(sh`date -u -s ${`@${secs}`} >/dev/null`, { timeoutMs: 5000 });
}

/**
 * Power the guest off: it stops dockerd, flushes and unmounts the data
 * disk, then powers off, dropping the ssh connection on the way (so no
 * answer is awaited beyond the request; best effort).
 */
export async function poweroff(session: GuestExec): Promise<void> {
  await session.exec('/bin/busybox poweroff', { timeoutMs: 5000 }).catch(() => undefined);
}

/** The last `lines` lines of the guest's system log (sshd, dockerd), only those with `match` when given. */
export async function systemLog(session: GuestExec, lines: number, o: { match?: string; timeoutMs?: number } = {}): Promise<string> {
  const n = Math.max(0, Math.floor(lines));
  const cmd = o.match ? sh`/bin/busybox logread | grep -e ${o.match} | tail -n ${n}` : sh`/bin/busybox logread | tail -n ${n}`;
  return (await session.exec(cmd, { timeoutMs: o.timeoutMs ?? 10_000 })).stdout;
}

/** The names in the guest folder `dir` (none when it does not exist). */
export async function listDir(session: GuestExec, dir: string): Promise<string[]> {
  const r = await session.exec(sh`ls -1 ${dir} 2>/dev/null; true`, { timeoutMs: 15_000 });
  return r.stdout.split('\n').filter(Boolean);
}

/** Delete these guest paths and everything under them (best effort). */
export async function removeTrees(session: GuestExec, paths: readonly string[], timeoutMs = 120_000): Promise<void> {
  if (!paths.length) return;
  await session.exec(sh`rm -rf ${paths}`, { timeoutMs }).catch(() => undefined);
}

/** Write `text` as the whole content of the guest file `file`. */
export function writeFile(session: GuestExec, file: string, text: string): Promise<ExecResult> {
  return session.exec(sh`printf %s ${text} > ${file}`, { timeoutMs: 30_000 });
}
