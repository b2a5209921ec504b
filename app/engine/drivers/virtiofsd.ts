import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BerthError } from '../../contract/errors.js';
import { tailFile } from '../../base/fs-util.js';
import { isProcessOf, pidAlive, readPidFile, waitFor } from '../../base/process-util.js';
import type { ShareSpec } from './driver.js';
import { SUBORDINATE_IDS, type Virtiofsd, type VirtiofsdMode, type VirtiofsdProbe } from './virtiofsd-probe.js';

/**
 * virtiofsd: the host half of virtio-fs for QEMU on Linux. QEMU's
 * vhost-user-fs-pci device hands the virtqueues to a virtiofsd process over
 * a unix socket (docs/system/devices/vhost-user.rst and QEMU 7.2's
 * docs/tools/virtiofsd.rst: "virtiofsd --socket-path=... -o source=...",
 * then "-chardev socket,id=char0,path=... -device
 * vhost-user-fs-pci,chardev=char0,tag=..." with guest RAM a shared memory
 * backend). One virtiofsd per share, started before QEMU (it listens, QEMU
 * connects), detached so the VM's files stay served when the engine dies,
 * and gone when QEMU goes: virtiofsd serves one connection and exits when
 * it closes.
 *
 * Two virtiofsd exist: QEMU's C one (tools/virtiofsd, QEMU up to 7.2;
 * Debian 12 ships it as /usr/lib/qemu/virtiofsd), with FUSE-style `-o`
 * options, and the Rust one (gitlab.com/virtio-fs/virtiofsd, the only one
 * since QEMU 8.0; /usr/libexec/virtiofsd on Fedora), with long options.
 *
 * Options, and why (C name / Rust name):
 * - cache=auto / --cache=auto: attributes and names cached for 1 s, file
 *   data dropped on every open, so a host edit is seen at the next open.
 *   `always` keeps stale data for a day; `none` makes every stat a round
 *   trip (10 times slower to stat a tree, measured) and mmap of shared
 *   files fails on the 6.1 guest kernel.
 * - --inode-file-handles=prefer (Rust, as root, only where it may hold few
 *   files open: LOW_OPEN_FILE_LIMIT): virtiofsd names each file
 *   the guest has cached by a file handle instead of holding it open, so a
 *   tree of any size fits under the limit (measured: 21 open files with
 *   7,900 files cached). The handles never leave virtiofsd (the guest
 *   names files by node id), so the guest cannot forge one. The price is
 *   CAP_DAC_READ_SEARCH, which virtiofsd then keeps: open_by_handle_at
 *   reaches any file of the host file system the share is on, so a guest
 *   that took over virtiofsd itself would reach past the shared folder.
 *   That is why it is used only where the limit leaves no other way to
 *   serve a big tree; elsewhere virtiofsd raises its limit instead.
 *   `prefer` falls back to open files on a file system without handles.
 * - Where virtiofsd would hold a file per cached one and may hold few, it
 *   is not used (the probe: it does not reliably close the files the guest
 *   lets go of). Having the guest drop its cache near the limit was tried
 *   (the Rust one still ran out now and then), and so was timeout=0 (no
 *   name cached): a cold `ls -lR` of 25,000 files took 116 s instead of
 *   2.8 s, and reads failed with "Bad file descriptor".
 * - announce_submounts: a folder of another host file system inside the
 *   share shows as its own mount in the guest, so inode numbers of two
 *   host file systems never collide (tar and cp -a would take them for hard
 *   links).
 * - no_posix_lock, no_flock (the C defaults; Rust has neither): locks stay
 *   in the guest kernel, as with reverse sshfs. The C daemon's posix locks
 *   refuse blocking waits (F_SETLKW gets EOPNOTSUPP), which breaks dpkg and
 *   friends.
 * - no_xattr (the default): as root, passing extended attributes through
 *   would let the guest set security.capability on host files.
 * - modcaps=-mknod:-setfcap: the guest cannot make device nodes on the
 *   host (FIFOs and sockets need no capability and still work).
 * - sandbox=namespace (the default): virtiofsd pivots into the shared
 *   folder, so a symlink pointing out of it resolves inside it.
 *
 * Who owns what. virtiofsd creates files with the guest caller's uid and
 * gid; the guest kernel checks permissions (virtio-fs mounts always use
 * default_permissions). As root, guest uids are host uids, as with Docker
 * on Linux. As an ordinary user, virtiofsd runs in a user namespace where
 * that user is root (util-linux `unshare --map-root-user`), with the
 * user's subordinate ids (/etc/subuid, /etc/subgid, newuidmap) for guest
 * uids 1 to 65536: files containers create as root are the user's own on
 * the host, and other container users get subordinate ids, as with Docker
 * Desktop for Linux and rootless Podman. Without subordinate ids a
 * container user other than root could not create a file, so reverse
 * sshfs is used instead.
 */

/** FUSE option values split on commas; libfuse's fuse_opt takes `\,` and `\\` as escapes. */
export function fuseOptEscape(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/,/g, '\\,');
}

