/**
 * One synced folder: the host folder and its copy on the guest's disk, kept
 * equal both ways (sync-plan.ts decides, sync-host.ts and sync-guest.ts
 * apply). A cycle scans both sides, reconciles against the ancestor (what
 * both held after the last cycle), applies, and saves the new ancestor on
 * the host, so a restarted engine or VM picks up where it left off. Cycles
 * run when either side's watcher reports a change (@parcel/watcher on the
 * host, inotifywait in the guest) or has just started watching (first, or
 * after an ssh reconnect), and every minute as a safety net.
 *
 * Safety rules:
 * - The guest copy carries a token that the host state names. A guest copy
 *   without it (a new data disk, a factory reset) is not the one the
 *   ancestor describes, so the ancestor is dropped and nothing is deleted
 *   on the host because the guest "lost" it (Mutagen issue #275 is that
 *   failure: a recreated endpoint read as a mass delete).
 * - A host folder that is missing stops the sync with an error; it never
 *   empties the guest copy.
 * - Conflicts keep both versions (see sync-plan.ts) and are reported.
 */
import { EventEmitter } from 'node:events';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { GuestSession } from '../guest/session.js';
import { lookAndPlan } from './sync-look.js';
import { CycleRunner } from './sync-cycles.js';
import { PendingLook } from './sync-pending.js';
import { CopyMount, copyIsOurs } from './sync-mount.js';
import { guestSyncDirs, syncId } from '../settings/sync-paths.js';
import { PathRetries, type SyncProblemView } from './sync-retry.js';
import { SyncTriggers } from './sync-triggers.js';
import { BIG_PULL_BYTES, BulkPulls, type BulkLanded } from './sync-bulk.js';
import { SyncKept } from './sync-kept.js';
import { SyncProblem, type SyncConflictView, type SyncState, type SyncView } from './sync-state.js';
import { applyActions } from './sync-transfer.js';
import { FirstCopyProgress } from './sync-progress.js';
import { GuestEchoes } from './sync-echo.js';
import { removeTrees, writeFile } from '../guest/queries.js';

export type { SyncConflictView, SyncState, SyncView } from './sync-state.js';
export type { SyncProblemView } from './sync-retry.js';
export { batches } from './sync-transfer.js';

/**
 * How long start() waits for the watchers before its first cycle (usually
 * well under a second; inotifywait -r on a big guest tree takes longer). A
 * watcher that comes up later still asks for a look then.
 */
const WATCHERS_READY_MS = 5000;

export interface SyncSessionOptions {
  hostPath: string;
  /** The folder's guest path (where it is bind-mounted), or undefined when its share is gone. */
  guestPath: () => string | undefined;
  /** Whether the share holding it is mounted in the guest now. */
  shareMounted: () => boolean;
  session: GuestSession;
  log: Logger;
  /** Host folder for the state files. */
  stateDir: string;
  /** Where guest copies live (tests run the "guest" on this machine). */
  guestRoot?: string;
}

export class SyncSession extends EventEmitter<{ change: []; conflict: [SyncConflictView]; problem: [SyncProblemView] }> {
  readonly id: string;
  readonly hostPath: string;
  private readonly dirs: ReturnType<typeof guestSyncDirs>;
  private state: SyncState = 'starting';
  private error?: { message: string; hint: string };
  /** Token, ancestor, conflicts: what it keeps between runs. */
  private readonly kept: SyncKept;
  private readonly progress = new FirstCopyProgress({
    done: () => this.kept.initialDone,
    copying: () => this.set('copying'),
    changed: () => this.emit('change'),
    landed: () => this.kept.save(),
  });
  private cycles = 0;
  private lastSyncAt?: string;
  private lastCycleMs?: number;
  private lastChanges?: SyncView['lastChanges'];
  private readonly copyMount: CopyMount;
  /** What the next cycle looks at. */
  private readonly look = new PendingLook();
  /** The guest watcher's events for the sync's own changes, dropped (sync-echo.ts). */
  private readonly echoes = new GuestEchoes();
  private readonly runner = new CycleRunner({
    cycle: async () => {
      await this.cycle();
      this.failures = 0;
    },
    waiting: () => this.look.waiting,
    failed: (err) => this.cycleFailed(err),
    stopped: () => this.stopped,
  });
  private readonly triggers: SyncTriggers;
  /** Big guest files pulled beside the cycles (sync-bulk.ts). */
  private readonly bulk = new BulkPulls((l) => this.bulkLanded(l));
  private stopped = false;
  private failures = 0;
  /** Paths whose change did not apply: tried again on their own delays, reported if they keep failing. */
  private readonly retries = new PathRetries();
  /** The guest side was checked and set up (start got past its first step). */
  private prepared = false;

