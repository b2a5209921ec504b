/**
 * What the change notifier knows of host paths: their inode, size and
 * mtime when last seen. A host watcher reports a rename as a delete and a
 * create; the same inode gone from one name and made at another in one
 * batch is a rename (change-notifier.ts), and an update that kept size and
 * mtime changed only attributes. Bounded: a few MiB of the engine's memory
 * at most, the oldest forgotten first.
 */
import type { BigIntStats } from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

/** Paths remembered at most. */
export const KNOWN_MAX = 20_000;
/** Folders whose insides are not learnt up front: big, and seldom renamed in by hand. */
const NOT_SEEDED = new Set(['node_modules', '.git']);

export interface KnownPath {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
}

export class HostInodes {
  private known = new Map<string, KnownPath>();

  get(hostPath: string): KnownPath | undefined {
    return this.known.get(hostPath);
  }

  has(hostPath: string): boolean {
    return this.known.has(hostPath);
  }

  /** Remember what a host path is now; the oldest are forgotten past KNOWN_MAX. */
  remember(hostPath: string, st: BigIntStats): void {
    this.known.delete(hostPath);
    this.known.set(hostPath, { ino: st.ino, size: st.size, mtimeNs: st.mtimeNs });
    if (this.known.size > KNOWN_MAX) this.known.delete(this.known.keys().next().value!);
  }

  forget(hostPath: string): void {
    this.known.delete(hostPath);
  }

  /** Forget a folder and everything under it. */
  forgetUnder(root: string): void {
    for (const p of this.known.keys()) if (p === root || p.startsWith(root + path.sep)) this.known.delete(p);
  }

  clear(): void {
    this.known.clear();
  }

  /**
   * Learn what a newly watched folder holds, so that renaming a file that
   * was there before is seen as a rename. Shallowest first, at most
   * KNOWN_MAX paths, not inside node_modules or .git; what an event already
   * reported is not overwritten; stops when `wanted()` turns false.
   */
  async seed(root: string, wanted: () => boolean): Promise<void> {
    const dirs = [root];
    let seen = 0;
    while (dirs.length && wanted() && seen < KNOWN_MAX) {
      const dir = dirs.shift()!;
      const names = await fsp.readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const d of names) {
        const p = path.join(dir, d.name);
        if (d.isDirectory() && !NOT_SEEDED.has(d.name)) dirs.push(p);
        if (this.known.has(p)) continue;
        const st = await fsp.lstat(p, { bigint: true }).catch(() => undefined);
        if (st && !this.known.has(p)) this.remember(p, st);
        if (++seen >= KNOWN_MAX) break;
      }
    }
  }
}
