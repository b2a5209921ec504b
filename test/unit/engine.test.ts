/**
 * The engine end to end with a fake driver and a fake guest: the state
 * machine, start/stop idempotence, the docker socket's life cycle, and the
 * error paths (guest never answers, VM dies while booting, image problems).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import { Engine } from '../../app/engine/engine.js';
import type { VmSpec } from '../../app/engine/drivers/driver.js';
import { BerthError, isBerthError } from '../../app/contract/errors.js';
import { READ_TIMELINE_COMMAND } from '../../app/engine/guest/boot-timeline.js';
import { ImageStore } from '../../app/engine/image/image-store.js';
import { silentLogger } from '../../app/base/log.js';
import { defaultTuning, type Tuning } from '../../app/base/tuning.js';
import { instancePaths } from '../../app/base/paths.js';
import { SettingsStore } from '../../app/engine/settings/store.js';
import type { StateChange } from '../../app/contract/vm-states.js';
import { FakeDriver, type FakeMode } from '../helpers/fake-driver.js';
import { startFakeDockerd } from '../helpers/fake-guest.js';
import { dockerPing } from '../helpers/docker-ping.js';
import { fakeImageDir, shortTempDir, withEnv } from '../helpers/temp.js';
import { waitFor } from '../../app/base/process-util.js';
import { captureLogger } from '../helpers/log-capture.js';
import { mountsCommand } from '../../app/engine/guest/queries.js';

const t = shortTempDir('eng');
let dockerd: net.Server;
const dockerdSock = path.join(t.dir, 'dockerd.sock');
const restoreEnv = withEnv({
  BERTH_HOME: path.join(t.dir, 'home'),
  DOCKER_CONFIG: path.join(t.dir, 'docker'),
});
/** The overrides these engines run with (what BERTH_* would set). */
const TUNING = defaultTuning({ accel: 'tcg', bootTimeoutMs: 1500 });
const images = () => new ImageStore(path.join(t.dir, 'cache'), 'x86_64', { imageDir: path.join(t.dir, 'img') });

before(async () => {
  fakeImageDir(path.join(t.dir, 'img'));
  dockerd = await startFakeDockerd(dockerdSock);
});
after(() => {
  dockerd.close();
  restoreEnv();
  t.cleanup();
});

let n = 0;
const engines: Engine[] = [];
function makeEngine(mode: FakeMode, tuning: Partial<Tuning> = {}, exec?: (command: string) => { stdout?: string; code?: number } | undefined) {
  const paths = instancePaths(`e${++n}`);
  fs.mkdirSync(paths.dir, { recursive: true });
  const driver = new FakeDriver({
    mode,
    hostKeyFile: paths.hostKey,
    clientPubFile: `${paths.clientKey}.pub`,
    dockerSocket: dockerdSock,
    exec,
  });
  const engine = new Engine({
    paths,
    log: silentLogger(),
    driver,
    images: images(),
    settings: new SettingsStore(paths.settings),
    accelCacheFile: path.join(t.dir, 'accel.json'),
    tuning: { ...TUNING, ...tuning },
  });
  const states: string[] = [];
  engine.on('state', (c: StateChange) => states.push(c.state));
  engines.push(engine);
  return { engine, paths, driver, states };
}
afterEach(async () => {
  for (const e of engines.splice(0)) await e.stop({ force: true }).catch(() => undefined);
});

const ping = dockerPing;

