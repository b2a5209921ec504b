import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { isBerthError } from '../../app/contract/errors.js';
import { SettingsSchema, defaultSettings } from '../../app/engine/settings/schema.js';
import { SettingsStore } from '../../app/engine/settings/store.js';
import { shortTempDir } from '../helpers/temp.js';

test('defaults are valid and fit the host', () => {
  const d = defaultSettings();
  assert.ok(d.cpus >= 1 && d.cpus <= os.cpus().length);
  assert.ok(d.memoryMiB >= 512);
  assert.equal(d.diskGiB, 64);
  assert.equal(d.accel, 'auto');
  assert.equal(d.rosetta, false, 'Rosetta is opt-in');
  assert.deepEqual(SettingsSchema.parse(d), d);
});

test('rosetta: a boolean, applied at the next start; a file from before the setting reads as off', () => {
  const t = shortTempDir();
  try {
    const file = path.join(t.dir, 's.json');
    fs.writeFileSync(file, JSON.stringify({ cpus: 1 }));
    const s = new SettingsStore(file);
    assert.equal(s.get().rosetta, false);
    const r = s.update({ rosetta: true });
    assert.deepEqual(r.changed, ['rosetta']);
    assert.equal(r.restartRequired, true);
    assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).rosetta, true);
  } finally {
    t.cleanup();
  }
});

test('a missing or empty file means defaults', () => {
  const t = shortTempDir();
  try {
    assert.deepEqual(new SettingsStore(path.join(t.dir, 'none.json')).get(), defaultSettings());
    fs.writeFileSync(path.join(t.dir, 'empty.json'), '');
    assert.deepEqual(new SettingsStore(path.join(t.dir, 'empty.json')).get(), defaultSettings());
  } finally {
    t.cleanup();
  }
});

test('a good update is saved owner-only and says a restart is needed', () => {
  const t = shortTempDir();
  try {
    const file = path.join(t.dir, 's.json');
    const s = new SettingsStore(file);
    const r = s.update({ memoryMiB: 1024 });
    assert.deepEqual(r.changed, ['memoryMiB']);
    assert.equal(r.restartRequired, true);
    assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).memoryMiB, 1024);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(new SettingsStore(file).get().memoryMiB, 1024);
  } finally {
    t.cleanup();
  }
});

for (const [name, patch, pattern] of [
  ['memory too small', { memoryMiB: 100 }, /memoryMiB: must be at least 512/],
  ['memory beyond the host', { memoryMiB: 10_000_000 }, /memoryMiB: must leave the host/],
  ['more CPUs than the host', { cpus: 4096 }, /cpus: must not exceed/],
  ['zero CPUs', { cpus: 0 }, /cpus/],
  ['a fraction', { cpus: 1.5 }, /cpus/],
  ['a string', { memoryMiB: 'lots' }, /memoryMiB/],
  ['an unknown key', { memory: 1024 }, /memory/],
  ['an unknown accelerator', { accel: 'warp' }, /accel/],
  ['rosetta as a string', { rosetta: 'true' }, /rosetta: must be true or false/],
  ['rosetta as a number', { rosetta: 1 }, /rosetta/],
] as const) {
  test(`refused and nothing saved: ${name}`, () => {
    const t = shortTempDir();
    try {
      const file = path.join(t.dir, 's.json');
      const s = new SettingsStore(file);
      s.persistDefaults();
      const before = fs.readFileSync(file, 'utf8');
      assert.throws(
        () => s.update(patch),
        (e) => isBerthError(e, 'INVALID_SETTINGS') && pattern.test(e.message) && e.hint.length > 0,
      );
      assert.equal(fs.readFileSync(file, 'utf8'), before);
      assert.deepEqual(s.get(), defaultSettings());
    } finally {
      t.cleanup();
    }
  });
}

test('the data disk never shrinks', () => {
  const t = shortTempDir();
  try {
    const s = new SettingsStore(path.join(t.dir, 's.json'));
    s.update({ diskGiB: 100 });
    assert.throws(
      () => s.update({ diskGiB: 50 }),
      (e) => isBerthError(e, 'DISK_SHRINK'),
    );
    assert.equal(s.get().diskGiB, 100);
  } finally {
    t.cleanup();
  }
});

test('a new instance (no data disk yet) takes any disk size; once the disk exists it only grows', () => {
  const t = shortTempDir();
  try {
    const disk = path.join(t.dir, 'data.img');
    const s = new SettingsStore(path.join(t.dir, 's.json'), { dataDisk: disk });
    assert.equal(s.update({ diskGiB: 8 }).settings.diskGiB, 8, 'smaller than the 64 GiB default before the first start');
    // The engine creates the disk (sparse) at the first start.
    fs.writeFileSync(disk, '');
    fs.truncateSync(disk, 8 * 2 ** 30);
    assert.throws(
      () => s.update({ diskGiB: 4 }),
      (e) => isBerthError(e, 'DISK_SHRINK') && /from 8 GiB to 4 GiB/.test(e.message),
    );
    assert.equal(s.update({ diskGiB: 16 }).settings.diskGiB, 16);
  } finally {
    t.cleanup();
  }
});

test('a corrupt file is reported, not overwritten', () => {
  const t = shortTempDir();
  try {
    const file = path.join(t.dir, 's.json');
    fs.writeFileSync(file, '{"cpus": 2,');
    // Never good: nothing to fall back on, so reading the settings is the error.
    assert.throws(
      () => new SettingsStore(file).get(),
      (e) => isBerthError(e, 'SETTINGS_FILE_CORRUPT') && /delete it/.test(e.hint),
    );
    assert.equal(fs.readFileSync(file, 'utf8'), '{"cpus": 2,');
  } finally {
    t.cleanup();
  }
});

test('an out-of-range value in the file is reported with its key', () => {
  const t = shortTempDir();
  try {
    const file = path.join(t.dir, 's.json');
    fs.writeFileSync(file, JSON.stringify({ cpus: -1, extra: true }));
    assert.throws(
      () => new SettingsStore(file).get(),
      (e) => isBerthError(e, 'INVALID_SETTINGS') && /cpus/.test(e.message),
    );
  } finally {
    t.cleanup();
  }
});

test('shareMechanism: auto by default, auto|virtiofs|sshfs only, and a change applies at the next start', () => {
  const t = shortTempDir();
  try {
    const s = new SettingsStore(path.join(t.dir, 'settings.json'));
    assert.equal(defaultSettings().shareMechanism, 'auto');
    const r = s.update({ shareMechanism: 'sshfs' });
    assert.equal(r.settings.shareMechanism, 'sshfs');
    assert.equal(r.restartRequired, true);
    assert.throws(
      () => s.update({ shareMechanism: 'nfs' as never }),
      (e) => isBerthError(e, 'INVALID_SETTINGS') && /shareMechanism/.test(e.message),
    );
    assert.equal(s.get().shareMechanism, 'sshfs');
  } finally {
    t.cleanup();
  }
});
