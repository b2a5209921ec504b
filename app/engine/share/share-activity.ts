/**
 * Which shared folders would be better synced: the changes the host's file
 * watcher saw in each folder that containers bind-mount (the change
 * notifier counts them), over the last minutes. Over a shared folder a
 * container's own writes come back from the host watcher as changes too,
 * so the count is what the host and the containers wrote there. A folder
 * that changes by the thousand (an `npm install`, a build, `git checkout`
 * in a container) pays a round trip to the host per file on a share, and
 * runs at the VM disk's own speed when synced (bench: the developer
 * workloads, guest disk against virtiofs and a synced folder).
 */
import { EventEmitter } from 'node:events';
import type { ShareViewWire } from '../../contract/contract.js';
import { shareOf, within } from '../settings/sync-paths.js';

/** The window the changes are counted over. */
export const BUSY_MINUTES = 10;
/** This many changes in the window is a busy folder (a small project's `npm install`). */
export const BUSY_CHANGES = 2000;

const MINUTE = 60_000;

export class FolderActivity extends EventEmitter<{ busy: [string] }> {
  /** folder -> changes per minute (the last BUSY_MINUTES minutes, oldest first) */
  private minutes = new Map<string, { minute: number; n: number }[]>();

  /** `n` changes in `folder` now; says `busy` when the folder crosses BUSY_CHANGES. */
  count(folder: string, n: number, now = Date.now()): void {
    if (n <= 0) return;
    const minute = Math.floor(now / MINUTE);
    const before = this.changes(folder, now);
    const kept = this.minutes.get(folder) ?? [];
    const last = kept.at(-1);
    if (last?.minute === minute) last.n += n;
    else kept.push({ minute, n });
    this.minutes.set(folder, kept);
    if (before < BUSY_CHANGES && before + n >= BUSY_CHANGES) this.emit('busy', folder);
  }

  /** The changes in `folder` in the last BUSY_MINUTES minutes (older minutes are dropped). */
  changes(folder: string, now = Date.now()): number {
    const minute = Math.floor(now / MINUTE);
    const kept = (this.minutes.get(folder) ?? []).filter((b) => b.minute > minute - BUSY_MINUTES);
    if (kept.length) this.minutes.set(folder, kept);
    else this.minutes.delete(folder);
    return kept.reduce((sum, b) => sum + b.n, 0);
  }

  folders(): string[] {
    return [...this.minutes.keys()];
  }
}

/**
 * The writable shares with advice where a folder in them is busy and not synced:
 * `busy` names the busiest such folder (in the innermost share that holds
 * it), `advice` says why to sync it in one line.
 */
export function adviseShares(views: ShareViewWire[], activity: FolderActivity, synced: string[], now = Date.now()): ShareViewWire[] {
  const busy = activity
    .folders()
    .map((folder) => ({ folder, changes: activity.changes(folder, now) }))
    .filter((f) => f.changes >= BUSY_CHANGES && !synced.some((s) => within(f.folder, s)))
    .sort((a, b) => b.changes - a.changes);
  return views.map((v) => {
    // A read-only share cannot be synced (the sync would write back to it).
    const top = v.readOnly ? undefined : busy.find((f) => shareOf(f.folder, views) === v);
    if (!top) return v;
    return {
      ...v,
      busy: { folder: top.folder, changes: top.changes, minutes: BUSY_MINUTES },
      advice: `${top.folder} changed ${top.changes.toLocaleString('en-US')} times in ${BUSY_MINUTES} minutes: synced, containers work on it at the VM disk's speed`,
    };
  });
}
