import crypto from 'node:crypto';
import path from 'node:path';
import type { ShareSpec, VirtiofsSupport } from '../drivers/driver.js';

/**
 * virtiofs shares: which shared folders the VM gets as virtio-fs devices,
 * under which tag, and how the guest mounts them. Pure decisions; the
 * drivers make the devices (vfkit's `--device virtio-fs`, QEMU's
 * vhost-user-fs-pci with a virtiofsd per share) and the share manager runs
 * the mounts.
 *
 * virtio-fs is fixed at boot: a device exists only if it was on the
 * hypervisor's command line. A share added while the VM runs is mounted by
 * reverse sshfs until the next restart, and reverse sshfs is also the
 * fallback whenever virtio-fs is not available or fails.
 */

export type ShareMechanismSetting = 'auto' | 'virtiofs' | 'sshfs';
export type ShareMechanismName = 'virtiofs' | 'reverse-sshfs';

/** A shared folder as settings hold it (the same shape as ShareSetting). */
export interface ShareEntry {
  hostPath: string;
  guestPath?: string;
  readOnly?: boolean;
}

/**
 * The virtio-fs tag field is 36 bytes (virtio spec 1.2, 5.11.4 "Device
 * configuration layout": `u8 tag[36]`); QEMU's vhost-user-fs refuses a
 * longer tag and Virtualization.framework's
 * VZVirtioFileSystemDeviceConfiguration.validateTag does too.
 */
export const MAX_TAG_BYTES = 36;

/** Linux's sun_path is 108 bytes, NUL included. */
export const MAX_UNIX_SOCKET_PATH = 107;

/** One share's identity: the same host folder at the same guest path, same mode. */
export function shareKey(s: ShareEntry): string {
  return `${s.hostPath}\0${s.guestPath ?? s.hostPath}\0${s.readOnly ? 'ro' : 'rw'}`;
}

/**
 * A stable tag for a share: `berth-<name>-<hash>`, at most 36 bytes of
 * [a-z0-9-]. The hash is of the share's identity (host folder, guest path,
 * read-only), so the same share gets the same tag on every start and two
 * shares never share one; the name (from the folder's base name) only
 * makes `/proc/mounts` in the guest readable.
 */
export function virtiofsTag(s: ShareEntry): string {
  const hash = crypto.createHash('sha256').update(shareKey(s)).digest('hex').slice(0, 10);
  const base = path.posix.basename(s.hostPath.replace(/\\/g, '/')) || 'root';
  const name = base
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, MAX_TAG_BYTES - 'berth-'.length - 1 - hash.length)
    .replace(/-+$/, '');
  return name ? `berth-${name}-${hash}` : `berth-${hash}`;
}

/** How one share is mounted, and why. */
export interface ShareRoute {
  mechanism: ShareMechanismName;
  reason: string;
  /** virtiofs: the device's tag. */
  tag?: string;
}

export interface SharePlan {
  /** The virtio-fs devices for the VM spec. */
  devices: ShareSpec[];
  /** Routes by shareKey, for the shares known at start. */
  routes: Record<string, ShareRoute>;
  /** For shares added later: why they are not virtiofs (or that a restart makes them so). */
  later: string;
}

export interface PlanInputs {
  shares: ShareEntry[];
  setting: ShareMechanismSetting;
  /** Where the setting came from, for the reasons ("settings" or "BERTH_SHARE_MECHANISM"). */
  settingSource?: string;
  driver: string;
  support: VirtiofsSupport;
  /** Where per-share vhost-user sockets go (QEMU): the instance's folder. */
  socketDir: string;
  /** Is this host folder a folder right now? */
  isDir: (p: string) => boolean;
}

/**
 * Which shares become virtio-fs devices at this start. `sshfs` in settings
 * (or BERTH_SHARE_MECHANISM) keeps every share on reverse sshfs; `auto` and
 * `virtiofs` use virtio-fs wherever the driver has it (vfkit always; QEMU
 * when virtiofsd is installed and can run for this user; Hyper-V never),
 * except for a share that virtio-fs cannot carry: a host folder missing at
 * start (reverse sshfs mounts it as soon as it appears), a read-only share
 * on a driver whose device cannot be read-only (vfkit: the guest could
 * remount it read-write; reverse sshfs refuses writes on the host), a path
 * vfkit's command line cannot hold, or a socket path too long for Linux.
 */
export function planShares(i: PlanInputs): SharePlan {
  const routes: Record<string, ShareRoute> = {};
  const devices: ShareSpec[] = [];
  const src = i.settingSource ?? 'settings';
  const sshfsAll = (reason: string): SharePlan => {
    for (const s of i.shares) routes[shareKey(s)] = { mechanism: 'reverse-sshfs', reason };
    return { devices, routes, later: reason };
  };
  if (i.setting === 'sshfs') return sshfsAll(`shareMechanism=sshfs (${src})`);
  if (!i.support.ok) {
    const why = i.setting === 'virtiofs' ? `shareMechanism=virtiofs (${src}), but ${i.support.reason}` : i.support.reason;
    return sshfsAll(why);
  }
  const how = i.support.how;
  const unsafeIn = (p: string) => [...(i.support.ok ? (i.support.unsafePathChars ?? '') : '')].filter((c) => p.includes(c));
  const tags = new Set<string>();
  for (const s of i.shares) {
    const k = shareKey(s);
    const tag = virtiofsTag(s);
    const socketPath = i.support.needsSocket ? path.join(i.socketDir, `${tag}.sock`) : undefined;
    const problem = !i.isDir(s.hostPath)
      ? 'the host folder did not exist at start'
      : s.readOnly && !i.support.readOnlyDevice
        ? `${i.driver}'s virtio-fs device cannot be read-only, and reverse sshfs refuses writes on the host`
        : unsafeIn(s.hostPath).length
          ? `the path has ${unsafeIn(s.hostPath)
              .map((c) => JSON.stringify(c))
              .join(' and ')}, which ${i.driver}'s command line cannot carry`
          : socketPath && socketPath.length > MAX_UNIX_SOCKET_PATH
            ? `its virtiofsd socket path would be ${socketPath.length} bytes (Linux allows ${MAX_UNIX_SOCKET_PATH}); a shorter BERTH_HOME fixes it`
            : tags.has(tag)
              ? 'two shares of the same folder'
              : undefined;
    if (problem) {
      routes[k] = { mechanism: 'reverse-sshfs', reason: `not virtiofs: ${problem}` };
      continue;
    }
    tags.add(tag);
    const spec: ShareSpec = { hostPath: s.hostPath, tag };
    if (s.readOnly) spec.readonly = true;
    if (socketPath) spec.socketPath = socketPath;
    devices.push(spec);
    routes[k] = { mechanism: 'virtiofs', reason: how, tag };
  }
  return { devices, routes, later: 'added while the VM runs: virtio-fs devices are fixed at boot, so it is virtiofs from the next restart' };
}

/** The route of a share: planned at start, else reverse sshfs with the plan's reason. */
export function routeOf(plan: Pick<SharePlan, 'routes' | 'later'>, s: ShareEntry): ShareRoute {
  return plan.routes[shareKey(s)] ?? { mechanism: 'reverse-sshfs', reason: plan.later };
}
