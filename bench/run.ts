/**
 * `npm run bench`: Berth's speed and memory goals, measured on this machine
 * and written to bench/results.md (a table per section). Never asserted in
 * tests: numbers depend on the host (KVM vs TCG above all).
 *
 *   npm run bench -- [--runs N] [--quick] [--out FILE]
 *   npm run bench -- --only shares [--quick] [--out FILE]   (one start, then
 *     only the file sharing section; bench/results-shares.md by default)
 *   npm run bench -- --only boot [--runs N] [--out FILE]   (N starts and the
 *     floor, only the boot timeline section; bench/results-boot.md)
 *   npm run bench -- --only lifecycle [--out FILE]   (one start, then only
 *     container start, memory given back and wake from rest;
 *     bench/results-lifecycle.md)
 *   npm run bench -- --only release [--runs N] [--baseline REV] [--out FILE]
 *     (N starts of the current guest image and of the previous Debian
 *     release's, each with its floor; bench/results-release.md)
 *   npm run bench -- --soak [--soak-minutes 30] [--out FILE]   (only the soak;
 *     written to bench/soak-results.md by default)
 *
 * Each kind of run writes its own file whole, with a header naming the
 * commit, the command, the machine and the accelerator (results-file.ts);
 * `--out` never names another kind's file.
 *
 * Uses its own BERTH_HOME in /tmp so the user's instance is untouched.
 */
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../app/base/package-root.js';
import { processRssKiB, sleep } from '../app/base/process-util.js';
import { busyboxRootfsTar } from '../test/helpers/busybox-rootfs.js';
import { berth, home, median, ms1, must, pct, run, sock, status } from './bench-kit.js';
import { benchPorts } from './ports.js';
import { benchDashboard, dashboardRows } from './dashboard.js';
import { addBootShare, sharesSection } from './shares-section.js';
import { bootRows, startRows, startRuns } from './starts.js';
import { lifecycleSections, type LifecycleDeps } from './lifecycle.js';
import { commitOf, resultsPath, writeResultsFile, type RunKind } from './results-file.js';
import { runSoak, SOAK_BOUNDS, soakRows } from './soak.js';
import { socketLatencyRows } from './socket-latency.js';
import { imageRows } from './image-rows.js';
import { currentRelease, guestUsedMiB, measurePreviousRelease, releaseRows } from './release-compare.js';
import { cacheDir } from '../app/base/paths.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : def;
};
const RUNS = Math.max(2, Number(opt('--runs', '3')));
/** --quick: smaller file sharing workloads (1,000 files, 100 MiB, a 5,000-file tree). */
const QUICK = args.includes('--quick');
const SOAK = args.includes('--soak');
const SOAK_MINUTES = Number(opt('--soak-minutes', '30'));
if (!(SOAK_MINUTES > 0)) {
  process.stderr.write('bench: --soak-minutes takes a number of minutes above 0, e.g. --soak-minutes 30\n');
  process.exit(2);
}
/** --only SECTION: only that section (shares, lifecycle: after one start; boot: the starts and the floor). */
const ONLY = opt('--only', '');
const ONLY_KINDS = ['shares', 'boot', 'lifecycle', 'release'] as const;
/** --baseline REV: the previous release's recipe is vm-images at REV (default: found from suite.txt's history). */
const BASELINE = opt('--baseline', '') || undefined;
const isOnlyKind = (x: string): x is (typeof ONLY_KINDS)[number] => (ONLY_KINDS as readonly string[]).includes(x);
if (ONLY && !isOnlyKind(ONLY)) {
  process.stderr.write(`bench: --only takes a section name: ${ONLY_KINDS.join(', ')} (not ${JSON.stringify(ONLY)})\n`);
  process.exit(2);
}
const KIND: RunKind = SOAK ? 'soak' : isOnlyKind(ONLY) ? ONLY : 'full';
let OUT: string;
try {
  OUT = resultsPath(path.join(packageRoot(), 'bench'), KIND, args.includes('--out') ? opt('--out', '') || undefined : undefined);
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exit(2);
}
/** The command line as typed, for the results file's header. */
const COMMAND = `npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`;

/** --only boot: the starts and the floor, the boot timeline section, stop. */
async function onlyBoot(): Promise<void> {
  process.stderr.write(`bench: BERTH_HOME=${home}, only the boot timeline (${RUNS} starts)\n`);
  const { samples, floor } = await startRuns(RUNS);
  const st = await status();
  const accel = `${st.accel} (${st.accelReason})`;
  await must(berth('stop'), 'berth stop');
  fs.rmSync(home, { recursive: true, force: true });
  writeResults(bootRows(samples, floor, st.accel ?? '?'), accel);
}

/** --only release: the current image's starts and floor, then the previous release's. */
async function onlyRelease(): Promise<void> {
  process.stderr.write(`bench: BERTH_HOME=${home}, only the guest release against the previous one (${RUNS} starts each)\n`);
  const { samples, floor } = await startRuns(RUNS);
  const st = await status();
  const cur = currentRelease(samples, floor, await guestUsedMiB(berth));
  await must(berth('stop'), 'berth stop');
  fs.rmSync(home, { recursive: true, force: true });
  const prev = await measurePreviousRelease(RUNS, (m) => process.stderr.write(`bench: ${m}\n`), BASELINE);
  writeResults(releaseRows(cur, prev), `${st.accel} (${st.accelReason})`);
}