  constructor(private readonly o: SyncSessionOptions) {
    super();
    this.hostPath = path.resolve(o.hostPath);
    this.id = syncId(this.hostPath);
    this.dirs = guestSyncDirs(this.id, o.guestRoot);
    this.kept = new SyncKept(path.join(o.stateDir, `${this.id}.json`), this.hostPath);
    const { session, log } = o;
    this.triggers = new SyncTriggers({
      hostPath: this.hostPath,
      tree: this.dirs.tree,
      session,
      log,
      echoes: this.echoes,
      look: this.look,
      request: (ms) => this.request(ms),
      safety: () => {
        if (!this.prepared) {
          void this.start();
          return;
        }
        this.look.all();
        this.request(0);
        this.triggers.arm();
      },
      failures: () => (this.state === 'error' ? this.failures : undefined),
      stopped: () => this.stopped,
    });
    this.copyMount = new CopyMount({
      session,
      log,
      guestPath: o.guestPath,
      id: this.id,
      tree: this.dirs.tree,
      hostPath: this.hostPath,
      changed: () => this.emit('change'),
    });
  }

  get stateFile(): string {
    return this.kept.file;
  }

  private get log(): Logger {
    return this.o.log;
  }

  private set(state: SyncState, error?: { message: string; hint: string }): void {
    this.state = state;
    this.error = error;
    this.emit('change');
  }

  view(): SyncView {
    const v: SyncView = {
      hostPath: this.hostPath,
      guestPath: this.o.guestPath() ?? this.hostPath,
      copyPath: this.dirs.tree,
      state: this.state,
      mounted: this.copyMount.mounted,
      entries: this.kept.anc.size,
      cycles: this.cycles,
      conflicts: [...this.kept.conflicts.list],
    };
    const initial = this.progress.view();
    if (initial) v.initial = initial;
    if (this.lastSyncAt) v.lastSyncAt = this.lastSyncAt;
    if (this.lastCycleMs !== undefined) v.lastCycleMs = this.lastCycleMs;
    if (this.lastChanges) v.lastChanges = { ...this.lastChanges };
    const problems = this.retries.problems((p) => path.join(this.hostPath, ...p.split('/')));
    if (problems.length) v.problems = problems;
    if (this.error) {
      v.error = this.error.message;
      v.hint = this.error.hint;
    }
    return v;
  }

  /** Whether the guest copy had been fully made before (a restart, not a first sync). */
  get initialized(): boolean {
    return this.kept.initialDone;
  }

  /**
   * Load the state, check the guest copy is ours, start watching, run the
   * first cycle and mount the copy. Resolves after the first cycle (it never
   * rejects: failures show as the error state and are retried).
   *
   * The watchers are in place before the first cycle scans: a change made
   * after its scan (during the cycle, or the moment start() resolves) is
   * then reported, one made before is in the scan. Watching only after the
   * cycle left a window whose changes nothing reported until the safety
   * rescan, a minute later.
   */
  async start(): Promise<void> {
    this.stopped = false;
    await this.kept.load();
    try {
      const st = await fsp.stat(this.hostPath).catch(() => undefined);
      if (!st?.isDirectory())
        throw new SyncProblem(`${this.hostPath} does not exist on this computer`, 'Create the folder again, or stop syncing it with `berth sync rm PATH`.');
      if (!(await copyIsOurs(this.o.session, this.dirs, this.kept.token))) {
        if (this.kept.anc.size)
          this.log.warn(
            { folder: this.hostPath },
            'the guest copy is not the one last synced (new data disk?); copying the folder to the guest again, nothing is deleted',
          );
        await this.kept.forget();
        await writeFile(this.o.session, this.dirs.token, this.kept.token);
      }
    } catch (err) {
      this.failures++;
      this.fail(err);
      this.triggers.arm();
      return;
    }
    this.prepared = true;
    this.watch();
    const ready = await this.triggers.watcher?.ready(WATCHERS_READY_MS);
    if (this.stopped) return;
    if (ready === false) this.log.debug({ folder: this.hostPath }, 'the sync watchers are not up yet; they ask for a look when they are');
    await this.runner.run();
    await this.ensureMounted();
  }

