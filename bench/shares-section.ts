/**
 * The bench's file sharing section (`npm run bench`, `--only shares`): the
 * same workloads on each sharing mechanism, a synced folder and the guest's
 * disk; how fast a synced folder settles; hot reload; the developer
 * workloads; the SFTP server and the sync without a VM.
 */
import fs from 'node:fs';
import path from 'node:path';
import { busyboxRootfsTar } from '../test/helpers/busybox-rootfs.js';
import { buildFixture } from '../test/helpers/net-probe.js';
import { berth, env, home, ms1, must, run, s1, status } from './bench-kit.js';
import { benchShares } from './shares.js';
import { benchHotReload, hotReloadRows } from './hot-reload.js';
import { benchDevWorkloads, DEV_QUICK, DEV_SIZES, devImageTar, devWorkloadRows } from './dev-workloads.js';
import { benchSftpLocal, sftpBenchTable } from './sftp.js';
import { benchSyncLocal, syncLocalRows } from './sync-local.js';
import { sleep } from '../app/base/process-util.js';
import { packageRoot } from '../app/base/package-root.js';
import { instancePaths } from '../app/base/paths.js';
import { shWord } from '../app/base/shell-quote.js';
import { ControlClient } from '../app/client/control-client.js';

/**
 * The shares section's folders: one shared before the start (virtiofs
 * where the host has it: virtio-fs devices are made at boot) and one added
 * while running (reverse sshfs until a restart), so both mechanisms are
 * measured in one run; plus a synced folder inside the second.
 */
const vfsDir = path.join(home, 'share-vfs');

export async function addBootShare(): Promise<void> {
  fs.mkdirSync(vfsDir);
  await must(berth('share', 'add', vfsDir), 'berth share add');
}

