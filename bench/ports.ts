/**
 * Port forwarding numbers for `npm run bench`: how soon a published port
 * answers, latency and throughput through Berth's forward side by side with
 * QEMU's own hostfwd to the same guest port, and what ten idle forwards cost.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { sleep, waitFor } from '../app/base/process-util.js';

export interface Runner {
  docker: (args: string[]) => Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>;
  berth: (...args: string[]) => Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>;
  enginePid: () => Promise<number>;
}

/** The QEMU hostfwd the bench starts the VM with (BERTH_QEMU_HOSTFWD). */
export const HOSTFWD = { host: 28200, guest: 18200 };

function get(port: number, path: string): Promise<{ ms: number; bytes: number; status?: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => (bytes += d.length));
      res.on('end', () => resolve({ ms: performance.now() - t0, bytes, status: res.statusCode }));
    });
    req.on('error', () => resolve({ ms: performance.now() - t0, bytes: 0 }));
  });
}

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.createConnection({ host: '127.0.0.1', port });
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });

/** waitFor that throws when the time runs out: a timeout is an error, never a sample. */
async function until(check: () => boolean | Promise<boolean>, ms: number, every: number, what: string): Promise<void> {
  if (!(await waitFor(check, ms, every))) throw new Error(`bench: ${what} did not happen within ${ms / 1000} s`);
}

/** A GET that must answer 200 with `bytes` bytes; a failed request is an error, never a latency sample. */
async function sample(port: number, path: string, bytes: number): Promise<{ ms: number; bytes: number }> {
  const r = await get(port, path);
  if (r.status !== 200 || r.bytes !== bytes)
    throw new Error(`bench: GET 127.0.0.1:${port}${path} failed (status ${r.status ?? 'none'}, ${r.bytes} of ${bytes} bytes)`);
  return r;
}

function cpuTicks(pid: number): number {
  // utime + stime, in clock ticks (fields 14 and 15 of /proc/PID/stat).
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]);
}

export interface PortsBench {
  firstConnectMs: number[];
  releaseMs: number[];
  small: { berth: number[]; hostfwd: number[] };
  bigMBps: { berth: number[]; hostfwd: number[] };
  idle: { engineCpuPct: number; guestWatcherCpuPct: number | undefined; forwards: number };
}

export async function benchPorts(r: Runner, image: string): Promise<PortsBench> {
  const must = async (args: string[]) => {
    const x = await r.docker(args);
    if (x.code !== 0) throw new Error(`docker ${args.join(' ')}: ${x.stderr}`);
    return x.stdout.trim();
  };
  const out: PortsBench = {
    firstConnectMs: [],
    releaseMs: [],
    small: { berth: [], hostfwd: [] },
    bigMBps: { berth: [], hostfwd: [] },
    idle: { engineCpuPct: 0, guestWatcherCpuPct: undefined, forwards: 0 },
  };

  // 1. docker run -d -p returned -> first answer on the host; rm -f -> refused.
  for (let i = 0; i < 5; i++) {
    await must(['run', '-d', '--name', `fc${i}`, '-p', '18201:80', image, 'httpd', '-f', '-p', '80', '-h', '/www']);
    const t0 = performance.now();
    await until(async () => (await get(18201, '/')).status === 200, 30_000, 5, `the published port answering (run ${i + 1})`);
    out.firstConnectMs.push(performance.now() - t0);
    await must(['rm', '-f', `fc${i}`]);
    const t1 = performance.now();
    await until(() => refused(18201), 30_000, 5, `the port closing after docker rm -f (run ${i + 1})`);
    out.releaseMs.push(performance.now() - t1);
  }

  // 2. The same guest port through Berth (18200) and through QEMU's hostfwd (28200).
  await must([
    'run',
    '-d',
    '--name',
    'big',
    '-p',
    `${HOSTFWD.guest}:80`,
    image,
    'sh',
    '-c',
    'dd if=/dev/urandom of=/www/big bs=1M count=100 2>/dev/null && head -c 1024 /dev/urandom > /www/small && exec httpd -f -p 80 -h /www',
  ]);
  await until(async () => (await get(HOSTFWD.guest, '/small')).bytes === 1024, 120_000, 200, "the test server answering through Berth's forward");
  await until(async () => (await get(HOSTFWD.host, '/small')).bytes === 1024, 30_000, 200, "the test server answering through QEMU's hostfwd");
  for (let i = 0; i < 10; i++) {
    await sample(HOSTFWD.guest, '/small', 1024);
    await sample(HOSTFWD.host, '/small', 1024);
  }
  for (let i = 0; i < 100; i++) {
    out.small.berth.push((await sample(HOSTFWD.guest, '/small', 1024)).ms);
    out.small.hostfwd.push((await sample(HOSTFWD.host, '/small', 1024)).ms);
  }
  const BIG = 100 * 1048576;
  for (let i = 0; i < 3; i++) {
    const b = await sample(HOSTFWD.guest, '/big', BIG);
    out.bigMBps.berth.push(b.bytes / 1048576 / (b.ms / 1000));
    const h = await sample(HOSTFWD.host, '/big', BIG);
    out.bigMBps.hostfwd.push(h.bytes / 1048576 / (h.ms / 1000));
  }
  await must(['rm', '-f', 'big']);

  // 3. Ten forwards open, nothing happening.
  await must([
    'run',
    '-d',
    '--name',
    'ten',
    '-p',
    '18210-18219:8000-8009',
    image,
    'sh',
    '-c',
    'for p in $(seq 8000 8009); do httpd -p $p -h /www; done; exec sleep 100000',
  ]);
  await until(
    async () => (await Promise.all(Array.from({ length: 10 }, (_, i) => get(18210 + i, '/')))).every((x) => x.status === 200),
    60_000,
    200,
    'ten forwarded ports answering',
  );
  out.idle.forwards = JSON.parse((await r.berth('ports', '--json')).stdout).ports.length;
  // Idle means past the socket watcher's busy 30 s after the last change it saw.
  await sleep(35_000);
  const pid = await r.enginePid();
  const watcher = async () => {
    const x = await r.berth(
      'shell',
      '--',
      'sh',
      '-c',
      "for p in /proc/[0-9]*; do if grep -q 'diag[(]2, 6' $p/cmdline 2>/dev/null; then cut -d' ' -f14,15 $p/stat; fi; done",
    );
    const nums = x.stdout
      .trim()
      .split(/\s+/)
      .map(Number)
      .filter((n) => Number.isFinite(n));
    return nums.length >= 2 ? nums.reduce((a, b) => a + b, 0) : undefined;
  };
  const e0 = cpuTicks(pid);
  const w0 = await watcher();
  const t0 = performance.now();
  await sleep(30_000);
  const secs = (performance.now() - t0) / 1000;
  const e1 = cpuTicks(pid);
  const w1 = await watcher();
  out.idle.engineCpuPct = ((e1 - e0) / 100 / secs) * 100;
  if (w0 !== undefined && w1 !== undefined) out.idle.guestWatcherCpuPct = ((w1 - w0) / 100 / secs) * 100;
  await must(['rm', '-f', 'ten']);
  return out;
}
