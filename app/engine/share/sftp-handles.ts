/**
 * The SFTP server's open handles. A handle keeps what was opened, never
 * just a path: a file handle is the file's descriptor, a folder handle the
 * folder's descriptor (O_NOFOLLOW, held until CLOSE) and its listing.
 * FSTAT, FSETSTAT, READDIR and fstatvfs act through them, so a folder
 * renamed and replaced by a symlink after OPENDIR is still the folder that
 * was opened. Where folders cannot be opened as descriptors (Windows), a
 * folder handle remembers the folder's device and inode and checks them
 * before and after every use.
 */
import { type BigIntStats, type Dir, type Stats } from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { nameEntry } from './sftp-attrs.js';
import { SFTP_STATUS, type SftpName } from './sftp-channel.js';
import { DIR_FLAGS, ShareRefusal, type Place } from './share-jail.js';

export type OpenFile = { kind: 'file'; fh: FileHandle; host: string; append: boolean };
export interface OpenDir {
  kind: 'dir';
  /** The folder itself (undefined only where folders cannot be opened: Windows). */
  fh: FileHandle | undefined;
  dir: Dir;
  /** Its host path when opened: for notifications, and the portable checks. */
  host: string;
  /** A path that reaches the folder now: /proc/self/fd/N (Linux), else `host`, checked by identity. */
  ref: string;
  dev: bigint;
  ino: bigint;
  isRoot: boolean;
  dotsSent: boolean;
  eof: boolean;
  closed: boolean;
}
export type Handle = OpenFile | OpenDir;

/** A READDIR reply stops at this many entries or roughly this many bytes. */
const READDIR_MAX_ENTRIES = 100;
const READDIR_MAX_BYTES = 48 * 1024;

export class HandleTable {
  private readonly map = new Map<number, Handle>();
  private next = 1;
  constructor(private readonly max: number) {}

  get size(): number {
    return this.map.size;
  }

  /** The handle's number, or -1 when the bytes cannot be one of ours. */
  static number(h: unknown): number {
    return Buffer.isBuffer(h) && h.length === 4 ? h.readUInt32BE(0) : -1;
  }

  add(h: Handle): Buffer {
    if (this.map.size >= this.max) throw new ShareRefusal(SFTP_STATUS.FAILURE, 'too many open files in this share');
    const n = this.next;
    this.next = this.next >= 0xffffffff ? 1 : this.next + 1;
    this.map.set(n, h);
    const buf = Buffer.allocUnsafe(4);
    buf.writeUInt32BE(n, 0);
    return buf;
  }

  get(n: number): Handle | undefined {
    return this.map.get(n);
  }

  lookup(h: unknown): Handle {
    const found = this.map.get(HandleTable.number(h));
    if (!found) throw new ShareRefusal(SFTP_STATUS.FAILURE, 'invalid handle');
    return found;
  }

  file(h: unknown): OpenFile {
    const found = this.lookup(h);
    if (found.kind !== 'file') throw new ShareRefusal(SFTP_STATUS.FAILURE, 'handle is a folder, not a file');
    return found;
  }

  dir(h: unknown): OpenDir {
    const found = this.lookup(h);
    if (found.kind !== 'dir') throw new ShareRefusal(SFTP_STATUS.FAILURE, 'handle is a file, not a folder');
    return found;
  }

  async close(h: unknown): Promise<void> {
    const n = HandleTable.number(h);
    const found = this.map.get(n);
    if (!found) throw new ShareRefusal(SFTP_STATUS.FAILURE, 'invalid handle');
    this.map.delete(n);
    await closeHandle(found);
  }

  async closeAll(): Promise<void> {
    const all = [...this.map.values()];
    this.map.clear();
    await Promise.all(all.map((h) => closeHandle(h).catch(() => undefined)));
  }
}

async function closeHandle(h: Handle): Promise<void> {
  if (h.kind === 'file') return h.fh.close();
  if (h.closed) return;
  h.closed = true;
  await Promise.all([h.dir.close().catch(() => undefined), h.fh?.close()]);
}

