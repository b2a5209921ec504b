/**
 * What issue 19's dashboard screens need from below the renderer: every
 * settings problem in one round, the ranges of the number settings, the
 * host's doctor (with the setting choices it cannot use) through the
 * contract, and the start phases' times kept for the next start.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ControlClient } from '../../app/client/control-client.js';
import { settingChoices } from '../../app/client/doctor-choices.js';
import { doctorReport } from '../../app/client/doctor.js';
import { EngineGateway } from '../../app/client/engine-gateway.js';
import { offlineStatus } from '../../app/client/offline.js';
import { instancePaths } from '../../app/base/paths.js';
import { defaultTuning } from '../../app/base/tuning.js';
import { DoctorSchema } from '../../app/contract/contract-doctor.js';
import { BerthError, isBerthError, toErrorInfo } from '../../app/contract/errors.js';
import { STARTS_KEPT, StartClock, expectedTimes, readStarts } from '../../app/engine/boot/start-clock.js';
import { detectDrivers } from '../../app/engine/drivers/host-detect.js';
import { settingsLimits } from '../../app/engine/settings/schema.js';
import { SettingsStore, settingsView } from '../../app/engine/settings/store.js';
import { startFakeEngine } from '../helpers/fake-engine.js';
import { linuxHost, macHost, windowsHost } from '../helpers/fake-host.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('dh');
after(() => t.cleanup());

test('settings: a wrong type and out-of-range values are all reported in one round, and nothing is saved', () => {
  const file = path.join(t.dir, 'one-round', 'settings.json');
  const store = new SettingsStore(file);
  store.persistDefaults();
  const before = fs.readFileSync(file, 'utf8');
  assert.throws(
    () => store.update({ cpus: 'abc', memoryMiB: 100, diskGiB: 2, idleMinutes: 5000 }),
    (e) =>
      isBerthError(e, 'INVALID_SETTINGS') &&
      e.message ===
        'invalid settings: cpus: must be a number; memoryMiB: must be at least 512 MiB; diskGiB: must be at least 4 GiB; idleMinutes: must be at most 1440 minutes (a day)',
  );
  assert.throws(
    () => store.update({ cpus: 1.5, memory: 4, diskGiB: 2 }),
    (e) =>
      isBerthError(e) &&
      /cpus: must be a whole number/.test(e.message) &&
      /"memory" is not a known key/.test(e.message) &&
      /diskGiB: must be at least 4 GiB/.test(e.message),
  );
  assert.throws(
    () => store.update(null),
    (e) => isBerthError(e, 'INVALID_SETTINGS'),
    'not an object: said, not thrown as a TypeError',
  );
  assert.equal(fs.readFileSync(file, 'utf8'), before);
});

test('settings view: the ranges of the number settings on this host, the disk never below its size', () => {
  const l = settingsLimits();
  assert.deepEqual(l.cpus, { min: 1, max: os.cpus().length });
  assert.equal(l.memoryMiB.min, 512);
  assert.equal(l.memoryMiB.max, Math.floor(os.totalmem() / 2 ** 20) - 256);
  assert.deepEqual(l.diskGiB, { min: 4, max: 4096 });
  assert.deepEqual(l.idleMinutes, { min: 0, max: 1440 });
  assert.deepEqual(l.host, { cpus: os.cpus().length, memoryMiB: Math.floor(os.totalmem() / 2 ** 20) });
  assert.equal(settingsLimits(100).diskGiB.min, 100);
  assert.equal(settingsLimits(9000).diskGiB.min, 4096, 'never above the max');
  // A data disk of 20 GiB: the form's floor is 20.
  const dir = path.join(t.dir, 'floor');
  fs.mkdirSync(dir);
  const disk = path.join(dir, 'data.img');
  fs.writeFileSync(disk, '');
  fs.truncateSync(disk, 20 * 2 ** 30);
  const view = settingsView(new SettingsStore(path.join(dir, 'settings.json'), { dataDisk: disk }));
  assert.equal(view.limits.diskGiB.min, 20);
  assert.equal(
    settingsView(new SettingsStore(path.join(dir, 'none.json'), { dataDisk: path.join(dir, 'missing.img') })).limits.diskGiB.min,
    4,
    'no disk yet: any size',
  );
});

test('doctor choices: a Linux PC without KVM, an Apple-silicon Mac, Windows', async () => {
  const linux = linuxHost({ kvm: false });
  const c = settingChoices(linux, await detectDrivers(linux));
  assert.deepEqual(c.driver.auto, { usable: true });
  assert.deepEqual(c.driver.qemu, { usable: true });
  assert.deepEqual(c.driver.vfkit, { usable: false, reason: 'vfkit runs only on macOS (Virtualization.framework)' });
  assert.deepEqual(c.driver.hyperv, { usable: false, reason: 'Hyper-V is a Windows feature' });
  assert.deepEqual(c.accel.tcg, { usable: true });
  assert.match(c.accel.kvm.reason!, /\/dev\/kvm does not exist/);
  assert.equal(c.accel.hvf.reason, "HVF is macOS's Hypervisor.framework; this host runs Linux x64");
  assert.equal(c.rosetta.reason, 'Rosetta needs a Mac with Apple silicon and the vfkit driver; this host runs Linux x64');
  assert.equal(c.accel.kvm.usable, false);

  const withKvm = linuxHost();
  assert.deepEqual(settingChoices(withKvm, await detectDrivers(withKvm)).accel.kvm, { usable: true });
  const noQemu = linuxHost({ qemu: false });
  const nq = settingChoices(noQemu, await detectDrivers(noQemu));
  assert.match(nq.accel.tcg.reason!, /^only the QEMU driver takes an accelerator, and QEMU cannot run here: qemu-system-x86_64 was not found/);
  assert.equal(nq.driver.auto.usable, false);

  const mac = macHost();
  const m = settingChoices(mac, await detectDrivers(mac));
  assert.deepEqual([m.driver.vfkit, m.accel.hvf, m.rosetta], [{ usable: true }, { usable: true }, { usable: true }]);
  assert.equal(m.accel.kvm.reason, "KVM is the Linux kernel's hypervisor; this host runs macOS arm64");
  const noRosetta = macHost({ rosetta: false });
  assert.match(settingChoices(noRosetta, await detectDrivers(noRosetta)).rosetta.reason!, /Rosetta is not installed/);

  const win = windowsHost(undefined);
  const w = settingChoices(win, await detectDrivers(win));
  assert.match(w.accel.tcg.reason!, /QEMU cannot run here: the QEMU driver runs on Linux and macOS/);
});

test('host.doctor through the gateway: the contract shape, with and without an engine; an engine refuses it with a hint', async () => {
  const home = path.join(t.dir, 'gw-home');
  const engine = await startFakeEngine(home);
  const other = instancePaths('offline', home);
  fs.mkdirSync(other.dir, { recursive: true });
  new SettingsStore(other.settings).update({ driver: 'vfkit' });
  const doctor = (o: Parameters<typeof doctorReport>[0]) => doctorReport({ ...o, facts: linuxHost({ kvm: false }), tuning: defaultTuning() });
  try {
    for (const [paths, connect, setting] of [
      [engine.paths, () => ControlClient.connect(engine.paths), 'auto'],
      [other, async () => Promise.reject(new BerthError('ENGINE_NOT_RUNNING', 'not running', 'Start it.')), 'vfkit'],
    ] as const) {
      const gw = new EngineGateway({ paths, watchMs: 0, connect, doctor });
      try {
        const r = DoctorSchema.parse(await gw.call('host.doctor', {}));
        assert.equal(r.setting, setting, "the instance's own driver setting");
        assert.deepEqual(
          r.drivers.map((d) => d.driver),
          ['qemu', 'vfkit', 'hyperv'],
        );
        assert.equal(r.choices?.accel.hvf.usable, false);
        assert.equal(r.selected, setting === 'auto' ? 'qemu' : null);
        await assert.rejects(gw.call('host.doctor', { deep: true }), (e) => isBerthError(e, 'BAD_REQUEST'));
      } finally {
        await gw.close();
      }
    }
    const c = await ControlClient.connect(engine.paths);
    try {
      const err = await c.call('host.doctor' as never, {} as never).then(() => undefined, toErrorInfo);
      assert.deepEqual(err, {
        code: 'BAD_REQUEST',
        message: 'host.doctor is answered by the dashboard or the desktop app, not by the engine',
        hint: 'Run `berth doctor` for the same report.',
      });
    } finally {
      c.close();
    }
  } finally {
    await engine.close();
  }
});

test('start clock: each phase timed, kept for the last starts, the median expected; a failed start is not kept', () => {
  const file = path.join(t.dir, 'clock', 'start-times.json');
  fs.mkdirSync(path.dirname(file));
  let now = 1_000_000;
  const clock = new StartClock(file, () => now);
  const start = (ms: Record<string, number>, end: 'running' | 'error' = 'running') => {
    clock.state({ state: 'starting', previous: 'stopped' });
    for (const [phase, d] of Object.entries(ms)) {
      clock.progress(phase as never);
      clock.progress(phase as never); // a phase's further messages (the image build's steps) are the same phase
      now += d;
    }
    clock.state({ state: end, previous: 'starting' });
  };
  assert.equal(clock.expected(), undefined, 'nothing before the first start');
  start({ prepare: 100, image: 2000, boot: 300 });
  assert.deepEqual(clock.expected(), { starts: 1, totalMs: 2400, phases: { prepare: 100, image: 2000, boot: 300 } });
  start({ prepare: 200, image: 50_000, boot: 500 }, 'error');
  assert.equal(clock.expected()!.starts, 1, 'a failed start is not kept');
  start({ prepare: 300, image: 1000, boot: 700 });
  start({ prepare: 200, image: 1500, boot: 500, socket: 10 });
  assert.deepEqual(clock.expected(), { starts: 3, totalMs: 2210, phases: { prepare: 200, image: 1500, boot: 500, socket: 10 } });
  for (let i = 0; i < 10; i++) start({ prepare: 1 });
  assert.equal(readStarts(file).length, STARTS_KEPT);
  assert.deepEqual(expectedTimes(readStarts(file))!.phases, { prepare: 1 });
  // A broken or hostile file is no history, never an error.
  for (const text of ['{', 'null', '{"starts": [{"totalMs": "x"}, 7, null]}', '{"starts": [{"totalMs": 5, "phases": {"boot": -1, "nope": 3}}]}']) {
    fs.writeFileSync(file, text);
    const e = expectedTimes(readStarts(file));
    assert.ok(e === undefined || (e.starts === 1 && Object.keys(e.phases).length === 0), text);
  }
});

test('the status without an engine carries the expected times too', () => {
  const paths = instancePaths('timed', path.join(t.dir, 'timed-home'));
  fs.mkdirSync(paths.dir, { recursive: true });
  assert.equal(offlineStatus(paths).expected, undefined);
  fs.writeFileSync(paths.startTimes, JSON.stringify({ starts: [{ at: 'x', totalMs: 900, phases: { boot: 400 } }] }));
  assert.deepEqual(offlineStatus(paths).expected, { starts: 1, totalMs: 900, phases: { boot: 400 } });
});
