import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { defaultGuestTraits } from '../../app/engine/drivers/driver.js';
import { HypervDriver } from '../../app/engine/drivers/hyperv.js';
import { bootModeFor, DRIVER_FEATURES } from '../../app/engine/drivers/features.js';
import { buildVmSpec, type SpecInputs } from '../../app/engine/drivers/vm-spec.js';
import { isBerthError } from '../../app/contract/errors.js';
import { instancePaths } from '../../app/base/paths.js';
import { BOOT_FILES, ImageStore, checkBuildPrivileges, sha256Sums, type ImageManifest } from '../../app/engine/image/image-store.js';
import { configuredGuestArch, guestArchFor, guestSuite, hostGuestArch, recipeHash } from '../../app/engine/image/recipe.js';
import { readTuning } from '../../app/base/tuning.js';
import { ROOT } from '../helpers/run.js';
import { fakeImageDir, shortTempDir } from '../helpers/temp.js';

test('the recipe hash is stable and changes with any recipe file', () => {
  const t = shortTempDir();
  try {
    fs.mkdirSync(path.join(t.dir, 'r/sub'), { recursive: true });
    fs.writeFileSync(path.join(t.dir, 'r/a.txt'), 'one');
    fs.writeFileSync(path.join(t.dir, 'r/sub/b.sh'), 'two');
    const h1 = recipeHash('x86_64', path.join(t.dir, 'r'));
    assert.equal(recipeHash('x86_64', path.join(t.dir, 'r')), h1);
    assert.notEqual(recipeHash('aarch64', path.join(t.dir, 'r')), h1, 'the arch is part of the key');
    fs.chmodSync(path.join(t.dir, 'r/sub/b.sh'), 0o755);
    const h2 = recipeHash('x86_64', path.join(t.dir, 'r'));
    assert.notEqual(h2, h1, 'the exec bit is part of the key');
    fs.writeFileSync(path.join(t.dir, 'r/a.txt'), 'one!');
    assert.notEqual(recipeHash('x86_64', path.join(t.dir, 'r')), h2);
  } finally {
    t.cleanup();
  }
});

test('the repository recipe hashes', () => {
  assert.match(recipeHash('x86_64'), /^[0-9a-f]{16}$/);
});

