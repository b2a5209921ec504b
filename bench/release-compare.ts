/**
 * The guest release against the one before it (issue 17): the image of the
 * recipe as it was before vm-images/suite.txt last named another Debian
 * release, built from git into a cache of its own, then started by the same
 * engine (BERTH_IMAGE_DIR) in a second instance, the same number of times,
 * with its own floor. Measured in the same run as the current release, on
 * the same machine, with the VM of the other stopped.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cacheDir } from '../app/base/paths.js';
import { packageRoot } from '../app/base/package-root.js';
import type { ImageManifest } from '../app/engine/image/image-store.js';
import { ImageStore } from '../app/engine/image/image-store.js';
import { configuredGuestArch, guestSuite } from '../app/engine/image/recipe.js';
import type { FloorResult } from './boot-timeline.js';
import { benchKit, median, must, s1 } from './bench-kit.js';
import { startRuns, type StartSample } from './starts.js';

const git = (root: string, ...a: string[]) => execFileSync('git', a, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 }).trim();

/** A suite.txt's one name (see guestSuite), from its text. */
function suiteOf(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.replace(/#.*$/, '').trim())
      .find(Boolean) ?? '?'
  );
}

/**
 * The commit whose recipe is the previous release's: the parent of the
 * newest commit that changed vm-images/suite.txt away from another name.
 * Throws with a hint when the history is not there (a shallow clone).
 */
export function previousReleaseCommit(root = packageRoot()): { rev: string; suite: string } {
  const current = guestSuite(path.join(root, 'vm-images'));
  let log: string[];
  try {
    log = git(root, 'log', '--format=%H', '--', 'vm-images/suite.txt').split('\n').filter(Boolean);
  } catch (err) {
    throw new Error(`cannot read the git history of vm-images/suite.txt (${(err as Error).message.split('\n')[0]}); run the bench in a git clone`);
  }
  for (const c of log) {
    let before: string;
    try {
      before = suiteOf(git(root, 'show', `${c}^:vm-images/suite.txt`));
    } catch {
      continue; // the commit that added suite.txt, or a shallow clone's edge
    }
    if (before !== current) return { rev: git(root, 'rev-parse', `${c}^`), suite: before };
  }
  throw new Error(
    `no commit in this clone's history changed the guest from another Debian release to ${current}; a shallow clone lacks it (git fetch --unshallow), or pass --baseline REV`,
  );
}

/** The recipe at `rev`, unpacked into a new folder (its vm-images). */
export function recipeAt(rev: string, root = packageRoot()): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-recipe-'));
  const tar = execFileSync('git', ['archive', '--format=tar', rev, 'vm-images'], { cwd: root, maxBuffer: 64 << 20 });
  execFileSync('tar', ['-x', '-C', dir], { input: tar });
  return path.join(dir, 'vm-images');
}

export interface ReleaseResult {
  label: string;
  suite: string;
  samples: StartSample[];
  floor: FloorResult;
  manifest: ImageManifest;
  /** `free -m`'s used MiB in the guest after the last start. */
  guestUsedMiB: number | undefined;
}

const manifestOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as ImageManifest;

/** The guest's used memory after a start, from `free -m` over berth shell. */
export async function guestUsedMiB(berth: (...a: string[]) => Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>) {
  const r = await berth('shell', '--', 'free', '-m');
  const m = /Mem:\s+\d+\s+(\d+)/.exec(r.stdout);
  return m ? Number(m[1]) : undefined;
}

/**
 * The previous release measured: its image built (once; cached under the
 * cache's bench-baseline/), `runs` starts of a new instance from it and its
 * floor. The caller's VM must be stopped.
 */
