/**
 * Sync mode's own cost, without a VM: the "guest" is this machine behind a
 * real ssh2 exec channel (test/helpers/exec-guest.ts), so the Perl agent,
 * GNU tar and the engine's cycles run for real at native speed. Next to the
 * VM rows it shows how much of a sync's time is the emulated guest's CPU.
 *
 * Measured in one run, on one session:
 * - the first copy of a folder (`berth sync add`);
 * - a burst of files written on the host while syncing, until every one is
 *   in the guest copy, next to GNU tar copying the same tree over the same
 *   ssh link into the same "guest" (issue 18's target: within 2× of tar);
 * - single edits: a host write until the new content is in the guest copy,
 *   and a guest write until it is on the host (p50/p95; target p95 100 ms).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { GuestSession } from '../app/engine/guest/session.js';
import { silentLogger } from '../app/base/log.js';
import { waitFor } from '../app/base/process-util.js';
import { syncId } from '../app/engine/settings/sync-paths.js';
import { SyncSession } from '../app/engine/share/sync-session.js';
import { sh } from '../app/base/shell-quote.js';
import { startExecGuest } from '../test/helpers/exec-guest.js';

export interface SyncLocalOptions {
  /** Files in the folder at `berth sync add`. */
  files?: number;
  /** Files in the burst written on the host while syncing. */
  burst?: number;
  /** Single edits timed each way. */
  edits?: number;
}

export interface SyncLocalResult {
  files: number;
  /** `berth sync add` of a folder holding `files` small files, to the first copy done. */
  initialMs: number;
  burst: number;
  /** Writing the burst's files on the host. */
  burstWriteMs: number;
  /** From the burst's first write until all its files are in the guest copy. */
  burstMs: number;
  /** GNU tar copying the same tree over the same ssh link into the same guest. */
  tarMs: number;
  edits: number;
  /** Host write -> the new content in the guest copy. */
  toGuest: { p50: number; p95: number; max: number };
  /** Guest write -> the new content on the host. */
  toHost: { p50: number; p95: number; max: number };
}

function writeFiles(root: string, sub: string, n: number): void {
  for (let i = 0; i < n; i++) {
    const d = path.join(root, sub, `d${i % 50}`);
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, `f${i}.txt`), 'x'.repeat(100));
  }
}

function countFiles(dir: string): number {
  let n = 0;
  try {
    for (const d of fs.readdirSync(dir)) n += fs.readdirSync(path.join(dir, d)).length;
  } catch {
    /* not there yet */
  }
  return n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const readOr = (file: string) => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
};

