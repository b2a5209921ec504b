/**
 * The pure half of the bench's life-cycle sections (issue 16, items 3, 4
 * and 6): reading the samples the guest and the host produced, and the
 * tables. No VM, no processes: unit-tested in
 * test/unit/bench-lifecycle.test.ts.
 */

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const ms0 = (ms: number) => `${ms.toFixed(0)} ms`;
const s1 = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mib = (kiB: number) => `${(kiB / 1024).toFixed(0)} MiB`;

/**
 * Durations a guest loop printed in microseconds, one a line, as ms:
 * exactly `n` positive numbers, or an error naming what failed (a failed
 * run prints "fail", which is not a number).
 */
export function parseGuestMicros(stdout: string, n: number, what: string): number[] {
  const lines = stdout.trim() ? stdout.trim().split('\n') : [];
  const xs = lines.map((l) => (/^\d{1,12}$/.test(l.trim()) ? Number(l.trim()) / 1000 : NaN));
  if (xs.length !== n || !xs.every((x) => Number.isFinite(x) && x > 0)) {
    throw new Error(`bench: ${what}: ${xs.filter((x) => x > 0).length} of ${n} samples, or a failed one:\n${stdout.slice(0, 500)}`);
  }
  return xs;
}

/** One reading of QEMU's resident memory: when (ms, the bench's clock) and how much. */
export interface RssSample {
  atMs: number;
  kiB: number;
}

export interface MemoryReturn {
  idleKiB: number;
  peakKiB: number;
  /** The first reading at least 30 s after the memory was freed. */
  at30KiB?: number;
  /** The last reading. */
  lastKiB: number;
  /** From the free to the first reading within `slackMiB` of idle; undefined: never in the readings. */
  backMs?: number;
  slackMiB: number;
}

/**
 * What the readings say about memory given back: the peak over the whole
 * burst, the reading 30 s after the free, and how long after the free
 * QEMU's RSS first came back within `slackMiB` of its idle value.
 */
export function memoryReturn(samples: readonly RssSample[], idleKiB: number, freedAtMs: number, slackMiB = 128): MemoryReturn {
  if (!samples.length) throw new Error('bench: no QEMU RSS readings');
  const after = samples.filter((s) => s.atMs >= freedAtMs).sort((a, b) => a.atMs - b.atMs);
  const back = after.find((s) => s.kiB <= idleKiB + slackMiB * 1024);
  return {
    idleKiB,
    peakKiB: Math.max(...samples.map((s) => s.kiB)),
    at30KiB: after.find((s) => s.atMs >= freedAtMs + 30_000)?.kiB,
    lastKiB: samples.reduce((a, b) => (b.atMs >= a.atMs ? b : a)).kiB,
    backMs: back ? back.atMs - freedAtMs : undefined,
    slackMiB,
  };
}

/** The readings after the free, one every `stepMs`, as "+5 s 1234" for the table's trace. */
export function rssTrace(samples: readonly RssSample[], freedAtMs: number, stepMs = 5000): string {
  const out: string[] = [];
  for (let t = 0; ; t += stepMs) {
    const s = samples.find((x) => x.atMs >= freedAtMs + t);
    if (!s) break;
    out.push(`+${(t / 1000).toFixed(0)} s: ${(s.kiB / 1024).toFixed(0)}`);
  }
  return out.join(', ');
}

export interface ContainerStartResult {
  image: string;
  /** Wall times on the host, docker CLI through Berth's socket (ms). */
  host: number[];
  /** The same command inside the guest, timed with the guest's clock (ms). */
  guest: number[];
  /** The same inside the guest with `--network none`: what the container's network costs. */
  guestNoNet?: number[];
  /** The warm-up run of each side, apart. */
  warmup: { host: number; guest: number };
  /** Why the guest side costs what it does, when the bench looked (free text lines). */
  notes?: string[];
}

