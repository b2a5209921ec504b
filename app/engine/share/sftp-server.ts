/**
 * The engine's SFTP server for reverse sshfs: the guest runs
 * `sshfs -o slave :/HOST/PATH /HOST/PATH` under an ssh exec channel, sshfs
 * speaks SFTP (protocol 3) on its stdin/stdout, and serveSftp answers it
 * from the host folder, so the folder appears in the guest at the same path.
 *
 * - Paths and confinement: share-jail.ts (paths sshfs sends are the guest's
 *   view, normally the absolute host path; nothing outside the share is ever
 *   touched, symlinks included).
 * - Every file operation is node:fs/promises: no sync call may run while a
 *   mount is being served. The client of the mount can be this very process
 *   (tests, bench) and a blocked event loop would deadlock it.
 * - Requests are answered in the order they arrive: sshfs pipelines
 *   dependent requests (OPEN immediately followed by LSTAT of the same path,
 *   several READDIRs on one handle) and OpenSSH's sftp-server, which it is
 *   written against, is sequential. Runs of read-only requests (READ, STAT,
 *   LSTAT, FSTAT, READLINK, REALPATH) go to the thread pool together, and so
 *   do runs of WRITEs to disjoint ranges of one file (sshfs pipelines them).
 * - Ownership: files are created by the engine process, so on the host they
 *   belong to the host user. Attributes report host uids and gids as they are;
 *   SSHFS_OPTIONS decides what the guest shows. Requests to change the owner
 *   (chown from a container: tar, cp -a, npm as root) succeed and change
 *   nothing: the host file stays the host user's, and the container's uids
 *   mean nothing on the host.
 * - Extensions advertised (sshfs uses them when offered):
 *   posix-rename@openssh.com (rename over an existing file),
 *   statvfs@openssh.com and fstatvfs@openssh.com (df), hardlink@openssh.com,
 *   fsync@openssh.com.
 * - Locks: sshfs does not forward flock/fcntl locks; the guest kernel keeps
 *   them, so they work between processes in the guest and are invisible on
 *   the host (and vice versa). Nothing to serve here.
 */
import { constants as C, type Stats } from 'node:fs';
import type { Dir } from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { BerthError } from '../errors.js';
import { ShareJail, ShareRefusal } from './share-jail.js';
import {
  extendedReplyPacket,
  openSftpChannel,
  readSshStrings,
  SFTP_OPEN,
  SFTP_STATUS,
  type SftpInAttrs,
  type SftpName,
  type SftpOutAttrs,
  type SftpServerEngine,
  type SftpStatus,
} from './sftp-channel.js';

/**
 * sshfs options for a Berth share (besides `slave`), and why:
 *
 * - allow_other: containers run as any uid, not as the sshfs process (root in
 *   the guest). Without it FUSE lets only the mounting user in.
 * - no default_permissions (deliberately absent): the guest kernel then does
 *   not check mode bits against the uids it is shown; the host decides, as
 *   the host user, as on Docker Desktop. A container's non-root user can read
 *   and write whatever the host user can, and a file the host user may not
 *   write (mode 0444) is refused to everyone. The executable bit still counts:
 *   sshfs refuses exec of a file without any x bit.
 * - idmap=user: files owned by the host user show as owned by the sshfs user
 *   in the guest (root), as Docker Desktop shows them; others keep their host
 *   uid. Root in a container then owns the project (git's safe.directory
 *   check passes, chown -R on it is a no-op). sshfs learns the host uid by
 *   STAT "." (= the share root), so a root folder owned by someone else
 *   (Linux /tmp) maps that user instead, and host-user files there keep their
 *   host uid.
 * - no_contain_symlinks: Debian's sshfs (3.7.3-1.2, CVE-2026-47187) refuses by
 *   default to show symlinks that are absolute or contain `..`, which would
 *   break node_modules/.bin and any absolute link into the share; the server
 *   here is the trusted host and the share is mounted at its host path.
 *   Upstream sshfs does not know the option and would fail with
 *   "unknown option": the guest image is Debian, whose sshfs has it.
 * - dcache_timeout=1: sshfs caches names, attributes and symlink targets
 *   for 20 s by default, hiding host-side edits (a grown file read at its old
 *   size) that long. One second is what the guest kernel caches attributes
 *   for anyway; dir_cache=no instead would make a tree walk (git status,
 *   watchers' scans) 2-3 times slower, since the attributes READDIR returns
 *   then go unused and every lookup is a round trip (bench/sftp.ts).
 * - max_read, max_write=65536: sshfs's largest requests (default 32 KiB),
 *   half the round trips for big files.
 */
