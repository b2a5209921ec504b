/**
 * The guest artifacts for Mac and Windows hosts, booted for real under QEMU
 * with TCG, each to a working `docker version` through Berth's socket:
 *  - the arm64 image (built here from the same recipe through
 *    qemu-user-static) on qemu-system-aarch64 -M virt, direct kernel boot;
 *  - the EFI disk (systemd-boot on an ESP, the root image as a partition)
 *    on x86_64 with OVMF, as Hyper-V generation 2 and vfkit's EFI loader
 *    would boot it; its VHDX holds the same disk;
 *  - the arm64 EFI disk with AAVMF, as vfkit's EFI loader on Apple silicon
 *    would boot it.
 * Each part prints how long the start took.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import { busyboxRootfsTar } from '../helpers/busybox-rootfs.js';
import { run } from '../helpers/run.js';
import { arm64PrereqProblem, efiPrereqProblem, ensureImage, vmPrereqProblem } from './prereqs.js';
import { vmFixture, type VmFixture } from './vm-fixture.js';

const base = vmPrereqProblem();
const armProblem = base ?? arm64PrereqProblem();
const efiProblem = base ?? efiPrereqProblem('x86_64');
const armEfiProblem = armProblem ?? efiPrereqProblem('aarch64');

function qemuArgv(vm: VmFixture): string[] {
  return fs.readFileSync(`/proc/${vm.qemuPid()}/cmdline`, 'utf8').split('\0');
}

/** `berth start`, timed, then the first `docker version` through the socket. */
async function startAndDockerVersion(vm: VmFixture, label: string): Promise<string> {
  const t0 = Date.now();
  const r = await vm.berth(['start'], { timeoutMs: 15 * 60_000 });
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const out = await vm.ok(['version', '--format', '{{.Server.Version}} {{.Server.Os}}/{{.Server.Arch}}']);
  process.stdout.write(`# ${label}: berth start to a working docker version in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  return out.trim();
}

/**
 * Inside the guest: the data disk mounted at /mnt/data and the config disk
 * read, both found by their virtio serial (disks.sh), and neither Hyper-V's
 * KVP daemon nor Rosetta set up under QEMU.
 */
async function checkGuestDisks(vm: VmFixture): Promise<void> {
  const script = [
    `awk '$2 == "/mnt/data" { print "data", $1, $3 }' /proc/mounts`,
    'ls /run/berth/cfg | tr "\\n" " "; echo',
    'grep -c BERTH_ROSETTA /run/berth/cfg/config.env || true',
    'pidof hv_kvp_daemon || echo no-kvp',
    'test -e /proc/sys/fs/binfmt_misc/rosetta && echo rosetta || echo no-rosetta',
  ].join('; ');
  const r = await vm.berth(['shell', '--', 'sh', '-c', script], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  const [data, cfg, rosettaEnv, kvp, binfmt] = r.stdout
    .trim()
    .split('\n')
    .map((l) => l.trim());
  assert.match(data!, /^data \/dev\/vd[a-z] ext4$/, 'the data disk, found by serial berth-data');
  assert.match(cfg!, /\bauthorized_keys\b.*\bconfig\.env\b/, 'the config disk, found by serial berth-cfg');
  assert.equal(rosettaEnv, '0', 'the engine asked for no Rosetta');
  assert.equal(kvp, 'no-kvp', 'no Hyper-V KVP daemon outside Hyper-V');
  assert.equal(binfmt, 'no-rosetta');
}

/** The image's own kernel module (vm-images/notify), built for this kernel and loaded at boot. */
async function checkFileEvents(vm: VmFixture): Promise<void> {
  const r = await vm.berth(['shell', '--', 'sh', '-c', 'grep -c "^berth_notify " /proc/modules; test -w /proc/berth-notify && echo writable'], {
    timeoutMs: 120_000,
  });
  assert.equal(r.stdout.trim(), '1\nwritable', r.stderr);
}

gatedSuite('arm64 guest on qemu-system-aarch64 (TCG, virt)', armProblem, { timeout: 60 * 60_000 }, () => {
  const vm = vmFixture('ba');
  vm.env.BERTH_GUEST_ARCH = 'aarch64';
  vm.env.BERTH_ACCEL = 'tcg';
  // This suite is about the direct kernel boot (the EFI disk has its own
  // below), also when the whole run asks for another (BERTH_BOOT=efi).
  vm.env.BERTH_BOOT = 'kernel';
  // Emulating another architecture is several times slower than TCG of the
  // host's own: give the guest longer to answer on ssh.
  vm.env.BERTH_BOOT_TIMEOUT_MS = String(10 * 60_000);

  before(async () => {
    const t0 = Date.now();
    const dir = await ensureImage('aarch64');
    process.stdout.write(`# arm64 image ready in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${dir}\n`);
  });
  after(() => vm.cleanup());

  test('berth start boots it and docker version answers through the socket: linux/arm64', async () => {
    assert.match(await startAndDockerVersion(vm, 'arm64, direct kernel, TCG'), /^\S+ linux\/arm64$/);
    const argv = qemuArgv(vm);
    assert.match(argv[0]!, /qemu-system-aarch64$/);
    // virt, with guest memory QEMU can share with virtiofsd when the shares use virtio-fs.
    const machine = argv[argv.indexOf('-machine') + 1];
    assert.match(machine!, /^virt(,memory-backend=mem)?$/);
    assert.equal(argv[argv.indexOf('-cpu') + 1], 'max,pauth-impdef=on');
    assert.match(argv[argv.indexOf('-append') + 1]!, /console=ttyAMA0/);
    const st = JSON.parse((await vm.berth(['status', '--json'])).stdout) as { accel?: string; accelReason?: string };
    assert.equal(st.accel, 'tcg');
  });

  test('the shared folders are mounted, by virtio-fs when QEMU got its devices', async () => {
    const machine = qemuArgv(vm)[qemuArgv(vm).indexOf('-machine') + 1]!;
    const r = JSON.parse((await vm.berth(['shares', '--json'])).stdout) as { shares: { hostPath: string; state: string; mechanism: string }[] };
    assert.ok(r.shares.length > 0);
    for (const s of r.shares) {
      assert.equal(s.state, 'mounted', JSON.stringify(s));
      assert.equal(s.mechanism, machine.includes('memory-backend') ? 'virtiofs' : 'reverse-sshfs', JSON.stringify(s));
    }
  });

  test('the guest kernel is arm64 and dockerd runs its containers there', async () => {
    const info = await vm.ok(['info', '--format', '{{.Architecture}} {{.OSType}} {{.KernelVersion}}']);
    assert.match(info.trim(), /^aarch64 linux \S+-arm64$/);
  });

  test('it booted the plain, uncompressed arm64 Image that vfkit needs', async () => {
    const dir = await ensureImage('aarch64');
    const head = Buffer.alloc(64);
    const fd = fs.openSync(path.join(dir, 'vmlinuz'), 'r');
    fs.readSync(fd, head, 0, 64, 0);
    fs.closeSync(fd);
    assert.equal(head.subarray(0x38, 0x3c).toString('latin1'), 'ARM\x64', 'the arm64 Image magic at 0x38');
    assert.notEqual(head.readUInt16BE(0), 0x1f8b, 'not gzip');
    assert.match(qemuArgv(vm)[qemuArgv(vm).indexOf('-kernel') + 1]!, /\/vmlinuz$/, 'QEMU boots the same file');
  });

  test('the guest found its data and config disks', () => checkGuestDisks(vm));

  test('the guest loaded berth_notify, built for its kernel (file events for host changes in shares)', () => checkFileEvents(vm));

  test('berth stop powers it off cleanly', async () => {
    const r = await vm.berth(['stop'], { timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stderr);
  });
});

