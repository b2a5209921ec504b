import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BerthError, type ErrorInfo } from '../../contract/errors.js';
import { findExecutable } from '../../base/process-util.js';
import type { Tuning } from '../../base/tuning.js';
import { buildProbeScript } from './hyperv-scripts.js';
import { hypervError, parsePsResult, POWERSHELL_ARGS } from './powershell.js';
import type { DriverName, GuestArch } from './driver.js';
import { nativeGuestArch } from './qemu-host.js';

/**
 * Which drivers can run a Berth VM on this host, and why the others cannot:
 * the tool is missing, the OS is too old, there is no hardware
 * virtualization, the user lacks the rights. Every fact about the host comes
 * through HostFacts, so macOS and Windows hosts can be checked on Linux.
 */

export type { DriverName };

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface HostFacts {
  platform: NodeJS.Platform;
  /** os.release(): the kernel release (Darwin 23.5.0, Windows 10.0.22631, Linux 6.1.0). */
  release: string;
  /** process.arch: x64, arm64. */
  arch: string;
  /** The binaries and switch the overrides name (BERTH_QEMU, ...); absent: the usual ones. */
  tools: HostTools;
  /** An executable by name on PATH (or an explicit path), or undefined. */
  which(name: string): string | undefined;
  /** Run a command; `input` goes to its stdin. Never rejects for a non-zero exit. */
  run(cmd: string, args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<CommandResult>;
  /** `rw` if this user can read and write it, `exists` if only that, else `missing`. */
  access(p: string): 'rw' | 'exists' | 'missing';
}

export type HostTools = Pick<Tuning, 'qemu' | 'vfkit' | 'powershell' | 'hypervSwitch'>;

export function realHostFacts(tools: HostTools = {}): HostFacts {
  return {
    platform: process.platform,
    release: os.release(),
    arch: process.arch,
    tools,
    which: (name) => findExecutable(name),
    run: (cmd, args, opts = {}) =>
      new Promise((resolve) => {
        const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        const timer = setTimeout(() => child.kill(), opts.timeoutMs ?? 20_000);
        child.on('error', (e) => {
          clearTimeout(timer);
          resolve({ code: null, stdout, stderr: stderr + e.message });
        });
        child.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
        child.stdin.on('error', () => undefined);
        child.stdin.end(opts.input ?? '');
      }),
    access: (p) => {
      try {
        fs.accessSync(p, fs.constants.R_OK | fs.constants.W_OK);
        return 'rw';
      } catch {
        return fs.existsSync(p) ? 'exists' : 'missing';
      }
    },
  };
}

export interface DriverCheck {
  driver: DriverName;
  usable: boolean;
  /** One line: what was found, or why it cannot be used. */
  summary: string;
  /** Why not, as the error starting it would raise. */
  problem?: ErrorInfo;
  /** Usable, but worse than it could be (TCG instead of KVM, say). */
  warnings: string[];
  details: Record<string, string | number | boolean>;
}

export interface HostDescription {
  platform: NodeJS.Platform;
  arch: string;
  release: string;
  /** "macOS 14.5", "Windows 11 (build 22631)", "Linux 6.1.0-18-amd64". */
  os: string;
}

function problem(code: ErrorInfo['code'], message: string, hint: string): ErrorInfo {
  return { code, message, hint };
}

function unusable(driver: DriverName, p: ErrorInfo, details: DriverCheck['details'] = {}): DriverCheck {
  return { driver, usable: false, summary: p.message, problem: p, warnings: [], details };
}

/** Darwin kernel major -> macOS major (Darwin 20 = macOS 11 ... 24 = 15; 25 = macOS 26). */
export function macosFromDarwin(release: string): string | undefined {
  const major = Number.parseInt(release.split('.')[0] ?? '', 10);
  if (!Number.isFinite(major) || major < 20) return undefined;
  return String(major >= 25 ? major + 1 : major - 9);
}

async function macosVersion(f: HostFacts): Promise<string | undefined> {
  const r = await f.run('sw_vers', ['-productVersion']).catch(() => undefined);
  const v = r?.code === 0 ? r.stdout.trim() : '';
  return /^\d+(\.\d+)*$/.test(v) ? v : macosFromDarwin(f.release);
}

/** Windows build number from os.release() ("10.0.22631" -> 22631). */
export function windowsBuild(release: string): number | undefined {
  const m = /^\d+\.\d+\.(\d+)/.exec(release);
  return m ? Number(m[1]) : undefined;
}

export async function describeHost(f: HostFacts): Promise<HostDescription> {
  let osName: string;
  if (f.platform === 'darwin') osName = `macOS ${(await macosVersion(f)) ?? `(Darwin ${f.release})`}`;
  else if (f.platform === 'win32') {
    const build = windowsBuild(f.release);
    osName = build ? `Windows ${build >= 22000 ? '11' : '10'} (build ${build})` : `Windows ${f.release}`;
  } else osName = `${f.platform === 'linux' ? 'Linux' : f.platform} ${f.release}`;
  return { platform: f.platform, arch: f.arch, release: f.release, os: osName };
}

async function hvSupport(f: HostFacts): Promise<boolean | undefined> {
  const r = await f.run('sysctl', ['-n', 'kern.hv_support']).catch(() => undefined);
  if (!r || r.code !== 0) return undefined;
  return r.stdout.trim() === '1';
}

/** What the drivers are checked for: the guest image's architecture (default: the host's own). */
export interface DetectOptions {
  guestArch?: GuestArch;
}

/**
 * Virtualization.framework and Hyper-V run guests of the host's own
 * architecture only (Rosetta runs amd64 programs inside an arm64 guest, not
 * an amd64 guest); QEMU emulates the others with TCG.
 */
function foreignGuest(driver: DriverName, f: HostFacts, guest: GuestArch | undefined): DriverCheck | undefined {
  const native = nativeGuestArch(f.arch);
  if (!guest || !native || guest === native) return undefined;
  const what = driver === 'vfkit' ? 'Virtualization.framework' : 'Hyper-V';
  return unusable(
    driver,
    problem(
      'UNSUPPORTED_HOST',
      `${what} cannot run an ${guest} guest on this ${native} host`,
      `Use the ${native} guest image, or the QEMU driver, which emulates ${guest} (much slower): \`berth settings set driver=qemu\`.`,
    ),
  );
}

async function checkQemu(f: HostFacts, guestArch?: GuestArch): Promise<DriverCheck> {
  if (f.platform === 'win32') {
    return unusable('qemu', problem('UNSUPPORTED_OS', 'the QEMU driver runs on Linux and macOS', 'On Windows Berth runs its VM with Hyper-V.'));
  }
  const native = nativeGuestArch(f.arch);
  if (!native) {
    return unusable('qemu', problem('UNSUPPORTED_HOST', `a ${f.arch} host is not supported`, 'Berth runs on x86_64 and arm64 hosts.'));
  }
  const guest = guestArch ?? native;
  const wanted = f.tools.qemu || (guest === 'aarch64' ? 'qemu-system-aarch64' : 'qemu-system-x86_64');
  const binary = f.which(wanted);
  if (!binary) {
    return unusable(
      'qemu',
      problem(
        'QEMU_MISSING',
        `${wanted} was not found${f.tools.qemu ? '' : ' on PATH'}`,
        f.platform === 'darwin'
          ? 'Install QEMU with `brew install qemu`.'
          : `Install QEMU: \`sudo apt-get install ${guest === 'aarch64' ? 'qemu-system-arm' : 'qemu-system-x86'} qemu-utils\` (Debian/Ubuntu) or \`sudo dnf install qemu-kvm\` (Fedora).`,
      ),
    );
  }
  const details: DriverCheck['details'] = { binary, guestArch: guest };
  const warnings: string[] = [];
  const v = await f.run(binary, ['--version']).catch(() => undefined);
  const version = v && /QEMU emulator version (\d+\.\d+(?:\.\d+)?)/.exec(v.stdout)?.[1];
  if (!version) {
    return unusable('qemu', problem('QEMU_FAILED', `${binary} --version failed`, 'Check the QEMU installation.'), details);
  }
  details.version = version;
  if (Number(version.split('.')[0]) < 7) warnings.push(`QEMU ${version} is old; Berth is tested with 7.2 and later`);
  let accel = 'tcg';
  if (guest !== native) {
    warnings.push(`an ${guest} guest on this ${native} host runs under emulation (TCG), much slower`);
  } else if (f.platform === 'linux') {
    const kvm = f.access('/dev/kvm');
    if (kvm === 'rw') accel = 'kvm';
    else if (kvm === 'exists') warnings.push('/dev/kvm is not accessible to this user (add yourself to the kvm group); VMs run under TCG, much slower');
    else warnings.push('/dev/kvm does not exist (no hardware virtualization); VMs run under TCG, much slower');
  } else if (f.platform === 'darwin') {
    const hv = await hvSupport(f);
    if (hv) accel = 'hvf';
    else warnings.push('Hypervisor.framework is not available (kern.hv_support is not 1); VMs run under TCG, much slower');
  }
  details.accel = accel;
  // On Linux the engine still proves KVM with a probe boot before using it (accel-probe.ts).
  const accelNote = accel === 'kvm' ? 'kvm, confirmed by a probe boot at start' : accel;
  return { driver: 'qemu', usable: true, summary: `QEMU ${version} (${path.basename(binary)}), accelerator ${accelNote}`, warnings, details };
}

const MIN_VFKIT = '0.6.0';

function olderThan(version: string, min: string): boolean {
  const a = version.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d < 0;
  }
  return false;
}

