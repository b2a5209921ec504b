/**
 * Which virtiofsd this host has and whether it can serve shares here (for
 * root, or for this user in a user namespace with subordinate ids), and
 * how many files it may hold open. How it is started and stopped is
 * virtiofsd.ts's; the options and the id mapping are explained there.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cacheDir } from '../../base/paths.js';
import { findExecutable } from '../../base/process-util.js';
import type { VirtiofsSupport } from './driver.js';
export type VirtiofsdFlavor = 'qemu-c' | 'rust';

export interface Virtiofsd {
  path: string;
  flavor: VirtiofsdFlavor;
  version: string;
}

/**
 * How virtiofsd runs: as root, or as this user in a user namespace with its
 * subordinate ids. `fileHandles`: the Rust virtiofsd as root, where it may
 * hold few files open, names the files the guest has cached by file handle
 * instead of holding each open (--inode-file-handles, virtiofsd.ts).
 */
export type VirtiofsdMode = { kind: 'root'; fileHandles?: boolean } | { kind: 'userns'; uid: number; gid: number; subuid: number; subgid: number };

/** Guest ids 1..SUBORDINATE_IDS map to the user's subordinate ids. */
export const SUBORDINATE_IDS = 65536;

/** Where distributions put it: the Rust one (Debian 13's and Fedora's virtiofsd package, Arch), then QEMU's C one (Debian/Ubuntu's qemu-system-common). */
export const RUST_VIRTIOFSD_PATHS = ['/usr/libexec/virtiofsd', '/usr/lib/virtiofsd'];
export const C_VIRTIOFSD_PATHS = ['/usr/lib/qemu/virtiofsd'];
export const VIRTIOFSD_PATHS = [...RUST_VIRTIOFSD_PATHS, ...C_VIRTIOFSD_PATHS];

/**
 * The Rust virtiofsd that `npm run virtiofsd` (scripts/virtiofsd.sh) unpacks
 * from the guest's Debian release for a host that has only the C one: a
 * launcher in Berth's cache.
 */
export function bundledVirtiofsd(cache = cacheDir()): string {
  return path.join(cache, 'virtiofsd', 'virtiofsd');
}

/**
 * virtiofsd: `explicit` (BERTH_VIRTIOFSD); else a Rust one where
 * distributions put it, then the one unpacked into Berth's cache, then QEMU's
 * C one; else PATH. The Rust one is preferred: it is the maintained one,
 * and as root it holds no open file per file the guest has cached.
 */
