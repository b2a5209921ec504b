/**
 * Reverse sshfs without a VM: the engine's SFTP server (serveSftp) in this
 * process, the real `sshfs -o slave` here, mounting a temp folder, against
 * the same operations on a plain local folder. It measures the server and
 * sshfs/FUSE, not the ssh channel or the guest (those come with a VM).
 *
 * The workloads run in a child node process (sync fs calls, one at a time,
 * like most build tools), so the client never shares an event loop or CPU
 * time slice accounting with the server it is measuring.
 */
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SSHFS_OPTIONS } from '../app/engine/share/sftp-server.js';
import { mountLocal, sshfsUnavailable } from '../test/helpers/sshfs-mount.js';

export interface SftpBenchRow {
  op: string;
  localMs: number;
  sftpMs: number;
  /** sftpMs / localMs */
  ratio: number;
}

export interface SftpBenchResult {
  /** Why nothing was measured (no sshfs or /dev/fuse here). */
  skipped?: string;
  rows: SftpBenchRow[];
  /** The sshfs options the mount used (SSHFS_OPTIONS). */
  sshfsOptions: string[];
  sizes: { smallFiles: number; smallFileBytes: number; bigMiB: number; treeFiles: number };
}

export interface SftpBenchOptions {
  smallFiles?: number;
  smallFileBytes?: number;
  bigMiB?: number;
  /** Files in the walked tree (a multiple of 1000: 10 top folders x 10 sub folders x N files). */
  treeFiles?: number;
  /** Where the temp folders go (default: the OS temp folder). */
  tmpDir?: string;
  /** sshfs options added after SSHFS_OPTIONS (a later one wins), to compare settings. */
  extraSshfsOptions?: string[];
  /** Run only these steps (create, read, stat, bigwrite, bigread, walk). */
  only?: string[];
}

/** The workload, run as `node -e WORKER op dir n bytes`; prints the elapsed ms. */
const WORKER = String.raw`
const fs = require('fs');
const path = require('path');
const [op, dir, nArg, bytesArg] = process.argv.slice(1);
const n = Number(nArg), bytes = Number(bytesArg);
const t0 = process.hrtime.bigint();
if (op === 'create') {
  fs.mkdirSync(path.join(dir, 'small'), { recursive: true });
  const data = Buffer.alloc(bytes, 97);
  for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, 'small', 'f' + i + '.txt'), data);
} else if (op === 'read') {
  let total = 0;
  for (let i = 0; i < n; i++) total += fs.readFileSync(path.join(dir, 'small', 'f' + i + '.txt')).length;
  if (total !== n * bytes) throw new Error('read ' + total);
} else if (op === 'stat') {
  for (let i = 0; i < n; i++) fs.statSync(path.join(dir, 'small', 'f' + i + '.txt'));
} else if (op === 'bigwrite') {
  const chunk = Buffer.alloc(1 << 20, 98);
  const fd = fs.openSync(path.join(dir, 'big.bin'), 'w');
  for (let i = 0; i < n; i++) fs.writeSync(fd, chunk, 0, chunk.length, i * chunk.length);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
} else if (op === 'bigread') {
  const chunk = Buffer.alloc(1 << 20);
  const fd = fs.openSync(path.join(dir, 'big.bin'), 'r');
  let total = 0, got;
  while ((got = fs.readSync(fd, chunk, 0, chunk.length, total)) > 0) total += got;
  fs.closeSync(fd);
  if (total !== n * chunk.length) throw new Error('read ' + total);
} else if (op === 'walk') {
  let files = 0;
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      fs.lstatSync(p);
      if (e.isDirectory()) walk(p); else files++;
    }
  };
  walk(path.join(dir, 'tree'));
  if (files !== n) throw new Error('walked ' + files);
} else throw new Error('unknown op ' + op);
process.stdout.write(String(Number(process.hrtime.bigint() - t0) / 1e6));
`;

function runWorker(op: string, dir: string, n: number, bytes = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    // cwd outside the mount: a chdir into it would happen before exec, while
    // spawn blocks this process (the server).
    const c = spawn(process.execPath, ['-e', WORKER, op, dir, String(n), String(bytes)], { cwd: os.tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve(Number(out)) : reject(new Error(`${op} in ${dir} failed (${code}): ${err}`))));
  });
}

