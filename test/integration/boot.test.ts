/**
 * Boot paths with the real kernel and QEMU: the accelerator probe, and a
 * guest that cannot come up (a broken root image) reported with its console.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import { chooseAccelerator, probeBoot } from '../../app/engine/drivers/accel-probe.js';
import { findQemu } from '../../app/engine/drivers/qemu.js';
import type { ImageManifest } from '../../app/engine/image/image-store.js';
import { berth } from '../helpers/run.js';
import { shortTempDir, withEnv } from '../helpers/temp.js';
import { ensureImage, vmPrereqProblem } from './prereqs.js';

const problem = vmPrereqProblem();

/** Whether chooseAccelerator gets as far as a probe boot on this host. */
function kvmUsable(): boolean {
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

gatedSuite('booting the real guest kernel', problem, { timeout: 10 * 60_000 }, () => {
  const t = shortTempDir('bb');
  let imageDir = '';
  before(async () => {
    // The probe boot below is x86_64's, whatever guest the matrix runs.
    imageDir = await ensureImage('x86_64');
  });
  after(() => t.cleanup());

  test('TCG probe boot reaches the initramfs and prints the marker', async () => {
    const r = await probeBoot(
      findQemu('x86_64'),
      { arch: 'x86_64', kernel: path.join(imageDir, 'vmlinuz'), initrd: path.join(imageDir, 'initrd.img') },
      'tcg',
      60_000,
    );
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
      // Only a probe boot's verdict is cached: without a usable /dev/kvm
      // there is nothing to probe, the check is one access() call, and the
      // next start sees a kvm module loaded since.
      if (kvmUsable()) assert.equal(second.cached, true, 'a probe verdict is reused');
      else {
        assert.equal(second.cached, false, 'nothing was probed, so nothing was cached');
        assert.match(second.reason, /\/dev\/kvm/);
        assert.equal(fs.existsSync(input.cacheFile), false);
      }
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
    fs.writeFileSync(
      path.join(dir, 'manifest.json'),
      JSON.stringify({ recipeHash: 'broken', arch: 'x86_64', kernelRelease: 'x', builtAt: '', buildSeconds: 0, files }),
    );
    const env = {
      ...process.env,
      BERTH_HOME: path.join(t.dir, 'h'),
      BERTH_IMAGE_DIR: dir,
      BERTH_ACCEL: 'tcg',
      // The broken image has the direct boot's files only, also when the whole run asks for EFI; and it is x86_64's.
      BERTH_BOOT: 'kernel',
      BERTH_GUEST_ARCH: 'x86_64',
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
