/**
 * Host facts for a simulated macOS, Windows or Linux host (host-detect's
 * HostFacts): executables "on PATH", canned command results, file access.
 */
import path from 'node:path';
import type { CommandResult, HostFacts, HostTools } from '../../app/engine/drivers/host-detect.js';

export type Handler = CommandResult | ((args: string[], input?: string) => CommandResult);

export interface FakeHost {
  platform: NodeJS.Platform;
  release: string;
  arch?: string;
  /** The binaries the overrides name (BERTH_QEMU, ...). */
  tools?: HostTools;
  /** name -> path of executables "on PATH". */
  bins?: Record<string, string>;
  /** "basename arg arg" (or just basename) -> result. */
  commands?: Record<string, Handler>;
  files?: Record<string, 'rw' | 'exists'>;
}

export const ok = (stdout: string): CommandResult => ({ code: 0, stdout, stderr: '' });

export function fakeFacts(h: FakeHost): HostFacts & { calls: { cmd: string; args: string[]; input?: string }[] } {
  const calls: { cmd: string; args: string[]; input?: string }[] = [];
  return {
    calls,
    platform: h.platform,
    release: h.release,
    arch: h.arch ?? 'x64',
    tools: h.tools ?? {},
    which: (name) => h.bins?.[name] ?? (Object.values(h.bins ?? {}).includes(name) ? name : undefined),
    access: (p) => h.files?.[p] ?? 'missing',
    run: async (cmd, args, opts = {}) => {
      calls.push({ cmd, args, input: opts.input });
      const base = path.win32.basename(cmd); // splits on / and \
      const handler = h.commands?.[[base, ...args].join(' ')] ?? h.commands?.[base];
      if (!handler) return { code: null, stdout: '', stderr: `spawn ${cmd} ENOENT` };
      return typeof handler === 'function' ? handler(args, opts.input) : handler;
    },
  };
}

/** A Mac (Apple silicon unless `arch`), macOS 14.5, with vfkit and/or QEMU (and Rosetta unless `rosetta: false`) installed. */
export function macHost(o: { vfkit?: boolean; qemu?: boolean; arch?: string; rosetta?: boolean } = {}) {
  const bins: Record<string, string> = {};
  if (o.vfkit !== false) bins.vfkit = '/opt/homebrew/bin/vfkit';
  if (o.qemu !== false) {
    bins['qemu-system-aarch64'] = '/opt/homebrew/bin/qemu-system-aarch64';
    bins['qemu-system-x86_64'] = '/opt/homebrew/bin/qemu-system-x86_64';
  }
  return fakeFacts({
    platform: 'darwin',
    release: '23.5.0',
    arch: o.arch ?? 'arm64',
    bins,
    commands: {
      'sw_vers -productVersion': ok('14.5\n'),
      'sysctl -n kern.hv_support': ok('1\n'),
      'vfkit --version': ok('vfkit version: v0.6.1\n'),
      'qemu-system-aarch64 --version': ok('QEMU emulator version 9.1.0\n'),
      'qemu-system-x86_64 --version': ok('QEMU emulator version 9.1.0\n'),
    },
    files: o.rosetta === false ? {} : { '/Library/Apple/usr/libexec/oah/libRosettaRuntime': 'exists' },
  });
}

/** Windows 11 Pro; `probe` is what the Hyper-V probe script answers. */
export function windowsHost(probe: Record<string, unknown> | undefined) {
  return fakeFacts({
    platform: 'win32',
    release: '10.0.22631',
    bins: probe ? { 'powershell.exe': 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe' } : {},
    commands: { 'powershell.exe': ok(`BERTH-RESULT:${JSON.stringify(probe ?? {})}\n`) },
  });
}

export const GOOD_HYPERV_PROBE = {
  ok: true,
  module: true,
  vmms: 'Running',
  hypervAdmin: true,
  elevated: false,
  hypervisorPresent: true,
  edition: 'Microsoft Windows 11 Pro',
  switchExists: true,
};

/** Debian on x86_64 with QEMU and (unless `kvm` is false) a usable /dev/kvm. */
export function linuxHost(o: { qemu?: boolean; kvm?: boolean } = {}) {
  return fakeFacts({
    platform: 'linux',
    release: '6.1.0-18-amd64',
    bins: o.qemu === false ? {} : { 'qemu-system-x86_64': '/usr/bin/qemu-system-x86_64', 'qemu-system-aarch64': '/usr/bin/qemu-system-aarch64' },
    commands: {
      'qemu-system-x86_64 --version': ok('QEMU emulator version 7.2.11 (Debian 1:7.2+dfsg-7+deb12u12)\n'),
      'qemu-system-aarch64 --version': ok('QEMU emulator version 7.2.11\n'),
    },
    files: o.kvm === false ? {} : { '/dev/kvm': 'rw' },
  });
}
