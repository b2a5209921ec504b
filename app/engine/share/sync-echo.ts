/**
 * The guest watcher's echo of the sync's own changes. Every file the sync
 * places in the guest copy comes back from inotifywait as a MOVED_TO (the
 * rename out of the staging folder), every delete as a DELETE, and each
 * echo made the next cycle look at that path again on both sides, only to
 * find what the cycle had just written. A burst of 20,000 files paid a look
 * at all 20,000 in the guest (under emulation ~0.17 ms a path), and a
 * single edit paid a second cycle that held up the next edit's.
 *
 * The transfer says which event each guest op will cause before it sends
 * the op (the event can arrive before the op's answer), and forgets it when
 * the op did not apply. The watcher drops an event that was expected, once.
 *
 * What this can cost: a container's change of exactly that kind on exactly
 * that path, made after the expectation and before the sync's own op ran,
 * is taken for the echo. That op then finds the path changed (its
 * just-in-time check) and reports it, and the path is looked at again on
 * its retry: the change is late, never lost. An expectation is kept at most
 * EXPECT_MS; an echo that comes later is looked at like any event.
 */

/** The inotifywait event names (%e) of the sync's own guest ops. */
export type EchoKind = 'MOVED_TO' | 'DELETE' | 'CREATE,ISDIR' | 'DELETE,ISDIR';

/** An expectation older than this is not an echo any more (the event was lost, or the op never ran). */
export const EXPECT_MS = 30_000;
/** Expectations kept at most (the oldest go first): a bigger burst only costs looks. */
const MAX_EXPECTED = 200_000;

export class GuestEchoes {
  private readonly expected = new Map<string, { kind: EchoKind; n: number; at: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The sync is about to make these events happen. */
  expect(items: Iterable<{ path: string; kind: EchoKind }>): void {
    const at = this.now();
    for (const { path, kind } of items) {
      const cur = this.expected.get(path);
      const n = cur && cur.kind === kind && at - cur.at < EXPECT_MS ? cur.n + 1 : 1;
      // Deleted and set again: the map stays in the order of the latest expectation.
      this.expected.delete(path);
      this.expected.set(path, { kind, n, at });
    }
    for (const p of this.expected.keys()) {
      if (this.expected.size <= MAX_EXPECTED) break;
      this.expected.delete(p);
    }
  }

  /** The op at `path` did not apply (or was never sent): no event of ours comes. */
  forget(path: string): void {
    const cur = this.expected.get(path);
    if (!cur) return;
    if (cur.n > 1) cur.n--;
    else this.expected.delete(path);
  }

  /** An event from the guest's watcher: true when it is the expected echo (then it is used up). */
  consume(path: string, kinds: string): boolean {
    const cur = this.expected.get(path);
    if (!cur) return false;
    if (this.now() - cur.at >= EXPECT_MS) {
      this.expected.delete(path);
      return false;
    }
    if (cur.kind !== kinds) return false;
    this.forget(path);
    return true;
  }

  get size(): number {
    return this.expected.size;
  }
}
