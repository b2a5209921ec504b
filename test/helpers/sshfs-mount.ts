/**
 * Reverse sshfs without a VM: the real `sshfs -o slave` runs here, its
 * stdin/stdout piped to the engine's SFTP server in this process, and mounts
 * a host folder at a second path. What the guest would do, on one machine.
 *
 * Beware, in the process that serves the mount: a synchronous fs call on the
 * mount blocks the event loop the server needs (deadlock), and so do more
 * than ~3 concurrent async calls on it (they fill libuv's 4-thread pool,
 * leaving the server none). Touch the mount one awaited call at a time, or
 * from a child process.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { silentLogger } from '../../app/base/log.js';
import { serveSftp, sshfsCommand, type SftpSession } from '../../app/engine/share/sftp-server.js';

/** Why local sshfs mounts cannot run here, or undefined when they can. */
export function sshfsUnavailable(): string | undefined {
  const missing: string[] = [];
  if (!onPath('sshfs')) missing.push('`sshfs` is not on PATH');
  if (!onPath('fusermount3') && !onPath('fusermount')) missing.push('neither fusermount3 nor fusermount is on PATH');
  try {
    fs.accessSync('/dev/fuse', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    missing.push('/dev/fuse is missing or not usable');
  }
  if (!missing.length) return undefined;
  return `${missing.join('; ')} (Debian: apt-get install -y sshfs fuse3)`;
}

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

export function fusermount(): string {
  return onPath('fusermount3') ? 'fusermount3' : 'fusermount';
}

export interface LocalMount {
  root: string;
  mountPoint: string;
  session: SftpSession;
  sshfs: ChildProcess;
  /** What sshfs printed on stderr so far. */
  stderr(): string;
  /** Unmount (lazily if busy), wait for sshfs to exit and the session to end. Safe to call twice. */
  unmount(): Promise<void>;
}

const live = new Set<string>();
let exitHookInstalled = false;

/** At process exit, detach any mount a crashed test left behind. */
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const m of live) spawnSync(fusermount(), ['-uz', m], { stdio: 'ignore' });
  });
}

/**
 * Mount `root` at `mountPoint` through serveSftp, with the exact command line
 * the guest would run (sshfsCommand, through `sh -c`).
 */
export async function mountLocal(
  root: string,
  mountPoint: string,
  opts: { readOnly?: boolean; log?: Logger; timeoutMs?: number; extraOptions?: string[] } = {},
): Promise<LocalMount> {
  installExitHook();
  let cmd = sshfsCommand(root, mountPoint, { readOnly: opts.readOnly });
  if (opts.extraOptions?.length) cmd += ` -o ${opts.extraOptions.join(',')}`;
  const child = spawn('sh', ['-c', `exec ${cmd}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.on('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const stream = Duplex.from({ readable: child.stdout!, writable: child.stdin! });
  stream.on('error', () => undefined); // EPIPE when sshfs goes first
  const session = await serveSftp(stream, { root, readOnly: opts.readOnly, log: opts.log ?? silentLogger() });
  live.add(mountPoint);

  let unmounted: Promise<void> | undefined;
  const unmount = () =>
    (unmounted ??= (async () => {
      if (!exited) {
        for (let i = 0; i < 20 && !exited; i++) {
          const r = await runQuiet(fusermount(), ['-u', mountPoint]);
          if (r === 0 || !(await isMounted(mountPoint))) break;
          await new Promise((r2) => setTimeout(r2, 100));
        }
        if (!exited && (await isMounted(mountPoint))) await runQuiet(fusermount(), ['-uz', mountPoint]);
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exit;
        clearTimeout(t);
      }
      live.delete(mountPoint);
      await session.close();
    })());

  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  while (!(await isMounted(mountPoint))) {
    if (exited || Date.now() > deadline) {
      await unmount();
      throw new Error(`sshfs did not mount ${mountPoint} (${exited ? `exited ${child.exitCode}` : 'timed out'}): ${stderr.trim()}\ncommand: ${cmd}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return { root, mountPoint, session, sshfs: child, stderr: () => stderr, unmount };
}

/** Whether a FUSE sshfs mount is at `p` (from /proc/self/mountinfo). */
export async function isMounted(p: string): Promise<boolean> {
  const info = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0) continue;
    const mnt = f[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (Buffer.from(mnt, 'latin1').toString('utf8') === p && f[sep + 1]!.startsWith('fuse.sshfs')) return true;
  }
  return false;
}

function runQuiet(cmd: string, args: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: 'ignore' });
    c.on('error', () => resolve(-1));
    c.on('close', (code) => resolve(code));
  });
}

/**
 * Run a shell command (as `uid`/`gid` when given), collect its output.
 * No `cwd` on purpose, and never spawn a program that lives on the mount
 * directly: libuv's spawn blocks this process until the child has exec'd, and
 * a chdir or exec that goes through the mount needs this process's server.
 * `cd` and run things inside the script instead.
 */
export function sh(
  script: string,
  opts: { uid?: number; gid?: number; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn('sh', ['-c', script], { uid: opts.uid, gid: opts.gid, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => {
      c.kill('SIGKILL');
      reject(new Error(`timed out: ${script}\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    c.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    c.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Whether this process may spawn children as another user (root). */
export function canSwitchUser(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** A uid:gid that is not ours, for "a container's non-root user". */
export const OTHER_USER = { uid: 1000, gid: 1000 };

/** True when `cmd` is on PATH (for optional tools like flock). */
export function hasCommand(cmd: string): boolean {
  return onPath(cmd);
}
