/**
 * Which driver is live and why, as `berth status` and `berth doctor` show
 * it: the engine's status line, and doctor's verdict for the instance's
 * `driver` setting (simulated hosts, as in host-detect.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { doctorReport, formatDoctor } from '../../app/client/doctor.js';
import { formatStatus } from '../../app/cli/output.js';
import { defaultTuning } from '../../app/base/tuning.js';
import type { VmStatus } from '../../app/contract/contract.js';
import { GOOD_HYPERV_PROBE, linuxHost, macHost, windowsHost } from '../helpers/fake-host.js';

const base: VmStatus = {
  instance: 'default',
  state: 'running',
  driver: 'vfkit',
  driverReason: 'auto: vfkit 0.6.1 on macOS 14.5',
  accel: 'hvf',
  accelReason: 'Virtualization.framework (through vfkit)',
  cpus: 2,
  memoryMiB: 2048,
  diskGiB: 64,
  dockerSocket: '/Users/me/.berth/default/docker.sock',
  dockerHost: 'unix:///Users/me/.berth/default/docker.sock',
  enginePid: 1,
};

test('status: the live driver and why', () => {
  assert.match(formatStatus(base), /^driver {8}vfkit \(auto: vfkit 0\.6\.1 on macOS 14\.5\)$/m);
  const stopped = formatStatus({ ...base, state: 'stopped', driver: 'auto', driverReason: undefined, accel: undefined });
  assert.match(stopped, /^driver {8}auto \(picked at start; `berth doctor` shows which\)$/m);
  const failed = formatStatus({
    ...base,
    state: 'error',
    driver: 'qemu',
    driverReason: 'set in settings; QEMU 9.1.0 (qemu-system-aarch64), accelerator hvf',
    error: { code: 'ACCEL_UNAVAILABLE', message: 'QEMU did not start: HV_UNSUPPORTED', hint: 'Set the accelerator to tcg.' },
  });
  assert.match(failed, /^driver {8}qemu \(set in settings; QEMU 9\.1\.0/m, 'an error still says which driver failed');
});

test('doctor: the setting decides what is used; auto shows its pick', async () => {
  const auto = await doctorReport({ facts: macHost() });
  assert.equal(auto.json.setting, 'auto');
  assert.equal(auto.json.selected, 'vfkit');
  assert.match(auto.text, /^ {2}vfkit {4}ok \(used\)/m);
  assert.equal(auto.text.split('\n').at(-1), 'Berth will use: vfkit');

  const qemu = await doctorReport({ facts: macHost(), setting: 'qemu' });
  assert.equal(qemu.json.selected, 'qemu');
  assert.equal(qemu.json.recommended, 'vfkit');
  assert.match(qemu.text, /^ {2}QEMU {5}ok \(used\)/m);
  assert.match(qemu.text, /^ {2}vfkit {4}ok {8}/m);
  assert.equal(qemu.text.split('\n').at(-1), 'Berth will use: QEMU (set in settings)');
});

test('doctor: the overrides in effect are listed from the tuning, none when none are set', async () => {
  const none = await doctorReport({ facts: macHost(), tuning: defaultTuning() });
  assert.equal(none.json.overrides, undefined);
  assert.doesNotMatch(none.text, /Overrides/);
  const some = await doctorReport({ facts: macHost(), tuning: defaultTuning({ accel: 'tcg', bootTimeoutMs: 90_000 }) });
  assert.deepEqual(some.json.overrides, { BERTH_BOOT_TIMEOUT_MS: '90000', BERTH_ACCEL: 'tcg' });
  assert.match(some.text, /^Overrides in effect: BERTH_BOOT_TIMEOUT_MS=90000 BERTH_ACCEL=tcg$/m);
});

test('doctor: a driver set in settings that cannot run here is a failure with the way out', async () => {
  const r = await doctorReport({ facts: linuxHost(), setting: 'hyperv' });
  assert.equal(r.json.ok, false);
  assert.equal(r.json.selected, null);
  assert.match(r.text, /Settings ask for Hyper-V, which cannot run here: Hyper-V is a Windows feature/);
  assert.match(r.text, /`berth settings set driver=auto` \(it would use QEMU\)/);
  const off = await doctorReport({ facts: windowsHost({ ...GOOD_HYPERV_PROBE, hypervAdmin: false }), setting: 'hyperv' });
  assert.match(off.text, /Start with: Add your account to the Hyper-V Administrators group/);
});

test('doctor: the driver running now, as the engine reports it', async () => {
  const r = await doctorReport({ facts: macHost(), live: { driver: 'qemu', reason: 'set in settings; QEMU 9.1.0', state: 'running' } });
  assert.match(r.text, /^Running now: QEMU \(set in settings; QEMU 9\.1\.0\)$/m);
  assert.deepEqual(r.json.live, { driver: 'qemu', reason: 'set in settings; QEMU 9.1.0', state: 'running' });
  assert.equal(formatDoctor(r.json), r.text);
});

test('status: whether the VM got Rosetta, and if the setting is on but it did not, why', () => {
  assert.doesNotMatch(formatStatus(base), /rosetta/, 'nothing while the setting is off');
  assert.match(formatStatus({ ...base, rosetta: { active: true } }), /^rosetta {7}on \(x86_64 binaries run through Rosetta\)$/m);
  const note = 'Rosetta is on in settings but not installed on this Mac: run `softwareupdate --install-rosetta --agree-to-license`';
  assert.match(formatStatus({ ...base, rosetta: { active: false, note } }), /^rosetta {7}not used: Rosetta is on in settings but not installed/m);
});

test('doctor: Rosetta with the driver the next start uses, on Apple silicon and elsewhere', async () => {
  const on = await doctorReport({ facts: macHost(), rosetta: true });
  assert.deepEqual(on.json.rosetta, { setting: true, usable: true });
  assert.match(on.text, /^Rosetta: on; x86_64 binaries in the VM run through it$/m);
  assert.equal(on.text.split('\n').at(-1), 'Berth will use: vfkit');

  const off = await doctorReport({ facts: macHost() });
  assert.deepEqual(off.json.rosetta, { setting: false, usable: false });
  assert.match(off.text, /^Rosetta: off; `berth settings set rosetta=true` runs x86_64/m, 'offered where it would work');

  const missing = await doctorReport({ facts: macHost({ rosetta: false }), rosetta: true });
  assert.equal(missing.json.rosetta?.usable, false);
  assert.match(missing.json.rosetta?.note ?? '', /not installed on this Mac: run `softwareupdate --install-rosetta --agree-to-license`/);
  assert.equal(missing.json.ok, true, 'the VM still starts');

  for (const [facts, setting] of [
    [macHost({ vfkit: false }), 'auto'],
    [macHost(), 'qemu'],
    [linuxHost(), 'auto'],
  ] as const) {
    const r = await doctorReport({ facts, setting, rosetta: true });
    assert.equal(r.json.rosetta?.usable, false);
    assert.match(r.json.rosetta?.note ?? '', /only the vfkit driver .* offers it, and this VM runs on qemu/);
    assert.match(r.text, /^Rosetta: Rosetta is on in settings but not used/m);
  }
  const intel = await doctorReport({ facts: macHost({ arch: 'x64' }), rosetta: true });
  assert.match(intel.json.rosetta?.note ?? '', /this guest is x86_64/);
  assert.equal((await doctorReport({ facts: linuxHost() })).json.rosetta, undefined, 'not mentioned where it cannot be');
  assert.equal((await doctorReport({ facts: macHost({ arch: 'x64' }) })).json.rosetta, undefined);
});