test('start → running with the docker socket, context and timings; stop leaves nothing behind', async () => {
  const { engine, paths, driver, states } = makeEngine('ok');
  const s = await engine.start();
  assert.equal(s.state, 'running');
  assert.equal(s.accel, 'tcg');
  assert.ok(s.timings && s.timings.totalMs! >= 0 && s.timings.socketMs! >= s.timings.guestMs!);
  assert.equal(await ping(paths.dockerSocket), 'OK');
  assert.equal(s.dockerContext?.name, `berth-${paths.name}`);
  assert.ok(fs.existsSync(paths.state));
  // the guest got the keys and settings through the config disk
  const spec = driver.specs[0]!;
  assert.deepEqual(
    spec.disks.map((d) => d.serial),
    ['berth-root', 'berth-data', 'berth-cfg'],
  );
  assert.equal(fs.statSync(paths.dataDisk).size, 64 * 1024 ** 3);
  assert.equal(fs.statSync(paths.configDisk).mode & 0o777, 0o600);
  // QEMU user networking's gateway is the host's loopback: host.docker.internal is defined.
  assert.match(fs.readFileSync(path.join(paths.configDir, 'config.env'), 'utf8'), /^BERTH_HOST_LOOPBACK=10\.0\.2\.2$/m);
  assert.equal(s.hostLoopback, undefined, 'no relay: the network reaches it');

  const stopped = await engine.stop();
  assert.equal(stopped.state, 'stopped');
  assert.deepEqual(states, ['starting', 'running', 'stopping', 'stopped']);
  assert.ok(!fs.existsSync(paths.dockerSocket), 'socket removed');
  assert.ok(!fs.existsSync(paths.state), 'run state removed');
  assert.ok(
    driver.vms[0]!.guest!.commands.some((c) => c.includes('poweroff')),
    'asked the guest to power off',
  );
  assert.equal(driver.vms[0]!.alive(), false);
});

test("the boot timeline: the engine's steps in order, the guest's placed among them; a stop clears it", async () => {
  const { engine } = makeEngine('ok', {}, (cmd) =>
    cmd === READ_TIMELINE_COMMAND ? { stdout: 'init 0.40\nbogus line\ndocker-api-listening 0.90\n@uptime 1.00 0.5\n' } : undefined,
  );
  const s = await engine.start();
  const steps = s.bootTimeline!.map((x) => x.step);
  assert.deepEqual(
    steps.filter((x) => !['kernel', 'init', 'docker-api-listening'].includes(x)),
    ['vm-spawn', 'vm-process-up', 'ssh-connected', 'docker-ready', 'socket-ready'],
  );
  assert.deepEqual(
    steps.filter((x) => ['kernel', 'init', 'docker-api-listening'].includes(x)),
    ['kernel', 'init', 'docker-api-listening'],
  );
  const at = s.bootTimeline!.map((x) => x.atMs);
  assert.deepEqual(
    [...at].sort((a, b) => a - b),
    at,
    'in time order',
  );
  assert.equal(s.bootTimeline!.find((x) => x.step === 'init')!.source, 'guest');
  assert.equal(s.bootTimeline!.find((x) => x.step === 'socket-ready')!.source, 'host');
  assert.equal((await engine.stop()).bootTimeline, undefined);
});

test("a guest with garbage for a timeline still starts, with the engine's steps only", async () => {
  const { engine } = makeEngine('ok', {}, (cmd) => (cmd === READ_TIMELINE_COMMAND ? { stdout: '\u0000'.repeat(100_000) + 'init 1\n@uptime x' } : undefined));
  const s = await engine.start();
  assert.equal(s.state, 'running');
  assert.deepEqual(
    s.bootTimeline!.map((x) => x.source),
    ['host', 'host', 'host', 'host', 'host'],
  );
});

test('start twice is harmless: concurrent calls share one boot, a later call returns at once', async () => {
  const { engine, driver } = makeEngine('ok');
  const [a, b] = await Promise.all([engine.start(), engine.start()]);
  assert.equal(a.state, 'running');
  assert.equal(b.state, 'running');
  const c = await engine.start();
  assert.equal(c.state, 'running');
  assert.equal(driver.specs.length, 1, 'booted once');
  await engine.stop();
  assert.equal((await engine.stop()).state, 'stopped', 'stop twice is harmless too');
});

test('restart is a clean stop and a fresh boot', async () => {
  const { engine, driver, states } = makeEngine('ok');
  await engine.start();
  const s = await engine.restart();
  assert.equal(s.state, 'running');
  assert.equal(driver.specs.length, 2, 'booted twice');
  assert.equal(driver.vms[0]!.alive(), false, 'the first VM is off');
  assert.deepEqual(states, ['starting', 'running', 'stopping', 'stopped', 'starting', 'running']);
});

test('a guest that never answers: GUEST_TIMEOUT with the serial log, the VM is killed', async () => {
  const { engine, driver, states } = makeEngine('silent');
  await assert.rejects(
    engine.start(),
    (e) => isBerthError(e, 'GUEST_TIMEOUT') && /serial/.test(e.hint) && /berth-init: waiting for the root disk/.test(e.details ?? ''),
  );
  assert.deepEqual(states, ['starting', 'error']);
  assert.equal(engine.status().error?.code, 'GUEST_TIMEOUT');
  assert.equal(driver.vms[0]!.alive(), false);
});

