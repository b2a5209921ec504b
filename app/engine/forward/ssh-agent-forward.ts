/**
 * The host's SSH agent for containers, at Docker Desktop's path in the
 * guest (/run/host-services/ssh-auth.sock), so `docker run -v
 * /run/host-services/ssh-auth.sock:/agent.sock -e SSH_AUTH_SOCK=/agent.sock`
 * works as it does there. The guest's sshd listens on that socket for us
 * (guest-listener.ts: owner-only, asked for again after a reconnect); each
 * connection to it comes back as an ssh channel, which the engine joins to
 * a connection to the host's agent.
 *
 * What a guest can do with it: ask the agent to list its keys and to sign,
 * as any forwarded agent allows, while the VM runs (SECURITY.md). It never
 * gets a key. Only when the host has an agent.
 */
import fs from 'node:fs';
import net from 'node:net';
import type { Logger } from 'pino';
import type { AcceptConnection, Channel } from 'ssh2';
import type { GuestSession } from '../guest/session.js';
import { bridge } from './bridge.js';
import { GuestListener } from './guest-listener.js';

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
  private readonly listener: GuestListener;

  constructor(
    session: GuestSession,
    private readonly agentPath: string,
    private readonly log: Logger,
  ) {
    this.listener = new GuestListener(session, GUEST_AGENT_SOCKET, {
      what: 'SSH agent',
      maxOpen: MAX_OPEN,
      log,
      onConnection: (accept, reject) => this.join(accept, reject),
      onBound: (err) => {
        if (err) this.view = { why: `the guest would not listen at ${GUEST_AGENT_SOCKET} (${err.message})` };
        else {
          log.info({ guest: GUEST_AGENT_SOCKET }, "SSH agent: the host's agent is forwarded");
          this.view = { guestPath: GUEST_AGENT_SOCKET };
        }
      },
    });
  }

  start(): Promise<void> {
    return this.listener.start();
  }

  stop(): void {
    this.listener.stop();
  }

  /** One guest connection to the agent socket: join its channel to a connection to the host's agent. */
  private join(accept: AcceptConnection<Channel>, reject: () => void): void {
    // Paused and half-open, as bridge() takes it.
    const up = net.createConnection({ path: this.agentPath, allowHalfOpen: true });
    up.pause();
    up.once('error', (err) => {
      this.log.warn({ err: err.message }, "SSH agent: the host's agent did not answer");
      reject();
    });
    up.once('connect', () => {
      up.removeAllListeners('error');
      bridge(up, accept());
    });
  }
}
