import fs from 'node:fs';
import path from 'node:path';
import type { Accelerator, GuestArch, VmSpec } from './driver.js';

/**
 * What changes in QEMU's command line with the host it runs on, kept out of
 * qemu.ts so that file stays the Linux/KVM path it was proven on. QEMU is the
 * macOS fallback where vfkit is missing (Homebrew's `qemu`), so:
 *
 *  - Accelerator: `-accel hvf` (Hypervisor.framework) only when the guest
 *    has the host's architecture; an arm64 guest on an Intel Mac, or an
 *    amd64 guest on Apple silicon, runs under TCG.
 *  - Machine: aarch64 `virt`, x86_64 `q35`, as on Linux. No `highmem=off`
 *    on Apple silicon: it caps the guest below 4 GiB ("Addressing limited
 *    to 32 bits, but memory exceeds it") and current QEMU sizes the high
 *    memory map to the host's IPA range by itself; Lima passes plain `virt`.
 *  - CPU: `host`; on Intel Macs `host,-pdpe1gb`, because Hypervisor.framework
 *    does not offer 1 GiB pages and Linux guests crash using them (Lima does
 *    the same).
 *  - EFI boot (spec.efi): the edk2 firmware QEMU ships, as two pflash drives
 *    (code read-only, a per-instance copy of the variables template), and the
 *    boot disk as the first virtio-blk device. Homebrew installs them as
 *    $(brew --prefix)/share/qemu/edk2-aarch64-code.fd / edk2-arm-vars.fd and
 *    edk2-x86_64-code.fd / edk2-i386-vars.fd; Debian's ovmf and
 *    qemu-efi-aarch64 packages as /usr/share/OVMF and /usr/share/AAVMF.
 */

export interface QemuHost {
  platform: NodeJS.Platform;
  /** process.arch of the host: 'x64', 'arm64', ... */
  arch: string;
}

export function thisHost(): QemuHost {
  return { platform: process.platform, arch: process.arch };
}

/** The guest architecture that runs natively on a host CPU, if any. */
export function nativeGuestArch(hostArch: string): GuestArch | undefined {
  if (hostArch === 'x64') return 'x86_64';
  if (hostArch === 'arm64') return 'aarch64';
  return undefined;
}

/**
 * The hardware accelerator for this guest on this host, or undefined when
 * only TCG can run it. Linux still needs its KVM probe (accel-probe.ts);
 * Windows has no accelerator the QEMU driver supports.
 */
export function hardwareAccel(host: QemuHost, guest: GuestArch): Accelerator | undefined {
  if (nativeGuestArch(host.arch) !== guest) return undefined;
  if (host.platform === 'darwin') return 'hvf';
  if (host.platform === 'linux') return 'kvm';
  return undefined;
}

/**
 * `-machine` for a guest: x86_64 `q35` (no VMware port under a hardware
 * accelerator), aarch64 `virt` (docs/system/arm/virt.rst: PL011 UART as
 * ttyAMA0, PCIe for the virtio-*-pci devices, UEFI from pflash).
 */
export function qemuMachine(guest: GuestArch, accel: Accelerator): string {
  if (guest === 'aarch64') return 'virt';
  return accel === 'tcg' ? 'q35' : 'q35,vmport=off';
}

/**
 * The CPU model an emulated (TCG) guest gets: `max`, all the features QEMU
 * can emulate. On aarch64 `max` signs pointers with the architected QARMA5
 * algorithm, which is costly to emulate; `pauth-impdef=on` swaps it for
 * QEMU's own cheap one (docs/system/arm/cpu-features.rst, "TCG VCPU
 * Features"; QEMU's own aarch64 boot tests run this way). The guest cannot
 * tell: it only checks that signatures verify.
 */
export function tcgCpu(guest: GuestArch): string {
  return guest === 'aarch64' ? 'max,pauth-impdef=on' : 'max';
}

/**
 * `-accel` for an accelerator. TCG: one thread runs every vCPU
 * (thread=single). Under multi-threaded TCG, the guest kernel oopsed on a
 * breakpoint it had already patched away ("Oops: int3" in kmem_cache_free
 * and nf_nat's hash_by_src, RIP one byte into a 5-byte NOP: text_poke_bp's
 * int3, still run by another vCPU after the patch was done), twice in one
 * test run on a busy 2-core host, each time killing the guest; with one
 * thread, code one vCPU patches is never stale for another. It costs a
 * TCG start about 40 % (23.3 s against 16.7 s to the first `docker
 * version`, alternating runs of `npm run bench -- --only boot` here, where
 * one of the three multi-threaded starts died the same way); KVM, HVF and
 * Hyper-V run vCPUs on the hardware and are not touched. The
 * translation cache: QEMU's default is 1 GiB; 256 MiB cut QEMU's RSS after
 * boot from 945 to 665 MiB here, and starts were no slower (bench/).
 */
export function qemuAccel(accel: Accelerator): string {
  return accel === 'tcg' ? 'tcg,thread=single,tb-size=256' : accel;
}

