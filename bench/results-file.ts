/**
 * Where `npm run bench` writes, and the header every results file starts
 * with: the commit, the command line, the machine and the accelerator. A
 * results file is always written whole by one run, never edited or pasted
 * into; each kind of run has a file of its own, and a partial run never
 * writes another kind's file.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The kinds of run and their files in bench/. */
export const RESULT_FILES = {
  full: 'results.md',
  shares: 'results-shares.md',
  boot: 'results-boot.md',
  lifecycle: 'results-lifecycle.md',
  release: 'results-release.md',
  soak: 'soak-results.md',
} as const;
export type RunKind = keyof typeof RESULT_FILES;

/**
 * The file a run of `kind` writes: bench/<its file>, or `--out`, which
 * must not be another kind's file.
 */
export function resultsPath(benchDir: string, kind: RunKind, out: string | undefined): string {
  const own = path.join(benchDir, RESULT_FILES[kind]);
  if (!out) return own;
  const chosen = path.resolve(out);
  for (const [other, file] of Object.entries(RESULT_FILES)) {
    if (other !== kind && chosen === path.join(benchDir, file)) {
      throw new Error(`--out ${out} is the ${other} run's file; a ${kind} run writes ${path.relative(process.cwd(), own)} (or a file of its own)`);
    }
  }
  return chosen;
}

/** The commit measured: `git rev-parse HEAD`, marked when the tree had changes. */
export function commitOf(root: string): string {
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).trim();
    return dirty ? `${head} (with uncommitted changes)` : head;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

export interface RunInfo {
  commit: string;
  /** The command line, as typed: `npm run bench -- --only shares`. */
  command: string;
  accel: string;
  when?: Date;
}

export function resultsHeader(info: RunInfo): string[] {
  const cpus = os.cpus();
  const when = (info.when ?? new Date()).toISOString().slice(0, 16).replace('T', ' ');
  return [
    '# Berth benchmark results',
    '',
    'Generated whole by the command below; never edited by hand.',
    '',
    '| | |',
    '|---|---|',
    `| commit | ${info.commit} |`,
    `| command | \`${info.command}\` |`,
    `| measured | ${when} UTC |`,
    `| machine | ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, ${os.type()} ${os.release()}, Node ${process.versions.node} |`,
    `| accelerator | ${info.accel} |`,
    '',
    'Under TCG (software emulation) every guest-side number is many times what KVM or Hypervisor.framework gives.',
    '',
  ];
}

/** Write the whole file at once (a temporary file renamed into place). */
export function writeResultsFile(file: string, info: RunInfo, rows: string[]): string {
  const text = [...resultsHeader(info), ...rows].join('\n');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
  return text;
}
