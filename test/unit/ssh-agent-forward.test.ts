/**
 * The host's SSH agent forwarded to the guest (forward/ssh-agent-forward.ts)
 * against an ssh2 server that plays the guest's sshd: it is asked to
 * listen at /run/host-services/ssh-auth.sock, and a guest connection to
 * that socket (a forwarded-streamlocal channel) reaches the host's agent,
 * both ways; after the ssh connection drops and comes back, the forward is
 * asked for again and works; no agent on the host, no forward.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import ssh2 from 'ssh2';
import { silentLogger } from '../../app/base/log.js';
import { waitFor } from '../../app/base/process-util.js';
import { newEd25519Pair } from '../../app/base/ssh-keys.js';
import { GUEST_AGENT_SOCKET, hostAgent, SshAgentForward } from '../../app/engine/forward/ssh-agent-forward.js';
import { GuestSession } from '../../app/engine/guest/session.js';
import { onlyKey } from '../helpers/fake-guest.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('bagent');
const client = newEd25519Pair();
const hostKey = newEd25519Pair();
const agentSock = path.join(t.dir, 'agent.sock');
let agent: net.Server;
let server: ssh2.Server;
let port = 0;
/** The guest's sshd side of each connection that asked for the agent forward. */
const forwarded: ssh2.Connection[] = [];
const connections = new Set<ssh2.Connection>();

before(async () => {
  // The host's agent: answers each message with "agent:" and what it got.
  agent = net.createServer((s) => s.on('data', (d) => s.write(`agent:${d}`)));
  await new Promise<void>((r) => agent.listen(agentSock, r));
  server = new ssh2.Server({ hostKeys: [hostKey.private] }, (c) => {
    connections.add(c);
    c.on('close', () => connections.delete(c));
    c.on('error', () => undefined);
    c.on('authentication', onlyKey(client.public));
    c.on('ready', () =>
      c.on('request', (accept, reject, name, info) => {
        if ((name as string) !== 'streamlocal-forward@openssh.com' || (info as { socketPath?: string }).socketPath !== GUEST_AGENT_SOCKET) return reject?.();
        forwarded.push(c);
        accept?.();
      }),
    );
  });
  port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
});

after(async () => {
  agent.close();
  await new Promise((r) => server.close(r));
  t.cleanup();
});

/** A guest program connecting to the agent socket: what comes back for `msg`. */
function guestAsks(c: ssh2.Connection, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    c.openssh_forwardOutStreamLocal(GUEST_AGENT_SOCKET, (err, ch) => {
      if (err) return reject(err);
      ch.once('data', (d: Buffer) => {
        resolve(d.toString());
        ch.close();
      });
      ch.write(msg);
    });
  });
}

test("a guest connection to /run/host-services/ssh-auth.sock reaches the host's agent, again after a reconnect", async () => {
  const gs = new GuestSession({ host: '127.0.0.1', port, privateKey: client.private, hostPublicKey: hostKey.public, log: silentLogger(), vmAlive: () => true });
  await gs.connect(5000);
  const fwd = new SshAgentForward(gs, agentSock, silentLogger());
  try {
    await fwd.start();
    assert.equal(forwarded.length, 1, 'the guest was asked to listen at the agent path');
    assert.equal(await guestAsks(forwarded[0]!, 'list keys'), 'agent:list keys');
    // The ssh connection drops (sshd restarted, host slept): asked again on the new one.
    for (const c of connections) c.end();
    assert.ok(await waitFor(() => forwarded.length === 2, 10_000), 'asked again after the reconnect');
    assert.equal(await guestAsks(forwarded[1]!, 'sign'), 'agent:sign');
  } finally {
    fwd.stop();
    gs.close();
  }
});

test("the host's agent: SSH_AUTH_SOCK when it is a socket; Windows' OpenSSH pipe; otherwise why not", () => {
  assert.deepEqual(hostAgent({ SSH_AUTH_SOCK: agentSock }, 'linux'), { path: agentSock });
  assert.deepEqual(hostAgent({}, 'darwin'), { none: 'SSH_AUTH_SOCK is not set' });
  const file = path.join(t.dir, 'plain');
  fs.writeFileSync(file, '');
  assert.deepEqual(hostAgent({ SSH_AUTH_SOCK: file }, 'linux'), { none: `SSH_AUTH_SOCK names ${file}, which is not a socket` });
  assert.deepEqual(hostAgent({}, 'win32'), { path: '\\\\.\\pipe\\openssh-ssh-agent' });
  assert.deepEqual(hostAgent({ SSH_AUTH_SOCK: '\\\\.\\pipe\\other' }, 'win32'), { path: '\\\\.\\pipe\\other' });
});
