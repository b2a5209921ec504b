/**
 * One synced folder: the host folder and its copy on the guest's disk, kept
 * equal both ways (sync-plan.ts decides, sync-host.ts and sync-guest.ts
 * apply). A cycle scans both sides, reconciles against the ancestor (what
 * both held after the last cycle), applies, and saves the new ancestor on
 * the host, so a restarted engine or VM picks up where it left off. Cycles
 * run when either side's watcher reports a change (@parcel/watcher on the
 * host, inotifywait in the guest), after an ssh reconnect, and every minute
 * as a safety net.
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
import { Transform } from 'node:stream';
import parcelWatcher from '@parcel/watcher';
import type { Logger } from 'pino';
import { create as tarCreate } from 'tar';
import type { GuestSession } from '../guest/session.js';
import { mountsEscape } from './share-manager.js';
import { applyGuest, GuestWatcher, hashGuest, runGuest, scanGuest, type GuestOp, type OpResult } from './sync-guest.js';
import { applyHostOp, hashHost, receiveTar, scanHost, type HostOp, type HostResult } from './sync-host.js';
import { guestSyncDirs, shq, syncId, SYNC_TEMP_PREFIX } from './sync-paths.js';
import { hashCandidates, reconcile, type Action, type Ancestor, type AncestorEntry, type Conflict } from './sync-plan.js';

export type SyncState = 'starting' | 'copying' | 'watching' | 'syncing' | 'error' | 'stopped';

export interface SyncConflictView {
  /** The host file both sides changed (absolute). */
  path: string;
  /** Where the guest's version was kept (absolute host path; also in the guest). */
  guestCopy: string;
  at: string;
}

export interface SyncView {
  hostPath: string;
  /** Where containers see it in the VM (the guest copy is bind-mounted here). */
  guestPath: string;
  /** The guest copy on the VM's data disk. */
  copyPath: string;
  state: SyncState;
  /** Whether the guest copy is mounted at guestPath right now. */
  mounted: boolean;
  /** While the first copy to the guest runs. */
  initial?: { files: number; totalFiles: number; bytes: number; totalBytes: number };
  /** Files, folders and links in sync. */
  entries: number;
  cycles: number;
  lastSyncAt?: string;
  lastCycleMs?: number;
  /** Changes moved in the last cycle that moved anything. */
  lastChanges?: { toGuest: number; toHost: number; deleted: number };
  conflicts: SyncConflictView[];
  error?: string;
  hint?: string;
}

interface StateFile {
  version: 1;
  hostPath: string;
  token: string;
  initialDone: boolean;
  /** [path, kind, host sig, guest sig] */
  ancestor: [string, AncestorEntry['kind'], string, string][];
  conflicts: SyncConflictView[];
}

const MAX_CONFLICTS = 200;
const SAFETY_RESCAN_MS = 60_000;

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

export class SyncSession extends EventEmitter<{ change: []; conflict: [SyncConflictView] }> {
  readonly id: string;
  readonly hostPath: string;
  private readonly dirs: ReturnType<typeof guestSyncDirs>;
  private state: SyncState = 'starting';
  private error?: { message: string; hint: string };
  private anc: Ancestor = new Map();
  private token = '';
  private initialDone = false;
  private conflicts: SyncConflictView[] = [];
  private initial?: SyncView['initial'];
  private cycles = 0;
  private lastSyncAt?: string;
  private lastCycleMs?: number;
  private lastChanges?: SyncView['lastChanges'];
  private mounted = false;
  private running?: Promise<void>;
  private dirty = false;
  private debounce?: NodeJS.Timeout;
  private safety?: NodeJS.Timeout;
  private hostSub?: parcelWatcher.AsyncSubscription;
  private guestWatch?: GuestWatcher;
  private stopped = false;
  private failures = 0;
  /** The guest side was checked and set up (start got past its first step). */
  private prepared = false;

