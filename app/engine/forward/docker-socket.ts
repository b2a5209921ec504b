import net from 'node:net';
import type { Logger } from 'pino';
import type { GuestSession } from '../guest/session.js';
import { bridge } from './bridge.js';
import { DockerRequestGuard, type BindCheck } from './docker-request-guard.js';
import { DockerSocketListener } from './docker-socket-listener.js';

export const GUEST_DOCKER_SOCKET = '/var/run/docker.sock';

/**
 * Connections to the host's docker socket (docker-socket-listener.ts) on
 * one guest session. Every connection is one ssh channel
 * (openssh_forwardOutStreamLocal) to the guest's /var/run/docker.sock and
 * the bytes pass untouched both ways, so hijacked and streamed requests
 * (attach, exec, logs -f, build) work. Half-closes are carried across: the
 * docker CLI closes its write side after stdin ends and still reads.
 */
export class DockerSocketForward {
  private conns = new Set<net.Socket>();
  total = 0;
  failed = 0;

  refused = 0;

  constructor(
    private readonly session: GuestSession,
    private readonly log: Logger,
    /** Refuses binds of host folders that are not shared (Docker Desktop's "Mounts denied"). */
    private readonly bindCheck?: BindCheck,
  ) {}

  get active(): number {
    return this.conns.size;
  }

  /** Serve one connection (paused, as the listener accepted it). */
  handle(sock: net.Socket): void {
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

  /** The session goes: the connections it carries end. */
  close(): void {
    for (const s of this.conns) s.destroy();
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

/**
 * A listener at `socketPath` whose every connection goes to `session`'s
 * dockerd, for one session's lifetime (tests and the forward bench; the
 * engine keeps its listener across VM runs and attaches each run's forward).
 */
export async function forwardDockerSocket(
  socketPath: string,
  session: GuestSession,
  log: Logger,
  bindCheck?: BindCheck,
): Promise<{ forward: DockerSocketForward; listener: DockerSocketListener; close: () => Promise<void> }> {
  const forward = new DockerSocketForward(session, log, bindCheck);
  const listener = new DockerSocketListener(socketPath, log, () => undefined);
  await listener.listen();
  listener.attach((sock) => forward.handle(sock));
  return {
    forward,
    listener,
    close: async () => {
      forward.close();
      await listener.close();
    },
  };
}
