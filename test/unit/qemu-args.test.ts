/**
 * The QEMU command line, checked against QEMU's documented flags
 * (qemu-system-x86_64(1), QEMU 7.2 "Invocation" and "Device URL syntax"):
 *  -machine q35 / virt, -accel kvm|tcg|hvf, -cpu host|max, -smp N, -m SIZE,
 *  -kernel/-initrd/-append (direct Linux boot), -drive if=none,... with
 *  -device virtio-blk-pci,drive=ID,serial=S, -netdev user,hostfwd=tcp:ADDR:HPORT-:GPORT,
 *  -serial file:PATH, -qmp unix:PATH,server=on,wait=off, -pidfile, -daemonize.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VmSpec } from '../../app/engine/drivers/driver.js';
import { buildQemuArgs, findQemu, QemuDriver, qemuExitReason, serialConsole } from '../../app/engine/drivers/qemu.js';
import { isBerthError } from '../../app/contract/errors.js';
import { withEnv } from '../helpers/temp.js';

const spec: VmSpec = {
  name: 'default',
  arch: 'x86_64',
  accel: 'kvm',
  cpus: 2,
  memoryMiB: 2048,
  kernel: '/img/vmlinuz',
  initrd: '/img/initrd.img',
  cmdline: 'console=ttyS0 quiet',
  disks: [
    { path: '/img/rootfs.squashfs', serial: 'berth-root', readonly: true, format: 'raw' },
    { path: '/home/me/.berth/default/data.img', serial: 'berth-data', readonly: false, format: 'raw' },
  ],
  sshHostPort: 40022,
  serialLog: '/s/serial.log',
  pidFile: '/s/qemu.pid',
  controlSocket: '/s/qmp.sock',
};

/** Value following `flag` (the first occurrence). */
const after = (args: string[], flag: string) => args[args.indexOf(flag) + 1];
const all = (args: string[], flag: string) => args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));

test('x86_64 with KVM: q35, host CPU, resources', () => {
  const a = buildQemuArgs(spec);
  assert.equal(after(a, '-machine'), 'q35,vmport=off');
  assert.equal(after(a, '-accel'), 'kvm');
  assert.equal(after(a, '-cpu'), 'host');
  assert.equal(after(a, '-smp'), '2');
  assert.equal(after(a, '-m'), '2048M');
  assert.equal(after(a, '-name'), 'berth-default,process=berth-default');
});

test('TCG uses the "max" CPU model and a 256 MiB translation cache', () => {
  const a = buildQemuArgs({ ...spec, accel: 'tcg' });
  assert.equal(after(a, '-accel'), 'tcg,thread=single,tb-size=256');
  assert.equal(after(a, '-cpu'), 'max');
  assert.equal(after(a, '-machine'), 'q35');
});

test('aarch64 uses the virt machine', () => {
  const a = buildQemuArgs({ ...spec, arch: 'aarch64', accel: 'hvf' });
  assert.equal(after(a, '-machine'), 'virt');
  assert.equal(after(a, '-accel'), 'hvf');
});

test('direct kernel boot', () => {
  const a = buildQemuArgs(spec);
  assert.equal(after(a, '-kernel'), '/img/vmlinuz');
  assert.equal(after(a, '-initrd'), '/img/initrd.img');
  assert.equal(after(a, '-append'), 'console=ttyS0 quiet');
});

test('virtio-blk disks carry serials; the base image is read-only', () => {
  const a = buildQemuArgs(spec);
  assert.deepEqual(all(a, '-drive'), [
    'if=none,id=disk0,file=/img/rootfs.squashfs,format=raw,readonly=on',
    'if=none,id=disk1,file=/home/me/.berth/default/data.img,format=raw,discard=unmap,detect-zeroes=unmap',
  ]);
  assert.deepEqual(all(a, '-device').slice(0, 2), ['virtio-blk-pci,drive=disk0,serial=berth-root', 'virtio-blk-pci,drive=disk1,serial=berth-data']);
});

test('commas in paths are doubled, as QEMU option syntax requires', () => {
  const a = buildQemuArgs({ ...spec, disks: [{ path: '/a,b/data.img', serial: 'x', readonly: false, format: 'raw' }] });
  assert.match(all(a, '-drive')[0]!, /file=\/a,,b\/data\.img,/);
});

