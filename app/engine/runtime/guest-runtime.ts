import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { VmStatus } from '../../contract/contract.js';
import { DockerApi } from '../docker/docker-api.js';
import type { RunningVm, SshEndpoint } from '../drivers/driver.js';
import { BerthError } from '../../contract/errors.js';
import { DockerSocketForward, GUEST_DOCKER_SOCKET, pingDocker } from '../forward/docker-socket.js';
import type { DockerSocketListener } from '../forward/docker-socket-listener.js';
import { makeBindCheck } from '../forward/docker-request-guard.js';
import { PortManager, type PortView } from '../forward/port-manager.js';
import { busyReason } from './busy-reason.js';
import { startHostServices, type HostServices } from './host-services.js';
import type { GuestKeys } from '../../base/ssh-keys.js';
import { setClock, systemLog } from '../guest/queries.js';
import { GuestSession } from '../guest/session.js';
import { GuestDiskUsage } from './disk-usage.js';
import type { InstancePaths } from '../../base/paths.js';
import { sleep } from '../../base/process-util.js';
import type { Settings } from '../settings/schema.js';
import { ChangeNotifier } from '../share/change-notifier.js';
import { ShareManager, type ShareView } from '../share/share-manager.js';
import { SyncManager } from '../share/sync-manager.js';
import type { SyncConflictView, SyncView } from '../share/sync-session.js';
import type { SharePlan } from '../share/virtiofs.js';
import { bringUpShares } from './shares-up.js';
import type { StartPhase } from '../../contract/vm-states.js';

/**
 * Everything that lives on one connected guest session: the shared folders
 * and their change notifier, the synced folders, the docker socket forward
 * and the port forwards. Each part, once started, puts how to stop it on one
 * last-in-first-out list, so a stop, a crash and a failed start all take
 * them down in the reverse order they came up, and only what came up.
 */
export interface RuntimeOptions {
  /** Where the guest's sshd answers, and the keys (ours, and its pinned host key). */
  endpoint: SshEndpoint;
  keys: Pick<GuestKeys, 'clientPrivate' | 'hostPublic'>;
  vm: RunningVm;
  paths: InstancePaths;
  log: Logger;
  /** The settings as they are now (shares, sync, ports change while running). */
  settings: () => Settings;
  /** Which shares are virtio-fs devices of this VM (absent: all reverse sshfs). */
  sharePlan?: SharePlan;
  /** The host's docker socket (the engine's: it outlives this session). */
  dockerSocket: DockerSocketListener;
  /** The guest's address for the host, which the engine relays to the host's loopback (absent: the network reaches it). */
  hostRelay?: string;
}

const RUNTIME_EVENTS = ['session', 'ports', 'shares', 'sync', 'syncConflict'] as const;

/** The parts in the order they come up; teardown runs the other way. */
export type RuntimePart = 'session' | 'host' | 'shares' | 'sync' | 'socket' | 'ports';
const ORDER: RuntimePart[] = ['session', 'host', 'shares', 'sync', 'socket', 'ports'];

export interface RuntimeEvents {
  session: [{ state: string; at: string }];
  ports: [PortView[]];
  shares: [ShareView[]];
  sync: [SyncView[]];
  syncConflict: [{ hostPath: string; conflict: SyncConflictView }];
}

export class GuestRuntime extends EventEmitter<RuntimeEvents> {
  private readonly undo: { part: RuntimePart; stop: () => Promise<void> | void }[] = [];
  private forward?: DockerSocketForward;
  private ports?: PortManager;
  private shares?: ShareManager;
  private notifier?: ChangeNotifier;
  private sync?: SyncManager;
  private host?: HostServices;
  /** The data disk's use as the guest's df says it (status asks it, at most every few seconds). */
  readonly disk: GuestDiskUsage;
  readonly session: GuestSession;

  constructor(private readonly o: RuntimeOptions) {
    super();
    const { vm } = o;
    const session = new GuestSession({
      host: o.endpoint.host,
      port: o.endpoint.port,
      privateKey: o.keys.clientPrivate,
      hostPublicKey: o.keys.hostPublic,
      log: o.log,
      vmAlive: () => vm.alive(),
    });
    this.session = session;
    this.disk = new GuestDiskUsage(session);
    session.on('state', (state) => this.emit('session', { state, at: new Date().toISOString() }));
    // After a reconnect or a host sleep the guest's clock is behind.
    session.on('reconnected', () => void this.syncClock());
    session.on('resumed', () => void this.syncClock());
    this.undo.push({ part: 'session', stop: () => session.close() });
  }

  /** Pass every runtime event on to `to` (the engine, whose events the contract carries). */
  relayTo(to: EventEmitter<any>): void {
    const from = this as EventEmitter;
    const sink = to as EventEmitter;
    for (const event of RUNTIME_EVENTS) from.on(event, (...args: unknown[]) => sink.emit(event, ...args));
  }