  constructor(private readonly o: SyncSessionOptions) {
    super();
    this.hostPath = path.resolve(o.hostPath);
    this.id = syncId(this.hostPath);
    this.dirs = guestSyncDirs(this.id, o.guestRoot);
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
      mounted: this.mounted,
      entries: this.anc.size,
      cycles: this.cycles,
      conflicts: [...this.conflicts],
    };
    if (this.initial) v.initial = { ...this.initial };
    if (this.lastSyncAt) v.lastSyncAt = this.lastSyncAt;
    if (this.lastCycleMs !== undefined) v.lastCycleMs = this.lastCycleMs;
    if (this.lastChanges) v.lastChanges = { ...this.lastChanges };
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
    try {
      const s = JSON.parse(await fsp.readFile(this.stateFile, 'utf8')) as StateFile;
      if (s.version !== 1 || s.hostPath !== this.hostPath) return;
      this.token = s.token;
      this.initialDone = s.initialDone;
      this.anc = new Map(s.ancestor.map(([p, kind, host, guest]) => [p, { kind, host, guest }]));
      this.conflicts = s.conflicts ?? [];
    } catch {
      /* none yet, or unreadable: start over (the guest token check decides) */
    }
  }

  private async saveState(): Promise<void> {
    const s: StateFile = {
      version: 1,
      hostPath: this.hostPath,
      token: this.token,
      initialDone: this.initialDone,
      ancestor: [...this.anc].map(([p, a]) => [p, a.kind, a.host, a.guest]),
      conflicts: this.conflicts,
    };
    await fsp.mkdir(this.o.stateDir, { recursive: true, mode: 0o700 });
    const tmp = `${this.stateFile}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify(s), { mode: 0o600 });
    await fsp.rename(tmp, this.stateFile);
  }

  /**
   * Load the state, check the guest copy is ours, run the first cycle and
   * mount the copy; then watch. Resolves after the first cycle (it never
   * rejects: failures show as the error state and are retried).
   */
  async start(): Promise<void> {
    this.stopped = false;
    await this.loadState();
    if (!this.token) this.token = crypto.randomBytes(12).toString('hex');
    try {
      const st = await fsp.stat(this.hostPath).catch(() => undefined);
      if (!st?.isDirectory()) throw new SyncProblem(`${this.hostPath} does not exist on this computer`, 'Create the folder again, or stop syncing it with `berth sync rm PATH`.');
      const d = this.dirs;
      const r = await this.o.session.exec(
        // Staging leftovers of a push the link dropped under are removed (best effort).
        `mkdir -p ${shq(d.tree)} && { rm -rf ${shq(d.stage)}; mkdir -p ${shq(d.stage)}; cat ${shq(d.token)} 2>/dev/null; true; }`,
        { timeoutMs: 30_000 },
      );
      const guestToken = r.stdout.trim();
      if (guestToken !== this.token) {
        if (this.anc.size) this.log.warn({ folder: this.hostPath }, 'the guest copy is not the one last synced (new data disk?); copying the folder to the guest again, nothing is deleted');
        this.anc = new Map();
        this.initialDone = false;
        await this.o.session.exec(`printf %s ${shq(this.token)} > ${shq(d.token)}`, { timeoutMs: 30_000 });
      }
    } catch (err) {
      this.failures++;
      this.fail(err);
      this.armSafety();
      return;
    }
    this.prepared = true;
    await this.runCycle();
    await this.ensureMounted();
    this.watch();
  }

  private fail(err: unknown): void {
    const p = err instanceof SyncProblem ? err : new SyncProblem((err as Error).message, 'Berth tries again by itself; `berth logs` has the details.');
    this.log.warn({ folder: this.hostPath, err: p.message }, 'sync failed');
    this.set('error', { message: p.message, hint: p.hint });
  }

  private watch(): void {
    if (this.stopped) return;
    void parcelWatcher
      .subscribe(this.hostPath, (err, events) => {
        if (err) return void this.log.debug({ err: err.message }, 'sync host watcher error');
        if (events.some((e) => !path.basename(e.path).startsWith(SYNC_TEMP_PREFIX))) this.request();
      })
      .then(
        (sub) => {
          if (this.stopped) return void sub.unsubscribe().catch(() => undefined);
          this.hostSub = sub;
        },
        (err: Error) => this.log.warn({ err: err.message, folder: this.hostPath }, 'cannot watch the synced folder on the host; rescanning every minute'),
      );
    const gw = new GuestWatcher(this.o.session, this.dirs.tree, this.log);
    gw.on('changed', () => this.request());
    gw.on('reopened', () => this.request());
    gw.on('unavailable', (why) => {
      this.log.warn({ why }, 'no inotify watcher in the guest; the guest copy is rescanned every 2 s');
      gw.stop();
      this.safetyMs = 2000;
      this.armSafety();
    });
    gw.start();
    this.guestWatch = gw;
    this.armSafety();
  }

  private safetyMs = SAFETY_RESCAN_MS;
  private armSafety(): void {
    if (this.safety) clearTimeout(this.safety);
    if (this.stopped) return;
    this.safety = setTimeout(() => {
      this.safety = undefined;
      if (!this.prepared) {
        void this.start();
        return;
      }
      this.request(0);
      this.armSafety();
    }, this.state === 'error' ? Math.min(this.safetyMs, 5000 * 2 ** Math.min(this.failures, 3)) : this.safetyMs);
    this.safety.unref?.();
  }

  /** Something changed: run a cycle soon (bursts coalesce). */
  request(delayMs = 100): void {
    if (this.stopped) return;
    if (this.running) {
      this.dirty = true;
      return;
    }
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.runCycle();
    }, delayMs);
  }

  /** Run a cycle now (or join the one running, then run one more). */
  async flush(): Promise<void> {
    if (this.running) {
      this.dirty = true;
      await this.running;
      if (this.running) await this.running;
      return;
    }
    await this.runCycle();
  }

  private runCycle(): Promise<void> {
    if (this.running) {
      this.dirty = true;
      return this.running;
    }
    const p = (async () => {
      do {
        this.dirty = false;
        try {
          await this.cycle();
          this.failures = 0;
        } catch (err) {
          this.failures++;
          // A file that went away between the scan and the copy (a build or
          // a checkout on the host): look again rather than report an error.
          const code = (err as NodeJS.ErrnoException).code;
          if ((code === 'ENOENT' || code === 'ENOTDIR') && this.failures < 5) {
            this.log.debug({ folder: this.hostPath, err: (err as Error).message }, 'a file changed during the sync; again');
            this.dirty = true;
            continue;
          }
          this.fail(err);
          this.armSafety();
          break;
        }
      } while (this.dirty && !this.stopped);
    })();
    this.running = p.finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async cycle(): Promise<void> {
    const t0 = Date.now();
    const st = await fsp.stat(this.hostPath).catch(() => undefined);
    if (!st?.isDirectory()) throw new SyncProblem(`${this.hostPath} does not exist on this computer`, 'Create the folder again, or stop syncing it with `berth sync rm PATH`. The guest copy is kept until then.');
    if (this.state !== 'copying') this.set(this.initialDone ? 'syncing' : 'copying');
    const [host, guest] = await Promise.all([scanHost(this.hostPath), scanGuest(this.o.session, this.dirs.tree)]);
    const cands = hashCandidates(this.anc, host, guest);
    const equal = new Set<string>();
    if (cands.length) {
      const [hh, gh] = await Promise.all([hashHost(this.hostPath, cands), hashGuest(this.o.session, this.dirs.tree, cands)]);
      for (const p of cands) if (hh.get(p) && hh.get(p) === gh.get(p)) equal.add(p);
    }
    const plan = reconcile(this.anc, host, guest, { equal });
    const changes = await this.apply(plan.actions);
    for (const p of plan.forget) this.anc.delete(p);
    for (const c of plan.conflicts) {
      if (!changes.saved.has(c.path)) continue;
      this.recordConflict(c);
    }
    // A conflict copy the user removed (or renamed) on the host is resolved.
    const before = this.conflicts.length;
    this.conflicts = this.conflicts.filter((c) => host.has(rel(this.hostPath, c.guestCopy)) || changes.copiedToHost.has(rel(this.hostPath, c.guestCopy)));
    const moved = changes.toGuest + changes.toHost + changes.deleted;
    if (!this.initialDone) this.initialDone = true;
    this.initial = undefined;
    this.cycles++;
    this.lastSyncAt = new Date().toISOString();
    this.lastCycleMs = Date.now() - t0;
    if (moved) {
      this.lastChanges = { toGuest: changes.toGuest, toHost: changes.toHost, deleted: changes.deleted };
      this.log.info({ folder: this.hostPath, ...this.lastChanges, ms: this.lastCycleMs, skipped: changes.skipped }, 'synced');
    }
    if (moved || plan.forget.length || plan.actions.length || before !== this.conflicts.length || this.cycles === 1) await this.saveState();
    // Skipped changes (a file changed under us) need another look.
    if (changes.skipped) this.dirty = true;
    this.set('watching');
  }

  private recordConflict(c: Conflict): void {
    const v: SyncConflictView = { path: path.join(this.hostPath, ...c.path.split('/')), guestCopy: path.join(this.hostPath, ...c.guestCopy.split('/')), at: c.at };
    this.conflicts = [...this.conflicts, v].slice(-MAX_CONFLICTS);
    this.log.warn({ file: v.path, kept: v.guestCopy }, 'sync conflict: both sides changed the file; both versions kept');
    this.emit('conflict', v);
  }

  /** Apply the plan's actions in their order; update the ancestor as each succeeds. */
  private async apply(actions: Action[]) {
    const anc = this.anc;
    const out = { toGuest: 0, toHost: 0, deleted: 0, skipped: 0, saved: new Set<string>(), copiedToHost: new Set<string>() };
    const note = (r: OpResult | HostResult) => {
      if (r.status === 'ok') return true;
      out.skipped++;
      if (r.status === 'err') this.log.warn({ folder: this.hostPath, file: r.path, err: r.info }, 'sync could not apply a change');
      return false;
    };
    for (const a of actions) if (a.op === 'same') anc.set(a.path, { kind: a.host.kind, host: a.host.sig, guest: a.guest.sig });

    // 1. In the guest: conflict copies aside, deletes, folders. On the host: deletes, folders.
    const guestOps: GuestOp[] = [];
    const hostOps: HostOp[] = [];
    for (const a of actions) {
      if (a.op === 'save') guestOps.push({ op: 'save', path: a.path, to: a.to, expect: a.expect });
      else if (a.op === 'delete') (a.on === 'guest' ? guestOps : hostOps).push({ op: 'del', path: a.path, expect: a.expect });
      else if (a.op === 'mkdir') (a.on === 'guest' ? guestOps : hostOps).push({ op: 'mkdir', path: a.path });
    }
    const [gres, hres] = await Promise.all([
      applyGuest(this.o.session, this.dirs.tree, this.dirs.stage, guestOps),
      (async () => {
        const rs: HostResult[] = [];
        for (const o of hostOps) rs.push(await applyHostOp(this.hostPath, o));
        return rs;
      })(),
    ]);
    gres.forEach((r, i) => {
      const o = guestOps[i]!;
      if (!note(r)) return;
      if (o.op === 'save') {
        out.saved.add(o.path);
        anc.delete(o.path);
      } else if (o.op === 'del') {
        out.deleted++;
        anc.delete(o.path);
      } else if (o.op === 'mkdir') anc.set(o.path, { kind: 'dir', host: '', guest: '' });
    });
    hres.forEach((r, i) => {
      const o = hostOps[i]!;
      if (!note(r)) return;
      if (o.op === 'del') {
        out.deleted++;
        anc.delete(o.path);
      } else if (o.op === 'mkdir') anc.set(o.path, { kind: 'dir', host: '', guest: '' });
    });

    // 2. Host -> guest: files as one tar stream into the staging folder, then renamed into place; links directly.
    const toGuest = actions.filter((a): a is Extract<Action, { op: 'copy' }> => a.op === 'copy' && a.from === 'host');
    const files = toGuest.filter((a) => a.entry.kind === 'file');
    if (!this.initialDone && files.length) {
      this.initial = { files: 0, totalFiles: files.length, bytes: 0, totalBytes: files.reduce((s, a) => s + (a.entry.size ?? 0), 0) };
      this.set('copying');
    }
    // In batches, each recorded as it lands: a link that drops in the middle
    // of a big first copy costs one batch, not the whole copy.
    for (const batch of batches(toGuest)) {
      // Each push stages into a folder of its own: a tar that outlived a
      // dropped link may still be writing into an earlier one.
      const stage = `${this.dirs.stage}/${crypto.randomBytes(6).toString('hex')}`;
      const bfiles = batch.filter((a) => a.entry.kind === 'file');
      if (bfiles.length) await this.push(bfiles.map((a) => a.path), stage);
      const placeOps: GuestOp[] = batch.map((a) =>
        a.entry.kind === 'link' ? { op: 'link', path: a.path, target: a.entry.target ?? '', expect: a.expect } : { op: 'place', path: a.path, expect: a.expect },
      );
      const pres = await applyGuest(this.o.session, this.dirs.tree, stage, placeOps);
      pres.forEach((r, i) => {
        const a = batch[i]!;
        if (!note(r)) return;
        out.toGuest++;
        anc.set(a.path, { kind: a.entry.kind, host: a.entry.sig, guest: r.info });
      });
      if (bfiles.length) await this.o.session.exec(`rm -rf ${shq(stage)}`, { timeoutMs: 60_000 }).catch(() => undefined);
      if (this.initial) {
        this.initial.files = Math.min(this.initial.totalFiles, this.initial.files + bfiles.length);
        this.emit('change');
        await this.saveState();
      }
    }

    // 3. Guest -> host: links directly, files as one tar stream from the guest.
    const toHost = actions.filter((a): a is Extract<Action, { op: 'copy' }> => a.op === 'copy' && a.from === 'guest');
    for (const a of toHost.filter((x) => x.entry.kind === 'link')) {
      const r = await applyHostOp(this.hostPath, { op: 'link', path: a.path, target: a.entry.target ?? '', expect: a.expect });
      if (!note(r)) continue;
      out.toHost++;
      anc.set(a.path, { kind: 'link', host: r.entry?.sig ?? a.entry.sig, guest: a.entry.sig });
    }
    const pulls = toHost.filter((x) => x.entry.kind === 'file');
    if (pulls.length) {
      const byPath = new Map(pulls.map((a) => [a.path, a]));
      const results = await this.pull(byPath);
      for (const r of results) {
        const a = byPath.get(r.path);
        if (!a || !note(r) || !r.entry) continue;
        out.toHost++;
        out.copiedToHost.add(r.path);
        anc.set(r.path, { kind: 'file', host: r.entry.sig, guest: a.entry.sig });
      }
      // Files the guest no longer had when tar read them: look again next cycle.
      if (results.length < pulls.length) out.skipped += pulls.length - results.length;
    }
    return out;
  }

  /** Send host files (relative paths) into the guest's staging folder as one tar stream. */
  private async push(files: string[], stage: string): Promise<void> {
    const pack = tarCreate({ cwd: this.hostPath, portable: true, noDirRecurse: true, follow: false }, files);
    let lastEmit = 0;
    const counter = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        if (this.initial) {
          // Tar headers and padding count too: close enough for progress.
          this.initial.bytes = Math.min(this.initial.bytes + chunk.length, this.initial.totalBytes);
          if (Date.now() - lastEmit > 500) {
            lastEmit = Date.now();
            this.emit('change');
          }
        }
        cb(null, chunk);
      },
    });
    pack.on('error', (err: unknown) => counter.destroy(err as Error));
    pack.pipe(counter);
    const r = await runGuest(
      this.o.session,
      `mkdir -p ${shq(stage)} && cd ${shq(stage)} && exec tar -x -f - --no-same-owner`,
      counter,
    );
    if (r.code !== 0) throw new Error(`copying files into the guest failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  }

  /** Fetch guest files as one tar stream and write them on the host. */
  private async pull(want: Map<string, Extract<Action, { op: 'copy' }>>): Promise<HostResult[]> {
    const list = Buffer.from([...want.keys()].map((p) => `${p}\0`).join(''), 'utf8');
    const ch = await this.o.session.openExec(
      `cd ${shq(this.dirs.tree)} && exec tar -c -f - --no-recursion --verbatim-files-from --null -T - 2>/dev/null; true`,
    );
    const wanted = new Map([...want].map(([p, a]) => [p, a.expect ? { expect: a.expect } : {}]));
    const done = receiveTar(this.hostPath, ch, wanted);
    ch.end(list);
    return done;
  }

  /** Mount the guest copy over the folder's guest path (again after the share remounted). */
  async ensureMounted(): Promise<void> {
    const g = this.o.guestPath();
    if (!g || this.stopped || !this.initialDone || !this.o.shareMounted()) {
      if (this.mounted) {
        this.mounted = false;
        this.emit('change');
      }
      return;
    }
    const script = [
      `top=$(P=${shq(mountsEscape(g))} awk '$5 == ENVIRON["P"] { r = $4 } END { print r }' /proc/self/mountinfo)`,
      `case "$top" in */sync/${this.id}/tree) exit 0;; esac`,
      `[ -d ${shq(g)} ] || exit 3`,
      `mount --bind ${shq(this.dirs.tree)} ${shq(g)}`,
    ].join('\n');
    const r = await this.o.session.exec(script, { timeoutMs: 15_000 }).catch((err: Error) => ({ code: -1, stdout: '', stderr: err.message }));
    const ok = r.code === 0;
    if (!ok) this.log.warn({ folder: this.hostPath, guestPath: g, code: r.code, err: r.stderr.trim() }, 'cannot mount the guest copy of a synced folder');
    else if (!this.mounted) this.log.info({ folder: this.hostPath, guestPath: g, copy: this.dirs.tree }, 'synced folder: guest copy mounted');
    if (ok !== this.mounted) {
      this.mounted = ok;
      this.emit('change');
    }
  }

  private async unmount(): Promise<void> {
    const g = this.o.guestPath();
    if (!g) return;
    const script = [
      `top=$(P=${shq(mountsEscape(g))} awk '$5 == ENVIRON["P"] { r = $4 } END { print r }' /proc/self/mountinfo)`,
      `case "$top" in */sync/${this.id}/tree) umount -l ${shq(g)};; esac`,
    ].join('\n');
    await this.o.session.exec(script, { timeoutMs: 15_000 }).catch(() => undefined);
    this.mounted = false;
  }

  private unwatch(): void {
    if (this.debounce) clearTimeout(this.debounce);
    if (this.safety) clearTimeout(this.safety);
    this.debounce = this.safety = undefined;
    void this.hostSub?.unsubscribe().catch(() => undefined);
    this.hostSub = undefined;
    this.guestWatch?.stop();
    this.guestWatch = undefined;
  }

  /** Stop watching (the VM stops or the link is gone); the copy and state stay. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unwatch();
    await this.running?.catch(() => undefined);
    this.mounted = false;
    this.state = 'stopped';
  }

  /** Stop syncing for good: a last cycle, unmount, delete the guest copy and the state. */
  async remove(): Promise<void> {
    this.unwatch();
    if (this.state !== 'error' && this.initialDone) await this.flush().catch(() => undefined);
    this.stopped = true;
    await this.running?.catch(() => undefined);
    await this.unmount();
    await this.o.session.exec(`rm -rf ${shq(this.dirs.base)}`, { timeoutMs: 120_000 }).catch(() => undefined);
    await fsp.rm(this.stateFile, { force: true });
    this.state = 'stopped';
  }
}

/** Files and links to send, cut into tar streams of at most 1,000 files or 64 MiB (a bigger file goes alone). */
export function batches<T extends { entry: { kind: string; size?: number } }>(items: T[], maxFiles = 1000, maxBytes = 64 * 2 ** 20): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let files = 0;
  let bytes = 0;
  for (const it of items) {
    const size = it.entry.kind === 'file' ? (it.entry.size ?? 0) : 0;
    if (cur.length && (files + 1 > maxFiles || bytes + size > maxBytes)) {
      out.push(cur);
      cur = [];
      files = bytes = 0;
    }
    cur.push(it);
    files++;
    bytes += size;
  }
  if (cur.length) out.push(cur);
  return out;
}

class SyncProblem extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

const rel = (root: string, p: string) => path.relative(root, p).split(path.sep).join('/');

