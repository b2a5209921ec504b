/**
 * A tree bigger than virtiofsd's open-files limit, through a real VM.
 * virtiofsd keeps an open file per file the guest has cached; where it
 * cannot raise its limit (no CAP_SYS_RESOURCE: a container like the bench
 * machine, a user namespace) the next file failed in the container with
 * "Too many open files" (bench/results-shares.md: every developer workload
 * on virtiofs failed at the 20,000-file limit).
 *
 * The engine runs under a limit of 6,000 here (prlimit), and a container
 * writes, lists and reads 9,000 files on the share: a source tree of 90
 * folders of 100 files. Three ways:
 * - the Rust virtiofsd as root names cached files by handle and holds
 *   next to none open (`npm run virtiofsd` brings it to a host that lacks it);
 * - the Rust one without CAP_DAC_READ_SEARCH (no handles; as an ordinary
 *   user in a user namespace, too) would hold them open, and QEMU's C one
 *   always does: neither is used under such a limit, because neither
 *   reliably closes the files the guest lets go of (the probe), so the
 *   shares use reverse sshfs and say why and how to get virtiofs back.
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
 * Rust one as root names files by handle (with CAP_DAC_READ_SEARCH) and
 * shows no limit.
 */
function probeUnderLimit(bin: string, dropDac: boolean): VirtiofsdProbe {
  const h = thisProbeHost(bin);
  const readFile = (p: string) => {
    const text = h.readFile(p);
    if (p === '/proc/self/limits') return text?.replace(/^Max open files.*$/m, `Max open files ${LIMIT} ${LIMIT} files`);
    if (p === '/proc/self/status' && dropDac)
      return text?.replace(/^CapEff:\s*([0-9a-f]+)$/m, (_, hex: string) => `CapEff:\t${(BigInt(`0x${hex}`) & ~4n).toString(16).padStart(16, '0')}`);
    return text;
  };
  return probeVirtiofsd({ ...h, readFile });
}

/** The files a process holds open. */
const openFiles = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;

const rust = [...RUST_VIRTIOFSD_PATHS, bundledVirtiofsd()].find((p) => fs.existsSync(p));
const c = C_VIRTIOFSD_PATHS.find((p) => fs.existsSync(p));
const noRust = 'no Rust virtiofsd here: `npm run virtiofsd` unpacks one from the guest release (as root)';
const daemons = [
  { name: 'the Rust virtiofsd, files by handle', bin: rust, missing: noRust, dropDac: false },
  {
    name: 'the Rust virtiofsd without CAP_DAC_READ_SEARCH (not used: reverse sshfs)',
    bin: rust,
    missing: noRust,
    dropDac: true,
    way: /Give Berth CAP_DAC_READ_SEARCH/,
  },
  {
    name: "QEMU's C virtiofsd (not used: reverse sshfs)",
    bin: c,
    missing: "no QEMU C virtiofsd here (Debian's qemu-system-common has it)",
    dropDac: false,
    way: /sudo npm run virtiofsd/,
  },
];

for (const d of daemons) {
  const vfs = d.bin ? probeUnderLimit(d.bin, d.dropDac) : undefined;
  const problem =
    vmPrereqProblem() ??
    (!vfs ? d.missing : undefined) ??
    (findExecutable('prlimit') && findExecutable('setpriv') ? undefined : 'needs prlimit and setpriv (apt-get install util-linux)') ??
    (process.getuid?.() === 0 ? undefined : 'runs virtiofsd as root (the user-namespace way is covered by the unit tests)');
  // Where the probe refuses virtiofsd, the shares are reverse sshfs: a smaller tree shows nothing is lost.
  const viaSshfs = vfs !== undefined && !vfs.support.ok;
  const files = viaSshfs ? 500 : FILES;
  gatedSuite(`${d.name} with a tree bigger than the open-files limit (${LIMIT})`, problem, { timeout: 20 * 60_000 }, () => {
    const vm = vmFixture('bvf', { BERTH_VIRTIOFSD: d.bin });
    const why = () => vm.logTail();
    const share = path.join(vm.dir, 'big');

    before(async () => {
      await ensureImage();
      fs.mkdirSync(share);
      assert.equal((await vm.berth(['share', 'add', share])).code, 0);
      // The engine, and the virtiofsd it starts, get the lower limit (and, for one case, lose CAP_DAC_READ_SEARCH).
      const drop = d.dropDac ? ['setpriv', '--bounding-set=-dac_read_search', '--'] : [];
      const r = await run('prlimit', [`--nofile=${LIMIT}:${LIMIT}`, '--', ...drop, process.execPath, BERTH_BIN, 'start'], {
        env: vm.env,
        timeoutMs: 10 * 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
      const imp = await run('docker', ['import', busyboxRootfsTar(vm.dir), 'bbf:1'], { env: vm.env, timeoutMs: 180_000 });
      assert.equal(imp.code, 0, imp.stderr);
    });

    after(() => vm.cleanup());

    test(`a container writes, lists (stat-ing each: busybox find) and reads ${files} files on the share`, async () => {
      const shares = JSON.parse((await vm.berth(['shares', '--json'])).stdout) as {
        shares: { hostPath: string; mechanism: string; mechanismReason?: string }[];
      };
      const s = shares.shares.find((x) => x.hostPath === share);
      if (viaSshfs) {
        assert.equal(s?.mechanism, 'reverse-sshfs', JSON.stringify(s));
        assert.match(s?.mechanismReason ?? '', /stay under 6,000 open files.+reverse sshfs/, 'berth shares says why');
        if (d.way) assert.match(s?.mechanismReason ?? '', d.way, 'and the way out');
      } else {
        assert.equal(s?.mechanism, 'virtiofs', JSON.stringify(s));
      }
      const script = [
        'set -e',
        'mkdir many && cd many',
        `d=0; while [ $d -lt ${files / 100} ]; do mkdir d$d; i=0; while [ $i -lt 100 ]; do echo "$i" > d$d/f$i; i=$((i+1)); done; d=$((d+1)); done`,
        'find . -type f | wc -l',
        'find . -type f | xargs cat | wc -l',
      ].join('\n');
      const r = await vm.docker(['run', '--rm', '-v', `${share}:/src`, '-w', '/src', 'bbf:1', 'sh', '-c', script], { timeoutMs: 15 * 60_000 });
      assert.equal(r.code, 0, `${r.stderr}\n${why()}`);
      assert.doesNotMatch(r.stderr, /Too many open files/, why());
      assert.deepEqual(r.stdout.trim().split(/\s+/), [String(files), String(files)], 'every file listed and read');
      assert.equal(fs.readdirSync(path.join(share, 'many'), { recursive: true }).length, files + files / 100, 'all on the host');
      if (viaSshfs) return;
      // After the walk the guest still has thousands of these files cached: a
      // virtiofsd by handle holds next to none of them open.
      const pids = fs
        .readdirSync(path.join(vm.inst, 'virtiofs'))
        .filter((f) => f.endsWith('.pid'))
        .map((f) => Number(fs.readFileSync(path.join(vm.inst, 'virtiofs', f), 'utf8')));
      const held = Math.max(...pids.flatMap((p) => [p, ...children(p)]).map(openFiles));
      // By handle: next to none. Where virtiofsd raised its own limit: any number.
      const bound = vfs!.mode?.kind === 'root' && vfs!.mode.fileHandles ? 500 : Infinity;
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
