/**
 * The host's SSH agent for containers, at Docker Desktop's path in the
 * guest (/run/host-services/ssh-auth.sock), so `docker run -v
 * /run/host-services/ssh-auth.sock:/agent.sock -e SSH_AUTH_SOCK=/agent.sock`
 * works as it does there. The guest's sshd listens on that socket for us
 * (OpenSSH's streamlocal forward: owner-only, StreamLocalBindMask's
 * default, and a stale socket from an earlier connection is replaced,
 * StreamLocalBindUnlink); each connection to it comes back as an ssh
 * channel, which the engine joins to a connection to the host's agent.
 * After a reconnect the forward is asked for again on the new connection.
 *
 * What a guest can do with it: ask the agent to list its keys and to sign,
 * as any forwarded agent allows, while the VM runs (SECURITY.md). It never
 * gets a key. Only when the host has an agent.
 */
import fs from 'node:fs';
import net from 'node:net';
import type { Logger } from 'pino';
import type { AcceptConnection, Channel, Client } from 'ssh2';
import type { GuestSession } from '../guest/session.js';

export const GUEST_AGENT_SOCKET = '/run/host-services/ssh-auth.sock';

/** At most this many agent connections open at once: a guest that opens more gets refused. */
const MAX_OPEN = 32;

/**
 * The host's agent: SSH_AUTH_SOCK when it names a socket, else on Windows
 * the OpenSSH agent's pipe; otherwise why there is none.
 */
export function hostAgent(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): { path: string } | { none: string } {
  const named = env.SSH_AUTH_SOCK?.trim();
  if (named) {
    if (platform === 'win32') return { path: named };
    try {
      if (fs.statSync(named).isSocket()) return { path: named };
    } catch {
      /* reported below */
    }
    return { none: `SSH_AUTH_SOCK names ${named}, which is not a socket` };
  }
  if (platform === 'win32') return { path: '\\\\.\\pipe\\openssh-ssh-agent' };
  return { none: 'SSH_AUTH_SOCK is not set' };
}

export class SshAgentForward {
  /** For status: the guest's socket once sshd listens there, or why it does not. */
  view: { guestPath?: string; why?: string } = { why: 'not forwarded yet' };
  private readonly bound = new WeakSet<Client>();
  private stopped = false;
  private open = 0;
  private readonly rebind = () => void this.bind();

  constructor(
    private readonly session: GuestSession,
    private readonly agentPath: string,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.session.on('reconnected', this.rebind);
    await this.bind();
  }

  stop(): void {
    this.stopped = true;
    this.session.off('reconnected', this.rebind);
  }

  /** Ask the guest's sshd to listen at the agent path on the current connection (once per connection). */
  private async bind(): Promise<void> {
    if (this.stopped) return;
    let c: Client;
    try {
      c = await this.session.ready(10_000);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'SSH agent: no guest connection to forward it on');
      return;
    }
    if (this.bound.has(c) || this.stopped) return;
    this.bound.add(c);
    c.on('unix connection', (info, accept, reject) => {
      if (info.socketPath !== GUEST_AGENT_SOCKET || this.stopped || this.open >= MAX_OPEN) return reject();
      this.join(accept, reject);
    });
    await new Promise<void>((resolve) => {
      try {
        c.openssh_forwardInStreamLocal(GUEST_AGENT_SOCKET, (err) => {
          if (err) {
            this.log.warn({ err: err.message }, 'SSH agent: the guest would not listen at its socket');
            this.view = { why: `the guest would not listen at ${GUEST_AGENT_SOCKET} (${err.message})` };
          } else {
            this.log.info({ guest: GUEST_AGENT_SOCKET }, "SSH agent: the host's agent is forwarded");
            this.view = { guestPath: GUEST_AGENT_SOCKET };
          }
          resolve();
        });
      } catch (err) {
        // The connection went between ready() and the request; 'reconnected' binds again.
        this.log.debug({ err: (err as Error).message }, 'SSH agent: the connection went before the forward was asked for');
        resolve();
      }
    });
  }

  /** One guest connection to the agent socket: join its channel to a connection to the host's agent. */
  private join(accept: AcceptConnection<Channel>, reject: () => void): void {
    this.open++;
    let done = false;
    const finish = () => {
      if (!done) this.open--;
      done = true;
    };
    const up = net.createConnection(this.agentPath);
    up.once('error', (err) => {
      this.log.warn({ err: err.message }, "SSH agent: the host's agent did not answer");
      finish();
      reject();
    });
    up.once('connect', () => {
      const ch = accept();
      up.removeAllListeners('error');
      up.on('error', () => ch.destroy());
      ch.on('error', () => up.destroy());
      ch.pipe(up);
      up.pipe(ch);
      up.on('close', () => {
        finish();
        ch.destroy();
      });
      ch.on('close', () => {
        finish();
        up.destroy();
      });
    });
  }
}
