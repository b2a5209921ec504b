/**
 * The QEMU accelerator: hardware acceleration (KVM, Hypervisor.framework)
 * runs only guests of the host's own architecture, so a foreign guest runs
 * under TCG whatever the OS offers (QEMU's documentation, "-accel": kvm and
 * hvf need the target to match the host; Lima does the same for a
 * cross-arch instance), and an accelerator named in settings that cannot
 * work is refused before QEMU is started.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseAccelerator } from '../../app/engine/drivers/accel-probe.js';
import { isBerthError } from '../../app/contract/errors.js';

const probeInput = { kernel: '/k', initrd: '/i', cacheFile: '/nonexistent/accel.json' };

test("accelerator: hardware only for the host's own architecture, else TCG with the reason", async () => {
  const mac = { platform: 'darwin' as const, arch: 'arm64' };
  assert.equal((await chooseAccelerator({ ...probeInput, arch: 'aarch64', requested: 'auto', host: mac })).accel, 'hvf');
  const foreign = await chooseAccelerator({ ...probeInput, arch: 'x86_64', requested: 'auto', host: mac });
  assert.equal(foreign.accel, 'tcg');
  assert.match(foreign.reason, /an x86_64 guest on this aarch64 host has no hardware acceleration/);
  const linuxArm = await chooseAccelerator({ ...probeInput, arch: 'aarch64', requested: 'auto', host: { platform: 'linux', arch: 'x64' } });
  assert.equal(linuxArm.accel, 'tcg', 'no KVM probe for a foreign guest');
  assert.equal((await chooseAccelerator({ ...probeInput, arch: 'x86_64', requested: 'auto', host: { platform: 'win32', arch: 'x64' } })).accel, 'tcg');
  // Asked for by name: refused when it cannot work, rather than a QEMU error later.
  await assert.rejects(
    chooseAccelerator({ ...probeInput, arch: 'aarch64', requested: 'kvm', host: { platform: 'linux', arch: 'x64' } }),
    (e) => isBerthError(e, 'ACCEL_UNAVAILABLE') && /aarch64 guest cannot use kvm/.test(e.message) && /accel=auto/.test(e.hint),
  );
  await assert.rejects(
    chooseAccelerator({ ...probeInput, arch: 'x86_64', requested: 'hvf', host: { platform: 'linux', arch: 'x64' } }),
    (e) => isBerthError(e, 'ACCEL_UNAVAILABLE') && /hvf is not this host's accelerator \(kvm\)/.test(e.message),
  );
  assert.equal((await chooseAccelerator({ ...probeInput, arch: 'aarch64', requested: 'tcg', host: mac })).reason, 'set in settings');
  // BERTH_ACCEL (forced) wins over the setting, unchecked.
  assert.deepEqual(await chooseAccelerator({ ...probeInput, arch: 'aarch64', requested: 'kvm', forced: 'tcg', host: mac }), {
    accel: 'tcg',
    reason: 'set by BERTH_ACCEL',
    cached: false,
  });
});
