import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BerthError } from '../../contract/errors.js';
import { readJsonIfExists, writeFileAtomic } from '../../base/fs-util.js';
import { berthHome } from '../../base/paths.js';
import { pidAlive, sleep } from '../../base/process-util.js';
import type { Tuning } from '../../base/tuning.js';
import type { BootMode, GuestArch } from '../drivers/driver.js';
import { guestSources, hostAptEntries, hostDebianCodename } from './apt-sources.js';
import { BuildProgress, type BuildProgressMessage } from './build-progress.js';
import { configuredGuestArch, debianArch, guestSuite, recipeDir, recipeHash } from './recipe.js';

/**
 * Every artifact one build of the recipe makes, for one architecture:
 *  - vmlinuz, initrd.img, rootfs.squashfs: direct kernel boot (QEMU, vfkit's
 *    Linux loader), the root image on its own disk;
 *  - efi.img: a GPT disk that UEFI firmware boots by itself (an ESP with
 *    systemd-boot and one boot entry, the root image as partition
 *    "berth-root"): QEMU with edk2, vfkit's EFI loader;
 *  - efi.vhdx: the same disk as a VHDX, for Hyper-V generation 2.
 */
export const IMAGE_FILES = ['vmlinuz', 'initrd.img', 'rootfs.squashfs', 'efi.img', 'efi.vhdx'] as const;
export type ImageFile = (typeof IMAGE_FILES)[number];

export const BOOT_FILES: Record<BootMode, readonly ImageFile[]> = {
  kernel: ['vmlinuz', 'initrd.img', 'rootfs.squashfs'],
  efi: ['vmlinuz', 'initrd.img', 'efi.img'],
  vhdx: ['efi.vhdx'],
};

export interface ImageManifest {
  recipeHash: string;
  arch: GuestArch;
  kernelRelease: string;
  builtAt: string;
  buildSeconds: number;
  /** Every artifact with its SHA-256 (images built before EFI have the first three only). */
  files: Partial<Record<ImageFile, { sha256: string; size: number }>>;
}

export interface GuestImage {
  dir: string;
  /** The boot mode whose files were verified. */
  boot: BootMode;
  kernel: string;
  initrd: string;
  rootfs: string;
  /** The UEFI-bootable raw disk (efi.img). */
  efiImage: string;
  /** The same disk as VHDX (efi.vhdx). */
  vhdx: string;
  manifest: ImageManifest;
}

/** A counter or timer message (see build-progress.ts): `step` says what it updates. */
export interface ProgressDetail {
  step?: string;
  fraction?: number;
}
export type ImageProgress = (message: string, detail?: ProgressDetail) => void;

/** What the image store takes from the overrides. */
export type ImageTuning = Pick<Tuning, 'guestArch' | 'imageDir' | 'aptSources'>;

/**
 * A file's sha256, read through one 1 MiB buffer. A read stream made a new
 * 1 MiB buffer per chunk: checking a guest image at every start left tens
 * of MiB of them for the GC, which raised the engine's peak RSS by ~50 MiB
 * and, freed into malloc's heap, kept some of it long after.
 */
