import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Logger } from 'pino';
import type { ClientChannel } from 'ssh2';
import { BerthError } from '../../contract/errors.js';
import { sleep } from '../../base/process-util.js';
import { publicKeyBlob } from '../../base/ssh-keys.js';
import { Client } from '../../base/ssh2-parts.js';

const KEEPALIVE_MS = 5000;

/**
 * ssh2 counts a link as dead after keepaliveCountMax unanswered pings and
 * ignores the data that arrives meanwhile. Under a bulk transfer the guest's
 * answer waits behind megabytes of channel data (50 connections x 1 MiB
 * through a TCG guest took 20 s), so a busy link was cut as "dead" and every
 * transfer on it was lost. Traffic from the guest proves it alive: restart
 * ssh2's keepalive countdown (its internal _resetKA, ssh2 is pinned at
 * 1.17.0) at most once a second while data flows.
 */
function sockAliveResetsKeepalive(c: Client, sock: net.Socket): void {
  let last = 0;
  sock.on('data', () => {
    const now = Date.now();
    if (now - last < 1000) return;
    last = now;
    (c as unknown as { _resetKA?: () => void })._resetKA?.();
  });
}

/** Resolves once something on host:port sends an SSH identification line. */
export function waitForBanner(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host, port });
    let got = '';
    const done = (err?: Error) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error('no SSH banner yet')), timeoutMs);
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      got += d;
      if (got.startsWith('SSH-')) done();
      else if (got.length >= 4) done(new Error('not an SSH server'));
    });
    sock.on('error', (e) => done(e));
    sock.on('close', () => done(new Error('closed before the SSH banner')));
  });
}

export interface SessionOptions {
  host: string;
  port: number;
  privateKey: string;
  /** The guest's host key; any other key is refused (pinned). */
  hostPublicKey: string;
  log: Logger;
  /** Asked before each reconnect attempt: is there still a VM to talk to? */
  vmAlive: () => boolean;
}

export type SessionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** An exec channel; `exitCode` is the command's exit status once known (null: ended by a signal). */
export interface ExecChannel extends ClientChannel {
  exitCode?: number | null;
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The one long-lived ssh2 connection to the guest. Keepalives detect a dead
 * link; a lost connection is rebuilt with backoff for as long as the VM
 * lives, and every caller that asks for a channel meanwhile waits for it.
 * Host sleep is noticed by a timer that jumps; the link is then checked at
 * once rather than after the keepalive timeout.
 */
export class GuestSession extends EventEmitter<{
  state: [SessionState];
  reconnected: [];
  resumed: [number];
}> {
  private client?: Client;
  private state: SessionState = 'idle';
  private waiters: { resolve: (c: Client) => void; reject: (e: Error) => void }[] = [];
  private hostBlob: Buffer;
  private hostKeyMismatch = false;
  private clockTimer?: NodeJS.Timeout;
  private reconnecting = false;
  /** Connections made so far (1 = the first). */
  connects = 0;

  constructor(private readonly opts: SessionOptions) {
    super();
    this.hostBlob = publicKeyBlob(opts.hostPublicKey);
  }

  get currentState(): SessionState {
    return this.state;
  }

  private setState(s: SessionState): void {
    if (this.state === s) return;
    this.state = s;
    this.emit('state', s);
  }

  /**
   * One connection attempt. Resolves with a ready client or rejects. While
   * the guest boots, QEMU's user networking accepts connections before sshd
   * (or even the guest's network) is up and then holds them silently, so an
   * attempt first waits briefly for sshd's banner on a plain TCP connection;
   * only a guest that speaks SSH gets the (slower) full handshake.
   */
  private async attempt(readyTimeoutMs: number): Promise<Client> {
    await waitForBanner(this.opts.host, this.opts.port, 1500);
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      // TCP_NODELAY: without it Nagle's algorithm holds each new channel's
      // first exchange for a delayed ACK (~40 ms per docker call).
      const s = net.createConnection({ host: this.opts.host, port: this.opts.port, noDelay: true });
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
    return new Promise((resolve, reject) => {
      const c = new Client();
      let settled = false;
      c.on('ready', () => {
        settled = true;
        resolve(c);
      });
      c.on('error', (err) => {
        if (!settled) {
          settled = true;
          reject(err);
        }
      });
      c.on('close', () => {
        if (!settled) {
          settled = true;
          reject(new Error('connection closed before the handshake'));
        }
      });
      c.connect({
        sock,
        username: 'root',
        privateKey: this.opts.privateKey,
        readyTimeout: readyTimeoutMs,
        keepaliveInterval: KEEPALIVE_MS,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          const ok = key.equals(this.hostBlob);
          if (!ok) this.hostKeyMismatch = true;
          return ok;
        },
      });
      sockAliveResetsKeepalive(c, sock);
    });
  }

