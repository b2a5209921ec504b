/**
 * The engine `berth start` launches (exitOnStop): it exits once the VM is
 * stopped, but not in the middle of `berth restart`, whose stop is followed
 * at once by a start (it did: the restart's client saw the engine go away).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ControlClient } from '../../app/client/control-client.js';
import { startDaemon } from '../../app/engine/daemon.js';
import { instancePaths } from '../../app/base/paths.js';
import { defaultTuning } from '../../app/base/tuning.js';
import { FakeDriver } from '../helpers/fake-driver.js';
import { startFakeDockerd } from '../helpers/fake-guest.js';
import { fakeImageDir, shortTempDir, withEnv } from '../helpers/temp.js';

const t = shortTempDir('eos');
const home = path.join(t.dir, 'home');
const imgDir = path.join(t.dir, 'img');
const dockerdSock = path.join(t.dir, 'dockerd.sock');
const tuning = defaultTuning({ imageDir: imgDir, accel: 'tcg' });
let dockerd: net.Server;
let restoreEnv: () => void;

before(async () => {
  restoreEnv = withEnv({ BERTH_HOME: home, DOCKER_CONFIG: path.join(t.dir, 'docker'), BERTH_CACHE: path.join(t.dir, 'cache') });
  fakeImageDir(imgDir);
  dockerd = await startFakeDockerd(dockerdSock);
});
after(() => {
  dockerd.close();
  restoreEnv();
  t.cleanup();
});

test('exitOnStop: a restart keeps the engine; a stop ends it', async () => {
  const p = instancePaths('eos', home);
  const driver = new FakeDriver({ mode: 'ok', hostKeyFile: p.hostKey, clientPubFile: `${p.clientKey}.pub`, dockerSocket: dockerdSock });
  const d = await startDaemon({ instance: 'eos', exitOnStop: true, driver, tuning });
  let exited = false;
  void d.done.then(() => (exited = true));
  const c = await ControlClient.connect(p);
  try {
    await c.call('vm.start', {});
    const r = await c.call('vm.restart', {});
    assert.equal(r.state, 'running');
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(exited, false, 'the engine is still there after the restart');
    assert.equal((await c.call('vm.status', {})).state, 'running');
    await c.call('vm.stop', {});
  } finally {
    c.close();
  }
  await Promise.race([d.done, new Promise((_, rej) => setTimeout(() => rej(new Error('the engine did not exit after stop')), 10_000))]);
  assert.ok(!fs.existsSync(p.controlSocket), 'its control socket is gone');
});
