/**
 * The idle rest with a fake driver, guest and dockerd: the VM rests after
 * `idleMinutes` with nothing in use and not before; the docker socket keeps
 * listening and the next connection wakes it and is served (never refused);
 * a connection that arrives while the VM goes to rest is served after the
 * wake; a running container, an open docker connection or a shell prevent
 * the rest; `stop` while resting really stops.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import { Engine } from '../../app/engine/engine.js';
import { ImageStore } from '../../app/engine/image/image-store.js';
import { silentLogger } from '../../app/base/log.js';
import { defaultTuning } from '../../app/base/tuning.js';
import { instancePaths } from '../../app/base/paths.js';
import { SettingsStore } from '../../app/engine/settings/store.js';
import type { StateChange, VmState } from '../../app/contract/vm-states.js';
import { FakeDriver } from '../helpers/fake-driver.js';
import { startFakeDockerEngine, type FakeDockerd } from '../helpers/fake-dockerd.js';
import { dockerPing } from '../helpers/docker-ping.js';
import { fakeImageDir, shortTempDir, withEnv } from '../helpers/temp.js';

const t = shortTempDir('idle');
let dockerd: FakeDockerd;
const dockerdSock = path.join(t.dir, 'dockerd.sock');
/** The overrides these engines run with (what BERTH_* would set). */
const TUNING = defaultTuning({ accel: 'tcg', bootTimeoutMs: 3000 });
const restoreEnv = withEnv({
  BERTH_HOME: path.join(t.dir, 'home'),
  DOCKER_CONFIG: path.join(t.dir, 'docker'),
});

before(async () => {
  fakeImageDir(path.join(t.dir, 'img'));
  dockerd = await startFakeDockerEngine(dockerdSock);
});
after(async () => {
  await dockerd.close();
  restoreEnv();
  t.cleanup();
});

let n = 0;
const engines: Engine[] = [];
/** An engine whose guest answers the shell count with `shells()` and powers off after `poweroffMs`. */
function makeEngine(o: { idleMinutes: number; shells?: () => number; poweroffMs?: number }) {
  const paths = instancePaths(`r${++n}`);
  fs.mkdirSync(paths.dir, { recursive: true });
  const settings = new SettingsStore(paths.settings);
  settings.update({ idleMinutes: o.idleMinutes });
  const driver: FakeDriver = new FakeDriver({
    mode: 'ok',
    hostKeyFile: paths.hostKey,
    clientPubFile: `${paths.clientKey}.pub`,
    dockerSocket: dockerdSock,
    exec: (cmd) => {
      if (cmd.includes('/dev/pts')) return { stdout: `${o.shells?.() ?? 0}\n` };
      if (cmd.includes('poweroff') && o.poweroffMs) {
        const vm = driver.vms.at(-1)!;
        setTimeout(() => void vm.exit('the VM powered off'), o.poweroffMs);
        return { code: 0 };
      }
      return undefined;
    },
  });
  const engine = new Engine({
    paths,
    log: silentLogger(),
    driver,
    images: new ImageStore(path.join(t.dir, 'cache'), 'x86_64', { imageDir: path.join(t.dir, 'img') }),
    settings,
    accelCacheFile: path.join(t.dir, 'accel.json'),
    tuning: TUNING,
  });
  const states: VmState[] = [];
  engine.on('state', (c: StateChange) => states.push(c.state));
  engines.push(engine);
  return { engine, paths, driver, states, settings };
}
afterEach(async () => {
  for (const e of engines.splice(0)) await e.stop({ force: true }).catch(() => undefined);
});

const ping = dockerPing;