export interface VirtiofsdLaunch {
  socketPath: string;
  source: string;
  readOnly: boolean;
}

/** virtiofsd's own arguments (see the option notes at the top). */
export function virtiofsdArgs(d: Pick<Virtiofsd, 'flavor'>, l: VirtiofsdLaunch, mode: VirtiofsdMode): string[] {
  if (d.flavor === 'rust') {
    const a = [
      `--socket-path=${l.socketPath}`,
      `--shared-dir=${l.source}`,
      '--cache=auto',
      '--announce-submounts',
      '--sandbox=namespace',
      '--modcaps=-mknod:-setfcap',
    ];
    if (mode.kind === 'userns') a.push('--rlimit-nofile=0');
    if (mode.kind === 'root' && mode.fileHandles) a.push('--inode-file-handles=prefer');
    return a;
  }
  const a = [`--socket-path=${l.socketPath}`, '-o', `source=${fuseOptEscape(l.source)}`, '-o', 'cache=auto', '-o', 'announce_submounts'];
  a.push('-o', 'no_posix_lock', '-o', 'no_flock', '-o', 'no_xattr', '-o', 'modcaps=-mknod:-setfcap', '-o', 'sandbox=namespace');
  // In a user namespace it cannot raise its hard limit: the wrapper raises
  // the soft one to it and virtiofsd leaves it alone.
  if (mode.kind === 'userns') a.push('--rlimit-nofile=0');
  return a;
}

/**
 * The wrapper script run by `unshare` in front of virtiofsd ($1 is the
 * shared folder, the rest virtiofsd's command line):
 * - userns: a private /run (the C virtiofsd writes a pid file in
 *   /var/run/virtiofsd, which only root may create), and the open-files
 *   limit raised to the hard one (virtiofsd keeps a descriptor per inode
 *   the guest has looked up).
 * - read-only: the folder bind-mounted read-only onto itself in this
 *   private mount namespace, so the host kernel refuses writes whatever
 *   the guest does (virtiofsd has no read-only option before Rust 1.9).
 */
export function wrapperScript(mode: VirtiofsdMode, readOnly: boolean): string {
  const s: string[] = [];
  if (mode.kind === 'userns')
    s.push('mount -t tmpfs -o mode=0755 berth-virtiofsd /var/run', 'mkdir -p /var/run/virtiofsd', 'ulimit -n "$(ulimit -H -n)" 2>/dev/null');
  if (readOnly) s.push('mount --bind -- "$1" "$1"', 'mount -o remount,bind,ro -- "$1"');
  s.push('shift', 'exec "$@"');
  return s.join(' && ');
}

/** The process to spawn for one share: virtiofsd itself, or unshare + sh + virtiofsd. */
export function virtiofsdCommand(d: Virtiofsd, l: VirtiofsdLaunch, mode: VirtiofsdMode): { file: string; args: string[] } {
  const args = virtiofsdArgs(d, l, mode);
  if (mode.kind === 'root' && !l.readOnly) return { file: d.path, args };
  const ns =
    mode.kind === 'userns'
      ? ['--user', '--map-root-user', `--map-users=${mode.subuid},1,${SUBORDINATE_IDS}`, `--map-groups=${mode.subgid},1,${SUBORDINATE_IDS}`]
      : [];
  // `unshare` execs the shell and the shell execs virtiofsd: one pid all along.
  return {
    file: 'unshare',
    args: [...ns, '--mount', '--propagation', 'private', 'sh', '-c', wrapperScript(mode, l.readOnly), 'berth-virtiofsd', l.source, d.path, ...args],
  };
}

/** Where a share's virtiofsd keeps its pid and log (next to its socket). */
export function backendFiles(share: Pick<ShareSpec, 'socketPath' | 'tag'>): { pid: string; log: string } {
  const dir = path.dirname(share.socketPath!);
  return { pid: path.join(dir, `${share.tag}.pid`), log: path.join(dir, `${share.tag}.log`) };
}

export interface RunningBackend {
  tag: string;
  pid: number;
  socketPath: string;
  log: string;
}

/** Is `pid` the virtiofsd of this socket (not a recycled pid)? */
function isOurs(pid: number, socketPath: string): boolean {
  return isProcessOf(pid, socketPath);
}

/**
 * Start one virtiofsd per share and wait until each listens. Detached (its
 * own session, output to a log file next to its socket), like QEMU's
 * -daemonize: the VM's shares outlive an engine crash. On failure the ones
 * already started are stopped.
 */
export async function startBackends(shares: ShareSpec[], probe: VirtiofsdProbe, timeoutMs = 10_000): Promise<RunningBackend[]> {
  const started: RunningBackend[] = [];
  try {
    for (const s of shares) started.push(await startOne(s, probe, timeoutMs));
    return started;
  } catch (err) {
    await stopBackends(started);
    throw err;
  }
}