/** The file sharing section's rows; `quick`: the smaller sizes of `--quick`. */
export async function sharesSection(QUICK: boolean): Promise<string[]> {
  const rows: string[] = [];
  process.stderr.write('bench: file sharing\n');
  const shareDir = path.join(home, 'share');
  fs.mkdirSync(shareDir);
  await must(berth('share', 'add', shareDir), 'berth share add');
  const sizes = QUICK ? { smallFiles: 1000, bigMiB: 100, treeFiles: 5000 } : {};
  // Sync mode: a folder inside the share kept in sync with a copy on the guest's disk.
  const syncDir = path.join(shareDir, 'synced');
  fs.mkdirSync(syncDir);
  await must(berth('sync', 'add', syncDir), 'berth sync add');
  const syncDeadline = Date.now() + 300_000;
  for (;;) {
    const v = JSON.parse((await must(berth('sync', '--json'), 'berth sync')).stdout) as {
      syncs: { hostPath: string; state: string; mounted: boolean; error?: string }[];
    };
    const me = v.syncs.find((x) => x.hostPath === syncDir);
    if (me?.state === 'watching' && me.mounted) break;
    if (Date.now() > syncDeadline) throw new Error(`the synced folder did not come up: ${JSON.stringify(me)}`);
    await sleep(500);
  }
  const guestFiles = async (sub: string) => {
    const r = await berth('shell', '--', 'sh', '-c', `find '${syncDir}/${sub}' -type f 2>/dev/null | wc -l`);
    return Number(r.stdout.trim()) || 0;
  };
  const control = await ControlClient.connect(instancePaths('default', home), 'bench');
  const mine = async () => (await control.call('sync.list', {})).syncs.find((x) => x.hostPath === syncDir);
  const landed = async () => (await mine())?.entries ?? 0;
  const idle = async () => (await mine())?.state === 'watching';
  const tarCopy = async (hostDir: string) => {
    const to = '/var/lib/berth/bench-tar';
    await must(berth('shell', '--', 'sh', '-c', `rm -rf ${to} && mkdir -p ${to}`), 'berth shell mkdir');
    const session = await must(berth('shell', '--', 'true'), 'berth shell true');
    const cli = `${shWord(process.execPath)} ${shWord(path.join(packageRoot(), 'bin', 'berth.js'))}`;
    const r = await must(run('sh', ['-c', `tar -c -C ${shWord(hostDir)} . | ${cli} shell -- tar -x -C ${to}`]), 'tar into the guest');
    await must(berth('shell', '--', 'rm', '-rf', to), 'berth shell rm');
    return { ms: r.ms, sessionMs: session.ms };
  };
  const views = (await status()).shares ?? [];
  const mech = (dir: string) => views.find((x) => x.hostPath === dir);
  const targets = [
    { label: mech(vfsDir)?.mechanism ?? '?', dir: vfsDir, why: mech(vfsDir)?.mechanismReason },
    { label: mech(shareDir)?.mechanism ?? '?', dir: shareDir, why: mech(shareDir)?.mechanismReason },
  ].filter((t, i, all) => all.findIndex((x) => x.label === t.label) === i);
  process.stderr.write(`bench: mechanisms measured: ${targets.map((t) => `${t.label} (${t.why ?? '?'})`).join(', ')}\n`);
  // Hot reload first: short, and needs the watcher image (a missing compiler fails here, not after the long workloads).
  process.stderr.write('bench: hot reload\n');
  const watcher = buildFixture('inotify-watch', home);
  if (!watcher.bin) throw new Error(`the hot reload bench needs its watcher: ${watcher.problem}`);
  await must(run('docker', ['import', busyboxRootfsTar(home, undefined, { 'bin/inotify-watch': watcher.bin }), 'bench-watch:1']), 'docker import');
  const hot = [];
  // The synced folder too: a host edit reaches its guest copy, a container's write the host, by the sync.
  for (const t of [...targets, { label: 'synced folder', dir: syncDir }])
    hot.push(await benchHotReload(t.label, t.dir, 'bench-watch:1', env, QUICK ? 50 : 200));
  const { rows: shareRows, settle } = await benchShares((script) => berth('shell', '--', 'sh', '-c', script), targets, '/var/lib/berth/bench', sizes, {
    dir: syncDir,
    guestFiles,
    landed,
    idle,
    tarCopy,
  }).finally(() => control.close());
  process.stderr.write('bench: developer workloads\n');
  await must(run('docker', ['import', devImageTar(home, QUICK ? DEV_QUICK : DEV_SIZES), 'bench-dev:1']), 'docker import');
  const devPlaces = [
    { label: 'guest disk', mount: 'bench-dev' },
    ...targets.filter((t) => t.label !== 'reverse-sshfs').map((t) => ({ label: t.label, mount: t.dir })),
    { label: 'synced folder', mount: syncDir },
  ];
  const { rows: dev, failures: devFailures } = await benchDevWorkloads(
    (a) => run('docker', a),
    'bench-dev:1',
    devPlaces,
    QUICK ? DEV_QUICK : DEV_SIZES,
    (m) => process.stderr.write(`bench: ${m}\n`),
  );
  await must(berth('sync', 'rm', syncDir), 'berth sync rm');
  fs.rmSync(syncDir, { recursive: true, force: true });
  const cols = targets.map((t) => t.label);
  rows.push(
    '## File sharing',
    '',
    `The same workloads in the VM, timed inside the guest: on a shared host folder for each mechanism this host has (${targets.map((t) => `${t.label}: ${t.why ?? '?'}`).join('; ')}), on a synced folder (sync mode: \`berth sync add\`, the guest copy on the data disk mounted at the folder's path, kept in sync with the host in the background) and on the guest's own disk (ext4 on the data disk). Caches dropped in the guest before reads and walks.${QUICK ? ' `--quick` sizes.' : ''}`,
    '',
    `| workload | guest disk | ${cols.map((c) => `${c} | ratio`).join(' | ')} | synced folder | ratio |`,
    `|---|---|${cols.map(() => '---|---|').join('')}---|---|`,
    ...shareRows.map(
      (r) =>
        `| ${r.op} | ${ms1(r.nativeMs)} | ${r.shared.map((x) => `${ms1(x.ms)} | ${x.ratio.toFixed(1)}×`).join(' | ')} | ${r.syncMs === undefined ? 'n/a' : ms1(r.syncMs)} | ${r.syncRatio === undefined ? 'n/a' : `${r.syncRatio.toFixed(1)}×`} |`,
    ),
    '',
    'Sync mode carries changes across in the background (the host followed by @parcel/watcher, the guest by inotifywait); how long a burst takes to reach the other side. Host → guest is timed until the engine has recorded every entry as landed, asked on the host, and the guest copy is counted once after; guest → host until the host folder has every file:',
    '',
    '| burst | until the other side has all of it |',
    '|---|---|',
    ...settle.map((x) => `| ${x.what} | ${x.ratio === undefined ? s1(x.ms) : `${x.ratio.toFixed(2)}×`} |`),
    '',
    ...devWorkloadRows(
      dev,
      `Reverse sshfs is left out: its cost per file (the create row above) makes these many-file steps take many minutes under TCG.${QUICK ? ' `--quick` sizes.' : ''}`,
      devFailures,
    ),
    ...hotReloadRows(hot),
  );
  process.stderr.write('bench: sftp server alone\n');
  const local = await benchSftpLocal(QUICK ? { smallFiles: 1000, bigMiB: 100, treeFiles: 5000 } : {});
  rows.push(
    "The SFTP server alone, without a VM: the real sshfs on this machine mounting a folder through the engine's server, against the plain folder:",
    '',
    sftpBenchTable(local),
    '',
  );
  process.stderr.write('bench: sync alone\n');
  const sl = await benchSyncLocal(QUICK ? { files: 1000, burst: 2000, edits: 50 } : {});
  rows.push(...syncLocalRows(sl));
  return rows;
}