gatedSuite('EFI disk on x86_64 QEMU with OVMF (as Hyper-V gen 2 / vfkit EFI boot it)', efiProblem, { timeout: 30 * 60_000 }, () => {
  const vm = vmFixture('be');
  vm.env.BERTH_BOOT = 'efi';
  // x86_64's EFI disk, whatever guest the matrix runs (BERTH_GUEST_ARCH).
  vm.env.BERTH_GUEST_ARCH = 'x86_64';
  let imageDir = '';

  before(async () => {
    imageDir = await ensureImage('x86_64');
  });
  after(() => vm.cleanup());

  test('the VHDX is the EFI disk, converted (same virtual size and content)', async () => {
    const info = await run('qemu-img', ['info', '--output=json', path.join(imageDir, 'efi.vhdx')], { timeoutMs: 60_000 });
    assert.equal(info.code, 0, info.stderr);
    const j = JSON.parse(info.stdout) as { format: string; 'virtual-size': number };
    assert.equal(j.format, 'vhdx');
    assert.equal(j['virtual-size'], fs.statSync(path.join(imageDir, 'efi.img')).size);
    assert.equal(j['virtual-size'] % (1 << 20), 0, 'Hyper-V wants whole MiB');
    const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'vhdx', path.join(imageDir, 'efi.img'), path.join(imageDir, 'efi.vhdx')], {
      timeoutMs: 120_000,
    });
    assert.equal(cmp.code, 0, `${cmp.stdout}${cmp.stderr}`);
  });

  test('berth start boots the EFI disk through the firmware, and docker version answers', async () => {
    assert.match(await startAndDockerVersion(vm, 'x86_64, EFI (OVMF + systemd-boot), TCG'), /^\S+ linux\/amd64$/);
    const argv = qemuArgv(vm);
    assert.ok(!argv.includes('-kernel'), 'no direct kernel boot');
    assert.ok(
      argv.some((a) => /^if=pflash,format=raw,unit=0,readonly=on,file=.*OVMF_CODE.*\.fd$/.test(a)),
      argv.join(' '),
    );
    assert.ok(
      argv.some((a) => a.includes(`file=${path.join(imageDir, 'efi.img')}`)),
      'the EFI disk is attached',
    );
    assert.ok(!argv.some((a) => a.includes('rootfs.squashfs')), 'the root image comes from the EFI disk, not its own disk');
  });

  test("inside, the kernel came up under UEFI with the boot entry's command line", async () => {
    const tarFile = busyboxRootfsTar(vm.dir, '/bin/busybox');
    const r = await run('docker', ['import', tarFile, 'bb:1'], { env: vm.env, timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stderr);
    // A privileged container sees the VM's own /sys/firmware and /proc/cmdline.
    const out = await vm.ok(['run', '--rm', '--privileged', 'bb:1', 'sh', '-c', 'test -d /sys/firmware/efi && echo uefi; cat /proc/cmdline']);
    const [fw, cmdline] = out.trim().split('\n');
    assert.equal(fw, 'uefi');
    assert.match(cmdline!, /console=hvc0 console=ttyS0 quiet panic=-1/, "the command line is the ESP entry's (efi/cmdline.txt)");
  });

  test('the guest found its data and config disks', () => checkGuestDisks(vm));

  test('the guest loaded berth_notify, built for its kernel (file events for host changes in shares)', () => checkFileEvents(vm));

  test('berth stop powers it off cleanly', async () => {
    const r = await vm.berth(['stop'], { timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stderr);
  });
});