  /** The first ssh connection; `bootFailed` throws when the VM died meanwhile. */
  async connect(timeoutMs: number, bootFailed: () => void): Promise<void> {
    await this.session.connect(timeoutMs, bootFailed);
    void this.syncClock();
  }

  /**
   * Bring everything up on the connected session, in order: shares mount
   * while dockerd starts; once dockerd answers and the shares are in place,
   * the synced folders catch up, then the socket opens (so `docker run -v
   * $PWD:/src` right after start sees them), then ports and the change
   * notifier follow the guest.
   */
  async bringUp(o: {
    dockerTimeoutMs: number;
    syncTimeoutMs: number;
    /** Throws when the VM died meanwhile. */
    bootFailed: () => void;
    progress: (phase: StartPhase, message: string) => void;
    reached: (mark: 'dockerMs' | 'sharesMs' | 'socketMs') => void;
  }): Promise<void> {
    const { session } = this;
    const hostReady = this.startHostServices();
    const sharesMounted = this.mountShares();
    o.progress('docker', 'waiting for dockerd');
    const deadline = Date.now() + o.dockerTimeoutMs;
    while (!(await pingDocker(session))) {
      o.bootFailed();
      if (Date.now() > deadline) {
        const log = await systemLog(session, 20, { match: 'dockerd', timeoutMs: 5000 }).catch(() => undefined);
        throw new BerthError(
          'DOCKER_TIMEOUT',
          'dockerd in the VM did not become ready in time',
          "The lines below are dockerd's last log lines; `berth logs --guest` has more. `berth restart` tries again.",
          log,
        );
      }
      await sleep(200);
    }
    o.reached('dockerMs');
    if (this.sharesMounting) o.progress('shares', 'mounting the shared folders');
    await sharesMounted;
    await this.startSync(o.syncTimeoutMs);
    o.reached('sharesMs');
    // A container run right after the start reaches host.docker.internal.
    await hostReady;
    o.progress('socket', `forwarding the docker socket at ${this.o.paths.dockerSocket}`);
    await this.openSocket();
    o.reached('socketMs');
    this.startPorts();
    this.startChangeNotifier();
  }

  /**
   * Mount the shared folders (they are in place before the socket opens, so
   * `docker run -v $PWD:/src` right after start sees them). Resolves when
   * the first mounts are done; failures are logged, never thrown.
   */
  private mountShares(): Promise<void> {
    const up = bringUpShares({
      session: this.session,
      log: this.o.log,
      vm: this.o.vm,
      settings: this.o.settings,
      sharePlan: this.o.sharePlan,
      dockerApi: this.dockerApi(),
      changed: (list) => {
        this.emit('shares', list);
        this.sync?.sharesChanged();
      },
    });
    this.notifier = up.notifier;
    this.shares = up.shares;
    this.undo.push({
      part: 'shares',
      stop: async () => {
        this.notifier = undefined;
        this.shares = undefined;
        await up.stop();
        this.emit('shares', []);
      },
    });
    return up.mounted;
  }

  /** Whether some share is still mounting (for the start's progress). */
  get sharesMounting(): boolean {
    return !!this.shares?.list().some((x) => x.state === 'mounting');
  }

  /**
   * Synced folders: those synced before are brought up to date and their
   * guest copies mounted; first copies go on in the background. Bounded by
   * `timeoutMs`: a slow guest must not hold the start forever.
   */
  private async startSync(timeoutMs: number): Promise<void> {
    const sync = new SyncManager({
      session: this.session,
      log: this.o.log,
      stateDir: path.join(this.o.paths.dir, 'sync'),
      syncs: () => this.o.settings().sync,
      shares: () => this.o.settings().shares,
      shareMounted: (g) => (this.shares?.list() ?? []).some((x) => x.guestPath === g && x.state === 'mounted'),
    });
    sync.on('change', (list) => this.emit('sync', list));
    sync.on('conflict', (c) => this.emit('syncConflict', c));
    this.sync = sync;
    this.undo.push({
      part: 'sync',
      stop: async () => {
        this.sync = undefined;
        await sync.stop().catch(() => undefined);
        this.emit('sync', []);
      },
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      sync.start().catch((err: Error) => this.o.log.error({ err: err.message }, 'synced folders failed')),
      new Promise((r) => (timer = setTimeout(r, timeoutMs))),
    ]);
    if (timer) clearTimeout(timer);
  }

  /** What containers wrote in synced folders reaches the host (before a stop). */
  async flushSync(timeoutMs: number): Promise<void> {
    if (this.sync && this.session.currentState === 'connected') await this.sync.flush(timeoutMs);
  }

  /**
   * dockerd for the engine's own clients (port watcher, change notifier,
   * idle check): a channel straight to the guest's socket, so they are not
   * counted as someone using the host's docker socket.
   */
  dockerApi(): DockerApi {
    return new DockerApi(() => this.session.openStreamLocal(GUEST_DOCKER_SOCKET));
  }

