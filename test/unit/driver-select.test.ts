/**
 * Which driver runs the VM: the `driver` setting (auto | qemu | vfkit |
 * hyperv) and host-detect's verdicts, on simulated macOS, Windows and Linux
 * hosts; the VM spec each driver gets; and the accelerator for guests of
 * another architecture (Virtualization.framework and Hyper-V cannot run
 * them; QEMU emulates them).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { defaultGuestTraits } from '../../app/engine/drivers/driver.js';
import { chooseDriver, createDriver, driverFactory } from '../../app/engine/drivers/driver-select.js';
import { HypervDriver } from '../../app/engine/drivers/hyperv.js';
import { QemuDriver } from '../../app/engine/drivers/qemu.js';
import { findVfkit, VfkitDriver } from '../../app/engine/drivers/vfkit.js';
import { buildVmSpec, HYPERV_IMAGE_FILES, ROSETTA_TAG, rosettaPlan, type SpecInputs } from '../../app/engine/drivers/vm-spec.js';
import { isBerthError } from '../../app/contract/errors.js';
import { instancePaths } from '../../app/base/paths.js';
import { SettingsSchema } from '../../app/engine/settings/schema.js';
import { GOOD_HYPERV_PROBE, linuxHost, macHost, windowsHost } from '../helpers/fake-host.js';
import { withEnv } from '../helpers/temp.js';

// ------------------------------------------------------------- the setting

test('the driver setting: auto by default, the four values, anything else refused with the choices', () => {
  assert.equal(SettingsSchema.parse({}).driver, 'auto');
  for (const d of ['auto', 'qemu', 'vfkit', 'hyperv']) assert.equal(SettingsSchema.parse({ driver: d }).driver, d);
  const bad = SettingsSchema.safeParse({ driver: 'virtualbox' });
  assert.equal(bad.success, false);
  assert.match(JSON.stringify(bad.error?.issues), /qemu.*vfkit.*hyperv/);
});

test('the vfkit hint names a setting that exists', () => {
  const restore = withEnv({ PATH: '/nonexistent' });
  try {
    assert.throws(
      () => findVfkit(),
      (e) => {
        assert.ok(isBerthError(e, 'VFKIT_MISSING'));
        const m = /berth settings set (\w+)=(\w+)/.exec(e.hint);
        assert.ok(m, e.hint);
        assert.equal(SettingsSchema.safeParse({ [m[1]!]: m[2] }).success, true, `${m[1]}=${m[2]} is a valid setting`);
        return true;
      },
    );
  } finally {
    restore();
  }
});

// ------------------------------------------------------------------- auto

test('auto on macOS 13+: vfkit when installed', async () => {
  const c = await chooseDriver('auto', { facts: macHost() });
  assert.equal(c.name, 'vfkit');
  assert.match(c.reason, /^auto: vfkit 0\.6\.1 on macOS 14\.5/);
});

test('auto on macOS without vfkit: QEMU with hvf, and the reason says why not vfkit', async () => {
  const c = await chooseDriver('auto', { facts: macHost({ vfkit: false }) });
  assert.equal(c.name, 'qemu');
  assert.match(c.reason, /vfkit is not usable \(vfkit was not found on PATH\), so QEMU 9\.1\.0 .*accelerator hvf/);
});

test('auto on Windows: Hyper-V', async () => {
  const c = await chooseDriver('auto', { facts: windowsHost(GOOD_HYPERV_PROBE) });
  assert.equal(c.name, 'hyperv');
  assert.match(c.reason, /^auto: Hyper-V on Microsoft Windows 11 Pro/);
});

test('auto on Linux: QEMU, KVM to be proven by the probe boot; TCG when /dev/kvm is missing', async () => {
  const c = await chooseDriver('auto', { facts: linuxHost() });
  assert.equal(c.name, 'qemu');
  assert.match(c.reason, /^auto: QEMU 7\.2\.11 .*kvm, confirmed by a probe boot at start/);
  assert.doesNotMatch(c.reason, /vfkit|Hyper-V/, 'drivers of other OSes are not "passed over"');
  const tcg = await chooseDriver('auto', { facts: linuxHost({ kvm: false }) });
  assert.match(tcg.reason, /accelerator tcg/);
  assert.match(tcg.warnings.join(), /\/dev\/kvm does not exist/);
});

test("auto with nothing usable: the host's first choice says what to do", async () => {
  await assert.rejects(chooseDriver('auto', { facts: linuxHost({ qemu: false }) }), (e) => {
    assert.ok(isBerthError(e, 'QEMU_MISSING'));
    assert.match(e.message, /^no VM driver can run on this host \(Linux 6\.1\.0-18-amd64\): QEMU: qemu-system-x86_64 was not found/);
    assert.match(e.hint, /apt-get install qemu-system-x86/);
    assert.match(e.hint, /berth doctor/);
    return true;
  });
  await assert.rejects(
    chooseDriver('auto', { facts: windowsHost({ ...GOOD_HYPERV_PROBE, vmms: 'missing', module: false }) }),
    (e) => isBerthError(e, 'HYPERV_DISABLED') && /Enable-WindowsOptionalFeature/.test(e.hint),
  );
});

// -------------------------------------------------------------- explicit

test('a driver named in settings is used when it can run, with that as the reason', async () => {
  const c = await chooseDriver('qemu', { facts: macHost() });
  assert.equal(c.name, 'qemu');
  assert.match(c.reason, /^set in settings; QEMU 9\.1\.0/);
});

test('a driver named in settings that cannot run here: its own error, and a hint back to auto', async () => {
  await assert.rejects(chooseDriver('vfkit', { facts: linuxHost() }), (e) => {
    assert.ok(isBerthError(e, 'UNSUPPORTED_OS'));
    assert.match(e.message, /the vfkit driver set in settings cannot run here: vfkit runs only on macOS/);
    assert.match(e.hint, /berth settings set driver=auto/);
    return true;
  });
  await assert.rejects(
    chooseDriver('vfkit', { facts: macHost({ vfkit: false }) }),
    (e) => isBerthError(e, 'VFKIT_MISSING') && /brew install vfkit/.test(e.hint),
  );
  await assert.rejects(
    chooseDriver('hyperv', { facts: windowsHost({ ...GOOD_HYPERV_PROBE, hypervAdmin: false }) }),
    (e) => isBerthError(e, 'HYPERV_NOT_ADMIN') && /S-1-5-32-578/.test(e.hint) && /driver=auto/.test(e.hint),
  );
  await assert.rejects(chooseDriver('qemu', { facts: windowsHost(GOOD_HYPERV_PROBE) }), (e) => isBerthError(e, 'UNSUPPORTED_OS'));
});

// ------------------------------------------------------- foreign guests

test('an x86_64 guest on Apple silicon: vfkit cannot run it, so auto picks QEMU, emulated', async () => {
  const c = await chooseDriver('auto', { facts: macHost(), guestArch: 'x86_64' });
  assert.equal(c.name, 'qemu');
  assert.match(c.reason, /vfkit is not usable \(Virtualization\.framework cannot run an x86_64 guest on this aarch64 host\)/);
  assert.match(c.reason, /qemu-system-x86_64/);
  assert.match(c.warnings.join(), /emulation \(TCG\)/);
  await assert.rejects(
    chooseDriver('vfkit', { facts: macHost(), guestArch: 'x86_64' }),
    (e) => isBerthError(e, 'UNSUPPORTED_HOST') && /driver=qemu/.test(e.hint),
  );
});

// ----------------------------------------------------------- the factory

test('one factory makes every driver; the engine asks it with the setting and the guest arch', async () => {
  assert.ok(createDriver('qemu') instanceof QemuDriver);
  assert.ok(createDriver('vfkit') instanceof VfkitDriver);
  assert.ok(createDriver('hyperv') instanceof HypervDriver);
  const f = driverFactory({ facts: macHost({ vfkit: false }) });
  assert.deepEqual(f.host, { platform: 'darwin', arch: 'arm64' });
  const sel = await f.select('auto', 'aarch64');
  assert.equal(sel.driver.name, 'qemu');
  assert.equal(sel.choice.name, 'qemu');
  assert.equal(f.byName('vfkit').name, 'vfkit');
});

// ------------------------------------------------------------ the VM spec

const paths = instancePaths('default', '/Users/me/.berth', 'darwin');
const inputs: SpecInputs = {
  paths,
  image: { dir: '/cache/img', kernel: '/cache/img/vmlinuz', initrd: '/cache/img/initrd.img', rootfs: '/cache/img/rootfs.squashfs' },
  arch: 'aarch64',
  accel: 'hvf',
  cpus: 2,
  memoryMiB: 2048,
  diskGiB: 64,
  sshHostPort: 40022,
};

test('spec for QEMU: its console, QMP socket and pid file, raw disks by serial', () => {
  const s = buildVmSpec('qemu', defaultGuestTraits('aarch64'), inputs);
  assert.equal(s.cmdline, 'console=ttyAMA0 quiet panic=-1 apparmor=0');
  assert.equal(s.controlSocket, '/Users/me/.berth/default/qmp.sock');
  assert.equal(s.pidFile, '/Users/me/.berth/default/qemu.pid');
  assert.deepEqual(
    s.disks.map((d) => [d.serial, d.path]),
    [
      ['berth-root', '/cache/img/rootfs.squashfs'],
      ['berth-data', '/Users/me/.berth/default/data.img'],
      ['berth-cfg', '/Users/me/.berth/default/config.tar'],
    ],
  );
  assert.equal(s.efi, undefined);
});

test('spec for vfkit: virtio console (hvc0), its REST socket and pid file', () => {
  const s = buildVmSpec('vfkit', new VfkitDriver().guestTraits('aarch64'), inputs);
  assert.match(s.cmdline, /^console=hvc0 /);
  assert.equal(s.controlSocket, '/Users/me/.berth/default/vfkit.sock');
  assert.equal(s.pidFile, '/Users/me/.berth/default/vfkit.pid');
  assert.equal(s.disks[1]!.path, '/Users/me/.berth/default/data.img');
});

test("spec for Hyper-V: EFI boot from the image's VHDX build, a VHDX data disk Hyper-V makes, the config disk as a VHD", () => {
  const win = instancePaths('default', 'C:\\Users\\me\\.berth', 'win32');
  const img = { dir: 'C:\\cache\\img', kernel: 'C:\\cache\\img\\vmlinuz', initrd: 'C:\\cache\\img\\initrd.img', rootfs: 'C:\\cache\\img\\rootfs.squashfs' };
  const traits = new HypervDriver({ run: async () => ({ code: 0, stdout: '', stderr: '' }) }).guestTraits('x86_64');
  const all = () => true;
  const s = buildVmSpec('hyperv', traits, { ...inputs, paths: win, image: img, arch: 'x86_64' }, all);
  // path.join on this host joins with its own separator; compare by basename.
  assert.equal(path.basename(s.efi!.image), HYPERV_IMAGE_FILES.efi);
  assert.deepEqual(
    s.disks.map((d) => [d.serial, path.win32.basename(d.path), d.readonly, d.sizeBytes]),
    [
      // No separate root disk: efi.vhdx carries the root image as its `berth-root` partition.
      ['berth-data', 'data.vhdx', false, 64 * 1024 ** 3],
      ['berth-cfg', 'config.vhd', true, undefined],
    ],
  );
  assert.match(s.cmdline, /console=ttyS0/);
  assert.throws(
    () => buildVmSpec('hyperv', traits, { ...inputs, image: img }, (p) => !p.endsWith(HYPERV_IMAGE_FILES.efi)),
    (e) => isBerthError(e, 'IMAGE_MISSING') && /efi\.vhdx missing/.test(e.message) && /QEMU and vfkit boot this image/.test(e.hint),
  );
});

test('Rosetta in the spec: only vfkit with an arm64 guest, as the tag the guest mounts', () => {
  const withRosetta = { ...inputs, rosetta: true };
  assert.deepEqual(buildVmSpec('vfkit', new VfkitDriver().guestTraits('aarch64'), withRosetta).rosetta, { tag: ROSETTA_TAG });
  assert.equal(buildVmSpec('vfkit', new VfkitDriver().guestTraits('aarch64'), inputs).rosetta, undefined, 'off unless asked');
  assert.equal(buildVmSpec('vfkit', new VfkitDriver().guestTraits('x86_64'), { ...withRosetta, arch: 'x86_64' }).rosetta, undefined);
  assert.equal(buildVmSpec('qemu', defaultGuestTraits('aarch64'), withRosetta).rosetta, undefined);
});

test('the spec carries the virtio-fs devices for QEMU and vfkit; Hyper-V has none', () => {
  const withShares: SpecInputs = { ...inputs, shares: [{ hostPath: '/Users/me', tag: 'berth-me-0123456789' }] };
  assert.deepEqual(buildVmSpec('qemu', defaultGuestTraits('aarch64'), withShares).shares, withShares.shares);
  assert.deepEqual(buildVmSpec('vfkit', defaultGuestTraits('aarch64'), withShares).shares, withShares.shares);
  assert.equal(buildVmSpec('hyperv', defaultGuestTraits('x86_64'), withShares, () => true).shares, undefined);
  assert.equal(buildVmSpec('qemu', defaultGuestTraits('aarch64'), { ...inputs, shares: [] }).shares, undefined);
});

test('rosettaPlan: used with vfkit, an arm64 guest and Rosetta on the Mac; otherwise a note that says why', () => {
  assert.deepEqual(rosettaPlan(false, 'qemu', 'aarch64', undefined), { use: false }, 'off: nothing to say');
  assert.deepEqual(rosettaPlan(true, 'vfkit', 'aarch64', true), { use: true });
  assert.deepEqual(rosettaPlan(true, 'vfkit', 'aarch64', undefined), { use: true }, 'unknown (a driver given by a caller): try');
  const cases: [string, ReturnType<typeof rosettaPlan>, RegExp][] = [
    ['qemu', rosettaPlan(true, 'qemu', 'aarch64', true), /only the vfkit driver .* this VM runs on qemu.*brew install vfkit.*driver=vfkit/],
    ['hyperv', rosettaPlan(true, 'hyperv', 'x86_64', undefined), /this VM runs on hyperv/],
    ['x86_64 guest', rosettaPlan(true, 'vfkit', 'x86_64', true), /this guest is x86_64/],
    [
      'not installed',
      rosettaPlan(true, 'vfkit', 'aarch64', false),
      /not installed on this Mac: run `softwareupdate --install-rosetta --agree-to-license`, then `berth restart`/,
    ],
  ];
  for (const [name, plan, why] of cases) {
    assert.equal(plan.use, false, name);
    assert.match(plan.note ?? '', why, name);
    assert.match(plan.note ?? '', /`berth settings set rosetta=false`/, `${name}: how to silence it`);
  }
});
