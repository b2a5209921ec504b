import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { BerthError } from '../../contract/errors.js';
import { tailFile } from '../../base/fs-util.js';
import { findExecutable, isProcessOf, pidAlive, readPidFile, sleep } from '../../base/process-util.js';
import type { Driver, GuestArch, RunningVm, VmSpec, VirtiofsSupport } from './driver.js';
import { DRIVER_FEATURES } from './features.js';
import { adaptQemuArgsForHost, ensureVariableStore, findEdk2Firmware, qemuAccel, qemuMachine, tcgCpu, thisHost, type QemuHost } from './qemu-host.js';
import { ProcessVm } from './process-vm.js';
import { QmpClient } from './qmp.js';
import { findBackends, startBackends, stopBackends, type RunningBackend } from './virtiofsd.js';
import { probeVirtiofsd, thisProbeHost, type VirtiofsdProbe } from './virtiofsd-probe.js';
import type { Tuning } from '../../base/tuning.js';

/** The binaries the overrides name (BERTH_QEMU, BERTH_VIRTIOFSD). */
export type QemuTools = Pick<Tuning, 'qemu' | 'virtiofsd'>;

/** The QEMU binary's name for a guest architecture. */
export function qemuBinaryName(arch: GuestArch): string {
  return arch === 'aarch64' ? 'qemu-system-aarch64' : 'qemu-system-x86_64';
}

/** The QEMU binary for a guest architecture; `explicit` (BERTH_QEMU) overrides. */
export function findQemu(arch: GuestArch, explicit?: string): string {
  const wanted = explicit || qemuBinaryName(arch);
  const found = findExecutable(wanted);
  if (!found) {
    const pkg = arch === 'aarch64' ? 'qemu-system-arm' : 'qemu-system-x86';
    throw new BerthError(
      'QEMU_MISSING',
      `${wanted} was not found${explicit ? '' : ' on PATH'}`,
      process.platform === 'darwin'
        ? 'Install QEMU with `brew install qemu`, or install vfkit.'
        : `Install QEMU: \`sudo apt-get install ${pkg} qemu-utils\` (Debian/Ubuntu) or \`sudo dnf install qemu-kvm\` (Fedora).`,
    );
  }
  return found;
}

/** The kernel console device the guest should log to. */
export function serialConsole(arch: GuestArch): string {
  return arch === 'aarch64' ? 'ttyAMA0' : 'ttyS0';
}

/**
 * The QEMU command line for a spec, as data. Flags follow QEMU's own
 * documentation (qemu-system-x86_64(1), "Invocation"): direct kernel boot,
 * the same virtio-*-pci devices on x86_64's q35 and aarch64's virt (PCIe on
 * both; the first -serial is the 16550 ttyS0 or the PL011 ttyAMA0),
 * virtio-blk disks found by serial, user-mode networking whose only host
 * forward is sshd on loopback, serial console into a file, QMP on a unix
 * socket, and daemonized with a pid file so the VM outlives the engine.
 */