/** The 20,000-file tree, written straight to the host folder (not timed). */
async function makeTree(dir: string, files: number) {
  const perLeaf = Math.max(1, Math.round(files / 100));
  for (let a = 0; a < 10; a++) {
    for (let b = 0; b < 10; b++) {
      const leaf = path.join(dir, 'tree', `d${a}`, `s${b}`);
      await fsp.mkdir(leaf, { recursive: true });
      for (let i = 0; i < perLeaf; i++) await fsp.writeFile(path.join(leaf, `file${i}.ts`), 'x');
    }
  }
  return perLeaf * 100;
}

/**
 * Mount a temp folder through the SFTP server with the real sshfs and time,
 * on it and on a plain local folder: create+write N small files, read them
 * back, stat them all, one big sequential write and read, and a walk of a
 * 20,000-file tree.
 */
export async function benchSftpLocal(opts: SftpBenchOptions = {}): Promise<SftpBenchResult> {
  const sizes = {
    smallFiles: opts.smallFiles ?? 5000,
    smallFileBytes: opts.smallFileBytes ?? 1024,
    bigMiB: opts.bigMiB ?? 500,
    treeFiles: opts.treeFiles ?? 20_000,
  };
  const result: SftpBenchResult = { rows: [], sshfsOptions: [...SSHFS_OPTIONS, ...(opts.extraSshfsOptions ?? [])], sizes };
  const unavailable = sshfsUnavailable();
  if (unavailable) return { ...result, skipped: unavailable };

  const base = await fsp.mkdtemp(path.join(opts.tmpDir ?? os.tmpdir(), 'berth-sftp-bench-'));
  const local = path.join(base, 'local');
  const share = path.join(base, 'share');
  const mnt = path.join(base, 'mnt');
  for (const d of [local, share, mnt]) await fsp.mkdir(d);
  const mount = await mountLocal(share, mnt, { extraOptions: opts.extraSshfsOptions });
  try {
    const treeFiles = await makeTree(local, sizes.treeFiles);
    await makeTree(share, sizes.treeFiles);
    const steps: [string, string, number, number?][] = [
      [`create+write ${sizes.smallFiles} files of ${sizes.smallFileBytes} B`, 'create', sizes.smallFiles, sizes.smallFileBytes],
      [`read them back`, 'read', sizes.smallFiles, sizes.smallFileBytes],
      [`stat them all`, 'stat', sizes.smallFiles],
      [`sequential write ${sizes.bigMiB} MiB (+fsync)`, 'bigwrite', sizes.bigMiB],
      [`sequential read ${sizes.bigMiB} MiB`, 'bigread', sizes.bigMiB],
      [`walk a ${treeFiles}-file tree (readdir + lstat)`, 'walk', treeFiles],
    ];
    for (const [label, op, n, bytes] of steps) {
      if (opts.only && !opts.only.includes(op)) continue;
      const localMs = await runWorker(op, local, n, bytes);
      const sftpMs = await runWorker(op, mnt, n, bytes);
      result.rows.push({ op: label, localMs, sftpMs, ratio: sftpMs / localMs });
    }
  } finally {
    await mount.unmount();
    await fsp.rm(base, { recursive: true, force: true });
  }
  return result;
}

/** The result as a markdown table (for bench/results.md). */
export function sftpBenchTable(r: SftpBenchResult): string {
  if (r.skipped) return `Reverse sshfs (local, no VM): skipped: ${r.skipped}\n`;
  const lines = [
    `Reverse sshfs, local (engine SFTP server + real sshfs, no VM); sshfs -o ${r.sshfsOptions.join(',')}`,
    '',
    '| operation | local folder | through sshfs | ratio |',
    '|---|---:|---:|---:|',
  ];
  for (const row of r.rows) {
    lines.push(`| ${row.op} | ${row.localMs.toFixed(0)} ms | ${row.sftpMs.toFixed(0)} ms | ${row.ratio.toFixed(1)}x |`);
  }
  return lines.join('\n') + '\n';
}

// `node --import tsx bench/sftp.ts [extra,sshfs,options] [only,steps]` runs it on its own.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [extra, only] = process.argv.slice(2);
  benchSftpLocal({ extraSshfsOptions: extra ? extra.split(',') : undefined, only: only ? only.split(',') : undefined }).then(
    (r) => process.stdout.write(sftpBenchTable(r)),
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
