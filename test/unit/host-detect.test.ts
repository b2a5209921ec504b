/**
 * Host detection and `berth doctor`, for Linux, macOS and Windows hosts
 * simulated on Linux through injected OS facts. The facts checked follow
 * each platform's documentation: `sysctl kern.hv_support` (Apple,
 * Hypervisor.framework: 1 when the CPU supports it), `sw_vers -productVersion`,
 * Darwin 22 = macOS 13 (vfkit's EFI loader and this driver need 13+), the
 * Windows build in os.release() (the Default Switch arrived in 1709, build
 * 16299), Win32_ComputerSystem.HypervisorPresent, the vmms service, and
 * Hyper-V Administrators (S-1-5-32-578).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { doctorReport, formatDoctor } from '../../app/client/doctor.js';
import { buildProbeScript } from '../../app/engine/drivers/hyperv-scripts.js';
import { POWERSHELL_ARGS } from '../../app/engine/drivers/powershell.js';
import {
  describeHost,
  detectDrivers,
  macosFromDarwin,
  recommendedDriver,
  windowsBuild,
  type CommandResult,
  type DriverCheck,
} from '../../app/engine/drivers/host-detect.js';

import { fakeFacts, ok, type FakeHost, type Handler } from '../helpers/fake-host.js';

const byName = (checks: DriverCheck[], d: string) => checks.find((c) => c.driver === d)!;

// ------------------------------------------------------------------- Linux

test('Linux with QEMU and a usable /dev/kvm: QEMU with KVM', async () => {
  const f = fakeFacts({
    platform: 'linux',
    release: '6.1.0-18-amd64',
    bins: { 'qemu-system-x86_64': '/usr/bin/qemu-system-x86_64' },
    commands: { 'qemu-system-x86_64 --version': ok('QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)\n') },
    files: { '/dev/kvm': 'rw' },
  });
  const checks = await detectDrivers(f);
  assert.deepEqual(
    checks.map((c) => c.driver),
    ['qemu', 'vfkit', 'hyperv'],
  );
  const q = byName(checks, 'qemu');
  assert.equal(q.usable, true);
  assert.equal(q.details.accel, 'kvm');
  assert.equal(q.details.version, '7.2.19');
  assert.deepEqual(q.warnings, []);
  assert.equal(byName(checks, 'vfkit').problem?.code, 'UNSUPPORTED_OS');
  assert.equal(byName(checks, 'hyperv').problem?.code, 'UNSUPPORTED_OS');
  assert.equal(recommendedDriver(checks), 'qemu');
});

test('Linux without KVM: QEMU still usable under TCG, with a warning', async () => {
  for (const [kvm, why] of [
    ['exists', /kvm group/],
    [undefined, /does not exist/],
  ] as const) {
    const f = fakeFacts({
      platform: 'linux',
      release: '6.1.0',
      arch: 'arm64',
      bins: { 'qemu-system-aarch64': '/usr/bin/qemu-system-aarch64' },
      commands: { 'qemu-system-aarch64 --version': ok('QEMU emulator version 8.2.2\n') },
      files: kvm ? { '/dev/kvm': kvm } : {},
    });
    const q = byName(await detectDrivers(f), 'qemu');
    assert.equal(q.usable, true);
    assert.equal(q.details.accel, 'tcg');
    assert.match(q.warnings.join('\n'), why);
  }
});

test('Linux without QEMU: QEMU_MISSING with the package to install', async () => {
  const checks = await detectDrivers(fakeFacts({ platform: 'linux', release: '6.1.0' }));
  const q = byName(checks, 'qemu');
  assert.equal(q.usable, false);
  assert.equal(q.problem?.code, 'QEMU_MISSING');
  assert.match(q.problem!.hint, /apt-get install qemu-system-x86/);
  assert.equal(recommendedDriver(checks), undefined);
});

test('BERTH_QEMU is honoured', async () => {
  const f = fakeFacts({
    platform: 'linux',
    release: '6.1.0',
    tools: { qemu: '/opt/qemu/bin/qemu-system-x86_64' },
    bins: { '/opt/qemu/bin/qemu-system-x86_64': '/opt/qemu/bin/qemu-system-x86_64' },
    commands: { 'qemu-system-x86_64 --version': ok('QEMU emulator version 6.2.0\n') },
    files: { '/dev/kvm': 'rw' },
  });
  const q = byName(await detectDrivers(f), 'qemu');
  assert.equal(q.details.binary, '/opt/qemu/bin/qemu-system-x86_64');
  assert.match(q.warnings.join(), /QEMU 6\.2\.0 is old/);
});

// ------------------------------------------------------------------- macOS

const macCommands = (over: Record<string, Handler> = {}): Record<string, Handler> => ({
  'sw_vers -productVersion': ok('14.5\n'),
  'sysctl -n kern.hv_support': ok('1\n'),
  'vfkit --version': ok('vfkit version: v0.6.1\n'),
  'qemu-system-aarch64 --version': ok('QEMU emulator version 9.1.0\n'),
  ...over,
});

test('macOS 14 on Apple silicon with vfkit and QEMU: vfkit first, QEMU with hvf as fallback', async () => {
  const f = fakeFacts({
    platform: 'darwin',
    release: '23.5.0',
    arch: 'arm64',
    bins: { vfkit: '/opt/homebrew/bin/vfkit', 'qemu-system-aarch64': '/opt/homebrew/bin/qemu-system-aarch64' },
    commands: macCommands(),
    files: { '/Library/Apple/usr/libexec/oah/libRosettaRuntime': 'exists' },
  });
  const checks = await detectDrivers(f);
  assert.deepEqual(
    checks.map((c) => c.driver),
    ['vfkit', 'qemu', 'hyperv'],
  );
  const v = byName(checks, 'vfkit');
  assert.equal(v.usable, true);
  assert.equal(v.details.version, '0.6.1');
  assert.equal(v.details.rosetta, true);
  assert.equal(byName(checks, 'qemu').details.accel, 'hvf');
  assert.equal(recommendedDriver(checks), 'vfkit');
  assert.equal((await describeHost(f)).os, 'macOS 14.5');
});

test('macOS without vfkit: VFKIT_MISSING, and QEMU is used', async () => {
  const f = fakeFacts({
    platform: 'darwin',
    release: '23.5.0',
    arch: 'arm64',
    bins: { 'qemu-system-aarch64': '/opt/homebrew/bin/qemu-system-aarch64' },
    commands: macCommands(),
  });
  const checks = await detectDrivers(f);
  const v = byName(checks, 'vfkit');
  assert.equal(v.problem?.code, 'VFKIT_MISSING');
  assert.match(v.problem!.hint, /brew install vfkit/);
  assert.match(byName(checks, 'vfkit').warnings.join(), /^$/);
  assert.equal(recommendedDriver(checks), 'qemu');
});

test('macOS 12 is too old for vfkit (sw_vers, or the Darwin version when sw_vers fails)', async () => {
  const f = fakeFacts({
    platform: 'darwin',
    release: '21.6.0',
    bins: { vfkit: '/usr/local/bin/vfkit' },
    commands: macCommands({ 'sw_vers -productVersion': ok('12.7.4\n') }),
  });
  const v = byName(await detectDrivers(f), 'vfkit');
  assert.equal(v.problem?.code, 'UNSUPPORTED_OS');
  assert.match(v.problem!.message, /macOS 13 or later \(this is macOS 12\.7\.4\)/);
  const g = fakeFacts({ platform: 'darwin', release: '21.6.0', bins: { vfkit: '/usr/local/bin/vfkit' }, commands: { 'sysctl -n kern.hv_support': ok('1') } });
  assert.match(byName(await detectDrivers(g), 'vfkit').problem!.message, /this is macOS 12\)/);
  assert.equal(macosFromDarwin('22.1.0'), '13');
  assert.equal(macosFromDarwin('24.0.0'), '15');
  assert.equal(macosFromDarwin('25.0.0'), '26');
  assert.equal(macosFromDarwin('19.6.0'), undefined);
});

test('a Mac without hardware virtualization: vfkit unusable, QEMU under TCG', async () => {
  const f = fakeFacts({
    platform: 'darwin',
    release: '23.5.0',
    bins: { vfkit: '/usr/local/bin/vfkit', 'qemu-system-x86_64': '/usr/local/bin/qemu-system-x86_64' },
    commands: macCommands({ 'sysctl -n kern.hv_support': ok('0\n'), 'qemu-system-x86_64 --version': ok('QEMU emulator version 9.1.0\n') }),
  });
  const checks = await detectDrivers(f);
  assert.equal(byName(checks, 'vfkit').problem?.code, 'UNSUPPORTED_HOST');
  const q = byName(checks, 'qemu');
  assert.equal(q.usable, true);
  assert.equal(q.details.accel, 'tcg');
  assert.match(q.warnings.join(), /Hypervisor\.framework is not available/);
});

test('vfkit older than 0.6.0 (no read-only disks) is refused', async () => {
  const f = fakeFacts({
    platform: 'darwin',
    release: '23.5.0',
    bins: { vfkit: '/usr/local/bin/vfkit' },
    commands: macCommands({ 'vfkit --version': ok('vfkit version: v0.5.1\n') }),
  });
  const v = byName(await detectDrivers(f), 'vfkit');
  assert.equal(v.usable, false);
  assert.match(v.problem!.message, /vfkit 0\.5\.1 is too old/);
  assert.match(v.problem!.hint, /brew upgrade vfkit/);
});

test('Apple silicon without Rosetta: a warning, not a failure', async () => {
  const f = fakeFacts({ platform: 'darwin', release: '24.1.0', arch: 'arm64', bins: { vfkit: '/opt/homebrew/bin/vfkit' }, commands: macCommands() });
  const v = byName(await detectDrivers(f), 'vfkit');
  assert.equal(v.usable, true);
  assert.match(v.warnings.join(), /softwareupdate --install-rosetta/);
});

// ----------------------------------------------------------------- Windows

function windows(probe: Record<string, unknown> | CommandResult, over: Partial<FakeHost> = {}) {
  return fakeFacts({
    platform: 'win32',
    release: '10.0.22631',
    bins: { 'powershell.exe': 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe' },
    commands: {
      'powershell.exe': (args, input) => {
        assert.deepEqual(args, POWERSHELL_ARGS);
        assert.equal(input, buildProbeScript('Default Switch'));
        return 'code' in probe ? (probe as CommandResult) : ok(`BERTH-RESULT:${JSON.stringify({ ok: true, ...probe })}\r\n`);
      },
    },
    ...over,
  });
}
const goodProbe = {
  module: true,
  vmms: 'Running',
  hypervAdmin: true,
  elevated: false,
  hypervisorPresent: true,
  edition: 'Microsoft Windows 11 Pro',
  switchExists: true,
};

test('Windows 11 Pro with Hyper-V: usable, and the only choice', async () => {
  const f = windows(goodProbe);
  const checks = await detectDrivers(f);
  assert.deepEqual(
    checks.map((c) => c.driver),
    ['hyperv', 'qemu', 'vfkit'],
  );
  const h = byName(checks, 'hyperv');
  assert.equal(h.usable, true, JSON.stringify(h));
  assert.equal(h.details.edition, 'Microsoft Windows 11 Pro');
  assert.equal(byName(checks, 'qemu').problem?.code, 'UNSUPPORTED_OS');
  assert.equal(recommendedDriver(checks), 'hyperv');
  assert.equal((await describeHost(f)).os, 'Windows 11 (build 22631)');
  assert.equal(f.calls.length, 1, 'one PowerShell run for the whole probe');
});

test('Windows: Hyper-V off, Home edition, hypervisor not running, not admin, no switch', async () => {
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ ...goodProbe, module: false, vmms: 'missing' }, 'HYPERV_DISABLED', /Enable-WindowsOptionalFeature -Online -FeatureName Microsoft-Hyper-V -All/],
    [{ ...goodProbe, module: false, vmms: 'missing', edition: 'Microsoft Windows 11 Home' }, 'HYPERV_DISABLED', /Pro, Enterprise or Education/],
    [{ ...goodProbe, vmms: 'Stopped' }, 'HYPERV_DISABLED', /Enable-WindowsOptionalFeature/],
    [{ ...goodProbe, hypervisorPresent: false }, 'HYPERV_DISABLED', /firmware settings.*hypervisorlaunchtype auto/],
    [{ ...goodProbe, hypervAdmin: false, elevated: false }, 'HYPERV_NOT_ADMIN', /Add-LocalGroupMember -SID S-1-5-32-578/],
    [{ ...goodProbe, switchExists: false }, 'HYPERV_SWITCH_MISSING', /BERTH_HYPERV_SWITCH/],
  ];
  for (const [probe, code, hint] of cases) {
    const h = byName(await detectDrivers(windows(probe)), 'hyperv');
    assert.equal(h.usable, false);
    assert.equal(h.problem?.code, code, JSON.stringify(probe));
    assert.match(h.problem!.hint, hint);
  }
  const elevatedAdmin = byName(await detectDrivers(windows({ ...goodProbe, hypervAdmin: false, elevated: true })), 'hyperv');
  assert.equal(elevatedAdmin.usable, true, 'an elevated administrator may manage Hyper-V');
});

test('Windows: PowerShell without the Hyper-V cmdlets, or with no PowerShell at all', async () => {
  const raw = windows({ code: 1, stdout: '', stderr: "Get-Module : The term 'Get-VMSwitch' is not recognized as the name of a cmdlet" });
  assert.equal(byName(await detectDrivers(raw), 'hyperv').problem?.code, 'HYPERV_DISABLED');
  const nops = byName(await detectDrivers(windows(goodProbe, { bins: {} })), 'hyperv');
  assert.equal(nops.problem?.code, 'POWERSHELL_MISSING');
});

test('Windows older than 1709 is refused', async () => {
  const h = byName(await detectDrivers(windows(goodProbe, { release: '10.0.14393' })), 'hyperv');
  assert.equal(h.problem?.code, 'UNSUPPORTED_OS');
  assert.match(h.problem!.message, /build 14393/);
  assert.equal(windowsBuild('10.0.19045'), 19045);
});

// ------------------------------------------------------------------ doctor

test('doctor: text and JSON for a Mac', async () => {
  const f = fakeFacts({
    platform: 'darwin',
    release: '23.5.0',
    arch: 'arm64',
    bins: { 'qemu-system-aarch64': '/opt/homebrew/bin/qemu-system-aarch64' },
    commands: macCommands(),
  });
  const r = await doctorReport({ facts: f });
  assert.equal(r.json.ok, true);
  assert.equal(r.json.recommended, 'qemu');
  assert.equal(r.json.host.os, 'macOS 14.5');
  assert.deepEqual(JSON.parse(JSON.stringify(r.json)), r.json, 'the JSON survives serialization');
  const lines = r.text.split('\n');
  assert.equal(lines[0], 'Host: macOS 14.5 (arm64)');
  assert.match(r.text, /^ {2}vfkit {4}no {9}vfkit was not found on PATH \[VFKIT_MISSING\]$/m);
  assert.match(r.text, /^ {21}hint: Install vfkit with `brew install vfkit`\.$/m);
  assert.match(r.text, /^ {2}QEMU {5}ok \(used\) {2}QEMU 9\.1\.0 \(qemu-system-aarch64\), accelerator hvf$/m);
  assert.match(r.text, /^ {2}Hyper-V {2}n\/a {8}Hyper-V is a Windows feature$/m);
  assert.equal(lines.at(-1), 'Berth will use: QEMU');
});

test('doctor: nothing usable says where to start', async () => {
  const r = await doctorReport({ facts: windows({ ...goodProbe, hypervAdmin: false }) });
  assert.equal(r.json.ok, false);
  assert.equal(r.json.recommended, null);
  assert.match(r.text, /No driver can run the Berth VM on this host\.\nStart with: Add your account to the Hyper-V Administrators group/);
  assert.equal(formatDoctor(r.json), r.text);
});

test('doctor on this machine (real facts) names a verdict for every driver', async () => {
  const r = await doctorReport();
  assert.equal(r.json.drivers.length, 3);
  assert.equal(r.json.host.platform, process.platform);
  for (const d of r.json.drivers) assert.ok(d.usable || d.problem, d.driver);
});
