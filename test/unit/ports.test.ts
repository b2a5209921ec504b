/**
 * Port forwarding without a VM: parsing the guest's socket tables, merging
 * the sources into forwards, UDP framing, and real host listeners whose
 * connections go through a fake guest (ssh2 server) to local services.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { publishedPorts, type PublishedPort } from '../../app/engine/forward/docker-port-watcher.js';
import { parseWatchLine } from '../../app/engine/forward/guest-socket-watcher.js';
import { PortForward, type ForwardSpec } from '../../app/engine/forward/port-forward.js';
import { desiredForwards, guestTarget, hostIpsFor } from '../../app/engine/forward/port-manager.js';
import { decodeAddress, parseProcNet, type ListeningSocket } from '../../app/engine/forward/proc-net.js';
import { FrameReader, frame } from '../../app/engine/forward/udp-relay.js';
import { guestProgram } from '../../app/engine/guest/programs.js';
import { GuestSession } from '../../app/engine/guest/session.js';
import { silentLogger } from '../../app/base/log.js';
import { waitFor } from '../../app/base/process-util.js';
import { startFakeGuest, type FakeGuest } from '../helpers/fake-guest.js';
import { echoRoundTrip } from '../helpers/net-probe.js';
import { newEd25519Pair } from '../../app/base/ssh-keys.js';

// Real lines from a guest's /proc/net/tcp, tcp6 and udp.
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:46A3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1235 1 0000000000000000 100 0 0 10 0
   2: 0F02000A:0016 0202000A:C8A2 01 00000000:00000000 02:000A7D4B 00000000     0        0 1236 2 0000000000000000 20 4 29 10 -1`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:46A0 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2002 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000F02000A:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2003 1 0000000000000000 100 0 0 10 0`;
const UDP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  10: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3001 2 0000000000000000 0
  11: 0F02000A:D431 0302000A:0035 01 00000000:00000000 00:00000000 00000000     0        0 3002 2 0000000000000000 0
  12: 00000000:A001 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3003 2 0000000000000000 0`;

test('socket table: addresses, listening states, ephemeral UDP skipped', () => {
  assert.deepEqual(decodeAddress('0100007F:1F90'), { ip: '127.0.0.1', port: 8080, family: 4 });
  assert.deepEqual(parseProcNet('tcp', TCP), [
    { proto: 'tcp', ip: '0.0.0.0', port: 22, family: 4 },
    { proto: 'tcp', ip: '127.0.0.1', port: 18083, family: 4 },
  ]);
  assert.deepEqual(parseProcNet('tcp', TCP6), [
    { proto: 'tcp', ip: '::', port: 18080, family: 6 },
    { proto: 'tcp', ip: '::1', port: 8080, family: 6 },
    { proto: 'tcp', ip: '::ffff:10.0.2.15', port: 8081, family: 6 },
  ]);
  // 5353 bound; the connected DNS client socket and the ephemeral 40961 are not services.
  assert.deepEqual(parseProcNet('udp', UDP), [{ proto: 'udp', ip: '0.0.0.0', port: 5353, family: 4 }]);
});

test('the watcher line format', () => {
  assert.deepEqual(parseWatchLine('= t0100007F:1F90 u00000000:14E9 t00000000000000000000000000000000:1F90 u00000000:A001'), [
    { proto: 'tcp', ip: '127.0.0.1', port: 8080, family: 4 },
    { proto: 'udp', ip: '0.0.0.0', port: 5353, family: 4 },
    { proto: 'tcp', ip: '::', port: 8080, family: 6 },
  ]);
  assert.deepEqual(parseWatchLine('= t/127.0.0.1/8080 t/::/18080 u/0.0.0.0/5353 u/::/40000 t/junk/1 t/1.2.3.4/99999'), [
    { proto: 'tcp', ip: '127.0.0.1', port: 8080, family: 4 },
    { proto: 'tcp', ip: '::', port: 18080, family: 6 },
    { proto: 'udp', ip: '0.0.0.0', port: 5353, family: 4 },
  ]);
  assert.deepEqual(parseWatchLine('='), []);
  assert.equal(parseWatchLine('garbage'), undefined);
  assert.match(guestProgram('socket-watch.pl'), /exit 0 unless \$got;/, 'the loop ends when its stdin closes');
  assert.match(guestProgram('socket-watch.pl'), /BERTH_WATCH_INTERVAL\} \|\| 0\.5/);
});

test('guest bindings map to host addresses: loopback stays loopback, the rest follows the setting', () => {
  assert.deepEqual(hostIpsFor('127.0.0.1', 'all'), ['127.0.0.1', '::1']);
  assert.deepEqual(hostIpsFor('0.0.0.0', 'loopback'), ['127.0.0.1', '::1']);
  assert.deepEqual(hostIpsFor('0.0.0.0', 'all'), ['0.0.0.0', '::']);
  assert.deepEqual(hostIpsFor('10.0.2.15', 'all'), ['0.0.0.0', '::']);
  assert.equal(guestTarget('0.0.0.0'), '127.0.0.1');
  assert.equal(guestTarget('::'), '127.0.0.1');
  assert.equal(guestTarget('::1'), '::1');
  assert.equal(guestTarget('::ffff:10.0.2.15'), '10.0.2.15');
});

test("sources merge: guest table < docker < manual; sshd and the guest's DNS server are never forwarded", () => {
  const guest: ListeningSocket[] = [
    { proto: 'tcp', ip: '0.0.0.0', port: 22, family: 4 },
    // run-dns: dnsmasq on the guest's own address.
    { proto: 'tcp', ip: '10.0.2.15', port: 53, family: 4 },
    { proto: 'udp', ip: '10.0.2.15', port: 53, family: 4 },
    { proto: 'tcp', ip: '::', port: 18080, family: 6 },
    { proto: 'tcp', ip: '0.0.0.0', port: 18080, family: 4 },
    { proto: 'tcp', ip: '127.0.0.1', port: 9000, family: 4 },
    { proto: 'udp', ip: '0.0.0.0', port: 5353, family: 4 },
  ];
  const docker: PublishedPort[] = [
    { containerId: 'abc', containerName: 'web', proto: 'tcp', hostIp: '0.0.0.0', hostPort: 18080, containerPort: 80 },
    { containerId: 'abc', containerName: 'web', proto: 'tcp', hostIp: '::', hostPort: 18080, containerPort: 80 },
  ];
  const want = desiredForwards(guest, docker, [{ hostPort: 9000, guestPort: 9001, proto: 'tcp' }], 'loopback');
  assert.deepEqual([...want.keys()].sort(), ['tcp/18080', 'tcp/9000', 'udp/5353']);
  assert.deepEqual(want.get('tcp/18080'), {
    proto: 'tcp',
    hostPort: 18080,
    hostIps: ['127.0.0.1', '::1'],
    guestIp: '127.0.0.1',
    guestPort: 18080,
    source: 'docker',
    container: { id: 'abc', name: 'web', port: 80 },
  });
  assert.equal(want.get('tcp/9000')!.source, 'manual');
  assert.equal(want.get('tcp/9000')!.guestPort, 9001);
  assert.equal(want.get('udp/5353')!.source, 'guest');
  // A container's published 53 (docker-proxy on a wildcard or loopback address) still is.
  const published = desiredForwards([...guest, { proto: 'udp', ip: '0.0.0.0', port: 53, family: 4 }], [], [], 'loopback');
  assert.equal(published.get('udp/53')?.guestIp, '127.0.0.1');
  assert.equal(published.has('tcp/53'), false);
});

test('docker port summaries: only published tcp/udp ports', () => {
  const ps = publishedPorts({
    Id: 'id1',
    Names: ['/web'],
    Image: 'x',
    State: 'running',
    Status: 'Up',
    Ports: [
      { IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
      { PrivatePort: 443, Type: 'tcp' },
      { IP: '127.0.0.1', PrivatePort: 53, PublicPort: 5353, Type: 'udp' },
      { IP: '0.0.0.0', PrivatePort: 9, PublicPort: 9, Type: 'sctp' },
    ],
  });
  assert.deepEqual(
    ps.map((p) => `${p.containerName} ${p.hostIp}:${p.hostPort}->${p.containerPort}/${p.proto}`),
    ['web 0.0.0.0:8080->80/tcp', 'web 127.0.0.1:5353->53/udp'],
  );
});

test('UDP frames survive arbitrary chunking', () => {
  const got: string[] = [];
  const r = new FrameReader((id, p) => got.push(`${id}:${p.toString()}`));
  const all = Buffer.concat([frame(1, Buffer.from('hello')), frame(70000, Buffer.from('')), frame(2, Buffer.alloc(1000, 'x'))]);
  for (let i = 0; i < all.length; i += 7) r.push(all.subarray(i, i + 7));
  assert.deepEqual(got, ['1:hello', '70000:', `2:${'x'.repeat(1000)}`]);
  assert.match(guestProgram('udp-relay.pl'), /exit 0 unless \$n/, 'the relay ends with its stdin');
});

// --- real listeners through a fake guest ------------------------------------
const client = newEd25519Pair();
const host = newEd25519Pair();
let guest: FakeGuest;
let session: GuestSession;
let echo: net.Server;
let echoPort = 0;

before(async () => {
  echo = net.createServer({ allowHalfOpen: true }, (s) => {
    s.pipe(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as net.AddressInfo).port;
  guest = await startFakeGuest({ hostPrivateKey: host.private, clientPublicKey: client.public, sockets: {} });
  session = new GuestSession({
    host: '127.0.0.1',
    port: guest.port,
    privateKey: client.private,
    hostPublicKey: host.public,
    log: silentLogger(),
    vmAlive: () => true,
  });
  await session.connect(5000);
});
after(async () => {
  session.close();
  await guest.close();
  echo.close();
});

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

test('a TCP forward carries bytes both ways, with half-close, for many connections at once', async () => {
  const hostPort = await freePort();
  const spec: ForwardSpec = { proto: 'tcp', hostPort, hostIps: ['127.0.0.1', '::1'], guestIp: '127.0.0.1', guestPort: echoPort, source: 'manual' };
  const f = new PortForward(spec, session, silentLogger());
  await f.open();
  try {
    assert.equal(f.state, 'active');
    assert.ok(f.bound.includes('127.0.0.1'));
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        const data = crypto.randomBytes(1 << 20);
        assert.ok((await echoRoundTrip(hostPort, data)).equals(data));
      }),
    );
  } finally {
    await f.close();
  }
  await assert.rejects(echoRoundTrip(hostPort, Buffer.from('x')), /ECONNREFUSED/, 'closed means closed');
});

test('a host port in use is a conflict naming its holder; it opens once freed', async () => {
  const hostPort = await freePort();
  const other = net.createServer();
  await new Promise<void>((r) => other.listen(hostPort, '127.0.0.1', r));
  const f = new PortForward(
    { proto: 'tcp', hostPort, hostIps: ['127.0.0.1'], guestIp: '127.0.0.1', guestPort: echoPort, source: 'guest' },
    session,
    silentLogger(),
  );
  await f.open();
  assert.equal(f.state, 'conflict');
  assert.match(f.error!, new RegExp(`host port ${hostPort}/tcp is already in use`));
  if (process.platform === 'linux') assert.equal(f.holder?.pid, process.pid, 'this test process holds it');
  await new Promise((r) => other.close(r));
  await f.open();
  assert.equal(f.state, 'active');
  await f.close();
});

test('a UDP port in use is a conflict, and the retries leave no socket open behind them', async () => {
  const other = dgram.createSocket('udp4');
  await new Promise<void>((r) => other.bind(0, '127.0.0.1', r));
  const hostPort = other.address().port;
  const f = new PortForward({ proto: 'udp', hostPort, hostIps: ['127.0.0.1'], guestIp: '127.0.0.1', guestPort: 9, source: 'guest' }, session, silentLogger());
  const udpHandles = () => process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap').length;
  const before = udpHandles();
  // The port manager retries a conflict every 2 s: ten retries.
  for (let i = 0; i < 10; i++) {
    await f.open();
    assert.equal(f.state, 'conflict');
    assert.match(f.error!, new RegExp(`host port ${hostPort}/udp is already in use`));
  }
  // Closing a handle completes on a later turn of the event loop.
  await waitFor(() => udpHandles() === before, 2000);
  assert.equal(udpHandles(), before, 'each failed bind left a UDP socket (a file descriptor) open');
  await new Promise<void>((r) => other.close(r));
  await f.open();
  assert.equal(f.state, 'active');
  await f.close();
  await waitFor(() => udpHandles() === before - 1, 2000);
  assert.equal(udpHandles(), before - 1, 'closed means closed');
});

// --- the guest-side scripts, run here (perl is on every Debian) ---

test('the socket watcher script reports a new listener, stays quiet otherwise, and exits on EOF', async () => {
  const child = spawn('perl', ['-e', guestProgram('socket-watch.pl')], { env: { ...process.env, BERTH_WATCH_INTERVAL: '0.1' } });
  const lines: string[] = [];
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  await waitFor(() => lines.length >= 1, 5000);
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const seen = () => lines.some((l) => parseWatchLine(l)?.some((s) => s.proto === 'tcp' && s.port === port));
  assert.ok(await waitFor(seen, 5000), 'the new listener shows up');
  const count = lines.length;
  await new Promise((r) => setTimeout(r, 500));
  // Other tests may open sockets meanwhile; an idle table prints nothing, so
  // at most a few lines came in 5 rounds.
  assert.ok(lines.length - count <= 2, `quiet when nothing changes (${lines.length - count} lines)`);
  srv.close();
  const exited = new Promise((r) => child.on('exit', r));
  child.stdin.end();
  assert.equal(await Promise.race([exited.then(() => 'exited'), new Promise((r) => setTimeout(() => r('still running'), 3000))]), 'exited');
});

test('the socket watcher looks seldom once idle, at once and often again on a "look" line, and ends on anything else', async () => {
  const child = spawn('perl', ['-e', guestProgram('socket-watch.pl')], {
    env: { ...process.env, BERTH_WATCH_INTERVAL: '0.1', BERTH_WATCH_IDLE_INTERVAL: '30', BERTH_WATCH_BUSY: '1' },
  });
  const lines: string[] = [];
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  const exited = new Promise((r) => child.on('exit', r));
  try {
    assert.ok(await waitFor(() => lines.length >= 1, 5000), 'the first table');
    await new Promise((r) => setTimeout(r, 1500)); // past the busy second: idle now
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    const seen = () => lines.some((l) => parseWatchLine(l)?.some((s) => s.proto === 'tcp' && s.port === port));
    try {
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(seen(), false, 'idle: not looked at within a second');
      // A "look" line split over two writes, as a channel may deliver it.
      child.stdin.write('lo');
      await new Promise((r) => setTimeout(r, 100));
      child.stdin.write('ok\n');
      assert.ok(await waitFor(seen, 2000), 'looked at once after "look"');
    } finally {
      srv.close();
    }
    assert.equal(child.exitCode, null, 'still running after "look" lines');
    child.stdin.write('something else\n');
    assert.equal(await Promise.race([exited.then(() => 'exited'), new Promise((r) => setTimeout(() => r('still running'), 3000))]), 'exited');
  } finally {
    child.kill();
  }
});

test('the UDP relay script carries datagrams to a service and replies back, per client', async () => {
  const svc = dgram.createSocket('udp4');
  svc.on('message', (m, r) => svc.send(Buffer.concat([Buffer.from('re:'), m]), r.port, r.address));
  await new Promise<void>((r) => svc.bind(0, '127.0.0.1', r));
  const relay = spawn('perl', ['-e', guestProgram('udp-relay.pl'), '127.0.0.1', String(svc.address().port)]);
  const got: string[] = [];
  const reader = new FrameReader((id, p) => got.push(`${id}:${p.toString()}`));
  relay.stdout.on('data', (d: Buffer) => reader.push(d));
  relay.stdin.write(frame(1, Buffer.from('a')));
  relay.stdin.write(frame(2, Buffer.from('b')));
  relay.stdin.write(frame(1, Buffer.from('c')));
  assert.ok(await waitFor(() => got.length === 3, 5000), `replies: ${got.join(',')}`);
  assert.deepEqual(got.sort(), ['1:re:a', '1:re:c', '2:re:b']);
  const exited = new Promise((r) => relay.on('exit', r));
  relay.stdin.end();
  await exited;
  svc.close();
});
