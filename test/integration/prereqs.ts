/**
 * What the VM tests need on this machine. `.ci/run` installs all of it; on a
 * developer machine a missing piece makes the tests say so and skip (never
 * silently).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ImageStore } from '../../app/engine/image/image-store.js';
import { cacheDir } from '../../app/engine/paths.js';
import { findExecutable } from '../../app/engine/process-util.js';
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

function hasImage(): boolean {
  return fs.existsSync(path.join(new ImageStore(cacheDir()).expectedDir(), 'manifest.json'));
}

/** Build (or find) the guest image, printing the build's progress. */
export async function ensureImage(): Promise<string> {
  const store = new ImageStore(cacheDir());
  const img = await store.ensure({ build: true, progress: (m) => process.stdout.write(`# image: ${m}\n`) });
  return img.dir;
}
