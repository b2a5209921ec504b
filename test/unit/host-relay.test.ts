/**
 * host.docker.internal through the engine's relay (forward/host-relay.ts),
 * as vfkit and Hyper-V guests reach the host's loopback, against an ssh2
 * server that plays the guest's sshd: it is asked to listen at the relay's
 * socket and to run the relay program (which says "listening" as the real
 * one does once iptables and its listener are in place); a connection the
 * relay hands over (two bytes of port, then the bytes) reaches the host's
 * loopback at that port, both ways, again after the ssh connection drops
 * and comes back; a port where nothing listens or port 0 closes the
 * channel, and so does one for a socket nobody listens at; a server only
 * on ::1 is reached; a relay that cannot start says why.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { after, before, test } from 'node:test';
import ssh2 from 'ssh2';
import { silentLogger } from '../../app/base/log.js';
import { waitFor } from '../../app/base/process-util.js';
import { newEd25519Pair } from '../../app/base/ssh-keys.js';
import { HOST_RELAY_ADDRESS } from '../../app/engine/drivers/driver.js';
import { GUEST_RELAY_LISTEN, GUEST_RELAY_SOCKET, HostRelay, RELAY_RETRY_MS } from '../../app/engine/forward/host-relay.js';
import { GuestSession } from '../../app/engine/guest/session.js';
import { onlyKey } from '../helpers/fake-guest.js';
import { test as gatedTest } from '../helpers/prereq-gate.js';

const client = newEd25519Pair();
const hostKey = newEd25519Pair();
let server: ssh2.Server;
let port = 0;
let web: http.Server;
let webPort = 0;
/** The guest's sshd side of each connection that asked for the relay's socket. */
const forwarded: ssh2.Connection[] = [];
const relayCommands: string[] = [];
/** The guest side of each relay program's channel, to end it as a dying relay would. */
const relayChannels: ssh2.ServerChannel[] = [];
const connections = new Set<ssh2.Connection>();
/** What the fake relay program says on stderr, then whether it stays. */
let relaySays = 'listening\n';
let relayStays = true;

before(async () => {
  web = http.createServer((req, res) => res.end(`host says hi to ${req.url}`));
  webPort = await new Promise<number>((r) => web.listen(0, '127.0.0.1', () => r((web.address() as net.AddressInfo).port)));
  server = new ssh2.Server({ hostKeys: [hostKey.private] }, (c) => {
    connections.add(c);
    c.on('close', () => connections.delete(c));
    c.on('error', () => undefined);
    c.on('authentication', onlyKey(client.public));
    c.on('ready', () => {
      c.on('request', (accept, reject, name, info) => {
        if ((name as string) !== 'streamlocal-forward@openssh.com' || (info as { socketPath?: string }).socketPath !== GUEST_RELAY_SOCKET) return reject?.();
        forwarded.push(c);
        accept?.();
      });
      c.on('session', (acceptSession) =>
        acceptSession().on('exec', (accept, _reject, info) => {
          const ch = accept();
          relayCommands.push(info.command);
          relayChannels.push(ch);
          ch.stderr.write(relaySays);
          if (!relayStays) {
            ch.exit(2);
            ch.end();
          }
        }),
      );
    });
  });
  port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
});

after(async () => {
  web.close();
  await new Promise((r) => server.close(r));
});

/** What the relay in the guest does with one connection: the port, then `data`; resolves with all that came back. */
function relayed(c: ssh2.Connection, toPort: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    c.openssh_forwardOutStreamLocal(GUEST_RELAY_SOCKET, (err, ch) => {
      if (err) return reject(err);
      const got: Buffer[] = [];
      ch.on('data', (d: Buffer) => got.push(d));
      // The client in the guest closes once the server has said all (half-closes cross over, as sshd carries them).
      ch.on('end', () => ch.end());
      ch.on('close', () => resolve(Buffer.concat(got).toString()));
      const head = Buffer.alloc(2);
      head.writeUInt16BE(toPort);
      // The header and the request may arrive in one piece or split; send them split.
      ch.write(head.subarray(0, 1));
      setTimeout(() => ch.write(Buffer.concat([head.subarray(1), Buffer.from(data)])), 20);
    });
  });
}

const session = async () => {
  const gs = new GuestSession({ host: '127.0.0.1', port, privateKey: client.private, hostPublicKey: hostKey.public, log: silentLogger(), vmAlive: () => true });
  await gs.connect(5000);
  return gs;
};

