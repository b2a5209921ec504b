/**
 * File attributes for the SFTP server: what a guest may set (and how it is
 * cut down), and how host attributes and errors are sent back.
 *
 * Modes the guest sets (SETSTAT, FSETSTAT, and OPEN/MKDIR of new names) lose
 * their setuid and setgid bits: a container must not be able to leave a
 * program on the host that runs as the user (or as root, where the share
 * belongs to root). The share root keeps its group and other write bits
 * off: a container cannot open the user's home folder to other local users.
 * Both are masked, not refused, so `cp -a` and `chmod -R` in a container
 * still succeed.
 */
import { constants as C, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { ShareRefusal } from './share-jail.js';
import { SFTP_STATUS, type SftpInAttrs, type SftpName, type SftpOutAttrs, type SftpStatus } from './sftp-channel.js';

/** The mode bits a guest may set: no setuid, no setgid; on the share root no group/other write either. */
export function guestMode(mode: number, isRoot = false): number {
  return mode & 0o1777 & (isRoot ? ~0o022 : ~0);
}

/**
 * Apply what the guest asked for to an open file or folder; `mark` runs
 * before the first real change. A nudge (times set to their own values)
 * changes nothing and so marks nothing: marking it would hide the host's
 * next real edit of that file from the change notifier as if it were the
 * guest's echo. uid/gid are accepted and ignored (see sftp-server.ts).
 */
export async function applyAttrs(fh: FileHandle, a: SftpInAttrs, opts: { isRoot: boolean; isDir: boolean; mark: () => void }) {
  if (typeof a.size === 'number' || typeof a.mode === 'number') opts.mark();
  if (typeof a.size === 'number') {
    if (opts.isDir) throw Object.assign(new Error('cannot truncate a folder'), { code: 'EISDIR' });
    await fh.truncate(a.size);
  }
  if (typeof a.mode === 'number') await fh.chmod(guestMode(a.mode, opts.isRoot));
  if (typeof a.atime === 'number' && typeof a.mtime === 'number') {
    // SFTP v3 times are whole seconds. Setting a file's own times again
    // (what the change notifier's nudge does) must not cut the host file's
    // sub-second times, so times equal to the current ones are left alone.
    const st = await fh.stat();
    if (Math.floor(st.atimeMs / 1000) !== a.atime || Math.floor(st.mtimeMs / 1000) !== a.mtime) {
      opts.mark();
      await fh.utimes(a.atime, a.mtime);
    }
  }
}

/** A Node error as an SFTP status and message (OpenSSH's mapping, mostly). */
export function statusFor(err: unknown): [SftpStatus, string] {
  if (err instanceof ShareRefusal) return [err.status, err.message];
  const e = err as NodeJS.ErrnoException;
  const message = e?.message ?? String(err);
  switch (e?.code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'ELOOP':
      return [SFTP_STATUS.NO_SUCH_FILE, message];
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
    case 'EBADF':
      return [SFTP_STATUS.PERMISSION_DENIED, message];
    case 'EINVAL':
    case 'ENAMETOOLONG':
    case 'ERR_INVALID_ARG_VALUE':
    case 'ERR_INVALID_ARG_TYPE':
    case 'ERR_OUT_OF_RANGE':
      return [SFTP_STATUS.BAD_MESSAGE, message];
    case 'ENOSYS':
    case 'ENOTSUP':
    case 'EOPNOTSUPP':
      return [SFTP_STATUS.OP_UNSUPPORTED, message];
    default:
      // EEXIST, ENOTEMPTY, EISDIR, ENOSPC, EXDEV...: SFTP v3 has only FAILURE
      // for them (sshfs reads it as ENOTEMPTY for RMDIR, EEXIST for an
      // existing MKDIR, EPERM otherwise); the message keeps the cause.
      return [SFTP_STATUS.FAILURE, message];
  }
}

const U32 = 0xffffffff;
const secs = (ms: number) => Math.min(U32, Math.max(0, Math.floor(ms / 1000)));

export function toAttrs(st: Stats): SftpOutAttrs {
  return {
    size: st.size,
    uid: st.uid >>> 0,
    gid: st.gid >>> 0,
    mode: st.mode,
    atime: secs(st.atimeMs),
    mtime: secs(st.mtimeMs),
  };
}

export function nameEntry(name: string, st: Stats): SftpName {
  return { filename: name, longname: longname(name, st), attrs: toAttrs(st) };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `ls -l` style line, as OpenSSH's sftp-server sends (numeric owner and group). */
export function longname(name: string, st: Stats, now = Date.now()): string {
  const d = new Date(st.mtimeMs);
  const recent = Math.abs(now - st.mtimeMs) < 182 * 86400_000;
  const when = `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2)} ${
    recent ? `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}` : ` ${d.getFullYear()}`
  }`;
  return `${modeString(st.mode)} ${String(st.nlink).padStart(3)} ${String(st.uid).padEnd(8)} ${String(st.gid).padEnd(8)} ${String(st.size).padStart(
    8,
  )} ${when} ${name}`;
}

export function modeString(mode: number): string {
  const type: Record<number, string> = {
    [C.S_IFREG]: '-',
    [C.S_IFDIR]: 'd',
    [C.S_IFLNK]: 'l',
    [C.S_IFCHR]: 'c',
    [C.S_IFBLK]: 'b',
    [C.S_IFIFO]: 'p',
    [C.S_IFSOCK]: 's',
  };
  const t = type[mode & C.S_IFMT] ?? '?';
  const rwx = (bits: number, special: boolean, ch: string) =>
    `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? 'x' : '-'}`;
  return t + rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's') + rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's') + rwx(mode & 7, (mode & 0o1000) !== 0, 't');
}

/** statvfs@openssh.com reply body: eleven uint64s. */
export function statvfsPayload(s: { bsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number }, readOnly: boolean): Buffer {
  const ST_RDONLY = 1;
  const fields = [s.bsize, s.bsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.ffree, 0, readOnly ? ST_RDONLY : 0, 255];
  const out = Buffer.allocUnsafe(fields.length * 8);
  fields.forEach((v, i) => out.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(Number(v) || 0))), i * 8));
  return out;
}