export function findVirtiofsd(explicit?: string, exists: (p: string) => boolean = fs.existsSync, bundled = bundledVirtiofsd()): string | undefined {
  if (explicit) return findExecutable(explicit);
  for (const p of [...RUST_VIRTIOFSD_PATHS, bundled, ...C_VIRTIOFSD_PATHS]) if (exists(p)) return p;
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

/** Below this many open files virtiofsd is used only where it names files by handle: a big project's node_modules alone has 100,000 files and more. */
export const LOW_OPEN_FILE_LIMIT = 100_000;
/** What virtiofsd raises its open-files limit to when it may (C and Rust alike, at most fs.nr_open). */
const VIRTIOFSD_NOFILE = 1_000_000;

/**
 * The most files virtiofsd will be able to hold open here. It keeps one
 * descriptor per file the guest has cached, so a tree with more files than
 * this fails in containers with "Too many open files". As root with
 * CAP_SYS_RESOURCE it raises its limit to VIRTIOFSD_NOFILE; otherwise (a
 * container without that capability, or a user namespace) it has the hard
 * limit it inherits from the engine. Undefined when /proc cannot say.
 */
export function virtiofsdOpenFiles(h: Pick<ProbeHost, 'readFile'>, mode: VirtiofsdMode): number | undefined {
  const hard = /^Max open files\s+\S+\s+(\d+|unlimited)/m.exec(h.readFile('/proc/self/limits') ?? '')?.[1];
  if (!hard) return undefined;
  const want = Math.min(VIRTIOFSD_NOFILE, Number(h.readFile('/proc/sys/fs/nr_open')?.trim()) || VIRTIOFSD_NOFILE);
  const mayRaise = mode.kind === 'root' && hasCapability(h, 24); // CAP_SYS_RESOURCE
  return mayRaise || hard === 'unlimited' ? want : Math.min(Number(hard), want);
}

/** Does this process have capability `bit` (linux/capability.h) in its effective set? */
function hasCapability(h: Pick<ProbeHost, 'readFile'>, bit: number): boolean {
  const cap = /^CapEff:\s*([0-9a-f]{1,16})$/m.exec(h.readFile('/proc/self/status') ?? '')?.[1];
  return cap !== undefined && ((BigInt(`0x${cap}`) >> BigInt(bit)) & 1n) === 1n;
}

/**
 * Why virtiofsd is not used where its open-files limit is low and it cannot
 * name files by handle. It then holds a file open per file the guest has
 * cached, and nothing the guest does keeps that number down reliably: QEMU
 * 7.2's C one stops taking the guest's FORGETs after enough of them (its
 * hiprio queue is kicked and finds nothing; CI: 9,000 files under a limit
 * of 6,000 failed in one run of five), and the Rust one, with the guest
 * dropping its cache whenever it passed a mark, still ran out now and then
 * under that limit: in CI twice, and here once in nine runs, where it said
 * "No more file descriptors available to the guest (0 available out of
 * 5390 initially)" with at most 558 files cached in the guest. So the
 * shares use reverse sshfs, and say how to get virtiofs back.
 */
export function lowLimitReason(label: string, limit: number, way: string): string {
  const limitOf = "Berth's open-files limit (`ulimit -Hn`, or LimitNOFILE= for a service) and restart";
  return `${label} would have to stay under ${limit.toLocaleString('en-US')} open files here (the hard limit Berth runs with) while holding one per file the VM has cached, and it does not reliably close the ones the VM lets go of, so a bigger tree would fail with "Too many open files": shares use reverse sshfs. ${way ? `${way}raise ${limitOf}` : `Raise ${limitOf}`}`;
}

/** The way back to virtiofs this host has besides a higher limit, as the start of the reason's last sentence ('' when there is none). */
function lowLimitWay(flavor: Virtiofsd['flavor'], mode: VirtiofsdMode['kind'], hasDacReadSearch: boolean): string {
  if (mode === 'userns') return '';
  if (flavor !== 'rust') return '`sudo npm run virtiofsd` brings the Rust virtiofsd, which names files by handle, or ';
  return hasDacReadSearch ? '' : 'Give Berth CAP_DAC_READ_SEARCH so that the Rust virtiofsd names files by handle, or ';
}

/** virtiofsd's open-files limit where it is low (LOW_OPEN_FILE_LIMIT), else undefined. */
function lowLimit(h: ProbeHost, mode: VirtiofsdMode): number | undefined {
  const n = virtiofsdOpenFiles(h, mode);
  return n !== undefined && n < LOW_OPEN_FILE_LIMIT ? n : undefined;
}

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
  if (h.uid === 0) {
    // Files by handle only where the limit is low: it needs CAP_DAC_READ_SEARCH (open_by_handle_at), see virtiofsd.ts.
    const low = lowLimit(h, { kind: 'root' });
    const dac = hasCapability(h, 2);
    const handles = parsed.flavor === 'rust' && low !== undefined && dac;
    if (low !== undefined && !handles) return no(lowLimitReason(label, low, lowLimitWay(parsed.flavor, 'root', dac)));
    const root: VirtiofsdMode = handles ? { kind: 'root', fileHandles: true } : { kind: 'root' };
    const how = `${label} as root${handles ? `, files named by handle (it may hold only ${low} open)` : ''}`;
    return { support: { ok: true, how, needsSocket: true, readOnlyDevice: true }, binary, mode: root };
  }
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
  const low = lowLimit(h, mode);
  if (low !== undefined) return no(lowLimitReason(label, low, lowLimitWay(parsed.flavor, 'userns', false)));
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
