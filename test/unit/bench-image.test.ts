/**
 * The bench's guest image section (bench/image-rows.ts): sizes from the
 * current recipe's manifest, the direct-boot total, the recorded build
 * time and its day; an architecture with no image says "not built".
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { imageRows } from '../../bench/image-rows.js';
import { ImageStore } from '../../app/engine/image/image-store.js';
import { shortTempDir } from '../helpers/temp.js';

test('guest image rows: each artifact in MiB from the manifest, the direct-boot sum, the build time; a missing arch is not built', () => {
  const t = shortTempDir('bimg');
  try {
    const dir = new ImageStore(t.dir, 'x86_64').expectedDir();
    fs.mkdirSync(dir, { recursive: true });
    const MiB = 1024 ** 2;
    fs.writeFileSync(
      path.join(dir, 'manifest.json'),
      JSON.stringify({
        recipeHash: 'x',
        arch: 'x86_64',
        kernelRelease: '6.1.0-57-cloud-amd64',
        builtAt: '2026-12-05T06:13:28.399Z',
        buildSeconds: 172,
        files: {
          vmlinuz: { sha256: '', size: 13.5 * MiB },
          'initrd.img': { sha256: '', size: 1.5 * MiB },
          'rootfs.squashfs': { sha256: '', size: 113.25 * MiB },
          'efi.img': { sha256: '', size: 152 * MiB },
        },
      }),
    );
    const rows = imageRows(t.dir);
    const row = (first: string) => rows.find((r) => r.startsWith(`| ${first} |`));
    assert.equal(row('artifact'), '| artifact | amd64 | arm64 |');
    assert.equal(row('kernel release'), '| kernel release | 6.1.0-57-cloud-amd64 | not built |');
    assert.equal(row('`rootfs.squashfs` (zstd)'), '| `rootfs.squashfs` (zstd) | 113.3 MiB | not built |');
    assert.equal(row('**direct kernel boot**'), '| **direct kernel boot** | **128.3 MiB** | not built |');
    assert.equal(row('`efi.vhdx`'), '| `efi.vhdx` | n/a | not built |');
    assert.equal(row('build time'), '| build time | 172 s (2026-12-05) | not built |');
  } finally {
    t.cleanup();
  }
});