async function checkVfkit(f: HostFacts, guestArch?: GuestArch): Promise<DriverCheck> {
  if (f.platform !== 'darwin') {
    return unusable(
      'vfkit',
      problem('UNSUPPORTED_OS', 'vfkit runs only on macOS (Virtualization.framework)', 'Use the QEMU driver on Linux and Hyper-V on Windows.'),
    );
  }
  const foreign = foreignGuest('vfkit', f, guestArch);
  if (foreign) return foreign;
  const macos = await macosVersion(f);
  const details: DriverCheck['details'] = {};
  if (macos) details.macos = macos;
  if (!macos || Number(macos.split('.')[0]) < 13) {
    return unusable(
      'vfkit',
      problem(
        'UNSUPPORTED_OS',
        `vfkit needs macOS 13 or later${macos ? ` (this is macOS ${macos})` : ''}`,
        'Update macOS, or use the QEMU driver (`brew install qemu`).',
      ),
      details,
    );
  }
  if ((await hvSupport(f)) === false) {
    return unusable(
      'vfkit',
      problem(
        'UNSUPPORTED_HOST',
        'this Mac does not offer hardware virtualization (kern.hv_support is 0)',
        'Inside a virtual machine, nested virtualization must be turned on; otherwise use the QEMU driver, which can run without it (slowly).',
      ),
      details,
    );
  }
  const wanted = f.tools.vfkit || 'vfkit';
  const binary = f.which(wanted);
  if (!binary) {
    return unusable(
      'vfkit',
      problem('VFKIT_MISSING', `${wanted} was not found${f.tools.vfkit ? '' : ' on PATH'}`, 'Install vfkit with `brew install vfkit`.'),
      details,
    );
  }
  details.binary = binary;
  const v = await f.run(binary, ['--version']).catch(() => undefined);
  if (!v || v.code !== 0) {
    return unusable('vfkit', problem('VFKIT_FAILED', `${binary} --version failed`, 'Reinstall vfkit (`brew reinstall vfkit`).'), details);
  }
  const version = /v?(\d+\.\d+\.\d+)/.exec(v.stdout + v.stderr)?.[1];
  if (version) details.version = version;
  if (version && olderThan(version, MIN_VFKIT)) {
    // Read-only virtio-blk disks (the base image) arrived in vfkit 0.6.0.
    return unusable(
      'vfkit',
      problem('VFKIT_MISSING', `vfkit ${version} is too old; Berth needs ${MIN_VFKIT} or later`, 'Update it with `brew upgrade vfkit`.'),
      details,
    );
  }
  const warnings: string[] = [];
  if (f.arch === 'arm64') {
    const rosetta = f.access('/Library/Apple/usr/libexec/oah/libRosettaRuntime') !== 'missing';
    details.rosetta = rosetta;
    if (!rosetta)
      warnings.push(
        'Rosetta is not installed, so the rosetta setting cannot run amd64 binaries in the VM (`softwareupdate --install-rosetta --agree-to-license`)',
      );
  }
  return { driver: 'vfkit', usable: true, summary: `vfkit ${version ?? '(unknown version)'} on macOS ${macos}`, warnings, details };
}