function waitState(engine: Engine, state: VmState, timeoutMs: number): Promise<void> {
  if (engine.status().state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      engine.off('state', on);
      reject(new Error(`no ${state} within ${timeoutMs} ms (state ${engine.status().state}, rest ${JSON.stringify(engine.status().rest)})`));
    }, timeoutMs);
    const on = (c: StateChange) => {
      if (c.state !== state) return;
      clearTimeout(timer);
      engine.off('state', on);
      resolve();
    };
    engine.on('state', on);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('rests after idleMinutes with nothing in use, not before; the next docker connection wakes it and is answered', async () => {
  // 0.05 min = 3 s idle; checks every second.
  const { engine, paths, states } = makeEngine({ idleMinutes: 0.05 });
  // A stopped container does not keep the VM up.
  const stopped = dockerd.addContainer({ name: 'done', State: 'exited' });
  after(() => dockerd.remove(stopped.Id));
  await engine.start();
  const t0 = Date.now();
  await sleep(1500);
  assert.equal(engine.status().state, 'running', 'not before the idle time');
  await waitState(engine, 'resting', 10_000);
  assert.ok(Date.now() - t0 >= 3000, `rested after ${Date.now() - t0} ms, before the 3 s idle time`);
  const st = engine.status();
  assert.equal(st.rest?.rests, 1);
  assert.ok(st.rest?.restingSince);
  assert.ok(fs.existsSync(paths.dockerSocket), 'the docker socket still listens while resting');
  assert.equal(st.vmPid, undefined, 'no VM while resting');

  assert.equal(await ping(paths.dockerSocket), 'OK', 'the connection waited for the wake and was answered');
  assert.equal(engine.status().state, 'running');
  assert.equal(engine.status().rest?.wakes, 1);
  assert.ok(engine.status().rest!.lastWakeMs! >= 0);
  assert.deepEqual(states, ['starting', 'running', 'stopping', 'resting', 'starting', 'running']);
});

test('a connection that arrives while the VM goes to rest is served after the wake', async () => {
  const { engine, paths, states } = makeEngine({ idleMinutes: 0.02, poweroffMs: 800 });
  await engine.start();
  const answered = new Promise<string>((resolve, reject) => {
    engine.on('state', (c) => {
      if (c.state === 'stopping') ping(paths.dockerSocket).then(resolve, reject);
    });
  });
  assert.equal(await answered, 'OK');
  assert.equal(engine.status().state, 'running');
  assert.deepEqual(states.slice(0, 6), ['starting', 'running', 'stopping', 'resting', 'starting', 'running']);
});

test('a running container, an open docker connection and a shell each prevent the rest', async () => {
  let shells = 0;
  const { engine, paths } = makeEngine({ idleMinutes: 0.02, shells: () => shells });
  const c = dockerd.addContainer({ name: 'web', State: 'running' });
  try {
    await engine.start();
    await sleep(3000);
    assert.equal(engine.status().state, 'running');
    assert.match(engine.status().rest?.busy ?? '', /container is running/);
    dockerd.setState(c.Id, 'exited');

    shells = 1;
    await sleep(2500);
    assert.equal(engine.status().state, 'running');
    assert.match(engine.status().rest?.busy ?? '', /1 shell open/);
    shells = 0;

    // A client holding the docker socket open (docker logs -f, a build) keeps it up.
    const held = net.connect(paths.dockerSocket);
    await new Promise((r) => held.once('connect', r));
    await sleep(2500);
    assert.equal(engine.status().state, 'running');
    assert.match(engine.status().rest?.busy ?? '', /1 docker connection open/);
    held.destroy();
    await waitState(engine, 'resting', 10_000);
  } finally {
    dockerd.remove(c.Id);
  }
});

test('idleMinutes=0 never rests', async () => {
  const { engine } = makeEngine({ idleMinutes: 0 });
  await engine.start();
  await sleep(2500);
  assert.equal(engine.status().state, 'running');
  assert.equal(engine.status().rest?.idleMinutes, 0);
});

test('stop while resting: stopped, and the socket is gone', async () => {
  const { engine, paths, states } = makeEngine({ idleMinutes: 0.02 });
  await engine.start();
  await waitState(engine, 'resting', 10_000);
  const s = await engine.stop();
  assert.equal(s.state, 'stopped');
  assert.ok(!fs.existsSync(paths.dockerSocket));
  assert.deepEqual(states, ['starting', 'running', 'stopping', 'resting', 'stopped']);
});

test('20 rest/wake cycles: every connection answered, one rest and one wake each', async () => {
  const { engine, paths } = makeEngine({ idleMinutes: 0.01 });
  await engine.start();
  for (let i = 1; i <= 20; i++) {
    await waitState(engine, 'resting', 10_000);
    assert.equal(await ping(paths.dockerSocket), 'OK', `cycle ${i}`);
  }
  assert.equal(engine.status().rest?.rests, 20);
  assert.equal(engine.status().rest?.wakes, 20);
});
