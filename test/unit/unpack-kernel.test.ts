/**
 * vm-images/unpack-kernel.sh, run for real with bash on made-up kernels: on
 * arm64 the image build always writes the plain, uncompressed Image that
 * vfkit's Linux loader needs, whatever form Debian ships (a plain Image,
 * Image.gz, or an EFI zboot image: "MZ", "zimg" at 4, the payload's offset
 * and size as little-endian words at 8 and 12, its compression's name at
 * 24, per the kernel's drivers/firmware/efi/libstub/zboot-header.S), and
 * refuses anything that does not unpack to an Image (magic "ARM\x64" at
 * 0x38). amd64 bzImages (magic "HdrS" at 0x202) pass as they are.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { after } from 'node:test';
import { needNow, test } from '../helpers/prereq-gate.js';
import { findExecutable } from '../../app/base/process-util.js';
import { ROOT } from '../helpers/run.js';
import { fakeArm64Image, shortTempDir } from '../helpers/temp.js';

const SCRIPT = path.join(ROOT, 'vm-images/unpack-kernel.sh');
const t = shortTempDir('unk');
after(() => t.cleanup());

/** A made-up arm64 Image: the real header layout, random contents. */
const IMAGE = Buffer.concat([fakeArm64Image().subarray(0, 64), crypto.randomBytes(200_000)]);

let n = 0;
function unpack(arch: string, input: Buffer): { status: number | null; stdout: string; stderr: string; out?: Buffer } {
  const dir = path.join(t.dir, `k${++n}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'in'), input);
  const out = path.join(dir, 'vmlinuz');
  const r = spawnSync('bash', [SCRIPT, arch, path.join(dir, 'in'), out], { encoding: 'utf8' });
  assert.deepEqual(
    fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
    'no temporary file left behind',
  );
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim(), out: fs.existsSync(out) ? fs.readFileSync(out) : undefined };
}

/** An EFI zboot image around `payload`, as the kernel's zboot-header.S lays it out. */
function zboot(payload: Buffer, comp: string): Buffer {
  const off = 4096;
  const head = Buffer.alloc(off);
  head.write('MZ', 0, 'latin1');
  head.write('zimg', 4, 'latin1');
  head.writeUInt32LE(off, 8);
  head.writeUInt32LE(payload.length, 12);
  head.write(`${comp}\0`, 24, 'latin1');
  head.writeUInt32LE(0x40, 0x3c); // the PE header's offset
  // After the payload: the 4-byte uncompressed size the size excludes, then the stub's code.
  const size = Buffer.alloc(4);
  size.writeUInt32LE(IMAGE.length);
  return Buffer.concat([head, payload, size, crypto.randomBytes(8192)]);
}

test('arm64: a plain Image is written as it is', () => {
  const r = unpack('arm64', IMAGE);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.out?.equals(IMAGE));
  assert.match(r.stdout, /^kernel: Debian's vmlinuz is a plain arm64 Image; writing the uncompressed Image \(200064 bytes\)$/);
});

test('arm64: Image.gz is gunzipped', () => {
  const r = unpack('arm64', zlib.gzipSync(IMAGE));
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.out?.equals(IMAGE));
  assert.match(r.stdout, /gzip-compressed Image/);
});

test('arm64: an EFI zboot image is cut open and its gzip payload unpacked', () => {
  const r = unpack('arm64', zboot(zlib.gzipSync(IMAGE), 'gzip'));
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.out?.equals(IMAGE));
  assert.match(r.stdout, /an EFI zboot image \(gzip payload, \d+ bytes at 4096\)/);
});

test('arm64: an EFI zboot image with a zstd payload', (ctx) => {
  const zstd = findExecutable('zstd');
  if (!zstd) {
    needNow(ctx, 'zstd is not installed (apt-get install zstd)');
    return;
  }
  const src = path.join(t.dir, 'image.raw');
  fs.writeFileSync(src, IMAGE);
  const packed = spawnSync(zstd, ['-q', '-c', src]);
  assert.equal(packed.status, 0);
  const r = unpack('arm64', zboot(packed.stdout, 'zstd22'));
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.out?.equals(IMAGE));
});

test('arm64: what cannot become an Image fails the build, and writes nothing', () => {
  const cases: [string, Buffer, RegExp][] = [
    ['garbage', Buffer.from('not a kernel\n'.repeat(50)), /is not an arm64 kernel Berth can boot: neither a plain Image, nor Image\.gz, nor EFI zboot/],
    ['gzip of garbage', zlib.gzipSync(Buffer.from('not a kernel\n'.repeat(50))), /did not unpack to an arm64 Image/],
    ['zboot with lz4', zboot(Buffer.from('whatever'), 'lz4'), /compressed with "lz4", which this script cannot unpack/],
    ['an x86 bzImage', bzImage(), /is not an arm64 kernel/],
    ['empty', Buffer.alloc(0), /is missing or empty/],
  ];
  for (const [name, input, why] of cases) {
    const r = unpack('arm64', input);
    assert.notEqual(r.status, 0, name);
    assert.match(r.stderr, why, name);
    assert.equal(r.out, undefined, `${name}: no vmlinuz written`);
  }
});

function bzImage(): Buffer {
  const b = crypto.randomBytes(100_000);
  b.write('HdrS', 0x202, 'latin1');
  return b;
}

test('amd64: the bzImage is copied; anything else is refused', () => {
  const bz = bzImage();
  const r = unpack('amd64', bz);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.out?.equals(bz));
  assert.match(r.stdout, /an x86 bzImage; writing it as it is/);
  const bad = unpack('amd64', IMAGE);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /not an x86 bzImage/);
});

test('the image build writes its kernel through this script', () => {
  const build = fs.readFileSync(path.join(ROOT, 'vm-images/build.sh'), 'utf8');
  assert.match(build, /"\$here\/unpack-kernel\.sh" "\$arch" "\$work\/kernel\/boot\/vmlinuz-\$kver" "\$out\/vmlinuz"/);
  assert.ok((fs.statSync(SCRIPT).mode & 0o111) !== 0, 'executable (the recipe hash counts the bit)');
});