  /**
   * Connect, retrying until the guest's sshd answers or `timeoutMs` passes.
   * `stillBooting` is checked between attempts so a VM that died fails fast.
   */
  async connect(timeoutMs: number, stillBooting: () => void = () => undefined): Promise<void> {
    this.setState('connecting');
    const deadline = Date.now() + timeoutMs;
    let lastErr: Error | undefined;
    while (Date.now() < deadline) {
      stillBooting();
      try {
        const c = await this.attempt(Math.min(20000, Math.max(1000, deadline - Date.now())));
        this.adopt(c);
        return;
      } catch (err) {
        lastErr = err as Error;
        if (this.hostKeyMismatch) {
          this.setState('closed');
          throw new BerthError(
            'GUEST_HOST_KEY_MISMATCH',
            'the VM presented an ssh host key other than the one Berth generated for it',
            "Something else answers on the VM's ssh port, or the instance keys were replaced. Stop Berth and check `berth logs --engine`.",
          );
        }
        if (this.state === 'closed') throw new Error('session closed');
        await sleep(150);
      }
    }
    this.setState('idle');
    throw new BerthError(
      'GUEST_TIMEOUT',
      `the VM did not answer on ssh within ${Math.round(timeoutMs / 1000)} s`,
      'The guest may be stuck booting; the serial log below shows how far it got (`berth logs --serial`).',
      lastErr?.message,
    );
  }

  private adopt(c: Client): void {
    this.client = c;
    this.connects++;
    this.setState('connected');
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve(c);
    c.on('error', (err) => this.opts.log.warn({ err: err.message }, 'guest ssh connection error'));
    c.on('close', () => {
      if (this.client !== c) return;
      this.client = undefined;
      if (this.state === 'closed') return;
      this.opts.log.warn('guest ssh connection lost; reconnecting');
      void this.reconnect();
    });
    this.watchClock();
    if (this.connects > 1) this.emit('reconnected');
  }

  private async reconnect(): Promise<void> {
    if (this.reconnecting) return;
    this.reconnecting = true;
    this.setState('reconnecting');
    let delay = 100;
    try {
      while (this.state === 'reconnecting') {
        if (!this.opts.vmAlive()) {
          this.opts.log.warn('VM is gone; not reconnecting');
          this.failWaiters(new BerthError('VM_NOT_RUNNING', 'the VM is not running', 'Start it with `berth start`.'));
          return;
        }
        try {
          const c = await this.attempt(10000);
          if (this.state !== 'reconnecting') {
            c.end();
            return;
          }
          this.adopt(c);
          this.opts.log.info({ connects: this.connects }, 'guest ssh connection re-established');
          return;
        } catch (err) {
          this.opts.log.debug({ err: (err as Error).message, delay }, 'reconnect attempt failed');
          await sleep(delay);
          delay = Math.min(delay * 2, 3000);
        }
      }
    } finally {
      this.reconnecting = false;
    }
  }

