/**
 * A unix socket in the guest whose connections come to the engine. The
 * guest's sshd listens at the path for us (OpenSSH's streamlocal forward:
 * owner-only, StreamLocalBindMask's default, and a stale socket from an
 * earlier connection is replaced, StreamLocalBindUnlink); each connection
 * to it comes back as an ssh channel, handed to `onConnection`. After a
 * reconnect the forward is asked for again on the new connection. The SSH
 * agent (ssh-agent-forward.ts) and the host's loopback (host-relay.ts) are
 * served this way.
 */
import type { Logger } from 'pino';
import type { AcceptConnection, Channel, Client } from 'ssh2';
import type { GuestSession } from '../guest/session.js';

export interface GuestListenerOptions {
  /** For log lines: "SSH agent". */
  what: string;
  /** At most this many connections open at once: a guest that opens more gets refused. */
  maxOpen: number;
  log: Logger;
  /** One guest connection: accept it (and use the channel) or reject it. */
  onConnection: (accept: AcceptConnection<Channel>, reject: () => void) => void;
  /** Each time the guest's sshd said whether it listens (err: it would not). */
  onBound?: (err?: Error) => void;
}

type Route = (accept: AcceptConnection<Channel>, reject: () => void) => void;
const routes = new WeakMap<Client, Map<string, Route>>();

/**
 * One handler per ssh connection for every socket's connections: each goes
 * to the listener of its path, and one for a path nobody listens at (the
 * guest's sshd is the guest's: it may send anything) is refused at once.
 */
function routesOf(c: Client): Map<string, Route> {
  let map = routes.get(c);
  if (!map) {
    const m = new Map<string, Route>();
    map = m;
    routes.set(c, m);
    c.on('unix connection', (info, accept, reject) => {
      const route = m.get(info.socketPath);
      if (route) route(accept, reject);
      else reject();
    });
  }
  return map;
}

export class GuestListener {
  private readonly bound = new WeakSet<Client>();
  private stopped = false;
  private openCount = 0;
  private readonly rebind = () => void this.bind();

  constructor(
    private readonly session: GuestSession,
    readonly guestPath: string,
    private readonly o: GuestListenerOptions,
  ) {}

  /** Resolves once the guest's sshd answered the first request (either way). */
  async start(): Promise<void> {
    this.session.on('reconnected', this.rebind);
    await this.bind();
  }

  stop(): void {
    this.stopped = true;
    this.session.off('reconnected', this.rebind);
  }

  /** Ask the guest's sshd to listen at the path on the current connection (once per connection). */
  private async bind(): Promise<void> {
    if (this.stopped) return;
    const { log, what } = this.o;
    let c: Client;
    try {
      c = await this.session.ready(10_000);
    } catch (err) {
      log.warn({ err: (err as Error).message }, `${what}: no guest connection to listen on`);
      return;
    }
    if (this.bound.has(c) || this.stopped) return;
    this.bound.add(c);
    routesOf(c).set(this.guestPath, (accept, reject) => {
      if (this.stopped || this.openCount >= this.o.maxOpen) return reject();
      this.o.onConnection(() => {
        const ch = accept();
        this.openCount++;
        ch.once('close', () => this.openCount--);
        return ch;
      }, reject);
    });
    await new Promise<void>((resolve) => {
      try {
        c.openssh_forwardInStreamLocal(this.guestPath, (err) => {
          if (err) log.warn({ err: err.message, guest: this.guestPath }, `${what}: the guest would not listen at its socket`);
          this.o.onBound?.(err ?? undefined);
          resolve();
        });
      } catch (err) {
        // The connection went between ready() and the request; 'reconnected' binds again.
        log.debug({ err: (err as Error).message }, `${what}: the connection went before the forward was asked for`);
        resolve();
      }
    });
  }
}
