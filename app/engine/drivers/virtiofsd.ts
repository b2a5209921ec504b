import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BerthError } from '../../contract/errors.js';
import { tailFile } from '../../base/fs-util.js';
import { findExecutable, isProcessOf, pidAlive, readPidFile, waitFor } from '../../base/process-util.js';
import type { ShareSpec, VirtiofsSupport } from './driver.js';

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

export type VirtiofsdFlavor = 'qemu-c' | 'rust';

export interface Virtiofsd {
  path: string;
  flavor: VirtiofsdFlavor;
  version: string;
}

/** How virtiofsd runs: as root, or as this user in a user namespace with its subordinate ids. */
export type VirtiofsdMode = { kind: 'root' } | { kind: 'userns'; uid: number; gid: number; subuid: number; subgid: number };

/** Guest ids 1..SUBORDINATE_IDS map to the user's subordinate ids. */
export const SUBORDINATE_IDS = 65536;

/** Where distributions put it (Debian/Ubuntu's qemu-system-common, Fedora/RHEL's virtiofsd, Arch). */
export const VIRTIOFSD_PATHS = ['/usr/libexec/virtiofsd', '/usr/lib/qemu/virtiofsd', '/usr/lib/virtiofsd'];

/** virtiofsd: `explicit` (BERTH_VIRTIOFSD), else where distributions put it, else PATH. */
export function findVirtiofsd(explicit?: string, exists: (p: string) => boolean = fs.existsSync): string | undefined {
  if (explicit) return findExecutable(explicit);
  for (const p of VIRTIOFSD_PATHS) if (exists(p)) return p;
  return findExecutable('virtiofsd');
}

/**
 * The flavor from `virtiofsd --version`: the C one prints "virtiofsd
 * version 7.2.22 (...)" and "using FUSE kernel interface version 7.36",
 * the Rust one "virtiofsd 1.10.1".
 */
export function parseVirtiofsdVersion(out: string): { flavor: VirtiofsdFlavor; version: string } | undefined {
  const c = /virtiofsd version (\S+)/.exec(out);
  if (c) return { flavor: 'qemu-c', version: c[1]! };
  const r = /^virtiofsd (\d+\.\d+\S*)/m.exec(out);
  if (r) return { flavor: 'rust', version: r[1]! };
  return undefined;
}

/** A line of /etc/subuid or /etc/subgid for this user: "name-or-id:start:count". */
export function subordinateRange(text: string, user: { name?: string; id: number }, need = SUBORDINATE_IDS): number | undefined {
  for (const line of text.split('\n')) {
    const [who, start, count] = line.trim().split(':');
    if (!who || start === undefined || count === undefined) continue;
    if (who !== user.name && who !== String(user.id)) continue;
    const s = Number(start);
    const n = Number(count);
    if (Number.isInteger(s) && Number.isInteger(n) && n >= need) return s;
  }
  return undefined;
}

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

export interface VirtiofsdProbe {
  support: VirtiofsSupport;
  binary?: Virtiofsd;
  mode?: VirtiofsdMode;
}

export interface ProbeHost {
  platform: NodeJS.Platform;
  uid: number;
  gid: number;
  userName?: string;
  find: () => string | undefined;
  run: (file: string, args: string[]) => { code: number | null; out: string };
  readFile: (p: string) => string | undefined;
}

/** This host; `virtiofsd` is the binary BERTH_VIRTIOFSD names, if any. */
export function thisProbeHost(virtiofsd?: string): ProbeHost {
  let userName: string | undefined;
  try {
    userName = os.userInfo().username;
  } catch {
    userName = undefined;
  }
  return {
    platform: process.platform,
    uid: process.getuid?.() ?? -1,
    gid: process.getgid?.() ?? -1,
    userName,
    find: () => findVirtiofsd(virtiofsd),
    run: (file, args) => {
      const r = spawnSync(file, args, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'pipe'] });
      return { code: r.error ? null : r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
    },
    readFile: (p) => {
      try {
        return fs.readFileSync(p, 'utf8');
      } catch {
        return undefined;
      }
    },
  };
}

const no = (reason: string): VirtiofsdProbe => ({ support: { ok: false, reason } });

/**
 * Can virtiofsd serve shares for this user here? Root: when it is
 * installed. An ordinary user: also needs user namespaces, newuidmap and a
 * subordinate id range, proven by running `unshare` with the same mapping.
 */
export function probeVirtiofsd(h: ProbeHost = thisProbeHost()): VirtiofsdProbe {
  if (h.platform !== 'linux') return no('virtiofsd runs on Linux hosts only (QEMU on macOS has no virtio-fs backend)');
  const bin = h.find();
  if (!bin) {
    return no(
      `virtiofsd is not installed (looked for ${VIRTIOFSD_PATHS.join(', ')} and on PATH; BERTH_VIRTIOFSD names another): on Debian/Ubuntu it comes with qemu-system-common, on Fedora with the virtiofsd package`,
    );
  }
  const v = h.run(bin, ['--version']);
  const parsed = parseVirtiofsdVersion(v.out);
  if (!parsed) return no(`${bin} --version did not say which virtiofsd it is (${v.out.trim().split('\n')[0] || `exit status ${v.code}`})`);
  const binary: Virtiofsd = { path: bin, ...parsed };
  const label = `virtiofsd ${parsed.version}${parsed.flavor === 'rust' ? ' (Rust)' : ''}`;
  if (h.uid === 0) return { support: { ok: true, how: `${label} as root`, needsSocket: true, readOnlyDevice: true }, binary, mode: { kind: 'root' } };
  const user = { name: h.userName, id: h.uid };
  const subuid = subordinateRange(h.readFile('/etc/subuid') ?? '', user);
  const subgid = subordinateRange(h.readFile('/etc/subgid') ?? '', { name: h.userName, id: h.uid });
  if (subuid === undefined || subgid === undefined) {
    return no(
      `virtiofsd as an ordinary user needs ${SUBORDINATE_IDS} subordinate user and group ids for ${h.userName ?? h.uid} in /etc/subuid and /etc/subgid (as rootless Podman and Docker Desktop for Linux do), so that container users other than root can write`,
    );
  }
  const mode: VirtiofsdMode = { kind: 'userns', uid: h.uid, gid: h.gid, subuid, subgid };
  const t = h.run('unshare', [
    '--user',
    '--map-root-user',
    `--map-users=${subuid},1,${SUBORDINATE_IDS}`,
    `--map-groups=${subgid},1,${SUBORDINATE_IDS}`,
    '--mount',
    'true',
  ]);
  if (t.code !== 0) {
    return no(
      `a user namespace with the subordinate ids could not be made (unshare: ${t.out.trim().split('\n')[0] || `exit status ${t.code}`}); user namespaces or newuidmap may be off here`,
    );
  }
  return {
    support: {
      ok: true,
      how: `${label} in a user namespace (guest root is you; other guest users are your subordinate ids)`,
      needsSocket: true,
      readOnlyDevice: true,
    },
    binary,
    mode,
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
