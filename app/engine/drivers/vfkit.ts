import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BerthError } from '../../contract/errors.js';
import { tailFile } from '../../base/fs-util.js';
import { findExecutable, isProcessOf, pidAlive, readPidFile, sleep, waitFor } from '../../base/process-util.js';
import {
  defaultMacAddress,
  HOST_RELAY_ADDRESS,
  type Driver,
  type GuestArch,
  type GuestTraits,
  type RunningVm,
  type SshEndpoint,
  type VmSpec,
  type VirtiofsSupport,
} from './driver.js';
import { DRIVER_FEATURES } from './features.js';
import { ProcessVm } from './process-vm.js';
import { DHCP_LEASES_FILE, leaseIpFor, normalizeMacColons } from './dhcp-leases.js';
import { VfkitRest } from './vfkit-rest.js';

/**
 * macOS Virtualization.framework through vfkit (github.com/crc-org/vfkit,
 * doc/usage.md). vfkit runs the VM in the foreground and exits when it
 * stops; the engine starts it detached with its output in a log file, keeps
 * its pid in spec.pidFile, and drives it through vfkit's REST API on the
 * unix socket spec.controlSocket (GET /vm/state, POST /vm/state).
 *
 * Networking is Virtualization.framework NAT: the guest gets its address by
 * DHCP from macOS's bootpd, which records it in /var/db/dhcpd_leases under
 * the MAC address we assign; the engine's ssh goes there (sshEndpoint()).
 *
 * Needs macOS 13+ and vfkit 0.6.0+ (read-only virtio-blk). Disks carry their
 * serial as vfkit's deviceId (Virtualization.framework's
 * blockDeviceIdentifier), so the guest finds them by the same
 * /dev/disk/by-id/virtio-<serial> names as under QEMU. On Apple silicon the
 * Linux loader needs an uncompressed kernel (doc/usage.md: "The kernel
 * *must* be uncompressed or the VM will hang"): the image build always
 * writes the plain arm64 Image (vm-images/unpack-kernel.sh), and start()
 * checks the file's header so a foreign image fails with a reason instead
 * of a hung VM.
 */

/** macOS's sun_path is 104 bytes, NUL included (vfkit checks the same). */
const MAX_SOCKET_PATH = 103;
/** Virtualization.framework's blockDeviceIdentifier limit (virtio-blk serial). */
const MAX_DEVICE_ID = 20;

/** REST state names, as vfkit returns them (doc/usage.md, "Get the virtual machine's state"). */
export const VFKIT_RUNNING = 'VirtualMachineStateRunning';
export const VFKIT_STOPPED = 'VirtualMachineStateStopped';

export function findVfkit(explicit?: string): string {
  const wanted = explicit || 'vfkit';
  const found = findExecutable(wanted);
  if (!found) {
    throw new BerthError(
      'VFKIT_MISSING',
      `${wanted} was not found${explicit ? '' : ' on PATH'}`,
      'Install vfkit with `brew install vfkit` (macOS 13 or later), or choose the QEMU driver: `berth settings set driver=qemu`.',
    );
  }
  return found;
}

function unsupported(message: string, hint: string): BerthError {
  return new BerthError('VM_SPEC_UNSUPPORTED', message, hint);
}

/**
 * vfkit splits `--device` values on every comma with no quoting at all
 * (pkg/config: strings.Split(opts, ",")), and `--bootloader` values on
 * commas outside double quotes: a path with a comma or a quote cannot be
 * expressed, so refuse it rather than boot with half a path.
 */
