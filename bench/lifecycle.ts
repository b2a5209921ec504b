/**
 * The bench's life-cycle sections (issue 16): a container's start through
 * Berth against the same command inside the guest, memory the guest frees
 * given back to the host, disk space given back (disk-space.ts), and a wake
 * from rest against a cold start. Runs
 * on a started instance and leaves it started; the tables are in
 * lifecycle-rows.ts.
 */
import { processRssKiB, sleep } from '../app/base/process-util.js';
import type { VmStatus } from '../app/contract/contract.js';
import { median, type RunResult } from './bench-kit.js';
import { benchDiskSpace, diskSpaceRows } from './disk-space.js';
import {
  containerStartRows,
  memoryReturn,
  memoryRows,
  parseGuestMicros,
  rssTrace,
  wakeRows,
  type ContainerStartResult,
  type MemoryResult,
  type RssSample,
  type WakeResult,
} from './lifecycle-rows.js';

export interface LifecycleDeps {
  docker: (args: string[]) => Promise<RunResult>;
  berth: (...args: string[]) => Promise<RunResult>;
  /** A shell script in the guest (berth shell); its stdout. */
  guest: (script: string) => Promise<string>;
  status: () => Promise<VmStatus>;
  /** An image with busybox (sh, dd, true). */
  image: string;
  log: (m: string) => void;
}

const RUNS = 10;
const BURST_MIB = 1024;

async function ok(p: Promise<RunResult>, what: string): Promise<RunResult> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** a. `docker run --rm IMAGE true`: host through Berth's socket, then inside the guest. */
export async function benchContainerStart(d: LifecycleDeps): Promise<ContainerStartResult> {
  d.log(`container start (${RUNS} + 1 warm-up on each side)`);
  const hostRun = async () => (await ok(d.docker(['run', '--rm', d.image, 'true']), 'docker run (host)')).ms;
  const warmHost = await hostRun();
  const host: number[] = [];
  for (let i = 0; i < RUNS; i++) host.push(await hostRun());
  // The guest's clock in µs around each run; a failed run prints "fail".
  const loop = (n: number, flags = '') =>
    `for i in $(seq ${n}); do s=$(date +%s%N); docker run --rm ${flags}${d.image} true >/dev/null 2>&1 || { echo fail; continue; }; e=$(date +%s%N); echo $(( (e - s) / 1000 )); done`;
  const [warmGuest] = parseGuestMicros(await d.guest(loop(1)), 1, 'docker run inside the guest (warm-up)');
  const guest = parseGuestMicros(await d.guest(loop(RUNS)), RUNS, 'docker run inside the guest');
  // The container's own network (a veth on docker0, its namespace set up
  // by dockerd's libnetwork-setkey hook) left out: what it costs per container.
  const guestNoNet = parseGuestMicros(await d.guest(loop(RUNS, '--network none ')), RUNS, 'docker run --network none inside the guest');
  return { image: d.image, host, guest, guestNoNet, warmup: { host: warmHost, guest: warmGuest! } };
}

/** What the guest says about its balloon driver and the page reporting order. */
async function balloonState(d: LifecycleDeps): Promise<MemoryResult['guest']> {
  const out = await d.guest(
    'if [ -d /sys/bus/virtio/drivers/virtio_balloon ] && ls /sys/bus/virtio/drivers/virtio_balloon | grep -q virtio; then echo driver=1; else echo driver=0; fi; ' +
      'echo order=$(cat /sys/module/page_reporting/parameters/page_reporting_order 2>/dev/null)',
  );
  const order = /^order=(\d{1,2})$/m.exec(out)?.[1];
  return { balloonDriver: /^driver=1$/m.test(out), reportingOrder: order === undefined ? undefined : Number(order) };
}

/**
 * b. QEMU's RSS at idle; a container writes BURST_MIB to a tmpfs (its
 * /dev/shm: shared memory the guest must really allocate) and removes it;
 * RSS read every second until 60 s after the container is gone.
 */
