import crypto from 'node:crypto';
import type { EventEmitter } from 'node:events';

/**
 * The driver interface: a driver turns a VmSpec into its hypervisor's own
 * command line or script, starts it, reports when it exits and stops it.
 * It knows nothing about Docker, ssh sessions or sockets.
 */
export type GuestArch = 'x86_64' | 'aarch64';
/** The drivers Berth has (settings' `driver`, less `auto`). */
export type DriverName = 'qemu' | 'vfkit' | 'hyperv';
/** QEMU's accelerators, and `hyperv` for the Hyper-V driver (vfkit runs on hvf). */
export type Accelerator = 'kvm' | 'tcg' | 'hvf' | 'hyperv';

export interface DiskSpec {
  path: string;
  /** The guest finds disks by this serial, never by probe order. */
  serial: string;
  readonly: boolean;
  format: 'raw';
  /**
   * Drivers that make the disk themselves (Hyper-V: a dynamic VHDX) create
   * it at this size when it is missing and grow it when it is smaller; a
   * larger one is DISK_SHRINK, before the VM is made.
   */
  sizeBytes?: number;
}

export interface VmSpec {
  /** Instance name; the hypervisor process is named berth-<name>. */
  name: string;
  arch: GuestArch;
  accel: Accelerator;
  cpus: number;
  memoryMiB: number;
  kernel: string;
  initrd: string;
  cmdline: string;
  disks: DiskSpec[];
  /** Host loopback port forwarded to the guest's sshd. */
  sshHostPort: number;
  /**
   * More hypervisor-level TCP forwards, "HOSTPORT:GUESTPORT" on loopback.
   * Only for measuring (npm run bench compares Berth's forwards with them).
   */
  extraHostForwards?: string[];
  serialLog: string;
  pidFile: string;
  /** The hypervisor's control endpoint (QMP for QEMU, vfkit's REST socket). */
  controlSocket: string;

  // Optional, for hypervisors without QEMU's loopback hostfwd (vfkit,
  // Hyper-V) or with boot paths of their own. QEMU ignores them.

  /**
   * MAC address of the guest's NIC ("52:54:00:12:34:56"). Drivers whose guest
   * gets its address by DHCP find it by this MAC (vfkit NAT: the host's DHCP
   * leases; Hyper-V: the adapter). Unset: each driver derives a stable one
   * from the instance name.
   */
  macAddress?: string;
  /**
   * Boot through UEFI from a bootable disk (an ESP with a loader or a unified
   * kernel image) instead of kernel/initrd/cmdline. Hyper-V generation 2
   * can only boot this way; vfkit and QEMU can do either.
   */
  efi?: EfiBootSpec;
  /** Host folders the guest mounts by tag (virtiofs where the driver has it). */
  shares?: ShareSpec[];
  /**
   * Apple silicon: expose Rosetta to the guest as a virtiofs share with this
   * tag, so amd64 binaries run through binfmt_misc. Ignored elsewhere.
   */
  rosetta?: { tag: string; install?: boolean };
  /** vsock ports exposed as host unix sockets (vfkit). */
  vsock?: VsockSpec[];
}

export interface EfiBootSpec {
  /** Bootable disk image: raw for vfkit/QEMU, VHDX for Hyper-V. */
  image: string;
  /** Where the firmware keeps its variables (created when missing). */
  variableStore: string;
}

export interface ShareSpec {
  /** Absolute host folder. */
  hostPath: string;
  /** The guest mounts it with `mount -t virtiofs <tag> <dir>`. */
  tag: string;
  readonly?: boolean;
  /**
   * QEMU: the vhost-user socket its virtiofsd listens on (owner-only, in the
   * instance folder). Drivers whose hypervisor serves the files itself
   * (vfkit) ignore it.
   */
  socketPath?: string;
}

export interface VsockSpec {
  port: number;
  /** Host unix socket bridged to the guest's vsock port. */
  socketPath: string;
  /** `connect`: the host connects to a guest listener; `listen`: the reverse. */
  direction: 'connect' | 'listen';
}

/** Where the engine reaches the guest's sshd. */
export interface SshEndpoint {
  host: string;
  port: number;
}

/** What the guest image must do differently under a driver. */
export interface GuestTraits {
  /** Kernel console device for `console=` so the serial log shows the boot. */
  console: string;
  /**
   * `static`: QEMU user networking's fixed 10.0.2.15/24; `dhcp`: the
   * hypervisor's NAT hands out an address (vfkit, Hyper-V Default Switch).
   */
  network: 'static' | 'dhcp';
  /**
   * Where the guest reaches the host's own loopback, for
   * host.docker.internal. `network`: the guest's network takes it there
   * (QEMU user networking's gateway 10.0.2.2: slirp connects to the host's
   * 127.0.0.1). `relay`: the network reaches only the host's other
   * addresses (vfkit's NAT, Hyper-V's switch), so the address is the
   * guest's own (HOST_RELAY_ADDRESS) and the engine carries what is sent
   * to it over ssh to the host's loopback (forward/host-relay.ts).
   */
  hostLoopback: { address: string; via: 'network' | 'relay' };
  /**
   * How the guest finds spec.disks: `virtio-serial` by the DiskSpec serial
   * (/sys/block/<dev>/serial); `scsi-lun` by SCSI LUN on controller 0, a
   * fixed LUN per serial (HYPERV_DISK_LUNS; LUN 0 is the EFI disk), as on
   * Hyper-V. The guest tries the serial first and the LUN after
   * (vm-images/rootfs/etc/berth/disks.sh), so it needs no telling which.
   */
  disks: 'virtio-serial' | 'scsi-lun';
}

/** How a driver boots the guest, and so which image artifacts it needs. */
export type BootMode = 'kernel' | 'efi' | 'vhdx';