  private fail(err: unknown): void {
    const p = err instanceof SyncProblem ? err : new SyncProblem((err as Error).message, 'Berth tries again by itself; `berth logs` has the details.');
    this.log.warn({ folder: this.hostPath, err: p.message }, 'sync failed');
    this.set('error', { message: p.message, hint: p.hint });
  }

  private watch(): void {
    if (!this.stopped) this.triggers.watch();
  }

  /** Run a cycle soon (bursts coalesce); it looks at what is pending then. */
  request(delayMs = 100): void {
    this.runner.request(delayMs);
  }

  /** Run a cycle over everything now (or join the one running, then run one more), and wait for the big files it pulls. */
  async flush(): Promise<void> {
    this.look.all();
    await this.runner.flush();
    while (this.bulk.active) {
      await this.bulk.idle();
      this.look.all();
      await this.runner.flush();
    }
  }

  /**
   * A big guest file pulled beside the cycles landed, or did not: recorded
   * as a cycle records its own, then both sides of it are looked at again
   * (a change to it while it was pulled was left for now).
   */
  private async bulkLanded(l: BulkLanded): Promise<void> {
    const { action: a, result: r } = l;
    const failed = new Map<string, { info: string; refused: boolean }>();
    if (r?.status === 'ok' && r.entry) {
      this.kept.anc.set(a.path, { kind: 'file', host: r.entry.sig, guest: a.entry.sig });
      this.log.info({ folder: this.hostPath, toHost: 1, bytes: a.entry.size }, 'synced a big file beside the cycles');
      await this.kept.save();
    } else {
      const info = l.error?.message ?? (r ? r.info : 'not in the guest copy when it was read');
      failed.set(a.path, { info, refused: !!r?.refused });
    }
    this.noteRetries(new Set(failed.size ? [] : [a.path]), failed, undefined);
    if (this.stopped) return;
    this.look.note([a.path], 'guest');
    this.request(0);
  }

  /** A cycle failed: look again at once when a file went away under it, else report and back off. */
  private cycleFailed(err: unknown): boolean {
    this.failures++;
    // What this cycle was to look at is not known to be done.
    this.look.failed();
    // A file that went away between the scan and the copy (a build or a checkout on the host).
    const code = (err as NodeJS.ErrnoException).code;
    if ((code === 'ENOENT' || code === 'ENOTDIR') && this.failures < 5) {
      this.log.debug({ folder: this.hostPath, err: (err as Error).message }, 'a file changed during the sync; again');
      return true;
    }
    this.fail(err);
    this.triggers.arm();
    return false;
  }