function devicePath(what: string, p: string): string {
  if (/[,"]/.test(p)) {
    throw unsupported(
      `the ${what} path ${p} contains a comma or a double quote, which vfkit's command line cannot carry`,
      'Move the Berth folder (BERTH_HOME) or the image cache (BERTH_CACHE) to a path without commas or quotes.',
    );
  }
  if (!path.isAbsolute(p)) throw unsupported(`the ${what} path ${p} is not absolute`, 'This is a bug in Berth; please report it.');
  return p;
}

/** The Linux console on vfkit is virtio-console (`virtio-serial` device): hvc0. */
export function vfkitCmdline(cmdline: string): string {
  const fixed = /\bconsole=(ttyS0|ttyAMA0)\b/.test(cmdline)
    ? cmdline.replace(/\bconsole=(ttyS0|ttyAMA0)\b/g, 'console=hvc0')
    : /\bconsole=/.test(cmdline)
      ? cmdline
      : `${cmdline} console=hvc0`.trim();
  if (fixed.includes('"')) {
    throw unsupported('the kernel command line contains a double quote, which vfkit cannot carry', 'This is a bug in Berth; please report it.');
  }
  return fixed;
}

export type KernelKind = 'arm64-image' | 'gzip' | 'efi-zboot' | 'x86-bzimage' | 'unknown';

/**
 * What a kernel file is, from its first 1 KiB: the arm64 Image header's
 * magic "ARM\x64" at 0x38 (Documentation/arch/arm64/booting.rst), gzip's
 * 1f 8b, an EFI zboot image ("MZ" then "zimg" at 4,
 * drivers/firmware/efi/libstub/zboot-header.S), or the x86 setup header's
 * "HdrS" at 0x202 (Documentation/arch/x86/boot.rst).
 */
export function kernelKind(head: Buffer): KernelKind {
  if (head.length >= 0x3c && head.subarray(0x38, 0x3c).toString('latin1') === 'ARM\x64') return 'arm64-image';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 8 && head.subarray(0, 2).toString('latin1') === 'MZ' && head.subarray(4, 8).toString('latin1') === 'zimg') return 'efi-zboot';
  if (head.length >= 0x206 && head.subarray(0x202, 0x206).toString('latin1') === 'HdrS') return 'x86-bzimage';
  return 'unknown';
}

const KERNEL_KIND_TEXT: Record<KernelKind, string> = {
  'arm64-image': 'an uncompressed arm64 Image',
  gzip: 'gzip-compressed (Image.gz)',
  'efi-zboot': 'an EFI zboot image (compressed)',
  'x86-bzimage': 'an x86 bzImage',
  unknown: 'not a kernel image vfkit can boot',
};

/**
 * Refuse, before vfkit runs, an arm64 direct kernel boot of anything but
 * the plain Image: Virtualization.framework would hang on it with no word.
 */