const bigStat = (p: string) => fsp.lstat(p, { bigint: true }).catch(() => undefined);
const same = (st: BigIntStats | undefined, d: OpenDir) => !!st && st.isDirectory() && st.dev === d.dev && st.ino === d.ino;

/** Open the folder at `place` (the walk's result) as a handle. */
export async function openDir(place: Place, pinned: boolean): Promise<OpenDir> {
  if (place.missing) throw Object.assign(new Error(`${place.host}: no such file or folder`), { code: 'ENOENT' });
  if (place.st && !place.st.isDirectory()) throw Object.assign(new Error(`${place.host}: not a folder`), { code: 'ENOTDIR' });
  const fh = await place.open(DIR_FLAGS).catch((err: NodeJS.ErrnoException) => {
    if (process.platform === 'win32' && (err.code === 'EISDIR' || err.code === 'EPERM')) return undefined;
    throw err;
  });
  try {
    const ref = pinned ? `/proc/self/fd/${fh!.fd}` : place.ref;
    const st = fh ? await fh.stat({ bigint: true }) : await bigStat(ref);
    if (!st?.isDirectory()) throw Object.assign(new Error(`${place.host}: not a folder`), { code: 'ENOTDIR' });
    const dir = await fsp.opendir(ref, { bufferSize: 128 });
    const d: OpenDir = {
      kind: 'dir',
      fh,
      dir,
      host: place.host,
      ref,
      dev: st.dev,
      ino: st.ino,
      isRoot: place.isRoot,
      dotsSent: false,
      eof: false,
      closed: false,
    };
    if (!pinned) {
      // The listing was opened by path: it must be the folder walked and checked.
      await place
        .check()
        .then(() => checkDir(d, pinned))
        .catch(async (err) => {
          await dir.close().catch(() => undefined);
          throw err;
        });
    }
    return d;
  } catch (err) {
    await fh?.close();
    throw err;
  }
}

/** Portable: the folder is still at its path (else refuse: it was moved or replaced). */
async function checkDir(d: OpenDir, pinned: boolean): Promise<void> {
  if (pinned) return;
  if (!same(await bigStat(d.ref), d)) {
    throw new ShareRefusal(SFTP_STATUS.FAILURE, `${d.host}: the folder was moved or replaced while open (listing it again works)`);
  }
}

/** The folder's own attributes (FSTAT, and "." in READDIR). */
export async function dirStat(d: OpenDir, pinned: boolean): Promise<Stats> {
  if (d.fh) return d.fh.stat();
  await checkDir(d, pinned);
  const st = await fsp.lstat(d.ref);
  await checkDir(d, pinned);
  return st;
}

/** The next READDIR batch: names with attributes, or undefined at the end. */
export async function readDirBatch(d: OpenDir, pinned: boolean): Promise<SftpName[] | undefined> {
  if (d.eof) return undefined;
  const names: SftpName[] = [];
  if (!d.dotsSent) {
    d.dotsSent = true;
    const st = await dirStat(d, pinned);
    names.push(nameEntry('.', st), nameEntry('..', st));
  }
  const batch: string[] = [];
  let bytes = 0;
  while (batch.length < READDIR_MAX_ENTRIES && bytes < READDIR_MAX_BYTES) {
    const ent = await d.dir.read();
    if (!ent) {
      d.eof = true;
      break;
    }
    batch.push(ent.name);
    bytes += 2 * Buffer.byteLength(ent.name) + 96;
  }
  await checkDir(d, pinned);
  const stats = await Promise.all(batch.map((n) => fsp.lstat(path.join(d.ref, n)).catch(() => undefined)));
  await checkDir(d, pinned);
  batch.forEach((n, i) => {
    const st = stats[i];
    if (st) names.push(nameEntry(n, st)); // gone since readdir: leave it out
  });
  if (!names.length) {
    d.eof = true;
    return undefined;
  }
  return names;
}
