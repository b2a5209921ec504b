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
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { GuestSession } from '../guest/session.js';
import { hashGuest, lookGuest, scanGuest } from './sync-guest.js';
import { hashHost, lookHost, scanHost } from './sync-host.js';
import { ancestorIn, asRecorded, coveredBy, within } from './sync-scope.js';
import { CycleRunner } from './sync-cycles.js';
import { PendingLook } from './sync-pending.js';
import { CopyMount } from './sync-mount.js';
import { guestSyncDirs, syncId } from '../settings/sync-paths.js';
import { hashCandidates, reconcile, type Ancestor, type Conflict } from './sync-plan.js';
import { PathRetries, type SyncProblemView } from './sync-retry.js';
import { SyncWatch, type Changed } from './sync-watch.js';
import { loadSyncState, saveSyncState, SyncProblem, type SyncConflictView, type SyncState, type SyncView } from './sync-state.js';
import { applyActions } from './sync-transfer.js';
import { FirstCopyProgress } from './sync-progress.js';
import { GuestEchoes } from './sync-echo.js';
import { removeTrees, writeFile } from '../guest/queries.js';
import { sh } from '../../base/shell-quote.js';

export type { SyncConflictView, SyncState, SyncView } from './sync-state.js';
export type { SyncProblemView } from './sync-retry.js';
export { batches } from './sync-transfer.js';

const MAX_CONFLICTS = 200;
const SAFETY_RESCAN_MS = 60_000;
/**
 * How long a cycle waits after a watcher's event, to take more of a burst
 * with it (the host's watcher already gathers its events for 50 ms).
 */
const EVENT_DELAY_MS = 5;
/**
 * How long start() waits for the watchers before its first cycle (usually
 * well under a second; inotifywait -r on a big guest tree takes longer). A
 * watcher that comes up later still asks for a look then.
 */
const WATCHERS_READY_MS = 5000;
/**
 * Files a cycle wrote on the host are looked at again this long after:
 * the host's watcher folds a create and a delete in one batch into
 * nothing, so a file removed the moment the sync wrote it went unseen
 * until the safety rescan, a minute later.
 */
