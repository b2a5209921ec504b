/**
 * Which driver is live and why, as `berth status` and `berth doctor` show
 * it: the engine's status line, and doctor's verdict for the instance's
 * `driver` setting (simulated hosts, as in host-detect.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { doctorReport, formatDoctor } from '../../app/cli/doctor.js';
import { formatStatus } from '../../app/cli/output.js';
import type { VmStatus } from '../../app/engine/api/contract.js';
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