  /** The host's docker socket, every connection a channel to the guest's dockerd. */
  private async openSocket(): Promise<void> {
    const listener = this.o.dockerSocket;
    const forward = new DockerSocketForward(
      this.session,
      this.o.log,
      makeBindCheck(
        () => this.o.settings().shares.map((x) => x.guestPath ?? x.hostPath),
        (p) => fs.existsSync(p),
      ),
    );
    await listener.listen();
    listener.attach((sock) => {
      this.ports?.dockerInUse();
      forward.handle(sock);
    });
    this.forward = forward;
    this.undo.push({
      part: 'socket',
      stop: () => {
        // New connections wait (the engine either wakes the VM or closes the socket).
        listener.detach();
        this.forward = undefined;
        forward.close();
      },
    });
  }

  /** The host's SSH agent and, where the engine relays it, the host's loopback (host-services.ts); bounded, never thrown. */
  private startHostServices(): Promise<void> {
    const host = startHostServices(this.session, this.o.log, this.o.hostRelay);
    this.host = host;
    this.undo.push({ part: 'host', stop: () => host.stop() });
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([host.ready, new Promise<void>((r) => (timer = setTimeout(r, 30_000)))]).finally(() => clearTimeout(timer));
  }

  /** Published ports follow the guest from now on (Docker events + socket table + manual). */
  private startPorts(): void {
    const ports = new PortManager(this.session, this.dockerApi(), this.o.log, () => {
      const s = this.o.settings();
      return { ports: s.ports, portBind: s.portBind };
    });
    ports.on('change', (list) => this.emit('ports', list));
    this.ports = ports;
    this.undo.push({
      part: 'ports',
      stop: async () => {
        this.ports = undefined;
        await ports.stop().catch(() => undefined);
        this.emit('ports', []);
      },
    });
    ports.start();
  }

  /** Host edits in shared folders reach file watchers in containers from now on. */
  private startChangeNotifier(): void {
    this.notifier?.start();
  }

  /** Why the VM cannot rest now (runtime/busy-reason.ts), or undefined when nothing is in use. */
  busyReason(): Promise<string | undefined> {
    return busyReason({
      dockerConnections: this.o.dockerSocket.active,
      forwardedConnections: this.ports?.openConnections ?? 0,
      docker: this.dockerApi(),
      session: this.session,
    });
  }

  /** Set the guest's clock from the host's (after boot, and after the host slept). */
  async syncClock(): Promise<void> {
    await setClock(this.session, new Date()).catch((err: Error) => {
      this.o.log.debug({ err: err.message }, 'clock sync failed');
    });
  }

  /** The guest's system log (sshd, dockerd), the last `lines` lines. */
  async guestLogs(lines: number): Promise<string[]> {
    return (await systemLog(this.session, lines)).split('\n').filter(Boolean);
  }

  /** Stop the parts that came up after `part`, newest first; `part` itself stays. */
  async unwindAbove(part: RuntimePart): Promise<void> {
    const keep = ORDER.indexOf(part);
    while (this.undo.length && ORDER.indexOf(this.undo.at(-1)!.part) > keep) await this.undo.pop()!.stop();
  }

  /** Stop everything, newest first, the session last. */
  async close(): Promise<void> {
    while (this.undo.length) await this.undo.pop()!.stop();
  }

  /** Apply changed settings to what runs. */
  async settingsChanged(changed: string[]): Promise<void> {
    if (changed.includes('ports') || changed.includes('portBind')) await this.refresh('ports');
    if (changed.includes('shares')) await this.refresh('shares');
    if (changed.includes('sync') || changed.includes('shares')) await this.refresh('sync');
  }

  /** One part reads its settings again (after an edit). */
  async refresh(part: 'ports' | 'shares' | 'sync'): Promise<void> {
    if (part === 'ports') await this.ports?.refresh();
    else if (part === 'shares') await this.shares?.refresh();
    else await this.sync?.refresh();
  }

  portsList(): PortView[] {
    return this.ports?.list() ?? [];
  }

  sharesList(): ShareView[] {
    return this.shares?.list() ?? [];
  }

  syncList(): SyncView[] {
    return this.sync?.list() ?? [];
  }

  /** The parts of the engine's status that come from here; the guest's df joins the host's view of the `disk`. */
  status(disk?: VmStatus['disk']): Pick<VmStatus, 'session' | 'forward' | 'sshAgent' | 'hostLoopback' | 'shares' | 'sync'> {
    if (disk) Object.assign(disk, this.disk.view());
    const st: Pick<VmStatus, 'session' | 'forward' | 'sshAgent' | 'hostLoopback' | 'shares' | 'sync'> = {
      session: { state: this.session.currentState, connects: this.session.connects },
      ...this.host?.status(),
    };
    if (this.forward) st.forward = { active: this.forward.active, total: this.forward.total, failed: this.forward.failed };
    if (this.shares) st.shares = this.shares.list();
    if (this.sync) st.sync = this.sync.list();
    return st;
  }
}