/** Windows 10 1709 (build 16299) brought the Default Switch. */
const MIN_WINDOWS_BUILD = 16299;

async function checkHyperv(f: HostFacts, guestArch?: GuestArch): Promise<DriverCheck> {
  if (f.platform !== 'win32') {
    return unusable('hyperv', problem('UNSUPPORTED_OS', 'Hyper-V is a Windows feature', 'Use vfkit or QEMU on macOS and QEMU on Linux.'));
  }
  const build = windowsBuild(f.release);
  const details: DriverCheck['details'] = {};
  if (build) details.build = build;
  if (!build || build < MIN_WINDOWS_BUILD) {
    return unusable(
      'hyperv',
      problem(
        'UNSUPPORTED_OS',
        `Berth needs Windows 10 version 1709 (build ${MIN_WINDOWS_BUILD}) or later${build ? ` (this is build ${build})` : ''}`,
        'Update Windows.',
      ),
      details,
    );
  }
  if (!nativeGuestArch(f.arch)) {
    return unusable('hyperv', problem('UNSUPPORTED_HOST', `a ${f.arch} host is not supported`, 'Berth runs on x86_64 and arm64 hosts.'), details);
  }
  const foreign = foreignGuest('hyperv', f, guestArch);
  if (foreign) return foreign;
  const ps = f.which(f.tools.powershell || 'powershell.exe');
  if (!ps) {
    return unusable(
      'hyperv',
      problem(
        'POWERSHELL_MISSING',
        `${f.tools.powershell || 'powershell.exe'} was not found`,
        'Windows PowerShell ships with Windows; check PATH, or set BERTH_POWERSHELL.',
      ),
      details,
    );
  }
  const switchName = f.tools.hypervSwitch || 'Default Switch';
  const run = await f.run(ps, POWERSHELL_ARGS, { input: buildProbeScript(switchName), timeoutMs: 60_000 });
  const r = parsePsResult(run);
  if (!r.ok) return unusable('hyperv', hypervError(r, 'be queried', switchName).toInfo(), details);
  const edition = typeof r.edition === 'string' ? r.edition : '';
  if (edition) details.edition = edition;
  details.switch = switchName;
  const fail = (kind: string, message: string) => unusable('hyperv', hypervError({ ok: false, kind, message }, 'be used', switchName).toInfo(), details);
  if (!r.module || r.vmms === 'missing') {
    if (/\bHome\b/i.test(edition)) {
      return unusable(
        'hyperv',
        problem('HYPERV_DISABLED', `Hyper-V is not part of ${edition}`, 'Hyper-V needs Windows 10/11 Pro, Enterprise or Education (or Windows Server).'),
        details,
      );
    }
    return fail('disabled', 'the Hyper-V feature is not turned on');
  }
  if (r.vmms !== 'Running') return fail('disabled', `the Hyper-V Virtual Machine Management service is ${String(r.vmms)}`);
  if (r.hypervisorPresent === false) {
    return unusable(
      'hyperv',
      problem(
        'HYPERV_DISABLED',
        'Hyper-V is installed but the hypervisor is not running',
        'Turn on virtualization (Intel VT-x / AMD-V) in the firmware settings, and in PowerShell run as administrator `bcdedit /set hypervisorlaunchtype auto`, then restart Windows.',
      ),
      details,
    );
  }
  if (!r.hypervAdmin && !r.elevated) return fail('not-admin', 'this user is not a member of Hyper-V Administrators');
  if (!r.switchExists) return fail('no-switch', `there is no virtual switch named ${switchName}`);
  return { driver: 'hyperv', usable: true, summary: `Hyper-V on ${edition || `Windows build ${build}`}, switch "${switchName}"`, warnings: [], details };
}

