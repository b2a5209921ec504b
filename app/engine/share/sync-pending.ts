/**
 * What the next sync cycle must look at: the paths the watchers named, or
 * everything (the first cycle, a watcher (re)started, a flush, the safety
 * rescan, a retry come due, a failed cycle, a conflict found by a partial
 * look); and whether it must ask the guest.
 */
import { scopeOf, type Scope } from './sync-scope.js';
import type { Changed } from './sync-watch.js';

/** More paths than this pending: look at everything instead. */
const MAX_PENDING_PATHS = 50_000;

export type NextLook = { ownFilesOnly: true } | { ownFilesOnly: false; scope?: Scope; lookInGuest: boolean };

export class PendingLook {
  /** Paths the watchers named since the last cycle took them. */
  private paths = new Set<string>();
  private everything = true;
  /**
   * The guest's watcher named some of the pending paths (or cannot be
   * relied on): the cycle looks at them in the guest. Otherwise it takes the
   * guest to hold what the ancestor says: every change it then makes in the
   * guest is checked against that just before (the agent's `matches`), so a
   * guest change not reported yet is never overwritten, only found later.
   */
  private inGuest = true;
  /** The guest's side has a watcher (inotifywait) that reports its changes. */
  guestWatched = true;

  /** A watcher saw `paths` change (undefined: it cannot say which). */
  note(paths: Changed, side: 'host' | 'guest'): void {
    if (side === 'guest') this.inGuest = true;
    if (!paths) this.everything = true;
    else if (!this.everything) for (const p of paths) this.paths.add(p);
    if (this.paths.size > MAX_PENDING_PATHS) this.everything = true;
    if (this.everything) this.paths.clear();
  }

  /** The next cycle looks at everything. */
  all(): void {
    this.everything = true;
  }

  /** A cycle failed: what it was to look at is not known to be done. */
  failed(): void {
    this.everything = this.inGuest = true;
  }

  /** Whether anything waits for a look. */
  get waiting(): boolean {
    return this.everything || this.paths.size > 0;
  }

  /** Take what is pending for one cycle (ownFilesOnly: only our own temporary files changed). */
  take(): NextLook {
    let scope: Scope | undefined;
    if (!this.everything) {
      scope = scopeOf(this.paths);
      if (scope && !scope.deep.length) {
        this.paths.clear();
        return { ownFilesOnly: true };
      }
    }
    const lookInGuest = this.inGuest || !this.guestWatched;
    this.paths = new Set();
    this.everything = false;
    this.inGuest = false;
    return { ownFilesOnly: false, scope, lookInGuest };
  }
}
