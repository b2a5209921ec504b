import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { isBerthError } from '../../app/engine/errors.js';
import { ImageStore, checkBuildPrivileges, recipeHash } from '../../app/engine/image/image-store.js';
import { fakeImageDir, shortTempDir, withEnv } from '../helpers/temp.js';

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

test('a missing image is reported with how to build it', async () => {
  const t = shortTempDir();
  const restore = withEnv({ BERTH_IMAGE_DIR: undefined });
  try {
    const store = new ImageStore(t.dir, 'x86_64');
    await assert.rejects(store.ensure({ build: false }), (e) => isBerthError(e, 'IMAGE_MISSING') && /npm run image/.test(e.hint));
  } finally {
    restore();
    t.cleanup();
  }
});

test('BERTH_IMAGE_DIR without an image is reported', async () => {
  const t = shortTempDir();
  const restore = withEnv({ BERTH_IMAGE_DIR: t.dir });
  try {
    await assert.rejects(new ImageStore(t.dir, 'x86_64').ensure({ build: true }), (e) => isBerthError(e, 'IMAGE_MISSING'));
  } finally {
    restore();
    t.cleanup();
  }
});

test('a good image verifies; a changed byte, a wrong size or a missing file does not', async () => {
  const t = shortTempDir();
  const restore = withEnv({ BERTH_IMAGE_DIR: path.join(t.dir, 'img') });
  try {
    const dir = fakeImageDir(path.join(t.dir, 'img'));
    const store = new ImageStore(t.dir, 'x86_64');
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
    restore();
    t.cleanup();
  }
});

test('building needs root, and says how', () => {
  assert.throws(() => checkBuildPrivileges(1000), (e) => isBerthError(e, 'IMAGE_BUILD_NEEDS_ROOT') && /sudo npm run image/.test(e.hint));
  assert.throws(() => checkBuildPrivileges(undefined), (e) => isBerthError(e, 'IMAGE_BUILD_NEEDS_ROOT'));
  checkBuildPrivileges(0);
});