test('the only host forward is sshd, on loopback', () => {
  const a = buildQemuArgs(spec);
  const net = after(a, '-netdev');
  assert.equal(net, 'user,id=net0,ipv6=off,hostfwd=tcp:127.0.0.1:40022-:22');
  assert.ok(all(a, '-device').includes('virtio-net-pci,netdev=net0,romfile='));
});

test('entropy and free page reporting devices', () => {
  const d = all(buildQemuArgs(spec), '-device');
  assert.ok(d.includes('virtio-rng-pci'));
  assert.ok(d.includes('virtio-balloon-pci,free-page-reporting=on'));
});

test('extra hypervisor forwards (for benchmarks) stay on loopback; junk is dropped', () => {
  const a = buildQemuArgs({ ...spec, extraHostForwards: ['28080:18080', '0.0.0.0:1-:2', 'x'] });
  assert.equal(after(a, '-netdev'), 'user,id=net0,ipv6=off,hostfwd=tcp:127.0.0.1:40022-:22,hostfwd=tcp:127.0.0.1:28080-:18080');
});

test('serial log, QMP socket, pid file, daemonized, no reboot', () => {
  const a = buildQemuArgs(spec);
  assert.equal(after(a, '-serial'), 'file:/s/serial.log');
  assert.equal(after(a, '-qmp'), 'unix:/s/qmp.sock,server=on,wait=off');
  assert.equal(after(a, '-pidfile'), '/s/qemu.pid');
  assert.ok(a.includes('-daemonize'));
  assert.ok(a.includes('-no-reboot'));
  assert.ok(a.includes('-nodefaults'));
  assert.ok(!a.includes('-nographic'), '-nographic cannot be combined with -daemonize');
});

test('missing QEMU is reported with an install hint', () => {
  const restore = withEnv({ PATH: '/nonexistent' });
  try {
    assert.throws(
      () => findQemu('x86_64'),
      (e) => isBerthError(e, 'QEMU_MISSING') && /qemu-system-x86_64/.test(e.message) && /apt-get install/.test(e.hint),
    );
  } finally {
    restore();
  }
});

test('BERTH_QEMU pointing nowhere is reported', () => {
  assert.throws(
    () => findQemu('x86_64', '/nope/qemu'),
    (e) => isBerthError(e, 'QEMU_MISSING') && /\/nope\/qemu was not found$/.test(e.message),
  );
});

test("why QEMU went away, from its last SHUTDOWN event's reason (none: it was killed)", () => {
  assert.equal(qemuExitReason(undefined), 'the QEMU process was killed or crashed');
  // -no-reboot with panic=-1: a kernel panic resets at once and QEMU exits with guest-reset.
  assert.equal(qemuExitReason('guest-reset'), 'the guest kernel panicked or rebooted');
  assert.equal(qemuExitReason('guest-panic'), 'the guest kernel panicked');
  assert.equal(qemuExitReason('guest-shutdown'), 'the guest powered off');
  assert.equal(qemuExitReason('host-signal'), 'QEMU was stopped by a signal');
  assert.match(qemuExitReason('snapshot-load'), /QEMU shut down \(snapshot-load\)/);
});

/*
 * aarch64 guests (docs/system/arm/virt.rst; docs/system/arm/cpu-features.rst):
 * `-machine virt` (PL011 UART = the first -serial = ttyAMA0, a PCIe host
 * bridge for the same virtio-*-pci devices as q35), `-cpu max` under TCG with
 * `pauth-impdef=on` (QEMU's cheap pointer-authentication algorithm instead of
 * the architected QARMA5, which dominates emulated boot time), `-cpu host`
 * under KVM/hvf.
 */
const arm: VmSpec = { ...spec, arch: 'aarch64', accel: 'tcg', kernel: '/img/vmlinuz', cmdline: 'console=ttyAMA0 quiet' };

test('aarch64 under TCG: virt, max with the cheap pointer authentication, and the same virtio-pci devices', () => {
  const a = buildQemuArgs(arm);
  assert.equal(after(a, '-machine'), 'virt');
  assert.equal(after(a, '-accel'), 'tcg,thread=single,tb-size=256');
  assert.equal(after(a, '-cpu'), 'max,pauth-impdef=on');
  assert.equal(after(a, '-append'), 'console=ttyAMA0 quiet');
  assert.deepEqual(all(a, '-device'), [
    'virtio-blk-pci,drive=disk0,serial=berth-root',
    'virtio-blk-pci,drive=disk1,serial=berth-data',
    'virtio-net-pci,netdev=net0,romfile=',
    'virtio-rng-pci',
    'virtio-balloon-pci,free-page-reporting=on',
  ]);
  assert.equal(after(a, '-serial'), 'file:/s/serial.log');
});

