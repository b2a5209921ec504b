import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ControlClient } from '../../app/client/control-client.js';
import { ControlServer } from '../../app/engine/api/control-server.js';
import type { Handlers } from '../../app/contract/contract.js';
import { PROTOCOL_VERSION, type VmStatus } from '../../app/contract/contract.js';
import { dockerHandlers } from '../../app/engine/docker/docker-handlers.js';
import { BerthError, isBerthError } from '../../app/contract/errors.js';
import { silentLogger } from '../../app/base/log.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('api');
const paths = { controlSocket: path.join(t.dir, 'control.sock'), token: path.join(t.dir, 'control.token') };
const TOKEN = 'a'.repeat(64);
let server: ControlServer;
let starts = 0;

const status = (): VmStatus => ({
  instance: 'default',
  state: 'stopped',
  driver: 'fake',
  cpus: 2,
  memoryMiB: 2048,
  diskGiB: 64,
  dockerSocket: '/x/docker.sock',
  dockerHost: 'unix:///x/docker.sock',
  enginePid: process.pid,
});

const handlers: Handlers = {
  'vm.status': async () => status(),
  'vm.start': async () => {
    starts++;
    server.broadcast('vm.state', { state: 'starting', previous: 'stopped', at: new Date().toISOString() });
    return { ...status(), state: 'running' };
  },
  'vm.stop': async () => status(),
  'vm.restart': async () => status(),
  'settings.get': async () => ({ cpus: 2, memoryMiB: 2048, diskGiB: 64, accel: 'auto', driver: 'auto', portBind: 'loopback', ports: [], shares: [] }),
  'settings.update': async () => {
    throw new BerthError('INVALID_SETTINGS', 'invalid settings: memoryMiB: must be at least 512 MiB', 'Nothing was saved.');
  },
  'guest.sshEndpoint': async () => {
    throw new BerthError('VM_NOT_RUNNING', 'the VM is not running', 'Start it.');
  },
  'guest.logs': async () => ({ lines: [] }),
  'ports.list': async () => ({ ports: [], manual: [] }),
  'ports.add': async () => ({ ports: [], manual: [] }),
  'ports.remove': async () => ({ ports: [], manual: [] }),
  'shares.list': async () => ({ shares: [], configured: [] }),
  'shares.add': async () => ({ shares: [], configured: [] }),
  'shares.remove': async () => ({ shares: [], configured: [] }),
  'sync.list': async () => ({ syncs: [], configured: [] }),
  'sync.add': async () => ({ syncs: [], configured: [] }),
  'sync.remove': async () => ({ syncs: [], configured: [] }),
  'engine.shutdown': async () => ({}),
  'logs.read': async (p) => ({ source: p.source, file: '/x/engine.log', lines: [] }),
  'diagnostics.bundle': async () => ({ path: '/x/d.zip', fileName: 'd.zip', bytes: 0, base64: '', files: [] }),
  'engine.factoryReset': async () => {
    throw new BerthError('VM_BUSY', 'the VM is running', 'Stop the VM first.');
  },
  ...dockerHandlers({
    api: () => {
      throw new BerthError('VM_NOT_RUNNING', 'the VM is not running', 'Start it.');
    },
    broadcast: () => undefined,
  }),
};

before(async () => {
  fs.writeFileSync(paths.token, TOKEN + '\n', { mode: 0o600 });
  server = new ControlServer(paths.controlSocket, TOKEN, handlers, { version: 't', instance: 'default' }, silentLogger());
  await server.listen();
});
after(async () => {
  await server.close();
  t.cleanup();
});

/** A raw line-oriented connection, for sending what no real client would. */
async function raw(): Promise<{ send: (s: string) => void; next: () => Promise<Record<string, unknown>>; closed: Promise<void>; sock: net.Socket }> {
  const sock = net.createConnection(paths.controlSocket);
  sock.on('error', () => undefined); // EPIPE when writing on after the engine hung up
  await new Promise((r) => sock.once('connect', r));
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  let buf = '';
  sock.on('data', (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(l);
      else lines.push(l);
    }
  });
  const closed = new Promise<void>((r) => sock.on('close', () => r()));
  return {
    sock,
    send: (s) => sock.write(s),
    next: () => new Promise((r) => (lines.length ? r(JSON.parse(lines.shift()!)) : waiters.push((l) => r(JSON.parse(l))))),
    closed,
  };
}

test('the socket is owner-only', () => {
  assert.equal(fs.statSync(paths.controlSocket).mode & 0o777, 0o600);
});

test('calls before hello are refused', async () => {
  const c = await raw();
  c.send(JSON.stringify({ id: 1, method: 'vm.start', params: {} }) + '\n');
  const r = await c.next();
  assert.equal((r.error as { code: string }).code, 'UNAUTHORIZED');
  await c.closed;
  assert.equal(starts, 0);
});

test('a wrong token is refused and the connection closed', async () => {
  const c = await raw();
  c.send(JSON.stringify({ id: 1, method: 'hello', params: { token: 'b'.repeat(64) } }) + '\n');
  assert.equal(((await c.next()).error as { code: string }).code, 'UNAUTHORIZED');
  await c.closed;
});

