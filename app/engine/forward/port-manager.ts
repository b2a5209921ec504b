import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { PortViewWire } from '../../contract/contract.js';
import type { DockerApi } from '../docker/docker-api.js';
import type { GuestSession } from '../guest/session.js';
import { DockerPortWatcher, type PublishedPort } from './docker-port-watcher.js';
import { GuestSocketWatcher } from './guest-socket-watcher.js';
import { PortForward, sameBinding, specKey, type ForwardSpec } from './port-forward.js';
import { isLoopback, isWildcard, type ListeningSocket } from './proc-net.js';
import { compareText } from '../../base/text-order.js';

export type PortBind = 'loopback' | 'all';

export interface ManualPort {
  hostPort: number;
  guestPort: number;
  proto: 'tcp' | 'udp';
  hostIp?: string;
}

/** What the API and `berth ports` show for one forwarded port: the wire's shape (contract.ts holds the schema). */
export type PortView = PortViewWire;

/** The guest's own sshd: never forwarded. */
const GUEST_SSH_PORT = 22;
/**
 * The guest's DNS server for containers (vm-images/rootfs/etc/berth/run-dns:
 * dnsmasq on the guest's own address, not a wildcard): never forwarded
 * either. It was: the host's localhost:53 taken by Berth (as root, or on
 * macOS where any user may bind it), or a conflict with the host's own
 * resolver retried every 2 s. A container's published 53 (docker-proxy on
 * a wildcard or a loopback address, and Docker's events) still is.
 */
const GUEST_DNS_PORT = 53;

/** A guest listener that is one of the guest's own services. */
function guestOwn(s: ListeningSocket): boolean {
  if (s.proto === 'tcp' && s.port === GUEST_SSH_PORT) return true;
  return s.port === GUEST_DNS_PORT && !isWildcard(s.ip) && !isLoopback(s.ip);
}
const LOOPBACK = ['127.0.0.1', '::1'];
const ALL = ['0.0.0.0', '::'];

/** Host addresses for a guest binding: loopback stays loopback; the rest follows the setting. */
export function hostIpsFor(guestIp: string, bind: PortBind): string[] {
  if (isLoopback(guestIp)) return LOOPBACK;
  return bind === 'all' ? ALL : LOOPBACK;
}

/** Where the guest end of a forward connects for a given guest binding. */
export function guestTarget(guestIp: string): string {
  if (isWildcard(guestIp) || guestIp === '::ffff:0.0.0.0') return '127.0.0.1';
  return guestIp.startsWith('::ffff:') ? guestIp.slice(7) : guestIp;
}

/** Merge the three sources: manual over docker over the socket table. */
export function desiredForwards(guest: ListeningSocket[], docker: PublishedPort[], manual: ManualPort[], bind: PortBind): Map<string, ForwardSpec> {
  const out = new Map<string, ForwardSpec>();
  // Several bindings of one port (0.0.0.0 and ::, or a loopback and a
  // wildcard) become one forward; the widest binding decides.
  const rank = (ip: string) => (isWildcard(ip) ? 2 : isLoopback(ip) ? 0 : 1);
  const bestGuest = new Map<string, ListeningSocket>();
  for (const s of guest) {
    if (guestOwn(s)) continue;
    const k = specKey({ proto: s.proto, hostPort: s.port });
    const cur = bestGuest.get(k);
    if (!cur || rank(s.ip) > rank(cur.ip) || (rank(s.ip) === rank(cur.ip) && s.family === 4 && cur.family === 6)) bestGuest.set(k, s);
  }
  for (const [k, s] of bestGuest) {
    out.set(k, {
      proto: s.proto,
      hostPort: s.port,
      hostIps: hostIpsFor(s.ip, bind),
      guestIp: guestTarget(s.ip),
      guestPort: s.port,
      source: 'guest',
    });
  }
  const bestDocker = new Map<string, PublishedPort>();
  for (const p of docker) {
    const k = specKey(p);
    const cur = bestDocker.get(k);
    if (!cur || rank(p.hostIp) > rank(cur.hostIp)) bestDocker.set(k, p);
  }
  for (const [k, p] of bestDocker) {
    out.set(k, {
      proto: p.proto,
      hostPort: p.hostPort,
      hostIps: hostIpsFor(p.hostIp, bind),
      guestIp: guestTarget(p.hostIp),
      guestPort: p.hostPort,
      source: 'docker',
      container: { id: p.containerId, name: p.containerName, port: p.containerPort },
    });
  }
  for (const m of manual) {
    out.set(specKey(m), {
      proto: m.proto,
      hostPort: m.hostPort,
      hostIps: m.hostIp ? [m.hostIp] : LOOPBACK,
      guestIp: '127.0.0.1',
      guestPort: m.guestPort,
      source: 'manual',
    });
  }
  return out;
}

