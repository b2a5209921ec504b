/**
 * What the engine process holds and does at idle, measured (never asserted):
 *
 *   npm run build && node dist/bench/engine-idle.js [--vm none|fake|real]
 *     [--idle 30] [--window 10] [--runs 1] [--flags "--max-semi-space-size=1;--optimize-for-size"]
 *     [--compare DIR,...] [--detail] [--json FILE]
 *
 * Starts an engine in its own BERTH_HOME under /tmp (--vm none: no VM;
 * fake: the real daemon whose "VM" is a fake guest in a process of its own
 * (engine-idle/fake-engine-process.ts), with no shared folders; real: `berth start`, a real VM, so
 * not while the bench measures), waits --idle seconds, then reads its RSS
 * from /proc and counts its CPU ticks over --window seconds, as the bench's
 * "Idle" section does. The engine runs with engine-probe.ts loaded, which
 * reports process.memoryUsage and V8's heap spaces from inside. --flags
 * gives sets of node/V8 flags for the engine's command line (--vm real:
 * NODE_OPTIONS, which takes only some), to compare in one run: each --runs
 * round measures without any, then with each set. --compare DIR,... measures
 * the engines of other built checkouts first in each round (before/after a
 * change, in one run).
 *
 * --detail adds a second engine run whose probe also records which
 * callbacks woke the engine during the window (by where their timer or
 * socket was made), which scripts V8 parsed (by package) and the live heap
 * by allocating script. Those hooks cost memory and CPU of their own: that
 * run's numbers are for reading, the plain run's for comparing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { packageRoot } from '../app/base/package-root.js';
import { sleep, waitFor } from '../app/base/process-util.js';
import { fakeImageDir } from '../test/helpers/temp.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : def;
};
const VM = opt('--vm', 'fake');
if (!['none', 'fake', 'real'].includes(VM)) {
  process.stderr.write(`engine-idle: --vm takes none, fake or real (not ${JSON.stringify(VM)})\n`);
  process.exit(2);
}
const IDLE_S = Number(opt('--idle', '30'));
const WINDOW_S = Number(opt('--window', '10'));
const RUNS = Number(opt('--runs', '1'));
/** Node/V8 flag sets to compare with the plain engine, separated by ';'. */
const FLAG_SETS = opt('--flags', '')
  .split(';')
  .map((f) => f.trim())
  .filter(Boolean);
const DETAIL = args.includes('--detail');
const JSON_OUT = opt('--json', '');

/** --compare DIR[,DIR...]: other checkouts of Berth, built (their dist/ holds this bench's files too), measured in the same run. */
const COMPARE = opt('--compare', '').split(',').filter(Boolean);

/** Where an engine's code comes from: this checkout, or --compare's. */
interface Tree {
  bin: string;
  bench: string;
}
const treeAt = (root: string): Tree => ({ bin: path.join(root, 'bin', 'berth.js'), bench: path.join(root, 'dist', 'bench') });
const thisTree: Tree = { bin: path.join(packageRoot(), 'bin', 'berth.js'), bench: path.dirname(fileURLToPath(import.meta.url)) };

interface Report {
  proc: Record<string, number>;
  memoryUsage: NodeJS.MemoryUsage;
  heapSpaces: Record<string, { used: number; size: number }>;
  heap: { total_heap_size: number; used_heap_size: number; external_memory: number; malloced_memory: number };
  activeResources: string[];
  wakeups?: Record<string, number>;
  scripts?: Record<string, { files: number; chars: number }>;
  liveHeapByScript?: Record<string, number>;
}

interface Sample {
  label: string;
  rssKiB: number;
  cpuPct: number;
  report: Report;
}

