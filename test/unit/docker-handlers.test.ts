/**
 * The contract's Docker methods against a fake dockerd: views, errors with
 * hints, live change events, log streams (multiplexed and tty, follow,
 * tail, timestamps, stop) and terminal sessions over a hijacked exec.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { methods, type EventName } from '../../app/contract/contract.js';
import { DockerApi } from '../../app/engine/docker/docker-api.js';
import { dockerHandlers } from '../../app/engine/docker/docker-handlers.js';
import { StdStreamDemuxer } from '../../app/engine/docker/docker-streams.js';
import { BerthError, isBerthError } from '../../app/contract/errors.js';
import { waitFor } from '../../app/base/process-util.js';
import { startFakeDockerEngine, type FakeDockerd } from '../helpers/fake-dockerd.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('dh');
let d: FakeDockerd;
let running = true;
const events: { event: EventName; data: any }[] = [];
const abort = new AbortController();
let h: ReturnType<typeof dockerHandlers>;

before(async () => {
  d = await startFakeDockerEngine(path.join(t.dir, 'docker.sock'));
  h = dockerHandlers({
    api: () => {
      if (!running) throw new BerthError('VM_NOT_RUNNING', 'the VM is not running', 'Start it.');
      return new DockerApi(d.socketPath);
    },
    broadcast: (event, data) => events.push({ event, data }),
    signal: abort.signal,
    watchRetryMs: 50,
  });
});
after(async () => {
  abort.abort();
  await d.close();
  t.cleanup();
});

/** Wait for `check`; fail the test when it never holds. */
const until = async (check: () => boolean, ms: number) => assert.ok(await waitFor(check, ms), `timed out: ${check}`);
const eventsOf = (name: EventName) => events.filter((e) => e.event === name).map((e) => e.data);
/** Params as the control server would pass them: parsed by the contract's schema. */
const parse = <M extends keyof typeof methods>(m: M, p: unknown) => methods[m].params.parse(p) as any;

