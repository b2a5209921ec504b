/**
 * The bench's starts: `berth start` to the first working `docker version`,
 * a new instance first and then warm starts (instance there, engine not
 * running), with the floor measured between them, and their tables.
 */
import type { VmStatus } from '../app/contract/contract.js';
import { kit as benchInstance, median, must, s1, type BenchKit } from './bench-kit.js';
import { bootTimelineRows, floorFor, type FloorResult } from './boot-timeline.js';

export interface StartSample {
  wallMs: number;
  firstDockerMs: number;
  t: NonNullable<VmStatus['timings']>;
  status: VmStatus;
  /** The server's `docker version`: Engine and API version. */
  server: { version: string; api: string };
}

/** berth start, then the first docker version through the socket. */
async function startOnce(kit: BenchKit): Promise<StartSample> {
  const t0 = performance.now();
  await must(kit.berth('start'), 'berth start');
  const wall = performance.now() - t0;
  const v = await must(kit.run('docker', ['version', '--format', '{{.Server.Version}} {{.Server.APIVersion}}']), 'docker version');
  const first = performance.now() - t0;
  const [version = '?', api = '?'] = v.stdout.trim().split(' ');
  const s = await kit.status();
  return { wallMs: wall, firstDockerMs: first, t: s.timings ?? {}, status: s, server: { version, api } };
}

/**
 * `runs` starts, the first of a new instance, each stopped but the last;
 * the floor is measured after the first stop (the image exists by then, and
 * the VM is not running to share the CPUs with it).
 */
export async function startRuns(runs: number, kit: BenchKit = benchInstance): Promise<{ samples: StartSample[]; floor: FloorResult }> {
  const samples: StartSample[] = [];
  let floor: FloorResult | undefined;
  for (let i = 0; i < runs; i++) {
    process.stderr.write(`bench: start ${i + 1}/${runs}\n`);
    samples.push(await startOnce(kit));
    if (i < runs - 1) await must(kit.berth('stop'), 'berth stop');
    if (i === 0) {
      process.stderr.write('bench: the floor (the same kernel, a trivial initramfs)\n');
      floor = await floorFor(samples[0]!.status, kit.home);
    }
  }
  return { samples, floor: floor! };
}

/** The boot timeline section, of the warm start nearest the median first `docker version`. */
export function bootRows(samples: StartSample[], floor: FloorResult, accel: string): string[] {
  const warm = samples.slice(1);
  const mid = median(warm.map((s) => s.firstDockerMs));
  const pick = [...warm].sort((a, b) => Math.abs(a.firstDockerMs - mid) - Math.abs(b.firstDockerMs - mid))[0]!;
  return bootTimelineRows({ floor, timeline: pick.status.bootTimeline ?? [], firstDockerMs: pick.firstDockerMs, wallMs: pick.wallMs, accel });
}

/** The Start section's table. */
export function startRows(samples: StartSample[]): string[] {
  const warm = samples.slice(1);
  const m = (f: (s: StartSample) => number | undefined) => median(warm.map((s) => f(s) ?? NaN));
  return [
    '## Start: `berth start` to the first working `docker version`',
    '',
    `Median of ${warm.length} warm starts (instance exists; engine not running); the first start of a new instance is listed apart.`,
    '',
    '| phase (from `berth start`) | warm start | first start (new instance) |',
    '|---|---|---|',
    `| image verified, accelerator chosen | ${s1(m((s) => (s.t.prepareMs ?? 0) + (s.t.imageMs ?? 0)))} | ${s1((samples[0]!.t.prepareMs ?? 0) + (samples[0]!.t.imageMs ?? 0))} |`,
    `| VM boot (QEMU up) | ${s1(m((s) => s.t.bootMs))} | ${s1(samples[0]!.t.bootMs ?? NaN)} |`,
    `| guest ready (ssh answers), from boot | ${s1(m((s) => s.t.guestMs))} | ${s1(samples[0]!.t.guestMs ?? NaN)} |`,
    `| dockerd ready, from boot | ${s1(m((s) => s.t.dockerMs))} | ${s1(samples[0]!.t.dockerMs ?? NaN)} |`,
    `| socket ready, from boot | ${s1(m((s) => s.t.socketMs))} | ${s1(samples[0]!.t.socketMs ?? NaN)} |`,
    `| \`berth start\` returned (wall, CLI included) | ${s1(m((s) => s.wallMs))} | ${s1(samples[0]!.wallMs)} |`,
    `| **first successful \`docker version\`** | **${s1(m((s) => s.firstDockerMs))}** | **${s1(samples[0]!.firstDockerMs)}** |`,
    '',
  ];
}