/**
 * What a driver can do, as data the rest of the engine asks for (features.ts
 * has each driver's); nobody outside drivers/ compares driver names.
 */
export interface DriverFeatures {
  /** For messages: "QEMU", "vfkit", "Hyper-V". */
  label: string;
  /** `choose`: probe or take the accel setting (QEMU); else its own hypervisor, always. */
  accelerator: 'choose' | { accel: Accelerator; reason: string };
  /** The boot modes it can do; the first is what it boots unless told otherwise. */
  bootModes: readonly BootMode[];
  /**
   * `raw`: the engine grows a sparse raw data disk and attaches the raw
   * config disk; `vhdx`: the driver makes its own data disk (a dynamic
   * VHDX) and attaches the config disk as a fixed VHD the engine writes.
   */
  diskFormat: 'raw' | 'vhdx';
  /** Can give an arm64 guest Apple's Rosetta (Virtualization.framework). */
  rosetta: boolean;
  /**
   * The VM is a process of ours with a pid file (QEMU, vfkit), so a VM left
   * without its engine is found by pid; else it lives in the hypervisor's
   * own service (Hyper-V) and only the run state says it may still run.
   */
  ownProcess: boolean;
}

/** What the driver can do with virtio-fs on this host (Driver.virtiofs()). */
export type VirtiofsSupport =
  | {
      ok: true;
      /** For status: "Virtualization.framework", "virtiofsd 7.2.22 as root", ... */
      how: string;
      /** QEMU: per-share vhost-user sockets. */
      needsSocket: boolean;
      /** The device itself can be read-only (host-enforced). */
      readOnlyDevice: boolean;
      /** Characters a shared folder's path cannot have on the hypervisor's command line. */
      unsafePathChars?: string;
    }
  | { ok: false; reason: string };

export interface VmExit {
  /** Why the engine thinks the VM went away. */
  reason: string;
}

export interface RunningVm extends EventEmitter<{ exit: [VmExit] }> {
  readonly pid: number;
  alive(): boolean;
  /** Ask the guest OS to power off (ACPI power button). */
  requestPowerOff(): Promise<void>;
  /** Force the VM off: SIGTERM, then SIGKILL. Resolves once it is gone. */
  kill(graceMs?: number): Promise<void>;
  /** Resolves once the VM process is gone, or false after `timeoutMs`. */
  waitExit(timeoutMs: number): Promise<boolean>;
  /** Drop the engine's hold (monitor connection) without stopping the VM. */
  detach(): void;
  /**
   * Where the guest's sshd answers. Drivers without a loopback forward
   * (vfkit, Hyper-V) find the guest's address here, waiting up to
   * `timeoutMs` for it to appear. Absent: 127.0.0.1:spec.sshHostPort.
   */
  sshEndpoint?(timeoutMs?: number): Promise<SshEndpoint>;
  /** The hypervisor's own word for the VM state ("running", "Off", ...). */
  state?(): Promise<string>;
  /**
   * Drivers with a separate file server per share (QEMU's virtiofsd): call
   * `cb` when one exits while the VM runs. The device cannot come back
   * without a reboot; the engine mounts that share another way.
   */
  onShareLost?(cb: (tag: string, reason: string) => void): void;
}

export interface Driver {
  readonly name: string;
  readonly features: DriverFeatures;
  start(spec: VmSpec): Promise<RunningVm>;
  /** A VM left running by an earlier engine for this spec, or null. */
  attach(spec: VmSpec): Promise<RunningVm | null>;
  /** What the guest must do differently here. Absent: QEMU's traits. */
  guestTraits?(arch: GuestArch): GuestTraits;
  /** Whether spec.shares can be virtio-fs devices here. Absent: never (reverse sshfs). */
  virtiofs?(): Promise<VirtiofsSupport>;
}

/** QEMU user networking's gateway: connections to it reach the host's 127.0.0.1. */
export const QEMU_USER_NET_HOST = '10.0.2.2';

/**
 * The guest's own address for the host where the engine relays it
 * (GuestTraits.hostLoopback `relay`): in 198.18.0.0/15, which RFC 2544
 * keeps for benchmarks, so it is no LAN's, VPN's or container network's.
 */
export const HOST_RELAY_ADDRESS = '198.19.255.254';

/** QEMU's guest traits: the defaults for drivers without `guestTraits`. */
export function defaultGuestTraits(arch: GuestArch): GuestTraits {
  return {
    console: arch === 'aarch64' ? 'ttyAMA0' : 'ttyS0',
    network: 'static',
    hostLoopback: { address: QEMU_USER_NET_HOST, via: 'network' },
    disks: 'virtio-serial',
  };
}

/**
 * A stable, locally administered unicast MAC for an instance (52:54:xx, as
 * QEMU's prefix), so its DHCP lease and so its address survive restarts.
 */
export function defaultMacAddress(name: string): string {
  const h = crypto.createHash('sha256').update(`berth:${name}`).digest();
  return [0x52, 0x54, h[0]!, h[1]!, h[2]!, h[3]!].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Where to reach the guest's sshd, whichever driver runs it. */
export async function sshEndpointOf(vm: RunningVm, spec: VmSpec, timeoutMs?: number): Promise<SshEndpoint> {
  return vm.sshEndpoint ? vm.sshEndpoint(timeoutMs) : { host: '127.0.0.1', port: spec.sshHostPort };
}

/** Graceful first, then forced: power-off request, wait, then kill. */
export async function stopVm(vm: RunningVm, graceMs: number, killGraceMs?: number): Promise<'graceful' | 'forced'> {
  if (!vm.alive()) return 'graceful';
  await vm.requestPowerOff();
  if (await vm.waitExit(graceMs)) return 'graceful';
  await vm.kill(killGraceMs);
  return 'forced';
}
