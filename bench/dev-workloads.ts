/**
 * What developers do on a shared folder (issue 18), timed inside a
 * container: unpack a node_modules-like tree and delete it, `git add -A &&
 * git commit` and `git status` on a 20,000-file repository, and a
 * read-heavy build (read 5,000 sources, write 500 outputs). The same script
 * runs in the same image on each place (the guest's own disk as a docker
 * volume, then each shared folder) and the steps are reported against the
 * guest disk.
 *
 * The image is made offline (no registry): busybox-static, the host's own
 * git (Debian's package) with the libraries ldd names, and the trees as
 * tarballs, so every place unpacks the same bytes. The container is
 * privileged only to drop the guest's caches between steps.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as tar from 'tar';
import { busyboxRootfsTar } from '../test/helpers/busybox-rootfs.js';
import { ms1, type RunResult } from './bench-kit.js';

export interface DevPlace {
  label: string;
  /** `-v` source: a guest path (a shared or synced folder) or a volume name. */
  mount: string;
}

export interface DevWorkloadRow {
  step: string;
  nativeMs: number;
  places: { label: string; ms: number; ratio: number }[];
}

export interface DevSizes {
  /** Packages in node_modules (50 files and one .bin link each). */
  packages: number;
  /** Files in the git repository. */
  repoFiles: number;
  /** Sources the build reads (the build writes a tenth as many, at most 500). */
  buildFiles: number;
}

export const DEV_SIZES: DevSizes = { packages: 400, repoFiles: 20_000, buildFiles: 5_000 };
export const DEV_QUICK: DevSizes = { packages: 40, repoFiles: 2_000, buildFiles: 1_000 };

/** Deterministic file contents of 200 B - 4 KiB (one in 50 of 64 KiB), like sources and packages. */
function body(i: number): string {
  const size = i % 50 === 49 ? 65536 : 200 + ((i * 7919) % 3900);
  const line = `// berth bench file ${i}: ${'x'.repeat(60)}\n`;
  return line.repeat(Math.ceil(size / line.length)).slice(0, size);
}

/** node_modules: `packages` packages of 50 files (package.json, index.js, lib/), each with a .bin link. */
export function makeNodeModules(root: string, packages: number): { files: number; links: number } {
  const nm = path.join(root, 'node_modules');
  fs.mkdirSync(path.join(nm, '.bin'), { recursive: true });
  let files = 0;
  for (let p = 0; p < packages; p++) {
    const dir = path.join(nm, `pkg-${p}`);
    fs.mkdirSync(path.join(dir, 'lib'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `pkg-${p}`, version: '1.0.0', main: 'index.js', bin: 'index.js' }) + '\n');
    fs.writeFileSync(path.join(dir, 'index.js'), body(p * 50));
    for (let f = 0; f < 48; f++) fs.writeFileSync(path.join(dir, 'lib', `m${f}.js`), body(p * 50 + f + 1));
    files += 50;
    fs.symlinkSync(`../pkg-${p}/index.js`, path.join(nm, '.bin', `pkg-${p}`));
  }
  return { files, links: packages };
}

