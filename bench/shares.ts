/**
 * File sharing numbers for `npm run bench`: the same workloads in the VM on
 * shared host folders (one per available mechanism: virtiofs, reverse
 * sshfs), on a synced folder (sync mode: the guest copy on the guest's
 * disk) and on the guest's own disk, in one run, timed inside the guest so
 * the ssh round trip of the command itself does not count. For sync mode,
 * how long the sync takes to bring a burst of changes to the other side is
 * measured too.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface ShareBenchRow {
  op: string;
  nativeMs: number;
  /** One per shared folder measured, in the order given. */
  shared: { label: string; ms: number; ratio: number }[];
  /** Sync mode (when measured): the same workload on the synced folder. */
  syncMs?: number;
  syncRatio?: number;
}

/** How long sync mode takes to carry a burst of changes across (or, with `ratio`, one time against another). */
export interface SyncSettleRow {
  what: string;
  ms: number;
  ratio?: number;
}

/** A synced folder (at the same path on host and guest), how to follow it, and the tar to compare with. */
export interface SyncedTarget {
  dir: string;
  /** Files under `dir` in the guest (find -type f | wc -l): a look in the guest, made once after the timing. */
  guestFiles: (sub: string) => Promise<number>;
  /** Entries (files, folders, links) the engine has recorded as landed on both sides: asked on the host, costs the guest nothing. */
  landed: () => Promise<number>;
  /** No cycle runs (the sync's state is watching). */
  idle: () => Promise<boolean>;
  /** GNU tar copying a host folder into a new folder in the guest over ssh; its time and, for reference, the time to open the session alone. */
  tarCopy: (hostDir: string) => Promise<{ ms: number; sessionMs: number }>;
}

export interface ShareBenchOptions {
  smallFiles?: number;
  bigMiB?: number;
  treeFiles?: number;
}

type Shell = (script: string) => Promise<{ code: number | null; stdout: string; stderr: string }>;

/** One workload as guest shell: prints "<name> <milliseconds>" per step. */
function workload(dir: string, o: Required<ShareBenchOptions>): string {
  const t = (name: string, body: string) => `s=$(date +%s%N); ${body}; e=$(date +%s%N); echo "${name} $(( (e - s) / 1000000 ))"`;
  return [
    'set -e',
    `mkdir -p '${dir}' && cd '${dir}'`,
    'rm -rf small big tree; mkdir small tree',
    t('create+write small files', `i=0; while [ $i -lt ${o.smallFiles} ]; do echo "berth bench $i" > small/f$i; i=$((i+1)); done`),
    'sync; echo 3 > /proc/sys/vm/drop_caches',
    t('read them back', 'cat small/* > /dev/null'),
    t('stat them all', "find small -type f -printf '%s\\n' > /dev/null"),
    t(`${o.bigMiB} MiB sequential write`, `dd if=/dev/zero of=big bs=1M count=${o.bigMiB} conv=fsync 2>/dev/null`),
    'echo 3 > /proc/sys/vm/drop_caches',
    t(`${o.bigMiB} MiB sequential read`, 'dd if=big of=/dev/null bs=1M 2>/dev/null'),
  ].join('\n');
}

/** A tree of `files` files (10 x 10 folders) for the walk; made on the side that is fastest. */
function makeTreeLocal(root: string, files: number): void {
  const per = Math.ceil(files / 100);
  for (let a = 0; a < 10; a++) {
    for (let b = 0; b < 10; b++) {
      const d = path.join(root, `d${a}`, `e${b}`);
      fs.mkdirSync(d, { recursive: true });
      for (let i = 0; i < per; i++) fs.writeFileSync(path.join(d, `f${i}.txt`), 'x');
    }
  }
}

