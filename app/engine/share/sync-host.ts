/**
 * The host side of a synced folder: scanning it, hashing, and applying
 * changes with the just-in-time check (the target must still be what the
 * scan saw). Files arrive from the guest as a tar stream and are written to
 * a temporary name next to their target, then renamed over it, so an editor
 * or build on the host never sees half a file. Everything the engine writes
 * belongs to the host user (the engine runs as that user).
 *
 * Every path the guest names is walked from the synced folder's root
 * (sync-host-path.ts): no write, delete or read goes through a link on the
 * way, and a name the host's file system folds onto another entry (case,
 * Unicode form) is refused with a reason, never applied.
 *
 * node:fs/promises everywhere but the scan's lstat (see scanHost): the
 * engine also serves the sshfs mounts and must not block its event loop.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Parser, type ReadEntry } from 'tar';
import type { Entry, Snapshot } from './sync-plan.js';
import { HostTree, isRefused, type HostDir } from './sync-host-path.js';
import { safeRelative, SYNC_TEMP_PREFIX } from '../settings/sync-paths.js';

const abs = (root: string, rel: string) => path.join(root, ...rel.split('/'));

/** The host's signature of a path (undefined: nothing there; null: a kind we do not sync). */
export async function hostEntry(file: string): Promise<Entry | undefined | null> {
  let st;
  try {
    st = await fsp.lstat(file, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
  return statEntry(file, st);
}

async function statEntry(file: string, st: fs.BigIntStats): Promise<Entry | null> {
  if (st.isSymbolicLink()) {
    const target = await fsp.readlink(file);
    return { kind: 'link', sig: `l:${target}`, target };
  }
  return plainEntry(st);
}

/** The signature of a folder or regular file (null: a kind we do not sync). */
function plainEntry(st: fs.BigIntStats): Entry | null {
  if (st.isDirectory()) return { kind: 'dir', sig: '' };
  if (st.isFile()) {
    const x = st.mode & 0o111n ? 'x' : '-';
    return { kind: 'file', sig: `${st.size}:${st.mtimeNs}:${st.ino}:${x}`, size: Number(st.size) };
  }
  return null;
}

/** hostEntry from lstatSync (for the scan; see scanHost). */
function hostEntrySync(file: string): Entry | undefined | null {
  let st;
  try {
    st = fs.lstatSync(file, { bigint: true });
  } catch {
    return undefined;
  }
  if (st.isSymbolicLink()) {
    let target: string;
    try {
      target = fs.readlinkSync(file);
    } catch {
      return undefined;
    }
    return { kind: 'link', sig: `l:${target}`, target };
  }
  return plainEntry(st);
}

/** Entries stat'ed between two turns of the event loop. */
const SCAN_CHUNK = 256;

/**
 * Every file, folder and link under `root`, by relative POSIX path.
 *
 * The one exception to "no sync calls": lstat in chunks of SCAN_CHUNK,
 * yielding to the event loop between chunks. The synced folder is a plain
 * host folder (never a mount this process serves), and one lstat through
 * the thread pool costs several times a synchronous one: 20,000 files took
 * 1.8-2 s with fs/promises and 0.45 s this way on a busy 2-core host, while no
 * turn of the loop is held for more than a few milliseconds.
 */
export async function scanHost(root: string): Promise<Snapshot> {
  const snap: Snapshot = new Map();
  await walkHost(root, [''], snap);
  return snap;
}

/** Add everything under the folders `dirs` (relative; '' is the root) to `snap`. */
async function walkHost(root: string, dirs: string[], snap: Snapshot): Promise<void> {
  while (dirs.length) {
    const rel = dirs.shift()!;
    let names: string[];
    try {
      names = await fsp.readdir(rel ? abs(root, rel) : root);
    } catch (err) {
      if (!rel) throw err;
      continue; // a folder that went away (or unreadable) mid-scan
    }
    for (let i = 0; i < names.length; i += SCAN_CHUNK) {
      for (const n of names.slice(i, i + SCAN_CHUNK)) {
        if (n.startsWith(SYNC_TEMP_PREFIX)) continue;
        const p = rel ? `${rel}/${n}` : n;
        const e = hostEntrySync(abs(root, p));
        if (!e) continue;
        snap.set(p, e);
        if (e.kind === 'dir') dirs.push(p);
      }
      await new Promise((r) => setImmediate(r));
    }
  }
}

/**
 * What the host folder holds at some paths only (sync-scope.ts): each of
 * `deep` with everything under it, each of `shallow` alone. As in a whole
 * scan, nothing is looked up through a link: a path whose folder on the
 * way is not a real folder holds nothing.
 */
export async function lookHost(root: string, deep: string[], shallow: string[]): Promise<Snapshot> {
  const snap: Snapshot = new Map();
  const isDir = new Map<string, boolean>([['', true]]);
  const under = (p: string): boolean => {
    let sofar = '';
    for (const c of p.split('/').slice(0, -1)) {
      sofar = sofar ? `${sofar}/${c}` : c;
      let d = isDir.get(sofar);
      if (d === undefined) isDir.set(sofar, (d = hostEntrySync(abs(root, sofar))?.kind === 'dir'));
      if (!d) return false;
    }
    return true;
  };
  const walk: string[] = [];
  let n = 0;
  for (const [p, isDeep] of [...shallow.map((x) => [x, false] as const), ...deep.map((x) => [x, true] as const)]) {
    if (!under(p)) continue;
    const e = hostEntrySync(abs(root, p));
    if (!e) continue;
    snap.set(p, e);
    if (isDeep && e.kind === 'dir') walk.push(p);
    if (++n % SCAN_CHUNK === 0) await new Promise((r) => setImmediate(r));
  }
  await walkHost(root, walk, snap);
  return snap;
}

export async function hashHost(root: string, paths: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const tree = new HostTree(root);
  for (const p of paths) {
    try {
      if (!safeRelative(p)) continue;
      const at = await tree.parent(p, false);
      if (!at) continue;
      // Never through a link: a parent was checked, the file is opened without following.
      const fh = await fsp.open(path.join(at.at.dir, at.name), fs.constants.O_RDONLY | NOFOLLOW);
      try {
        const h = crypto.createHash('sha256');
        const buf = Buffer.alloc(256 * 1024);
        for (let n; (n = (await fh.read(buf, 0, buf.length, null)).bytesRead) > 0;) h.update(buf.subarray(0, n));
        out.set(p, h.digest('hex'));
      } finally {
        await fh.close();
      }
    } catch {
      /* gone, or refused: no match */
    }
  }
  return out;
}

/** O_NOFOLLOW where the platform has it (not on Windows, where links are opened as links by libuv anyway). */
const NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0;

const matches = (cur: Entry | undefined | null, expect: Entry | undefined) =>
  expect === undefined ? cur === undefined : !!cur && cur.kind === expect.kind && (cur.kind === 'dir' || cur.sig === expect.sig);

export type HostOp = { op: 'del'; path: string; expect: Entry } | { op: 'mkdir'; path: string } | { op: 'link'; path: string; target: string; expect?: Entry };

export interface HostResult {
  status: 'ok' | 'skip' | 'err';
  path: string;
  info: string;
  entry?: Entry;
  /** Refused for what the host holds (a link on the way, a name collision): retrying soon will not help. */
  refused?: boolean;
}

const failed = (rel: string, err: unknown): HostResult =>
  isRefused(err) ? { status: 'err', path: rel, info: err.message, refused: true } : { status: 'err', path: rel, info: (err as Error).message };

/** What `name` in a checked folder holds (undefined: nothing; null: a kind we do not sync). */
async function entryIn(tree: HostTree, at: HostDir, name: string): Promise<Entry | undefined | null> {
  const st = await tree.leaf(at, name);
  return st ? statEntry(path.join(at.dir, name), st) : undefined;
}

const tmpName = (dir: string) => path.join(dir, `${SYNC_TEMP_PREFIX}${crypto.randomBytes(6).toString('hex')}`);

export async function applyHostOp(root: string, o: HostOp, tree = new HostTree(root)): Promise<HostResult> {
  if (!safeRelative(o.path)) return { status: 'err', path: o.path, info: 'unsafe path', refused: true };
  try {
    const found = await tree.parent(o.path, o.op !== 'del');
    if (!found) return { status: 'ok', path: o.path, info: '' }; // del: its folder is gone already
    const { at, name } = found;
    const file = path.join(at.dir, name);
    const cur = await entryIn(tree, at, name);
    switch (o.op) {
      case 'del':
        if (cur === undefined) return { status: 'ok', path: o.path, info: '' };
        if (!matches(cur, o.expect)) return { status: 'skip', path: o.path, info: 'changed' };
        await tree.recheck(at, o.path);
        if (cur!.kind === 'dir') {
          try {
            await fsp.rmdir(file);
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            if (code === 'ENOTEMPTY' || code === 'EEXIST') return { status: 'skip', path: o.path, info: 'not empty' };
            throw err;
          }
          tree.forget(o.path);
        } else await fsp.unlink(file);
        return { status: 'ok', path: o.path, info: '' };
      case 'mkdir':
        if (cur && cur.kind !== 'dir') return { status: 'skip', path: o.path, info: 'taken' };
        if (!cur) {
          await tree.recheck(at, o.path);
          await fsp.mkdir(file);
          tree.added(at.dir, name);
        }
        return { status: 'ok', path: o.path, info: '', entry: { kind: 'dir', sig: '' } };
      case 'link': {
        if (!matches(cur, o.expect)) return { status: 'skip', path: o.path, info: 'changed' };
        const tmp = tmpName(at.dir);
        await fsp.symlink(o.target, tmp);
        try {
          await tree.recheck(at, o.path);
          await fsp.rename(tmp, file);
        } catch (err) {
          await fsp.unlink(tmp).catch(() => undefined);
          throw err;
        }
        tree.added(at.dir, name);
        return { status: 'ok', path: o.path, info: '', entry: (await entryIn(tree, at, name)) ?? undefined };
      }
    }
  } catch (err) {
    return failed(o.path, err);
  }
}

export interface Incoming {
  /** What the host holds there now, as the scan saw it (undefined: nothing). */
  expect?: Entry;
}

/**
 * Write the files of a tar stream (GNU tar from the guest) under `root`:
 * each to a temporary name, then renamed over its target if the target is
 * still what `wanted` expects. Entries not in `wanted` are skipped.
 */
export async function receiveTar(
  root: string,
  stream: Readable,
  wanted: Map<string, Incoming>,
  onFile?: (r: HostResult, bytes: number) => void,
): Promise<HostResult[]> {
  const results: HostResult[] = [];
  const parser = new Parser();
  const jobs: Promise<void>[] = [];
  const tree = new HostTree(root);
  let chain = Promise.resolve();
  parser.on('entry', (entry: ReadEntry) => {
    const rel = entry.path.replace(/^\.\//, '').replace(/\/$/, '');
    const want = wanted.get(rel);
    if (!want || entry.type !== 'File' || !safeRelative(rel)) {
      entry.resume();
      return;
    }
    // Only the executable bit travels (as the guest sees it): no guest can make a host file group/world-writable or setuid.
    const mode = (entry.mode ?? 0) & 0o111 ? 0o755 : 0o644;
    const mtime = entry.mtime;
    const size = entry.size ?? 0;
    let tmp: string | undefined;
    let found: { at: HostDir; name: string } | undefined;
    // Start writing now (the entry streams as the parser reads it), finish in order.
    // The temporary file is made new (O_EXCL) in a checked folder, never through a link.
    const written = (async () => {
      found = (await tree.parent(rel, true))!;
      tmp = tmpName(found.at.dir);
      const fh = await fsp.open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | NOFOLLOW, mode);
      try {
        for await (const chunk of entry as AsyncIterable<Buffer>) await fh.writeFile(chunk); // writeFile: the whole chunk, at the current position
        await fh.chmod(mode);
        if (mtime) await fh.utimes(mtime, mtime);
      } finally {
        await fh.close();
      }
    })();
    written.catch(() => entry.resume());
    const job = (chain = chain.then(async () => {
      let r: HostResult;
      try {
        await written;
        const { at, name } = found!;
        const cur = await entryIn(tree, at, name);
        if (!matches(cur, want.expect)) {
          await fsp.unlink(tmp!).catch(() => undefined);
          r = { status: 'skip', path: rel, info: 'changed' };
        } else {
          await tree.recheck(at, rel);
          await fsp.rename(tmp!, path.join(at.dir, name));
          tree.added(at.dir, name);
          r = { status: 'ok', path: rel, info: '', entry: (await entryIn(tree, at, name)) ?? undefined };
        }
      } catch (err) {
        if (tmp) await fsp.unlink(tmp).catch(() => undefined);
        r = failed(rel, err);
      }
      results.push(r);
      onFile?.(r, size);
    }));
    jobs.push(job);
  });
  await new Promise<void>((resolve, reject) => {
    parser.on('end', () => resolve());
    parser.on('error', reject);
    stream.on('error', reject);
    stream.pipe(parser);
  });
  await Promise.all(jobs);
  return results;
}
