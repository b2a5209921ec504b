/**
 * QEMU on macOS (and EFI boot anywhere): what changes in the command line
 * with the host, per QEMU's documentation (qemu-system-aarch64(1),
 * "Invocation": -accel hvf|kvm|tcg, -machine virt|q35, -cpu host|max,
 * -drive if=pflash,format=raw,unit=N,readonly=on,file=...; docs/system/arm/virt.rst:
 * "virt" with UEFI from edk2 pflash images) and Homebrew's qemu formula, which
 * installs share/qemu/edk2-aarch64-code.fd, edk2-arm-vars.fd,
 * edk2-x86_64-code.fd and edk2-i386-vars.fd. Intel Macs need `-cpu host,-pdpe1gb`
 * under hvf (as Lima passes it).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { needNow, test } from '../helpers/prereq-gate.js';
import type { VmSpec } from '../../app/engine/drivers/driver.js';
import { buildQemuArgs } from '../../app/engine/drivers/qemu.js';
import {
  adaptQemuArgsForHost,
  efiBootArgs,
  ensureVariableStore,
  findEdk2Firmware,
  hardwareAccel,
  nativeGuestArch,
  qemuCpu,
  qemuMachine,
  tcgCpu,
} from '../../app/engine/drivers/qemu-host.js';
import { findExecutable } from '../../app/base/process-util.js';
import { shortTempDir } from '../helpers/temp.js';

const spec: VmSpec = {
  name: 'default',
  arch: 'aarch64',
  accel: 'hvf',
  cpus: 4,
  memoryMiB: 4096,
  kernel: '/img/Image',
  initrd: '/img/initrd.img',
  cmdline: 'console=ttyAMA0 quiet',
  disks: [{ path: '/img/rootfs.squashfs', serial: 'berth-root', readonly: true, format: 'raw' }],
  sshHostPort: 40022,
  serialLog: '/s/serial.log',
  pidFile: '/s/qemu.pid',
  controlSocket: '/s/qmp.sock',
};
const after = (args: string[], flag: string) => args[args.indexOf(flag) + 1];
const mac = { platform: 'darwin' as const, arch: 'arm64' };
const intelMac = { platform: 'darwin' as const, arch: 'x64' };

test("hvf only for the host's own architecture; KVM likewise on Linux", () => {
  assert.equal(hardwareAccel(mac, 'aarch64'), 'hvf');
  assert.equal(hardwareAccel(mac, 'x86_64'), undefined, 'amd64 guests on Apple silicon run under TCG');
  assert.equal(hardwareAccel(intelMac, 'x86_64'), 'hvf');
  assert.equal(hardwareAccel(intelMac, 'aarch64'), undefined);
  assert.equal(hardwareAccel({ platform: 'linux', arch: 'x64' }, 'x86_64'), 'kvm');
  assert.equal(hardwareAccel({ platform: 'win32', arch: 'x64' }, 'x86_64'), undefined);
  assert.equal(nativeGuestArch('arm64'), 'aarch64');
  assert.equal(nativeGuestArch('ia32'), undefined);
});

test('CPU model: host, host,-pdpe1gb on Intel Macs, max under TCG', () => {
  assert.equal(qemuCpu(mac, 'aarch64', 'hvf'), 'host');
  assert.equal(qemuCpu(intelMac, 'x86_64', 'hvf'), 'host,-pdpe1gb');
  assert.equal(qemuCpu(mac, 'x86_64', 'tcg'), 'max');
  assert.equal(qemuCpu({ platform: 'linux', arch: 'x64' }, 'x86_64', 'kvm'), 'host');
});

test('Apple silicon, direct kernel boot: virt (no highmem=off), -accel hvf, -cpu host', () => {
  const a = adaptQemuArgsForHost(buildQemuArgs(spec), spec, { host: mac });
  assert.equal(after(a, '-machine'), 'virt');
  assert.equal(after(a, '-accel'), 'hvf');
  assert.equal(after(a, '-cpu'), 'host');
  assert.ok(!a.join(' ').includes('highmem=off'));
  assert.equal(after(a, '-kernel'), '/img/Image');
  assert.deepEqual(a, buildQemuArgs(spec), 'nothing else changes');
});

test('Intel Mac: q35 with hvf and host,-pdpe1gb', () => {
  const s: VmSpec = { ...spec, arch: 'x86_64', cmdline: 'console=ttyS0' };
  const a = adaptQemuArgsForHost(buildQemuArgs(s), s, { host: intelMac });
  assert.equal(after(a, '-machine'), 'q35,vmport=off');
  assert.equal(after(a, '-accel'), 'hvf');
  assert.equal(after(a, '-cpu'), 'host,-pdpe1gb');
});

test('Linux without EFI: unchanged', () => {
  const s: VmSpec = { ...spec, arch: 'x86_64', accel: 'kvm' };
  assert.deepEqual(adaptQemuArgsForHost(buildQemuArgs(s), s, { host: { platform: 'linux', arch: 'x64' } }), buildQemuArgs(s));
});

test('edk2 firmware: next to the QEMU binary first (Homebrew), then the usual places', () => {
  const have = new Set([
    '/opt/homebrew/share/qemu/edk2-aarch64-code.fd',
    '/opt/homebrew/share/qemu/edk2-arm-vars.fd',
    '/usr/local/share/qemu/edk2-x86_64-code.fd',
    '/usr/local/share/qemu/edk2-i386-vars.fd',
  ]);
  const exists = (p: string) => have.has(p);
  assert.deepEqual(findEdk2Firmware('aarch64', '/opt/homebrew/bin/qemu-system-aarch64', exists), {
    code: '/opt/homebrew/share/qemu/edk2-aarch64-code.fd',
    varsTemplate: '/opt/homebrew/share/qemu/edk2-arm-vars.fd',
  });
  assert.deepEqual(findEdk2Firmware('x86_64', undefined, exists), {
    code: '/usr/local/share/qemu/edk2-x86_64-code.fd',
    varsTemplate: '/usr/local/share/qemu/edk2-i386-vars.fd',
  });
  const debian = new Set([
    '/usr/share/OVMF/OVMF_CODE_4M.fd',
    '/usr/share/OVMF/OVMF_VARS_4M.fd',
    '/usr/share/AAVMF/AAVMF_CODE.fd',
    '/usr/share/AAVMF/AAVMF_VARS.fd',
  ]);
  assert.equal(findEdk2Firmware('x86_64', '/usr/bin/qemu-system-x86_64', (p) => debian.has(p))?.code, '/usr/share/OVMF/OVMF_CODE_4M.fd');
  assert.equal(findEdk2Firmware('aarch64', '/usr/bin/qemu-system-aarch64', (p) => debian.has(p))?.code, '/usr/share/AAVMF/AAVMF_CODE.fd');
  assert.equal(
    findEdk2Firmware('aarch64', undefined, () => false),
    undefined,
  );
});

const fw = { code: '/opt/homebrew/share/qemu/edk2-aarch64-code.fd', varsTemplate: '/opt/homebrew/share/qemu/edk2-arm-vars.fd' };
const efiSpec: VmSpec = { ...spec, efi: { image: '/img/efi,boot.img', variableStore: '/s/efi-vars.fd' } };

test('EFI boot: pflash code read-only, instance variables, boot disk first; no -kernel', () => {
  assert.deepEqual(efiBootArgs(efiSpec.efi!, fw), [
    '-drive',
    'if=pflash,format=raw,unit=0,readonly=on,file=/opt/homebrew/share/qemu/edk2-aarch64-code.fd',
    '-drive',
    'if=pflash,format=raw,unit=1,file=/s/efi-vars.fd',
    '-drive',
    'if=none,id=efidisk,file=/img/efi,,boot.img,format=raw,readonly=on',
    '-device',
    'virtio-blk-pci,drive=efidisk,bootindex=0',
  ]);
  const a = adaptQemuArgsForHost(buildQemuArgs(efiSpec), efiSpec, { host: mac, firmware: fw });
  for (const f of ['-kernel', '-initrd', '-append']) assert.ok(!a.includes(f), f);
  const drives = a.flatMap((x, i) => (a[i - 1] === '-drive' ? [x] : []));
  assert.match(drives[0]!, /^if=pflash,.*unit=0,readonly=on/);
  assert.match(drives[2]!, /^if=none,id=efidisk/);
  assert.match(drives[3]!, /^if=none,id=disk0,file=\/img\/rootfs\.squashfs/);
  assert.throws(() => adaptQemuArgsForHost(buildQemuArgs(efiSpec), efiSpec, { host: mac }), /edk2/);
});

test('the EFI variable store is a copy of the template, made once and kept', () => {
  const t = shortTempDir('qh');
  try {
    const tpl = path.join(t.dir, 'vars.fd');
    fs.writeFileSync(tpl, Buffer.alloc(4096));
    const store = path.join(t.dir, 'efi-vars.fd');
    ensureVariableStore({ image: 'x', variableStore: store }, { code: 'x', varsTemplate: tpl });
    assert.equal(fs.statSync(store).size, 4096);
    assert.equal(fs.statSync(store).mode & 0o777, 0o600);
    fs.writeFileSync(store, Buffer.alloc(4096, 1));
    ensureVariableStore({ image: 'x', variableStore: store }, { code: 'x', varsTemplate: tpl });
    assert.equal(fs.readFileSync(store)[0], 1, 'an existing store keeps its boot entries');
    fs.writeFileSync(store, 'short');
    ensureVariableStore({ image: 'x', variableStore: store }, { code: 'x', varsTemplate: tpl });
    assert.equal(fs.statSync(store).size, 4096, 'a store of the wrong size is replaced');
  } finally {
    t.cleanup();
  }
});

for (const [arch, bin, pkgs] of [
  ['x86_64', 'qemu-system-x86_64', 'qemu-system-x86 ovmf'],
  ['aarch64', 'qemu-system-aarch64', 'qemu-system-arm qemu-efi-aarch64'],
] as const) {
  test(`QEMU itself accepts the EFI command line (${arch}, TCG, Debian's firmware)`, async (t) => {
    const qemu = findExecutable(bin);
    const firmware = qemu ? findEdk2Firmware(arch, qemu) : undefined;
    if (!qemu || !firmware) {
      needNow(t, `needs ${bin} and its UEFI firmware (apt-get install ${pkgs}); found qemu=${qemu ?? 'no'} firmware=${firmware ? 'yes' : 'no'}`);
      return;
    }
    const tmp = shortTempDir('qe');
    try {
      const img = path.join(tmp.dir, 'efi.img');
      const disk = path.join(tmp.dir, 'data.img');
      fs.writeFileSync(img, Buffer.alloc(1024 * 1024));
      fs.writeFileSync(disk, Buffer.alloc(1024 * 1024));
      const s: VmSpec = {
        ...spec,
        arch,
        accel: 'tcg',
        memoryMiB: 256,
        cpus: 1,
        disks: [{ path: disk, serial: 'berth-data', readonly: false, format: 'raw' }],
        serialLog: path.join(tmp.dir, 'serial.log'),
        pidFile: path.join(tmp.dir, 'qemu.pid'),
        controlSocket: path.join(tmp.dir, 'qmp.sock'),
        sshHostPort: 0,
        efi: { image: img, variableStore: path.join(tmp.dir, 'vars.fd') },
      };
      ensureVariableStore(s.efi!, firmware);
      // Paused (-S) and in the foreground: QEMU parses and sets up every
      // device, then waits; a bad option makes it exit at once.
      const args = adaptQemuArgsForHost(buildQemuArgs(s), s, { host: { platform: 'linux', arch: 'x64' }, firmware }).filter((a) => a !== '-daemonize');
      if (arch === 'aarch64') assert.equal(args[args.indexOf('-cpu') + 1], 'max,pauth-impdef=on');
      const child = spawn(qemu, [...args, '-S'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const exited = await new Promise<number | null | 'running'>((resolve) => {
        const timer = setTimeout(() => resolve('running'), 1500);
        child.on('exit', (code) => {
          clearTimeout(timer);
          resolve(code);
        });
      });
      child.kill('SIGKILL');
      assert.equal(exited, 'running', `QEMU refused the command line: ${stderr.trim()}`);
    } finally {
      tmp.cleanup();
    }
  });
}

test('TCG CPU and machine per guest architecture', () => {
  assert.equal(tcgCpu('aarch64'), 'max,pauth-impdef=on');
  assert.equal(tcgCpu('x86_64'), 'max');
  assert.equal(qemuCpu({ platform: 'linux', arch: 'x64' }, 'aarch64', 'tcg'), 'max,pauth-impdef=on');
  assert.equal(qemuMachine('aarch64', 'tcg'), 'virt');
  assert.equal(qemuMachine('aarch64', 'hvf'), 'virt');
  assert.equal(qemuMachine('x86_64', 'tcg'), 'q35');
  assert.equal(qemuMachine('x86_64', 'kvm'), 'q35,vmport=off');
});

test('an arm64 guest on an x86_64 Linux host: TCG, virt, and the EFI disk with AAVMF', () => {
  const aavmf = { code: '/usr/share/AAVMF/AAVMF_CODE.fd', varsTemplate: '/usr/share/AAVMF/AAVMF_VARS.fd' };
  const s: VmSpec = { ...efiSpec, accel: 'tcg' };
  assert.equal(hardwareAccel({ platform: 'linux', arch: 'x64' }, 'aarch64'), undefined);
  const a = adaptQemuArgsForHost(buildQemuArgs(s), s, { host: { platform: 'linux', arch: 'x64' }, firmware: aavmf });
  assert.equal(after(a, '-machine'), 'virt');
  assert.equal(after(a, '-cpu'), 'max,pauth-impdef=on');
  assert.equal(after(a, '-drive'), 'if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd');
  assert.ok(a.includes('virtio-blk-pci,drive=efidisk,bootindex=0'));
});
