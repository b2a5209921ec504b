import fs from 'node:fs';
import net from 'node:net';
import type { Logger } from 'pino';
import { listenPrivate, prepareSocketPath } from './unix-socket.js';

/** Who serves a connection to the host's docker socket while the VM runs. */
export type DockerRoute = (sock: net.Socket) => void;

/**
 * The host's docker socket itself, which outlives one VM run: while the VM
 * runs each connection goes to the route (the forward to the guest's
 * dockerd); while it rests, or is on its way to rest, a connection is held
 * (paused, nothing read) and `wanted` is called so the engine wakes the VM,
 * then served as soon as the route is back. Closed only by a real stop,
 * which ends the connections it still holds.
 */
export class DockerSocketListener {
  private server?: net.Server;
  private route?: DockerRoute;
  private readonly held = new Set<net.Socket>();
  private readonly open = new Set<net.Socket>();
  /** Connections held while the VM rested and served after it woke. */
  heldServed = 0;

  constructor(
    readonly socketPath: string,
    private readonly log: Logger,
    /** A connection arrived with no route: the VM should wake. */
    private readonly wanted: () => void,
  ) {}

  get listening(): boolean {
    return !!this.server;
  }

  /** Connections open now (held ones included): someone is using docker. */
  get active(): number {
    return this.open.size;
  }

  get waiting(): number {
    return this.held.size;
  }

  async listen(): Promise<void> {
    if (this.server) return;
    await prepareSocketPath(this.socketPath, 'docker socket');
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) => this.onConnection(sock));
    await listenPrivate(server, this.socketPath);
    this.server = server;
  }

  private onConnection(sock: net.Socket): void {
    this.open.add(sock);
    sock.on('close', () => {
      this.open.delete(sock);
      this.held.delete(sock);
    });
    sock.on('error', () => undefined);
    if (this.route) return this.route(sock);
    this.held.add(sock);
    this.log.info({ waiting: this.held.size }, 'docker socket: a connection waits for the VM to wake');
    this.wanted();
  }

  /** The VM runs: serve what waited, then every new connection. */
  attach(route: DockerRoute): void {
    this.route = route;
    for (const sock of [...this.held]) {
      this.held.delete(sock);
      if (sock.destroyed) continue;
      this.heldServed++;
      route(sock);
    }
  }

  /** The VM goes away: new connections wait from now on (held, not refused). */
  detach(): void {
    this.route = undefined;
  }

  /** A real stop: no socket, and what waited is ended. */
  async close(): Promise<void> {
    this.route = undefined;
    const server = this.server;
    this.server = undefined;
    for (const s of this.held) s.destroy();
    this.held.clear();
    if (server) await new Promise<void>((r) => server.close(() => r()));
    if (process.platform !== 'win32') fs.rmSync(this.socketPath, { force: true });
  }
}