export async function measurePreviousRelease(runs: number, log: (m: string) => void, rev?: string): Promise<ReleaseResult> {
  const base = rev ? { rev: git(packageRoot(), 'rev-parse', rev), suite: '' } : previousReleaseCommit();
  const recipe = recipeAt(base.rev);
  const suite = guestSuite(recipe);
  log(`the previous release: Debian ${suite}, the recipe at ${base.rev.slice(0, 12)}`);
  const store = new ImageStore(path.join(cacheDir(), 'bench-baseline'), configuredGuestArch(), {}, recipe);
  const image = await store.ensure({ build: true, progress: (m) => log(`baseline image: ${m}`) });
  fs.rmSync(path.dirname(recipe), { recursive: true, force: true });
  const kit = benchKit({ BERTH_IMAGE_DIR: image.dir });
  try {
    await must(kit.berth('settings', 'set', 'idleMinutes=0'), 'berth settings set idleMinutes=0');
    const { samples, floor } = await startRuns(runs, kit);
    const used = await guestUsedMiB(kit.berth);
    await must(kit.berth('stop'), 'berth stop');
    return { label: `Debian ${suite}`, suite, samples, floor, manifest: manifestOf(image.dir), guestUsedMiB: used };
  } catch (err) {
    await kit.berth('stop', '--force').catch(() => undefined);
    throw err;
  } finally {
    fs.rmSync(kit.home, { recursive: true, force: true });
  }
}

/** The current release's result from the run's own starts (`imageDir`: the image they booted). */
export function currentRelease(samples: StartSample[], floor: FloorResult, guestUsed: number | undefined): ReleaseResult {
  const dir = samples[0]!.status.image?.dir;
  if (!dir) throw new Error('the status names no guest image');
  const suite = guestSuite();
  return { label: `Debian ${suite}`, suite, samples, floor, manifest: manifestOf(dir), guestUsedMiB: guestUsed };
}

const mib = (b: number | undefined) => (b === undefined ? 'n/a' : `${(b / 1024 ** 2).toFixed(1)} MiB`);
const directBytes = (m: ImageManifest) => (['vmlinuz', 'initrd.img', 'rootfs.squashfs'] as const).reduce((s, f) => s + (m.files[f]?.size ?? NaN), 0);

/** The section: one column a release, the current one first, and the current's change against the previous. */
export function releaseRows(cur: ReleaseResult, prev: ReleaseResult): string[] {
  const warm = (r: ReleaseResult) => r.samples.slice(1);
  const first = (r: ReleaseResult) => median(warm(r).map((s) => s.firstDockerMs));
  const floor = (r: ReleaseResult) => median(r.floor.samples);
  const change = (a: number, b: number) =>
    Number.isFinite(a) && Number.isFinite(b) && b ? `${a >= b ? '+' : '−'}${Math.abs(((a - b) / b) * 100).toFixed(0)} %` : 'n/a';
  const row = (what: string, f: (r: ReleaseResult) => string, delta?: (r: ReleaseResult) => number) =>
    `| ${what} | ${f(cur)} | ${f(prev)} | ${delta ? change(delta(cur), delta(prev)) : ''} |`;
  const server = (r: ReleaseResult) => r.samples.at(-1)!.server;
  return [
    `## Guest release: ${cur.label} against ${prev.label}`,
    '',
    `The current recipe's image and the previous release's (the recipe before vm-images/suite.txt last changed, built from git), each started by this engine in an instance of its own: a new instance, then ${warm(cur).length} warm starts, medians of the warm ones; each with its own floor (its kernel, a trivial initramfs). Measured one after the other in this run, the other VM stopped.`,
    '',
    `| | ${cur.label} | ${prev.label} | change |`,
    '|---|---|---|---|',
    row('Docker Engine (API)', (r) => `${server(r).version} (${server(r).api})`),
    row('kernel release', (r) => r.manifest.kernelRelease),
    row(
      'direct kernel boot image (vmlinuz + initrd + rootfs)',
      (r) => mib(directBytes(r.manifest)),
      (r) => directBytes(r.manifest),
    ),
    row(
      '`rootfs.squashfs`',
      (r) => mib(r.manifest.files['rootfs.squashfs']?.size),
      (r) => r.manifest.files['rootfs.squashfs']?.size ?? NaN,
    ),
    row(
      '`efi.vhdx`',
      (r) => mib(r.manifest.files['efi.vhdx']?.size),
      (r) => r.manifest.files['efi.vhdx']?.size ?? NaN,
    ),
    row('the floor (this kernel to userspace)', (r) => s1(floor(r)), floor),
    row('**cold start: `berth start` → first `docker version`**', (r) => `**${s1(first(r))}**`, first),
    row('cold start / its floor', (r) => `${(first(r) / floor(r)).toFixed(1)}×`),
    row(
      'guest memory in use after the start (free -m)',
      (r) => (r.guestUsedMiB === undefined ? 'n/a' : `${r.guestUsedMiB} MiB`),
      (r) => r.guestUsedMiB ?? NaN,
    ),
    '',
  ];
}
