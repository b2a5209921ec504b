/**
 * The idle rest with a real VM (TCG here): with idleMinutes=0.25 the VM
 * rests 15 s after the last use and not before; `docker version` wakes it
 * with no error on the client's side; containers and volume data are kept;
 * a running container or an open docker connection (a `docker events`
 * stream, as `docker logs -f` or a build holds one) prevents the rest; a
 * docker command that arrives while the VM is stopping to rest is answered
 * after the wake; several rest/wake cycles lose nothing; `berth stop` while
 * resting stops for real.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { VmStatus } from '../../app/contract/contract.js';
import { sleep } from '../../app/base/process-util.js';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import { busyboxRootfsTar } from '../helpers/busybox-rootfs.js';
import { ensureImage, vmPrereqProblem } from './prereqs.js';
import { vmFixture } from './vm-fixture.js';

const IDLE_S = 15;

gatedSuite('idle rest with a real VM', vmPrereqProblem(), { timeout: 30 * 60_000 }, () => {
  const vm = vmFixture('ir');
  const { env, sock, ok } = vm;

  const status = async (): Promise<VmStatus> => {
    const r = await vm.berth(['status', '--json'], { timeoutMs: 30_000 });
    return JSON.parse(r.stdout) as VmStatus;
  };
  /** Poll until the state is `state`; returns when it was first seen. */
  const until = async (state: string, timeoutMs: number): Promise<number> => {
    const end = Date.now() + timeoutMs;
    let last: VmStatus | undefined;
    while (Date.now() < end) {
      last = await status();
      if (last.state === state) return Date.now();
      await sleep(500);
    }
    throw new Error(`no ${state} within ${timeoutMs} ms: ${JSON.stringify(last?.rest)} (state ${last?.state})`);
  };

  before(async () => {
    await ensureImage();
  });
  after(() => vm.cleanup());

  let lastUse = 0;

  test('set up: idleMinutes=0.25, start, an image, a volume with data, a stopped container', async () => {
    const set = await vm.berth(['settings', 'set', `idleMinutes=${IDLE_S / 60}`]);
    assert.equal(set.code, 0, set.stderr);
    const r = await vm.berth(['start'], { timeoutMs: 10 * 60_000 });
    assert.equal(r.code, 0, r.stderr);
    await ok(['import', busyboxRootfsTar(vm.dir), 'bb:1']);
    await ok(['run', '--rm', '-v', 'keep:/data', 'bb:1', 'sh', '-c', 'echo persisted > /data/f']);
    await ok(['create', '--name', 'kept', 'bb:1', 'true']);
    lastUse = Date.now();
  });

  test(`rests ${IDLE_S} s after the last use, not before, and the socket stays`, async () => {
    const rested = await until('resting', 3 * 60_000);
    assert.ok(rested - lastUse >= IDLE_S * 1000, `rested ${rested - lastUse} ms after the last docker command`);
    const s = await status();
    assert.equal(s.rest?.rests, 1);
    assert.equal(s.vmPid, undefined, 'no VM process while resting');
    assert.ok(fs.existsSync(sock), 'the docker socket still listens');
    const human = await vm.berth(['status']);
    assert.equal(human.code, 0, 'resting is in service: status exits 0');
    assert.match(human.stdout, /resting since .*the next docker command wakes it/);
  });

  test('docker version wakes it and succeeds; the container and the volume data are still there', async () => {
    const out = await ok(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 10 * 60_000 });
    assert.match(out.trim(), /^\d+\.\d+/);
    const s = await status();
    assert.equal(s.state, 'running');
    assert.equal(s.rest?.wakes, 1);
    assert.ok(s.rest?.lastWakeMs !== undefined && s.rest.lastWakeMs > 0);
    assert.match(await ok(['ps', '-a', '--filter', 'name=kept', '--format', '{{.Names}} {{.State}}']), /kept (exited|created)/);
    assert.equal((await ok(['run', '--rm', '-v', 'keep:/data', 'bb:1', 'cat', '/data/f'])).trim(), 'persisted');
  });

  test('a running container prevents the rest', async () => {
    await ok(['run', '-d', '--name', 'sleeper', 'bb:1', 'sleep', '3600']);
    await sleep((IDLE_S + 15) * 1000);
    const s = await status();
    assert.equal(s.state, 'running');
    assert.match(s.rest?.busy ?? '', /container is running/);
    await ok(['rm', '-f', 'sleeper']);
  });

  test('an open docker connection (a docker events stream) prevents the rest', async () => {
    const events = spawn('docker', ['events'], { env, stdio: 'ignore' });
    try {
      await sleep((IDLE_S + 15) * 1000);
      const s = await status();
      assert.equal(s.state, 'running');
      assert.match(s.rest?.busy ?? '', /docker connection/);
    } finally {
      events.kill();
    }
  });

  test('a docker command that arrives while the VM stops to rest is answered after the wake', async () => {
    await until('stopping', 3 * 60_000);
    const out = await ok(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 10 * 60_000 });
    assert.match(out.trim(), /^\d+\.\d+/);
    const s = await status();
    assert.equal(s.state, 'running');
    assert.equal(s.rest?.rests, 2);
    assert.equal(s.rest?.wakes, 2);
  });

  test('two more rest/wake cycles lose nothing', async () => {
    for (let i = 0; i < 2; i++) {
      await until('resting', 3 * 60_000);
      assert.equal((await ok(['run', '--rm', '-v', 'keep:/data', 'bb:1', 'cat', '/data/f'], { timeoutMs: 10 * 60_000 })).trim(), 'persisted');
    }
    const s = await status();
    assert.equal(s.rest?.wakes, 4);
  });

  test('berth stop while resting: stopped, the socket and the engine gone', async () => {
    await until('resting', 3 * 60_000);
    const r = await vm.berth(['stop'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    await sleep(2000);
    assert.ok(!fs.existsSync(sock), 'docker socket removed');
    const st = await vm.berth(['status', '--json']);
    assert.equal(JSON.parse(st.stdout).state, 'stopped');
  });
});
