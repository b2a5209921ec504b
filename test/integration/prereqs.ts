/**
 * What the VM tests need on this machine. `.ci/run` installs all of it; on a
 * developer machine a missing piece makes the tests say so and skip (never
 * silently).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { GuestArch } from '../../app/engine/drivers/driver.js';
import { findEdk2Firmware } from '../../app/engine/drivers/qemu-host.js';
import { ImageStore } from '../../app/engine/image/image-store.js';
import { cacheDir } from '../../app/base/paths.js';
import { readTuning } from '../../app/base/tuning.js';
import { findExecutable } from '../../app/base/process-util.js';
import { busyboxProblem } from '../helpers/busybox-rootfs.js';

export function vmPrereqProblem(): string | undefined {
  if (process.platform !== 'linux') return 'the VM tests run on Linux hosts';
  if (!findExecutable('qemu-system-x86_64')) return 'qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)';
  if (!findExecutable('docker')) return 'the docker CLI is not on PATH';
  const bb = busyboxProblem();
  if (bb) return bb;
  if (process.getuid?.() !== 0 && !hasImage()) return 'no guest image is cached and building one needs root (sudo npm run image)';
  return undefined;
}

function hasImage(arch?: GuestArch): boolean {
  return fs.existsSync(path.join(new ImageStore(cacheDir(), arch, readTuning()).expectedDir(), 'manifest.json'));
}

/**
 * What the arm64 guest tests need beyond the VM tests' own: QEMU's aarch64
 * system emulator, and the arm64 image or what builds it on an x86_64 host
 * (root and qemu-user-static's binfmt handler, which `.ci/run` sets up).
 */
export function arm64PrereqProblem(): string | undefined {
  if (!findExecutable('qemu-system-aarch64')) return 'qemu-system-aarch64 is not installed (apt-get install qemu-system-arm)';
  if (hasImage('aarch64')) return undefined;
  if (process.getuid?.() !== 0) return 'no arm64 guest image is cached and building one needs root (sudo npm run image -- --arch=aarch64)';
  if (process.arch !== 'arm64' && !binfmtEnabled('qemu-aarch64')) {
    return 'building the arm64 image on this host needs the qemu-aarch64 binfmt handler (apt-get install qemu-user-static binfmt-support; update-binfmts --enable qemu-aarch64)';
  }
  return undefined;
}

function binfmtEnabled(name: string): boolean {
  try {
    return fs.readFileSync(`/proc/sys/fs/binfmt_misc/${name}`, 'utf8').split('\n')[0] === 'enabled';
  } catch {
    return false;
  }
}

/** UEFI firmware QEMU can boot the EFI image with (Debian: ovmf, qemu-efi-aarch64). */
export function efiPrereqProblem(arch: GuestArch): string | undefined {
  const qemu = findExecutable(arch === 'aarch64' ? 'qemu-system-aarch64' : 'qemu-system-x86_64');
  if (!qemu) return `no QEMU for ${arch} guests`;
  if (!findEdk2Firmware(arch, qemu)) return `no UEFI firmware for ${arch} guests (apt-get install ${arch === 'aarch64' ? 'qemu-efi-aarch64' : 'ovmf'})`;
  return undefined;
}

/** Build (or find) the guest image, printing the build's progress. */
export async function ensureImage(arch?: GuestArch): Promise<string> {
  const store = new ImageStore(cacheDir(), arch, readTuning());
  const img = await store.ensure({ build: true, progress: (m) => process.stdout.write(`# image${arch ? ` (${arch})` : ''}: ${m}\n`) });
  return img.dir;
}
