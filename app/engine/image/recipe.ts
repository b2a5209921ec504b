/**
 * The guest image's recipe (vm-images/): its folder, the Debian release it
 * takes, the hash that names a build of it, and the architecture it is
 * built for. What the recipe is; the image store keeps what it builds.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BerthError } from '../../contract/errors.js';
import { packageRoot } from '../../base/package-root.js';
import { readTuning, type Tuning } from '../../base/tuning.js';
import type { GuestArch } from '../drivers/driver.js';

export function hostGuestArch(hostArch: string = process.arch): GuestArch {
  if (hostArch === 'x64') return 'x86_64';
  if (hostArch === 'arm64') return 'aarch64';
  throw new BerthError('UNSUPPORTED_HOST', `Berth has no guest image for ${hostArch} hosts`, 'Berth runs on x86_64 and arm64 (Apple silicon) hosts.');
}

/**
 * The guest architecture to run: the host's own, or `asked`
 * (BERTH_GUEST_ARCH, checked by the tuning) to run the other one emulated,
 * as the arm64 tests do on an x86_64 machine.
 */
export function guestArchFor(hostArch: string = process.arch, asked?: GuestArch): GuestArch {
  return asked ?? hostGuestArch(hostArch);
}

/** The guest architecture this process runs: the host's, or the one BERTH_GUEST_ARCH asks for. */
export function configuredGuestArch(tuning: Pick<Tuning, 'guestArch'> = readTuning()): GuestArch {
  return guestArchFor(process.arch, tuning.guestArch);
}

export function debianArch(arch: GuestArch): string {
  return arch === 'aarch64' ? 'arm64' : 'amd64';
}

export function recipeDir(): string {
  return path.join(packageRoot(), 'vm-images');
}

/**
 * The Debian release the guest is built from: the recipe's suite.txt (one
 * name; '#' starts a comment), which build.sh reads too. Being a recipe
 * file, it is part of the recipe hash.
 */
export function guestSuite(dir = recipeDir()): string {
  const suite = fs
    .readFileSync(path.join(dir, 'suite.txt'), 'utf8')
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter(Boolean);
  if (suite.length !== 1 || !/^[a-z]+$/.test(suite[0]!)) {
    throw new BerthError(
      'IMAGE_BUILD_FAILED',
      `${path.join(dir, 'suite.txt')} must name one Debian release`,
      'Write one name, such as trixie, on a line of its own.',
    );
  }
  return suite[0]!;
}

/** Hash of every file of the recipe (path, mode's exec bit, content) and the arch. */
export function recipeHash(arch: GuestArch, dir = recipeDir()): string {
  const h = crypto.createHash('sha256');
  h.update(`arch=${arch}\n`);
  const walk = (d: string): string[] =>
    fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
  for (const f of walk(dir).sort()) {
    const rel = path.relative(dir, f).split(path.sep).join('/');
    const exec = (fs.statSync(f).mode & 0o111) !== 0;
    h.update(`${rel}\0${exec ? 'x' : '-'}\0`);
    h.update(fs.readFileSync(f));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 16);
}
