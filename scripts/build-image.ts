/**
 * `npm run image`: build the guest image (every artifact: direct-kernel
 * files, the EFI disk and its VHDX) for this host's architecture into the
 * cache (keyed by the recipe's hash), or say that it is already there.
 *   --force          rebuild even if the current recipe's image exists
 *   --arch=aarch64   build for the other architecture (BERTH_GUEST_ARCH does
 *                    the same); a foreign one needs qemu-user-static's binfmt
 */
import fs from 'node:fs';
import path from 'node:path';
import { BerthError } from '../app/contract/errors.js';
import { IMAGE_FILES, ImageStore, type ProgressDetail } from '../app/engine/image/image-store.js';
import { cacheDir } from '../app/base/paths.js';
import { readTuning } from '../app/base/tuning.js';
import { ProgressLines } from '../app/base/progress-lines.js';

const archArg = process.argv.find((a) => a.startsWith('--arch='))?.slice('--arch='.length);
const tuning = readTuning(archArg ? { ...process.env, BERTH_GUEST_ARCH: archArg } : process.env);
const store = new ImageStore(cacheDir(), undefined, tuning);
const dir = store.expectedDir();
const force = process.argv.includes('--force');
const t0 = Date.now();
// On a terminal the build's counters and timers update one line in place.
const lines = new ProgressLines({
  write: (t) => process.stdout.write(t),
  tty: process.stdout.isTTY === true,
  columns: () => process.stdout.columns,
  prefix: () => ({ text: `${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s  `, width: 10 }),
});
const say = (m: string, d?: ProgressDetail) => lines.say(m, d?.step);

try {
  if (force) fs.rmSync(dir, { recursive: true, force: true });
  if (fs.existsSync(path.join(dir, 'manifest.json'))) {
    say(`the guest image for this recipe is already built: ${dir}`);
  } else {
    await store.build(say);
  }
  const img = await store.verify(dir, say, 'all');
  const m = img.manifest;
  const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  say(`kernel ${m.kernelRelease}, ${m.arch}, built in ${m.buildSeconds} s`);
  for (const f of IMAGE_FILES) {
    const e = m.files[f];
    say(`  ${f.padEnd(16)} ${e ? `${mib(e.size).padStart(10)}  sha256 ${e.sha256}` : 'missing'}`);
  }
  lines.end();
  process.stdout.write(`${dir}\n`);
} catch (err) {
  lines.end();
  if (err instanceof BerthError) {
    process.stderr.write(`error: ${err.message} [${err.code}]\nhint: ${err.hint}\n${err.details ?? ''}\n`);
    process.exit(1);
  }
  throw err;
}