export function containerStartRows(r: ContainerStartResult): string[] {
  const d = median(r.host) - median(r.guest);
  return [
    '## Container start',
    '',
    `\`docker run --rm ${r.image} true\`, ${r.host.length} times on each side after one warm-up run apart: from the host through Berth's docker socket (wall time of the host's docker CLI), and the same command inside the guest on dockerd's own socket (timed with the guest's clock). The guest's CLI runs on the emulated CPU, the host's on the host's, so the difference is the forward plus the CLI's own start-up on each side.`,
    '',
    '| where | p50 | p95 | warm-up run |',
    '|---|---|---|---|',
    `| host, through Berth's socket | ${ms0(median(r.host))} | ${ms0(pct(r.host, 95))} | ${ms0(r.warmup.host)} |`,
    `| inside the guest | ${ms0(median(r.guest))} | ${ms0(pct(r.guest, 95))} | ${ms0(r.warmup.guest)} |`,
    `| **host − guest (p50)** | **${d >= 0 ? '' : '−'}${ms0(Math.abs(d))}** | | |`,
    ...(r.guestNoNet
      ? [`| inside the guest, \`--network none\` (no veth, no network namespace set-up) | ${ms0(median(r.guestNoNet))} | ${ms0(pct(r.guestNoNet, 95))} | |`]
      : []),
    '',
    ...(r.notes?.length ? [...r.notes, ''] : []),
  ];
}

export interface MemoryResult {
  burstMiB: number;
  how: string;
  ret: MemoryReturn;
  trace: string;
  /** What the guest said about its balloon driver and page reporting. */
  guest: { balloonDriver: boolean; reportingOrder?: number };
  /** The shared-memory (memfd) backend is used when a folder is shared over virtio-fs. */
  memoryBackend: string;
}

export function memoryRows(r: MemoryResult): string[] {
  const { ret } = r;
  const within = ret.backMs === undefined ? `not within ${s1(60_000)}` : s1(ret.backMs);
  const met = ret.backMs !== undefined && ret.backMs <= 30_000;
  return [
    '## Memory given back',
    '',
    `QEMU's resident memory (VmRSS, read every second) at idle, while a container ${r.how} and after it freed it; the guest gives freed pages back with free page reporting (virtio-balloon, \`free-page-reporting=on\`). Guest: balloon driver ${r.guest.balloonDriver ? 'bound' : '**not bound**'}, reporting order ${r.guest.reportingOrder ?? 'n/a'} (pages of ${r.guest.reportingOrder === undefined ? '?' : `${(4 << r.guest.reportingOrder) / 1024} MiB`} and up); guest RAM ${r.memoryBackend}.`,
    '',
    '| measure | value |',
    '|---|---|',
    `| QEMU RSS at idle (median of 5 readings) | ${mib(ret.idleKiB)} |`,
    `| peak during the ${r.burstMiB} MiB burst | ${mib(ret.peakKiB)} |`,
    `| 30 s after the free | ${ret.at30KiB === undefined ? 'n/a' : mib(ret.at30KiB)} |`,
    `| 60 s after the free | ${mib(ret.lastKiB)} |`,
    `| **back within ${ret.slackMiB} MiB of idle after** | **${within}** (target: 30 s, ${met ? 'met' : 'not met'}) |`,
    '',
    `RSS in MiB after the free: ${r.trace}.`,
    '',
  ];
}

export interface WakeResult {
  /** `docker version` sent to the resting VM → its answer, wall time on the host (ms). */
  wakes: number[];
  /** The engine's own count for the same wakes (status rest.lastWakeMs). */
  engineWakes: (number | undefined)[];
  /** How long each rest took to come after the last use, for context (ms). */
  restAfterMs: number[];
  idleMinutes: number;
  /** `berth stop`, then `berth start` → the first `docker version` answered (ms). */
  coldMs: number;
}

export function wakeRows(r: WakeResult): string[] {
  const m = median(r.wakes);
  const ratio = m / r.coldMs;
  return [
    '## Wake from rest',
    '',
    `With \`idleMinutes\` at ${r.idleMinutes} the VM rests after ${s1(r.idleMinutes * 60_000)} with nothing in use; then \`docker version\` is sent to the resting VM and timed to its answer (the engine holds the connection while the VM starts). Against it, in the same run: \`berth stop\`, then \`berth start\` → the first \`docker version\` (the cold start, the engine's own start-up included).`,
    '',
    '| measure | time |',
    '|---|---|',
    ...r.wakes.map(
      (w, i) =>
        `| wake ${i + 1} (rested ${r.restAfterMs[i] === undefined ? '?' : s1(r.restAfterMs[i]!)} after the last use): \`docker version\` sent while resting → answered (the engine's count: ${r.engineWakes[i] === undefined ? 'n/a' : s1(r.engineWakes[i]!)}) | ${s1(w)} |`,
    ),
    `| wake, median of ${r.wakes.length} | ${s1(m)} |`,
    `| cold start: \`berth start\` → first \`docker version\` | ${s1(r.coldMs)} |`,
    `| **wake / cold** | **${ratio.toFixed(2)}×** (target ≤ 1.1×, ${ratio <= 1.1 ? 'met' : 'not met'}) |`,
    '',
  ];
}