gatedSuite('arm64 EFI disk on qemu-system-aarch64 with AAVMF (as vfkit EFI boots it on Apple silicon)', armEfiProblem, { timeout: 60 * 60_000 }, () => {
  const vm = vmFixture('bf');
  vm.env.BERTH_GUEST_ARCH = 'aarch64';
  vm.env.BERTH_ACCEL = 'tcg';
  vm.env.BERTH_BOOT = 'efi';
  vm.env.BERTH_BOOT_TIMEOUT_MS = String(10 * 60_000);

  before(async () => {
    await ensureImage('aarch64');
  });
  after(() => vm.cleanup());

  test('berth start boots it through the firmware, and docker version answers: linux/arm64', async () => {
    assert.match(await startAndDockerVersion(vm, 'arm64, EFI (AAVMF + systemd-boot), TCG'), /^\S+ linux\/arm64$/);
    const argv = qemuArgv(vm);
    assert.match(argv[0]!, /qemu-system-aarch64$/);
    assert.ok(!argv.includes('-kernel'), 'no direct kernel boot');
    assert.ok(
      argv.some((a) => /^if=pflash,format=raw,unit=0,readonly=on,file=.*(AAVMF_CODE|edk2-aarch64-code).*\.fd$/.test(a)),
      argv.join(' '),
    );
    const info = await vm.ok(['info', '--format', '{{.Architecture}}']);
    assert.equal(info.trim(), 'aarch64');
  });

  test('berth stop powers it off cleanly', async () => {
    const r = await vm.berth(['stop'], { timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stderr);
  });
});
