/**
 * A case-insensitive host folder for the sync tests: casefold-fs.py (a FUSE
 * pass-through that folds case and Unicode form, as macOS and Windows do)
 * mounted over a temporary folder. Debian bookworm has no ciopfs; the
 * script needs python3-fusepy and /dev/fuse (scripts/test.sh installs the package).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findExecutable, waitFor } from '../../app/base/process-util.js';

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'casefold-fs.py');

export interface CaseFoldMount {
  /** The case-insensitive folder. */
  mount: string;
  /** Where its entries really are. */
  backing: string;
  unmount(): Promise<void>;
}

const mounted = (dir: string) =>
  fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === dir);

/** Mount a case-folding folder at `dir`/mnt; on failure, why (never a silent skip). */
export async function mountCaseFold(dir: string): Promise<CaseFoldMount | { why: string }> {
  if (process.platform !== 'linux') return { why: `FUSE test folders are set up on Linux only (this is ${process.platform})` };
  const py = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : findExecutable('python3');
  if (!py) return { why: 'python3 is not installed' };
  if (!fs.existsSync('/dev/fuse')) return { why: '/dev/fuse is missing (no FUSE in this kernel or container)' };
  const backing = path.join(dir, 'backing');
  const mount = path.join(dir, 'mnt');
  fs.mkdirSync(backing, { recursive: true });
  fs.mkdirSync(mount, { recursive: true });
  let stderr = '';
  let child: ChildProcess | undefined = spawn(py, [SCRIPT, backing, mount], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  child.on('exit', () => (exited = true));
  const ok = await waitFor(() => exited || mounted(mount), 10_000, 50);
  if (!ok || exited || !mounted(mount)) {
    child.kill('SIGKILL');
    const why = /No module named/.test(stderr)
      ? 'python3-fusepy is not installed (apt-get install python3-fusepy)'
      : `the FUSE mount did not come up: ${stderr.trim().split('\n').slice(-2).join(' ') || 'no error text'}`;
    return { why };
  }
  return {
    mount,
    backing,
    async unmount() {
      for (const cmd of [
        ['fusermount', '-u', mount],
        ['fusermount3', '-u', mount],
        ['umount', '-l', mount],
      ]) {
        if (!mounted(mount)) break;
        await new Promise<void>((r) =>
          spawn(cmd[0]!, cmd.slice(1), { stdio: 'ignore' })
            .on('close', () => r())
            .on('error', () => r()),
        );
      }
      child?.kill('SIGTERM');
      child = undefined;
    },
  };
}