/** The life-cycle sections' hands: the bench's docker and berth, the guest through berth shell. */
const lifecycleDeps: LifecycleDeps = {
  docker: (a) => run('docker', a),
  berth: (...a) => berth(...a),
  guest: async (script) => (await must(berth('shell', '--', 'sh', '-c', script), 'berth shell')).stdout,
  status,
  image: 'bench-bb:1',
  log: (m) => process.stderr.write(`bench: ${m}\n`),
};

/** --only lifecycle: one start, the image, the life-cycle sections, stop. */
async function onlyLifecycle(): Promise<void> {
  process.stderr.write(`bench: BERTH_HOME=${home}, only container start, memory given back and wake from rest\n`);
  await must(berth('start'), 'berth start');
  const st = await status();
  await must(run('docker', ['import', busyboxRootfsTar(home), 'bench-bb:1']), 'docker import');
  const rows = await lifecycleSections(lifecycleDeps);
  await must(berth('stop'), 'berth stop');
  fs.rmSync(home, { recursive: true, force: true });
  writeResults(rows, `${st.accel} (${st.accelReason})`);
}

function writeResults(rows: string[], accel: string): void {
  const text = writeResultsFile(OUT, { commit: commitOf(packageRoot()), command: COMMAND, accel }, rows);
  process.stdout.write(text + '\n');
}

/** --soak: start, then only the soak. */
async function soak(): Promise<void> {
  process.stderr.write(`bench: soak for ${SOAK_MINUTES} min, BERTH_HOME=${home}\n`);
  await must(berth('start'), 'berth start');
  const st = await status();
  await must(run('docker', ['import', busyboxRootfsTar(home), 'bench-bb:1']), 'docker import');
  const shareDir = path.join(home, 'share');
  fs.mkdirSync(shareDir);
  await must(berth('share', 'add', shareDir), 'berth share add');
  const r = await runSoak(
    {
      docker: (a) => run('docker', a),
      guest: async (script) => (await must(berth('shell', '--', 'sh', '-c', script), 'berth shell')).stdout,
      enginePid: async () => (await status()).enginePid,
      qemuPid: async () => (await status()).vmPid,
      dockerSocket: sock,
    },
    { minutes: SOAK_MINUTES, image: 'bench-bb:1', shareDir, port: 18280, log: (m) => process.stderr.write(`bench: ${m}\n`) },
  );
  await must(berth('stop'), 'berth stop');
  fs.rmSync(home, { recursive: true, force: true });
  writeResults(soakRows(r), `${st.accel} (${st.accelReason})`);
  if (r.engineGrowthMiB > SOAK_BOUNDS.engineMiB || r.guestGrowthMiB > SOAK_BOUNDS.guestMiB || r.errors > 0) process.exitCode = 1;
}

/** --only shares: one start, the file sharing section, stop. */
async function onlyShares(): Promise<void> {
  process.stderr.write(`bench: BERTH_HOME=${home}, only the file sharing section\n`);
  await addBootShare();
  await must(berth('start'), 'berth start');
  const st = await status();
  const rows = await sharesSection(QUICK);
  await must(berth('stop'), 'berth stop');
  fs.rmSync(home, { recursive: true, force: true });
  writeResults(rows, `${st.accel} (${st.accelReason})`);
}

