/**
 * host.docker.internal where the guest's network does not reach the host's
 * loopback (vfkit's NAT, Hyper-V's switch; QEMU's user networking does, at
 * 10.0.2.2). The guest gets an address of its own for the host
 * (HOST_RELAY_ADDRESS, on its lo): its /etc/hosts, the containers' DNS and
 * dockerd's host-gateway name it as on QEMU. A small relay in the guest
 * (programs/host-relay.pl) takes every TCP connection made to that address,
 * from the guest or a container, and hands it to a unix socket the guest's
 * sshd listens on for us (guest-listener.ts) after two bytes naming the
 * port it was made to; the engine joins the channel to the host's
 * 127.0.0.1 at that port (::1 when nothing answers there), the way Docker
 * Desktop's host.docker.internal reaches services on localhost. The relay
 * ends with its ssh channel and is started again on the next connection;
 * when it stops on its own (killed in the guest, out of memory) it is
 * started again after a wait that doubles while it keeps failing.
 *
 * What a guest can do with it: open TCP connections to the host's loopback
 * ports while the VM runs, as QEMU's user networking already allows
 * (SECURITY.md); nothing else on the host, no other address.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import type { AcceptConnection, Channel } from 'ssh2';
import type { ExecChannel, GuestSession } from '../guest/session.js';
import { perlCommand } from '../guest/programs.js';
import { bridge } from './bridge.js';
import { GuestListener } from './guest-listener.js';

export const GUEST_RELAY_SOCKET = '/run/berth/host-relay.sock';
/**
 * Where the relay listens in the guest: iptables sends every connection to
 * the host's address there. An address of its own (next to
 * HOST_RELAY_ADDRESS, in the same benchmark range), so that every port of
 * the host's address, this one too, is the host's.
 */
export const GUEST_RELAY_LISTEN = { address: '198.19.255.253', port: 1 };
/** At most this many connections to the host open at once. */
const MAX_OPEN = 256;
/** Waits before starting a relay that stopped on its own again: the first, and the longest. */
export const RELAY_RETRY_MS = { first: 1000, max: 60_000 };
/** A relay that listened this long before it stopped is retried after the first wait again. */
const RELAY_STEADY_MS = 30_000;

/** Connect to the host's loopback at `port`: 127.0.0.1, then ::1 when nothing listens there (paused and half-open, as bridge() takes it). */
function connectHostLoopback(port: number): Promise<net.Socket> {
  const tryHost = (host: string) =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection({ host, port, allowHalfOpen: true });
      s.pause();
      s.once('connect', () => {
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', reject);
    });
  return tryHost('127.0.0.1').catch((err: NodeJS.ErrnoException) =>
    err.code === 'ECONNREFUSED' ? tryHost('::1').catch(() => Promise.reject(err)) : Promise.reject(err),
  );
}

export class HostRelay {
  /** For status and logs: where the host is reached from the guest, or why not. */
  view: { address?: string; why?: string } = { why: 'not started yet' };
  private readonly listener: GuestListener;
  private stopped = false;
  private exec?: ExecChannel;
  /** A run between its start and its end: there is never a second one. */
  private running = false;
  private retryMs = RELAY_RETRY_MS.first;
  private retryTimer?: NodeJS.Timeout;
  private readonly restart = () => void this.run();

  constructor(
    private readonly session: GuestSession,
    private readonly address: string,
    private readonly log: Logger,
  ) {
    this.listener = new GuestListener(session, GUEST_RELAY_SOCKET, {
      what: 'host relay',
      maxOpen: MAX_OPEN,
      log,
      onConnection: (accept, reject) => this.serve(accept, reject),
    });
  }

  /** Listen in the guest, then start the relay; resolves once it listens (or failed, which the view says). */
  async start(): Promise<void> {
    this.session.on('reconnected', this.restart);
    await this.listener.start();
    await this.run();
  }

  stop(): void {
    this.stopped = true;
    this.session.off('reconnected', this.restart);
    clearTimeout(this.retryTimer);
    this.listener.stop();
    this.exec?.close();
  }

  /** The guest half, on the current connection: resolves when it says it listens, or when it ends. */
  private async run(): Promise<void> {
    if (this.stopped || this.running) return;
    clearTimeout(this.retryTimer);
    this.running = true;
    let ch: ExecChannel;
    try {
      ch = await this.session.openExec(perlCommand('host-relay.pl', [this.address, GUEST_RELAY_LISTEN.address, GUEST_RELAY_LISTEN.port, GUEST_RELAY_SOCKET]));
    } catch (err) {
      this.running = false;
      this.view = { why: `the relay did not start in the guest (${(err as Error).message})` };
      this.log.warn({ err: (err as Error).message }, 'host relay: could not start it in the guest');
      return this.retryLater();
    }
    this.exec = ch;
    let said = '';
    let listening = false;
    let listeningSince = 0;
    await new Promise<void>((resolve) => {
      ch.stderr.on('data', (d: Buffer) => {
        said = `${said}${d.toString()}`.slice(-2000);
        if (listening) return void this.log.debug({ stderr: d.toString().trim() }, 'host relay: the guest half says');
        if (!/^listening$/m.test(said)) return;
        listening = true;
        listeningSince = Date.now();
        this.view = { address: this.address };
        this.log.info({ guest: this.address }, "host relay: the guest reaches the host's loopback");
        resolve();
      });
      ch.on('data', () => undefined);
      ch.on('close', () => {
        if (this.exec === ch) this.exec = undefined;
        this.running = false;
        if (!this.stopped) {
          // With the ssh connection (a reconnect starts it again), or on its own: say why.
          const why =
            said
              .replace(/^listening$/m, '')
              .trim()
              .split('\n')
              .at(-1) || `it exited (${String(ch.exitCode)})`;
          this.view = { why: `the relay in the guest stopped: ${why}` };
          this.log.warn({ stderr: said.trim() }, 'host relay: the guest half stopped');
          if (listening && Date.now() - listeningSince >= RELAY_STEADY_MS) this.retryMs = RELAY_RETRY_MS.first;
          this.retryLater();
        }
        resolve();
      });
    });
  }

  /**
   * Start it again after the current wait, which then doubles. With the ssh
   * connection down there is nothing to wait for: 'reconnected' starts it.
   */
  private retryLater(): void {
    if (this.stopped || this.session.currentState !== 'connected') return;
    clearTimeout(this.retryTimer);
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, RELAY_RETRY_MS.max);
    this.view = { why: `${this.view.why ?? 'the relay stopped'}; starting it again in ${Math.max(1, Math.round(wait / 1000))} s` };
    this.retryTimer = setTimeout(() => void this.run(), wait);
    this.retryTimer.unref();
  }

  /** One connection from the guest: the port it was for (2 bytes), then the host's loopback at that port. */
  private serve(accept: AcceptConnection<Channel>, reject: () => void): void {
    if (this.stopped) return reject();
    const ch = accept();
    let head = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      if (head.length < 2) return;
      ch.off('data', onData);
      ch.pause();
      const port = head.readUInt16BE(0);
      const rest = head.subarray(2);
      if (port === 0) return void ch.destroy();
      connectHostLoopback(port).then(
        (up) => {
          if (rest.length) up.write(rest);
          bridge(up, ch);
        },
        (err: Error) => {
          // Nothing listens there: the guest's client sees the connection close, as with a refused port.
          this.log.debug({ port, err: err.message }, 'host relay: nothing answered on the host');
          ch.destroy();
        },
      );
    };
    ch.on('data', onData);
    ch.on('error', () => ch.destroy());
  }
}