function parse(out: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of out.trim().split('\n')) {
    const i = line.lastIndexOf(' ');
    if (i > 0 && /^\d+$/.test(line.slice(i + 1))) m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

/** A host folder shared at the same path, and what to call its column (its mechanism). */
export interface SharedTarget {
  label: string;
  dir: string;
}

/**
 * `shell` runs a script in the guest as root; `sharedHost` are host folders
 * shared at the same path; `nativeGuest` a folder on the guest's data disk.
 */
export async function benchShares(
  shell: Shell,
  sharedHost: SharedTarget[],
  nativeGuest: string,
  opts: ShareBenchOptions = {},
  synced?: SyncedTarget,
): Promise<{ rows: ShareBenchRow[]; settle: SyncSettleRow[] }> {
  const o: Required<ShareBenchOptions> = { smallFiles: opts.smallFiles ?? 5000, bigMiB: opts.bigMiB ?? 500, treeFiles: opts.treeFiles ?? 20_000 };
  const runIn = async (dir: string) => {
    const r = await shell(workload(dir, o));
    if (r.code !== 0) throw new Error(`bench workload in ${dir} failed: ${r.stderr}`);
    return parse(r.stdout);
  };
  const native = await runIn(nativeGuest);
  const shared: Map<string, number>[] = [];
  for (const t of sharedHost) shared.push(await runIn(t.dir));
  const sync = synced ? await runIn(synced.dir) : undefined;
  // The walk: the shared trees are made on the host (as a checkout would
  // be), the native one in the guest; none is timed.
  for (const t of sharedHost) makeTreeLocal(path.join(t.dir, 'walk'), o.treeFiles);
  const mk = await shell(
    `set -e; mkdir -p '${nativeGuest}/walk'; cd '${nativeGuest}/walk'; for a in 0 1 2 3 4 5 6 7 8 9; do for b in 0 1 2 3 4 5 6 7 8 9; do mkdir -p d$a/e$b; i=0; while [ $i -lt ${Math.ceil(o.treeFiles / 100)} ]; do echo x > d$a/e$b/f$i.txt; i=$((i+1)); done; done; done`,
  );
  if (mk.code !== 0) throw new Error(`making the native tree failed: ${mk.stderr}`);
  const walk = async (dir: string) => {
    const r = await shell(
      `sync; echo 3 > /proc/sys/vm/drop_caches; cd '${dir}/walk'; s=$(date +%s%N); find . -printf '%s\\n' > /dev/null; e=$(date +%s%N); echo "walk $(( (e - s) / 1000000 ))"`,
    );
    return parse(r.stdout).get('walk') ?? NaN;
  };
  const walkOp = `walk a ${o.treeFiles}-file tree (git status-like)`;
  native.set(walkOp, await walk(nativeGuest));
  for (const [i, t] of sharedHost.entries()) shared[i]!.set(walkOp, await walk(t.dir));
  const settle: SyncSettleRow[] = [];
  if (synced && sync) {
    // What the burst is held to: tar copying the same tree into the guest over ssh.
    const per = Math.ceil(o.treeFiles / 100);
    const want = 100 * per;
    const ref = fs.mkdtempSync(path.join(path.dirname(synced.dir), 'tar-ref-'));
    makeTreeLocal(ref, o.treeFiles);
    const copy = await synced.tarCopy(ref);
    // The sync pays no CLI start and no new ssh session: those are taken off tar's time.
    const tarMs = Math.max(1, copy.ms - copy.sessionMs);
    fs.rmSync(ref, { recursive: true, force: true });
    // The same tree made on the host (a checkout): time until the engine has
    // landed all of it (the folder, 10 + 100 subfolders and the files). It is
    // asked on the host: a look in the guest each time (a CLI start, an ssh
    // session and a find over the tree, every 2 s) took the guest's CPU from
    // the sync it measured: 135 s for a burst that takes 40 s unwatched.
    const before = await steady(synced);
    const t0 = performance.now();
    makeTreeLocal(path.join(synced.dir, 'walk'), o.treeFiles);
    const made = performance.now() - t0;
    await until(async () => (await synced.landed()) >= before + 1 + 10 + 100 + want);
    const burstMs = performance.now() - t0;
    const inGuest = await synced.guestFiles('walk');
    if (inGuest !== want) throw new Error(`the engine counted the burst as landed, but the guest copy has ${inGuest} of its ${want} files`);
    settle.push(
      { what: `${want} files made on the host → all in the guest copy (host writes took ${Math.round(made)} ms)`, ms: burstMs },
      {
        what: `GNU tar copying the same ${want} files into the guest over ssh (\`tar -c | berth shell -- tar -x\`, ${Math.round(copy.ms)} ms, less ${Math.round(copy.sessionMs)} ms for the CLI and the new ssh session, timed alone as \`berth shell -- true\`)`,
        ms: tarMs,
      },
      { what: 'burst ÷ tar (target ≤ 2×)', ms: NaN, ratio: burstMs / tarMs },
    );
    sync.set(walkOp, await walk(synced.dir));
    // Files made in the guest (a build): time until the host has all of them.
    const n = o.smallFiles;
    const t1 = performance.now();
    const mk = await shell(
      `set -e; mkdir -p '${synced.dir}/out'; cd '${synced.dir}/out'; i=0; while [ $i -lt ${n} ]; do echo "built $i" > o$i; i=$((i+1)); done`,
    );
    if (mk.code !== 0) throw new Error(`making files in the synced folder failed: ${mk.stderr}`);
    const wrote = performance.now() - t1;
    await until(() => (fs.existsSync(path.join(synced.dir, 'out')) ? fs.readdirSync(path.join(synced.dir, 'out')).length : 0) >= n);
    settle.push({
      what: `${n} files made in the guest → all on the host (guest writes and the command took ${Math.round(wrote)} ms)`,
      ms: performance.now() - t1,
    });
  }
  await shell(`rm -rf '${nativeGuest}'`);
  for (const t of sharedHost) fs.rmSync(path.join(t.dir, 'walk'), { recursive: true, force: true });
  const rows = [...native].map(([op, nativeMs]) => {
    const row: ShareBenchRow = {
      op,
      nativeMs,
      shared: sharedHost.map((t, i) => {
        const ms = shared[i]!.get(op) ?? NaN;
        return { label: t.label, ms, ratio: ms / Math.max(1, nativeMs) };
      }),
    };
    if (sync) {
      row.syncMs = sync.get(op) ?? NaN;
      row.syncRatio = row.syncMs / Math.max(1, nativeMs);
    }
    return row;
  });
  return { rows, settle };
}

/**
 * The count of landed entries once no cycle has run and it has not moved
 * for 3 s: the files the workloads made in the guest have all come to the
 * host. A count alone is not enough: one big file pulled for half a minute
 * leaves it still, and the burst then waited behind that pull.
 */
async function steady(synced: Pick<SyncedTarget, 'landed' | 'idle'>): Promise<number> {
  let last = -1;
  let same = 0;
  const deadline = Date.now() + 600_000;
  while (same < 3) {
    if (Date.now() > deadline) throw new Error('the synced folder did not come to rest within 10 minutes');
    await new Promise((r) => setTimeout(r, 1000));
    const n = await synced.landed();
    same = n === last && (await synced.idle()) ? same + 1 : 0;
    last = n;
  }
  return last;
}

/** Poll until `check` holds (10 minutes at most: TCG is slow, but not that slow). */
async function until(check: () => boolean | Promise<boolean>, everyMs = 250): Promise<void> {
  const deadline = Date.now() + 600_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('the synced folder did not settle within 10 minutes');
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
