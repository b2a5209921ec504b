/**
 * Boot paths with the real kernel and QEMU: the accelerator probe, and a
 * guest that cannot come up (a broken root image) reported with its console.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chooseAccelerator, probeBoot } from '../../app/engine/drivers/accel-probe.js';
import { findQemu } from '../../app/engine/drivers/qemu.js';
import type { ImageManifest } from '../../app/engine/image/image-store.js';
import { berth } from '../helpers/run.js';
import { shortTempDir, withEnv } from '../helpers/temp.js';
import { ensureImage, vmPrereqProblem } from './prereqs.js';

const problem = vmPrereqProblem();
if (problem) process.stdout.write(`# boot tests skipped: ${problem}\n`);

describe('booting the real guest kernel', { skip: problem ?? false, timeout: 10 * 60_000 }, () => {
  const t = shortTempDir('bb');
  let imageDir = '';
  before(async () => {
    imageDir = await ensureImage();
  });
  after(() => t.cleanup());

  test('TCG probe boot reaches the initramfs and prints the marker', async () => {
    const r = await probeBoot(findQemu('x86_64'), { arch: 'x86_64', kernel: path.join(imageDir, 'vmlinuz'), initrd: path.join(imageDir, 'initrd.img') }, 'tcg', 60_000);
    assert.equal(r.ok, true, JSON.stringify(r));
  });

  test('auto picks a working accelerator by itself, explains why, and caches the verdict', async () => {
    const restore = withEnv({ BERTH_ACCEL: undefined });
    try {
      const input = {
        arch: 'x86_64' as const,
        kernel: path.join(imageDir, 'vmlinuz'),
        initrd: path.join(imageDir, 'initrd.img'),
        requested: 'auto' as const,
        cacheFile: path.join(t.dir, 'accel.json'),
      };
      const first = await chooseAccelerator(input);
      process.stdout.write(`# accelerator on this host: ${first.accel} (${first.reason})\n`);
      assert.ok(['kvm', 'tcg'].includes(first.accel));
      assert.ok(first.reason.length > 10);
      assert.equal(first.cached, false);
      const second = await chooseAccelerator(input);
      assert.deepEqual({ ...second, cached: false }, first);
      assert.equal(second.cached, true);
      // An explicit setting is taken as asked, without probing.
      assert.deepEqual(await chooseAccelerator({ ...input, requested: 'tcg' }), { accel: 'tcg', reason: 'set in settings', cached: false });
    } finally {
      restore();
    }
  });

  test('a broken root image: berth start fails with GUEST_BOOT_FAILED and the console tail', async () => {
    const dir = path.join(t.dir, 'broken-image');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(imageDir, 'vmlinuz'), path.join(dir, 'vmlinuz'));
    fs.copyFileSync(path.join(imageDir, 'initrd.img'), path.join(dir, 'initrd.img'));
    fs.writeFileSync(path.join(dir, 'rootfs.squashfs'), crypto.randomBytes(1 << 20));
    const files = {} as ImageManifest['files'];
    for (const f of ['vmlinuz', 'initrd.img', 'rootfs.squashfs'] as const) {
      const data = fs.readFileSync(path.join(dir, f));
      files[f] = { sha256: crypto.createHash('sha256').update(data).digest('hex'), size: data.length };
    }
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ recipeHash: 'broken', arch: 'x86_64', kernelRelease: 'x', builtAt: '', buildSeconds: 0, files }));
    const env = {
      ...process.env,
      BERTH_HOME: path.join(t.dir, 'h'),
      BERTH_IMAGE_DIR: dir,
      BERTH_ACCEL: 'tcg',
      DOCKER_CONFIG: path.join(t.dir, 'dc'),
      NO_COLOR: '1',
    };
    try {
      const r = await berth(['start'], env, { timeoutMs: 180_000 });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /GUEST_BOOT_FAILED/);
      assert.match(r.stderr, /cannot mount root image/);
      assert.match(r.stderr, /hint: .*serial/);
    } finally {
      assert.equal((await berth(['stop'], env, { timeoutMs: 60_000 })).code, 0);
    }
  });
});
