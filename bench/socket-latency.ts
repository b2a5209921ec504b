/**
 * The docker socket forward in `npm run bench`. Its cost is measured
 * without a VM (forward-overhead.ts: the same forward code in front of a
 * loopback ssh2 server, against the socket straight): that is the number
 * for "what the forward adds". Calls through the VM are listed as context
 * only: from the host they run on the host's CPU, inside the guest on the
 * emulated one, so their difference is not the forward's cost (under TCG
 * it is negative).
 */
import http from 'node:http';
import { measureForwardOverhead } from './forward-overhead.js';

export interface LatencyDeps {
  socketPath: string;
  /** A shell script in the guest; its stdout. */
  guest: (script: string) => Promise<string>;
  /** `docker version` on the host; its wall time in ms. */
  dockerVersion: () => Promise<number>;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const ms1 = (ms: number) => ms.toFixed(1) + ' ms';

/** GET /version over a unix socket, n times, one connection each; a failed call is an error. */
async function apiLatency(socketPath: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      http
        .get({ socketPath, path: '/version', agent: false, timeout: 30_000 }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`GET /version: HTTP ${res.statusCode}`))));
        })
        .on('timeout', function (this: http.ClientRequest) {
          this.destroy(new Error('GET /version timed out'));
        })
        .on('error', reject);
    });
    out.push(performance.now() - t0);
  }
  return out;
}

/** Numbers a guest loop printed, one a line; exactly `n` of them or an error. */
function samples(stdout: string, n: number, scale: number, what: string): number[] {
  const xs = stdout
    .trim()
    .split('\n')
    .map((l) => Number(l) * scale);
  if (xs.length !== n || !xs.every((x) => Number.isFinite(x) && x > 0))
    throw new Error(`bench: ${what}: ${xs.length} of ${n} samples, or a failed one:\n${stdout.slice(0, 500)}`);
  return xs;
}

export async function socketLatencyRows(d: LatencyDeps): Promise<string[]> {
  const o = await measureForwardOverhead();
  const N = 200;
  await apiLatency(d.socketPath, 20); // warm up
  const host = await apiLatency(d.socketPath, N);
  // curl -f: a failed call exits non-zero, and `|| echo fail` makes it a non-number.
  const guest = samples(
    await d.guest(
      `for i in $(seq ${N}); do curl -fs -o /dev/null -w '%{time_total}\\n' --unix-socket /var/run/docker.sock http://d/version || echo fail; done`,
    ),
    N,
    1000,
    'GET /version inside the guest',
  );
  const cliHost: number[] = [];
  for (let i = 0; i < 10; i++) cliHost.push(await d.dockerVersion());
  const cliGuest = samples(
    await d.guest(
      'for i in 1 2 3 4 5 6 7 8 9 10; do s=$(date +%s%N); docker version >/dev/null || { echo fail; continue; }; e=$(date +%s%N); echo $(( (e - s) / 1000 )); done',
    ),
    10,
    1 / 1000,
    'docker version inside the guest',
  );
  return [
    '## Docker socket forward',
    '',
    'What the forward costs, measured without a VM (an ssh2 server on loopback stands in for the guest, a tiny HTTP server for dockerd), 500 calls each:',
    '',
    '| path | p50 | p95 |',
    '|---|---|---|',
    `| straight to the unix socket | ${ms1(median(o.direct))} | ${ms1(pct(o.direct, 95))} |`,
    `| through Berth's forward, new connection per call (new ssh channel) | ${ms1(median(o.forwarded))} | ${ms1(pct(o.forwarded, 95))} |`,
    `| through Berth's forward, keep-alive connection | ${ms1(median(o.forwardedKeepAlive))} | ${ms1(pct(o.forwardedKeepAlive, 95))} |`,
    `| through Berth's forward with the bind guard (as the engine runs it), new connection | ${ms1(median(o.guarded))} | ${ms1(pct(o.guarded, 95))} |`,
    `| **the forward's cost (new connection, p50)** | **${ms1(median(o.forwarded) - median(o.direct))}** | |`,
    `| **the guard's cost on top (p50)** | **${ms1(median(o.guarded) - median(o.forwarded))}** | |`,
    '',
    `A ${Math.round(o.bulk.bytes / 2 ** 20)} MiB upload (PUT with a Content-Length body, as \`docker cp\` into a container sends its archive), median of ${o.bulk.direct.length}:`,
    '',
    '| path | MB/s |',
    '|---|---|',
    `| straight to the unix socket | ${median(o.bulk.direct).toFixed(0)} |`,
    `| through Berth's forward | ${median(o.bulk.forwarded).toFixed(0)} |`,
    `| through Berth's forward with the bind guard | ${median(o.bulk.guarded).toFixed(0)} |`,
    '',
    `For context, calls to the real dockerd in the VM, ${N} \`GET /version\` on a new connection each: from the host through Berth's socket, and inside the guest on dockerd's own socket (curl). The two clients run on different CPUs (the host's, the emulated guest's), so the difference between the columns is not the forward's cost; that is the table above. The \`docker version\` row includes the CLI's own start-up on each side.`,
    '',
    '| call | host, through Berth (p50 / p95) | inside the guest (p50 / p95) |',
    '|---|---|---|',
    `| API \`GET /version\` | ${ms1(median(host))} / ${ms1(pct(host, 95))} | ${ms1(median(guest))} / ${ms1(pct(guest, 95))} |`,
    `| \`docker version\` (CLI, 10 each) | ${ms1(median(cliHost))} / ${ms1(pct(cliHost, 95))} | ${ms1(median(cliGuest))} / ${ms1(pct(cliGuest, 95))} |`,
    '',
  ];
}
