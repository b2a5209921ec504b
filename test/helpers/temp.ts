import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { GuestArch } from '../../app/engine/drivers/driver.js';
import { IMAGE_FILES, type ImageManifest } from '../../app/engine/image/image-store.js';
import { hostGuestArch } from '../../app/engine/image/recipe.js';

/**
 * A short temporary folder (unix socket paths must stay under ~104 bytes),
 * removed by the returned cleanup.
 */
export function shortTempDir(prefix = 'bt'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join('/tmp', `${prefix}-`));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * The 64-byte header of an uncompressed arm64 kernel Image (magic "ARM\x64"
 * at 0x38, Documentation/arch/arm64/booting.rst) and some filler: what
 * vfkit's kernel check takes for a bootable arm64 kernel.
 */
export function fakeArm64Image(fill = 'fake Image\n'): Buffer {
  const head = Buffer.alloc(64);
  head.write('MZ', 0, 'latin1');
  head.write('ARM\x64', 0x38, 'latin1');
  return Buffer.concat([head, Buffer.from(fill.repeat(100))]);
}

/** A tiny image folder with a valid manifest for `arch`, default the host's (not bootable): for checksum and engine tests. */
export function fakeImageDir(dir: string, arch: GuestArch = hostGuestArch()): string {
  fs.mkdirSync(dir, { recursive: true });
  const files = {} as ImageManifest['files'];
  for (const name of IMAGE_FILES) {
    // vmlinuz passes vfkit's arm64 kernel check; nothing looks inside the others.
    const data = name === 'vmlinuz' ? fakeArm64Image(`fake ${name}\n`) : Buffer.from(`fake ${name}\n`.repeat(100));
    fs.writeFileSync(path.join(dir, name), data);
    files[name] = { sha256: crypto.createHash('sha256').update(data).digest('hex'), size: data.length };
  }
  const manifest: ImageManifest = {
    recipeHash: 'fake',
    arch,
    kernelRelease: '6.1.0-fake',
    builtAt: new Date().toISOString(),
    buildSeconds: 0,
    files,
  };
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  return dir;
}

/** Set environment variables for the duration of a test; returns the restore function. */
export function withEnv(vars: Record<string, string | undefined>): () => void {
  const old: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(vars)) {
    old[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  return () => {
    for (const [k, v] of Object.entries(old)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}
