import fs from 'node:fs';
import type { VmStatus } from '../../contract/contract.js';
import type { GuestExec } from '../guest/queries.js';

/**
 * The data disk's space, both sides (issue 17 item 5): what the guest's
 * file system holds (`df` of /mnt/data, asked over the session at most
 * every few seconds, when someone asks for the status), and what the disk's
 * file takes on the host (its allocated blocks: a sparse raw file shrinks
 * as the guest's discards punch holes in it; a dynamic VHDX is its size).
 */
export type DiskView = NonNullable<VmStatus['disk']>;

/** The host side of the disk file, or undefined when there is none yet. */
export function hostDisk(file: string): Pick<DiskView, 'sizeBytes' | 'allocatedBytes'> | undefined {
  try {
    const st = fs.statSync(file);
    // Windows reports no blocks; its VHDX grows as written, so its size is what it takes.
    const allocated = typeof st.blocks === 'number' && Number.isFinite(st.blocks) ? st.blocks * 512 : st.size;
    return { sizeBytes: st.size, allocatedBytes: allocated };
  } catch {
    return undefined;
  }
}

/** `df -P -k`'s line for the mount: total and used, in bytes; undefined for anything else (the guest's words are not trusted). */
export function parseDf(out: string): { fsBytes: number; usedBytes: number } | undefined {
  const line = out.trim().split('\n').at(-1) ?? '';
  const m = /^\S+\s+(\d{1,15})\s+(\d{1,15})\s+\d{1,15}\s+\d{1,3}%\s+\/mnt\/data$/.exec(line);
  if (!m) return undefined;
  const fsBytes = Number(m[1]) * 1024;
  const usedBytes = Number(m[2]) * 1024;
  return usedBytes <= fsBytes ? { fsBytes, usedBytes } : undefined;
}

export class GuestDiskUsage {
  private last?: { usedBytes: number; at: number };
  private asking?: Promise<void>;

  constructor(private readonly guest: GuestExec) {}

  /** What the guest said last, and when. */
  view(): Pick<DiskView, 'usedBytes' | 'usedAt'> {
    return this.last ? { usedBytes: this.last.usedBytes, usedAt: new Date(this.last.at).toISOString() } : {};
  }

  /**
   * Ask again when the last answer is older than `maxAgeMs`, waiting for it
   * at most `waitMs` (a slow or hung guest must not hold up a status: its
   * answer, when it comes, is there for the next one). A failed or odd
   * answer keeps the last one.
   */
  refresh(maxAgeMs: number, waitMs = 1000): Promise<void> {
    if (this.last && Date.now() - this.last.at < maxAgeMs) return Promise.resolve();
    this.asking ??= (async () => {
      const r = await this.guest.exec('df -P -k /mnt/data', { timeoutMs: 5000 }).catch(() => undefined);
      const df = r?.code === 0 ? parseDf(r.stdout) : undefined;
      if (df) this.last = { usedBytes: df.usedBytes, at: Date.now() };
    })().finally(() => {
      this.asking = undefined;
    });
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)));
    return Promise.race([this.asking, waited]).finally(() => clearTimeout(timer));
  }
}