  private failWaiters(err: Error): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
  }

  /** Host suspend shows up as a timer that fires far too late. */
  private watchClock(): void {
    if (this.clockTimer) return;
    let last = Date.now();
    this.clockTimer = setInterval(() => {
      const now = Date.now();
      const jump = now - last - 2000;
      last = now;
      if (jump > 5000) {
        this.opts.log.info({ jumpMs: jump }, 'host clock jumped (sleep/resume?); checking the guest link');
        this.emit('resumed', jump);
        void this.checkLink();
      }
    }, 2000);
    this.clockTimer.unref();
  }

  /** Drop the connection if a trivial exec does not come back quickly. */
  async checkLink(timeoutMs = 3000): Promise<boolean> {
    const c = this.client;
    if (!c) return false;
    try {
      await this.exec('true', { timeoutMs });
      return true;
    } catch {
      if (this.client === c) c.destroy();
      return false;
    }
  }

  /** The connected client, waiting up to `timeoutMs` for a reconnect. */
  ready(timeoutMs = 30000): Promise<Client> {
    if (this.client && this.state === 'connected') return Promise.resolve(this.client);
    if (this.state === 'closed' || this.state === 'idle') {
      return Promise.reject(new BerthError('VM_NOT_RUNNING', 'the VM is not running', 'Start it with `berth start`.'));
    }
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (c: Client) => {
          clearTimeout(timer);
          resolve(c);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(
          new BerthError(
            'GUEST_UNREACHABLE',
            `the VM's ssh connection did not come back within ${Math.round(timeoutMs / 1000)} s`,
            'The VM may be overloaded or hung. `berth logs --serial` shows its console; `berth restart` restarts it.',
          ),
        );
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /**
   * Open a channel on the current connection. A connection that died under
   * us ("Not connected", "No response from server") is not the caller's
   * problem: wait for the reconnect and try again, twice at most. A refusal
   * by the guest (no such socket, port closed) is returned as is.
   */
  private async openChannel(open: (c: Client, cb: (err: Error | undefined, ch: ClientChannel) => void) => void): Promise<ClientChannel> {
    for (let attempt = 0; ; attempt++) {
      const c = await this.ready();
      try {
        return await new Promise<ClientChannel>((resolve, reject) => open(c, (err, ch) => (err ? reject(err) : resolve(ch))));
      } catch (err) {
        const lost = /Not connected|No response from server/.test((err as Error).message);
        if (!lost || attempt >= 2) throw err;
        await sleep(20); // let the close reach us, so ready() waits for the new link
      }
    }
  }

  /** A channel to a unix socket in the guest (openssh_forwardOutStreamLocal). */
  openStreamLocal(socketPath: string): Promise<ClientChannel> {
    return this.openChannel((c, cb) => c.openssh_forwardOutStreamLocal(socketPath, cb));
  }

  /** A channel to a TCP port in the guest (direct-tcpip). */
  forwardOut(srcIp: string, srcPort: number, dstIp: string, dstPort: number): Promise<ClientChannel> {
    return this.openChannel((c, cb) => c.forwardOut(srcIp, srcPort, dstIp, dstPort, cb));
  }

  /**
   * A command in the guest as a stream (stdin, stdout, stderr), for
   * long-running helpers. Its exit status is kept on the channel from the
   * moment it opens: a short command's 'exit' can come before the caller's
   * await resumes, and a listener added then would never hear it.
   */
  openExec(command: string): Promise<ExecChannel> {
    return this.openChannel((c, cb) =>
      c.exec(command, (err, ch) => {
        if (ch) ch.once('exit', (code: number | null) => ((ch as ExecChannel).exitCode = code));
        cb(err, ch);
      }),
    ) as Promise<ExecChannel>;
  }

  /** Run a command in the guest and collect its output (capped at 4 MiB). */
  async exec(command: string, opts: { timeoutMs?: number; stdin?: string } = {}): Promise<ExecResult> {
    const c = await this.ready();
    return new Promise((resolve, reject) => {
      c.exec(command, (err, stream) => {
        if (err) return reject(err);
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let size = 0;
        let code: number | null = null;
        const cap = 4 << 20;
        const timer = opts.timeoutMs
          ? setTimeout(() => {
              stream.close();
              reject(new Error(`guest command timed out after ${opts.timeoutMs} ms: ${command}`));
            }, opts.timeoutMs)
          : undefined;
        stream.on('data', (d: Buffer) => {
          size += d.length;
          if (size <= cap) out.push(d);
        });
        stream.stderr.on('data', (d: Buffer) => {
          size += d.length;
          if (size <= cap) errOut.push(d);
        });
        stream.on('exit', (c: number | null) => (code = c));
        stream.on('close', () => {
          if (timer) clearTimeout(timer);
          resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8') });
        });
        if (opts.stdin !== undefined) stream.end(opts.stdin);
        else stream.end();
      });
    });
  }

  /** The guest is about to power off: its connection dropping is expected. */
  expectShutdown(): void {
    this.setState('closed');
    if (this.clockTimer) clearInterval(this.clockTimer);
    this.clockTimer = undefined;
  }

  /** Drop the connection now (tests, fault injection); it reconnects by itself. */
  dropConnection(): void {
    this.client?.destroy();
  }

  close(): void {
    this.setState('closed');
    if (this.clockTimer) clearInterval(this.clockTimer);
    this.clockTimer = undefined;
    this.failWaiters(new BerthError('VM_NOT_RUNNING', 'the VM is stopping', 'Start it again with `berth start`.'));
    this.client?.end();
    this.client = undefined;
  }
}