export const SSHFS_OPTIONS: string[] = [
  'allow_other',
  'idmap=user',
  'no_contain_symlinks',
  'dcache_timeout=1',
  'max_read=65536',
  'max_write=65536',
];

/** Quote one word for a POSIX shell. */
function shQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The guest command line that mounts `remotePath` (the host folder as the
 * server knows it: the host path on macOS/Linux, the guest path on Windows)
 * at `mountPoint`, speaking SFTP on stdin/stdout. The mount point must exist.
 */
export function sshfsCommand(remotePath: string, mountPoint: string, opts: { readOnly?: boolean } = {}): string {
  for (const [name, p] of [
    ['remote path', remotePath],
    ['mount point', mountPoint],
  ] as const) {
    if (!p.startsWith('/') || p.includes('\0') || p.includes('\n')) {
      throw new BerthError('INVALID_HOST_PATH', `sshfs ${name} "${p}" is not an absolute guest path`, 'Shares need absolute paths.');
    }
  }
  const o = ['slave', ...SSHFS_OPTIONS, ...(opts.readOnly ? ['ro'] : [])];
  // sshfs splits -o on commas: a path never goes in -o, and a path with a
  // comma or a colon is fine as the positional source/target.
  return ['sshfs', '-o', o.join(','), shQuote(`:${remotePath}`), shQuote(mountPoint)].join(' ');
}

export interface SftpServeOptions {
  /** The host folder to serve (absolute). */
  root: string;
  /** The guest's name for `root` (sshfs's `:PATH`); default: `root` itself. */
  remoteRoot?: string;
  readOnly?: boolean;
  log: Logger;
  /**
   * Called with the host path of everything the guest is about to change
   * (before the change), so a host-side watcher can tell the guest's own
   * writes from the host's.
   */
  onMutate?: (hostPath: string) => void;
}

export interface SftpSession {
  /** Resolves when the stream has ended (sshfs unmounted or the channel dropped). */
  closed: Promise<void>;
  /** End the session: close the stream and every open handle. */
  close(): Promise<void>;
  /** Requests so far (by op; EXTENDED ones by extension name), refusals, open handles. */
  stats(): { requests: number; refused: number; openHandles: number; byOp: Record<string, number> };
}

/** Extensions in our VERSION reply; sshfs checks these exact version strings. */
const EXTENSIONS: Record<string, string> = {
  'posix-rename@openssh.com': '1',
  'statvfs@openssh.com': '2',
  'fstatvfs@openssh.com': '2',
  'hardlink@openssh.com': '1',
  'fsync@openssh.com': '1',
};

/** Largest READ answered at once (sshfs asks for at most 64 KiB; its replies must stay < 128 KiB). */
const MAX_READ = 64 * 1024;
/** A READDIR reply stops at this many entries or roughly this many bytes. */
const READDIR_MAX_ENTRIES = 100;
const READDIR_MAX_BYTES = 48 * 1024;
const MAX_HANDLES = 4096;
/** Stop reading requests past this many queued; resume below the low mark. */
const QUEUE_HIGH = 512;
const QUEUE_LOW = 128;
/** At most this many read-only requests run at once. */
const PARALLEL_MAX = 16;
const PARALLEL_OPS = new Set(['READ', 'STAT', 'LSTAT', 'FSTAT', 'READLINK', 'REALPATH']);
/** At most this many disjoint WRITEs to one handle run at once. */
const WRITE_BATCH_MAX = 8;

const O_NOFOLLOW = C.O_NOFOLLOW ?? 0;

type OpenFile = { kind: 'file'; fh: FileHandle; path: string; append: boolean };
type OpenDir = { kind: 'dir'; dir: Dir; path: string; dotsSent: boolean; eof: boolean; closed: boolean };
type Handle = OpenFile | OpenDir;

interface Job {
  op: string;
  id: number;
  run: () => Promise<void>;
  /** WRITE only: which handle and byte range, to run disjoint writes together. */
  range?: { handle: number; start: number; end: number };
}

