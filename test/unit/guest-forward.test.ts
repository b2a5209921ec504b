/**
 * The guest session and the docker socket forward against a fake guest: a
 * real ssh2 server whose streamlocal channels reach unix sockets here.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { isBerthError } from '../../app/contract/errors.js';
import { forwardDockerSocket, pingDocker } from '../../app/engine/forward/docker-socket.js';
import { GuestSession } from '../../app/engine/guest/session.js';
import { silentLogger } from '../../app/base/log.js';
import { startFakeDockerd, startFakeGuest, startHalfCloseEcho, type FakeGuest } from '../helpers/fake-guest.js';
import { shortTempDir } from '../helpers/temp.js';
import { newEd25519Pair } from '../../app/base/ssh-keys.js';

const t = shortTempDir('fwd');
const client = newEd25519Pair();
const host = newEd25519Pair();
const dockerd = path.join(t.dir, 'fake-dockerd.sock');
const echo = path.join(t.dir, 'echo.sock');
const hostSocket = path.join(t.dir, 'docker.sock');
let guest: FakeGuest;
let session: GuestSession;
let forward: { close: () => Promise<void> };
const servers: net.Server[] = [];

before(async () => {
  servers.push(await startFakeDockerd(dockerd), await startHalfCloseEcho(echo));
  guest = await startFakeGuest({
    hostPrivateKey: host.private,
    clientPublicKey: client.public,
    sockets: { '/var/run/docker.sock': dockerd, '/echo.sock': echo },
    exec: (cmd) => ({ stdout: cmd === 'uname' ? 'Linux\n' : '', code: cmd === 'false' ? 1 : 0 }),
  });
  session = new GuestSession({
    host: '127.0.0.1',
    port: guest.port,
    privateKey: client.private,
    hostPublicKey: host.public,
    log: silentLogger(),
    vmAlive: () => true,
  });
  await session.connect(5000);
  forward = await forwardDockerSocket(hostSocket, session, silentLogger());
});

after(async () => {
  await forward.close();
  session.close();
  await guest.close();
  for (const s of servers) s.close();
  t.cleanup();
});

function get(socketPath: string, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: p, agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

test('exec returns output and exit codes', async () => {
  assert.deepEqual(await session.exec('uname'), { code: 0, stdout: 'Linux\n', stderr: '' });
  assert.equal((await session.exec('false')).code, 1);
});

test('dockerd readiness ping', async () => {
  assert.equal(await pingDocker(session), true);
});

test('the host socket is owner-only and carries HTTP to the guest dockerd', async () => {
  assert.equal(fs.statSync(hostSocket).mode & 0o777, 0o600);
  const r = await get(hostSocket, '/v1.41/version');
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).Version, 'fake');
});

/** Connect through a second forward whose guest target is the half-close echo. */
async function echoForward(): Promise<{ sock: string; close: () => Promise<void> }> {
  const sock = path.join(t.dir, `e${crypto.randomInt(1e6)}.sock`);
  // This forward's channels go to /echo.sock.
  const toEcho = { openStreamLocal: () => session.openStreamLocal('/echo.sock') } as unknown as GuestSession;
  const f = await forwardDockerSocket(sock, toEcho, silentLogger());
  return { sock, close: () => f.close() };
}

function roundTrip(sock: string, payload: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection({ path: sock, allowHalfOpen: true });
    let out = '';
    c.on('data', (d) => (out += d));
    c.on('end', () => resolve(out));
    c.on('error', reject);
    c.on('connect', () => c.end(payload)); // write, then half-close
  });
}

test('a half-close crosses the forward and the answer still comes back (docker run -i, exec -i)', async () => {
  const e = await echoForward();
  try {
    const data = Buffer.from('hello through the tunnel');
    const want = `len=${data.length} sha256=${crypto.createHash('sha256').update(data).digest('hex')}`;
    assert.equal(await roundTrip(e.sock, data), want);
  } finally {
    await e.close();
  }
});

test('50 concurrent connections, 1 MiB each way, arrive intact', async () => {
  const e = await echoForward();
  try {
    const jobs = Array.from({ length: 50 }, (_, i) => {
      const data = crypto.randomBytes(1 << 20);
      data[0] = i;
      const want = `len=${data.length} sha256=${crypto.createHash('sha256').update(data).digest('hex')}`;
      return roundTrip(e.sock, data).then((got) => assert.equal(got, want));
    });
    await Promise.all(jobs);
  } finally {
    await e.close();
  }
});

test('after the ssh connection drops, it comes back and the socket works again', async () => {
  const before = session.connects;
  const down = new Promise<void>((r) => session.once('state', () => r()));
  guest.dropAll();
  await down;
  assert.notEqual(session.currentState, 'connected');
  // A request made while the link is down waits for the reconnect.
  const r = await get(hostSocket, '/_ping');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'OK');
  assert.ok(session.connects > before, 'reconnected');
  assert.equal(session.currentState, 'connected');
});

test('a guest with another host key is refused (pinning)', async () => {
  const impostor = newEd25519Pair();
  const g = await startFakeGuest({ hostPrivateKey: impostor.private, clientPublicKey: client.public, sockets: {} });
  const s = new GuestSession({
    host: '127.0.0.1',
    port: g.port,
    privateKey: client.private,
    hostPublicKey: host.public,
    log: silentLogger(),
    vmAlive: () => true,
  });
  try {
    await assert.rejects(s.connect(5000), (e) => isBerthError(e, 'GUEST_HOST_KEY_MISMATCH'));
  } finally {
    s.close();
    await g.close();
  }
});

test('a guest that never answers times out with GUEST_TIMEOUT', async () => {
  const silent = net.createServer((c) => c.destroy());
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const s = new GuestSession({
    host: '127.0.0.1',
    port: (silent.address() as net.AddressInfo).port,
    privateKey: client.private,
    hostPublicKey: host.public,
    log: silentLogger(),
    vmAlive: () => true,
  });
  try {
    await assert.rejects(s.connect(800), (e) => isBerthError(e, 'GUEST_TIMEOUT'));
  } finally {
    s.close();
    silent.close();
  }
});
