/**
 * The container detail view's engine side: `containers.inspect` (env,
 * mounts, ports, labels from `docker inspect`, with the guest's answer
 * treated as hostile) and `containers.stats` (one Docker stats stream per
 * open view, samples as `docker stats` computes them, closed by stop, by
 * the container going, and by the limit).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { methods, type EventName } from '../../app/contract/contract.js';
import { isBerthError } from '../../app/contract/errors.js';
import { waitFor } from '../../app/base/process-util.js';
import { DockerApi } from '../../app/engine/docker/docker-api.js';
import { dockerHandlers } from '../../app/engine/docker/docker-handlers.js';
import { containerDetails } from '../../app/engine/docker/docker-inspect.js';
import { DockerStats, MAX_STATS_LINE, statsNumbers } from '../../app/engine/docker/docker-stats.js';
import { startFakeDockerEngine, type FakeDockerd } from '../helpers/fake-dockerd.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('dsi');
let d: FakeDockerd;
const events: { event: EventName; data: any }[] = [];
const abort = new AbortController();
let h: ReturnType<typeof dockerHandlers>;

before(async () => {
  d = await startFakeDockerEngine(path.join(t.dir, 'docker.sock'));
  d.statsMs = 100;
  h = dockerHandlers({
    api: () => new DockerApi(d.socketPath),
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

const until = async (check: () => boolean, ms: number) => assert.ok(await waitFor(check, ms), `timed out: ${check}`);
const of = (name: EventName, stream: string) => events.filter((e) => e.event === name && e.data.stream === stream).map((e) => e.data);
const parse = <M extends keyof typeof methods>(m: M, p: unknown) => methods[m].params.parse(p) as any;

test('statsNumbers: CPU as docker stats computes it, memory without the inactive page cache (cgroup v2 and v1)', () => {
  const v2 = statsNumbers({
    cpu_stats: { cpu_usage: { total_usage: 3e9 }, system_cpu_usage: 20e9, online_cpus: 4 },
    precpu_stats: { cpu_usage: { total_usage: 2e9 }, system_cpu_usage: 16e9 },
    memory_stats: { usage: 100 * 2 ** 20, limit: 2 ** 30, stats: { inactive_file: 20 * 2 ** 20 } },
    pids_stats: { current: 7 },
  });
  // 1e9 of 4e9 system ns, times 4 CPUs: one CPU busy.
  assert.deepEqual(v2, { cpuPercent: 100, memoryBytes: 80 * 2 ** 20, memoryLimitBytes: 2 ** 30, pids: 7 });
  const v1 = statsNumbers({
    cpu_stats: { cpu_usage: { total_usage: 150, percpu_usage: [1, 1] }, system_cpu_usage: 2000 },
    precpu_stats: { cpu_usage: { total_usage: 100 }, system_cpu_usage: 1000 },
    memory_stats: { usage: 1000, limit: 5000, stats: { total_inactive_file: 400 } },
  });
  assert.deepEqual(v1, { cpuPercent: 10, memoryBytes: 600, memoryLimitBytes: 5000 });
});

test('statsNumbers: a stopped container, and hostile or missing fields, give zeros, never NaN or negatives', () => {
  assert.deepEqual(statsNumbers({ read: '0001-01-01T00:00:00Z', cpu_stats: {}, precpu_stats: {}, memory_stats: {} }), {
    cpuPercent: 0,
    memoryBytes: 0,
    memoryLimitBytes: 0,
  });
  for (const raw of [
    null,
    'x',
    42,
    [],
    { cpu_stats: { cpu_usage: { total_usage: 'lots' }, system_cpu_usage: -5 }, memory_stats: { usage: Infinity, limit: -1 } },
  ]) {
    const n = statsNumbers(raw);
    for (const v of Object.values(n)) assert.ok(Number.isFinite(v) && v >= 0, `${JSON.stringify(raw)} -> ${JSON.stringify(n)}`);
  }
  // A counter that went backwards (a restarted container) is not a negative CPU; more than every CPU is cut to every CPU.
  assert.equal(
    statsNumbers({
      cpu_stats: { cpu_usage: { total_usage: 1 }, system_cpu_usage: 10, online_cpus: 1 },
      precpu_stats: { cpu_usage: { total_usage: 9 }, system_cpu_usage: 5 },
    }).cpuPercent,
    0,
  );
  assert.equal(
    statsNumbers({
      cpu_stats: { cpu_usage: { total_usage: 100 }, system_cpu_usage: 10, online_cpus: 2 },
      precpu_stats: { cpu_usage: { total_usage: 0 }, system_cpu_usage: 5 },
    }).cpuPercent,
    200,
  );
  // Cache larger than usage (an odd kernel): usage as it is.
  assert.equal(statsNumbers({ memory_stats: { usage: 10, stats: { inactive_file: 50 } } }).memoryBytes, 10);
});

test('containers.inspect: env, mounts, ports (once per address family), labels, networks, command, project', async () => {
  const c = d.addContainer({
    name: 'shop-db-1',
    Image: 'postgres:16',
    Env: ['POSTGRES_PASSWORD=s3cret=x', 'EMPTY=', 'NOVALUE'],
    Labels: { 'com.docker.compose.project': 'shop', 'com.docker.compose.service': 'db' },
    Mounts: [
      { Type: 'volume', Name: 'pgdata', Source: '/var/lib/docker/volumes/pgdata/_data', Destination: '/var/lib/postgresql/data', RW: true },
      { Type: 'bind', Source: '/home/me/init', Destination: '/docker-entrypoint-initdb.d', RW: false },
    ],
    Ports: [
      { IP: '0.0.0.0', PrivatePort: 5432, PublicPort: 15432, Type: 'tcp' },
      { IP: '::', PrivatePort: 5432, PublicPort: 15432, Type: 'tcp' },
      { PrivatePort: 9000, Type: 'udp' },
    ],
  });
  const r = await h['containers.inspect'](parse('containers.inspect', { id: 'shop-db-1' }));
  assert.ok(methods['containers.inspect'].result.safeParse(r).success, 'the answer fits the contract');
  assert.equal(r.id, c.Id);
  assert.equal(r.name, 'shop-db-1');
  assert.equal(r.image, 'postgres:16');
  assert.equal(r.state, 'running');
  assert.equal(r.project, 'shop');
  assert.deepEqual(r.command, ['sh', '-c', 'serve']);
  assert.deepEqual(r.env, [
    { name: 'POSTGRES_PASSWORD', value: 's3cret=x' },
    { name: 'EMPTY', value: '' },
    { name: 'NOVALUE', value: '' },
  ]);
  assert.deepEqual(r.labels, [
    { name: 'com.docker.compose.project', value: 'shop' },
    { name: 'com.docker.compose.service', value: 'db' },
  ]);
  assert.deepEqual(r.mounts, [
    { type: 'volume', source: 'pgdata', destination: '/var/lib/postgresql/data', readOnly: false },
    { type: 'bind', source: '/home/me/init', destination: '/docker-entrypoint-initdb.d', readOnly: true },
  ]);
  assert.deepEqual(r.ports, [
    { privatePort: 5432, proto: 'tcp', publicPort: 15432, hostIp: '0.0.0.0', url: 'http://localhost:15432' },
    { privatePort: 9000, proto: 'udp' },
  ]);
  assert.deepEqual(r.networks, [{ name: 'bridge', ipAddress: '172.17.0.2' }]);
  await assert.rejects(h['containers.inspect'](parse('containers.inspect', { id: 'nope' })), (e: unknown) => isBerthError(e, 'DOCKER_NOT_FOUND'));
  assert.throws(() => parse('containers.inspect', { id: '../x' }), 'a bad id never reaches Docker');
});

test('containerDetails: whatever the guest sends, the view fits the contract and drops what is odd', () => {
  const hostile = [
    null,
    'x',
    {
      Config: { Env: [1, null, 'A=1'], Labels: { a: 5, b: 'ok' } },
      Mounts: 'no',
      NetworkSettings: { Ports: { '80/tcp': [{ HostPort: '99999' }], 'x/tcp': null, '81/udp': 'no' } },
    },
    { Id: 7, Name: ['x'], Args: [1, 'a'], Mounts: [null, { Type: 5 }], NetworkSettings: { Networks: { n: null } } },
    { Config: { Env: Array.from({ length: 5000 }, (_, i) => `K${i}=${'v'.repeat(10)}`) } },
  ];
  for (const raw of hostile) {
    const v = containerDetails(raw);
    assert.ok(methods['containers.inspect'].result.safeParse(v).success, JSON.stringify(raw).slice(0, 80));
  }
  const v = containerDetails(hostile[2]);
  assert.deepEqual(v.env, [{ name: 'A', value: '1' }]);
  assert.deepEqual(v.labels, [{ name: 'b', value: 'ok' }]);
  assert.deepEqual(v.ports, [{ privatePort: 81, proto: 'udp' }], 'a port past 65535 and a bad spec are dropped');
  assert.equal(containerDetails(hostile[4]).env.length, 500, 'long lists are cut');
});

test('containers.stats: one Docker stream, samples about once a second as events, stop closes it', async () => {
  d.addContainer({ name: 'busy', usage: { cpuNsPerSec: 0.5e9, memoryBytes: 64 * 2 ** 20 } });
  const before = d.openStats();
  const { stream } = await h['containers.stats'](parse('containers.stats', { id: 'busy' }));
  assert.match(stream, /^stats-[0-9a-f]+$/);
  assert.ok(methods['containers.stats.stop'].params.safeParse({ stream }).success, 'its id is one the contract accepts');
  await until(() => of('containers.stats.data', stream).length >= 2, 5000);
  assert.equal(d.openStats(), before + 1, 'one dockerd stats request for the stream');
  const s = of('containers.stats.data', stream)[0];
  // 0.5 s of CPU per second on a 2-CPU system: half of one CPU.
  assert.equal(s.cpuPercent, 50);
  assert.equal(s.memoryBytes, 64 * 2 ** 20);
  assert.equal(s.memoryLimitBytes, 2 * 2 ** 30);
  assert.equal(s.pids, 3);
  assert.ok(!Number.isNaN(Date.parse(s.at)));
  // dockerd sends every 100 ms here; the engine passes on at most two a second.
  const n0 = of('containers.stats.data', stream).length;
  await new Promise((r) => setTimeout(r, 1000));
  const n1 = of('containers.stats.data', stream).length;
  assert.ok(n1 - n0 <= 3, `${n1 - n0} samples in a second`);
  await h['containers.stats.stop'](parse('containers.stats.stop', { stream }));
  assert.deepEqual(of('containers.stats.end', stream), [{ stream }]);
  await until(() => d.openStats() === before, 2000);
  await assert.rejects(h['containers.stats.stop'](parse('containers.stats.stop', { stream })), (e: unknown) => isBerthError(e, 'STREAM_NOT_FOUND'));
  await assert.rejects(h['containers.stats'](parse('containers.stats', { id: 'nope' })), (e: unknown) => isBerthError(e, 'DOCKER_NOT_FOUND'));
});

test('containers.stats: the stream ends when the container goes', async () => {
  const c = d.addContainer({ name: 'brief' });
  const { stream } = await h['containers.stats'](parse('containers.stats', { id: 'brief' }));
  await until(() => of('containers.stats.data', stream).length >= 1, 5000);
  d.remove(c.Id); // dockerd ends the stats stream
  await until(() => of('containers.stats.end', stream).length === 1, 5000);
  await assert.rejects(h['containers.stats.stop'](parse('containers.stats.stop', { stream })), (e: unknown) => isBerthError(e, 'STREAM_NOT_FOUND'));
});

test('DockerStats: past the limit the oldest stream is closed with a reason; closeAll ends the rest', async () => {
  const mine: { event: EventName; data: any }[] = [];
  const stats = new DockerStats((event, data) => mine.push({ event, data }), 2);
  d.addContainer({ name: 'lim' });
  const api = new DockerApi(d.socketPath);
  const a = await stats.start(api, { id: 'lim' });
  const b = await stats.start(api, { id: 'lim' });
  const c = await stats.start(api, { id: 'lim' });
  assert.equal(stats.open, 2);
  const endA = mine.find((e) => e.event === 'containers.stats.end' && e.data.stream === a.stream);
  assert.equal(endA?.data.error.code, 'STREAM_NOT_FOUND');
  assert.match(endA?.data.error.message, /too many/);
  stats.closeAll();
  assert.equal(stats.open, 0);
  for (const s of [b, c]) assert.ok(mine.some((e) => e.event === 'containers.stats.end' && e.data.stream === s.stream));
});

test('DockerStats: a dockerd that sends a line past the limit, or junk, ends the stream with an error and nothing else', async () => {
  const sock = path.join(t.dir, 'evil.sock');
  const server = http.createServer((req, res) => {
    req.resume();
    if (req.url!.includes('/json')) return void res.end('{}');
    res.writeHead(200);
    res.write('not json\n');
    res.write('x'.repeat(MAX_STATS_LINE + 10));
  });
  await new Promise<void>((r) => server.listen(sock, r));
  try {
    const mine: { event: EventName; data: any }[] = [];
    const stats = new DockerStats((event, data) => mine.push({ event, data }));
    const { stream } = await stats.start(new DockerApi(sock), { id: 'evil' });
    await until(() => mine.some((e) => e.event === 'containers.stats.end'), 5000);
    assert.deepEqual(
      mine.map((e) => e.event),
      ['containers.stats.end'],
      'no sample from junk',
    );
    assert.equal(mine[0]!.data.stream, stream);
    assert.match(mine[0]!.data.error.message, /over 256 KiB/);
    assert.equal(stats.open, 0);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
