import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BerthError } from '../../contract/errors.js';
import { readJsonIfExists, writeFileAtomic } from '../../base/fs-util.js';
import type { Accelerator, GuestArch } from './driver.js';
import { findQemu, serialConsole } from './qemu.js';
import { hardwareAccel, nativeGuestArch, qemuMachine, tcgCpu, thisHost, type QemuHost } from './qemu-host.js';

export interface AccelChoice {
  accel: Accelerator;
  /** Why this accelerator: "probe boot succeeded", "KVM probe hung", ... */
  reason: string;
  /** True when the choice came from the cache rather than a fresh probe. */
  cached: boolean;
}

export const PROBE_MARKER = 'BERTH-PROBE-OK';

interface ProbeInput {
  arch: GuestArch;
  kernel: string;
  initrd: string;
  /** `auto` probes; anything else is taken as asked (`forced` wins over it). */
  requested: Accelerator | 'auto';
  /** BERTH_ACCEL: taken as it is, over the setting and the probe. */
  forced?: Accelerator;
  /** The QEMU binary BERTH_QEMU names, if any. */
  qemu?: string;
  cacheFile: string;
  /** How long the KVM probe boot may take (BERTH_KVM_PROBE_TIMEOUT_MS; default 8000). */
  timeoutMs?: number;
  /** The host QEMU runs on (tests simulate others); default this one. */
  host?: QemuHost;
}

const HOST_ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };

/** Changes at every host boot, so a cached verdict never outlives a reboot. */
function bootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/**
 * Pick the accelerator. With `auto` on Linux, a short boot of the real
 * kernel and initramfs under KVM must print the probe marker within the
 * timeout; a KVM that opens but hangs (nested virtualization gone wrong)
 * falls back to TCG by itself. The verdict is cached for this host boot,
 * QEMU binary and kernel, so only the first start after a reboot pays.
 */
export async function chooseAccelerator(input: ProbeInput): Promise<AccelChoice> {
  if (input.forced) return { accel: input.forced, reason: 'set by BERTH_ACCEL', cached: false };
  const host = input.host ?? thisHost();
  // Hardware acceleration runs only guests of the host's own architecture;
  // anything else is emulated by TCG, whatever the OS offers.
  const hw = hardwareAccel(host, input.arch);
  const hostArch = HOST_ARCH[host.arch] ?? host.arch;
  if (input.requested !== 'auto') {
    if (input.requested !== 'tcg' && input.requested !== hw) {
      const why =
        nativeGuestArch(host.arch) !== input.arch
          ? `an ${input.arch} guest cannot use ${input.requested} on this ${hostArch} host (hardware acceleration runs only the host's own architecture)`
          : `${input.requested} is not this host's accelerator (${hw ?? 'it has none QEMU can use'})`;
      throw new BerthError(
        'ACCEL_UNAVAILABLE',
        `the accelerator set in settings cannot be used: ${why}`,
        `Let Berth pick: \`berth settings set accel=auto\` (or accel=tcg${hw ? ` or accel=${hw}` : ''}).`,
      );
    }
    return { accel: input.requested, reason: 'set in settings', cached: false };
  }
  if (!hw) {
    const reason =
      nativeGuestArch(host.arch) !== input.arch
        ? `an ${input.arch} guest on this ${hostArch} host has no hardware acceleration; using TCG (emulation), which is much slower`
        : 'no hardware accelerator QEMU can use on this OS; using TCG, which is much slower';
    return { accel: 'tcg', reason, cached: false };
  }
  if (hw === 'hvf') return { accel: 'hvf', reason: 'macOS Hypervisor.framework', cached: false };

  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return {
      accel: 'tcg',
      reason:
        e.code === 'ENOENT'
          ? '/dev/kvm does not exist (no hardware virtualization); using TCG, which is much slower'
          : '/dev/kvm is not accessible to this user (add yourself to the kvm group); using TCG, which is much slower',
      cached: false,
    };
  }

  const qemu = findQemu(input.arch, input.qemu);
  const key = crypto
    .createHash('sha256')
    .update([bootId(), qemu, fs.statSync(qemu).mtimeMs, input.kernel, fs.statSync(input.kernel).size].join('\n'))
    .digest('hex');
  const cache = readJsonIfExists(input.cacheFile) as { key?: string; accel?: Accelerator; reason?: string } | undefined;
  if (cache?.key === key && cache.accel && cache.reason) {
    return { accel: cache.accel, reason: cache.reason, cached: true };
  }
  const timeoutMs = input.timeoutMs ?? 8000;
  const ok = await probeBoot(qemu, input, 'kvm', timeoutMs);
  const choice: AccelChoice = ok.ok
    ? { accel: 'kvm', reason: `KVM probe boot reached userspace in ${ok.ms} ms`, cached: false }
    : {
        accel: 'tcg',
        reason: `KVM is present but a probe boot ${ok.why}; using TCG, which is much slower`,
        cached: false,
      };
  fs.mkdirSync(path.dirname(input.cacheFile), { recursive: true });
  writeFileAtomic(input.cacheFile, JSON.stringify({ key, accel: choice.accel, reason: choice.reason }) + '\n', 0o644);
  return choice;
}

/** Boot kernel+initramfs with `berth.probe=1`; the initramfs prints the marker and powers off. */
export function probeBoot(
  qemu: string,
  input: Pick<ProbeInput, 'arch' | 'kernel' | 'initrd'>,
  accel: Accelerator,
  timeoutMs: number,
): Promise<{ ok: true; ms: number } | { ok: false; why: string }> {
  const args = [
    '-machine',
    qemuMachine(input.arch, accel),
    '-accel',
    accel,
    '-cpu',
    accel === 'tcg' ? tcgCpu(input.arch) : 'host',
    '-m',
    '256M',
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-serial',
    'stdio',
    '-no-reboot',
    '-kernel',
    input.kernel,
    '-initrd',
    input.initrd,
    '-append',
    `console=${serialConsole(input.arch)} quiet panic=-1 berth.probe=1`,
  ];
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let done = false;
    const finish = (r: { ok: true; ms: number } | { ok: false; why: string }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, why: `hung (no output within ${timeoutMs} ms)` }), timeoutMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out = (out + d).slice(-4096);
      if (out.includes(PROBE_MARKER)) finish({ ok: true, ms: Date.now() - started });
    });
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (err = (err + d).slice(-2048)));
    child.on('error', (e) => finish({ ok: false, why: `could not run (${e.message})` }));
    child.on('close', (code) => finish({ ok: false, why: `failed (exit ${code}: ${err.trim().split('\n')[0] ?? ''})` }));
  });
}