  /**
   * One look at both sides and what it takes to make them equal
   * (sync-look.ts), carried out (sync-transfer.ts). A look at some paths
   * that finds a conflict is made again over everything (naming the
   * conflict copy needs every name).
   */
  private async cycle(): Promise<void> {
    const t0 = Date.now();
    const st = await fsp.stat(this.hostPath).catch(() => undefined);
    if (!st?.isDirectory())
      throw new SyncProblem(
        `${this.hostPath} does not exist on this computer`,
        'Create the folder again, or stop syncing it with `berth sync rm PATH`. The guest copy is kept until then.',
      );
    const next = this.look.take();
    if (next.ownFilesOnly) return;
    const { scope, lookInGuest } = next;
    if (this.state !== 'copying') this.set(this.kept.initialDone ? 'syncing' : 'copying');
    const { host, plan, lookMs } = await lookAndPlan({
      session: this.o.session,
      hostPath: this.hostPath,
      tree: this.dirs.tree,
      anc: this.kept.anc,
      scope,
      lookInGuest,
    });
    if (scope && plan.conflicts.length) {
      this.look.all();
      return;
    }
    // A path whose change failed before waits for its own next try.
    const planned = new Set(plan.actions.filter((a) => a.op !== 'same').map((a) => a.path));
    // So does one the bulk lane is still pulling.
    const actions = plan.actions.filter((a) => a.op === 'same' || (!this.retries.waiting(a.path) && !this.bulk.has(a.path)));
    const t1 = Date.now();
    const changes = await applyActions(
      {
        session: this.o.session,
        hostPath: this.hostPath,
        dirs: this.dirs,
        log: this.log,
        anc: this.kept.anc,
        echoes: this.echoes,
        bulk: this.bulk,
        bulkBytes: BIG_PULL_BYTES,
      },
      actions,
      this.progress.forCycle(),
    );
    const applyMs = Date.now() - t1;
    this.noteRetries(changes.applied, changes.failed, scope ? undefined : planned);
    if (changes.copiedToHost.size) this.triggers.recheck([...changes.copiedToHost]);
    for (const p of plan.forget) this.kept.anc.delete(p);
    for (const c of plan.conflicts) {
      if (!changes.saved.has(c.path)) continue;
      const v = this.kept.conflicts.record(c);
      this.log.warn({ file: v.path, kept: v.guestCopy }, 'sync conflict: both sides changed the file; both versions kept');
      this.emit('conflict', v);
    }
    // A conflict copy the user removed (or renamed) on the host is resolved.
    const resolved = this.kept.conflicts.resolve(host, changes.copiedToHost, scope);
    const moved = changes.toGuest + changes.toHost + changes.deleted;
    if (!this.kept.initialDone) this.kept.initialDone = true;
    this.progress.end();
    this.cycles++;
    this.lastSyncAt = new Date().toISOString();
    this.lastCycleMs = Date.now() - t0;
    if (moved) {
      this.lastChanges = { toGuest: changes.toGuest, toHost: changes.toHost, deleted: changes.deleted };
      this.log.info({ folder: this.hostPath, ...this.lastChanges, ms: this.lastCycleMs, lookMs, applyMs, skipped: changes.skipped }, 'synced');
    }
    if (moved || plan.forget.length || plan.actions.length || resolved || this.cycles === 1) await this.kept.save();
    this.set('watching');
  }

  /**
   * Record what landed and what did not; a change that did not is tried
   * again when its path's delay is up (never by re-running at once: a change
   * that can never apply would spin the sync).
   */
  private noteRetries(applied: Set<string>, failed: Map<string, { info: string; refused: boolean }>, planned: Set<string> | undefined): void {
    for (const v of this.retries.settle(applied, failed, planned, (x) => path.join(this.hostPath, ...x.split('/')))) {
      this.log.warn({ folder: this.hostPath, file: v.path, err: v.problem }, 'sync cannot apply a change; it is tried again later and shown in `berth sync`');
      this.emit('problem', v);
    }
    if (!this.stopped)
      this.retries.arm(() => {
        this.look.all();
        this.request(0);
      });
  }

  /** Mount the guest copy over the folder's guest path (again after the share remounted). */
  async ensureMounted(): Promise<void> {
    await this.copyMount.ensure(!this.stopped && this.kept.initialDone && this.o.shareMounted());
  }

  private unwatch(): void {
    this.runner.cancel();
    this.retries.disarm();
    this.triggers.stop();
  }

  /** Stop watching (the VM stops or the link is gone); the copy and state stay. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unwatch();
    await this.runner.idle();
    await this.bulk.idle();
    this.copyMount.mounted = false;
    this.state = 'stopped';
  }

  /** Stop syncing for good: a last cycle, unmount, delete the guest copy and the state. */
  async remove(): Promise<void> {
    this.unwatch();
    if (this.state !== 'error' && this.kept.initialDone) await this.flush().catch(() => undefined);
    this.stopped = true;
    await this.runner.idle();
    await this.bulk.idle();
    await this.copyMount.unmount();
    await removeTrees(this.o.session, [this.dirs.base]);
    await this.kept.remove();
    this.state = 'stopped';
  }
}