test('a client of another protocol version is refused with PROTOCOL_MISMATCH and a hint, and drives nothing', async () => {
  const c = await raw();
  c.send(JSON.stringify({ id: 1, method: 'hello', params: { token: TOKEN, protocol: PROTOCOL_VERSION + 1 } }) + '\n');
  const err = (await c.next()).error as { code: string; message: string; hint: string };
  assert.equal(err.code, 'PROTOCOL_MISMATCH');
  assert.match(err.message, new RegExp(`speaks control protocol ${PROTOCOL_VERSION}, this client speaks ${PROTOCOL_VERSION + 1}`));
  assert.match(err.hint, /stop it/);
  c.send(JSON.stringify({ id: 2, method: 'vm.start', params: {} }) + '\n');
  assert.equal(((await c.next()).error as { code: string }).code, 'UNAUTHORIZED');
  assert.equal(starts, 0);
  // The same version, or none said (older clients), is welcome.
  const ok = await raw();
  ok.send(JSON.stringify({ id: 1, method: 'hello', params: { token: TOKEN, protocol: PROTOCOL_VERSION } }) + '\n');
  assert.equal(((await ok.next()).result as { protocol: number }).protocol, PROTOCOL_VERSION);
});

test('malformed input gets BAD_REQUEST and the connection stays usable', async () => {
  const c = await raw();
  c.send(JSON.stringify({ id: 1, method: 'hello', params: { token: TOKEN } }) + '\n');
  assert.ok((await c.next()).result);
  for (const bad of ['{nope', '[]', '42', JSON.stringify({ id: {}, method: 'x' }), JSON.stringify({ id: 2, method: 7 })]) {
    c.send(bad + '\n');
    const r = await c.next();
    assert.equal((r.error as { code: string }).code, 'BAD_REQUEST', bad);
  }
  c.send(JSON.stringify({ id: 3, method: 'no.such', params: {} }) + '\n');
  assert.match(((await c.next()).error as { message: string }).message, /unknown method/);
  c.send(JSON.stringify({ id: 4, method: 'vm.stop', params: { force: 'yes' } }) + '\n');
  const r4 = await c.next();
  assert.equal((r4.error as { code: string }).code, 'BAD_REQUEST');
  assert.match((r4.error as { message: string }).message, /force/);
  c.send(JSON.stringify({ id: 5, method: 'vm.status', params: { extra: 1 } }) + '\n');
  assert.equal(((await c.next()).error as { code: string }).code, 'BAD_REQUEST');
  c.send(JSON.stringify({ id: 6, method: 'vm.status' }) + '\n');
  assert.equal(((await c.next()).result as { state: string }).state, 'stopped');
  c.sock.destroy();
});

test('a huge request is refused and the connection closed', async () => {
  const c = await raw();
  c.send('x'.repeat(2 * 1024 * 1024));
  const r = await c.next();
  assert.equal((r.error as { code: string }).code, 'BAD_REQUEST');
  await c.closed;
});

test('the typed client: calls, errors with hints, events', async () => {
  const client = await ControlClient.connect(paths);
  const events: string[] = [];
  await client.subscribe((e, d) => events.push(`${e}:${(d as { state: string }).state}`));
  const s = await client.call('vm.start', {});
  assert.equal(s.state, 'running');
  await assert.rejects(
    client.call('settings.update', { patch: { memoryMiB: 1 } }),
    (e) => isBerthError(e, 'INVALID_SETTINGS') && e.hint === 'Nothing was saved.',
  );
  await assert.rejects(client.call('guest.sshEndpoint', {}), (e) => isBerthError(e, 'VM_NOT_RUNNING'));
  assert.deepEqual(events, ['vm.state:starting']);
  client.close();
});

test('no engine: a clear error', async () => {
  await assert.rejects(
    ControlClient.connect({ controlSocket: path.join(t.dir, 'none.sock'), token: paths.token }),
    (e) => isBerthError(e, 'ENGINE_NOT_RUNNING') && /berth start/.test(e.hint),
  );
});

test('a client meeting an engine that predates the check, or one that answers another protocol, says PROTOCOL_MISMATCH', async () => {
  const dir = shortTempDir('apv');
  try {
    for (const [what, answer] of [
      [
        'an engine before the check refuses the new field',
        { error: { code: 'BAD_REQUEST', message: 'bad params for hello: Unrecognized key: "protocol"', hint: 'Nothing was changed.' } },
      ],
      ['an engine of a newer protocol', { result: { protocol: PROTOCOL_VERSION + 1, version: '9.9.9', instance: 'default', pid: 1 } }],
    ] as const) {
      const sock = path.join(dir.dir, 'old.sock');
      fs.rmSync(sock, { force: true });
      fs.writeFileSync(path.join(dir.dir, 'token'), TOKEN);
      const srv = net.createServer((c) => c.once('data', (d) => c.write(JSON.stringify({ id: JSON.parse(String(d).split('\n')[0]!).id, ...answer }) + '\n')));
      await new Promise<void>((r) => srv.listen(sock, r));
      try {
        await assert.rejects(
          ControlClient.connect({ controlSocket: sock, token: path.join(dir.dir, 'token') }),
          (e) => isBerthError(e, 'PROTOCOL_MISMATCH'),
          what,
        );
      } finally {
        srv.close();
      }
    }
  } finally {
    dir.cleanup();
  }
});