test('a VM that dies while booting: GUEST_BOOT_FAILED with the panic from the console', async () => {
  const { engine } = makeEngine('dies');
  await assert.rejects(engine.start(), (e) => isBerthError(e, 'GUEST_BOOT_FAILED') && /Kernel panic/.test(e.details ?? ''));
  assert.equal(engine.status().state, 'error');
});

test('after an error, start works again', async () => {
  const { engine, driver } = makeEngine('silent');
  await assert.rejects(engine.start());
  (driver as unknown as { o: { mode: FakeMode } }).o.mode = 'ok';
  assert.equal((await engine.start()).state, 'running');
});

test('a VM that dies while running: error state with a hint, socket released', async () => {
  const { engine, paths, driver, states } = makeEngine('ok');
  await engine.start();
  await driver.vms[0]!.exit('the QEMU process is gone');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(engine.status().state, 'error');
  assert.equal(engine.status().error?.code, 'VM_EXITED');
  assert.ok(!fs.existsSync(paths.dockerSocket));
  assert.deepEqual(states, ['starting', 'running', 'error']);
});

test('the moment a running VM dies the engine says error, and a start then waits for the old run to be taken down', { timeout: 20_000 }, async () => {
  const { engine, paths, driver, states } = makeEngine('ok', { recoveryDelayMs: 60_000 });
  await engine.start();
  // A slow teardown (a share or a forward that takes its time to close).
  const teardown = engine['teardown'].bind(engine);
  engine['teardown'] = async (killVm: boolean) => {
    await new Promise((r) => setTimeout(r, 300));
    return teardown(killVm);
  };
  await driver.vms[0]!.exit('the QEMU process is gone');
  // Before: `running` with no VM until the teardown finished.
  const now = engine.status();
  assert.equal(now.state, 'error');
  assert.equal(now.vmPid, undefined);
  // Before: this start's new socket was closed by the old run's teardown.
  await engine.start();
  assert.equal(engine.status().state, 'running');
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(fs.existsSync(paths.dockerSocket), 'the new run keeps its docker socket');
  assert.equal(await ping(engine.status().dockerSocket), 'OK');
  assert.deepEqual(states, ['starting', 'running', 'error', 'starting', 'running']);
  assert.equal(driver.vms.length, 2);
});

/** The runtime's parts as they go down: each says so with an empty list. */
function teardownOrder(engine: Engine): string[] {
  const order: string[] = [];
  for (const part of ['ports', 'sync', 'shares'] as const) engine.on(part, (list: unknown[]) => list.length === 0 && order.at(-1) !== part && order.push(part));
  return order;
}

test('a stop and a crash take down the same list, newest first: ports (and the socket), synced folders, shares', async () => {
  const stopped = makeEngine('ok');
  await stopped.engine.start();
  const byStop = teardownOrder(stopped.engine);
  await stopped.engine.stop();
  assert.deepEqual(byStop, ['ports', 'sync', 'shares']);

  const crashed = makeEngine('ok');
  await crashed.engine.start();
  const byCrash = teardownOrder(crashed.engine);
  await crashed.driver.vms[0]!.exit('the QEMU process is gone');
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(byCrash, byStop);
  assert.ok(!fs.existsSync(crashed.paths.dockerSocket));
});

test('a VM that dies while running is started again by itself, and says so in its status', async () => {
  const { engine, driver, states } = makeEngine('ok', { recoveryDelayMs: 50 });
  await engine.start();
  await driver.vms[0]!.exit('killed by signal SIGKILL');
  assert.ok(await waitForState(engine, 'running', 10_000), `running again (${states.join(' → ')})`);
  assert.deepEqual(states, ['starting', 'running', 'error', 'starting', 'running']);
  assert.equal(driver.vms.length, 2, 'a new VM');
  const s = engine.status();
  assert.equal(s.lastCrash?.reason, 'killed by signal SIGKILL');
  assert.equal(s.lastCrash?.recent, 1);
  assert.equal(await ping(s.dockerSocket), 'OK');
});

