/**
 * What the guest gets of the host besides files and the docker socket: the
 * host's SSH agent at Docker Desktop's path (forward/ssh-agent-forward.ts)
 * and, where the guest's network does not reach the host's loopback, the
 * relay that makes host.docker.internal reach it (forward/host-relay.ts).
 * Both ride the guest session and come back after a reconnect.
 */
import type { Logger } from 'pino';
import type { VmStatus } from '../../contract/contract.js';
import { HostRelay } from '../forward/host-relay.js';
import { hostAgent, SshAgentForward } from '../forward/ssh-agent-forward.js';
import type { GuestSession } from '../guest/session.js';

export interface HostServices {
  /** Resolves once both are in place (or failed, which their views say). */
  ready: Promise<void>;
  status(): Pick<VmStatus, 'sshAgent' | 'hostLoopback'>;
  stop(): void;
}

/** Start both on the session; `relayAddress`: the guest's address for the host, when the engine relays it. */
export function startHostServices(session: GuestSession, log: Logger, relayAddress?: string): HostServices {
  const waits: Promise<void>[] = [];
  const stops: (() => void)[] = [];
  let agentView: NonNullable<VmStatus['sshAgent']> = {};
  let agentFwd: SshAgentForward | undefined;
  const agent = hostAgent();
  if ('none' in agent) {
    // The engine keeps the environment it started with: the hint is to start it again.
    agentView = {
      why: `no SSH agent on the host: ${agent.none}; to give containers your agent, run \`berth stop\` and \`berth start\` where SSH_AUTH_SOCK names it`,
    };
    log.info(`SSH agent: not forwarded (${agent.none})`);
  } else {
    const fwd = new SshAgentForward(session, agent.path, log);
    agentFwd = fwd;
    waits.push(fwd.start());
    stops.push(() => fwd.stop());
  }
  let relay: HostRelay | undefined;
  if (relayAddress) {
    const r = new HostRelay(session, relayAddress, log);
    relay = r;
    waits.push(r.start());
    stops.push(() => r.stop());
  }
  return {
    ready: Promise.all(waits).then(() => undefined),
    status: () => {
      const st: Pick<VmStatus, 'sshAgent' | 'hostLoopback'> = { sshAgent: agentFwd?.view ?? agentView };
      if (relay) st.hostLoopback = relay.view;
      return st;
    },
    stop: () => stops.forEach((s) => s()),
  };
}
