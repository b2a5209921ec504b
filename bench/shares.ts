/**
 * File sharing numbers for `npm run bench`: the same workloads in the VM on
 * a shared host folder (each available mechanism) and on the guest's own
 * disk, in one run, timed inside the guest so the ssh round trip of the
 * command itself does not count.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface ShareBenchRow {
  op: string;
  nativeMs: number;
  sharedMs: number;
  ratio: number;
}

export interface ShareBenchOptions {
  smallFiles?: number;
  bigMiB?: number;
  treeFiles?: number;
}

type Shell = (script: string) => Promise<{ code: number | null; stdout: string; stderr: string }>;

/** One workload as guest shell: prints "<name> <milliseconds>" per step. */
function workload(dir: string, o: Required<ShareBenchOptions>): string {
  const t = (name: string, body: string) =>
    `s=$(date +%s%N); ${body}; e=$(date +%s%N); echo "${name} $(( (e - s) / 1000000 ))"`;
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

/**
 * `shell` runs a script in the guest as root; `sharedHost` is a host folder
 * shared at the same path; `nativeGuest` a folder on the guest's data disk.
 */
export async function benchShares(shell: Shell, sharedHost: string, nativeGuest: string, opts: ShareBenchOptions = {}): Promise<ShareBenchRow[]> {
  const o: Required<ShareBenchOptions> = { smallFiles: opts.smallFiles ?? 5000, bigMiB: opts.bigMiB ?? 500, treeFiles: opts.treeFiles ?? 20_000 };
  const runIn = async (dir: string) => {
    const r = await shell(workload(dir, o));
    if (r.code !== 0) throw new Error(`bench workload in ${dir} failed: ${r.stderr}`);
    return parse(r.stdout);
  };
  const native = await runIn(nativeGuest);
  const shared = await runIn(sharedHost);
  // The walk: the shared tree is made on the host (as a checkout would be),
  // the native one in the guest; neither is timed.
  makeTreeLocal(path.join(sharedHost, 'walk'), o.treeFiles);
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
  native.set(`walk a ${o.treeFiles}-file tree (git status-like)`, await walk(nativeGuest));
  shared.set(`walk a ${o.treeFiles}-file tree (git status-like)`, await walk(sharedHost));
  await shell(`rm -rf '${nativeGuest}'`);
  fs.rmSync(path.join(sharedHost, 'walk'), { recursive: true, force: true });
  return [...native].map(([op, nativeMs]) => {
    const sharedMs = shared.get(op) ?? NaN;
    return { op, nativeMs, sharedMs, ratio: sharedMs / Math.max(1, nativeMs) };
  });
}
