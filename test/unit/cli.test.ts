/**
 * The `berth` command as a user meets it: usage errors exit 2, failures
 * exit 1 with a message and a hint, bad settings change nothing.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { berth } from '../helpers/run.js';
import { fakeImageDir, shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('cli');
const env = {
  ...process.env,
  BERTH_HOME: path.join(t.dir, 'home'),
  BERTH_CACHE: path.join(t.dir, 'cache'),
  DOCKER_CONFIG: path.join(t.dir, 'docker'),
  NO_COLOR: '1',
};
after(() => t.cleanup());

test('--help and --version exit 0', async () => {
  const h = await berth(['--help'], env);
  assert.equal(h.code, 0);
  for (const c of ['start', 'stop', 'restart', 'status', 'shell', 'logs', 'daemon', 'context', 'settings']) assert.match(h.stdout, new RegExp(`\\b${c}\\b`));
  const v = await berth(['--version'], env);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^\d+\.\d+\.\d+/);
});

for (const [args, pattern] of [
  [['frobnicate'], /unknown command/],
  [['status', '--frob'], /unknown option/],
  [['--instance', 'Bad Name', 'status'], /not a valid instance name/],
  [['logs', '--serial', '--guest'], /pick one of/],
  [['logs', '-n', 'many'], /positive whole number/],
  [['settings', 'set', 'nonsense'], /is not KEY=VALUE/],
  [['settings', 'set'], /missing required argument/],
  [['port', 'add', '80'], /is not HOST:GUEST/],
  [['port', 'add', '8080:80/sctp'], /is not HOST:GUEST/],
  [['port', 'rm', 'x'], /is not a port/],
] as const) {
  test(`usage error exits 2: berth ${args.join(' ')}`, async () => {
    const r = await berth([...args], env);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, pattern);
    assert.match(r.stderr, /--help/);
  });
}

test('status while stopped: exit 3 (not running), human and JSON', async () => {
  const r = await berth(['status'], env);
  assert.equal(r.code, 3);
  assert.match(r.stdout, /stopped/);
  const j = await berth(['status', '--json'], env);
  assert.equal(j.code, 3);
  const s = JSON.parse(j.stdout);
  assert.equal(s.state, 'stopped');
  assert.equal(s.dockerHost, `unix://${env.BERTH_HOME}/default/docker.sock`);
});

test('stop while stopped is harmless', async () => {
  const r = await berth(['stop'], env);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /not running/);
});

test('shell while stopped: exit 1 with a hint', async () => {
  const r = await berth(['shell', '--', 'true'], env);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /ENGINE_NOT_RUNNING/);
  assert.match(r.stderr, /hint: .*berth start/);
});

test('settings: a bad value is refused and nothing is saved; a good one is', async () => {
  const file = path.join(env.BERTH_HOME, 'default', 'settings.json');
  const bad = await berth(['settings', 'set', 'memoryMiB=100'], env);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /INVALID_SETTINGS/);
  assert.match(bad.stderr, /at least 512/);
  assert.ok(!fs.existsSync(file));
  const badJson = await berth(['settings', 'set', 'cpus=1', 'memoryMiB=100', '--json'], env);
  assert.equal(badJson.code, 1);
  assert.equal(JSON.parse(badJson.stdout).error.code, 'INVALID_SETTINGS');
  assert.ok(!fs.existsSync(file), 'no partial update');

  const good = await berth(['settings', 'set', 'cpus=1', 'memoryMiB=1024'], env);
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /restart/);
  const show = JSON.parse((await berth(['settings', 'show', '--json'], env)).stdout);
  assert.equal(show.cpus, 1);
  assert.equal(show.memoryMiB, 1024);
});

test('the driver setting: a driver that does not exist is refused with the choices; status shows the setting', async () => {
  const bad = await berth(['settings', 'set', 'driver=virtualbox'], env);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /INVALID_SETTINGS/);
  assert.match(bad.stderr, /driver: .*"auto".*"qemu".*"vfkit".*"hyperv"/);
  const good = await berth(['settings', 'set', 'driver=qemu'], env);
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /Saved: driver=qemu/);
  const st = await berth(['status'], env);
  assert.match(st.stdout, /^driver {8}qemu$/m);
  assert.equal(JSON.parse((await berth(['status', '--json'], env)).stdout).driver, 'qemu');
  await berth(['settings', 'set', 'driver=auto'], env);
});

test('ports while stopped: manual forwards are kept in settings and listed as inactive', async () => {
  const e = { ...env, BERTH_INSTANCE: 'portsoff' };
  assert.match((await berth(['ports'], e)).stdout, /No ports are forwarded/);
  const add = await berth(['port', 'add', '18500:80'], e);
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout, /when the VM runs/);
  assert.equal((await berth(['port', 'add', '18501:53/udp', '--host-ip', '127.0.0.2'], e)).code, 0);
  const list = await berth(['ports'], e);
  assert.match(list.stdout, /127\.0\.0\.1:18500\s+guest:80\s+tcp\s+manual\s+inactive/);
  assert.match(list.stdout, /127\.0\.0\.2:18501\s+guest:53\s+udp/);
  const j = JSON.parse((await berth(['ports', '--json'], e)).stdout);
  assert.deepEqual(j.manual, [
    { hostPort: 18500, guestPort: 80, proto: 'tcp' },
    { hostPort: 18501, guestPort: 53, proto: 'udp', hostIp: '127.0.0.2' },
  ]);
  const badIp = await berth(['port', 'add', '18502:80', '--host-ip', 'nope'], e);
  assert.equal(badIp.code, 1);
  assert.match(badIp.stderr, /hostIp: must be an IPv4 or IPv6 address/);
  assert.equal((await berth(['port', 'rm', '18500'], e)).code, 0);
  const missing = await berth(['port', 'rm', '18500'], e);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no manual forward/);
  assert.equal((await berth(['port', 'rm', '18501/udp'], e)).code, 0);
});

test('start without an image: exit 1 with IMAGE_MISSING; stop then leaves no engine behind', async () => {
  const e = { ...env, BERTH_IMAGE_DIR: path.join(t.dir, 'no-image') };
  const r = await berth(['start'], e, { timeoutMs: 60_000 });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /IMAGE_MISSING/);
  assert.match(r.stderr, /hint:/);
  const s = JSON.parse((await berth(['status', '--json'], e)).stdout);
  assert.equal(s.state, 'error');
  assert.equal(s.error.code, 'IMAGE_MISSING');
  assert.equal((await berth(['stop'], e)).code, 0);
  for (let i = 0; i < 50 && fs.existsSync(path.join(env.BERTH_HOME, 'default', 'engine.lock')); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(!fs.existsSync(path.join(env.BERTH_HOME, 'default', 'engine.lock')), 'the engine exited');
  assert.ok(!fs.existsSync(path.join(env.BERTH_HOME, 'default', 'control.sock')));
});

test('start without QEMU: exit 1 with QEMU_MISSING and an install hint', async () => {
  const e = {
    ...env,
    BERTH_INSTANCE: 'noqemu',
    BERTH_IMAGE_DIR: fakeImageDir(path.join(t.dir, 'img')),
    BERTH_QEMU: '/nonexistent/qemu-system-x86_64',
    BERTH_ACCEL: 'tcg',
  };
  const r = await berth(['start'], e, { timeoutMs: 60_000 });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /QEMU_MISSING/);
  assert.match(r.stderr, /hint: .*[Ii]nstall QEMU/);
  assert.equal((await berth(['stop'], e)).code, 0);
});