test('containers.list: names, state, published ports as localhost links, newest first', async () => {
  d.addContainer({
    name: 'web',
    Created: 200,
    Ports: [
      { IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
      { IP: '::', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
      { PrivatePort: 443, Type: 'tcp' },
      { IP: '0.0.0.0', PrivatePort: 53, PublicPort: 5353, Type: 'udp' },
    ],
    Labels: { 'com.docker.compose.project': 'shop' },
  });
  d.addContainer({ name: 'old', Created: 100, State: 'exited' });
  const r = await h['containers.list'](parse('containers.list', {}));
  assert.deepEqual(
    r.containers.map((c) => c.name),
    ['web', 'old'],
  );
  const web = r.containers[0]!;
  assert.equal(web.state, 'running');
  assert.equal(web.project, 'shop');
  assert.deepEqual(web.ports, [
    { privatePort: 53, publicPort: 5353, hostIp: '0.0.0.0', proto: 'udp' },
    { privatePort: 80, publicPort: 8080, hostIp: '0.0.0.0', proto: 'tcp', url: 'http://localhost:8080' },
    { privatePort: 443, proto: 'tcp' },
  ]);
  const onlyRunning = await h['containers.list'](parse('containers.list', { all: false }));
  assert.deepEqual(
    onlyRunning.containers.map((c) => c.name),
    ['web'],
  );
});

test('start, stop, restart and remove answer with the new view; Docker refusals are coded errors with hints', async () => {
  const c = d.addContainer({ name: 'svc', State: 'exited' });
  const started = await h['containers.start'](parse('containers.start', { id: 'svc' }));
  assert.equal(started.container?.state, 'running');
  assert.equal(started.container?.id, c.Id);
  // Already running: Docker's 304 is not an error.
  assert.equal((await h['containers.start'](parse('containers.start', { id: c.Id.slice(0, 12) }))).container?.state, 'running');
  await assert.rejects(h['containers.remove'](parse('containers.remove', { id: 'svc' })), (e: unknown) => {
    assert.ok(isBerthError(e, 'DOCKER_CONFLICT'));
    assert.match(e.message, /running container/);
    assert.match(e.hint, /Stop the container first/);
    return true;
  });
  assert.equal((await h['containers.stop'](parse('containers.stop', { id: 'svc' }))).container?.state, 'exited');
  assert.equal((await h['containers.restart'](parse('containers.restart', { id: 'svc' }))).container?.state, 'running');
  await h['containers.remove'](parse('containers.remove', { id: 'svc', force: true }));
  assert.equal(d.containers.has(c.Id), false);
  await assert.rejects(
    h['containers.stop'](parse('containers.stop', { id: 'svc' })),
    (e: unknown) => isBerthError(e, 'DOCKER_NOT_FOUND') && /removed meanwhile/.test(e.hint),
  );
});

test('bad ids never reach Docker: the contract refuses them', () => {
  for (const id of ['../etc', '', 'a b', '/x', 'x?y=1', 'a'.repeat(200)]) {
    assert.equal(methods['containers.start'].params.safeParse({ id }).success, false, id);
  }
  assert.equal(methods['containers.logs'].params.safeParse({ id: 'web', tail: -1 }).success, false);
  assert.equal(methods['containers.logs'].params.safeParse({ id: 'web', extra: 1 }).success, false);
  assert.equal(methods['terminal.start'].params.safeParse({ id: 'web', cols: 0, rows: 24 }).success, false);
  assert.equal(methods['terminal.input'].params.safeParse({ session: 'term-../x', data: 'a' }).success, false);
  assert.equal(methods['images.remove'].params.safeParse({ id: 'busybox/../../x' }).success, false);
  assert.equal(methods['images.remove'].params.safeParse({ id: 'registry.local:5000/team/app:1.0' }).success, true);
  assert.equal(methods['volumes.remove'].params.safeParse({ name: 'a/b' }).success, false);
});

test('VM not running: the Docker methods say so', async () => {
  running = false;
  try {
    await assert.rejects(h['containers.list'](parse('containers.list', {})), (e: unknown) => isBerthError(e, 'VM_NOT_RUNNING'));
  } finally {
    running = true;
  }
});

test('Docker unreachable: DOCKER_UNREACHABLE with a hint', async () => {
  const h2 = dockerHandlers({ api: () => new DockerApi(path.join(t.dir, 'nothing.sock')), broadcast: () => undefined, signal: AbortSignal.abort() });
  await assert.rejects(h2['images.list']({}), (e: unknown) => isBerthError(e, 'DOCKER_UNREACHABLE') && /starting or stopping/.test(e.hint));
});

test('docker events become containers.changed with the fresh view, and destroy with null', async () => {
  await h['containers.list'](parse('containers.list', {})); // the first call starts the watcher
  await until(() => d.requests.some((r) => r.startsWith('GET /v1.41/events')), 2000);
  events.length = 0;
  const c = d.addContainer({ name: 'live' });
  await until(() => eventsOf('containers.changed').some((e) => e.id === c.Id), 2000);
  const created = eventsOf('containers.changed').filter((e) => e.id === c.Id);
  assert.equal(created.length, 1, 'create+start in one burst give one event');
  assert.equal(created[0].container.name, 'live');
  assert.equal(created[0].container.state, 'running');
  d.remove(c.Id);
  await until(() => eventsOf('containers.changed').some((e) => e.id === c.Id && e.container === null), 2000);
  d.event({ Type: 'container', Action: 'exec_start: sh', Actor: { ID: c.Id } });
  d.event({ Type: 'volume', Action: 'create', Actor: { ID: 'v1' } });
  d.event({ Type: 'image', Action: 'delete', Actor: { ID: 'sha256:x' } });
  await until(() => eventsOf('images.changed').length > 0 && eventsOf('volumes.changed').length > 0, 2000);
  assert.deepEqual(eventsOf('volumes.changed'), [{ name: 'v1', action: 'create' }]);
});

test('the event stream comes back after it drops (VM restarted)', async () => {
  d.dropEvents();
  const before = d.requests.filter((r) => r.startsWith('GET /v1.41/events')).length;
  await until(() => d.requests.filter((r) => r.startsWith('GET /v1.41/events')).length > before, 3000);
  events.length = 0;
  const c = d.addContainer({ name: 'again' });
  await until(() => eventsOf('containers.changed').some((e) => e.id === c.Id), 2000);
});

test('log stream: tail, stdout and stderr apart, follow, timestamps, stop', async () => {
  const c = d.addContainer({ name: 'logger' });
  for (let i = 0; i < 10; i++) d.log(c.Id, `line ${i}\n`, i % 2 ? 'stderr' : 'stdout');
  const { stream, tty } = await h['containers.logs'](parse('containers.logs', { id: 'logger', tail: 3, timestamps: true }));
  assert.equal(tty, false);
  assert.match(stream, /^logs-[0-9a-f]+$/);
  const text = () =>
    eventsOf('containers.logs.data')
      .filter((e) => e.stream === stream)
      .map((e) => e.text)
      .join('');
  await until(() => text().includes('line 9'), 2000);
  assert.doesNotMatch(text(), /line 6/, 'only the last 3 lines');
  assert.match(text(), /^\d{4}-\d\d-\d\dT[\d:.]+Z line 7\n/m);
  assert.ok(eventsOf('containers.logs.data').some((e) => e.stream === stream && e.source === 'stderr' && e.text.includes('line 7')));
  d.log(c.Id, 'later\n');
  await until(() => text().includes('later'), 2000);
  d.log(c.Id, 'café ✓\n');
  await until(() => text().includes('café ✓'), 2000);
  await h['containers.logs.stop'](parse('containers.logs.stop', { stream }));
  assert.deepEqual(
    eventsOf('containers.logs.end').filter((e) => e.stream === stream),
    [{ stream }],
  );
  await assert.rejects(h['containers.logs.stop'](parse('containers.logs.stop', { stream })), (e: unknown) => isBerthError(e, 'STREAM_NOT_FOUND'));
});

test('log stream of a tty container, without follow: ends by itself', async () => {
  const c = d.addContainer({ name: 'ttyc', Tty: true });
  d.log(c.Id, 'raw output\r\n');
  const { stream, tty } = await h['containers.logs'](parse('containers.logs', { id: c.Id, follow: false }));
  assert.equal(tty, true);
  await until(() => eventsOf('containers.logs.end').some((e) => e.stream === stream), 2000);
  assert.equal(eventsOf('containers.logs.data').find((e) => e.stream === stream)?.text, 'raw output\r\n');
  await assert.rejects(h['containers.logs'](parse('containers.logs', { id: 'nope' })), (e: unknown) => isBerthError(e, 'DOCKER_NOT_FOUND'));
});

test('demuxer: frames split at any byte boundary', () => {
  const got: string[] = [];
  const dm = new StdStreamDemuxer((s, p) => got.push(`${s}:${p}`));
  const f = (type: number, s: string) => {
    const p = Buffer.from(s);
    const hd = Buffer.alloc(8);
    hd[0] = type;
    hd.writeUInt32BE(p.length, 4);
    return Buffer.concat([hd, p]);
  };
  const all = Buffer.concat([f(1, 'hello'), f(2, 'oops'), f(1, '')]);
  for (let i = 0; i < all.length; i++) dm.push(all.subarray(i, i + 1));
  assert.deepEqual(got, ['stdout:hello', 'stderr:oops', 'stdout:']);
});

test('terminal: hijacked exec with a pty size, input, output, resize, exit code', async () => {
  const c = d.addContainer({ name: 'shell' });
  const { session } = await h['terminal.start'](parse('terminal.start', { id: 'shell', cols: 100, rows: 30 }));
  const exec = [...d.execs.values()].find((e) => e.container === c.Id)!;
  assert.deepEqual(exec.cmd.slice(0, 2), ['/bin/sh', '-c']);
  assert.deepEqual(exec.resizes, ['100x30']);
  const out = () =>
    eventsOf('terminal.output')
      .filter((e) => e.session === session)
      .map((e) => e.data)
      .join('');
  await until(() => out().includes('/ # '), 2000);
  await h['terminal.input'](parse('terminal.input', { session, data: 'echo hi-42\r' }));
  await until(() => out().includes('hi-42\r\n/ # '), 2000);
  await h['terminal.resize'](parse('terminal.resize', { session, cols: 80, rows: 24 }));
  assert.deepEqual(exec.resizes, ['100x30', '80x24']);
  await h['terminal.input'](parse('terminal.input', { session, data: 'exit 3\r' }));
  await until(() => eventsOf('terminal.exit').some((e) => e.session === session), 2000);
  assert.deepEqual(
    eventsOf('terminal.exit').find((e) => e.session === session),
    { session, exitCode: 3 },
  );
  await assert.rejects(h['terminal.input'](parse('terminal.input', { session, data: 'x' })), (e: unknown) => isBerthError(e, 'STREAM_NOT_FOUND'));
});

test('terminal: stop ends the session; a stopped container refuses one with a hint', async () => {
  d.addContainer({ name: 'sh2' });
  const { session } = await h['terminal.start'](parse('terminal.start', { id: 'sh2', cols: 80, rows: 24, command: ['sh'] }));
  await h['terminal.stop'](parse('terminal.stop', { session }));
  await until(() => eventsOf('terminal.exit').some((e) => e.session === session), 2000);
  d.addContainer({ name: 'down', State: 'exited' });
  await assert.rejects(h['terminal.start'](parse('terminal.start', { id: 'down', cols: 80, rows: 24 })), (e: unknown) => isBerthError(e, 'DOCKER_CONFLICT'));
});

test('images: list with tags, size and use; remove in use is a conflict; prune', async () => {
  const r = await h['images.list']({});
  const bb = r.images.find((i) => i.tags.includes('busybox:latest'))!;
  assert.equal(bb.inUse, true);
  assert.equal(bb.size, 4_400_000);
  assert.equal(r.images.find((i) => !i.tags.length)?.inUse, false);
  await assert.rejects(
    h['images.remove'](parse('images.remove', { id: 'busybox:latest' })),
    (e: unknown) => isBerthError(e, 'DOCKER_CONFLICT') && /remove that container first/.test(e.hint),
  );
  const p = await h['images.prune'](parse('images.prune', {}));
  assert.deepEqual(p, { deleted: 1, reclaimedBytes: 12_000_000 });
  const rm = await h['images.remove'](parse('images.remove', { id: 'busybox:latest', force: true }));
  assert.deepEqual(rm.untagged, ['busybox:latest']);
  assert.equal(rm.deleted.length, 1);
});

test('volumes: list with size and users, remove, prune', async () => {
  d.volumes.push({ Name: 'used', Driver: 'local', Mountpoint: '/m', CreatedAt: '2024-01-02T00:00:00Z', size: 10, refs: 1 });
  const r = await h['volumes.list']({});
  assert.deepEqual(
    r.volumes.map((v) => [v.name, v.size, v.refCount]),
    [
      ['data', 1_048_576, 0],
      ['used', 10, 1],
    ],
  );
  await assert.rejects(h['volumes.remove'](parse('volumes.remove', { name: 'used' })), (e: unknown) => isBerthError(e, 'DOCKER_CONFLICT'));
  assert.deepEqual(await h['volumes.prune']({}), { deleted: 1, reclaimedBytes: 1_048_576 });
  await assert.rejects(h['volumes.remove'](parse('volumes.remove', { name: 'data' })), (e: unknown) => isBerthError(e, 'DOCKER_NOT_FOUND'));
});

test('docker.info', async () => {
  const i = await h['docker.info']({});
  assert.equal(i.serverVersion, '20.10-fake');
  assert.ok(i.running >= 1);
});