export function checkVfkitKernel(spec: Pick<VmSpec, 'arch' | 'kernel' | 'efi'>): void {
  if (spec.efi || spec.arch !== 'aarch64') return;
  let head: Buffer;
  try {
    const fd = fs.openSync(spec.kernel, 'r');
    try {
      head = Buffer.alloc(1024);
      head = head.subarray(0, fs.readSync(fd, head, 0, head.length, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw new BerthError(
      'IMAGE_MISSING',
      `the guest kernel ${spec.kernel} cannot be read: ${(err as Error).message}`,
      'Rebuild the guest image with `npm run image`.',
    );
  }
  const kind = kernelKind(head);
  if (kind === 'arm64-image') return;
  throw unsupported(
    `the guest kernel ${spec.kernel} is ${KERNEL_KIND_TEXT[kind]}; Virtualization.framework's Linux loader boots only an uncompressed arm64 Image (the VM would hang)`,
    'Use a guest image built by this version of Berth (its build writes the uncompressed Image), or boot the EFI disk instead: BERTH_BOOT=efi.',
  );
}

/** `unix://` URI for vfkit's --restful-uri; Go's url parser decodes the escapes back. */
export function restfulUri(socketPath: string): string {
  return `unix://${socketPath.replace(/[%?# ]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'))}`;
}

/**
 * The vfkit command line for a spec, as data. Flags follow vfkit's
 * doc/usage.md: --cpus, --memory (MiB), --bootloader linux|efi,
 * --device virtio-blk|virtio-net|virtio-fs|rosetta|virtio-serial|virtio-rng|virtio-vsock,
 * --restful-uri.
 */
export function buildVfkitArgs(spec: VmSpec): string[] {
  const args: string[] = ['--cpus', String(spec.cpus), '--memory', String(spec.memoryMiB)];
  if (spec.efi) {
    args.push('--bootloader', `efi,variable-store=${devicePath('EFI variable store', spec.efi.variableStore)},create`);
    args.push('--device', `virtio-blk,path=${devicePath('EFI boot disk', spec.efi.image)},deviceId=berth-efi`);
  } else {
    args.push(
      '--bootloader',
      `linux,kernel=${devicePath('kernel', spec.kernel)},initrd=${devicePath('initrd', spec.initrd)},cmdline="${vfkitCmdline(spec.cmdline)}"`,
    );
  }
  for (const d of spec.disks) {
    if (d.format !== 'raw') throw unsupported(`disk ${d.serial} is ${d.format}; Virtualization.framework takes raw images only`, 'Convert it to raw.');
    // deviceId becomes the virtio-blk serial the guest finds the disk by
    // (/dev/disk/by-id/virtio-<serial>), as QEMU's serial= does.
    if (!/^[A-Za-z0-9._-]+$/.test(d.serial) || d.serial.length > MAX_DEVICE_ID) {
      throw unsupported(
        `disk serial "${d.serial}" is not a valid Virtualization.framework device identifier`,
        'Use up to 20 ASCII letters, digits, dots, dashes or underscores.',
      );
    }
    args.push('--device', `virtio-blk,path=${devicePath('disk', d.path)}${d.readonly ? ',readonly' : ''},deviceId=${d.serial}`);
  }
  args.push('--device', `virtio-net,nat,mac=${normalizeMacColons(spec.macAddress ?? defaultMacAddress(spec.name))}`);
  for (const s of spec.shares ?? []) {
    if (!/^[A-Za-z0-9._-]+$/.test(s.tag)) throw unsupported(`share tag "${s.tag}" is not valid`, 'Use letters, digits, dots, dashes or underscores.');
    // virtio-fs in vfkit has no read-only option: a read-only share is mounted
    // read-only by the guest.
    args.push('--device', `virtio-fs,sharedDir=${devicePath('shared folder', s.hostPath)},mountTag=${s.tag}`);
  }
  if (spec.rosetta && spec.arch === 'aarch64') {
    args.push('--device', `rosetta,mountTag=${spec.rosetta.tag}${spec.rosetta.install ? ',install' : ''}`);
  }
  args.push('--device', `virtio-serial,logFilePath=${devicePath('serial log', spec.serialLog)}`);
  args.push('--device', 'virtio-rng');
  for (const v of spec.vsock ?? []) {
    if (!Number.isInteger(v.port) || v.port <= 0 || v.port > 0xffffffff) throw unsupported(`vsock port ${v.port} is not valid`, 'Use 1..4294967295.');
    args.push('--device', `virtio-vsock,port=${v.port},socketURL=${devicePath('vsock socket', v.socketPath)},${v.direction}`);
  }
  if (spec.controlSocket.length > MAX_SOCKET_PATH) {
    throw new BerthError(
      'SOCKET_PATH_TOO_LONG',
      `the vfkit control socket path is ${spec.controlSocket.length} bytes; macOS allows ${MAX_SOCKET_PATH}`,
      'Use a shorter BERTH_HOME (for example ~/.berth).',
    );
  }
  args.push('--restful-uri', restfulUri(spec.controlSocket));
  return args;
}

/** Is `pid` the vfkit of this spec (not a recycled pid)? */
function isOurVfkit(pid: number, spec: VmSpec): boolean {
  return isProcessOf(pid, 'vfkit', spec.controlSocket);
}

export interface VfkitDriverOptions {
  /** vfkit binary (name on PATH or path; BERTH_VFKIT); default `vfkit`. */
  binary?: string;
  /** Where bootpd records leases; default /var/db/dhcpd_leases. */
  leasesFile?: string;
  /** How long a start may take to reach the running state. */
  startTimeoutMs?: number;
  /** Liveness poll interval. */
  pollMs?: number;
  /** The guest's sshd port (22; tests point it at a fake guest). */
  sshPort?: number;
}

class VfkitVm extends ProcessVm {
  constructor(
    pid: number,
    spec: VmSpec,
    private readonly rest: VfkitRest,
    private readonly o: Required<Pick<VfkitDriverOptions, 'leasesFile' | 'pollMs' | 'sshPort'>>,
    child?: ChildProcess,
  ) {
    super(pid, spec, o.pollMs);
    child?.on('exit', (code, signal) => void this.checkExit(`vfkit exited (${signal ?? `status ${code}`})`));
  }

  protected goneReason(): string {
    return 'the vfkit process is gone';
  }

  async state(): Promise<string> {
    if (!pidAlive(this.pid)) return VFKIT_STOPPED;
    return this.rest.state();
  }

  async requestPowerOff(): Promise<void> {
    await this.rest.changeState('Stop').catch(() => undefined);
  }

  /** HardStop through vfkit's REST API. */
  protected askHardStop(graceMs: number): Promise<boolean> {
    return this.rest.changeState('HardStop', Math.min(graceMs, 2000)).then(
      () => true,
      () => false,
    );
  }

  /**
   * vfkit's own SIGTERM handler asks the guest, waits 5 s, then stops it
   * hard: give it that long when the API was not there to do it.
   */
  protected termGraceMs(asked: boolean, graceMs: number): number {
    return asked ? graceMs : graceMs + 5500;
  }

  /** The guest's address from bootpd's leases, matched by our MAC. */
  async sshEndpoint(timeoutMs = 60_000): Promise<SshEndpoint> {
    const mac = this.spec.macAddress ?? defaultMacAddress(this.spec.name);
    let ip: string | undefined;
    await waitFor(
      () => {
        if (!this.alive()) return true;
        try {
          ip = leaseIpFor(fs.readFileSync(this.o.leasesFile, 'utf8'), mac);
        } catch {
          ip = undefined;
        }
        return ip !== undefined;
      },
      timeoutMs,
      250,
    );
    if (ip) return { host: ip, port: this.o.sshPort };
    if (!this.alive()) throw new BerthError('VM_EXITED', 'the VM exited before it got a network address', 'The serial log may say why: `berth logs --serial`.');
    throw new BerthError(
      'GUEST_UNREACHABLE',
      `the guest got no DHCP lease for ${mac} within ${Math.round(timeoutMs / 1000)} s`,
      `macOS records the VM's address in ${this.o.leasesFile}. VPN or firewall software that filters the bridge100 interface can block it; \`berth logs --serial\` shows whether the guest asked for an address.`,
    );
  }
}

export class VfkitDriver implements Driver {
  readonly name = 'vfkit';
  readonly features = DRIVER_FEATURES.vfkit;
  private readonly o: Required<Omit<VfkitDriverOptions, 'binary'>> & { binary?: string };

  constructor(options: VfkitDriverOptions = {}) {
    this.o = {
      binary: options.binary,
      leasesFile: options.leasesFile ?? DHCP_LEASES_FILE,
      startTimeoutMs: options.startTimeoutMs ?? 20_000,
      pollMs: options.pollMs ?? 2000,
      sshPort: options.sshPort ?? 22,
    };
  }

  guestTraits(_arch: GuestArch): GuestTraits {
    return { console: 'hvc0', network: 'dhcp', hostLoopback: { address: HOST_RELAY_ADDRESS, via: 'relay' }, disks: 'virtio-serial' };
  }

  /**
   * Virtualization.framework serves virtio-fs itself, as the user running
   * vfkit (VZVirtioFileSystemDevice: files are read and written with that
   * user's id, and shown to each guest user as their own, as Lima issue
   * #1513 observed). vfkit's virtio-fs device has only sharedDir and
   * mountTag (doc/usage.md, "File Sharing"): no read-only device. Its
   * command line splits the device's options at commas and cannot quote.
   */
  async virtiofs(): Promise<VirtiofsSupport> {
    return { ok: true, how: "Virtualization.framework's virtio-fs (vfkit)", needsSocket: false, readOnlyDevice: false, unsafePathChars: ',"' };
  }

  /** vfkit's own stdout/stderr, next to the pid file. */
  static logFile(spec: VmSpec): string {
    return path.join(path.dirname(spec.pidFile), 'vfkit.log');
  }

  async start(spec: VmSpec): Promise<RunningVm> {
    const vfkit = findVfkit(this.o.binary);
    const args = buildVfkitArgs(spec);
    checkVfkitKernel(spec);
    fs.rmSync(spec.pidFile, { force: true });
    fs.rmSync(spec.controlSocket, { force: true });
    const logFile = VfkitDriver.logFile(spec);
    const log = fs.openSync(logFile, 'w', 0o600);
    let child: ChildProcess;
    try {
      // Detached with its output in a file: the VM outlives the engine, as
      // QEMU's -daemonize does, and no pipe ties vfkit to us.
      child = spawn(vfkit, args, { detached: true, stdio: ['ignore', log, log] });
    } finally {
      fs.closeSync(log);
    }
    const spawnError = await new Promise<Error | undefined>((resolve) => {
      child.once('error', resolve);
      child.once('spawn', () => resolve(undefined));
    });
    if (spawnError || !child.pid) {
      throw new BerthError(
        'VFKIT_FAILED',
        `vfkit could not be started: ${spawnError?.message ?? 'no pid'}`,
        'Check the vfkit installation (`vfkit --version`).',
      );
    }
    child.unref();
    const pid = child.pid;
    fs.writeFileSync(spec.pidFile, `${pid}\n`, { mode: 0o600 });
    const exited: { info?: string } = {};
    child.once('exit', (code, signal) => (exited.info = signal ? `signal ${signal}` : `exit status ${code}`));

    const rest = new VfkitRest(spec.controlSocket);
    let lastState = '';
    const running = await waitFor(
      async () => {
        if (exited.info || !pidAlive(pid)) return true;
        lastState = await rest.state(1000).catch(() => lastState);
        return lastState === VFKIT_RUNNING;
      },
      this.o.startTimeoutMs,
      100,
    );
    if (exited.info || !pidAlive(pid) || !running) {
      const tail = tailFile(logFile, 20).join('\n');
      if (pidAlive(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      fs.rmSync(spec.pidFile, { force: true });
      const first =
        tail
          .split('\n')
          .reverse()
          .find((l) => /error|fail/i.test(l)) ??
        tail.split('\n').pop() ??
        '';
      const why = exited.info ?? (running ? 'it exited right after starting' : `state ${lastState || 'unknown'} after ${this.o.startTimeoutMs / 1000} s`);
      throw new BerthError(
        'VFKIT_FAILED',
        `vfkit did not start the VM (${why})${first ? `: ${first.trim()}` : ''}`,
        "vfkit needs macOS 13 or later and a signed binary with the virtualization entitlement (`brew install vfkit`). The log below has vfkit's own words; `berth logs --serial` has the guest's.",
        `${vfkit} ${args.join(' ')}\n${tail}`,
      );
    }
    for (const f of [spec.controlSocket, spec.serialLog]) {
      try {
        fs.chmodSync(f, 0o600);
      } catch {
        /* not created (yet) */
      }
    }
    return new VfkitVm(pid, spec, rest, { leasesFile: this.o.leasesFile, pollMs: this.o.pollMs, sshPort: this.o.sshPort }, child);
  }

  async attach(spec: VmSpec): Promise<RunningVm | null> {
    const pid = readPidFile(spec.pidFile);
    if (!pid) return null;
    if (!isOurVfkit(pid, spec)) {
      fs.rmSync(spec.pidFile, { force: true });
      return null;
    }
    const rest = new VfkitRest(spec.controlSocket);
    // A vfkit whose API does not answer is alive but useless to us; the pid
    // poll still reports its exit, and kill() falls back to signals.
    for (let i = 0; i < 10; i++) {
      if (
        await rest.state(1000).then(
          () => true,
          () => false,
        )
      )
        break;
      await sleep(100);
    }
    return new VfkitVm(pid, spec, rest, { leasesFile: this.o.leasesFile, pollMs: this.o.pollMs, sshPort: this.o.sshPort });
  }
}
