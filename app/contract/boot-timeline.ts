import { z } from 'zod';

/**
 * The boot timeline on the wire: each step of a start with when it happened,
 * in milliseconds since the engine began the start. `guest` steps are the
 * guest's own clock (vm-images/rootfs/etc/berth/stamp.sh), placed on the
 * host's by reading the guest's clock once; `host` steps are the engine's.
 */
export const BootStepSchema = z.object({
  step: z.string(),
  atMs: z.number(),
  source: z.enum(['guest', 'host']),
});
export type BootStep = z.infer<typeof BootStepSchema>;

/**
 * The steps a start goes through, in their usual order, with what each one
 * means. A step missing from a timeline was not reached (or, for the guest's,
 * an older guest image does not stamp it); a step not listed here is shown
 * by its name.
 */
export const BOOT_STEPS = {
  'vm-spawn': 'VM process spawned',
  'vm-process-up': 'VM process up',
  kernel: 'kernel started',
  init: 'initramfs /init running',
  'root-mounted': 'root file system mounted',
  sysinit: 'rc.sysinit running',
  'network-up': 'network up',
  'data-disk-ready': 'data disk mounted',
  'sysinit-done': 'rc.sysinit done',
  'sshd-listening': 'sshd listening',
  'dockerd-launched': 'dockerd launched',
  'ssh-connected': 'ssh handshake done',
  'containerd-ready': 'containerd ready',
  'docker-api-listening': 'Docker API listening',
  'docker-ready': 'dockerd answered the engine',
  'socket-ready': 'docker socket ready on the host',
} as const;

export type HostBootStep = 'vm-spawn' | 'vm-process-up' | 'ssh-connected' | 'docker-ready' | 'socket-ready';

export function bootStepLabel(step: string): string {
  // Own keys only: a guest's step named "constructor" is not a label.
  return Object.hasOwn(BOOT_STEPS, step) ? (BOOT_STEPS as Record<string, string>)[step]! : step;
}
