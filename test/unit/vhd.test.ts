/**
 * Fixed VHDs for Hyper-V, per Microsoft's "Virtual Hard Disk Image Format
 * Specification" 1.0: the raw bytes, then a 512-byte big-endian footer
 * ("conectix", features 2, version 0x00010000, data offset all ones for a
 * fixed disk, original and current size, CHS geometry by the appendix's
 * algorithm, disk type 2, one's-complement checksum of the footer). QEMU's
 * vpc driver, which checks that checksum, reads our files when installed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from '../helpers/prereq-gate.js';
import { fixedVhdFooter, vhdGeometry, writeFixedVhd } from '../../app/engine/drivers/vhd.js';
import { findExecutable } from '../../app/base/process-util.js';
import { shortTempDir } from '../helpers/temp.js';

test("CHS geometry by the specification's algorithm", () => {
  // 1 MiB: 2048 sectors -> 17 sectors/track, 4 heads, 30 cylinders.
  assert.deepEqual(vhdGeometry(1024 * 1024), { cylinders: 30, heads: 4, sectorsPerTrack: 17 });
  // 127 GiB and more: capped at 65535 x 16 x 255.
  assert.deepEqual(vhdGeometry(200 * 1024 ** 3), { cylinders: 65535, heads: 16, sectorsPerTrack: 255 });
  // 4 GiB: 8388608 sectors, past 17 and 31 sectors/track -> 63.
  assert.deepEqual(vhdGeometry(4 * 1024 ** 3), { cylinders: 8322, heads: 16, sectorsPerTrack: 63 });
});

test('the footer: fields at their offsets, and a checksum that adds up', () => {
  const uuid = Buffer.alloc(16, 0xab);
  const f = fixedVhdFooter(1024 * 1024, { uuid, now: new Date('2000-01-01T00:01:40Z') });
  assert.equal(f.length, 512);
  assert.equal(f.toString('ascii', 0, 8), 'conectix');
  assert.equal(f.readUInt32BE(8), 2);
  assert.equal(f.readUInt32BE(12), 0x00010000);
  assert.equal(f.readBigUInt64BE(16), 0xffffffffffffffffn);
  assert.equal(f.readUInt32BE(24), 100, 'seconds since 2000-01-01');
  assert.equal(f.toString('ascii', 36, 40), 'Wi2k');
  assert.equal(f.readBigUInt64BE(40), 1048576n);
  assert.equal(f.readBigUInt64BE(48), 1048576n);
  assert.equal(f.readUInt32BE(60), 2, 'fixed disk');
  assert.deepEqual(f.subarray(68, 84), uuid);
  const copy = Buffer.from(f);
  copy.writeUInt32BE(0, 64);
  let sum = 0;
  for (const b of copy) sum += b;
  assert.equal(f.readUInt32BE(64), ~sum >>> 0);
  assert.throws(() => fixedVhdFooter(1000), /multiple of 512/);
});

test('a raw file becomes a fixed VHD: same bytes, padded to a MiB, footer last, owner-only', () => {
  const tmp = shortTempDir('vhd');
  try {
    const raw = path.join(tmp.dir, 'config.tar');
    const vhd = path.join(tmp.dir, 'config.vhd');
    const data = Buffer.from('berth config disk\n'.repeat(400));
    fs.writeFileSync(raw, data);
    writeFixedVhd(raw, vhd);
    const out = fs.readFileSync(vhd);
    assert.equal(out.length, 1024 * 1024 + 512);
    assert.deepEqual(out.subarray(0, data.length), data);
    assert.equal(out.toString('ascii', 1024 * 1024, 1024 * 1024 + 8), 'conectix');
    assert.equal(fs.statSync(vhd).mode & 0o777, 0o600);
  } finally {
    tmp.cleanup();
  }
});

const qemuImg = findExecutable('qemu-img');

test('QEMU reads the fixed VHD back as the same bytes', { needs: qemuImg ? undefined : 'qemu-img is not installed (Debian: qemu-utils)' }, () => {
  const tmp = shortTempDir('vhd');
  try {
    const raw = path.join(tmp.dir, 'config.tar');
    const vhd = path.join(tmp.dir, 'config.vhd');
    const data = Buffer.from('berth config disk\n'.repeat(400));
    fs.writeFileSync(raw, data);
    writeFixedVhd(raw, vhd);
    const info = JSON.parse(execFileSync(qemuImg!, ['info', '-f', 'vpc', '--output=json', vhd], { encoding: 'utf8' })) as { format: string };
    assert.equal(info.format, 'vpc', 'QEMU accepts the footer (it verifies the checksum)');
    const back = path.join(tmp.dir, 'back.raw');
    execFileSync(qemuImg!, ['convert', '-f', 'vpc', '-O', 'raw', vhd, back]);
    assert.deepEqual(fs.readFileSync(back).subarray(0, data.length), data);
  } finally {
    tmp.cleanup();
  }
});
