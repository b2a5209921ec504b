/**
 * Opening what a walked path names, for the SFTP server: files for OPEN,
 * and files or folders whose attributes SETSTAT changes through the
 * descriptor. Only regular files (and folders, for attributes) are served:
 * everything is opened with O_NOFOLLOW and O_NONBLOCK and checked after
 * opening, so a FIFO, socket or device (or one swapped in after the walk
 * looked) is refused at once instead of holding a libuv thread forever.
 */
import { constants as C } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { guestMode } from './sftp-attrs.js';
import { SFTP_OPEN, SFTP_STATUS, type SftpInAttrs } from './sftp-channel.js';
import { O_NONBLOCK, ShareRefusal, type Place } from './share-jail.js';

export const errno = (code: string, message: string) => Object.assign(new Error(message), { code });

export const notRegular = (host: string) =>
  new ShareRefusal(SFTP_STATUS.PERMISSION_DENIED, `${host}: not a regular file or folder (FIFOs, sockets and devices are not served)`);

/** ENOENT when the walk found nothing at the last name. */
export function mustExist(place: Place): void {
  if (place.missing) throw errno('ENOENT', `${place.host}: no such file or folder`);
}

/** What an SFTP OPEN asks for, as open(2) flags. */
export function openFlags(pflags: number, attrs: SftpInAttrs | undefined) {
  const writes = (pflags & (SFTP_OPEN.WRITE | SFTP_OPEN.APPEND | SFTP_OPEN.CREAT | SFTP_OPEN.TRUNC)) !== 0;
  const read = (pflags & SFTP_OPEN.READ) !== 0;
  const write = (pflags & (SFTP_OPEN.WRITE | SFTP_OPEN.APPEND)) !== 0;
  let flags = (read && write ? C.O_RDWR : write ? C.O_WRONLY : C.O_RDONLY) | O_NONBLOCK;
  if (pflags & SFTP_OPEN.CREAT) flags |= C.O_CREAT;
  // O_EXCL never follows (as open(2)); otherwise a symlink is followed inside the share.
  const excl = (pflags & SFTP_OPEN.CREAT) !== 0 && (pflags & SFTP_OPEN.EXCL) !== 0;
  if (excl) flags |= C.O_EXCL;
  const append = (pflags & SFTP_OPEN.APPEND) !== 0;
  if (append) flags |= C.O_APPEND;
  // O_TRUNC is left out: truncation waits until the descriptor is known to be a regular file.
  const truncate = (pflags & SFTP_OPEN.TRUNC) !== 0 && write;
  const mode = typeof attrs?.mode === 'number' ? guestMode(attrs.mode) : 0o666;
  return { flags, mode, writes, excl, append, truncate };
}

/** Open the regular file at `place` (OPEN). */
export async function openFile(place: Place, o: ReturnType<typeof openFlags>): Promise<FileHandle> {
  if (place.name === undefined || place.st?.isDirectory()) throw errno('EISDIR', `${place.host}: is a folder`);
  if (place.st && !place.st.isFile()) throw notRegular(place.host);
  const fh = await place.open(o.flags, o.mode);
  try {
    if (!(await fh.stat()).isFile()) throw notRegular(place.host);
    if (o.truncate) await fh.truncate(0);
    return fh;
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** Open the file or folder at `place` to change its attributes through the descriptor (SETSTAT). */
export async function openForAttrs(place: Place, a: SftpInAttrs): Promise<{ fh: FileHandle; isDir: boolean }> {
  mustExist(place);
  if (place.st && !place.st.isFile() && !place.st.isDirectory()) throw notRegular(place.host);
  const isDir = place.name === undefined || !!place.st?.isDirectory();
  const fh = await place.open((typeof a.size === 'number' && !isDir ? C.O_WRONLY : C.O_RDONLY) | O_NONBLOCK);
  const st = await fh.stat().catch(async (err) => {
    await fh.close();
    throw err;
  });
  if (!st.isFile() && !st.isDirectory()) {
    await fh.close();
    throw notRegular(place.host);
  }
  return { fh, isDir: st.isDirectory() };
}