async function main(): Promise<void> {
  // The VM must not rest in the middle of a measurement: sections that use
  // no docker (sharing, the dashboard) outlast the default idle time. The
  // lifecycle section sets its own to measure a wake.
  await must(berth('settings', 'set', 'idleMinutes=0'), 'berth settings set idleMinutes=0');
  if (SOAK) return soak();
  if (ONLY === 'shares') return onlyShares();
  if (ONLY === 'boot') return onlyBoot();
  if (ONLY === 'lifecycle') return onlyLifecycle();
  if (ONLY === 'release') return onlyRelease();
  const rows: string[] = [];
  process.stderr.write(`bench: BERTH_HOME=${home}, ${RUNS} start runs\n`);
  await addBootShare();

  // 1. Start time: a new instance (formats the data disk), then warm starts.
  const { samples, floor } = await startRuns(RUNS);
  const st = await status();
  const accel = `${st.accel} (${st.accelReason})`;
  rows.push(...startRows(samples), ...bootRows(samples, floor, st.accel ?? '?'));
  const current = currentRelease(samples, floor, await guestUsedMiB(berth));

  // 2. The socket forward: its own cost without a VM, and calls through the VM for context.
  process.stderr.write('bench: latency\n');
  rows.push(
    ...(await socketLatencyRows({
      socketPath: sock,
      guest: async (script) => (await must(berth('shell', '--', 'sh', '-c', script), 'berth shell')).stdout,
      dockerVersion: async () => (await must(run('docker', ['version']), 'docker version')).ms,
    })),
  );

  // 3. Port forwarding.
  process.stderr.write('bench: ports\n');
  const tarFile = busyboxRootfsTar(home);
  await must(run('docker', ['import', tarFile, 'bench-bb:1']), 'docker import');
  const pb = await benchPorts(
    { docker: (a) => run('docker', a), berth: (...a) => berth(...a), enginePid: async () => (await status()).enginePid },
    'bench-bb:1',
  );
  rows.push(
    '## Port forwarding',
    '',
    'A busybox httpd container, published with `-p`; every request on a new connection.',
    '',
    '| measure | value |',
    '|---|---|',
    `| \`docker run -d -p\` returned → first HTTP answer on 127.0.0.1 (median of 5) | ${ms1(median(pb.firstConnectMs))} |`,
    `| \`docker rm -f\` returned → port refused on the host (median of 5) | ${ms1(median(pb.releaseMs))} |`,
    '',
    `The same guest port through Berth's forward (ssh channel per connection) and through QEMU's own user-mode hostfwd, in the same run:`,
    '',
    '| transfer | Berth forward | QEMU hostfwd |',
    '|---|---|---|',
    `| 1 KiB GET, p50 / p95 (100 each) | ${ms1(median(pb.small.berth))} / ${ms1(pct(pb.small.berth, 95))} | ${ms1(median(pb.small.hostfwd))} / ${ms1(pct(pb.small.hostfwd, 95))} |`,
    `| 100 MiB GET, MB/s (median of 3) | ${median(pb.bigMBps.berth).toFixed(1)} | ${median(pb.bigMBps.hostfwd).toFixed(1)} |`,
    '',
    `| idle with ${pb.idle.forwards} forwards open (30 s) | value |`,
    '|---|---|',
    `| engine CPU (of one core) | ${pb.idle.engineCpuPct.toFixed(2)} % |`,
    `| guest socket-table watcher CPU (of one guest core) | ${pb.idle.guestWatcherCpuPct === undefined ? 'n/a' : `${pb.idle.guestWatcherCpuPct.toFixed(2)} %`} |`,
    '',
  );

  // 4. File sharing: shared host folders (each mechanism) vs the guest's own disk.
  rows.push(...(await sharesSection(QUICK)));

  // 5. The dashboard (no VM needed: a fake dockerd holds 200 containers).
  process.stderr.write('bench: dashboard\n');
  rows.push(...dashboardRows(await benchDashboard({ containers: 200, runs: 3 })));

  // 6. Memory at idle.
  process.stderr.write('bench: idle memory (30 s)\n');
  await sleep(30_000);
  const s = await status();
  const engineRss = processRssKiB(s.enginePid);
  const qemuRss = s.vmPid ? processRssKiB(s.vmPid) : undefined;
  const cpuBefore = fs.readFileSync(`/proc/${s.enginePid}/stat`, 'utf8').split(' ');
  await sleep(10_000);
  const cpuAfter = fs.readFileSync(`/proc/${s.enginePid}/stat`, 'utf8').split(' ');
  const ticks = Number(cpuAfter[13]) + Number(cpuAfter[14]) - Number(cpuBefore[13]) - Number(cpuBefore[14]);
  const guestFree = (await must(berth('shell', '--', 'free', '-m'), 'free')).stdout;
  const used = /Mem:\s+(\d+)\s+(\d+)/.exec(guestFree);
  const mib = (k?: number) => (k === undefined ? 'n/a' : `${(k / 1024).toFixed(1)} MiB`);
  rows.push(
    '## Idle',
    '',
    'After 30 s idle with the VM running and nothing else happening.',
    '',
    '| what | value |',
    '|---|---|',
    `| engine process RSS | ${mib(engineRss)} |`,
    `| engine CPU over 10 s idle (of one core) | ${((ticks / 100 / 10) * 100).toFixed(2)} % |`,
    `| QEMU process RSS (guest memory touched so far) | ${mib(qemuRss)} |`,
    `| guest memory in use (free -m) | ${used ? `${used[2]} MiB of ${used[1]} MiB` : 'n/a'} |`,
    '',
  );

  // 7. Container start, memory given back, wake from rest (ends with a cold start).
  rows.push(...(await lifecycleSections(lifecycleDeps)));

  // 8. The guest image: what each artifact weighs.
  rows.push(...imageRows(cacheDir()));

  await must(berth('stop'), 'berth stop');
  fs.rmSync(home, { recursive: true, force: true });

  // 9. The previous Debian release's image, started the same way (this VM stopped).
  process.stderr.write('bench: the previous guest release\n');
  rows.push(...releaseRows(current, await measurePreviousRelease(RUNS, (m) => process.stderr.write(`bench: ${m}\n`), BASELINE)));

  writeResults(rows, accel);
}

main().catch(async (err) => {
  process.stderr.write(`bench failed: ${(err as Error).message}\n`);
  await berth('stop', '--force').catch(() => undefined);
  process.exitCode = 1;
});
