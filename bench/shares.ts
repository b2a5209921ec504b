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

/** How long sync mode takes to carry a burst of changes across. */
export interface SyncSettleRow {
  what: string;
  ms: number;
}

/** A synced folder (at the same path on host and guest) and how to poll the guest. */
export interface SyncedTarget {
  dir: string;
  /** Files under `dir` in the guest (find -type f | wc -l). */
  guestFiles: (sub: string) => Promise<number>;
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
    // The same tree made on the host (a checkout): time until the guest copy has all of it.
    const want = 100 * Math.ceil(o.treeFiles / 100);
    const t0 = performance.now();
    makeTreeLocal(path.join(synced.dir, 'walk'), o.treeFiles);
    const made = performance.now() - t0;
    // Polled every 2 s: each look is a CLI start, an ssh session and a find
    // in the guest, and polling faster slowed the sync it measures.
    await until(async () => (await synced.guestFiles('walk')) >= want, 2000);
    settle.push({ what: `${want} files made on the host → all in the guest copy (host writes took ${Math.round(made)} ms)`, ms: performance.now() - t0 });
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

/** Poll until `check` holds (10 minutes at most: TCG is slow, but not that slow). */
async function until(check: () => boolean | Promise<boolean>, everyMs = 250): Promise<void> {
  const deadline = Date.now() + 600_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('the synced folder did not settle within 10 minutes');
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