test("the guest's Debian release is a recipe file: build.sh reads it, and it is part of the hash", () => {
  const t = shortTempDir();
  try {
    const r = path.join(t.dir, 'r');
    fs.mkdirSync(r);
    fs.writeFileSync(path.join(r, 'suite.txt'), '# the release\ntrixie\n');
    assert.equal(guestSuite(r), 'trixie');
    const h = recipeHash('x86_64', r);
    fs.writeFileSync(path.join(r, 'suite.txt'), '# the release\nforky\n');
    assert.notEqual(recipeHash('x86_64', r), h);
    fs.writeFileSync(path.join(r, 'suite.txt'), 'trixie bookworm\n');
    assert.throws(
      () => guestSuite(r),
      (e) => isBerthError(e, 'IMAGE_BUILD_FAILED'),
    );
  } finally {
    t.cleanup();
  }
  assert.match(guestSuite(), /^[a-z]+$/);
  assert.match(fs.readFileSync(path.join(ROOT, 'vm-images/build.sh'), 'utf8'), /^suite=\$\(sed .*suite\.txt/m);
});

test('a missing image is reported with how to build it', async () => {
  const t = shortTempDir();
  try {
    const store = new ImageStore(t.dir, 'x86_64');
    await assert.rejects(store.ensure({ build: false }), (e) => isBerthError(e, 'IMAGE_MISSING') && /npm run image/.test(e.hint));
  } finally {
    t.cleanup();
  }
});

test('BERTH_IMAGE_DIR without an image is reported', async () => {
  const t = shortTempDir();
  try {
    await assert.rejects(new ImageStore(t.dir, 'x86_64', { imageDir: t.dir }).ensure({ build: true }), (e) => isBerthError(e, 'IMAGE_MISSING'));
  } finally {
    t.cleanup();
  }
});

test('a good image verifies; a changed byte, a wrong size or a missing file does not', async () => {
  const t = shortTempDir();
  try {
    const dir = fakeImageDir(path.join(t.dir, 'img'), 'x86_64');
    const store = new ImageStore(t.dir, 'x86_64', { imageDir: path.join(t.dir, 'img') });
    const img = await store.ensure({ build: false });
    assert.equal(img.kernel, path.join(dir, 'vmlinuz'));

    const rootfs = path.join(dir, 'rootfs.squashfs');
    const good = fs.readFileSync(rootfs);
    const bad = Buffer.from(good);
    bad[10] = bad[10]! ^ 0xff;
    fs.writeFileSync(rootfs, bad);
    await assert.rejects(store.ensure({ build: false }), (e) => isBerthError(e, 'IMAGE_CHECKSUM') && /checksum/.test(e.message) && /rebuild/.test(e.hint));

    fs.writeFileSync(rootfs, Buffer.concat([good, Buffer.from('x')]));
    await assert.rejects(store.ensure({ build: false }), (e) => isBerthError(e, 'IMAGE_CHECKSUM') && /wrong size/.test(e.message));

    fs.rmSync(rootfs);
    await assert.rejects(store.ensure({ build: false }), (e) => isBerthError(e, 'IMAGE_CHECKSUM') && /missing/.test(e.message));
  } finally {
    t.cleanup();
  }
});

test('an image of the other architecture is refused before anything boots, with which one to use', async () => {
  const t = shortTempDir();
  try {
    const dir = fakeImageDir(path.join(t.dir, 'img'), 'x86_64');
    const asked = new ImageStore(t.dir, 'aarch64', { imageDir: dir, guestArch: 'aarch64' });
    await assert.rejects(
      asked.ensure({ build: false }),
      (e) =>
        isBerthError(e, 'IMAGE_WRONG_ARCH') &&
        /built for x86_64, but this VM runs aarch64 guests/.test(e.message) &&
        /BERTH_IMAGE_DIR at an aarch64 image/.test(e.hint) &&
        /unset BERTH_GUEST_ARCH/.test(e.hint),
    );
    // In the cache (no BERTH_IMAGE_DIR): rebuild it.
    const cached = new ImageStore(t.dir, 'aarch64');
    await assert.rejects(cached.verify(dir), (e) => isBerthError(e, 'IMAGE_WRONG_ARCH') && /npm run image/.test(e.hint));
    // The same image for the architecture it was built for verifies.
    await new ImageStore(t.dir, 'x86_64', { imageDir: dir }).ensure({ build: false });
  } finally {
    t.cleanup();
  }
});

test('building needs root, and says how', () => {
  assert.throws(
    () => checkBuildPrivileges(1000),
    (e) => isBerthError(e, 'IMAGE_BUILD_NEEDS_ROOT') && /sudo npm run image/.test(e.hint),
  );
  assert.throws(
    () => checkBuildPrivileges(undefined),
    (e) => isBerthError(e, 'IMAGE_BUILD_NEEDS_ROOT'),
  );
  checkBuildPrivileges(0);
});

test('each driver boots its artifact: QEMU and vfkit the kernel, Hyper-V the VHDX; BERTH_BOOT overrides', () => {
  assert.equal(bootModeFor(DRIVER_FEATURES.qemu), 'kernel');
  assert.equal(bootModeFor(DRIVER_FEATURES.vfkit), 'kernel');
  assert.equal(bootModeFor(DRIVER_FEATURES.hyperv), 'vhdx');
  assert.equal(bootModeFor(DRIVER_FEATURES.qemu, 'efi'), 'efi');
  assert.equal(bootModeFor(DRIVER_FEATURES.vfkit, 'efi'), 'efi');
  assert.throws(
    () => bootModeFor(DRIVER_FEATURES.hyperv, 'kernel'),
    (e) => isBerthError(e, 'INVALID_SETTINGS') && /Hyper-V boots vhdx/.test(e.hint),
  );
  assert.throws(
    () => bootModeFor(DRIVER_FEATURES.qemu, 'vhdx'),
    (e) => isBerthError(e, 'INVALID_SETTINGS') && /QEMU driver cannot boot/.test(e.message),
  );
  assert.deepEqual(BOOT_FILES.kernel, ['vmlinuz', 'initrd.img', 'rootfs.squashfs']);
  assert.deepEqual(BOOT_FILES.efi, ['vmlinuz', 'initrd.img', 'efi.img']);
  assert.deepEqual(BOOT_FILES.vhdx, ['efi.vhdx']);
});

test("the guest architecture is the host's (x64 -> x86_64, arm64 -> aarch64) unless BERTH_GUEST_ARCH asks for the other", () => {
  assert.equal(guestArchFor('x64'), 'x86_64');
  assert.equal(guestArchFor('arm64'), 'aarch64');
  // BERTH_GUEST_ARCH (aliases and bad values: tuning.test.ts).
  assert.equal(guestArchFor('x64', 'aarch64'), 'aarch64');
  assert.equal(guestArchFor('arm64', 'x86_64'), 'x86_64');
  // What the store, the bench's floor and the tests' helpers all ask.
  assert.equal(configuredGuestArch(readTuning({ BERTH_GUEST_ARCH: 'aarch64' })), 'aarch64');
  assert.equal(configuredGuestArch(readTuning({})), hostGuestArch());
  assert.equal(new ImageStore('/nowhere', undefined, readTuning({ BERTH_GUEST_ARCH: 'aarch64' })).arch, 'aarch64');
  assert.throws(
    () => guestArchFor('ia32'),
    (e) => isBerthError(e, 'UNSUPPORTED_HOST'),
  );
  const t = shortTempDir();
  try {
    const x = new ImageStore(t.dir, 'x86_64');
    const a = new ImageStore(t.dir, 'aarch64');
    assert.match(path.basename(x.expectedDir()), /^x86_64-[0-9a-f]{16}$/);
    assert.match(path.basename(a.expectedDir()), /^aarch64-[0-9a-f]{16}$/);
    assert.notEqual(path.basename(x.expectedDir()).slice(7), path.basename(a.expectedDir()).slice(8));
    assert.equal(new ImageStore(t.dir, undefined, { guestArch: 'aarch64' }).arch, 'aarch64', 'BERTH_GUEST_ARCH picks the arch');
    assert.equal(new ImageStore(t.dir, 'x86_64', { imageDir: 'img' }).expectedDir(), path.resolve('img'), 'BERTH_IMAGE_DIR, resolved');
  } finally {
    t.cleanup();
  }
});

test("verifying checks only the chosen boot mode's files; a VHDX-only copy (a Windows release) verifies for Hyper-V", async () => {
  const t = shortTempDir();
  try {
    const dir = fakeImageDir(path.join(t.dir, 'img'), 'x86_64');
    const store = new ImageStore(t.dir, 'x86_64');
    const all = await store.verify(dir, undefined, 'all');
    assert.equal(all.efiImage, path.join(dir, 'efi.img'));
    assert.equal(all.vhdx, path.join(dir, 'efi.vhdx'));
    // A damaged VHDX does not stop a direct kernel boot, and the reverse.
    fs.writeFileSync(path.join(dir, 'efi.vhdx'), 'damaged');
    assert.equal((await store.verify(dir, undefined, 'kernel')).boot, 'kernel');
    assert.equal((await store.verify(dir, undefined, 'efi')).boot, 'efi');
    await assert.rejects(store.verify(dir, undefined, 'vhdx'), (e) => isBerthError(e, 'IMAGE_CHECKSUM') && /efi\.vhdx/.test(e.message));
    fs.rmSync(dir, { recursive: true });
    fakeImageDir(dir, 'x86_64');
    for (const f of ['vmlinuz', 'initrd.img', 'rootfs.squashfs', 'efi.img']) fs.rmSync(path.join(dir, f));
    assert.equal((await store.verify(dir, undefined, 'vhdx')).vhdx, path.join(dir, 'efi.vhdx'));
    await assert.rejects(store.verify(dir, undefined, 'efi'), (e) => isBerthError(e, 'IMAGE_CHECKSUM') && /missing/.test(e.message));
  } finally {
    t.cleanup();
  }
});

test('an image built before the EFI artifacts boots directly, and is told to be rebuilt for EFI', async () => {
  const t = shortTempDir();
  try {
    const dir = fakeImageDir(path.join(t.dir, 'img'), 'x86_64');
    const mf = path.join(dir, 'manifest.json');
    const m = JSON.parse(fs.readFileSync(mf, 'utf8')) as ImageManifest;
    delete m.files['efi.img'];
    delete m.files['efi.vhdx'];
    fs.writeFileSync(mf, JSON.stringify(m));
    const store = new ImageStore(t.dir, 'x86_64');
    await store.verify(dir, undefined, 'kernel');
    await assert.rejects(store.verify(dir, undefined, 'efi'), (e) => isBerthError(e, 'IMAGE_CHECKSUM') && /not in its manifest/.test(e.message));
  } finally {
    t.cleanup();
  }
});

test('the VM spec boots what the image store verified: the root disk for direct boot, the EFI disk (raw or VHDX) otherwise', async () => {
  const t = shortTempDir();
  try {
    const dir = fakeImageDir(path.join(t.dir, 'img'), 'x86_64');
    const store = new ImageStore(t.dir, 'x86_64');
    const paths = instancePaths('default', path.join(t.dir, 'home'));
    const inputs = (image: SpecInputs['image']): SpecInputs => ({
      paths,
      image,
      arch: 'x86_64',
      accel: 'tcg',
      cpus: 1,
      memoryMiB: 1024,
      diskGiB: 8,
      sshHostPort: 2222,
    });
    const traits = defaultGuestTraits('x86_64');

    const k = buildVmSpec('qemu', traits, inputs(await store.verify(dir, undefined, bootModeFor(DRIVER_FEATURES.qemu))));
    assert.equal(k.kernel, path.join(dir, 'vmlinuz'));
    assert.equal(k.initrd, path.join(dir, 'initrd.img'));
    assert.deepEqual(k.disks[0], { path: path.join(dir, 'rootfs.squashfs'), serial: 'berth-root', readonly: true, format: 'raw' });
    assert.equal(k.efi, undefined);

    const e = buildVmSpec('qemu', traits, inputs(await store.verify(dir, undefined, bootModeFor(DRIVER_FEATURES.qemu, 'efi'))));
    assert.ok(!e.disks.some((d) => d.serial === 'berth-root'), 'the root image is a partition of the EFI disk');
    assert.deepEqual(e.efi, { image: path.join(dir, 'efi.img'), variableStore: path.join(paths.dir, 'efi-vars.fd') });
    assert.equal(e.kernel, path.join(dir, 'vmlinuz'), 'the KVM probe still boots the kernel directly');

    const hv = new HypervDriver({ run: async () => ({ code: 0, stdout: '', stderr: '' }) });
    const h = buildVmSpec('hyperv', hv.guestTraits('x86_64'), inputs(await store.verify(dir, undefined, bootModeFor(DRIVER_FEATURES.hyperv))));
    assert.equal(h.efi?.image, path.join(dir, 'efi.vhdx'));
    assert.deepEqual(
      h.disks.map((d) => d.serial),
      ['berth-data', 'berth-cfg'],
    );
  } finally {
    t.cleanup();
  }
});

test('SHA256SUMS lists every artifact in sha256sum(1) format', () => {
  const files = { vmlinuz: { sha256: 'a'.repeat(64), size: 1 }, 'efi.vhdx': { sha256: 'b'.repeat(64), size: 2 } };
  assert.equal(sha256Sums(files), `${'a'.repeat(64)}  vmlinuz\n${'b'.repeat(64)}  efi.vhdx\n`);
});

test("stale images are the same architecture's older recipes only: the other architecture's image stays", () => {
  const t = shortTempDir();
  try {
    const x = new ImageStore(t.dir, 'x86_64');
    const a = new ImageStore(t.dir, 'aarch64');
    for (const d of [x.expectedDir(), a.expectedDir(), path.join(x.imagesDir, 'x86_64-0000000000000000'), path.join(x.imagesDir, '.build-x')]) {
      fs.mkdirSync(d, { recursive: true });
    }
    assert.deepEqual(x.staleImages(), [path.join(x.imagesDir, 'x86_64-0000000000000000')]);
    assert.deepEqual(a.staleImages(), []);
    // A build keeps the folder it made even if the recipe changed meanwhile.
    const built = path.join(x.imagesDir, 'x86_64-0000000000000000');
    assert.deepEqual(x.staleImages(built), [x.expectedDir()]);
  } finally {
    t.cleanup();
  }
});