test('aarch64 under KVM or hvf: virt with the host CPU; x86_64 keeps max under TCG', () => {
  assert.equal(after(buildQemuArgs({ ...arm, accel: 'kvm' }), '-cpu'), 'host');
  assert.equal(after(buildQemuArgs({ ...arm, accel: 'kvm' }), '-machine'), 'virt');
  assert.equal(after(buildQemuArgs({ ...spec, accel: 'tcg' }), '-cpu'), 'max');
});

test('the kernel console follows the architecture', () => {
  assert.equal(serialConsole('aarch64'), 'ttyAMA0');
  assert.equal(serialConsole('x86_64'), 'ttyS0');
});

test('virtio-fs shares: guest RAM as shared memfd, a vhost-user socket chardev and vhost-user-fs-pci device each', () => {
  // qemu-system-x86_64(1): -object memory-backend-memfd,id=ID,size=SIZE,share=on;
  // -machine memory-backend=ID; -chardev socket,id=ID,path=PATH; QEMU's
  // docs/system/devices/vhost-user.rst: -device vhost-user-fs-pci,chardev=ID,tag=TAG,
  // and "vhost-user ... requires the guest memory to be shared".
  const a = buildQemuArgs({
    ...spec,
    accel: 'tcg',
    shares: [
      { hostPath: '/home/me', tag: 'berth-me-0123456789', socketPath: '/s/virtiofs/berth-me-0123456789.sock' },
      { hostPath: '/srv', tag: 'berth-srv-abcdef0123', readonly: true, socketPath: '/s,odd/virtiofs/b.sock' },
    ],
  });
  assert.equal(after(a, '-machine'), 'q35,memory-backend=mem');
  assert.equal(after(a, '-m'), '2048M');
  assert.deepEqual(all(a, '-object'), ['memory-backend-memfd,id=mem,size=2048M,share=on']);
  assert.deepEqual(all(a, '-chardev'), ['socket,id=vfs0,path=/s/virtiofs/berth-me-0123456789.sock', 'socket,id=vfs1,path=/s,,odd/virtiofs/b.sock']);
  assert.deepEqual(
    all(a, '-device').filter((d) => d.startsWith('vhost-user-fs')),
    ['vhost-user-fs-pci,chardev=vfs0,tag=berth-me-0123456789', 'vhost-user-fs-pci,chardev=vfs1,tag=berth-srv-abcdef0123'],
  );
  const aarch = buildQemuArgs({ ...spec, arch: 'aarch64', accel: 'tcg', shares: [{ hostPath: '/h', tag: 't', socketPath: '/s/t.sock' }] });
  assert.equal(after(aarch, '-machine'), 'virt,memory-backend=mem');
});

test('without shares: private RAM, no vhost-user devices', () => {
  const a = buildQemuArgs(spec);
  assert.equal(a.indexOf('-object'), -1);
  assert.equal(a.indexOf('-chardev'), -1);
  assert.ok(!after(a, '-machine')!.includes('memory-backend'));
});

test('a share without a socket or with a bad tag is a bug, not a boot with half a device', () => {
  assert.throws(() => buildQemuArgs({ ...spec, shares: [{ hostPath: '/h', tag: 't' }] }), /no virtiofsd socket/);
  assert.throws(() => buildQemuArgs({ ...spec, shares: [{ hostPath: '/h', tag: 'a b', socketPath: '/s' }] }), /not valid/);
});

test('QEMU has virtio-fs only on Linux hosts, where virtiofsd can run', async () => {
  const mac = new QemuDriver({ platform: 'darwin', arch: 'arm64' }, () => {
    throw new Error('not probed on macOS');
  });
  const s = await mac.virtiofs();
  assert.ok(!s.ok && /macOS/.test(s.reason));
  const linux = new QemuDriver({ platform: 'linux', arch: 'x64' }, () => ({ support: { ok: false, reason: 'virtiofsd is not installed' } }));
  assert.deepEqual(await linux.virtiofs(), { ok: false, reason: 'virtiofsd is not installed' });
});
