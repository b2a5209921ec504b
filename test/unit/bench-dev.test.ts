/**
 * The bench's developer workloads (bench/dev-workloads.ts): the trees it
 * unpacks, the libraries it copies for git, and that its build reads every
 * source exactly once (run here with the busybox sh the image gets).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import {
  benchDevWorkloads,
  buildScript,
  devScript,
  devTarballs,
  devWorkloadRows,
  failureText,
  lddPaths,
  makeNodeModules,
  makeSources,
  parseSteps,
} from '../../bench/dev-workloads.js';
import type { RunResult } from '../../bench/bench-kit.js';
import { busyboxProblem } from '../helpers/busybox-rootfs.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('bdev');
after(() => t.cleanup());

function count(dir: string): { files: number; links: number } {
  let files = 0;
  let links = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isSymbolicLink()) links++;
    else if (e.isFile()) files++;
  }
  return { files, links };
}

test('node_modules: 50 files a package and a .bin link each, every link resolving', () => {
  const root = path.join(t.dir, 'nm');
  assert.deepEqual(makeNodeModules(root, 7), { files: 350, links: 7 });
  assert.deepEqual(count(path.join(root, 'node_modules')), { files: 350, links: 7 });
  assert.ok(fs.statSync(path.join(root, 'node_modules', '.bin', 'pkg-6')).isFile());
});

test("ldd's output: the libraries by path and the interpreter, not the vdso", () => {
  const out = [
    '\tlinux-vdso.so.1 (0x00007ffd)',
    '\tlibpcre2-8.so.0 => /lib/x86_64-linux-gnu/libpcre2-8.so.0 (0x00007f6e)',
    '\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f6e)',
    '\t/lib64/ld-linux-x86-64.so.2 (0x00007f6e)',
  ].join('\n');
  assert.deepEqual(lddPaths(out), ['/lib/x86_64-linux-gnu/libpcre2-8.so.0', '/lib/x86_64-linux-gnu/libz.so.1', '/lib64/ld-linux-x86-64.so.2']);
});

test('the build reads every source exactly once and writes a tenth as many outputs', () => {
  const problem = busyboxProblem();
  assert.equal(problem, undefined, `the bench image needs busybox-static: ${problem}`);
  const root = path.join(t.dir, 'build');
  makeSources(root, 1000);
  execFileSync('/bin/busybox', ['sh', '-c', buildScript(1000)], { cwd: root });
  const outputs = fs.readdirSync(path.join(root, 'out'));
  assert.equal(outputs.length, 100);
  const read = outputs.reduce((n, o) => n + fs.statSync(path.join(root, 'out', o)).size, 0);
  const sources = count(path.join(root, 'src')).files;
  assert.equal(sources, 1000);
  const bytes = fs.readdirSync(path.join(root, 'src'), { recursive: true }).reduce((n, f) => {
    const p = path.join(root, 'src', String(f));
    return n + (fs.statSync(p).isFile() ? fs.statSync(p).size : 0);
  }, 0);
  assert.equal(read, bytes, 'the outputs hold every source byte once');
});

test("the whole script under the image's busybox sh, with the host's git: every step timed", () => {
  const sizes = { packages: 3, repoFiles: 120, buildFiles: 200 };
  const data = path.join(t.dir, 'data');
  const w = path.join(t.dir, 'w');
  fs.mkdirSync(data);
  fs.mkdirSync(w);
  assert.deepEqual(devTarballs(data, sizes), ['node_modules.tar', 'repo.tar', 'build.tar']);
  // A global gc.auto of 1 makes every commit start git's automatic gc, unless the script's git turns it off.
  const gitConfig = path.join(t.dir, 'gitconfig');
  fs.writeFileSync(gitConfig, '[gc]\n\tauto = 1\n');
  const trace = path.join(t.dir, 'git-trace');
  const out = execFileSync('/bin/busybox', ['sh', '-c', devScript(sizes, { w, data, drop: 'sync' })], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: t.dir, GIT_CONFIG_GLOBAL: gitConfig, GIT_TRACE: trace },
  });
  assert.doesNotMatch(fs.readFileSync(trace, 'utf8'), /maintenance run|gc --auto/, 'no automatic gc in the background during the steps or the clean-up');
  const steps = parseSteps(out);
  assert.deepEqual(
    [...steps.keys()],
    [
      'unpack node_modules (150 files, 3 links)',
      'delete node_modules',
      'git add -A && git commit (120 files)',
      'git status (clean tree, cold cache)',
      'git status again (warm)',
      'build: read 200 sources, write 20 outputs',
    ],
  );
  for (const [step, ms] of steps) assert.ok(Number.isInteger(ms) && ms >= 0, `${step}: ${ms}`);
  assert.ok(!fs.existsSync(path.join(w, 'dev')), 'the script cleans up after itself');
});

test('a shared folder that fails a step is a result: earlier steps count, the rest show failed, with why; the guest disk failing stops the bench', async () => {
  const answers: Record<string, RunResult> = {
    'bench-dev': { code: 0, stdout: 'unpack 100\ndelete 50\n', stderr: '', ms: 1 },
    '/share': { code: 1, stdout: '', stderr: "tar: can't open 'node_modules/pkg-83/lib/m47.js': Too many open files\n", ms: 1 },
    '/synced': { code: 0, stdout: 'unpack 300\ndelete 25\n', stderr: '', ms: 1 },
  };
  const docker = async (argv: string[]) => answers[argv[argv.indexOf('-v') + 1]!.replace(/:\/w$/, '')]!;
  const places = [
    { label: 'guest disk', mount: 'bench-dev' },
    { label: 'virtiofs', mount: '/share' },
    { label: 'synced folder', mount: '/synced' },
  ];
  const { rows, failures } = await benchDevWorkloads(docker, 'img', places);
  assert.equal(rows[0]!.places[1]!.ratio, 3);
  assert.ok(Number.isNaN(rows[0]!.places[0]!.ms));
  const table = devWorkloadRows(rows, '', failures).join('\n');
  assert.match(table, /\| unpack \| 100\.0 ms \| failed \| - \| 300\.0 ms \| 3\.00× \|/);
  assert.match(
    table,
    /Failed: virtiofs: tar: can't open .* Too many open files \(virtiofsd keeps an open file on the host for each file the guest holds in its cache; this machine lets a process open at most \d+ files\)\./,
  );
  assert.equal(failureText('x\nboom\n', ''), 'boom');
  assert.match(failureText('Too many open files', 'Max open files            1024                 4096                 files\n'), /at most 4096 files/);
  answers['bench-dev'] = { code: 1, stdout: '', stderr: 'no space', ms: 1 };
  await assert.rejects(benchDevWorkloads(docker, 'img', places), /developer workloads on guest disk failed/);
});
