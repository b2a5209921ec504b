/**
 * Which host object an SFTP path names, found so that nothing outside the
 * shared folder is ever touched, whatever the guest renames or links while
 * the server works.
 *
 * Path mapping: sshfs in the guest is told to mount `:REMOTE_ROOT`, and it
 * prefixes every path it sends with that, so the paths arriving here are the
 * guest's view. On macOS and Linux REMOTE_ROOT is the host folder itself (the
 * share is mounted at the same absolute path in the guest), so an SFTP path
 * is an absolute host path. On Windows REMOTE_ROOT is the folder's guest path
 * (windows-paths.ts: C:\Users\me -> /mnt/host/c/Users/me) and the part below
 * it is joined onto the host folder. Relative paths (sshfs sends "." once, to
 * learn the owner of its "home") are relative to the share root.
 *
 * The walk (the rule everything else rests on):
 *  1. The client path, after collapsing `.`, `..` and repeated slashes, must
 *     be REMOTE_ROOT or below it; what is left is a list of names.
 *  2. The share root is opened once, when serving starts, and held: the
 *     walk starts from that open folder, not from its path, so a share
 *     root moved or replaced by a symlink (a nested share swapped through
 *     its parent's session) is still the folder that was shared.
 *  3. Each name is opened from the folder before it with O_NOFOLLOW and
 *     O_DIRECTORY, never through a path the kernel would resolve: on Linux
 *     through /proc/self/fd/N/NAME (the open folder itself, like openat(2)).
 *     The kernel never follows a symlink on the way.
 *  4. A symlink met on the way (or as the last name, for operations that
 *     follow it: open, stat, setstat, opendir, statvfs, realpath) is read
 *     and followed by the walk itself: a relative target goes on from the
 *     link's folder (`..` goes back one opened folder, and past the root is
 *     outside), an absolute one must name the share root or something in
 *     it. A link that leaves the share is refused with PERMISSION_DENIED
 *     before anything outside is looked at, so the answer is the same
 *     whether the outside target exists or not.
 *  5. The operation then acts on (folder held open, last name): a path
 *     whose every folder is pinned, and whose last name is not followed
 *     (lstat, unlink, rename, mkdir, symlink) or is opened with O_NOFOLLOW
 *     and used through the descriptor (open, setstat, opendir).
 *
 * Where /proc/self/fd is missing (macOS, Windows) the walk is the portable
 * one: each folder is lstat'ed (a symlink is followed by the walk as
 * above), its device and inode are remembered, and every operation checks
 * the whole chain again right before and right after it acts, refusing if
 * any folder changed. That leaves one window: a folder swapped for a
 * symlink and back between that check and the system call itself. See
 * SECURITY.md.
 */
import { constants as C, type BigIntStats, type Stats } from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { SFTP_STATUS, type SftpStatus } from './sftp-channel.js';

/** A request the share refuses (outside it, read-only, ...): sent as `status`. */
export class ShareRefusal extends Error {
  readonly status: SftpStatus;
  constructor(status: SftpStatus, message: string) {
    super(message);
    this.name = 'ShareRefusal';
    this.status = status;
  }
}

const MAX_SYMLINK_HOPS = 40;
export const O_NOFOLLOW = C.O_NOFOLLOW ?? 0;
export const O_NONBLOCK = C.O_NONBLOCK ?? 0;
const O_DIRECTORY = C.O_DIRECTORY ?? 0;
/** How a folder on the walk is opened. */
export const DIR_FLAGS = C.O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK;

/** 'auto': /proc/self/fd where it works (Linux); 'portable': the check-before-and-after walk everywhere. */
export type PathWalk = 'auto' | 'portable';

interface Ident {
  dev: bigint;
  ino: bigint;
}
const sameIdent = (a: Ident, b: Ident) => a.dev === b.dev && a.ino === b.ino;
const identOf = (st: BigIntStats): Ident => ({ dev: st.dev, ino: st.ino });

/** One folder passed on the walk: held open (Linux), or known by identity (portable). */
interface Step {
  name: string;
  fh?: FileHandle;
  id?: Ident;
}

/** Where a client path landed: the folders down to it (held) and its last name. */
export class Place {
  constructor(
    private readonly jail: ShareJail,
    private readonly steps: Step[],
    /** The last name, in the folder `steps` ends at; undefined: that folder itself. */
    readonly name: string | undefined,
    /** lstat of the last name when the walk looked at it (follow): undefined when missing or not looked at. */
    readonly st?: Stats,
    /** The walk looked at the last name and it does not exist. */
    readonly missing = false,
  ) {}

  /** The share root itself. */
  get isRoot(): boolean {
    return !this.steps.length && this.name === undefined;
  }

  /** A path the kernel resolves to this place without following anything on the way. */
  get ref(): string {
    const dir = this.jail.refOf(this.steps);
    return this.name === undefined ? dir : path.join(dir, this.name);
  }

  /** The host path (for notifications, logs, REALPATH): the root's real path and the names walked. */
  get host(): string {
    return path.join(this.jail.realRoot, ...this.steps.map((s) => s.name), ...(this.name === undefined ? [] : [this.name]));
  }

