/**
 * The bench's guest release comparison (bench/release-compare.ts): which
 * commit's recipe is the previous release's (found from suite.txt's git
 * history), the recipe unpacked from git hashes as it did there, and the
 * table's cells.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { previousReleaseCommit, recipeAt, releaseRows, type ReleaseResult } from '../../bench/release-compare.js';
import type { ImageManifest } from '../../app/engine/image/image-store.js';
import { guestSuite, recipeHash } from '../../app/engine/image/recipe.js';
import type { StartSample } from '../../bench/starts.js';
import { shortTempDir } from '../helpers/temp.js';

function repo(dir: string) {
  const git = (...a: string[]) =>
    execFileSync('git', a, {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' },
    }).trim();
  git('init', '-q');
  const commit = (files: Record<string, string>, msg: string) => {
    for (const [f, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      fs.writeFileSync(path.join(dir, f), text);
    }
    git('add', '-A');
    git('commit', '-q', '-m', msg);
    return git('rev-parse', 'HEAD');
  };
  return { git, commit };
}

test('the previous release is the recipe just before suite.txt last changed to another release', () => {
  const t = shortTempDir('brel');
  try {
    const { commit } = repo(t.dir);
    commit({ 'vm-images/build.sh': 'old\n' }, 'a recipe without suite.txt');
    commit({ 'vm-images/suite.txt': '# the release\nbookworm\n' }, 'suite.txt');
    const last = commit({ 'vm-images/build.sh': 'newer\n' }, 'the last bookworm recipe');
    commit({ 'vm-images/suite.txt': '# the release\ntrixie\n' }, 'trixie');
    commit({ 'vm-images/suite.txt': '# the release, in a comment that changed\ntrixie\n' }, 'a comment');
    commit({ 'vm-images/build.sh': 'newest\n' }, 'later work');
    assert.deepEqual(previousReleaseCommit(t.dir), { rev: last, suite: 'bookworm' });
    const recipe = recipeAt(last, t.dir);
    try {
      assert.equal(fs.readFileSync(path.join(recipe, 'build.sh'), 'utf8'), 'newer\n');
      assert.equal(guestSuite(recipe), 'bookworm');
      assert.notEqual(recipeHash('x86_64', recipe), recipeHash('x86_64', path.join(t.dir, 'vm-images')));
    } finally {
      fs.rmSync(path.dirname(recipe), { recursive: true, force: true });
    }
  } finally {
    t.cleanup();
  }
});

test('the previous release: a history where the release never changed says so with a hint', () => {
  const t = shortTempDir('brel');
  try {
    const { commit } = repo(t.dir);
    commit({ 'vm-images/suite.txt': 'trixie\n' }, 'suite.txt');
    assert.throws(() => previousReleaseCommit(t.dir), /no commit .* another Debian release to trixie.*--baseline REV/);
  } finally {
    t.cleanup();
  }
});

const MiB = 1024 ** 2;
function release(
  label: string,
  o: { version: string; api: string; kernel: string; rootfs: number; first: number[]; floor: number[]; used?: number },
): ReleaseResult {
  const manifest: ImageManifest = {
    recipeHash: 'x',
    arch: 'x86_64',
    kernelRelease: o.kernel,
    builtAt: '2026-12-05T00:00:00.000Z',
    buildSeconds: 100,
    files: {
      vmlinuz: { sha256: '', size: 10 * MiB },
      'initrd.img': { sha256: '', size: 2 * MiB },
      'rootfs.squashfs': { sha256: '', size: o.rootfs * MiB },
      'efi.img': { sha256: '', size: 150 * MiB },
      'efi.vhdx': { sha256: '', size: 140 * MiB },
    },
  };
  const samples = o.first.map(
    (ms) => ({ firstDockerMs: ms, wallMs: ms - 100, t: {}, status: {}, server: { version: o.version, api: o.api } }) as unknown as StartSample,
  );
  return { label, suite: label, samples, floor: { samples: o.floor, kernel: 'k', kernelRelease: o.kernel }, manifest, guestUsedMiB: o.used };
}

test('release rows: both columns, the change against the previous, medians of the warm starts, no NaN', () => {
  const cur = release('Debian trixie', {
    version: '26.1.5+dfsg1',
    api: '1.45',
    kernel: '6.12.57+deb13-cloud-amd64',
    rootfs: 120,
    first: [30_000, 16_000, 18_000, 17_000],
    floor: [2500, 2400, 2600],
    used: 180,
  });
  const prev = release('Debian bookworm', {
    version: '20.10.24+dfsg1',
    api: '1.41',
    kernel: '6.1.0-57-cloud-amd64',
    rootfs: 100,
    first: [28_000, 20_000, 20_000, 21_000],
    floor: [2000, 2000, 2000],
  });
  const rows = releaseRows(cur, prev);
  const row = (first: string) => rows.find((r) => r.startsWith(`| ${first} |`));
  assert.equal(rows[0], '## Guest release: Debian trixie against Debian bookworm');
  assert.equal(row('Docker Engine (API)'), '| Docker Engine (API) | 26.1.5+dfsg1 (1.45) | 20.10.24+dfsg1 (1.41) |  |');
  assert.equal(row('`rootfs.squashfs`'), '| `rootfs.squashfs` | 120.0 MiB | 100.0 MiB | +20 % |');
  assert.equal(
    row('direct kernel boot image (vmlinuz + initrd + rootfs)'),
    '| direct kernel boot image (vmlinuz + initrd + rootfs) | 132.0 MiB | 112.0 MiB | +18 % |',
  );
  assert.equal(row('the floor (this kernel to userspace)'), '| the floor (this kernel to userspace) | 2.5 s | 2.0 s | +25 % |');
  assert.equal(
    row('**cold start: `berth start` → first `docker version`**'),
    '| **cold start: `berth start` → first `docker version`** | **17.0 s** | **20.0 s** | −15 % |',
  );
  assert.equal(row('cold start / its floor'), '| cold start / its floor | 6.8× | 10.0× |  |');
  assert.equal(row('guest memory in use after the start (free -m)'), '| guest memory in use after the start (free -m) | 180 MiB | n/a | n/a |');
  assert.ok(!rows.join('\n').includes('NaN'), rows.join('\n'));
});
