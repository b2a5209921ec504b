/**
 * Big files from the guest, pulled beside the cycles instead of inside one.
 * A cycle that pulled a 100 MiB file a container wrote took 27 s under TCG,
 * and every other change, a host edit included, waited behind it. Now a
 * cycle hands files of BIG_PULL_BYTES and more to this lane and goes on;
 * the lane pulls them one at a time, in the order given, and says when each
 * landed or failed. Until then the session leaves those paths out of its
 * cycles (`has`). The pull's usual checks hold: the host file must still be
 * what the look saw, or it is not overwritten (sync-host.ts receiveTar).
 */
import type { HostResult } from './sync-host.js';
import type { Action } from './sync-plan.js';
import { pullFiles, type TransferContext } from './sync-transfer.js';

/** Files at least this big are pulled beside the cycles (a few seconds under TCG; small ones stay in the cycle). */
export const BIG_PULL_BYTES = 8 * 2 ** 20;

export type CopyAction = Extract<Action, { op: 'copy' }>;

/** How one file of the lane ended: its result (absent when the guest no longer had it), or the error that stopped it. */
export interface BulkLanded {
  action: CopyAction;
  result?: HostResult;
  error?: Error;
}

export class BulkPulls {
  private readonly busy = new Set<string>();
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly landed: (l: BulkLanded) => Promise<void>) {}

  /** Is `path` being pulled (or waiting its turn)? */
  has(path: string): boolean {
    return this.busy.has(path);
  }

  get active(): boolean {
    return this.busy.size > 0;
  }

  /** Pull these files after the ones already queued; returns at once. A path already queued is not queued twice. */
  start(c: TransferContext, items: CopyAction[]): void {
    for (const a of items) {
      if (this.busy.has(a.path)) continue;
      this.busy.add(a.path);
      this.chain = this.chain.then(() => this.one(c, a));
    }
  }

  private async one(c: TransferContext, a: CopyAction): Promise<void> {
    let results: HostResult[] = [];
    let error: Error | undefined;
    try {
      results = await pullFiles(c, new Map([[a.path, a]]));
    } catch (err) {
      error = err as Error;
    }
    this.busy.delete(a.path);
    await this.landed({ action: a, result: results.find((r) => r.path === a.path), error }).catch(() => undefined);
  }

  /** Resolves when every queued file has landed or failed. */
  async idle(): Promise<void> {
    while (this.active) await this.chain;
  }
}