test('a guest that stops answering while its VM runs: the VM is stopped like a crash and started again, saying why', async () => {
  const { engine, driver, states } = makeEngine('ok', { recoveryDelayMs: 50, hungGuestMs: 800 });
  await engine.start();
  // A link cut that comes back at once is no hang.
  driver.vms[0]!.guest!.dropAll();
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(driver.vms[0]!.alive(), true, 'a link that came back leaves the VM alone');
  assert.deepEqual(states, ['starting', 'running']);
  // The guest goes quiet (its sshd no longer answers) while the VM process runs.
  await driver.vms[0]!.guest!.close();
  assert.ok(await waitFor(() => states.length === 5 && engine.status().state === 'running', 10_000), `running again (${states.join(' → ')})`);
  assert.deepEqual(states, ['starting', 'running', 'error', 'starting', 'running']);
  assert.equal(driver.vms[0]!.alive(), false, 'the hung VM was stopped');
  assert.equal(driver.vms.length, 2, 'a new VM');
  assert.match(engine.status().lastCrash?.reason ?? '', /the guest stopped answering for 1 s while its VM ran/);
  assert.equal(await ping(engine.status().dockerSocket), 'OK');
});

test('a VM that keeps dying is left in error after the third time, with a hint that says why', async () => {
  const { engine, driver } = makeEngine('ok', { recoveryDelayMs: 50 });
  await engine.start();
  for (let i = 0; i < 2; i++) {
    await driver.vms.at(-1)!.exit('kernel panic');
    assert.ok(await waitForState(engine, 'running', 10_000), `restart ${i + 1}`);
  }
  await driver.vms.at(-1)!.exit('kernel panic');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(engine.status().state, 'error');
  assert.equal(driver.vms.length, 3);
  assert.match(engine.status().error?.hint ?? '', /3 times within 10 minutes.*does not restart it by itself/);
  assert.equal(engine.status().lastCrash?.recent, 3);
});

test('berth stop right after a crash cancels the automatic restart', async () => {
  const { engine, driver } = makeEngine('ok', { recoveryDelayMs: 300 });
  await engine.start();
  await driver.vms[0]!.exit('gone');
  await new Promise((r) => setTimeout(r, 50));
  await engine.stop();
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(engine.status().state, 'stopped');
  assert.equal(driver.vms.length, 1);
});