export function buildQemuArgs(spec: VmSpec): string[] {
  const args: string[] = [];
  const shares = spec.shares ?? [];
  args.push('-name', `berth-${spec.name},process=berth-${spec.name}`);
  // vhost-user devices (virtiofsd) read and write guest memory themselves,
  // so guest RAM must be shared memory they can map: a memfd backend with
  // share=on as the machine's RAM (qemu-system-x86_64(1): -machine
  // memory-backend=id, -object memory-backend-memfd,...,share=on; QEMU's
  // docs/system/devices/vhost-user.rst, "Shared memory object").
  args.push('-machine', `${qemuMachine(spec.arch, spec.accel)}${shares.length ? ',memory-backend=mem' : ''}`);
  args.push('-accel', qemuAccel(spec.accel));
  args.push('-cpu', spec.accel === 'tcg' ? tcgCpu(spec.arch) : 'host');
  args.push('-smp', String(spec.cpus));
  args.push('-m', `${spec.memoryMiB}M`);
  if (shares.length) args.push('-object', `memory-backend-memfd,id=mem,size=${spec.memoryMiB}M,share=on`);
  args.push('-nodefaults', '-no-user-config', '-display', 'none');
  args.push('-kernel', spec.kernel, '-initrd', spec.initrd, '-append', spec.cmdline);
  spec.disks.forEach((d, i) => {
    const drive = [`if=none`, `id=disk${i}`, `file=${qemuEscape(d.path)}`, `format=${d.format}`];
    if (d.readonly) drive.push('readonly=on');
    else drive.push('discard=unmap', 'detect-zeroes=unmap');
    args.push('-drive', drive.join(','));
    args.push('-device', `virtio-blk-pci,drive=disk${i},serial=${d.serial}`);
  });
  const fwds = [`hostfwd=tcp:127.0.0.1:${spec.sshHostPort}-:22`];
  for (const f of spec.extraHostForwards ?? []) {
    const m = /^(\d{1,5}):(\d{1,5})$/.exec(f);
    if (m) fwds.push(`hostfwd=tcp:127.0.0.1:${m[1]}-:${m[2]}`);
  }
  args.push('-netdev', `user,id=net0,ipv6=off,${fwds.join(',')}`);
  // romfile= skips the iPXE option ROM: we never netboot, and it costs boot time.
  args.push('-device', 'virtio-net-pci,netdev=net0,romfile=');
  args.push('-device', 'virtio-rng-pci');
  // Free page reporting: memory the guest frees goes back to the host, so an
  // idle VM does not keep the peak of its last build.
  args.push('-device', 'virtio-balloon-pci,free-page-reporting=on');
  // One vhost-user-fs device per share, its virtiofsd on the other end of
  // the socket (docs/system/devices/vhost-user.rst; the device's properties:
  // chardev, tag).
  shares.forEach((s, i) => {
    if (!s.socketPath) throw new Error(`share ${s.tag} has no virtiofsd socket`);
    if (!/^[A-Za-z0-9._-]{1,36}$/.test(s.tag)) throw new Error(`share tag "${s.tag}" is not valid for virtio-fs`);
    args.push('-chardev', `socket,id=vfs${i},path=${qemuEscape(s.socketPath)}`);
    args.push('-device', `vhost-user-fs-pci,chardev=vfs${i},tag=${s.tag}`);
  });
  args.push('-serial', `file:${spec.serialLog}`);
  args.push('-qmp', `unix:${qemuEscape(spec.controlSocket)},server=on,wait=off`);
  args.push('-pidfile', spec.pidFile);
  args.push('-no-reboot');
  args.push('-daemonize');
  return args;
}

/** QEMU option values separate with commas; a literal comma is doubled. */
function qemuEscape(value: string): string {
  return value.replace(/,/g, ',,');
}

/** Is `pid` the QEMU of this spec (not a recycled pid of something else)? */
function isOurQemu(pid: number, spec: VmSpec): boolean {
  return isProcessOf(pid, 'qemu', spec.pidFile);
}

/**
 * Why QEMU went away, in the user's words, from the reason of its last
 * SHUTDOWN event (QMP reference, "SHUTDOWN": guest-shutdown, guest-reset,
 * guest-panic, host-signal, host-qmp-quit...). With -no-reboot a kernel
 * panic (panic=-1 on the command line) ends as guest-reset.
 */
export function qemuExitReason(shutdownReason: string | undefined): string {
  switch (shutdownReason) {
    case undefined:
      return 'the QEMU process was killed or crashed';
    case 'guest-panic':
      return 'the guest kernel panicked';
    case 'guest-reset':
      return 'the guest kernel panicked or rebooted';
    case 'guest-shutdown':
      return 'the guest powered off';
    case 'host-signal':
      return 'QEMU was stopped by a signal';
    case 'host-qmp-quit':
      return 'QEMU was told to quit';
    default:
      return `QEMU shut down (${shutdownReason})`;
  }
}

class QemuVm extends ProcessVm {
  private shareLost?: (tag: string, reason: string) => void;
  /** QEMU's SHUTDOWN event says why it is going; none at all means it was killed. */
  private shutdownReason?: string;

  constructor(
    pid: number,
    spec: VmSpec,
    private qmp: QmpClient | undefined,
    /** The virtiofsd of each virtio-fs share (still running). */
    private backends: RunningBackend[] = [],
  ) {
    // The QMP socket closes when QEMU exits; a slow pid poll backs it up.
    super(pid, spec, 2000);
    this.listen(qmp);
  }

  onShareLost(cb: (tag: string, reason: string) => void): void {
    this.shareLost = cb;
  }

  protected override onPoll(): void {
    super.onPoll();
    this.checkBackends();
  }