/** `files` sources in folders of 100 under `root/src` (src/dN/fM). */
export function makeSources(root: string, files: number): void {
  for (let i = 0; i < files; i++) {
    const dir = path.join(root, 'src', `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `f${i % 100}`), body(i));
  }
}

/** The shared libraries and interpreter a dynamically linked program needs, from ldd's output. */
export function lddPaths(lddOutput: string): string[] {
  const out: string[] = [];
  for (const line of lddOutput.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

/** How many outputs the build writes: a tenth of its sources, at most 500. */
const buildOutputs = (buildFiles: number) => Math.min(500, Math.floor(buildFiles / 10));

/**
 * The build: output k concatenates src/d(k/10)/f(k%10)* (f3 and f30-f39),
 * so every source is read exactly once and `buildFiles / 10` outputs are
 * written. busybox sh.
 */
export function buildScript(buildFiles: number): string {
  const outputs = buildOutputs(buildFiles);
  return `mkdir -p out; k=0; while [ $k -lt ${outputs} ]; do cat src/d$((k / 10))/f$((k % 10))* > out/o$k; k=$((k+1)); done`;
}

/**
 * The steps as a busybox script: prints "<step> <ms>" each. In the
 * container the folder is /w, the tarballs are in /data and caches are
 * dropped between steps; the unit test runs it on the host with its own.
 */
export function devScript(sizes: DevSizes, at = { w: '/w', data: '/data', drop: 'sync; echo 3 > /proc/sys/vm/drop_caches' }): string {
  // The image's busybox date has no %N: now() is the guest's uptime in ms (10 ms steps).
  const t = (name: string, cmd: string) => `s=$(now); ${cmd}; e=$(now); echo "${name} $(( e - s ))"`;
  // No automatic gc or maintenance: after a 20,000-file commit git starts one in the background (over
  // gc.auto's 6,700 loose objects), which took CPU from the later steps and wrote into .git while the
  // clean-up removed it ("rm: can't remove '/w/dev/repo/.git': Directory not empty" ended a full run).
  const git = "git -c safe.directory='*' -c user.name=bench -c user.email=bench@berth.invalid -c core.fsmonitor=false -c gc.auto=0 -c maintenance.auto=false";
  return [
    'set -e',
    `drop() { ${at.drop}; }`,
    'now() { read u rest < /proc/uptime; echo $(( ${u%.*}${u#*.} * 10 )); }',
    `rm -rf '${at.w}/dev'; mkdir -p '${at.w}/dev'; cd '${at.w}/dev'`,
    t(`unpack node_modules (${sizes.packages * 50} files, ${sizes.packages} links)`, `tar xf '${at.data}/node_modules.tar'`),
    'drop',
    t('delete node_modules', 'rm -rf node_modules'),
    `mkdir repo; cd repo; tar xf '${at.data}/repo.tar'`,
    `${git} init -q --template=`,
    'drop',
    t(`git add -A && git commit (${sizes.repoFiles} files)`, `${git} add -A && ${git} commit -q -m init`),
    'drop',
    t('git status (clean tree, cold cache)', `${git} status --porcelain > /dev/null`),
    t('git status again (warm)', `${git} status --porcelain > /dev/null`),
    `cd '${at.w}/dev'; mkdir build; cd build; tar xf '${at.data}/build.tar'`,
    'drop',
    t(`build: read ${sizes.buildFiles} sources, write ${buildOutputs(sizes.buildFiles)} outputs`, buildScript(sizes.buildFiles)),
    `cd /; rm -rf '${at.w}/dev'`,
  ].join('\n');
}

export function parseSteps(out: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of out.split('\n')) {
    const hit = /^(.*) (\d+)$/.exec(line.trim());
    if (hit) m.set(hit[1]!, Number(hit[2]));
  }
  return m;
}

/** The three trees as tarballs in `dir`: node_modules.tar, repo.tar, build.tar. */
export function devTarballs(dir: string, sizes: DevSizes): string[] {
  const pack = (name: string, make: (d: string) => void, entries: string[]) => {
    const d = path.join(dir, name);
    fs.mkdirSync(d);
    make(d);
    tar.c({ file: path.join(dir, `${name}.tar`), cwd: d, sync: true, portable: true }, entries);
    fs.rmSync(d, { recursive: true, force: true });
    return `${name}.tar`;
  };
  return [
    pack('node_modules', (d) => makeNodeModules(d, sizes.packages), ['node_modules']),
    pack('repo', (d) => makeSources(d, sizes.repoFiles), ['src']),
    pack('build', (d) => makeSources(d, sizes.buildFiles), ['src']),
  ];
}

/** The image: busybox, git and its libraries, the three trees as tarballs. */
export function devImageTar(workDir: string, sizes: DevSizes): string {
  const trees = fs.mkdtempSync(path.join(workDir, 'dev-trees-'));
  const extra: Record<string, string> = {};
  for (const name of devTarballs(trees, sizes)) extra[`data/${name}`] = path.join(trees, name);
  const git = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
  extra['usr/bin/git'] = git;
  for (const lib of lddPaths(execFileSync('ldd', [git], { encoding: 'utf8' }))) extra[lib.slice(1)] = lib;
  const out = busyboxRootfsTar(workDir, undefined, extra);
  fs.rmSync(trees, { recursive: true, force: true });
  return out;
}

/** Run the steps on each place; the first place is the reference (the guest's own disk). */
export async function benchDevWorkloads(
  docker: (argv: string[]) => Promise<RunResult>,
  image: string,
  places: DevPlace[],
  sizes: DevSizes = DEV_SIZES,
  log: (m: string) => void = () => {},
): Promise<{ rows: DevWorkloadRow[]; failures: string[] }> {
  const results: Map<string, number>[] = [];
  const failures: string[] = [];
  for (const p of places) {
    log(`developer workloads on ${p.label}`);
    const r = await docker(['run', '--rm', '--privileged', '-e', 'HOME=/tmp', '-v', `${p.mount}:/w`, image, 'sh', '-c', devScript(sizes)]);
    // The guest's own disk is the reference: without it there is nothing to compare.
    if (r.code !== 0 && !results.length) throw new Error(`developer workloads on ${p.label} failed (${r.code}): ${r.stdout}\n${r.stderr}`);
    // A shared folder that fails a step is a result: the steps before it count, the rest show as failed.
    if (r.code !== 0) failures.push(`${p.label}: ${failureText(r.stderr)}`);
    results.push(parseSteps(r.stdout));
  }
  const [native, ...shared] = results;
  const rows = [...native!].map(([step, nativeMs]) => ({
    step,
    nativeMs,
    places: shared.map((m, i) => {
      const ms = m.get(step) ?? NaN;
      return { label: places[i + 1]!.label, ms, ratio: ms / Math.max(1, nativeMs) };
    }),
  }));
  return { rows, failures };
}

/** The last line of a failed run's errors, and why when it is a limit of this machine's. */
export function failureText(stderr: string, limits = readLimits()): string {
  const last = stderr.trim().split('\n').pop()?.trim() || 'no error text';
  if (!/Too many open files/.test(last)) return last;
  const hard = /^Max open files\s+\S+\s+(\S+)/m.exec(limits)?.[1];
  return `${last} (virtiofsd keeps an open file on the host for each file the guest holds in its cache; this machine lets a process open at most ${hard ?? 'an unknown number of'} files)`;
}

function readLimits(): string {
  try {
    return fs.readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return '';
  }
}

export function devWorkloadRows(rows: DevWorkloadRow[], why: string, failures: string[] = []): string[] {
  const cols = rows[0]?.places.map((p) => p.label) ?? [];
  return [
    '### Developer workloads',
    '',
    `Timed inside a container (busybox, and the host's own git with its libraries, made offline) with the folder mounted at /w: on a docker volume (the guest's own disk) and on each shared folder, in the same run, caches dropped before each step. ${why}`,
    '',
    `| workload | guest disk | ${cols.map((c) => `${c} | ratio`).join(' | ')} |`,
    `|---|---|${cols.map(() => '---|---|').join('')}`,
    ...rows.map(
      (r) =>
        `| ${r.step} | ${ms1(r.nativeMs)} | ${r.places.map((p) => (Number.isNaN(p.ms) ? 'failed | -' : `${ms1(p.ms)} | ${p.ratio.toFixed(2)}×`)).join(' | ')} |`,
    ),
    '',
    ...(failures.length ? [`Failed: ${failures.join('; ')}.`, ''] : []),
  ];
}