/**
 * Serve the host folder `opts.root` over `stream` (the guest sshfs's
 * stdin/stdout) until the stream ends. Throws INVALID_HOST_PATH when the
 * folder is missing or not a folder.
 */
export async function serveSftp(stream: Duplex, opts: SftpServeOptions): Promise<SftpSession> {
  const log = opts.log;
  const root = path.resolve(opts.root);
  let realRoot: string;
  try {
    realRoot = await fsp.realpath(root);
    if (!(await fsp.stat(realRoot)).isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
  } catch (err) {
    throw new BerthError(
      'INVALID_HOST_PATH',
      `shared folder ${root} cannot be served: ${(err as Error).message}`,
      'Check that the folder exists, or remove it from the shared folders in settings.',
    );
  }
  const remoteRoot = opts.remoteRoot ?? root.split(path.sep).join('/');
  if (!remoteRoot.startsWith('/')) {
    throw new BerthError('INVALID_HOST_PATH', `guest path "${remoteRoot}" for ${root} is not absolute`, 'Pass the folder\'s guest path as remoteRoot.');
  }
  const jail = new ShareJail(root, realRoot, remoteRoot);
  const readOnly = !!opts.readOnly;
  const touched = (p: string) => opts.onMutate?.(p);

  const channel = openSftpChannel<SftpServerEngine>(stream, {
    server: true,
    extensions: EXTENSIONS,
    debug: log.isLevelEnabled('trace') ? (m) => log.trace(m) : undefined,
  });
  const sftp = channel.sftp;
  const handles = new Map<number, Handle>();
  let nextHandle = 1;
  let requests = 0;
  let refused = 0;
  const byOp: Record<string, number> = {};
  let closing = false;

  log.info({ root, remoteRoot: jail.remoteRoot, readOnly }, 'sftp: serving share');

  // ---- the request queue -------------------------------------------------
  const queue: Job[] = [];
  let pumping = false;
  /** The request(s) running now, for shutdown to wait on. */
  let running: Promise<unknown> = Promise.resolve();
  const isAppend = (n: number) => {
    const h = handles.get(n);
    return !h || h.kind !== 'file' || h.append;
  };

  const enqueue = (job: Job) => {
    requests++;
    queue.push(job);
    if (queue.length >= QUEUE_HIGH) channel.hold('queue');
    if (!pumping) void pump();
  };

  async function pump() {
    pumping = true;
    while (queue.length) {
      const first = queue.shift()!;
      if (PARALLEL_OPS.has(first.op)) {
        const batch = [first];
        while (batch.length < PARALLEL_MAX && queue.length && PARALLEL_OPS.has(queue[0]!.op)) batch.push(queue.shift()!);
        await (running = Promise.all(batch.map(runJob)));
      } else if (first.range && !isAppend(first.range.handle)) {
        // sshfs pipelines a file's writes: consecutive ones to disjoint
        // ranges of the same handle cannot affect each other.
        const batch = [first];
        const r0 = first.range;
        while (batch.length < WRITE_BATCH_MAX && queue[0]?.range?.handle === r0.handle) {
          const r = queue[0].range;
          if (batch.some((b) => b.range!.start < r.end && r.start < b.range!.end)) break;
          batch.push(queue.shift()!);
        }
        await (running = Promise.all(batch.map(runJob)));
      } else {
        await (running = runJob(first));
      }
      if (queue.length <= QUEUE_LOW) channel.release('queue');
    }
    pumping = false;
  }

  async function runJob(job: Job) {
    if (closing) return;
    try {
      await job.run();
    } catch (err) {
      replyError(job, err);
    }
  }

  function replyError(job: Job, err: unknown) {
    const [code, message] = statusFor(err);
    if (err instanceof ShareRefusal && code === SFTP_STATUS.PERMISSION_DENIED) {
      refused++;
      log.warn({ op: job.op, reason: err.message }, 'sftp: request refused');
    } else if (code === SFTP_STATUS.FAILURE || code === SFTP_STATUS.BAD_MESSAGE) {
      log.debug({ op: job.op, err: message }, 'sftp: request failed');
    }
    if (!closing) sftp.status(job.id, code, message);
  }

  // ---- helpers -------------------------------------------------------------
  const ok = (id: number) => sftp.status(id, SFTP_STATUS.OK);
  const denyWrite = (what: string) => {
    if (readOnly) throw new ShareRefusal(SFTP_STATUS.PERMISSION_DENIED, `${what}: the shared folder ${jail.remoteRoot} is read-only`);
  };
  const notRoot = (hostPath: string, what: string) => {
    if (jail.isRoot(hostPath)) throw new ShareRefusal(SFTP_STATUS.PERMISSION_DENIED, `${what}: cannot remove or rename the shared folder itself`);
  };
  const lookup = (h: Buffer): Handle => {
    const n = h.length === 4 ? h.readUInt32BE(0) : -1;
    const found = handles.get(n);
    if (!found) throw new ShareRefusal(SFTP_STATUS.FAILURE, 'invalid handle');
    return found;
  };
  const fileHandle = (h: Buffer): OpenFile => {
    const found = lookup(h);
    if (found.kind !== 'file') throw new ShareRefusal(SFTP_STATUS.FAILURE, 'handle is a folder, not a file');
    return found;
  };
  const addHandle = (h: Handle): Buffer => {
    if (closing) throw new ShareRefusal(SFTP_STATUS.CONNECTION_LOST, 'the share is shutting down');
    if (handles.size >= MAX_HANDLES) throw new ShareRefusal(SFTP_STATUS.FAILURE, 'too many open files in this share');
    const n = nextHandle;
    nextHandle = nextHandle >= 0xffffffff ? 1 : nextHandle + 1;
    handles.set(n, h);
    const buf = Buffer.allocUnsafe(4);
    buf.writeUInt32BE(n, 0);
    return buf;
  };
  const str = (b: Buffer) => b.toString('utf8');

  /**
   * Apply what the guest asked for; `mark` runs before the first real
   * change. A nudge (times set to their own values) changes nothing and so
   * marks nothing: marking it would hide the host's next real edit of that
   * file from the change notifier as if it were the guest's echo.
   */
  async function setAttrs(target: string | FileHandle, a: SftpInAttrs, mark: () => void) {
    denyWrite('setstat');
    const isPath = typeof target === 'string';
    if (typeof a.size === 'number' || typeof a.mode === 'number') mark();
    if (typeof a.size === 'number') await (isPath ? fsp.truncate(target, a.size) : target.truncate(a.size));
    if (typeof a.mode === 'number') await (isPath ? fsp.chmod(target, a.mode & 0o7777) : target.chmod(a.mode & 0o7777));
    if (typeof a.atime === 'number' && typeof a.mtime === 'number') {
      // SFTP v3 times are whole seconds. Setting a file's own times again
      // (what the change notifier's nudge does) must not cut the host file's
      // sub-second times, so times equal to the current ones are left alone.
      const st = await (isPath ? fsp.stat(target) : target.stat());
      if (Math.floor(st.atimeMs / 1000) !== a.atime || Math.floor(st.mtimeMs / 1000) !== a.mtime) {
        mark();
        await (isPath ? fsp.utimes(target, a.atime, a.mtime) : target.utimes(a.atime, a.mtime));
      }
    }
    // uid/gid: accepted and ignored (see the file comment).
  }

  async function closeHandle(n: number, h: Handle) {
    handles.delete(n);
    if (h.kind === 'file') await h.fh.close();
    else if (!h.closed) {
      h.closed = true;
      await h.dir.close();
    }
  }

  // ---- requests ------------------------------------------------------------
  const on = <A extends unknown[]>(op: string, fn: (id: number, ...args: A) => Promise<void>) => {
    sftp.on(op, (id: number, ...args: A) => {
      const key = op === 'EXTENDED' ? String(args[0]) : op;
      byOp[key] = (byOp[key] ?? 0) + 1;
      const job: Job = { op, id, run: () => fn(id, ...args) };
      if (op === 'WRITE') {
        const [h, offset, data] = args as unknown as [Buffer, number, Buffer];
        if (h.length === 4) job.range = { handle: h.readUInt32BE(0), start: offset, end: offset + data.length };
      }
      enqueue(job);
    });
  };

  on('OPEN', async (id, filename: string, pflags: number, attrs: SftpInAttrs) => {
    const writes = (pflags & (SFTP_OPEN.WRITE | SFTP_OPEN.APPEND | SFTP_OPEN.CREAT | SFTP_OPEN.TRUNC)) !== 0;
    if (writes) denyWrite(`open ${filename} for writing`);
    const read = (pflags & SFTP_OPEN.READ) !== 0;
    const write = (pflags & (SFTP_OPEN.WRITE | SFTP_OPEN.APPEND)) !== 0;
    let flags = read && write ? C.O_RDWR : write ? C.O_WRONLY : C.O_RDONLY;
    if (pflags & SFTP_OPEN.CREAT) flags |= C.O_CREAT;
    if (pflags & SFTP_OPEN.TRUNC) flags |= C.O_TRUNC;
    const excl = (pflags & SFTP_OPEN.CREAT) !== 0 && (pflags & SFTP_OPEN.EXCL) !== 0;
    if (excl) flags |= C.O_EXCL;
    const append = (pflags & SFTP_OPEN.APPEND) !== 0;
    if (append) flags |= C.O_APPEND;
    const mode = typeof attrs?.mode === 'number' ? attrs.mode & 0o7777 : 0o666;
    // The last component is opened with O_NOFOLLOW: checked folder + name
    // first (two steps, the common case); when the name is a symlink (ELOOP)
    // it is resolved inside the share and opened again. O_EXCL never follows
    // (as open(2)). Hosts without O_NOFOLLOW (Windows) always resolve first.
    const lex = jail.lexical(filename);
    let opened: string;
    let fh: FileHandle;
    if (lex === jail.root) fh = await fsp.open((opened = jail.realRoot), flags, mode);
    else if (O_NOFOLLOW) {
      opened = await jail.parentInside(lex, filename);
      try {
        fh = await fsp.open(opened, flags | O_NOFOLLOW, mode);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ELOOP' || excl) throw err;
        opened = await jail.follow(opened, filename, 0);
        fh = await fsp.open(opened, flags | O_NOFOLLOW, mode);
      }
    } else {
      fh = await fsp.open((opened = await jail.resolve(filename, !excl)), flags, mode);
    }
    if (writes) touched(opened);
    let handle: Buffer;
    try {
      handle = addHandle({ kind: 'file', fh, path: opened, append });
    } catch (err) {
      await fh.close();
      throw err;
    }
    sftp.handle(id, handle);
  });

  on('CLOSE', async (id, h: Buffer) => {
    const n = h.length === 4 ? h.readUInt32BE(0) : -1;
    const found = handles.get(n);
    if (!found) throw new ShareRefusal(SFTP_STATUS.FAILURE, 'invalid handle');
    await closeHandle(n, found);
    ok(id);
  });

  on('READ', async (id, h: Buffer, offset: number, len: number) => {
    const f = fileHandle(h);
    const want = Math.min(len, MAX_READ);
    const buf = Buffer.allocUnsafe(want);
    // One pread, as OpenSSH does: a regular file reads short only at its end.
    const { bytesRead: got } = await f.fh.read(buf, 0, want, offset);
    if (!got && want) sftp.status(id, SFTP_STATUS.EOF);
    else sftp.data(id, buf.subarray(0, got));
  });

  on('WRITE', async (id, h: Buffer, offset: number, data: Buffer) => {
    denyWrite('write');
    const f = fileHandle(h);
    touched(f.path);
    let done = 0;
    while (done < data.length) {
      // O_APPEND handles write at the end whatever the offset (the host may
      // have grown the file since the guest last looked).
      const { bytesWritten } = await f.fh.write(data, done, data.length - done, f.append ? null : offset + done);
      if (!bytesWritten) throw Object.assign(new Error('short write'), { code: 'EIO' });
      done += bytesWritten;
    }
    ok(id);
  });

  on('FSTAT', async (id, h: Buffer) => {
    const found = lookup(h);
    const st = found.kind === 'file' ? await found.fh.stat() : await fsp.stat(found.path);
    sftp.attrs(id, toAttrs(st));
  });

  on('LSTAT', async (id, p: string) => {
    sftp.attrs(id, toAttrs(await jail.readOnly(p, 'parent', (hp) => fsp.lstat(hp))));
  });

  on('STAT', async (id, p: string) => {
    sftp.attrs(id, toAttrs(await jail.readOnly(p, 'full', (hp) => fsp.stat(hp))));
  });

  on('SETSTAT', async (id, p: string, attrs: SftpInAttrs) => {
    denyWrite(`setstat ${p}`);
    const target = await jail.resolve(p, true);
    await setAttrs(target, attrs, () => touched(target));
    ok(id);
  });

  on('FSETSTAT', async (id, h: Buffer, attrs: SftpInAttrs) => {
    denyWrite('fsetstat');
    const found = lookup(h);
    await setAttrs(found.kind === 'file' ? found.fh : found.path, attrs, () => touched(found.path));
    ok(id);
  });

  on('OPENDIR', async (id, p: string) => {
    const target = await jail.resolve(p, true);
    const dir = await fsp.opendir(target, { bufferSize: 128 });
    let handle: Buffer;
    try {
      handle = addHandle({ kind: 'dir', dir, path: target, dotsSent: false, eof: false, closed: false });
    } catch (err) {
      await dir.close();
      throw err;
    }
    sftp.handle(id, handle);
  });

  on('READDIR', async (id, h: Buffer) => {
    const d = lookup(h);
    if (d.kind !== 'dir') throw new ShareRefusal(SFTP_STATUS.FAILURE, 'handle is a file, not a folder');
    if (d.eof) return void sftp.status(id, SFTP_STATUS.EOF);
    const names: SftpName[] = [];
    if (!d.dotsSent) {
      d.dotsSent = true;
      const st = await fsp.lstat(d.path);
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
    const stats = await Promise.all(batch.map((n) => fsp.lstat(path.join(d.path, n)).catch(() => undefined)));
    batch.forEach((n, i) => {
      const st = stats[i];
      if (st) names.push(nameEntry(n, st)); // gone since readdir: leave it out
    });
    if (!names.length) {
      d.eof = true;
      return void sftp.status(id, SFTP_STATUS.EOF);
    }
    sftp.name(id, names);
  });

  on('REMOVE', async (id, p: string) => {
    denyWrite(`remove ${p}`);
    const target = await jail.resolve(p, false);
    notRoot(target, `remove ${p}`);
    touched(target);
    await fsp.unlink(target);
    ok(id);
  });

  on('MKDIR', async (id, p: string, attrs: SftpInAttrs) => {
    denyWrite(`mkdir ${p}`);
    const target = await jail.resolve(p, false);
    touched(target);
    await fsp.mkdir(target, { mode: typeof attrs?.mode === 'number' ? attrs.mode & 0o7777 : 0o777 });
    ok(id);
  });

  on('RMDIR', async (id, p: string) => {
    denyWrite(`rmdir ${p}`);
    const target = await jail.resolve(p, false);
    notRoot(target, `rmdir ${p}`);
    touched(target);
    await fsp.rmdir(target);
    ok(id);
  });

  on('REALPATH', async (id, p: string) => {
    const lex = jail.lexical(p);
    let remote: string;
    try {
      remote = jail.toRemote(await fsp.realpath(lex));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Like OpenSSH: a name that does not exist yet, in a folder that does.
      const wanted = remoteOf(p);
      const parent = await jail.resolve(path.posix.dirname(wanted), true);
      remote = path.posix.join(jail.toRemote(parent), path.posix.basename(wanted));
    }
    sftp.name(id, [{ filename: remote, longname: remote, attrs: {} }]);
  });

  on('RENAME', async (id, from: string, to: string) => {
    denyWrite(`rename ${from}`);
    const [src, dst] = [await jail.resolve(from, false), await jail.resolve(to, false)];
    notRoot(src, `rename ${from}`);
    notRoot(dst, `rename onto ${to}`);
    // SFTP v3 RENAME does not replace (posix-rename@openssh.com does).
    const exists = await fsp.lstat(dst).then(
      () => true,
      (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
    );
    if (exists) throw new ShareRefusal(SFTP_STATUS.FAILURE, `${to}: already exists`);
    touched(src);
    touched(dst);
    await fsp.rename(src, dst);
    ok(id);
  });

  on('READLINK', async (id, p: string) => {
    const target = await jail.readOnly(p, 'parent', (hp) => fsp.readlink(hp));
    sftp.name(id, [{ filename: target, longname: target, attrs: {} }]);
  });

  // ssh2 has already swapped OpenSSH's (target, link) order (we present as
  // OpenSSH, and sshfs sends them OpenSSH's way): here linkPath is the new
  // name and targetPath what it points to. The target is stored verbatim.
  on('SYMLINK', async (id, linkPath: string, targetPath: string) => {
    denyWrite(`symlink ${linkPath}`);
    if (targetPath.includes('\0')) throw new ShareRefusal(SFTP_STATUS.BAD_MESSAGE, 'symlink target contains a NUL byte');
    const link = await jail.resolve(linkPath, false);
    touched(link);
    await fsp.symlink(targetPath, link);
    ok(id);
  });

  on('EXTENDED', async (id, name: string, data: Buffer | undefined) => {
    const bad = () => new ShareRefusal(SFTP_STATUS.BAD_MESSAGE, `malformed ${name} request`);
    switch (name) {
      case 'posix-rename@openssh.com': {
        denyWrite('rename');
        const a = readSshStrings(data, 2);
        if (!a) throw bad();
        const [src, dst] = [await jail.resolve(str(a[0]!), false), await jail.resolve(str(a[1]!), false)];
        notRoot(src, `rename ${str(a[0]!)}`);
        notRoot(dst, `rename onto ${str(a[1]!)}`);
        touched(src);
        touched(dst);
        await fsp.rename(src, dst);
        return ok(id);
      }
      case 'hardlink@openssh.com': {
        denyWrite('link');
        const a = readSshStrings(data, 2);
        if (!a) throw bad();
        // The existing name is resolved all the way (macOS link() follows a
        // symlink: it must not reach a file outside the share).
        const src = await jail.resolve(str(a[0]!), true);
        const dst = await jail.resolve(str(a[1]!), false);
        touched(dst);
        await fsp.link(src, dst);
        return ok(id);
      }
      case 'statvfs@openssh.com': {
        const a = readSshStrings(data, 1);
        if (!a) throw bad();
        return void channel.sendPacket(extendedReplyPacket(id, statvfsPayload(await fsp.statfs(await jail.resolve(str(a[0]!), true)), readOnly)));
      }
      case 'fstatvfs@openssh.com': {
        const a = readSshStrings(data, 1);
        if (!a) throw bad();
        return void channel.sendPacket(extendedReplyPacket(id, statvfsPayload(await fsp.statfs(lookup(a[0]!).path).catch(() => fsp.statfs(jail.realRoot)), readOnly)));
      }
      case 'fsync@openssh.com': {
        const a = readSshStrings(data, 1);
        if (!a) throw bad();
        const found = lookup(a[0]!);
        if (found.kind === 'file') await found.fh.sync();
        return ok(id);
      }
      default:
        throw new ShareRefusal(SFTP_STATUS.OP_UNSUPPORTED, `${name} is not supported`);
    }
  });

  function remoteOf(p: string): string {
    return p.startsWith('/') ? path.posix.normalize(p) : path.posix.join(jail.remoteRoot, p);
  }

  // ---- shutdown ------------------------------------------------------------
  async function shutdown() {
    closing = true;
    queue.length = 0;
    await running.catch(() => undefined); // an OPEN in flight must not leak its descriptor
    const open = [...handles.entries()];
    await Promise.all(open.map(([n, h]) => closeHandle(n, h).catch(() => undefined)));
  }

  const closed = channel.closed.then(async (err) => {
    if (err) log.warn({ err: err.message }, 'sftp: session ended with an error');
    await shutdown();
    log.info({ root, requests, refused }, 'sftp: share no longer served');
  });

  return {
    closed,
    close: async () => {
      channel.close();
      await closed;
    },
    stats: () => ({ requests, refused, openHandles: handles.size, byOp: { ...byOp } }),
  };
}

// ---- replies ----------------------------------------------------------------

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

function nameEntry(name: string, st: Stats): SftpName {
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
  return `${modeString(st.mode)} ${String(st.nlink).padStart(3)} ${String(st.uid).padEnd(8)} ${String(st.gid).padEnd(8)} ${String(
    st.size,
  ).padStart(8)} ${when} ${name}`;
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
  return (
    t +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't')
  );
}

/** statvfs@openssh.com reply body: eleven uint64s. */
function statvfsPayload(s: { bsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number }, readOnly: boolean): Buffer {
  const ST_RDONLY = 1;
  const fields = [s.bsize, s.bsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.ffree, 0, readOnly ? ST_RDONLY : 0, 255];
  const out = Buffer.allocUnsafe(fields.length * 8);
  fields.forEach((v, i) => out.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(Number(v) || 0))), i * 8));
  return out;
}
