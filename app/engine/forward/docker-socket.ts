import fs from 'node:fs';
import net from 'node:net';
import type { Logger } from 'pino';
import type { GuestSession } from '../guest/session.js';
import { bridge } from './bridge.js';
import { DockerRequestGuard, type BindCheck } from './docker-request-guard.js';
import { listenPrivate, prepareSocketPath } from './unix-socket.js';

export const GUEST_DOCKER_SOCKET = '/var/run/docker.sock';

/**
 * The host's docker socket. Every connection is one ssh channel
 * (openssh_forwardOutStreamLocal) to the guest's /var/run/docker.sock and
 * the bytes pass untouched both ways, so hijacked and streamed requests
 * (attach, exec, logs -f, build) work. Half-closes are carried across: the
 * docker CLI closes its write side after stdin ends and still reads.
 */
export class DockerSocketForward {
  private server?: net.Server;
  private conns = new Set<net.Socket>();
  total = 0;
  failed = 0;

  refused = 0;

  constructor(
    readonly socketPath: string,
    private readonly session: GuestSession,
    private readonly log: Logger,
    /** Refuses binds of host folders that are not shared (Docker Desktop's "Mounts denied"). */
    private readonly bindCheck?: BindCheck,
  ) {}

  get active(): number {
    return this.conns.size;
  }

  async listen(): Promise<void> {
    await prepareSocketPath(this.socketPath, 'docker socket');
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) => this.onConnection(sock));
    await listenPrivate(server, this.socketPath);
    this.server = server;
  }

  private onConnection(sock: net.Socket): void {
    this.total++;
    this.conns.add(sock);
    sock.on('close', () => this.conns.delete(sock));
    sock.on('error', () => undefined);
    this.session.openStreamLocal(GUEST_DOCKER_SOCKET).then(
      (ch) => {
        if (sock.destroyed) return void ch.close();
        if (!this.bindCheck) return bridge(sock, ch);
        const guard = new DockerRequestGuard(this.bindCheck, (response) => {
          this.refused++;
          this.log.info('refused a container bind-mounting a folder that is not shared');
          sock.unpipe(guard);
          ch.destroy();
          sock.end(response);
        });
        bridge(sock, ch, guard);
      },
      (err: Error) => {
        this.failed++;
        this.log.warn({ err: err.message }, 'docker socket: cannot open a channel to the guest');
        sock.destroy();
      },
    );
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.conns) s.destroy();
    if (server) await new Promise<void>((r) => server.close(() => r()));
    if (process.platform !== 'win32') fs.rmSync(this.socketPath, { force: true });
  }
}

/** GET /_ping through a fresh channel: true once dockerd answers 200 OK. */
export async function pingDocker(session: GuestSession, timeoutMs = 5000): Promise<boolean> {
  let ch;
  try {
    ch = await session.openStreamLocal(GUEST_DOCKER_SOCKET);
  } catch {
    return false;
  }
  const channel = ch;
  return new Promise((resolve) => {
    let head = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      channel.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    channel.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      if (head.includes('\r\n')) done(/^HTTP\/1\.[01] 200/.test(head));
    });
    channel.on('error', () => done(false));
    channel.on('close', () => done(false));
    channel.write('GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n');
  });
}
