import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from 'pino';
import type { GuestSession } from '../guest/session.js';
import { bridge } from './bridge.js';
import { findPortHolder, type PortHolder } from './port-holder.js';
import { UdpRelay } from './udp-relay.js';

export type PortSource = 'docker' | 'guest' | 'manual';
export type ForwardState = 'active' | 'conflict' | 'error';

/** One host port carried to one guest address. */
export interface ForwardSpec {
  proto: 'tcp' | 'udp';
  hostPort: number;
  /** Host addresses to listen on (loopback unless the user opted in). */
  hostIps: string[];
  /** Where the guest end connects. */
  guestIp: string;
  guestPort: number;
  source: PortSource;
  container?: { id: string; name: string; port: number };
}

export const specKey = (s: Pick<ForwardSpec, 'proto' | 'hostPort'>) => `${s.proto}/${s.hostPort}`;

/** Same listeners and target: no need to reopen. */
export function sameBinding(a: ForwardSpec, b: ForwardSpec): boolean {
  return a.guestIp === b.guestIp && a.guestPort === b.guestPort && a.hostIps.join() === b.hostIps.join();
}

/** Errors that mean "this address family is not available here", not a conflict. */
const UNAVAILABLE = new Set(['EADDRNOTAVAIL', 'EAFNOSUPPORT']);

/**
 * A forwarded port: host listeners on every address of the spec; each TCP
 * connection is one direct-tcpip channel to the guest, UDP goes through the
 * relay. A port the host already uses is a conflict with the holder named
 * where the OS can tell; it is not retried here (the manager does).
 */
export class PortForward {
  state: ForwardState = 'error';
  error?: string;
  holder?: PortHolder;
  /** Addresses actually listened on. */
  bound: string[] = [];
  connections = 0;
  totalConnections = 0;
  private servers: net.Server[] = [];
  private udpSockets: dgram.Socket[] = [];
  private relay?: UdpRelay;
  private conns = new Set<net.Socket>();

  constructor(
    public spec: ForwardSpec,
    private readonly session: GuestSession,
    private readonly log: Logger,
  ) {}

  async open(): Promise<void> {
    await this.closeListeners();
    this.error = undefined;
    this.holder = undefined;
    const failures: { ip: string; code: string }[] = [];
    for (const ip of this.spec.hostIps) {
      try {
        if (this.spec.proto === 'tcp') await this.listenTcp(ip);
        else await this.listenUdp(ip);
        this.bound.push(ip);
      } catch (err) {
        failures.push({ ip, code: (err as NodeJS.ErrnoException).code ?? String(err) });
      }
    }
    const real = failures.filter((f) => !UNAVAILABLE.has(f.code));
    if (this.bound.length && !real.length) {
      this.state = 'active';
      return;
    }
    await this.closeListeners();
    const inUse = real.find((f) => f.code === 'EADDRINUSE');
    if (inUse) {
      this.state = 'conflict';
      this.holder = await findPortHolder(this.spec.proto, this.spec.hostPort);
      const who = this.holder?.pid ? ` by ${this.holder.command ?? 'pid'} (pid ${this.holder.pid})` : '';
      this.error = `host port ${this.spec.hostPort}/${this.spec.proto} is already in use${who}`;
    } else {
      this.state = 'error';
      const f = real[0] ?? failures[0];
      this.error =
        f?.code === 'EACCES'
          ? `host port ${this.spec.hostPort} needs privileges to bind (ports below 1024 need root on this OS); publish a higher port`
          : `cannot listen on ${f?.ip}:${this.spec.hostPort} (${f?.code ?? 'no address'})`;
    }
  }

  private listenTcp(ip: string): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) => this.onTcp(sock));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: ip, port: this.spec.hostPort, exclusive: true, ipv6Only: ip.includes(':') }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.log.warn({ err: err.message, port: this.spec.hostPort }, 'port listener error'));
        this.servers.push(server);
        resolve();
      });
    });
  }

  private onTcp(sock: net.Socket): void {
    this.connections++;
    this.totalConnections++;
    this.conns.add(sock);
    sock.setNoDelay(true);
    sock.on('error', () => undefined);
    sock.on('close', () => {
      this.connections--;
      this.conns.delete(sock);
    });
    this.session.forwardOut('127.0.0.1', sock.remotePort ?? 0, this.spec.guestIp, this.spec.guestPort).then(
      (ch) => {
        if (sock.destroyed) return void ch.close();
        bridge(sock, ch);
      },
      (err: Error) => {
        this.log.debug({ err: err.message, port: this.spec.hostPort }, 'guest refused the forwarded connection');
        sock.destroy();
      },
    );
  }

  private listenUdp(ip: string): Promise<void> {
    const sock = dgram.createSocket({ type: ip.includes(':') ? 'udp6' : 'udp4', ipv6Only: ip.includes(':') });
    return new Promise((resolve, reject) => {
      // A socket that failed to bind is still open (dgram keeps its handle,
      // net closes a server's): closed here, or each retry of a conflict
      // (every 2 s) held one more descriptor for as long as the engine ran.
      const failed = (err: Error) => {
        sock.close();
        reject(err);
      };
      sock.once('error', failed);
      sock.bind({ address: ip, port: this.spec.hostPort, exclusive: true }, () => {
        sock.off('error', failed);
        sock.on('error', (err) => this.log.warn({ err: err.message, port: this.spec.hostPort }, 'udp listener error'));
        this.relay ??= new UdpRelay(this.session, this.spec.guestIp, this.spec.guestPort, this.log);
        this.relay.attach(sock);
        this.udpSockets.push(sock);
        resolve();
      });
    });
  }

  get datagrams(): number {
    return this.relay?.datagrams ?? 0;
  }

  private async closeListeners(): Promise<void> {
    const servers = this.servers;
    this.servers = [];
    for (const c of this.conns) c.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const s of this.udpSockets) s.close();
    this.udpSockets = [];
    this.relay?.close();
    this.relay = undefined;
    this.bound = [];
  }

  async close(): Promise<void> {
    await this.closeListeners();
  }
}