const RECHECK_MS = 250;

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
  private anc: Ancestor = new Map();
  private token = '';
  private initialDone = false;
  private conflicts: SyncConflictView[] = [];
  private readonly progress = new FirstCopyProgress({
    done: () => this.initialDone,
    copying: () => this.set('copying'),
    changed: () => this.emit('change'),
    landed: () => this.saveState(),
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
  private safety?: NodeJS.Timeout;
  private watcher?: SyncWatch;
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
    const { session, log } = o;
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
    return path.join(this.o.stateDir, `${this.id}.json`);
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
      entries: this.anc.size,
      cycles: this.cycles,
      conflicts: [...this.conflicts],
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
    return this.initialDone;
  }

  private async loadState(): Promise<void> {
    const s = await loadSyncState(this.stateFile, this.hostPath);
    if (!s) return;
    this.token = s.token;
    this.initialDone = s.initialDone;
    this.anc = s.anc;
    this.conflicts = s.conflicts;
  }

  private async saveState(): Promise<void> {
    await saveSyncState(this.stateFile, this.hostPath, { token: this.token, initialDone: this.initialDone, anc: this.anc, conflicts: this.conflicts });
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
    await this.loadState();
    if (!this.token) this.token = crypto.randomBytes(12).toString('hex');
    try {
      const st = await fsp.stat(this.hostPath).catch(() => undefined);
      if (!st?.isDirectory())
        throw new SyncProblem(`${this.hostPath} does not exist on this computer`, 'Create the folder again, or stop syncing it with `berth sync rm PATH`.');
      const d = this.dirs;
      const r = await this.o.session.exec(
        // Staging leftovers of a push the link dropped under are removed (best effort).
        sh`mkdir -p ${d.tree} && { rm -rf ${d.stage}; mkdir -p ${d.stage}; cat ${d.token} 2>/dev/null; true; }`,
        { timeoutMs: 30_000 },
      );
      const guestToken = r.stdout.trim();
      if (guestToken !== this.token) {
        if (this.anc.size)
          this.log.warn(
            { folder: this.hostPath },
            'the guest copy is not the one last synced (new data disk?); copying the folder to the guest again, nothing is deleted',
          );
        this.anc = new Map();
        this.initialDone = false;
        // Forgotten on disk first: a first copy that fails must not make the next start read what is missing as deletes.
        await this.saveState();
        await writeFile(this.o.session, d.token, this.token);
      }
    } catch (err) {
      this.failures++;
      this.fail(err);
      this.armSafety();
      return;
    }
    this.prepared = true;
    this.watch();
    const ready = await this.watcher?.ready(WATCHERS_READY_MS);
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
    if (this.stopped) return;
    const w = new SyncWatch(this.hostPath, this.dirs.tree, this.o.session, this.log, this.echoes);
    w.on('changed', (paths, side) => this.changed(paths, side));
    w.on('noGuestWatcher', () => {
      this.look.guestWatched = false;
      this.safetyMs = 2000;
      this.armSafety();
    });
    w.start();
    this.watcher = w;
    this.armSafety();
  }

  private safetyMs = SAFETY_RESCAN_MS;
  private armSafety(): void {
    if (this.safety) clearTimeout(this.safety);
    if (this.stopped) return;
    this.safety = setTimeout(
      () => {
        this.safety = undefined;
        if (!this.prepared) {
          void this.start();
          return;
        }
        this.look.all();
        this.request(0);
        this.armSafety();
      },
      this.state === 'error' ? Math.min(this.safetyMs, 5000 * 2 ** Math.min(this.failures, 3)) : this.safetyMs,
    );
    this.safety.unref?.();
  }

  /** A watcher saw `paths` change (undefined: it cannot say which): look there soon. */
  private changed(paths: Changed, side: 'host' | 'guest'): void {
    this.look.note(paths, side);
    this.request(EVENT_DELAY_MS);
  }

  /** Look at host paths again soon (see RECHECK_MS). */
  private recheck(paths: string[]): void {
    setTimeout(() => {
      if (this.stopped) return;
      this.look.note(paths, 'host');
      this.request(0);
    }, RECHECK_MS).unref?.();
  }

  /** Run a cycle soon (bursts coalesce); it looks at what is pending then. */
  request(delayMs = 100): void {
    this.runner.request(delayMs);
  }

  /** Run a cycle over everything now (or join the one running, then run one more). */
  async flush(): Promise<void> {
    this.look.all();
    await this.runner.flush();
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
    this.armSafety();
    return false;
  }

  /**
   * One look at both sides and what it takes to make them equal: at
   * everything (scanHost, scanGuest) or only where the watchers saw changes
   * (sync-scope.ts). A look at some paths that finds a conflict is made
   * again over everything (naming the conflict copy needs every name).
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
    if (this.state !== 'copying') this.set(this.initialDone ? 'syncing' : 'copying');
    const [host, looked] = scope
      ? await Promise.all([
          lookHost(this.hostPath, scope.deep, scope.shallow),
          lookInGuest ? lookGuest(this.o.session, this.dirs.tree, scope.deep, scope.shallow).then((g) => within(g, scope)) : undefined,
        ])
      : await Promise.all([scanHost(this.hostPath), scanGuest(this.o.session, this.dirs.tree)]);
    const lookMs = Date.now() - t0;
    const anc = scope ? ancestorIn(this.anc, scope, host, looked ?? new Map()) : this.anc;
    const guest = looked ?? asRecorded(anc);
    const cands = hashCandidates(anc, host, guest);
    const equal = new Set<string>();
    if (cands.length) {
      const [hh, gh] = await Promise.all([hashHost(this.hostPath, cands), hashGuest(this.o.session, this.dirs.tree, cands)]);
      for (const p of cands) if (hh.get(p) && hh.get(p) === gh.get(p)) equal.add(p);
    }
    const plan = reconcile(anc, host, guest, { equal });
    if (scope && plan.conflicts.length) {
      this.look.all();
      return;
    }
    // A path whose change failed before waits for its own next try.
    const planned = new Set(plan.actions.filter((a) => a.op !== 'same').map((a) => a.path));
    const actions = plan.actions.filter((a) => a.op === 'same' || !this.retries.waiting(a.path));
    const t1 = Date.now();
    const changes = await applyActions(
      { session: this.o.session, hostPath: this.hostPath, dirs: this.dirs, log: this.log, anc: this.anc, echoes: this.echoes },
      actions,
      this.progress.forCycle(),
    );
    const applyMs = Date.now() - t1;
    this.noteRetries(changes.applied, changes.failed, scope ? undefined : planned);
    if (changes.copiedToHost.size) this.recheck([...changes.copiedToHost]);
    for (const p of plan.forget) this.anc.delete(p);
    for (const c of plan.conflicts) {
      if (!changes.saved.has(c.path)) continue;
      this.recordConflict(c);
    }
    // A conflict copy the user removed (or renamed) on the host is resolved.
    const before = this.conflicts.length;
    const deep = new Set(scope?.deep);
    this.conflicts = this.conflicts.filter((c) => {
      const p = rel(this.hostPath, c.guestCopy);
      return (scope && !coveredBy(deep, p)) || host.has(p) || changes.copiedToHost.has(p);
    });
    const moved = changes.toGuest + changes.toHost + changes.deleted;
    if (!this.initialDone) this.initialDone = true;
    this.progress.end();
    this.cycles++;
    this.lastSyncAt = new Date().toISOString();
    this.lastCycleMs = Date.now() - t0;
    if (moved) {
      this.lastChanges = { toGuest: changes.toGuest, toHost: changes.toHost, deleted: changes.deleted };
      this.log.info({ folder: this.hostPath, ...this.lastChanges, ms: this.lastCycleMs, lookMs, applyMs, skipped: changes.skipped }, 'synced');
    }
    if (moved || plan.forget.length || plan.actions.length || before !== this.conflicts.length || this.cycles === 1) await this.saveState();
    this.set('watching');
  }

  /**
   * Record what landed and what did not; a change that did not is tried
   * again when its path's delay is up (never by re-running at once: a change
   * that can never apply would spin the sync).
   */
  private noteRetries(applied: Set<string>, failed: Map<string, { info: string; refused: boolean }>, planned: Set<string> | undefined): void {
    for (const p of applied) this.retries.succeeded(p);
    const abs = (x: string) => path.join(this.hostPath, ...x.split('/'));
    for (const [p, f] of failed) {
      if (!this.retries.failed(p, f.info, f.refused)) continue;
      this.log.warn({ folder: this.hostPath, file: p, err: f.info }, 'sync cannot apply a change; it is tried again later and shown in `berth sync`');
      const v = this.retries.problems(abs).find((x) => x.path === abs(p));
      if (v) this.emit('problem', v);
    }
    // Only a look at everything knows which waiting paths no longer need a change.
    if (planned) this.retries.keepOnly(planned);
    if (!this.stopped)
      this.retries.arm(() => {
        this.look.all();
        this.request(0);
      });
  }

  private recordConflict(c: Conflict): void {
    const v: SyncConflictView = {
      path: path.join(this.hostPath, ...c.path.split('/')),
      guestCopy: path.join(this.hostPath, ...c.guestCopy.split('/')),
      at: c.at,
    };
    this.conflicts = [...this.conflicts, v].slice(-MAX_CONFLICTS);
    this.log.warn({ file: v.path, kept: v.guestCopy }, 'sync conflict: both sides changed the file; both versions kept');
    this.emit('conflict', v);
  }

  /** Mount the guest copy over the folder's guest path (again after the share remounted). */
  async ensureMounted(): Promise<void> {
    await this.copyMount.ensure(!this.stopped && this.initialDone && this.o.shareMounted());
  }

  private unwatch(): void {
    this.runner.cancel();
    if (this.safety) clearTimeout(this.safety);
    this.retries.disarm();
    this.safety = undefined;
    this.watcher?.stop();
    this.watcher = undefined;
  }

  /** Stop watching (the VM stops or the link is gone); the copy and state stay. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unwatch();
    await this.runner.idle();
    this.copyMount.mounted = false;
    this.state = 'stopped';
  }

  /** Stop syncing for good: a last cycle, unmount, delete the guest copy and the state. */
  async remove(): Promise<void> {
    this.unwatch();
    if (this.state !== 'error' && this.initialDone) await this.flush().catch(() => undefined);
    this.stopped = true;
    await this.runner.idle();
    await this.copyMount.unmount();
    await removeTrees(this.o.session, [this.dirs.base]);
    await fsp.rm(this.stateFile, { force: true });
    this.state = 'stopped';
  }
}

const rel = (root: string, p: string) => path.relative(root, p).split(path.sep).join('/');