/** Write `content` to `from`, and time until `to` holds it (polled every millisecond). */
async function editLatency(from: string, to: string, content: string): Promise<number> {
  const t0 = performance.now();
  fs.writeFileSync(from, content);
  const deadline = t0 + 30_000;
  while (readOr(to) !== content) {
    if (performance.now() > deadline) throw new Error(`an edit of ${from} did not reach ${to} within 30 s`);
    await sleep(1);
  }
  return performance.now() - t0;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const stats = (xs: number[]) => ({ p50: pct(xs, 50), p95: pct(xs, 95), max: Math.max(...xs) });

/** GNU tar on this machine into GNU tar in the "guest", over an exec channel of `gs`. */
async function tarCopy(gs: GuestSession, cwd: string, sub: string, dest: string): Promise<number> {
  const t0 = performance.now();
  const ch = await gs.openExec(sh`mkdir -p ${dest} && cd ${dest} && exec tar -x -f - --no-same-owner`);
  const tar = spawn('tar', ['-c', '-f', '-', sub], { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
  ch.resume(); // nothing to read, but the channel only closes once its output is consumed
  ch.stderr.resume();
  tar.stdout.pipe(ch);
  const code = await new Promise<number | null>((resolve, reject) => {
    let c: number | null = null;
    ch.on('exit', (x: number | null) => (c = x));
    ch.on('close', () => resolve(c));
    ch.on('error', reject);
    tar.on('error', reject);
  });
  if (code !== 0) throw new Error(`tar into the guest failed (exit ${code})`);
  return performance.now() - t0;
}

export async function benchSyncLocal(o: SyncLocalOptions = {}): Promise<SyncLocalResult> {
  const files = o.files ?? 5000;
  const burst = o.burst ?? 20_000;
  const edits = o.edits ?? 200;
  const t = fs.mkdtempSync(path.join(os.tmpdir(), 'bsl-'));
  const host = path.join(t, 'host');
  const guestRoot = path.join(t, 'guest');
  writeFiles(host, 'a', files);
  const client = ssh2.utils.generateKeyPairSync('ed25519');
  const hostKey = ssh2.utils.generateKeyPairSync('ed25519');
  const guest = await startExecGuest({ hostPrivateKey: hostKey.private, clientPublicKey: client.public });
  const gs = new GuestSession({
    host: '127.0.0.1',
    port: guest.port,
    privateKey: client.private,
    hostPublicKey: hostKey.public,
    log: silentLogger(),
    vmAlive: () => true,
  });
  const sync = new SyncSession({
    hostPath: host,
    guestPath: () => host,
    shareMounted: () => false,
    session: gs,
    log: silentLogger(),
    stateDir: path.join(t, 'state'),
    guestRoot,
  });
  const copy = (...p: string[]) => path.join(guestRoot, syncId(host), 'tree', ...p);
  try {
    await gs.connect(5000);
    let t0 = performance.now();
    await sync.start();
    const initialMs = performance.now() - t0;

    t0 = performance.now();
    writeFiles(host, 'b', burst);
    const burstWriteMs = performance.now() - t0;
    if (!(await waitFor(() => countFiles(copy('b')) >= burst, 600_000, 20))) throw new Error('the burst did not reach the copy within 10 minutes');
    const burstMs = performance.now() - t0;
    const tarMs = await tarCopy(gs, host, 'b', path.join(t, 'tar-guest'));
    fs.rmSync(path.join(t, 'tar-guest'), { recursive: true, force: true });
    await sleep(500);

    const toGuest: number[] = [];
    const toHost: number[] = [];
    fs.writeFileSync(path.join(host, 'edit.txt'), 'start');
    fs.writeFileSync(copy('guest-edit.txt'), 'start');
    if (!(await waitFor(() => readOr(copy('edit.txt')) === 'start' && readOr(path.join(host, 'guest-edit.txt')) === 'start', 30_000, 5)))
      throw new Error('the edit files did not sync');
    for (let i = 0; i < edits; i++) {
      toGuest.push(await editLatency(path.join(host, 'edit.txt'), copy('edit.txt'), `host edit ${i}`));
      await sleep(10);
    }
    for (let i = 0; i < edits; i++) {
      toHost.push(await editLatency(copy('guest-edit.txt'), path.join(host, 'guest-edit.txt'), `guest edit ${i}`));
      await sleep(10);
    }
    return { files, initialMs, burst, burstWriteMs, burstMs, tarMs, edits, toGuest: stats(toGuest), toHost: stats(toHost) };
  } finally {
    await sync.stop();
    gs.close();
    await guest.close();
    fs.rmSync(t, { recursive: true, force: true });
  }
}

/** The bench's rows for these results (bench/run.ts). */
export function syncLocalRows(r: SyncLocalResult): string[] {
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const ms = (x: number) => `${x.toFixed(0)} ms`;
  return [
    'Sync mode alone, without a VM (this machine behind a real ssh channel plays the guest: the same Perl agent, tar and cycles at native speed):',
    '',
    '| what | time |',
    '|---|---|',
    `| \`berth sync add\` of a folder with ${r.files.toLocaleString('en')} small files, first copy done | ${s(r.initialMs)} |`,
    `| a burst of ${r.burst.toLocaleString('en')} files written on the host (writing took ${s(r.burstWriteMs)}), all in the guest copy | ${s(r.burstMs)} |`,
    `| GNU tar copying the same ${r.burst.toLocaleString('en')} files over the same ssh link | ${s(r.tarMs)} |`,
    `| burst ÷ tar (target ≤ 2×) | ${(r.burstMs / r.tarMs).toFixed(2)}× |`,
    `| one host edit → new content in the guest copy, p50 / p95 / max over ${r.edits} | ${ms(r.toGuest.p50)} / ${ms(r.toGuest.p95)} / ${ms(r.toGuest.max)} |`,
    `| one guest edit → new content on the host, p50 / p95 / max over ${r.edits} | ${ms(r.toHost.p50)} / ${ms(r.toHost.p95)} / ${ms(r.toHost.max)} |`,
    '',
  ];
}

/** `node --import tsx bench/sync-local.ts [--quick]`: these rows alone, to stdout (results files are written by bench/run.ts only). */
if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  const r = await benchSyncLocal(quick ? { files: 1000, burst: 2000, edits: 50 } : {});
  console.log(JSON.stringify(r));
  console.log(syncLocalRows(r).join('\n'));
}