/** `-cpu` for an accelerator on a host. */
export function qemuCpu(host: QemuHost, guest: GuestArch, accel: Accelerator): string {
  if (accel === 'tcg') return tcgCpu(guest);
  if (host.platform === 'darwin' && accel === 'hvf' && guest === 'x86_64') return 'host,-pdpe1gb';
  return 'host';
}

export interface Edk2Firmware {
  /** Firmware code, mapped read-only as the first pflash unit. */
  code: string;
  /** Empty variable store to copy per instance (the second pflash unit). */
  varsTemplate: string;
}

/**
 * Where the edk2 firmware for a guest is, looked up next to the QEMU binary
 * first (<prefix>/bin/qemu-system-* -> <prefix>/share/qemu), then in the
 * usual Homebrew, MacPorts and Debian places.
 */
export function findEdk2Firmware(guest: GuestArch, qemuBinary?: string, exists: (p: string) => boolean = (p) => fs.existsSync(p)): Edk2Firmware | undefined {
  const prefixes: string[] = [];
  if (qemuBinary) {
    let real = qemuBinary;
    try {
      real = fs.realpathSync(qemuBinary);
    } catch {
      /* keep the path as given */
    }
    for (const b of new Set([qemuBinary, real])) prefixes.push(path.dirname(path.dirname(b)));
  }
  prefixes.push('/opt/homebrew', '/usr/local', '/opt/local');
  const edk2 = guest === 'aarch64' ? { code: 'edk2-aarch64-code.fd', vars: 'edk2-arm-vars.fd' } : { code: 'edk2-x86_64-code.fd', vars: 'edk2-i386-vars.fd' };
  const candidates: Edk2Firmware[] = [...new Set(prefixes)].map((p) => ({
    code: path.join(p, 'share', 'qemu', edk2.code),
    varsTemplate: path.join(p, 'share', 'qemu', edk2.vars),
  }));
  if (guest === 'aarch64') {
    candidates.push({ code: '/usr/share/AAVMF/AAVMF_CODE.fd', varsTemplate: '/usr/share/AAVMF/AAVMF_VARS.fd' });
  } else {
    candidates.push(
      { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', varsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.fd' },
      { code: '/usr/share/OVMF/OVMF_CODE.fd', varsTemplate: '/usr/share/OVMF/OVMF_VARS.fd' },
    );
  }
  return candidates.find((c) => exists(c.code) && exists(c.varsTemplate));
}

/** QEMU option values separate with commas; a literal comma is doubled. */
function qemuEscape(value: string): string {
  return value.replace(/,/g, ',,');
}

/**
 * EFI boot instead of direct kernel boot: firmware code and the instance's
 * variable store as pflash, the boot disk first in boot order.
 */
export function efiBootArgs(efi: NonNullable<VmSpec['efi']>, firmware: Edk2Firmware): string[] {
  return [
    '-drive',
    `if=pflash,format=raw,unit=0,readonly=on,file=${qemuEscape(firmware.code)}`,
    '-drive',
    `if=pflash,format=raw,unit=1,file=${qemuEscape(efi.variableStore)}`,
    '-drive',
    `if=none,id=efidisk,file=${qemuEscape(efi.image)},format=raw,readonly=on`,
    '-device',
    'virtio-blk-pci,drive=efidisk,bootindex=0',
  ];
}

/**
 * The instance's EFI variable store: a copy of the firmware's template,
 * made once (the firmware keeps its boot entries there). The pflash unit
 * must have the template's exact size, so a store of another size is
 * replaced.
 */
export function ensureVariableStore(efi: NonNullable<VmSpec['efi']>, firmware: Edk2Firmware): void {
  const want = fs.statSync(firmware.varsTemplate).size;
  let have = -1;
  try {
    have = fs.statSync(efi.variableStore).size;
  } catch {
    /* first boot */
  }
  if (have !== want) {
    fs.copyFileSync(firmware.varsTemplate, efi.variableStore);
    fs.chmodSync(efi.variableStore, 0o600);
  }
}

export interface HostAdjust {
  host: QemuHost;
  /** Needed when spec.efi is set. */
  firmware?: Edk2Firmware;
}

/**
 * Rewrite buildQemuArgs(spec)'s output for the host: the CPU model, and EFI
 * boot in place of -kernel/-initrd/-append when the spec asks for it. On a
 * Linux host without EFI it returns the arguments unchanged.
 */
export function adaptQemuArgsForHost(args: readonly string[], spec: VmSpec, o: HostAdjust): string[] {
  const out = [...args];
  const cpuAt = out.indexOf('-cpu');
  if (cpuAt >= 0) out[cpuAt + 1] = qemuCpu(o.host, spec.arch, spec.accel);
  if (spec.efi) {
    if (!o.firmware) throw new Error('EFI boot needs the edk2 firmware (findEdk2Firmware)');
    for (const flag of ['-kernel', '-initrd', '-append']) {
      const i = out.indexOf(flag);
      if (i >= 0) out.splice(i, 2);
    }
    // Before the first -drive, so the boot disk is virtio-blk device 0.
    const firstDrive = out.indexOf('-drive');
    out.splice(firstDrive >= 0 ? firstDrive : out.length, 0, ...efiBootArgs(spec.efi, o.firmware));
  }
  return out;
}
