/**
 * The bench's "Boot timeline" section: one start's steps (the engine's and
 * the guest's own stamps, from `berth status --json`) next to the floor
 * measured in the same run (boot-floor.ts), and the cold start's ratio to it.
 */
import path from 'node:path';
import { bootStepLabel, type BootStep } from '../app/contract/boot-timeline.js';
import type { VmStatus } from '../app/contract/contract.js';
import type { Accelerator } from '../app/engine/drivers/driver.js';
import { configuredGuestArch } from '../app/engine/image/recipe.js';
import { floorInitramfs, measureFloor } from './boot-floor.js';

export interface FloorResult {
  /** Each floor boot, spawn to marker. */
  samples: number[];
  kernel: string;
  kernelRelease: string;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const s2 = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Boot the floor `runs` times with the kernel, accelerator and size of the VM in `st` (stopped by now: the floor needs the CPUs to itself). */
export async function floorFor(st: VmStatus, workDir: string, runs = 3): Promise<FloorResult> {
  if (!st.image || !st.accel) throw new Error('the status names no guest image or accelerator: start the VM once first');
  const kernel = path.join(st.image.dir, 'vmlinuz');
  const initrd = floorInitramfs(path.join(workDir, 'floor-initrd.img'));
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    samples.push(await measureFloor({ arch: configuredGuestArch(), accel: st.accel as Accelerator, kernel, initrd, cpus: st.cpus, memoryMiB: st.memoryMiB }));
  }
  return { samples, kernel, kernelRelease: st.image.kernelRelease };
}

/**
 * The section: `timeline` is one start's, `wallMs` and `firstDockerMs` the
 * same start's `berth start` returning and its first `docker version`
 * answering, from when `berth start` was run (the CLI and the engine's own
 * start-up included; the timeline counts from when the engine began).
 */
export function bootTimelineRows(o: { floor: FloorResult; timeline: BootStep[]; firstDockerMs: number; wallMs: number; accel: string }): string[] {
  const floorMs = median(o.floor.samples);
  const tl = o.timeline;
  const spawn = tl.find((x) => x.step === 'vm-spawn')?.atMs;
  const socket = tl.find((x) => x.step === 'socket-ready')?.atMs;
  const rows = tl.map((x, i) => {
    const sinceSpawn = spawn === undefined ? 'n/a' : s2(x.atMs - spawn);
    const delta = i ? s2(Math.max(0, x.atMs - tl[i - 1]!.atMs)) : s2(x.atMs);
    return `| ${bootStepLabel(x.step)} (\`${x.step}\`) | ${s2(x.atMs)} | ${sinceSpawn} | +${delta} | ${x.source} |`;
  });
  const ratio = (ms: number) => `${(ms / floorMs).toFixed(1)}×`;
  return [
    '## Boot timeline',
    '',
    `One start (the instance exists, the engine is not running), step by step: the engine's own steps and the guest's, which it stamps with its own clock (/proc/uptime, 10 ms steps) and the engine places on its clock with one reading over ssh. Next to it **the floor**, measured in the same run with the VM stopped: the same kernel (${o.floor.kernelRelease}) booted by QEMU with the same machine, accelerator (${o.accel}), CPUs and memory, and a trivial initramfs whose /init prints a marker and powers off (no root disk, no modules, no services); host time from spawning QEMU to the marker, median of ${o.floor.samples.length} (${o.floor.samples.map((x) => s2(x)).join(', ')}).`,
    '',
    '| step | since the engine began the start | since QEMU was spawned | after the step before | clock |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    '| measure | time | ratio to the floor |',
    '|---|---|---|',
    `| **the floor: this kernel from spawning QEMU to userspace** | **${s2(floorMs)}** | 1.0× |`,
    spawn !== undefined && socket !== undefined
      ? `| QEMU spawned → docker socket ready on the host | ${s2(socket - spawn)} | ${ratio(socket - spawn)} |`
      : '| QEMU spawned → docker socket ready | n/a | |',
    `| \`berth start\` returned (wall) | ${s2(o.wallMs)} | ${ratio(o.wallMs)} |`,
    `| **cold start: \`berth start\` → first \`docker version\`** | **${s2(o.firstDockerMs)}** | **${ratio(o.firstDockerMs)}** |`,
    '',
  ];
}