async function waitForState(engine: Engine, state: string, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (engine.status().state === state && engine.status().vmPid !== undefined) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

test('a damaged image stops the start before any VM boots', async () => {
  const { engine, driver } = makeEngine('ok');
  const k = path.join(t.dir, 'img', 'vmlinuz');
  const good = fs.readFileSync(k);
  fs.writeFileSync(k, Buffer.concat([good.subarray(0, good.length - 1), Buffer.from('!')]));
  try {
    await assert.rejects(engine.start(), (e) => isBerthError(e, 'IMAGE_CHECKSUM'));
    assert.equal(driver.specs.length, 0);
  } finally {
    fs.writeFileSync(k, good);
  }
});

test('a busy docker socket path is reported, and the VM is not left running', async () => {
  const { engine, paths, driver } = makeEngine('ok');
  const other = (await import('node:net')).createServer();
  await new Promise<void>((r) => other.listen(paths.dockerSocket, r));
  try {
    await assert.rejects(engine.start(), (e) => isBerthError(e, 'SOCKET_IN_USE'));
    assert.equal(driver.vms[0]!.alive(), false);
  } finally {
    other.close();
  }
});

test('invalid settings on disk block the start with a clear error', async () => {
  const paths = instancePaths('badsettings');
  fs.mkdirSync(paths.dir, { recursive: true });
  fs.writeFileSync(paths.settings, '{"memoryMiB": "lots"}');
  const engine = new Engine({
    paths,
    log: silentLogger(),
    driver: new FakeDriver({ mode: 'ok', hostKeyFile: '', clientPubFile: '', dockerSocket: '' }),
    images: images(),
    settings: new SettingsStore(paths.settings), // never good: no last good settings to go on with
    accelCacheFile: path.join(t.dir, 'accel.json'),
    tuning: TUNING,
  });
  await assert.rejects(engine.start(), (e) => isBerthError(e, 'INVALID_SETTINGS'));
  assert.equal(fs.readFileSync(paths.settings, 'utf8'), '{"memoryMiB": "lots"}');
});

/** A fake driver with virtio-fs, whose start can fail in its virtio-fs part like QEMU's. */
class VirtiofsFakeDriver extends FakeDriver {
  failVirtiofs = false;
  async virtiofs() {
    return { ok: true as const, how: 'fake virtio-fs', needsSocket: true, readOnlyDevice: true };
  }
  override async start(spec: VmSpec) {
    if (this.failVirtiofs && spec.shares?.length) {
      this.specs.push(spec);
      throw new BerthError('VIRTIOFSD_FAILED', 'virtiofsd did not start for /x (exit status 1)', 'fake');
    }
    return super.start(spec);
  }
}

function makeVirtiofsEngine(failVirtiofs: boolean, tuning: Partial<Tuning> = {}, log = silentLogger()) {
  const paths = instancePaths(`v${++n}`);
  fs.mkdirSync(paths.dir, { recursive: true });
  const shared = fs.mkdtempSync(path.join(t.dir, 'shared-'));
  const settings = new SettingsStore(paths.settings);
  settings.update({ shares: [{ hostPath: shared }] });
  const driver = new VirtiofsFakeDriver({ mode: 'ok', hostKeyFile: paths.hostKey, clientPubFile: `${paths.clientKey}.pub`, dockerSocket: dockerdSock });
  driver.failVirtiofs = failVirtiofs;
  const engine = new Engine({
    paths,
    log,
    driver,
    images: images(),
    settings,
    accelCacheFile: path.join(t.dir, 'accel.json'),
    tuning: { ...TUNING, ...tuning },
  });
  engines.push(engine);
  return { engine, paths, driver, shared };
}

test('shares get virtio-fs devices at start, kept in the run state, mounted by tag and shown as virtiofs', async () => {
  const { engine, paths, driver, shared } = makeVirtiofsEngine(false);
  const s = await engine.start();
  const spec = driver.specs[0]!;
  assert.deepEqual(
    spec.shares?.map((x) => x.hostPath),
    [shared],
  );
  assert.equal(spec.shares![0]!.socketPath, path.join(paths.dir, 'virtiofs', `${spec.shares![0]!.tag}.sock`));
  const run = JSON.parse(fs.readFileSync(paths.state, 'utf8'));
  assert.equal(run.sharePlan.devices[0].tag, spec.shares![0]!.tag, 'a reattaching engine rebuilds the same spec');
  assert.deepEqual(
    s.shares?.map((x) => [x.hostPath, x.mechanism, x.mechanismReason]),
    [[shared, 'virtiofs', 'fake virtio-fs']],
  );
  assert.ok(driver.vms[0]!.guest!.commands.includes(mountsCommand('mount-virtiofs', shared, spec.shares![0]!.tag, 'rw')), 'mounted by tag');
});

test('a stop does not read the virtiofsd that exits with the powered-off guest as a share to fall back from', async () => {
  const { log, lines: warnings } = captureLogger('warn');
  const { engine } = makeVirtiofsEngine(false, {}, log);
  await engine.start();
  await engine.stop();
  await new Promise((r) => setTimeout(r, 1000)); // a fallback came 500 ms after the loss
  assert.deepEqual(
    warnings.filter((w) => /falling back|virtiofsd/.test(w)),
    [],
    'no fallback to reverse sshfs while the guest powers off',
  );
});

test('BERTH_SHARE_MECHANISM=sshfs: no devices, every share by reverse sshfs, saying so', async () => {
  const { engine, driver } = makeVirtiofsEngine(false, { shareMechanism: 'sshfs' });
  const s = await engine.start();
  assert.equal(driver.specs[0]!.shares, undefined);
  assert.equal(s.shares?.[0]?.mechanism, 'reverse-sshfs');
  assert.equal(s.shares?.[0]?.mechanismReason, 'shareMechanism=sshfs (BERTH_SHARE_MECHANISM)');
});

test('virtiofsd failing at start: the VM starts again without virtio-fs and the shares say why', async () => {
  const { engine, driver } = makeVirtiofsEngine(true);
  const s = await engine.start();
  assert.equal(s.state, 'running');
  assert.equal(driver.specs.length, 2);
  assert.equal(driver.specs[0]!.shares?.length, 1);
  assert.equal(driver.specs[1]!.shares, undefined);
  assert.equal(s.shares?.[0]?.mechanism, 'reverse-sshfs');
  assert.match(s.shares![0]!.mechanismReason!, /virtiofsd failed to start \(virtiofsd did not start for \/x/);
});