export async function sha256File(file: string): Promise<string> {
  const h = crypto.createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  const fh = await fs.promises.open(file, 'r');
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

/** `sha256sum -c` input for a manifest's files. */
export function sha256Sums(files: ImageManifest['files']): string {
  return IMAGE_FILES.flatMap((f) => (files[f] ? [`${files[f].sha256}  ${f}\n`] : [])).join('');
}

/** Image folders that an instance's running VM was started from (its state.json). */
export function imagesInUse(home = berthHome()): Set<string> {
  const out = new Set<string>();
  let names: string[] = [];
  try {
    names = fs.readdirSync(home);
  } catch {
    return out;
  }
  for (const n of names) {
    try {
      const st = JSON.parse(fs.readFileSync(path.join(home, n, 'state.json'), 'utf8')) as { imageDir?: string };
      if (st.imageDir) out.add(path.resolve(st.imageDir));
    } catch {
      /* not running */
    }
  }
  return out;
}

/** mmdebstrap's root mode installs packages into a folder: it needs root. */
export function checkBuildPrivileges(uid: number | undefined): void {
  if (uid !== 0) {
    throw new BerthError(
      'IMAGE_BUILD_NEEDS_ROOT',
      'building the guest image needs root (mmdebstrap installs packages into a folder as root)',
      'Run `sudo npm run image` once; later starts use the cached image.',
    );
  }
}

/**
 * Built guest images, cached by recipe hash outside the repository
 * (~/.cache/berth/images/<arch>-<hash>). BERTH_IMAGE_DIR points at a
 * prebuilt image instead (what a release ships). Every boot verifies the
 * files against the manifest's checksums first.
 */
export class ImageStore {
  readonly arch: GuestArch;

  /**
   * `arch`: default the host's, or BERTH_GUEST_ARCH's from `tuning`.
   * `recipe`: the recipe folder (default this checkout's vm-images; the
   * bench builds an older release's recipe to compare with).
   */
  constructor(
    private readonly cacheRoot: string,
    arch?: GuestArch,
    private readonly tuning: ImageTuning = {},
    private readonly recipe: string = recipeDir(),
  ) {
    this.arch = arch ?? configuredGuestArch(tuning);
  }

  get imagesDir(): string {
    return path.join(this.cacheRoot, 'images');
  }

  /** The folder the current recipe's image lives (or would live) in. */
  expectedDir(): string {
    if (this.tuning.imageDir) return path.resolve(this.tuning.imageDir);
    return path.join(this.imagesDir, `${this.arch}-${recipeHash(this.arch, this.recipe)}`);
  }

  /**
   * The image, verified for `boot` (default: direct kernel boot); built
   * first when missing and `build` allows it.
   */
  async ensure(opts: { build: boolean; boot?: BootMode; progress?: ImageProgress }): Promise<GuestImage> {
    const dir = this.expectedDir();
    if (!fs.existsSync(path.join(dir, 'manifest.json'))) {
      if (!opts.build || this.tuning.imageDir) {
        throw new BerthError(
          'IMAGE_MISSING',
          `no guest image in ${dir}`,
          this.tuning.imageDir
            ? `BERTH_IMAGE_DIR must name a folder with a built image (manifest.json, ${BOOT_FILES[opts.boot ?? 'kernel'].join(', ')}).`
            : 'Build it with `npm run image` (Linux, needs root and mmdebstrap), then start again.',
        );
      }
      await this.build(opts.progress ?? (() => undefined));
    }
    return this.verify(dir, opts.progress, opts.boot);
  }

  /**
   * Check the files a boot mode reads against the manifest (`all`: every
   * artifact). Throws IMAGE_CHECKSUM on any difference, and
   * IMAGE_WRONG_ARCH for an image of the other architecture (which would
   * boot in the wrong emulator and hang there, saying nothing).
   */
  async verify(dir: string, progress?: ImageProgress, boot: BootMode | 'all' = 'kernel'): Promise<GuestImage> {
    const manifest = readJsonIfExists(path.join(dir, 'manifest.json')) as ImageManifest | undefined;
    if (!manifest?.files) {
      throw new BerthError('IMAGE_MISSING', `${dir} has no readable manifest.json`, 'Rebuild the image with `npm run image`.');
    }
    if (manifest.arch !== this.arch) {
      throw new BerthError(
        'IMAGE_WRONG_ARCH',
        `the guest image in ${dir} is built for ${manifest.arch ?? 'no architecture its manifest names'}, but this VM runs ${this.arch} guests`,
        this.tuning.imageDir
          ? `Point BERTH_IMAGE_DIR at an ${this.arch} image${this.tuning.guestArch ? ", or unset BERTH_GUEST_ARCH to run the host's own architecture" : ''}.`
          : `Delete ${dir} and run \`npm run image\` to build the ${this.arch} image.`,
      );
    }
    progress?.('verifying the guest image');
    const names = boot === 'all' ? IMAGE_FILES : BOOT_FILES[boot];
    await Promise.all(
      names.map(async (name) => {
        const want = manifest.files[name];
        const file = path.join(dir, name);
        const fail = (why: string) =>
          new BerthError(
            'IMAGE_CHECKSUM',
            `the guest image file ${file} ${why}`,
            `The image is damaged or was changed. Delete ${dir} and run \`npm run image\` (or \`berth start\`) to rebuild it.`,
          );
        if (!want) throw fail(`is not in its manifest (an image built before ${name} existed)`);
        let st: fs.Stats;
        try {
          st = fs.statSync(file);
        } catch {
          throw fail('is missing');
        }
        if (st.size !== want.size) throw fail('has the wrong size');
        if ((await sha256File(file)) !== want.sha256) throw fail('does not match its checksum');
      }),
    );
    return {
      dir,
      boot: boot === 'all' ? 'kernel' : boot,
      kernel: path.join(dir, 'vmlinuz'),
      initrd: path.join(dir, 'initrd.img'),
      rootfs: path.join(dir, 'rootfs.squashfs'),
      efiImage: path.join(dir, 'efi.img'),
      vhdx: path.join(dir, 'efi.vhdx'),
      manifest,
    };
  }

  /** Build the current recipe into the cache. Linux only; needs root. */
  async build(progress: ImageProgress): Promise<string> {
    const dir = this.expectedDir();
    if (process.platform !== 'linux') {
      throw new BerthError(
        'IMAGE_MISSING',
        'guest images are built on Linux only',
        'Use a release build of Berth (it ships the image), or set BERTH_IMAGE_DIR to a built image.',
      );
    }
    checkBuildPrivileges(process.getuid?.());
    fs.mkdirSync(this.imagesDir, { recursive: true });
    const release = await this.takeBuildLock(progress);
    try {
      if (fs.existsSync(path.join(dir, 'manifest.json'))) return dir; // built while we waited
      const suite = guestSuite(this.recipe);
      const sources = this.tuning.aptSources ? fs.readFileSync(this.tuning.aptSources, 'utf8') : guestSources(hostAptEntries(), suite, hostDebianCodename());
      if (!sources) {
        throw new BerthError(
          'IMAGE_BUILD_FAILED',
          `this host's apt sources have no Debian ${suite} entries, and no Debian entries of its own release to take the mirrors from`,
          `The guest is built from the host's apt sources. Build on Debian, or set BERTH_APT_SOURCES to a sources file for ${suite}.`,
        );
      }
      const tmp = fs.mkdtempSync(path.join(this.imagesDir, '.build-'));
      const sourcesFile = path.join(tmp, 'apt.sources');
      fs.writeFileSync(sourcesFile, sources);
      const out = path.join(tmp, 'out');
      const started = Date.now();
      progress(`building the guest image (${this.arch}, recipe ${path.basename(dir)}); this takes a few minutes once`);
      const log: string[] = [];
      const counter = new BuildProgress();
      const report = (msgs: BuildProgressMessage[]) => {
        for (const m of msgs) progress(m.message, { step: m.step, ...(m.fraction !== undefined ? { fraction: m.fraction } : {}) });
      };
      // Loaded here, not with the engine: only a build reads lines (issue 16).
      const readline = await import('node:readline');
      const ticker = setInterval(() => report(counter.tick(Date.now())), 1000);
      const code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn('bash', [path.join(this.recipe, 'build.sh'), out, sourcesFile, debianArch(this.arch)], {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
        });
        for (const stream of [child.stdout, child.stderr]) {
          readline.createInterface({ input: stream }).on('line', (line) => {
            log.push(line);
            if (log.length > 200) log.shift();
            report(counter.line(line, Date.now()));
          });
        }
        child.on('error', reject);
        child.on('close', resolve);
      }).finally(() => {
        clearInterval(ticker);
        report(counter.finish(Date.now()));
      });
      if (code !== 0) {
        fs.rmSync(tmp, { recursive: true, force: true });
        throw new BerthError(
          'IMAGE_BUILD_FAILED',
          `the guest image build failed (exit ${code})`,
          'The last lines of the build log are below. Check that apt works on this host (`apt-get update`).',
          log.slice(-30).join('\n'),
        );
      }
      progress('computing checksums');
      const files: ImageManifest['files'] = {};
      for (const name of IMAGE_FILES) {
        const f = path.join(out, name);
        files[name] = { sha256: await sha256File(f), size: fs.statSync(f).size };
      }
      // The same checksums in sha256sum(1)'s format, for a release's users.
      fs.writeFileSync(path.join(out, 'SHA256SUMS'), sha256Sums(files));
      const manifest: ImageManifest = {
        // The hash the folder is named by (taken before the build began).
        recipeHash: path.basename(dir).slice(this.arch.length + 1),
        arch: this.arch,
        kernelRelease: fs.readFileSync(path.join(out, 'kernel-release'), 'utf8').trim(),
        builtAt: new Date().toISOString(),
        buildSeconds: Math.round((Date.now() - started) / 1000),
        files,
      };
      writeFileAtomic(path.join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n', 0o644);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.renameSync(out, dir);
      fs.rmSync(tmp, { recursive: true, force: true });
      const mib = (f: ImageFile) => `${f} ${((files[f]?.size ?? 0) / 1048576).toFixed(0)} MiB`;
      progress(`guest image ready in ${manifest.buildSeconds} s: ${IMAGE_FILES.map(mib).join(', ')}`);
      // Older recipes' images are dead weight now, except one a VM still
      // runs from: its engine needs it to reattach after a crash.
      const inUse = imagesInUse();
      // Stale next to the folder just built, not the recipe as it is now: a
      // recipe edited during a long build must not delete what was built.
      for (const old of this.staleImages(dir)) if (!inUse.has(old)) fs.rmSync(old, { recursive: true, force: true });
      return dir;
    } finally {
      release();
    }
  }

  /** One build at a time per cache; a lock left by a dead builder is taken over. */
  private async takeBuildLock(progress: ImageProgress): Promise<() => void> {
    const lock = path.join(this.imagesDir, '.build.lock');
    let told = false;
    for (;;) {
      try {
        fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
        return () => fs.rmSync(lock, { force: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = Number(fs.readFileSync(lock, 'utf8').trim());
      if (!pidAlive(holder)) {
        fs.rmSync(lock, { force: true });
        continue;
      }
      if (!told) progress(`waiting for another image build (pid ${holder})`);
      told = true;
      await sleep(1000);
    }
  }

  /**
   * Cached images of this architecture other than the current recipe's, for
   * `berth doctor`/cleanup. The other architecture's images are not stale:
   * a machine may keep both (the arm64 tests on an x86_64 host do).
   */
  staleImages(keep = this.expectedDir()): string[] {
    const current = path.basename(keep);
    try {
      return fs
        .readdirSync(this.imagesDir)
        .filter((n) => n.startsWith(`${this.arch}-`) && n !== current)
        .map((n) => path.join(this.imagesDir, n));
    } catch {
      return [];
    }
  }
}