async function startOne(s: ShareSpec, probe: VirtiofsdProbe, timeoutMs: number): Promise<RunningBackend> {
  if (!s.socketPath) throw new BerthError('INTERNAL', `share ${s.tag} has no virtiofsd socket path`, 'This is a bug in Berth; please report it.');
  if (!probe.support.ok || !probe.binary || !probe.mode) {
    throw new BerthError(
      'VIRTIOFSD_FAILED',
      `virtiofsd cannot serve ${s.hostPath}: ${probe.support.ok ? 'no binary' : probe.support.reason}`,
      'Set `berth settings set shareMechanism=sshfs` to share folders by reverse sshfs.',
    );
  }
  const files = backendFiles(s);
  fs.mkdirSync(path.dirname(s.socketPath), { recursive: true, mode: 0o700 });
  fs.chmodSync(path.dirname(s.socketPath), 0o700);
  await stopStale(s);
  fs.rmSync(s.socketPath, { force: true });
  const cmd = virtiofsdCommand(probe.binary, { socketPath: s.socketPath, source: s.hostPath, readOnly: !!s.readonly }, probe.mode);
  const log = fs.openSync(files.log, 'w', 0o600);
  let child;
  try {
    child = spawn(cmd.file, cmd.args, { detached: true, stdio: ['ignore', log, log] });
  } finally {
    fs.closeSync(log);
  }
  const spawnError = await new Promise<Error | undefined>((resolve) => {
    child.once('error', resolve);
    child.once('spawn', () => resolve(undefined));
  });
  const fail = (why: string) =>
    new BerthError(
      'VIRTIOFSD_FAILED',
      `virtiofsd did not start for ${s.hostPath} (${why})`,
      "Berth shares the folders by reverse sshfs for this start instead; the log below has virtiofsd's own words. `berth settings set shareMechanism=sshfs` stops trying virtiofs.",
      `${cmd.file} ${cmd.args.join(' ')}\n${tailFile(files.log, 15).join('\n')}`,
    );
  if (spawnError || !child.pid) throw fail(spawnError?.message ?? 'no pid');
  child.unref();
  const pid = child.pid;
  fs.writeFileSync(files.pid, `${pid}\n`, { mode: 0o600 });
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = signal ? `signal ${signal}` : `exit status ${code}`));
  const up = await waitFor(() => exited !== undefined || fs.existsSync(s.socketPath!), timeoutMs, 20);
  if (exited !== undefined || !up) {
    if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    fs.rmSync(files.pid, { force: true });
    throw fail(exited ?? `no socket after ${timeoutMs / 1000} s`);
  }
  fs.chmodSync(s.socketPath, 0o600);
  return { tag: s.tag, pid, socketPath: s.socketPath, log: files.log };
}

/** A virtiofsd left by an earlier run on this socket (its QEMU is gone): stop it. */
async function stopStale(s: ShareSpec): Promise<void> {
  const files = backendFiles(s);
  const pid = readPidFile(files.pid);
  if (pid && isOurs(pid, s.socketPath!)) await stopBackends([{ tag: s.tag, pid, socketPath: s.socketPath!, log: files.log }]);
  fs.rmSync(files.pid, { force: true });
}

/** The virtiofsd processes of a running VM (reattach), from their pid files. */
export function findBackends(shares: ShareSpec[]): RunningBackend[] {
  const out: RunningBackend[] = [];
  for (const s of shares) {
    if (!s.socketPath) continue;
    const files = backendFiles(s);
    const pid = readPidFile(files.pid);
    if (pid && isOurs(pid, s.socketPath)) out.push({ tag: s.tag, pid, socketPath: s.socketPath, log: files.log });
  }
  return out;
}

/** SIGTERM, then SIGKILL; then their sockets and pid files go. */
export async function stopBackends(backends: RunningBackend[], graceMs = 2000): Promise<void> {
  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  };
  for (const b of backends) if (pidAlive(b.pid)) signal(b.pid, 'SIGTERM');
  await waitFor(() => backends.every((b) => !pidAlive(b.pid)), graceMs, 20);
  for (const b of backends) if (pidAlive(b.pid)) signal(b.pid, 'SIGKILL');
  await waitFor(() => backends.every((b) => !pidAlive(b.pid)), 2000, 20);
  for (const b of backends) {
    if (!b.socketPath) continue;
    fs.rmSync(b.socketPath, { force: true });
    fs.rmSync(backendFiles({ socketPath: b.socketPath, tag: b.tag }).pid, { force: true });
    // The C virtiofsd's own pid file (a lock against a second daemon on the
    // socket), which it never removes: /var/run/virtiofsd/<path, / as .>.pid.
    // As an ordinary user it lives in the wrapper's private /var/run.
    try {
      fs.rmSync(cVirtiofsdPidFile(b.socketPath), { force: true });
    } catch {
      /* not ours to remove */
    }
  }
}

export function cVirtiofsdPidFile(socketPath: string): string {
  return path.join('/var/run/virtiofsd', `${socketPath.replace(/\//g, '.')}.pid`);
}
