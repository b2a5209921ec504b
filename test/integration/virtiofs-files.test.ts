/**
 * A tree bigger than virtiofsd's open-files limit, through a real VM.
 * virtiofsd keeps an open file per file the guest has cached; where it
 * cannot raise its limit (no CAP_SYS_RESOURCE: a container like the bench
 * machine, a user namespace) the next file failed in the container with
 * "Too many open files" (bench/results-shares.md: every developer workload
 * on virtiofs failed at the 20,000-file limit). Where the limit is low,
 * the guest lets go of its cached files when it nears it
 * (share/fuse-valve.ts), and virtiofsd closes them.
 *
 * The engine runs under a limit of 6,000 here (prlimit), and a container
 * writes, lists and reads 9,000 files on the share: a source tree of 90
 * folders of 100 files. Once with each virtiofsd: the Rust one (as root it
 * names cached files by handle and holds none open; `npm run virtiofsd`
 * brings it to a host that lacks it) and QEMU's C one (the valve).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import { findExecutable } from '../../app/base/process-util.js';
import {
  bundledVirtiofsd,
  C_VIRTIOFSD_PATHS,
  probeVirtiofsd,
  RUST_VIRTIOFSD_PATHS,
  thisProbeHost,
  type VirtiofsdProbe,
} from '../../app/engine/drivers/virtiofsd-probe.js';
import { busyboxRootfsTar } from '../helpers/busybox-rootfs.js';
import { BERTH_BIN, run } from '../helpers/run.js';
import { ensureImage, vmPrereqProblem } from './prereqs.js';
import { vmFixture } from './vm-fixture.js';

const LIMIT = 6000;
const FILES = 9000;

/**
 * The probe as the engine under LIMIT makes it: its limit is LIMIT, unless
 * it may raise its own (root with CAP_SYS_RESOURCE); where it stays low the
 * Rust one as root names files by handle and shows no limit.
 */
function probeUnderLimit(bin: string): VirtiofsdProbe {
  const h = thisProbeHost(bin);
  const readFile = (p: string) => {
    const text = h.readFile(p);
    return p === '/proc/self/limits' ? text?.replace(/^Max open files.*$/m, `Max open files ${LIMIT} ${LIMIT} files`) : text;
  };
  return probeVirtiofsd({ ...h, readFile });
}

/** The files a process holds open. */
const openFiles = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;

const rust = [...RUST_VIRTIOFSD_PATHS, bundledVirtiofsd()].find((p) => fs.existsSync(p));
const c = C_VIRTIOFSD_PATHS.find((p) => fs.existsSync(p));
const daemons = [
  { name: 'the Rust virtiofsd', bin: rust, missing: 'no Rust virtiofsd here: `npm run virtiofsd` unpacks one from the guest release (as root)' },
  { name: "QEMU's C virtiofsd", bin: c, missing: "no QEMU C virtiofsd here (Debian's qemu-system-common has it)" },
];

for (const d of daemons) {
  const vfs = d.bin ? probeUnderLimit(d.bin) : undefined;
  const problem =
    vmPrereqProblem() ??
    (!vfs ? d.missing : !vfs.support.ok ? `virtiofs cannot run here: ${vfs.support.reason}` : undefined) ??
    (findExecutable('prlimit') ? undefined : 'needs prlimit (apt-get install util-linux)');
  gatedSuite(`${d.name} with a tree bigger than the open-files limit (${LIMIT})`, problem, { timeout: 20 * 60_000 }, () => {
    const vm = vmFixture('bvf', { BERTH_VIRTIOFSD: d.bin });
    const share = path.join(vm.dir, 'big');

    before(async () => {
      await ensureImage();
      fs.mkdirSync(share);
      assert.equal((await vm.berth(['share', 'add', share])).code, 0);
      // The engine, and the virtiofsd it starts, get the lower limit.
      const r = await run('prlimit', [`--nofile=${LIMIT}:${LIMIT}`, '--', process.execPath, BERTH_BIN, 'start'], { env: vm.env, timeoutMs: 10 * 60_000 });
      assert.equal(r.code, 0, r.stderr);
      const imp = await run('docker', ['import', busyboxRootfsTar(vm.dir), 'bbf:1'], { env: vm.env, timeoutMs: 180_000 });
      assert.equal(imp.code, 0, imp.stderr);
    });

    after(() => vm.cleanup());

    test(`a container writes, lists (stat-ing each: busybox find) and reads ${FILES} files on the share`, async () => {
      const shares = JSON.parse((await vm.berth(['shares', '--json'])).stdout) as { shares: { hostPath: string; mechanism: string; openFileLimit?: number }[] };
      const s = shares.shares.find((x) => x.hostPath === share);
      assert.equal(s?.mechanism, 'virtiofs');
      assert.equal(
        s?.openFileLimit,
        vfs!.support.ok ? vfs!.support.openFileLimit : undefined,
        'berth shares shows the low limit (none where virtiofsd raises its own or holds no file per cached one)',
      );
      const script = [
        'set -e',
        'mkdir many && cd many',
        `d=0; while [ $d -lt ${FILES / 100} ]; do mkdir d$d; i=0; while [ $i -lt 100 ]; do echo "$i" > d$d/f$i; i=$((i+1)); done; d=$((d+1)); done`,
        'find . -type f | wc -l',
        'find . -type f | xargs cat | wc -l',
      ].join('\n');
      const r = await vm.docker(['run', '--rm', '-v', `${share}:/src`, '-w', '/src', 'bbf:1', 'sh', '-c', script], { timeoutMs: 15 * 60_000 });
      assert.equal(r.code, 0, `${r.stderr}\n${vm.logTail()}`);
      assert.doesNotMatch(r.stderr, /Too many open files/, vm.logTail());
      assert.deepEqual(r.stdout.trim().split(/\s+/), [String(FILES), String(FILES)], 'every file listed and read');
      assert.equal(fs.readdirSync(path.join(share, 'many'), { recursive: true }).length, FILES + FILES / 100, 'all on the host');
      // After the walk the guest still has thousands of these files cached: a
      // virtiofsd by handle holds next to none of them open, the C one at
      // most what the valve lets it.
      const pids = fs
        .readdirSync(path.join(vm.inst, 'virtiofs'))
        .filter((f) => f.endsWith('.pid'))
        .map((f) => Number(fs.readFileSync(path.join(vm.inst, 'virtiofs', f), 'utf8')));
      const held = Math.max(...pids.flatMap((p) => [p, ...children(p)]).map(openFiles));
      // By handle: next to none. Under the low limit: under it (the valve). Where virtiofsd raised its own limit: any number.
      const bound = vfs!.mode?.kind === 'root' && vfs!.mode.fileHandles ? 500 : vfs!.support.ok && vfs!.support.openFileLimit !== undefined ? LIMIT : Infinity;
      assert.ok(held < bound, `virtiofsd holds ${held} files open (${vfs!.support.ok ? vfs!.support.how : ''})`);
    });
  });
}

/** A process's children (the C virtiofsd forks into its sandbox). */
function children(pid: number): number[] {
  try {
    return fs
      .readdirSync(`/proc/${pid}/task`)
      .flatMap((t) => fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/))
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}
