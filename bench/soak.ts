/**
 * `npm run bench -- --soak [--soak-minutes N]`: Berth left running under a
 * steady everyday load (containers started and removed, API calls, a
 * published port answering HTTP, files written through a shared folder,
 * logs read), with the engine's and the guest's memory sampled. A leak shows
 * as growth between the start (after a warm-up) and the end of the run.
 */
import http from 'node:http';
import { processRssKiB, sleep } from '../app/base/process-util.js';

export interface SoakDeps {
  docker: (args: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** A shell command in the guest; its stdout. */
  guest: (script: string) => Promise<string>;
  enginePid: () => Promise<number>;
  qemuPid: () => Promise<number | undefined>;
  dockerSocket: string;
}

export interface SoakSample {
  atSec: number;
  engineRssMiB: number;
  qemuRssMiB: number;
  /** MemTotal - MemAvailable: what the guest's processes hold, page cache left out. */
  guestUsedMiB: number;
  ops: number;
  errors: number;
}

export interface SoakResult {
  minutes: number;
  samples: SoakSample[];
  ops: number;
  errors: number;
  lastErrors: string[];
  /** Growth from the median of the first samples after warm-up to the median of the last ones. */
  engineGrowthMiB: number;
  guestGrowthMiB: number;
}

/** The stated bounds: growth beyond these over the run counts as a leak. */
export const SOAK_BOUNDS = { engineMiB: 25, guestMiB: 64 };

function apiGet(socketPath: string, p: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: p, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

function httpGet(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 10_000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};

export async function runSoak(
  deps: SoakDeps,
  opts: { minutes: number; image: string; shareDir: string; port: number; sampleSec?: number; log?: (m: string) => void },
): Promise<SoakResult> {
  const log = opts.log ?? (() => undefined);
  const sampleSec = opts.sampleSec ?? 30;
  const must = async (args: string[]) => {
    const r = await deps.docker(args);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  await must([
    'run',
    '-d',
    '--name',
    'soak-web',
    '-p',
    `${opts.port}:80`,
    opts.image,
    'sh',
    '-c',
    'mkdir -p /w && echo hi > /w/index.html && exec httpd -f -p 80 -h /w',
  ]);
  await must(['run', '-d', '--name', 'soak-talker', opts.image, 'sh', '-c', 'while true; do echo tick; sleep 1; done']);

  let ops = 0;
  let errors = 0;
  const lastErrors: string[] = [];
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
      ops++;
    } catch (err) {
      errors++;
      lastErrors.push(`${what}: ${(err as Error).message.split('\n')[0]}`);
      if (lastErrors.length > 5) lastErrors.shift();
    }
  };
  const t0 = Date.now();
  const end = t0 + opts.minutes * 60_000;
  let running = true;

  const workload = (async () => {
    for (let i = 0; running; i++) {
      await step('docker run --rm', () => must(['run', '--rm', opts.image, 'echo', String(i)]));
      await step('api calls', async () => {
        for (const p of ['/_ping', '/version', '/containers/json', '/images/json']) {
          const code = await apiGet(deps.dockerSocket, p);
          if (code !== 200) throw new Error(`${p}: HTTP ${code}`);
        }
      });
      await step('published port', async () => {
        for (let k = 0; k < 10; k++) {
          const code = await httpGet(opts.port);
          if (code !== 200) throw new Error(`HTTP ${code}`);
        }
      });
      await step('shared folder', () =>
        must([
          'run',
          '--rm',
          '-v',
          `${opts.shareDir}:/s`,
          opts.image,
          'sh',
          '-c',
          `for k in 1 2 3 4 5 6 7 8 9 10; do echo ${i} > /s/f$k; done; cat /s/f* > /dev/null`,
        ]),
      );
      await step('docker logs', () => must(['logs', '--tail', '20', 'soak-talker']));
    }
  })();

  const samples: SoakSample[] = [];
  const sample = async () => {
    const enginePid = await deps.enginePid();
    const qemuPid = await deps.qemuPid();
    const meminfo = await deps.guest('cat /proc/meminfo').catch(() => '');
    const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(meminfo)?.[1] ?? NaN);
    const s: SoakSample = {
      atSec: Math.round((Date.now() - t0) / 1000),
      engineRssMiB: (processRssKiB(enginePid) ?? NaN) / 1024,
      qemuRssMiB: qemuPid ? (processRssKiB(qemuPid) ?? NaN) / 1024 : NaN,
      guestUsedMiB: (kib('MemTotal') - kib('MemAvailable')) / 1024,
      ops,
      errors,
    };
    samples.push(s);
    log(
      `soak ${s.atSec}s: engine ${s.engineRssMiB.toFixed(1)} MiB, qemu ${s.qemuRssMiB.toFixed(0)} MiB, guest used ${s.guestUsedMiB.toFixed(0)} MiB, ${ops} ops, ${errors} errors`,
    );
  };
  while (Date.now() < end) {
    await sample();
    await sleep(Math.min(sampleSec * 1000, Math.max(0, end - Date.now())));
  }
  running = false;
  await workload;
  await sample();
  await deps.docker(['rm', '-f', 'soak-web', 'soak-talker']);

  // Compare after a warm-up (the first fifth of the run: caches, JIT, the
  // guest's first containers) with the end of the run.
  const warm = samples.filter((s) => s.atSec >= (opts.minutes * 60) / 5);
  const n = Math.max(1, Math.floor(warm.length / 4));
  const first = warm.slice(0, n);
  const last = warm.slice(-n);
  return {
    minutes: opts.minutes,
    samples,
    ops,
    errors,
    lastErrors,
    engineGrowthMiB: median(last.map((s) => s.engineRssMiB)) - median(first.map((s) => s.engineRssMiB)),
    guestGrowthMiB: median(last.map((s) => s.guestUsedMiB)) - median(first.map((s) => s.guestUsedMiB)),
  };
}

export function soakRows(r: SoakResult): string[] {
  const verdict = (growth: number, bound: number) =>
    growth <= bound ? `${growth.toFixed(1)} MiB (bound ${bound} MiB: **held**)` : `${growth.toFixed(1)} MiB (bound ${bound} MiB: **exceeded**)`;
  const every = Math.max(1, Math.floor(r.samples.length / 12));
  return [
    `## Soak: ${r.minutes} minutes under an everyday load`,
    '',
    'In a loop: `docker run --rm`, four API calls, ten HTTP requests to a published port, ten files written and read through a shared folder, `docker logs --tail`. Memory sampled every 30 s; growth is measured from the end of a warm-up (the first fifth of the run) to the end.',
    '',
    '| what | value |',
    '|---|---|',
    `| operations done / failed | ${r.ops} / ${r.errors}${r.lastErrors.length ? ` (last: ${r.lastErrors.join('; ')})` : ''} |`,
    `| engine RSS growth | ${verdict(r.engineGrowthMiB, SOAK_BOUNDS.engineMiB)} |`,
    `| guest memory in use growth (MemTotal − MemAvailable) | ${verdict(r.guestGrowthMiB, SOAK_BOUNDS.guestMiB)} |`,
    '',
    '| time | engine RSS | QEMU RSS | guest in use | operations |',
    '|---|---|---|---|---|',
    ...r.samples
      .filter((_, i) => i % every === 0 || i === r.samples.length - 1)
      .map(
        (s) =>
          `| ${Math.round(s.atSec / 60)} min | ${s.engineRssMiB.toFixed(1)} MiB | ${s.qemuRssMiB.toFixed(0)} MiB | ${s.guestUsedMiB.toFixed(0)} MiB | ${s.ops} |`,
      ),
    '',
  ];
}
