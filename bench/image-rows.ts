/**
 * The guest image section: what each artifact of the current recipe's image
 * weighs, per architecture, read from the image's manifest (the sizes the
 * engine verifies before a boot), and how long its build took (the build
 * records it; the image may have been built before this run, and the row
 * says when). An architecture whose image is not built here is "not built".
 */
import fs from 'node:fs';
import path from 'node:path';
import type { GuestArch } from '../app/engine/drivers/driver.js';
import { ImageStore, type ImageManifest } from '../app/engine/image/image-store.js';

const ARCHES: { arch: GuestArch; label: string }[] = [
  { arch: 'x86_64', label: 'amd64' },
  { arch: 'aarch64', label: 'arm64' },
];

function manifestOf(cacheRoot: string, arch: GuestArch): ImageManifest | undefined {
  try {
    const dir = new ImageStore(cacheRoot, arch).expectedDir();
    return JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as ImageManifest;
  } catch {
    return undefined;
  }
}

const mib = (bytes: number | undefined) => (bytes === undefined ? 'n/a' : `${(bytes / 1024 ** 2).toFixed(1)} MiB`);

export function imageRows(cacheRoot: string): string[] {
  const m = ARCHES.map((a) => ({ ...a, manifest: manifestOf(cacheRoot, a.arch) }));
  const cell = (pick: (x: ImageManifest) => string) => m.map((a) => (a.manifest ? pick(a.manifest) : 'not built')).join(' | ');
  const size = (f: keyof ImageManifest['files']) => (x: ImageManifest) => mib(x.files[f]?.size);
  const direct = (x: ImageManifest) => {
    const parts = (['vmlinuz', 'initrd.img', 'rootfs.squashfs'] as const).map((f) => x.files[f]?.size);
    return parts.every((p) => p !== undefined) ? `**${mib(parts.reduce((s, p) => s! + p!, 0))}**` : 'n/a';
  };
  return [
    '## Guest image',
    '',
    "The current recipe's image for each architecture, from its manifest (the sizes checked before every boot); the build time is the one the build recorded, on the day it says.",
    '',
    `| artifact | ${m.map((a) => a.label).join(' | ')} |`,
    `|---|${m.map(() => '---|').join('')}`,
    `| kernel release | ${cell((x) => x.kernelRelease)} |`,
    `| \`vmlinuz\` | ${cell(size('vmlinuz'))} |`,
    `| \`initrd.img\` | ${cell(size('initrd.img'))} |`,
    `| \`rootfs.squashfs\` (zstd) | ${cell(size('rootfs.squashfs'))} |`,
    `| **direct kernel boot** | ${cell(direct)} |`,
    `| \`efi.img\` | ${cell(size('efi.img'))} |`,
    `| \`efi.vhdx\` | ${cell(size('efi.vhdx'))} |`,
    `| build time | ${cell((x) => `${x.buildSeconds} s (${x.builtAt.slice(0, 10)})`)} |`,
    '',
  ];
}
