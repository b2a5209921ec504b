import type { Result, SettingsLimits } from '../../../contract/contract';
import type { Key, SettingsView } from './form';
import { plain } from './form';

type Doctor = Result<'host.doctor'>;

/** Every value of the driver setting (typed by the engine's DRIVER_SETTINGS: one missing here does not compile). */
export const DRIVER_LABEL: Record<SettingsView['driver'], string> = {
  auto: 'auto (pick for this host)',
  vfkit: 'vfkit (macOS Virtualization.framework)',
  qemu: 'QEMU',
  hyperv: 'Hyper-V (Windows)',
};
export const ACCEL_LABEL: Record<SettingsView['accel'], string> = {
  auto: 'auto (the fastest that works)',
  kvm: 'KVM (Linux)',
  hvf: 'HVF (macOS Hypervisor.framework)',
  tcg: 'TCG (software emulation, slow)',
};

export interface Field {
  key: Key;
  label: string;
  help: string;
  /** A checkbox's own text (the label names the row). */
  check?: string;
  /** A select's values and their text. */
  options?: Record<string, string>;
  /** A text field (a list typed comma-separated), with an example as its placeholder. */
  text?: { placeholder: string };
  /** The group it is shown in (SECTIONS); default the VM's. */
  section?: 'registries';
}

/** The form's groups, in order. */
export const SECTIONS: { id: 'vm' | 'registries'; legend?: string }[] = [{ id: 'vm' }, { id: 'registries', legend: 'Registries and proxy' }];

export const FIELDS: Field[] = [
  { key: 'cpus', label: 'CPUs', help: 'Virtual CPUs of the VM.' },
  { key: 'memoryMiB', label: 'Memory (GiB)', help: 'Leave the host some.' },
  { key: 'diskGiB', label: 'Disk (GiB)', help: 'The data disk for images, containers and volumes; it can only grow.' },
  { key: 'accel', label: 'Accelerator', help: 'auto picks KVM or HVF when they work, else TCG (slow). QEMU only.', options: ACCEL_LABEL },
  {
    key: 'driver',
    label: 'VM driver',
    help: 'auto: vfkit on macOS 13+ (else QEMU), Hyper-V on Windows, QEMU on Linux. Troubleshoot shows which can run here.',
    options: DRIVER_LABEL,
  },
  {
    key: 'rosetta',
    label: 'Rosetta',
    check: 'Run amd64 (x86_64) binaries with Rosetta',
    help: 'Apple silicon with the vfkit driver. Elsewhere the VM starts without it and Home says why.',
  },
  {
    key: 'portBind',
    label: 'Forwarded ports listen on',
    help: 'Loopback keeps them on this machine.',
    options: { loopback: 'loopback only (127.0.0.1, ::1)', all: 'every interface' },
  },
  {
    key: 'idleMinutes',
    label: 'Rest when idle (minutes)',
    help: 'With no container running and no docker, forwarded or shell connection for this long, the VM stops until the next docker command wakes it. 0: never.',
  },
  {
    key: 'shareMechanism',
    label: 'Shared folders use',
    help: 'auto: virtiofs where the VM driver has it, reverse sshfs elsewhere and as the fallback. Applies at the next start.',
    options: { auto: 'auto (virtiofs where available)', virtiofs: 'virtiofs', sshfs: 'reverse sshfs' },
  },
  {
    key: 'insecureRegistries',
    section: 'registries',
    label: 'Insecure registries',
    help: 'Registries Docker reaches over plain HTTP, as host:port, comma-separated. A registry on this computer is host.docker.internal:PORT. Applies at the next start.',
    text: { placeholder: 'host.docker.internal:5000' },
  },
  {
    key: 'caCertificates',
    section: 'registries',
    label: 'CA certificates',
    help: "PEM files, or folders of them, that Docker trusts for registries besides the public CAs (a company's CA), comma-separated full paths. Applies at the next start.",
    text: { placeholder: '/etc/ssl/corp-ca.pem' },
  },
  {
    key: 'httpProxy',
    section: 'registries',
    label: 'HTTP proxy',
    help: "For Docker's pulls and pushes over http://. A proxy on this computer's localhost is reached from the VM. Applies at the next start.",
    text: { placeholder: 'http://proxy.example.com:3128' },
  },
  {
    key: 'httpsProxy',
    section: 'registries',
    label: 'HTTPS proxy',
    help: "For Docker's pulls and pushes over https://. Applies at the next start.",
    text: { placeholder: 'http://proxy.example.com:3128' },
  },
  {
    key: 'noProxy',
    section: 'registries',
    label: 'No proxy for',
    help: 'Hosts, .domains and address ranges reached directly, comma-separated.',
    text: { placeholder: 'localhost,.corp.example.com' },
  },
];

/** The range a number field takes here, in the form's unit: "1 to 8 (this host has 8 CPUs)". */
export function rangeText(k: Key, limits: SettingsLimits | undefined): string | undefined {
  if (!limits) return undefined;
  const gib = (mib: number) => plain(mib / 1024);
  switch (k) {
    case 'cpus':
      return `1 to ${limits.cpus.max} (this host has ${limits.host.cpus} CPUs)`;
    case 'memoryMiB':
      return `${gib(limits.memoryMiB.min)} to ${gib(limits.memoryMiB.max)} GiB (this host has ${gib(limits.host.memoryMiB)} GiB)`;
    case 'diskGiB':
      return `${limits.diskGiB.min} to ${limits.diskGiB.max} GiB`;
    case 'idleMinutes':
      return `${limits.idleMinutes.min} to ${limits.idleMinutes.max} minutes`;
    default:
      return undefined;
  }
}

/** Why the host cannot use a choice, in doctor's words (undefined: it can, or doctor has not answered). */
export function unusable(doctor: Doctor | null, k: Key, value: string): string | undefined {
  const c = doctor?.choices;
  if (!c) return undefined;
  const choice =
    k === 'driver'
      ? c.driver[value as SettingsView['driver']]
      : k === 'accel'
        ? c.accel[value as SettingsView['accel']]
        : k === 'rosetta'
          ? c.rosetta
          : undefined;
  return choice && !choice.usable ? (choice.reason ?? 'not available on this host') : undefined;
}