export async function benchMemoryReturn(d: LifecycleDeps): Promise<MemoryResult> {
  const st = await d.status();
  const pid = st.vmPid;
  if (!pid) throw new Error('bench: no QEMU pid in berth status');
  const guest = await balloonState(d);
  d.log('memory: settling 15 s, then idle readings');
  await sleep(15_000);
  const rss = () => {
    const k = processRssKiB(pid);
    if (k === undefined) throw new Error(`bench: cannot read QEMU's RSS (pid ${pid})`);
    return k;
  };
  const idle: number[] = [];
  for (let i = 0; i < 5; i++) {
    idle.push(rss());
    await sleep(1000);
  }
  const samples: RssSample[] = [];
  const take = () => samples.push({ atMs: performance.now(), kiB: rss() });
  take();
  const timer = setInterval(take, 1000);
  let freedAt: number;
  try {
    d.log(`memory: a container fills ${BURST_MIB} MiB and frees it`);
    await ok(
      d.docker([
        'run',
        '--rm',
        `--shm-size=${BURST_MIB + 64}m`,
        d.image,
        'sh',
        '-c',
        `dd if=/dev/zero of=/dev/shm/fill bs=1M count=${BURST_MIB} 2>/dev/null && rm /dev/shm/fill`,
      ]),
      'the memory burst container',
    );
    freedAt = performance.now();
    d.log('memory: 60 s of readings after the free');
    await sleep(60_500);
  } finally {
    clearInterval(timer);
  }
  const ret = memoryReturn(samples, median(idle), freedAt);
  return {
    burstMiB: BURST_MIB,
    how: `wrote ${BURST_MIB} MiB with dd to a file in its /dev/shm (tmpfs) and removed it`,
    ret,
    trace: rssTrace(samples, freedAt),
    guest,
    memoryBackend: st.shares?.some((s) => s.mechanism === 'virtiofs')
      ? 'a shared memfd (a folder is shared over virtio-fs)'
      : 'anonymous memory (no virtio-fs share)',
  };
}

/**
 * The VM's state now, from `berth status --json`, which exits non-zero
 * while the VM is neither running nor resting (stopping to rest, starting)
 * but still prints the status.
 */
async function anyStatus(d: LifecycleDeps): Promise<VmStatus> {
  const r = await d.berth('status', '--json');
  try {
    return JSON.parse(r.stdout) as VmStatus;
  } catch {
    throw new Error(`berth status --json failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

/** Poll `berth status` until the VM is `state`; when it was seen. */
async function until(d: LifecycleDeps, state: string, timeoutMs: number): Promise<number> {
  const end = Date.now() + timeoutMs;
  let last: VmStatus | undefined;
  while (Date.now() < end) {
    last = await anyStatus(d);
    if (last.state === state) return performance.now();
    await sleep(250);
  }
  throw new Error(`bench: the VM was not ${state} within ${timeoutMs / 1000} s (state ${last?.state}, ${JSON.stringify(last?.rest)})`);
}

const dockerVersion = (d: LifecycleDeps, what: string) => ok(d.docker(['version', '--format', '{{.Server.Version}}']), what);

/**
 * c. Wake from rest, `runs` times: idleMinutes set low, wait for
 * `resting`, time `docker version`. Then the cold start in the same run:
 * `berth stop`, `berth start` → `docker version`. The setting is put back
 * to what it was; the VM is left running.
 */
export async function benchWake(d: LifecycleDeps, runs = 3, idleMinutes = 0.1): Promise<WakeResult> {
  const before = (await anyStatus(d)).rest?.idleMinutes;
  await ok(d.berth('settings', 'set', `idleMinutes=${idleMinutes}`), 'berth settings set idleMinutes');
  const wakes: number[] = [];
  const engineWakes: (number | undefined)[] = [];
  const restAfterMs: number[] = [];
  try {
    let lastUse = performance.now();
    for (let i = 0; i < runs; i++) {
      d.log(`wake ${i + 1}/${runs}: waiting for the rest`);
      restAfterMs.push((await until(d, 'resting', 5 * 60_000)) - lastUse);
      const r = await dockerVersion(d, 'docker version (wake)');
      wakes.push(r.ms);
      lastUse = performance.now();
      engineWakes.push((await anyStatus(d)).rest?.lastWakeMs);
    }
  } finally {
    await ok(d.berth('settings', 'set', `idleMinutes=${before ?? 15}`), 'berth settings set idleMinutes (back)');
  }
  d.log('cold start: berth stop, berth start, docker version');
  await ok(d.berth('stop'), 'berth stop');
  const t0 = performance.now();
  await ok(d.berth('start'), 'berth start');
  await dockerVersion(d, 'docker version (cold)');
  const coldMs = performance.now() - t0;
  return { wakes, engineWakes, restAfterMs, idleMinutes, coldMs };
}

/**
 * The four sections, in this order, on a running instance (left
 * running). Each section's table goes to the log as soon as it is done,
 * so a later failure does not lose it; the results file is still written
 * whole, at the end, by a run that finished.
 */
export async function lifecycleSections(d: LifecycleDeps): Promise<string[]> {
  const done = (rows: string[]) => {
    d.log(`\n${rows.join('\n')}`);
    return rows;
  };
  const cs = done(containerStartRows(await benchContainerStart(d)));
  const mem = done(memoryRows(await benchMemoryReturn(d)));
  const disk = done(diskSpaceRows(await benchDiskSpace(d)));
  const wake = done(wakeRows(await benchWake(d)));
  return [...cs, ...mem, ...disk, ...wake];
}