test("a connection the guest's relay hands over reaches the host's loopback at its port, again after a reconnect", async () => {
  const gs = await session();
  const relay = new HostRelay(gs, HOST_RELAY_ADDRESS, silentLogger());
  try {
    await relay.start();
    assert.deepEqual(relay.view, { address: HOST_RELAY_ADDRESS });
    assert.equal(forwarded.length, 1, 'the guest was asked to listen at the relay socket');
    assert.match(relayCommands[0]!, /host-relay|SO_ORIGINAL_DST|getsockopt/, 'the relay program ran');
    assert.ok(
      relayCommands[0]!.includes(`'${HOST_RELAY_ADDRESS}' '${GUEST_RELAY_LISTEN.address}' '${GUEST_RELAY_LISTEN.port}' '${GUEST_RELAY_SOCKET}'`),
      relayCommands[0]!.slice(-200),
    );
    const got = await relayed(forwarded[0]!, webPort, 'GET /one HTTP/1.0\r\n\r\n');
    assert.match(got, /^HTTP\/1\.1 200/);
    assert.match(got, /host says hi to \/one$/);
    // A channel for a socket path nobody listens at (the guest's sshd may send anything) is refused at once, not left open.
    const other = new Promise((resolve, reject) =>
      forwarded[0]!.openssh_forwardOutStreamLocal('/run/elsewhere.sock', (err, ch) => (err ? reject(err) : resolve(ch))),
    );
    await assert.rejects(other, /rejected|refused|failure/i);
    // The ssh connection drops (sshd restarted, host slept): the forward and the relay come back on the new one.
    for (const c of connections) c.end();
    assert.ok(await waitFor(() => forwarded.length === 2 && relayCommands.length === 2, 10_000), 'asked again after the reconnect');
    assert.ok(await waitFor(() => relay.view.address === HOST_RELAY_ADDRESS, 5000), JSON.stringify(relay.view));
    assert.match(await relayed(forwarded[1]!, webPort, 'GET /two HTTP/1.0\r\n\r\n'), /host says hi to \/two$/);
  } finally {
    relay.stop();
    gs.close();
  }
});

test('a port where nothing listens on the host, and port 0, close the connection with nothing sent', async () => {
  const free = await new Promise<number>((r) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => r(p));
    });
  });
  const gs = await session();
  const relay = new HostRelay(gs, HOST_RELAY_ADDRESS, silentLogger());
  try {
    await relay.start();
    const c = forwarded.at(-1)!;
    assert.equal(await relayed(c, free, 'GET / HTTP/1.0\r\n\r\n'), '');
    assert.equal(await relayed(c, 0, 'GET / HTTP/1.0\r\n\r\n'), '');
    // And the relay still serves the next one.
    assert.match(await relayed(c, webPort, 'GET /three HTTP/1.0\r\n\r\n'), /host says hi to \/three$/);
  } finally {
    relay.stop();
    gs.close();
  }
});

const noV6 = Object.values(os.networkInterfaces())
  .flat()
  .some((a) => a?.internal && a.address === '::1')
  ? undefined
  : 'this machine has no IPv6 loopback (::1)';

gatedTest("a server only on the host's ::1 is reached when nothing listens on 127.0.0.1 at its port", { needs: noV6 }, async () => {
  const v6 = http.createServer((_req, res) => res.end('from ::1'));
  await new Promise<void>((r) => v6.listen(0, '::1', r));
  const v6Port = (v6.address() as net.AddressInfo).port;
  const gs = await session();
  const relay = new HostRelay(gs, HOST_RELAY_ADDRESS, silentLogger());
  try {
    await relay.start();
    assert.match(await relayed(forwarded.at(-1)!, v6Port, 'GET / HTTP/1.0\r\n\r\n'), /from ::1$/);
  } finally {
    relay.stop();
    gs.close();
    v6.close();
  }
});

test('a relay that cannot start in the guest: the view says why, in its own words', async () => {
  relaySays = 'iptables refused the PREROUTING rule\n';
  relayStays = false;
  const gs = await session();
  const relay = new HostRelay(gs, HOST_RELAY_ADDRESS, silentLogger());
  try {
    await relay.start();
    assert.equal(relay.view.address, undefined);
    assert.equal(relay.view.why, 'the relay in the guest stopped: iptables refused the PREROUTING rule; starting it again in 1 s');
  } finally {
    relaySays = 'listening\n';
    relayStays = true;
    relay.stop();
    gs.close();
  }
});

test('a relay that stops on its own is started again, after waits that double while it keeps failing', async () => {
  const first = RELAY_RETRY_MS.first;
  RELAY_RETRY_MS.first = 100;
  const gs = await session();
  const relay = new HostRelay(gs, HOST_RELAY_ADDRESS, silentLogger());
  try {
    await relay.start();
    const runs = relayCommands.length;
    // Killed in the guest: the view says so at once, and it listens again soon.
    relayChannels.at(-1)!.stderr.write('Killed\n');
    relayChannels.at(-1)!.exit(137);
    relayChannels.at(-1)!.end();
    assert.ok(await waitFor(() => relay.view.why !== undefined, 2000), 'the stop is seen');
    assert.match(relay.view.why!, /the relay in the guest stopped: Killed; starting it again in 1 s/);
    assert.ok(await waitFor(() => relay.view.address === HOST_RELAY_ADDRESS, 2000), JSON.stringify(relay.view));
    assert.equal(relayCommands.length, runs + 1, 'one new relay, not two');
    assert.equal(await relayed(forwarded.at(-1)!, webPort, 'GET /again HTTP/1.0\r\n\r\n').then((r) => r.split('\r\n\r\n')[1]), 'host says hi to /again');
    // One that fails at once, every time: the waits grow (100, 200, 400 ms...), so few runs in a second.
    relaySays = 'iptables: no chain\n';
    relayStays = false;
    relayChannels.at(-1)!.exit(1);
    relayChannels.at(-1)!.end();
    await new Promise((r) => setTimeout(r, 1000));
    const tries = relayCommands.length - runs - 1;
    assert.ok(tries >= 2 && tries <= 4, `${tries} tries in a second`);
    assert.match(relay.view.why!, /iptables: no chain; starting it again in/);
  } finally {
    RELAY_RETRY_MS.first = first;
    relaySays = 'listening\n';
    relayStays = true;
    relay.stop();
    gs.close();
  }
  // Stopped: no more tries.
  const after = relayCommands.length;
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(relayCommands.length, after);
});