/**
 * Keeps the host's listeners equal to what the guest publishes: Docker's
 * events, the guest's socket table and the user's manual forwards, merged.
 * Changes are applied one reconcile at a time; ports that conflict with a
 * host process are retried every 2 s until they free up or go away.
 */
export class PortManager extends EventEmitter<{ change: [PortView[]] }> {
  private forwards = new Map<string, PortForward>();
  private guestWatcher: GuestSocketWatcher;
  private dockerWatcher: DockerPortWatcher;
  private queue: Promise<void> = Promise.resolve();
  private pending = false;
  private retryTimer?: NodeJS.Timeout;
  private running = false;

  constructor(
    private readonly session: GuestSession,
    docker: DockerApi,
    private readonly log: Logger,
    private readonly settings: () => { ports: ManualPort[]; portBind: PortBind },
    watchIntervalSec = 0.5,
  ) {
    super();
    this.guestWatcher = new GuestSocketWatcher(session, log, watchIntervalSec);
    this.dockerWatcher = new DockerPortWatcher(docker, log);
    this.guestWatcher.on('change', () => this.schedule());
    this.dockerWatcher.on('change', () => this.schedule());
  }

  /** Docker is in use (a connection to its socket): the guest's socket table is looked at often for a while. */
  dockerInUse(): void {
    this.guestWatcher.poke();
  }

  /** TCP connections open through the forwards now (the idle rest waits for them). */
  get openConnections(): number {
    let n = 0;
    for (const f of this.forwards.values()) n += f.connections;
    return n;
  }

  start(): void {
    this.running = true;
    this.guestWatcher.start();
    this.dockerWatcher.start();
    this.schedule();
  }

  /** Re-apply settings (manual ports, bind address) now. */
  refresh(): Promise<void> {
    return this.schedule();
  }

  private schedule(): Promise<void> {
    if (this.pending) return this.queue;
    this.pending = true;
    this.queue = this.queue.then(async () => {
      this.pending = false;
      if (this.running) await this.reconcile();
    });
    return this.queue;
  }

  private async reconcile(): Promise<void> {
    const s = this.settings();
    const want = desiredForwards(this.guestWatcher.current, this.dockerWatcher.ports, s.ports, s.portBind);
    let changed = false;
    for (const [k, f] of this.forwards) {
      if (!want.has(k)) {
        this.forwards.delete(k);
        await f.close();
        this.log.info({ port: k }, 'port released');
        changed = true;
      }
    }
    for (const [k, spec] of want) {
      const f = this.forwards.get(k);
      if (f && sameBinding(f.spec, spec)) {
        if (f.spec.source !== spec.source || f.spec.container?.id !== spec.container?.id) changed = true;
        f.spec = spec;
        continue;
      }
      if (f) await f.close();
      const nf = new PortForward(spec, this.session, this.log);
      this.forwards.set(k, nf);
      await nf.open();
      this.log.info({ port: k, state: nf.state, error: nf.error, to: `${spec.guestIp}:${spec.guestPort}` }, 'port forward');
      changed = true;
    }
    this.armRetry();
    if (changed) this.emit('change', this.list());
  }

  private armRetry(): void {
    const waiting = [...this.forwards.values()].some((f) => f.state !== 'active');
    if (waiting && !this.retryTimer && this.running) {
      this.retryTimer = setInterval(() => {
        this.queue = this.queue.then(() => this.retry());
      }, 2000);
      this.retryTimer.unref();
    } else if (!waiting && this.retryTimer) {
      clearInterval(this.retryTimer);
      this.retryTimer = undefined;
    }
  }

  private async retry(): Promise<void> {
    let changed = false;
    for (const f of this.forwards.values()) {
      if (f.state === 'active') continue;
      const before = `${f.state}|${f.error}`;
      await f.open();
      if (`${f.state}|${f.error}` !== before) {
        this.log.info({ port: specKey(f.spec), state: f.state }, 'port forward retried');
        changed = true;
      }
    }
    this.armRetry();
    if (changed) this.emit('change', this.list());
  }

  list(): PortView[] {
    return [...this.forwards.values()]
      .map((f) => {
        const v: PortView = {
          proto: f.spec.proto,
          hostPort: f.spec.hostPort,
          hostIps: f.state === 'active' ? f.bound : f.spec.hostIps,
          guestIp: f.spec.guestIp,
          guestPort: f.spec.guestPort,
          source: f.spec.source,
          state: f.state,
          connections: f.connections,
        };
        if (f.spec.container) v.container = f.spec.container;
        if (f.error) v.error = f.error;
        if (f.holder) v.holder = f.holder;
        return v;
      })
      .sort((a, b) => a.hostPort - b.hostPort || compareText(a.proto, b.proto));
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.retryTimer = undefined;
    this.guestWatcher.stop();
    this.dockerWatcher.stop();
    await this.queue.catch(() => undefined);
    const all = [...this.forwards.values()];
    this.forwards.clear();
    await Promise.all(all.map((f) => f.close()));
  }
}