function ticksOf(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  // utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
  return Number(rest[11]) + Number(rest[12]);
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** One engine, started as --vm says; returns its pid and how to stop it. */
async function startEngine(tree: Tree, home: string, env: NodeJS.ProcessEnv, flags: string[]): Promise<{ pid: number; stop: () => Promise<void> }> {
  const { bin } = tree;
  const berth = (...a: string[]) =>
    new Promise<number | null>((resolve) => {
      const c = spawn(process.execPath, [bin, ...a], { env: { ...env, NODE_OPTIONS: '' }, stdio: ['ignore', 'ignore', 'inherit'] });
      c.on('close', resolve);
    });
  const lockFile = path.join(home, 'default', 'engine.lock');
  const pidOf = () => Number(fs.readFileSync(lockFile, 'utf8').trim().split(/\s/)[0]);
  if (VM === 'real') {
    // `berth start` spawns the engine with this environment (and so the probe;
    // flags only as far as NODE_OPTIONS takes them).
    const withFlags = { ...env, NODE_OPTIONS: [env.NODE_OPTIONS, ...flags].join(' ') };
    const c = spawn(process.execPath, [bin, 'start'], { env: withFlags, stdio: ['ignore', 'ignore', 'inherit'] });
    const code = await new Promise<number | null>((r) => c.on('close', r));
    if (code !== 0) throw new Error(`berth start failed (${code})`);
    const pid = pidOf();
    return {
      pid,
      stop: async () => {
        await berth('stop');
      },
    };
  }
  let child: ChildProcess;
  if (VM === 'none') {
    child = spawn(process.execPath, [...flags, bin, 'daemon', '--instance', 'default'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  } else {
    child = spawn(process.execPath, [...flags, path.join(tree.bench, 'engine-idle', 'fake-engine-process.js')], {
      env,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
  const up = await waitFor(() => fs.existsSync(path.join(home, 'default', 'control.sock')), 20_000);
  if (!up) throw new Error('the engine did not open its control socket in 20 s');
  if (VM === 'fake') {
    const code = await berth('start');
    if (code !== 0) throw new Error(`berth start (fake VM) failed (${code})`);
  }
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  return {
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(15_000)]);
      child.kill('SIGKILL');
    },
  };
}

/** Ask the probe for a report and wait for it to land in the file. */
async function ask(pid: number, file: string): Promise<Report> {
  const before = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;
  process.kill(pid, 'SIGUSR2');
  let lines: string[] = [];
  await waitFor(() => {
    lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
    return lines.length > before;
  }, 20_000);
  if (lines.length <= before) throw new Error('the engine probe did not report');
  return JSON.parse(lines.at(-1)!) as Report;
}

async function measure(label: string, tree: Tree, flags: string, detail: boolean): Promise<Sample> {
  const home = fs.mkdtempSync('/tmp/bi-');
  const reportFile = path.join(home, 'probe.jsonl');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BERTH_HOME: home,
    DOCKER_CONFIG: path.join(home, '.docker'),
    NODE_OPTIONS: `--import=${pathToFileURL(path.join(tree.bench, 'engine-probe.js')).href}`,
    BERTH_ENGINE_PROBE: reportFile,
    BERTH_ENGINE_PROBE_WAKEUPS: detail ? '1' : '',
    BERTH_ENGINE_PROBE_SCRIPTS: detail ? '1' : '',
    BERTH_ENGINE_PROBE_HEAP: detail ? '1' : '',
  };
  if (VM === 'fake') {
    env.BERTH_CACHE = path.join(home, 'cache');
    env.BERTH_IMAGE_DIR = fakeImageDir(path.join(home, 'img'));
    env.BERTH_ACCEL = 'tcg';
    // No shared folders: the fake guest has no sshfs to mount them with.
    fs.mkdirSync(path.join(home, 'default'), { mode: 0o700 });
    fs.writeFileSync(path.join(home, 'default', 'settings.json'), JSON.stringify({ shares: [] }), { mode: 0o600 });
  }
  process.stderr.write(`engine-idle: ${label}: starting the engine (--vm ${VM}) in ${home}\n`);
  const e = await startEngine(tree, home, env, flags.split(/\s+/).filter(Boolean));
  try {
    await sleep(IDLE_S * 1000);
    // RSS as the bench reads it, before the probe does anything; the first
    // report starts the window (and empties the wakeup counts).
    const rss = rssKiB(e.pid);
    await ask(e.pid, reportFile);
    const t0 = ticksOf(e.pid);
    await sleep(WINDOW_S * 1000);
    const ticks = ticksOf(e.pid) - t0;
    const report = await ask(e.pid, reportFile);
    return { label, rssKiB: rss, cpuPct: (ticks / 100 / WINDOW_S) * 100, report };
  } finally {
    await e.stop();
    fs.rmSync(home, { recursive: true, force: true });
  }
}

const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
const kmib = (k: number) => `${(k / 1024).toFixed(1)} MiB`;

function table(samples: Sample[]): string {
  const rows = [
    ['what', ...samples.map((s) => s.label)],
    ['RSS (/proc, before the window)', ...samples.map((s) => kmib(s.rssKiB))],
    ['  anonymous', ...samples.map((s) => kmib(s.report.proc.RssAnon ?? NaN))],
    ['  file-backed (node binary, libraries)', ...samples.map((s) => kmib(s.report.proc.RssFile ?? NaN))],
    ['  shared memory', ...samples.map((s) => kmib(s.report.proc.RssShmem ?? NaN))],
    ['peak RSS (VmHWM)', ...samples.map((s) => kmib(s.report.proc.VmHWM ?? NaN))],
    [`CPU over ${WINDOW_S} s (of one core)`, ...samples.map((s) => `${s.cpuPct.toFixed(2)} %`)],
    ['V8 heap used / total', ...samples.map((s) => `${mib(s.report.memoryUsage.heapUsed)} / ${mib(s.report.memoryUsage.heapTotal)}`)],
    ['external (of which ArrayBuffers)', ...samples.map((s) => `${mib(s.report.memoryUsage.external)} (${mib(s.report.memoryUsage.arrayBuffers)})`)],
    ['malloced by V8', ...samples.map((s) => mib(s.report.heap.malloced_memory))],
  ];
  const spaces = Object.keys(samples[0]!.report.heapSpaces);
  for (const sp of spaces)
    rows.push([`  ${sp} used / size`, ...samples.map((s) => `${mib(s.report.heapSpaces[sp]?.used ?? 0)} / ${mib(s.report.heapSpaces[sp]?.size ?? 0)}`)]);
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ')).join('\n');
}

function detailText(s: Sample): string {
  const r = s.report;
  const out: string[] = [`--- detail (${s.label}; hooks on: CPU ${s.cpuPct.toFixed(2)} %, RSS ${kmib(s.rssKiB)}) ---`];
  out.push(`active resources: ${JSON.stringify(r.activeResources)}`);
  out.push(`callbacks during the ${WINDOW_S} s window, by where their resource was made:`);
  for (const [site, n] of Object.entries(r.wakeups ?? {})) out.push(`  ${String(n).padStart(5)}  ${site}`);
  out.push('scripts parsed, by package or file (chars of source):');
  const scripts = Object.entries(r.scripts ?? {});
  const total = scripts.reduce((a, [, v]) => a + v.chars, 0);
  out.push(`  total ${(total / 1024).toFixed(0)} KiB in ${scripts.reduce((a, [, v]) => a + v.files, 0)} files`);
  const byTop = new Map<string, { files: number; chars: number }>();
  for (const [k, v] of scripts) {
    const top = k.startsWith('app/') ? k.split('/').slice(0, 3).join('/') : k;
    const e = byTop.get(top) ?? { files: 0, chars: 0 };
    e.files += v.files;
    e.chars += v.chars;
    byTop.set(top, e);
  }
  for (const [k, v] of [...byTop].sort((a, b) => b[1].chars - a[1].chars).slice(0, 40)) {
    out.push(`  ${String((v.chars / 1024).toFixed(0)).padStart(6)} KiB  ${String(v.files).padStart(3)} files  ${k}`);
  }
  out.push('live heap by allocating script (sampled):');
  for (const [k, v] of Object.entries(r.liveHeapByScript ?? {}).slice(0, 30)) out.push(`  ${mib(v).padStart(10)}  ${k}`);
  return out.join('\n');
}

async function main(): Promise<void> {
  const samples: Sample[] = [];
  for (let i = 0; i < RUNS; i++) {
    const n = RUNS > 1 ? ` #${i + 1}` : '';
    for (const dir of COMPARE) samples.push(await measure(`${path.basename(dir)}${n}`, treeAt(dir), '', false));
    samples.push(await measure(`this tree${n}`, thisTree, '', false));
    for (const f of FLAG_SETS) samples.push(await measure(`${f}${n}`, thisTree, f, false));
  }
  if (samples.length) process.stdout.write(`engine idle, --vm ${VM}, after ${IDLE_S} s idle, node ${process.version}\n\n${table(samples)}\n`);
  let detail: Sample | undefined;
  if (DETAIL) {
    detail = await measure('detail', thisTree, '', true);
    process.stdout.write('\n' + detailText(detail) + '\n');
  }
  if (JSON_OUT) fs.writeFileSync(JSON_OUT, JSON.stringify({ vm: VM, idleS: IDLE_S, windowS: WINDOW_S, samples, detail }, null, 1));
}

main().catch((err) => {
  process.stderr.write(`engine-idle: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
