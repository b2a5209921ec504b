import type { EventEmitter } from 'node:events';

/**
 * The driver interface: a driver turns a VmSpec into its hypervisor's own
 * command line or script, starts it, reports when it exits and stops it.
 * It knows nothing about Docker, ssh sessions or sockets.
 */
export type GuestArch = 'x86_64' | 'aarch64';
export type Accelerator = 'kvm' | 'tcg' | 'hvf';

export interface DiskSpec {
  path: string;
  /** The guest finds disks by this serial, never by probe order. */
  serial: string;
  readonly: boolean;
  format: 'raw';
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
  /** The hypervisor's control endpoint (QMP for QEMU). */
  controlSocket: string;
}

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
}

export interface Driver {
  readonly name: string;
  start(spec: VmSpec): Promise<RunningVm>;
  /** A VM left running by an earlier engine for this spec, or null. */
  attach(spec: VmSpec): Promise<RunningVm | null>;
}