/** Every driver's verdict for this host, in the order Berth would prefer them. */
export async function detectDrivers(facts: HostFacts = realHostFacts(), opts: DetectOptions = {}): Promise<DriverCheck[]> {
  const safe = async (name: DriverName, fn: () => Promise<DriverCheck>): Promise<DriverCheck> => {
    try {
      return await fn();
    } catch (err) {
      const info =
        err instanceof BerthError
          ? err.toInfo()
          : problem('INTERNAL', `checking ${name} failed: ${err instanceof Error ? err.message : String(err)}`, 'This is a bug in Berth; please report it.');
      return unusable(name, info);
    }
  };
  const g = opts.guestArch;
  const checks = await Promise.all([
    safe('vfkit', () => checkVfkit(facts, g)),
    safe('hyperv', () => checkHyperv(facts, g)),
    safe('qemu', () => checkQemu(facts, g)),
  ]);
  const order: DriverName[] =
    facts.platform === 'darwin' ? ['vfkit', 'qemu', 'hyperv'] : facts.platform === 'win32' ? ['hyperv', 'qemu', 'vfkit'] : ['qemu', 'vfkit', 'hyperv'];
  return order.map((d) => checks.find((c) => c.driver === d)!);
}

/** The driver Berth picks on this host: the first usable one in preference order. */
export function recommendedDriver(checks: DriverCheck[]): DriverName | undefined {
  return checks.find((c) => c.usable)?.driver;
}