  /** A virtiofsd that exited while QEMU runs: its share is dead until a reboot. */
  private checkBackends(): void {
    if (this.exited || !pidAlive(this.pid)) return;
    const gone = this.backends.filter((b) => !pidAlive(b.pid));
    if (!gone.length) return;
    this.backends = this.backends.filter((b) => !gone.includes(b));
    for (const b of gone) {
      const last = tailFile(b.log, 3).join(' ').trim();
      this.shareLost?.(b.tag, `its virtiofsd (pid ${b.pid}) exited${last ? `: ${last}` : ''}`);
    }
  }

  private listen(qmp: QmpClient | undefined): void {
    qmp?.on('event', (name, data) => {
      if (name === 'SHUTDOWN') this.shutdownReason ??= String((data as { reason?: unknown } | undefined)?.reason ?? 'unknown');
      if (name === 'GUEST_PANICKED') this.shutdownReason = 'guest-panic';
    });
    qmp?.on('close', () => void this.checkExit(this.goneReason()));
  }

  protected goneReason(): string {
    return qemuExitReason(this.shutdownReason);
  }

  protected override async stillAlive(): Promise<void> {
    if (this.qmp?.isClosed) {
      // Monitor lost but QEMU lives (should not happen): try to reconnect.
      this.qmp = await QmpClient.connect(this.spec.controlSocket).catch(() => undefined);
      this.listen(this.qmp);
    }
  }

  protected override async cleanup(): Promise<void> {
    this.qmp?.close();
    // Each virtiofsd exits when QEMU closes its socket; make sure.
    await stopBackends(this.backends, 1000).catch(() => undefined);
    this.backends = [];
  }

  async requestPowerOff(): Promise<void> {
    if (!this.qmp || this.qmp.isClosed) return;
    await this.qmp.execute('system_powerdown').catch(() => undefined);
  }

  /** QMP `quit` when the monitor is there; then SIGKILL after the grace (no SIGTERM: QEMU was asked). */
  protected async askHardStop(): Promise<boolean> {
    if (!this.qmp || this.qmp.isClosed) return false;
    await this.qmp.execute('quit').catch(() => undefined);
    return true;
  }

  protected termGraceMs(asked: boolean, graceMs: number): number | undefined {
    return asked ? undefined : graceMs;
  }

  override detach(): void {
    super.detach();
    this.qmp?.close();
  }
}

/** buildQemuArgs adapted to the host (macOS CPU model, EFI firmware): see qemu-host.ts. */
function hostQemuArgs(spec: VmSpec, qemu: string, host: QemuHost): string[] {
  const firmware = spec.efi ? findEdk2Firmware(spec.arch, qemu) : undefined;
  if (spec.efi) {
    if (!firmware) {
      throw new BerthError(
        'QEMU_FAILED',
        `EFI boot needs QEMU's edk2 firmware for ${spec.arch}, and it was not found`,
        "Homebrew's `qemu` ships it; on Debian/Ubuntu install `ovmf` (x86_64) or `qemu-efi-aarch64` (arm64).",
      );
    }
    ensureVariableStore(spec.efi, firmware);
  }
  return adaptQemuArgsForHost(buildQemuArgs(spec), spec, { host, firmware });
}

export class QemuDriver implements Driver {
  readonly name = 'qemu';
  readonly features = DRIVER_FEATURES.qemu;
  private probed?: VirtiofsdProbe;
  private readonly probe: () => VirtiofsdProbe;

  /**
   * `host`: the OS and CPU QEMU runs on (tests simulate a Mac); default this
   * one. `probe`: how to find and run virtiofsd (tests give a fake).
   * `tools`: the QEMU and virtiofsd binaries the overrides name.
   */
  constructor(
    private readonly host: QemuHost = thisHost(),
    probe?: () => VirtiofsdProbe,
    private readonly tools: QemuTools = {},
  ) {
    this.probe = probe ?? (() => probeVirtiofsd(thisProbeHost(tools.virtiofsd)));
  }

  private virtiofsd(): VirtiofsdProbe {
    // Asked again at each start: virtiofsd may have been installed since.
    this.probed =
      this.host.platform === 'linux'
        ? this.probe()
        : {
            support: {
              ok: false,
              reason: `QEMU on ${this.host.platform === 'darwin' ? 'macOS' : this.host.platform} has no virtio-fs file server (virtiofsd is Linux-only)`,
            },
          };
    return this.probed;
  }