  /** The guest's name for this place. */
  get remote(): string {
    return this.jail.toRemote(this.host);
  }

  /**
   * Open this place with `flags` (O_NOFOLLOW added for a last name; a held
   * folder is opened through its own descriptor) and check the descriptor
   * is what the walk found.
   */
  async open(flags: number, mode?: number): Promise<FileHandle> {
    const fh = await fsp.open(this.ref, this.name === undefined && this.jail.pinned ? flags & ~O_NOFOLLOW : flags | O_NOFOLLOW, mode);
    try {
      if (!this.jail.pinned) {
        await this.check();
        const [a, b] = await Promise.all([fh.stat({ bigint: true }), fsp.lstat(this.ref, { bigint: true })]);
        if (!sameIdent(identOf(a), identOf(b))) throw this.jail.moved(this.host);
      }
      return fh;
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** Portable walk: every folder on the way is still the one walked (else refuse). Linux: nothing to check. */
  async check(): Promise<void> {
    if (!this.jail.pinned) await this.jail.verify(this.steps);
  }

  /** Run a path-taking operation on `ref`, checked before and after on the portable walk. */
  async run<T>(op: (ref: string) => Promise<T>): Promise<T> {
    await this.check();
    const out = await op(this.ref);
    await this.check();
    return out;
  }

  async release(): Promise<void> {
    await Promise.all(this.steps.map((s) => s.fh?.close().catch(() => undefined)));
  }
}

export class ShareJail {
  /** The host folder, absolute and normalized, as configured. */
  readonly root: string;
  /** The same folder with every symlink resolved (when serving started). */
  readonly realRoot: string;
  /** The guest's name for the root (POSIX, absolute). */
  readonly remoteRoot: string;
  /** Folders are held open and walked through /proc/self/fd (no check-to-use window). */
  readonly pinned: boolean;
  private readonly remotePrefix: string;
  private readonly rootFh: FileHandle | undefined;
  private readonly rootId: Ident;

  private constructor(root: string, realRoot: string, remoteRoot: string, rootFh: FileHandle | undefined, rootId: Ident, pinned: boolean) {
    this.root = root;
    this.realRoot = realRoot;
    this.remoteRoot = trimSlash(path.posix.normalize(remoteRoot));
    this.remotePrefix = this.remoteRoot === '/' ? '/' : `${this.remoteRoot}/`;
    this.rootFh = rootFh;
    this.rootId = rootId;
    this.pinned = pinned;
  }

  /** Open the share root (it must be a folder) and hold it while serving. */
  static async open(root: string, remoteRoot: string, walk: PathWalk = 'auto'): Promise<ShareJail> {
    const realRoot = await fsp.realpath(root);
    const st = await fsp.lstat(realRoot, { bigint: true });
    if (!st.isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
    // Windows cannot open a folder as a file: the portable walk needs no descriptor.
    const fh = await fsp.open(realRoot, DIR_FLAGS).catch((err: NodeJS.ErrnoException) => {
      if (process.platform === 'win32') return undefined;
      throw err;
    });
    let pinned = false;
    if (fh && walk === 'auto' && process.platform === 'linux') {
      const seen = await fsp.stat(`/proc/self/fd/${fh.fd}`, { bigint: true }).catch(() => undefined);
      pinned = !!seen && sameIdent(identOf(seen), identOf(st));
    }
    return new ShareJail(root, realRoot, remoteRoot, fh, identOf(st), pinned);
  }

  async close(): Promise<void> {
    await this.rootFh?.close().catch(() => undefined);
  }

  /** A refusal for `p`, which is outside the share. */
  outside(p: string): ShareRefusal {
    return new ShareRefusal(SFTP_STATUS.PERMISSION_DENIED, `${p}: outside the shared folder ${this.remoteRoot}`);
  }

  moved(p: string): ShareRefusal {
    return new ShareRefusal(SFTP_STATUS.PERMISSION_DENIED, `${p}: a folder on the way was moved or replaced while in use (shared folder ${this.remoteRoot})`);
  }

  /** The client path as names below the root, checked lexically. */
  names(p: string): string[] {
    if (typeof p !== 'string') throw new ShareRefusal(SFTP_STATUS.BAD_MESSAGE, 'missing path');
    if (p.includes('\0')) throw new ShareRefusal(SFTP_STATUS.BAD_MESSAGE, 'path contains a NUL byte');
    const abs = trimSlash(p.startsWith('/') ? path.posix.normalize(p) : path.posix.join(this.remoteRoot, p));
    if (abs === this.remoteRoot) return [];
    if (!abs.startsWith(this.remotePrefix)) throw this.outside(p);
    const parts = abs.slice(this.remotePrefix.length).split('/');
    if (path.sep !== '/' && parts.some((s) => s.includes(path.sep) || s.includes(':'))) {
      // A backslash or a drive colon would be a separator to the Windows host.
      throw new ShareRefusal(SFTP_STATUS.BAD_MESSAGE, `${p}: name not allowed on this host`);
    }
    return parts;
  }

  /** The descriptor of the held folder at the end of `steps` (the root when none). */
  heldFolder(steps: Step[]): FileHandle | undefined {
    return steps.length ? steps[steps.length - 1]!.fh : this.rootFh;
  }

  /** A path to the folder at the end of `steps`. */
  refOf(steps: Step[]): string {
    if (this.pinned) return `/proc/self/fd/${this.heldFolder(steps)!.fd}`;
    return path.join(this.realRoot, ...steps.map((s) => s.name));
  }

  /** Portable walk: the root and every folder in `steps` are still what was walked. */
  async verify(steps: Step[]): Promise<void> {
    let at = this.realRoot;
    const check = async (p: string, id: Ident) => {
      const st = await fsp.lstat(p, { bigint: true }).catch(() => undefined);
      if (!st?.isDirectory() || !sameIdent(identOf(st), id)) throw this.moved(p);
    };
    await check(at, this.rootId);
    for (const s of steps) {
      at = path.join(at, s.name);
      await check(at, s.id!);
    }
  }

  /**
   * Walk client path `p`. follow=false: the last name is left as it is
   * (lstat, readlink, unlink, rename, mkdir, symlink, a link's new name);
   * follow=true: a symlink there is followed (inside the share only) and
   * the place's `st` says what is there, or `missing` that nothing is.
   * The caller must release() the place.
   */
  async place(p: string, follow: boolean): Promise<Place> {
    return this.walk(this.names(p), follow, p);
  }

  /** place(), the operation, release(). */
  async at<T>(p: string, follow: boolean, op: (place: Place) => Promise<T>): Promise<T> {
    const place = await this.place(p, follow);
    try {
      return await op(place);
    } finally {
      await place.release();
    }
  }

  private async walk(parts: string[], follow: boolean, clientPath: string): Promise<Place> {
    const steps: Step[] = [];
    const todo = parts.filter((s) => s && s !== '.');
    let hops = 0;
    const drop = async (n: number) => {
      for (const s of steps.splice(steps.length - n, n)) await s.fh?.close().catch(() => undefined);
    };
    /** Put a symlink's target in front of what is left to walk. */
    const followLink = async (at: string) => {
      if (++hops > MAX_SYMLINK_HOPS) throw Object.assign(new Error(`${clientPath}: too many levels of symbolic links`), { code: 'ELOOP' });
      const target = await fsp.readlink(at);
      let rest = target;
      if (path.posix.isAbsolute(target)) {
        const inside = this.insideRelative(target);
        if (inside === undefined) throw this.outside(clientPath);
        rest = inside;
        await drop(steps.length);
      }
      todo.unshift(...rest.split('/').filter((s) => s && s !== '.'));
    };
    try {
      if (!this.pinned) await this.verify([]);
      while (todo.length) {
        const name = todo.shift()!;
        if (name === '..') {
          if (!steps.length) throw this.outside(clientPath);
          await drop(1);
          continue;
        }
        const last = todo.length === 0;
        if (last && !follow) return new Place(this, steps, name);
        const at = path.join(this.refOf(steps), name);
        if (!last) {
          const step = await this.enter(at, name);
          if (step) steps.push(step);
          else await followLink(at);
          continue;
        }
        let st: Stats;
        try {
          st = await fsp.lstat(at);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Place(this, steps, name, undefined, true);
          throw err;
        }
        if (st.isSymbolicLink()) await followLink(at);
        else return new Place(this, steps, name, st);
      }
      return new Place(this, steps, undefined);
    } catch (err) {
      await drop(steps.length);
      throw err;
    }
  }

  /** Go into folder `at` (a name in the last folder walked): the step, or undefined when it is a symlink. */
  private async enter(at: string, name: string): Promise<Step | undefined> {
    if (this.pinned) {
      try {
        return { name, fh: await fsp.open(at, DIR_FLAGS) };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ELOOP' && code !== 'ENOTDIR' && code !== 'EMLINK') throw err;
        if ((await fsp.lstat(at)).isSymbolicLink()) return undefined;
        throw err;
      }
    }
    const st = await fsp.lstat(at, { bigint: true });
    if (st.isSymbolicLink()) return undefined;
    if (!st.isDirectory()) throw Object.assign(new Error(`${at}: not a folder`), { code: 'ENOTDIR' });
    return { name, id: identOf(st) };
  }

  /** An absolute symlink target as a path relative to the root ('' = the root), undefined when outside. */
  private insideRelative(target: string): string | undefined {
    const t = trimSlash(path.posix.normalize(target));
    for (const base of new Set([this.realRoot, this.root, this.remoteRoot].map((b) => b.split(path.sep).join('/')))) {
      if (t === base) return '';
      const prefix = base === '/' ? '/' : `${base}/`;
      if (t.startsWith(prefix)) return t.slice(prefix.length);
    }
    return undefined;
  }

  /** A host path inside the share (the root's real path and names), in the client's terms. */
  toRemote(host: string): string {
    const rel = path.relative(this.realRoot, host);
    if (rel.startsWith('..') || path.isAbsolute(rel)) throw this.outside(host);
    if (!rel) return this.remoteRoot;
    return this.remotePrefix + rel.split(path.sep).join('/');
  }
}

function trimSlash(p: string): string {
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}
