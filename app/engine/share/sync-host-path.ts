/**
 * Where a path the guest named lands on the host, and whether sync may
 * write there. Everything from the guest is hostile (root in the VM can
 * forge any scan), so a relative path is never simply joined to the synced
 * folder: it is walked from the folder's root one component at a time.
 *
 * - Every parent must be a real folder: lstat each one, and refuse a
 *   symlink (or anything else) on the way, so nothing is written, deleted
 *   or read through a link, wherever it points.
 * - Every name must be the entry's own name in its folder. A case-insensitive
 *   or normalization-insensitive host file system (macOS, Windows) resolves
 *   `a` to an existing `A`, or `é` (NFC) to an existing `é` (NFD); the guest's
 *   Linux copy holds both as different entries. A name that reaches an
 *   entry listed under another name collides, and is refused (reported, not
 *   applied), as Mutagen does (it walks each parent checking the name's case
 *   against the folder's listing). Without this, a container could make a
 *   link `A -> ~/Library/LaunchAgents`, then a folder `a/` with a file in it,
 *   and the host's `a` would be the link.
 * - The folder found is remembered by device and inode, and checked again
 *   just before the final create/rename (sync-host.ts), which opens new
 *   files with O_NOFOLLOW|O_EXCL.
 *
 * node:fs has no openat/mkdirat, so the walk uses paths: each lstat sees a
 * path whose parents were already found to be real folders. What the guest
 * does cannot race it (the guest only acts through this code); a host
 * process of the user's own could, and that is not a boundary.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

/** A change sync will not apply on the host, for a reason that does not go away by retrying now. */
export class SyncRefused extends Error {
  readonly refused = true;
}

export const isRefused = (err: unknown): err is SyncRefused => err instanceof SyncRefused;

/** A folder found on the walk: its host path and identity. */
export interface HostDir {
  dir: string;
  dev: bigint;
  ino: bigint;
}

const WIN_RESERVED = /^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$/i;

/** Why `name` cannot be one component of a host path on `platform` (undefined: it can). */
export function hostNameProblem(name: string, platform: NodeJS.Platform = process.platform): string | undefined {
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) return 'not a plain name';
  if (platform === 'win32') {
    // Windows would read `\` as a separator, `:` as a stream or drive, and drops trailing dots and spaces.
    if (/[\\:*?"<>|\x00-\x1f]/.test(name)) return 'a name Windows cannot hold';
    if (/[. ]$/.test(name) || WIN_RESERVED.test(name)) return 'a name Windows would read as another';
  }
  return undefined;
}

const lstatOrUndef = async (p: string) => {
  try {
    return await fsp.lstat(p, { bigint: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
};

/**
 * The synced folder's host tree, walked safely. One instance serves one
 * batch of changes: folders already checked are remembered by identity
 * (a later use re-checks the identity with one lstat).
 */
export class HostTree {
  private readonly checked = new Map<string, HostDir>();
  /** Folder listings read for the name checks (names we add are added). */
  private readonly listings = new Map<string, Set<string>>();

  constructor(
    readonly root: string,
    private readonly platform: NodeJS.Platform = process.platform,
  ) {}

  /** The host path of a relative path (no checks: for messages). */
  abs(rel: string): string {
    return rel ? path.join(this.root, ...rel.split('/')) : this.root;
  }

  /**
   * The folder that holds `rel` and its last name, every parent checked
   * (made, when `create`, one level at a time). Undefined when a parent is
   * missing and not to be made. Throws SyncRefused when a parent is a link,
   * not a folder, or collides with another name.
   */
  async parent(rel: string, create: boolean): Promise<{ at: HostDir; name: string } | undefined> {
    const comps = rel.split('/');
    const name = comps.pop()!;
    for (const c of [...comps, name]) {
      const why = hostNameProblem(c, this.platform);
      if (why) throw new SyncRefused(`${rel}: ${why}`);
    }
    const relDir = comps.join('/');
    const known = this.checked.get(relDir);
    if (known && (await this.same(known))) return { at: known, name };
    let at = await this.rootDir();
    let sofar = '';
    for (const c of comps) {
      sofar = sofar ? `${sofar}/${c}` : c;
      const cached = this.checked.get(sofar);
      if (cached && (await this.same(cached))) {
        at = cached;
        continue;
      }
      const next = path.join(at.dir, c);
      let st = await lstatOrUndef(next);
      if (!st) {
        if (!create) return undefined;
        const made = await fsp.mkdir(next).then(
          () => true,
          (err: NodeJS.ErrnoException) => {
            if (err.code !== 'EEXIST') throw err;
            return false;
          },
        );
        if (made) this.added(at.dir, c);
        st = await lstatOrUndef(next);
        if (!st) throw new SyncRefused(`${sofar}: the folder could not be made on the host`);
      }
      if (st.isSymbolicLink()) throw new SyncRefused(`${sofar} is a link on the host; nothing is written through it`);
      if (!st.isDirectory()) throw new SyncRefused(`${sofar} is not a folder on the host`);
      if (!(await this.listed(at.dir, c))) throw new SyncRefused(collision(sofar));
      at = { dir: next, dev: st.dev, ino: st.ino };
      this.checked.set(sofar, at);
    }
    return { at, name };
  }

  /**
   * lstat of `name` in a checked folder: undefined when nothing is there;
   * SyncRefused when the name reaches an entry listed under another name.
   */
  async leaf(at: HostDir, name: string): Promise<fs.BigIntStats | undefined> {
    const st = await lstatOrUndef(path.join(at.dir, name));
    if (st && !(await this.listed(at.dir, name))) throw new SyncRefused(collision(name));
    return st;
  }

  /** The folder still is the one checked (same device and inode, still a real folder). */
  async same(d: HostDir): Promise<boolean> {
    const st = await lstatOrUndef(d.dir);
    return !!st && st.isDirectory() && !st.isSymbolicLink() && st.dev === d.dev && st.ino === d.ino;
  }

  /** Throws SyncRefused unless `d` still is the folder checked. */
  async recheck(d: HostDir, rel: string): Promise<void> {
    if (!(await this.same(d))) throw new SyncRefused(`${rel}: its folder on the host changed while it was written; not applied`);
  }

  /** A folder we made or found is no longer there (after a delete). */
  forget(rel: string): void {
    for (const k of this.checked.keys()) if (k === rel || k.startsWith(`${rel}/`)) this.checked.delete(k);
  }

  private async rootDir(): Promise<HostDir> {
    const st = await fsp.lstat(this.root, { bigint: true });
    if (!st.isDirectory()) throw new SyncRefused(`${this.root} is not a folder`);
    return { dir: this.root, dev: st.dev, ino: st.ino };
  }

  /** Whether `name` is listed exactly in `dir` (not only reachable by a case or Unicode variant). */
  private async listed(dir: string, name: string): Promise<boolean> {
    if (this.listings.get(dir)?.has(name)) return true;
    const names = new Set(await fsp.readdir(dir));
    this.listings.set(dir, names);
    return names.has(name);
  }

  /** `name` was just made in `dir` by us. */
  added(dir: string, name: string): void {
    this.listings.get(dir)?.add(name);
  }
}

const collision = (rel: string) =>
  `${rel} names a different entry on the host (the host's file system does not tell names apart that differ only in case or Unicode form); not applied`;