  async virtiofs(): Promise<VirtiofsSupport> {
    return this.virtiofsd().support;
  }

  async start(spec: VmSpec): Promise<RunningVm> {
    const qemu = findQemu(spec.arch, this.tools.qemu);
    fs.rmSync(spec.pidFile, { force: true });
    fs.rmSync(spec.controlSocket, { force: true });
    const args = hostQemuArgs(spec, qemu, this.host);
    // virtiofsd listens first; QEMU connects to it while it sets up.
    const backends = spec.shares?.length ? await startBackends(spec.shares, this.probed ?? this.virtiofsd()) : [];
    try {
      return await this.startQemu(spec, qemu, args, backends);
    } catch (err) {
      await stopBackends(backends);
      throw err;
    }
  }

  private async startQemu(spec: VmSpec, qemu: string, args: string[], backends: RunningBackend[]): Promise<RunningVm> {
    // With -daemonize the first process exits once the VM is set up: a bad
    // flag, a missing file or an unusable accelerator shows up as its exit
    // status and stderr.
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(qemu, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (d: string) => (err = (err + d).slice(-8192)));
      child.on('error', reject);
      child.on('close', (c) => resolve({ code: c, stderr: err }));
    });
    if (code !== 0) {
      const first = stderr.trim().split('\n')[0] || `exit status ${code}`;
      // Its virtio-fs part (a QEMU without vhost-user-fs, no memfd, a
      // socket it could not reach): the engine starts again without it.
      if (spec.shares?.length && /vhost-user|vhost_user|chardev|vfs\d|memory-backend|memfd/i.test(stderr)) {
        throw new BerthError(
          'VIRTIOFSD_FAILED',
          `QEMU could not set up virtio-fs: ${first}`,
          'Berth shares the folders by reverse sshfs for this start instead. `berth settings set shareMechanism=sshfs` stops trying virtiofs.',
          `${qemu} ${args.join(' ')}\n${stderr.trim()}`,
        );
      }
      const kvm = /kvm/i.test(stderr);
      const hvf = !kvm && /\bhvf\b|HV_ERROR|HV_UNSUPPORTED|HV_DENIED/i.test(stderr);
      throw new BerthError(
        kvm ? 'KVM_UNUSABLE' : hvf ? 'ACCEL_UNAVAILABLE' : 'QEMU_FAILED',
        `QEMU did not start: ${first}`,
        kvm
          ? 'KVM is not usable here. Check that your user can open /dev/kvm (the kvm group), or set the accelerator to tcg: `berth settings set accel=tcg`.'
          : hvf
            ? 'Hypervisor.framework refused the VM (inside another VM it needs nested virtualization). Set the accelerator to tcg: `berth settings set accel=tcg`, or use vfkit: `berth settings set driver=vfkit`.'
            : 'Check the QEMU installation; `berth logs --engine` shows the full command line.',
        `${qemu} ${args.join(' ')}\n${stderr.trim()}`,
      );
    }
    const pid = readPidFile(spec.pidFile);
    if (!pid || !pidAlive(pid)) {
      throw new BerthError(
        'QEMU_FAILED',
        'QEMU exited right after starting',
        'The serial log may say why: `berth logs --serial`.',
        tailFile(spec.serialLog, 20).join('\n'),
      );
    }
    // QEMU's -daemonize sets umask 027; the instance folder is owner-only
    // anyway, but its files should be too.
    for (const f of [spec.serialLog, spec.controlSocket, spec.pidFile]) {
      try {
        fs.chmodSync(f, 0o600);
      } catch {
        /* not created (yet): nothing to tighten */
      }
    }
    let qmp: QmpClient | undefined;
    for (let i = 0; i < 20 && !qmp; i++) {
      qmp = await QmpClient.connect(spec.controlSocket).catch(() => undefined);
      if (!qmp) await sleep(50);
    }
    return new QemuVm(pid, spec, qmp, backends);
  }

  async attach(spec: VmSpec): Promise<RunningVm | null> {
    const pid = readPidFile(spec.pidFile);
    if (!pid) return null;
    if (!isOurQemu(pid, spec)) {
      fs.rmSync(spec.pidFile, { force: true });
      return null;
    }
    const qmp = await QmpClient.connect(spec.controlSocket).catch(() => undefined);
    return new QemuVm(pid, spec, qmp, findBackends(spec.shares ?? []));
  }
}
