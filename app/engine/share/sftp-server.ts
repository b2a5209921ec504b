/**
 * The engine's SFTP server for reverse sshfs: the guest runs
 * `sshfs -o slave :/HOST/PATH /HOST/PATH` under an ssh exec channel, sshfs
 * speaks SFTP (protocol 3) on its stdin/stdout, and serveSftp answers it
 * from the host folder, so the folder appears in the guest at the same path.
 *
 * - Paths and confinement: share-jail.ts (paths sshfs sends are the guest's
 *   view, normally the absolute host path; every path is walked from the
 *   held share root, folder by folder, symlinks followed only inside the
 *   share; nothing outside it is ever touched). Handles keep what was
 *   opened: sftp-handles.ts. What a guest may set: sftp-attrs.ts (no
 *   setuid/setgid, no group/other write on the share root).
 * - Guest bytes are framed and checked before ssh2 parses them
 *   (sftp-channel.ts), and nothing a request does can throw out of the
 *   server: a malformed stream ends that mount only.
 * - Files are opened with O_NOFOLLOW and O_NONBLOCK and only regular files
 *   are served: a FIFO (or device, or socket) is refused at once instead of
 *   holding a libuv thread forever.
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
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { BerthError } from '../../contract/errors.js';
import { applyAttrs, guestMode, statusFor, statvfsPayload, toAttrs } from './sftp-attrs.js';
import { errno, mustExist, openFile, openFlags, openForAttrs } from './sftp-open.js';
import { extendedReplyPacket, openSftpChannel, readSshStrings, SFTP_STATUS, type SftpInAttrs, type SftpServerEngine } from './sftp-channel.js';
import { dirStat, HandleTable, openDir, readDirBatch, type OpenDir } from './sftp-handles.js';
import { ShareJail, ShareRefusal, type PathWalk, type Place } from './share-jail.js';

export { longname, modeString, statusFor, toAttrs } from './sftp-attrs.js';
export { SSHFS_OPTIONS, sshfsCommand } from './sshfs-command.js';

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
  /** How paths are walked (share-jail.ts); tests use 'portable' to run the macOS walk on Linux. */
  pathWalk?: PathWalk;
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
const MAX_HANDLES = 4096;
/** Stop reading requests past this many queued; resume below the low mark. */
const QUEUE_HIGH = 512;
const QUEUE_LOW = 128;
/** At most this many read-only requests run at once. */
const PARALLEL_MAX = 16;
const PARALLEL_OPS = new Set(['READ', 'STAT', 'LSTAT', 'FSTAT', 'READLINK', 'REALPATH']);
/** At most this many disjoint WRITEs to one handle run at once. */
const WRITE_BATCH_MAX = 8;

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
  const remoteRoot = opts.remoteRoot ?? root.split(path.sep).join('/');
  if (!remoteRoot.startsWith('/')) {
    throw new BerthError('INVALID_HOST_PATH', `guest path "${remoteRoot}" for ${root} is not absolute`, "Pass the folder's guest path as remoteRoot.");
  }
  let jail: ShareJail;
  try {
    jail = await ShareJail.open(root, remoteRoot, opts.pathWalk);
  } catch (err) {
    throw new BerthError(
      'INVALID_HOST_PATH',
      `shared folder ${root} cannot be served: ${(err as Error).message}`,
      'Check that the folder exists, or remove it from the shared folders in settings.',
    );
  }
  const readOnly = !!opts.readOnly;
  const touched = (p: string) => opts.onMutate?.(p);

  const channel = openSftpChannel<SftpServerEngine>(stream, {
    server: true,
    extensions: EXTENSIONS,
    debug: log.isLevelEnabled('trace') ? (m) => log.trace(m) : undefined,
  });
  const sftp = channel.sftp;
  const handles = new HandleTable(MAX_HANDLES);
  let requests = 0;
  let refused = 0;
  const byOp: Record<string, number> = {};
  let closing = false;

  log.info({ root, remoteRoot: jail.remoteRoot, readOnly, pinned: jail.pinned }, 'sftp: serving share');

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
    try {
      while (queue.length) {
        const first = queue.shift()!;
        const batch = [first];
        if (PARALLEL_OPS.has(first.op)) {
          while (batch.length < PARALLEL_MAX && queue.length && PARALLEL_OPS.has(queue[0]!.op)) batch.push(queue.shift()!);
        } else if (first.range && !isAppend(first.range.handle)) {
          // sshfs pipelines a file's writes: consecutive ones to disjoint
          // ranges of the same handle cannot affect each other.
          while (batch.length < WRITE_BATCH_MAX && queue[0]?.range?.handle === first.range.handle) {
            const r = queue[0].range;
            if (batch.some((b) => b.range!.start < r.end && r.start < b.range!.end)) break;
            batch.push(queue.shift()!);
          }
        }
        await (running = Promise.all(batch.map(runJob)));
        if (queue.length <= QUEUE_LOW) channel.release('queue');
      }
    } finally {
      pumping = false;
    }
  }

  /** Never rejects: whatever a request throws becomes its status reply. */
  async function runJob(job: Job) {
    if (closing) return;
    try {
      await job.run();
    } catch (err) {
      try {
        replyError(job, err);
      } catch (sendErr) {
        log.warn({ op: job.op, err: (sendErr as Error)?.message }, 'sftp: could not send a reply; closing the session');
        channel.close();
      }
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
  const notRoot = (place: Place, what: string) => {
    if (place.isRoot) throw new ShareRefusal(SFTP_STATUS.PERMISSION_DENIED, `${what}: cannot remove or rename the shared folder itself`);
  };
  const addHandle = async (h: Parameters<HandleTable['add']>[0], release: () => Promise<unknown>): Promise<Buffer> => {
    try {
      if (closing) throw new ShareRefusal(SFTP_STATUS.CONNECTION_LOST, 'the share is shutting down');
      return handles.add(h);
    } catch (err) {
      await release();
      throw err;
    }
  };
  const str = (b: Buffer) => b.toString('utf8');
  // ---- requests ------------------------------------------------------------
  const on = <A extends unknown[]>(op: string, fn: (id: number, ...args: A) => Promise<void>) => {
    sftp.on(op, (id: number, ...args: A) => {
      if (typeof id !== 'number') return channel.close(); // cannot happen with framed packets; never answer garbage
      const key = op === 'EXTENDED' ? String(args[0]).slice(0, 64) : op;
      byOp[key] = (byOp[key] ?? 0) + 1;
      const job: Job = { op, id, run: () => fn(id, ...args) };
      if (op === 'WRITE') {
        const [h, offset, data] = args as unknown as [Buffer, number, Buffer];
        const n = HandleTable.number(h);
        if (n >= 0 && typeof offset === 'number' && Buffer.isBuffer(data)) job.range = { handle: n, start: offset, end: offset + data.length };
      }
      enqueue(job);
    });
  };

  on('OPEN', async (id, filename: string, pflags: number, attrs: SftpInAttrs) => {
    const o = openFlags(pflags, attrs);
    if (o.writes) denyWrite(`open ${filename} for writing`);
    await jail.at(filename, !o.excl, async (place) => {
      if (o.writes) touched(place.host);
      const fh = await openFile(place, o);
      sftp.handle(id, await addHandle({ kind: 'file', fh, host: place.host, append: o.append }, () => fh.close()));
    });
  });

  on('CLOSE', async (id, h: Buffer) => {
    await handles.close(h);
    ok(id);
  });

  on('READ', async (id, h: Buffer, offset: number, len: number) => {
    const f = handles.file(h);
    const want = Math.min(len, MAX_READ);
    const buf = Buffer.allocUnsafe(want);
    // One pread, as OpenSSH does: a regular file reads short only at its end.
    const { bytesRead: got } = await f.fh.read(buf, 0, want, offset);
    if (!got && want) sftp.status(id, SFTP_STATUS.EOF);
    else sftp.data(id, buf.subarray(0, got));
  });

  on('WRITE', async (id, h: Buffer, offset: number, data: Buffer) => {
    denyWrite('write');
    const f = handles.file(h);
    touched(f.host);
    let done = 0;
    while (done < data.length) {
      // O_APPEND handles write at the end whatever the offset (the host may
      // have grown the file since the guest last looked).
      const { bytesWritten } = await f.fh.write(data, done, data.length - done, f.append ? null : offset + done);
      if (!bytesWritten) throw errno('EIO', 'short write');
      done += bytesWritten;
    }
    ok(id);
  });

  on('FSTAT', async (id, h: Buffer) => {
    const found = handles.lookup(h);
    sftp.attrs(id, toAttrs(found.kind === 'file' ? await found.fh.stat() : await dirStat(found, jail.pinned)));
  });

  on('LSTAT', async (id, p: string) => {
    // A walk that ends at a folder (the root) names it through its held descriptor: stat, not lstat, of that.
    const st = await jail.at(p, false, (place) => place.run((ref) => (place.name === undefined ? fsp.stat(ref) : fsp.lstat(ref))));
    sftp.attrs(id, toAttrs(st));
  });

  on('STAT', async (id, p: string) => {
    const st = await jail.at(p, true, async (place) => {
      mustExist(place);
      return place.st ?? place.run((ref) => fsp.stat(ref));
    });
    sftp.attrs(id, toAttrs(st));
  });

  on('SETSTAT', async (id, p: string, attrs: SftpInAttrs) => {
    denyWrite(`setstat ${p}`);
    await jail.at(p, true, async (place) => {
      const { fh, isDir } = await openForAttrs(place, attrs ?? {});
      try {
        await applyAttrs(fh, attrs ?? {}, { isRoot: place.isRoot, isDir, mark: () => touched(place.host) });
      } finally {
        await fh.close();
      }
    });
    ok(id);
  });

  on('FSETSTAT', async (id, h: Buffer, attrs: SftpInAttrs) => {
    denyWrite('fsetstat');
    const found = handles.lookup(h);
    const mark = () => touched(found.host);
    if (found.kind === 'file') await applyAttrs(found.fh, attrs ?? {}, { isRoot: false, isDir: false, mark });
    else if (found.fh) await applyAttrs(found.fh, attrs ?? {}, { isRoot: found.isRoot, isDir: true, mark });
    else throw new ShareRefusal(SFTP_STATUS.OP_UNSUPPORTED, 'changing a folder through its handle is not supported on this host');
    ok(id);
  });

  on('OPENDIR', async (id, p: string) => {
    await jail.at(p, true, async (place) => {
      const d: OpenDir = await openDir(place, jail.pinned);
      const release = () => Promise.all([d.dir.close().catch(() => undefined), d.fh?.close()]);
      sftp.handle(id, await addHandle(d, release));
    });
  });

  on('READDIR', async (id, h: Buffer) => {
    const names = await readDirBatch(handles.dir(h), jail.pinned);
    if (!names) sftp.status(id, SFTP_STATUS.EOF);
    else sftp.name(id, names);
  });

  /** An operation on the last name as it is (not followed): unlink, rmdir, mkdir, symlink. */
  const onName = (op: string, what: string, fn: (ref: string, place: Place, ...rest: never[]) => Promise<unknown>, opts: { notRoot?: boolean } = {}) =>
    on(op, async (id, p: string, ...rest: unknown[]) => {
      denyWrite(`${what} ${p}`);
      await jail.at(p, false, async (place) => {
        if (opts.notRoot) notRoot(place, `${what} ${p}`);
        touched(place.host);
        await place.run((ref) => fn(ref, place, ...(rest as never[])));
      });
      ok(id);
    });
  onName('REMOVE', 'remove', (ref) => fsp.unlink(ref), { notRoot: true });
  onName('RMDIR', 'rmdir', (ref) => fsp.rmdir(ref), { notRoot: true });
  onName('MKDIR', 'mkdir', (ref, _place, attrs: SftpInAttrs) => fsp.mkdir(ref, { mode: typeof attrs?.mode === 'number' ? guestMode(attrs.mode) : 0o777 }));
  // ssh2 has already swapped OpenSSH's (target, link) order (we present as
  // OpenSSH, and sshfs sends them OpenSSH's way): the path here is the new
  // name and `target` what it points to, stored verbatim.
  onName('SYMLINK', 'symlink', (ref, _place, target: string) => {
    if (typeof target !== 'string' || target.includes('\0')) throw new ShareRefusal(SFTP_STATUS.BAD_MESSAGE, 'symlink target missing or contains a NUL byte');
    return fsp.symlink(target, ref);
  });

  on('REALPATH', async (id, p: string) => {
    // Like OpenSSH, a last name that does not exist yet is fine (its folder must).
    const remote = await jail.at(p, true, async (place) => place.remote);
    sftp.name(id, [{ filename: remote, longname: remote, attrs: {} }]);
  });

  /** Rename or link `from` to `to`, both walked, neither last name followed (a link's source is). */
  async function twoNames(from: string, to: string, followFrom: boolean, fn: (src: Place, dst: Place) => Promise<void>) {
    await jail.at(from, followFrom, (src) =>
      jail.at(to, false, async (dst) => {
        await src.check();
        await dst.run(() => fn(src, dst));
        await src.check();
      }),
    );
  }

  on('RENAME', async (id, from: string, to: string) => {
    denyWrite(`rename ${from}`);
    await twoNames(from, to, false, async (src, dst) => {
      notRoot(src, `rename ${from}`);
      notRoot(dst, `rename onto ${to}`);
      // SFTP v3 RENAME does not replace (posix-rename@openssh.com does).
      const exists = await fsp.lstat(dst.ref).then(
        () => true,
        (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
      );
      if (exists) throw new ShareRefusal(SFTP_STATUS.FAILURE, `${to}: already exists`);
      touched(src.host);
      touched(dst.host);
      await fsp.rename(src.ref, dst.ref);
    });
    ok(id);
  });

  on('READLINK', async (id, p: string) => {
    const target = await jail.at(p, false, (place) => {
      if (place.name === undefined) throw errno('EINVAL', `${p}: not a symbolic link`);
      return place.run((ref) => fsp.readlink(ref));
    });
    sftp.name(id, [{ filename: target, longname: target, attrs: {} }]);
  });

  on('EXTENDED', async (id, name: string, data: Buffer | undefined) => {
    const bad = () => new ShareRefusal(SFTP_STATUS.BAD_MESSAGE, `malformed ${name} request`);
    const args = (n: number): Buffer[] => {
      const a = readSshStrings(Buffer.isBuffer(data) ? data : undefined, n);
      if (!a) throw bad();
      return a;
    };
    switch (name) {
      case 'posix-rename@openssh.com': {
        denyWrite('rename');
        const [a, b] = args(2).map(str) as [string, string];
        await twoNames(a, b, false, async (src, dst) => {
          notRoot(src, `rename ${a}`);
          notRoot(dst, `rename onto ${b}`);
          touched(src.host);
          touched(dst.host);
          await fsp.rename(src.ref, dst.ref);
        });
        return ok(id);
      }
      case 'hardlink@openssh.com': {
        denyWrite('link');
        const [a, b] = args(2).map(str) as [string, string];
        // The existing name is followed inside the share (macOS link() follows a symlink).
        await twoNames(a, b, true, async (src, dst) => {
          mustExist(src);
          if (src.name === undefined || src.st?.isDirectory()) throw errno('EPERM', `${a}: cannot hard-link a folder`);
          touched(dst.host);
          await fsp.link(src.ref, dst.ref);
        });
        return ok(id);
      }
      case 'statvfs@openssh.com': {
        const [p] = args(1).map(str) as [string];
        const vfs = await jail.at(p, true, (place) => {
          mustExist(place);
          return place.run((ref) => fsp.statfs(ref));
        });
        return void channel.sendPacket(extendedReplyPacket(id, statvfsPayload(vfs, readOnly)));
      }
      case 'fstatvfs@openssh.com': {
        const found = handles.lookup(args(1)[0]);
        // Through the descriptor on Linux; elsewhere the share root's file system.
        const fd = found.fh?.fd;
        const vfs =
          jail.pinned && fd !== undefined ? await fsp.statfs(`/proc/self/fd/${fd}`) : await jail.at('.', true, (pl) => pl.run((ref) => fsp.statfs(ref)));
        return void channel.sendPacket(extendedReplyPacket(id, statvfsPayload(vfs, readOnly)));
      }
      case 'fsync@openssh.com': {
        const found = handles.lookup(args(1)[0]);
        if (found.kind === 'file') await found.fh.sync();
        return ok(id);
      }
      default:
        throw new ShareRefusal(SFTP_STATUS.OP_UNSUPPORTED, `${String(name).slice(0, 64)} is not supported`);
    }
  });

  // ---- shutdown ------------------------------------------------------------
  async function shutdown() {
    closing = true;
    queue.length = 0;
    await running.catch(() => undefined); // an OPEN in flight must not leak its descriptor
    await handles.closeAll();
    await jail.close();
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
