/**
 * Which host file an SFTP path names, and the rule that it must lie inside
 * the shared folder.
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
 * Confinement, in order:
 *  1. lexically: the path, after collapsing `.`, `..` and repeated slashes,
 *     must be REMOTE_ROOT or below it;
 *  2. the real path (every symlink resolved by the host OS) of the parent
 *     folder must lie in the real path of the root;
 *  3. for operations that follow the last component (open, stat, setstat,
 *     opendir, statvfs), that component is resolved too, dangling symlinks
 *     included, and must also stay inside.
 * A symlink inside the share may point anywhere (its target is only a
 * string, and sshfs resolves it in the guest's own namespace), but the
 * server never follows one out of the share. A refusal is PERMISSION_DENIED
 * with a message naming the share.
 *
 * Known limit: between the check and the operation another process (the host
 * user, or the guest with a concurrent request) could swap a checked folder
 * for a symlink. The last component is opened with O_NOFOLLOW, which closes
 * that race for it; folders higher up would need openat2(RESOLVE_BENEATH),
 * which Node does not offer.
 */
import fsp from 'node:fs/promises';
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

export class ShareJail {
  /** The host folder, absolute and normalized, as configured. */
  readonly root: string;
  /** The same folder with every symlink resolved. */
  readonly realRoot: string;
  /** The guest's name for the root (POSIX, absolute). */
  readonly remoteRoot: string;
  private readonly remotePrefix: string;

  constructor(root: string, realRoot: string, remoteRoot: string) {
    this.root = root;
    this.realRoot = realRoot;
    this.remoteRoot = trimSlash(path.posix.normalize(remoteRoot));
    this.remotePrefix = this.remoteRoot === '/' ? '/' : `${this.remoteRoot}/`;
  }

  /** A refusal for `p`, which is outside the share. */
  outside(p: string): ShareRefusal {
    return new ShareRefusal(SFTP_STATUS.PERMISSION_DENIED, `${p}: outside the shared folder ${this.remoteRoot}`);
  }

  /** The client path as a host path, checked lexically only. */
  lexical(p: string): string {
    if (p.includes('\0')) throw new ShareRefusal(SFTP_STATUS.BAD_MESSAGE, 'path contains a NUL byte');
    const abs = trimSlash(p.startsWith('/') ? path.posix.normalize(p) : path.posix.join(this.remoteRoot, p));
    if (abs === this.remoteRoot) return this.root;
    if (!abs.startsWith(this.remotePrefix)) throw this.outside(p);
    const parts = abs.slice(this.remotePrefix.length).split('/');
    if (path.sep !== '/' && parts.some((s) => s.includes(path.sep) || s.includes(':'))) {
      // A backslash or a drive colon would be a separator to the Windows host.
      throw new ShareRefusal(SFTP_STATUS.BAD_MESSAGE, `${p}: name not allowed on this host`);
    }
    return path.join(this.root, ...parts);
  }

  /** Whether a real (symlink-free) host path lies inside the real root. */
  contains(real: string): boolean {
    if (real === this.realRoot) return true;
    const prefix = this.realRoot.endsWith(path.sep) ? this.realRoot : this.realRoot + path.sep;
    return real.startsWith(prefix);
  }

  /** Whether `p` (host path) is the share root itself. */
  isRoot(hostPath: string): boolean {
    return hostPath === this.realRoot || hostPath === this.root;
  }

  /**
   * The host path to operate on for client path `p`. With follow=false the
   * last component is left as is (lstat, readlink, unlink, rename, mkdir,
   * symlink, the new name of a link); with follow=true it is resolved like
   * open(2) would, and a name that does not exist yet comes back unresolved
   * (for O_CREAT). The share root comes back as its real path.
   */
  async resolve(p: string, follow: boolean): Promise<string> {
    const lex = this.lexical(p);
    if (lex === this.root) return this.realRoot;
    if (follow) {
      // Usually the path exists: one realpath settles it.
      try {
        return await this.realInside(lex, p);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    const target = await this.parentInside(lex, p);
    return follow ? this.follow(target, p, 0) : target;
  }

  /**
   * `lex` (a lexical host path, not the root) with its parent folder replaced
   * by that folder's real path, after checking the folder is inside.
   */
  async parentInside(lex: string, clientPath: string): Promise<string> {
    const parent = await this.realInside(path.dirname(lex), clientPath);
    return path.join(parent, path.basename(lex));
  }

  /**
   * Run a read-only operation on the lexical path while checking, in
   * parallel, that it stays inside: `check` 'parent' for operations that do
   * not follow the last component (lstat, readlink), 'full' for those that
   * do (stat). The result is only returned when the check passed, and a
   * refusal wins over the operation's own error (no probing outside).
   */
  async readOnly<T>(p: string, check: 'parent' | 'full', op: (hostPath: string) => Promise<T>): Promise<T> {
    const lex = this.lexical(p);
    if (lex === this.root) return op(this.realRoot);
    const [guard, result] = await Promise.allSettled([
      check === 'full' ? this.realInside(lex, p) : this.realInside(path.dirname(lex), p),
      op(lex),
    ]);
    if (guard.status === 'rejected') throw guard.reason;
    if (result.status === 'rejected') throw result.reason;
    return result.value;
  }

  /** The real path of an existing host path, refused when outside. */
  async realInside(hostPath: string, clientPath: string): Promise<string> {
    const real = await fsp.realpath(hostPath);
    if (!this.contains(real)) throw this.outside(clientPath);
    return real;
  }

  /** Resolve a last component that may be a (dangling) symlink, hop by hop. */
  async follow(target: string, clientPath: string, hops: number): Promise<string> {
    try {
      return await this.realInside(target, clientPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // Missing, or a dangling symlink: where would open(O_CREAT) create it?
    let isLink = false;
    try {
      isLink = (await fsp.lstat(target)).isSymbolicLink();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return target;
      throw err;
    }
    if (!isLink) return target;
    if (hops >= MAX_SYMLINK_HOPS) throw Object.assign(new Error(`${clientPath}: too many symlinks`), { code: 'ELOOP' });
    const next = path.resolve(path.dirname(target), await fsp.readlink(target));
    const parent = await this.realInside(path.dirname(next), clientPath);
    return this.follow(path.join(parent, path.basename(next)), clientPath, hops + 1);
  }

  /** A real host path inside the share, in the client's terms. */
  toRemote(real: string): string {
    if (!this.contains(real)) throw this.outside(real);
    const rel = path.relative(this.realRoot, real);
    if (!rel) return this.remoteRoot;
    return this.remotePrefix + rel.split(path.sep).join('/');
  }
}

function trimSlash(p: string): string {
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}
