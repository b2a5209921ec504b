/**
 * File sharing with a real VM and the real docker CLI: a host folder is
 * mounted in the guest at the same path, so `docker run -v "$PWD":/src`
 * works unchanged; edits show both ways, files containers create as root
 * belong to the host user, and host edits reach file watchers in
 * containers. Times are printed, not asserted.
 *
 * Twice: with virtiofs (QEMU's vhost-user-fs and virtiofsd: what `auto`
 * picks on this host when virtiofsd can run) and with reverse sshfs forced
 * (BERTH_SHARE_MECHANISM=sshfs: what every host without virtio-fs gets, and
 * the fallback). Where the two differ by design (who may write, who owns
 * what a container user other than root makes), each is checked for its
 * own promise.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, gatedSuite, needNow, test } from '../helpers/prereq-gate.js';
import { probeVirtiofsd } from '../../app/engine/drivers/virtiofsd-probe.js';
import { pidAlive, waitFor } from '../../app/base/process-util.js';
import { busyboxRootfsTar } from '../helpers/busybox-rootfs.js';
import { buildFixture } from '../helpers/net-probe.js';
import { run } from '../helpers/run.js';
import { ensureImage, vmPrereqProblem } from './prereqs.js';
import { vmFixture } from './vm-fixture.js';

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

const problem = vmPrereqProblem();
const vfs = probeVirtiofsd();
const vfsProblem = problem ?? (vfs.support.ok ? undefined : `virtiofs cannot run here: ${vfs.support.reason}`);

type Mechanism = 'virtiofs' | 'reverse-sshfs';
// BERTH_TEST_SHARES_ONLY=virtiofs|reverse-sshfs runs one of the two (to chase a failure).
const only = process.env.BERTH_TEST_SHARES_ONLY;
const variants: { mechanism: Mechanism; env: string; problem: string | undefined }[] = [
  { mechanism: 'virtiofs', env: 'auto', problem: vfsProblem },
  { mechanism: 'reverse-sshfs', env: 'sshfs', problem },
];

for (const variant of variants) {
  const name = `file sharing with a real VM (${variant.mechanism})`;
  if (only && only !== variant.mechanism) describe(name, { skip: `BERTH_TEST_SHARES_ONLY=${only}` }, () => undefined);
  else gatedSuite(name, variant.problem, { timeout: 30 * 60_000 }, () => sharesSuite(variant));
}

function sharesSuite(variant: { mechanism: Mechanism; env: string }): void {
  const vm = vmFixture('bs');
  const { ok } = vm;
  const virtiofs = variant.mechanism === 'virtiofs';
  // Where the two mechanisms differ by design, each suite has only its own
  // tests (a test that does not apply is not a skipped one).
  const virtiofsTest = virtiofs ? test : () => undefined;
  const sshfsTest = virtiofs ? () => undefined : test;
  // A shared folder of its own (inside the fixture's temp dir), added with
  // `berth share add` before the start, plus the default home share; and
  // two more for the read-only and fallback checks.
  const share = path.join(vm.dir, 'work space ü');
  const roShare = path.join(vm.dir, 'ro');
  const lossShare = path.join(vm.dir, 'loss');
  let watcher: string | undefined;
  let watcherProblem: string | undefined;

  before(async () => {
    Object.assign(vm.env, { BERTH_SHARE_MECHANISM: variant.env });
    await ensureImage();
    fs.mkdirSync(share);
    const add = await vm.berth(['share', 'add', share]);
    assert.equal(add.code, 0, add.stderr);
    fs.mkdirSync(roShare);
    fs.writeFileSync(path.join(roShare, 'keep.txt'), 'keep');
    assert.equal((await vm.berth(['share', 'add', roShare, '--read-only'])).code, 0);
    fs.mkdirSync(lossShare);
    fs.writeFileSync(path.join(lossShare, 'x.txt'), 'before');
    assert.equal((await vm.berth(['share', 'add', lossShare])).code, 0);
    const r = await vm.berth(['start'], { timeoutMs: 10 * 60_000 });
    assert.equal(r.code, 0, r.stderr);
    ({ bin: watcher, problem: watcherProblem } = buildFixture('inotify-watch', vm.dir));
    const tarFile = busyboxRootfsTar(vm.dir, undefined, watcher ? { 'bin/inotify-watch': watcher } : {});
    const imp = await run('docker', ['import', tarFile, 'bbs:1'], { env: vm.env, timeoutMs: 180_000 });
    assert.equal(imp.code, 0, imp.stderr);
  });

  after(() => vm.cleanup());

  /** Run a shell snippet in a container with the share at /src; stdout. */
  const inContainer = (script: string, opts: { user?: string } = {}) =>
    ok(['run', '--rm', ...(opts.user ? ['--user', opts.user] : []), '-v', `${share}:/src`, '-w', '/src', 'bbs:1', 'sh', '-c', script]);

  test('berth shares and berth status show each folder mounted, its mechanism and why', async () => {
    const r = JSON.parse((await vm.berth(['shares', '--json'])).stdout) as {
      shares: { hostPath: string; state: string; mechanism: string; mechanismReason?: string }[];
    };
    for (const p of [share, roShare, lossShare]) {
      const s = r.shares.find((x) => x.hostPath === p);
      assert.equal(s?.state, 'mounted', p);
      assert.equal(s?.mechanism, variant.mechanism, p);
      assert.ok(s?.mechanismReason, 'the reason is shown');
    }
    if (!virtiofs) assert.match(r.shares.find((x) => x.hostPath === share)!.mechanismReason!, /shareMechanism=sshfs \(BERTH_SHARE_MECHANISM\)/);
    const st = JSON.parse((await vm.berth(['status', '--json'])).stdout);
    assert.ok(
      st.shares.some((x: { hostPath: string; mechanism: string }) => x.hostPath === share && x.mechanism === variant.mechanism),
      'status lists the shares',
    );
    const text = (await vm.berth(['status'])).stdout;
    assert.ok(text.includes(`${share} ${variant.mechanism} mounted`), text);
    const mounts = (await vm.berth(['shell', '--', 'cat', '/proc/mounts'])).stdout;
    assert.match(mounts, virtiofs ? / virtiofs rw,/ : / fuse\.sshfs rw,/);
  });

  test('host writes, the container reads; the container writes, the host reads, owned by the host user', async () => {
    fs.writeFileSync(path.join(share, 'from-host.txt'), 'hello from the host\n');
    assert.equal((await inContainer('cat from-host.txt')).trim(), 'hello from the host');
    await inContainer('echo made in a container > from-container.txt; mkdir -p sub/dir && echo deep > sub/dir/f');
    const f = path.join(share, 'from-container.txt');
    assert.equal(fs.readFileSync(f, 'utf8'), 'made in a container\n');
    assert.equal(fs.statSync(f).uid, process.getuid!(), 'owned by the host user');
    assert.equal(fs.readFileSync(path.join(share, 'sub/dir/f'), 'utf8'), 'deep\n');
  });

  sshfsTest("a container's non-root user can read and write the share", async () => {
    // Reverse sshfs: every container user acts as the host user (Docker
    // Desktop's promise): it may write anywhere the host user may, and what
    // it makes is the host user's.
    await inContainer('echo by-nobody > by-nobody.txt && cat from-host.txt', { user: '65534:65534' });
    assert.equal(fs.readFileSync(path.join(share, 'by-nobody.txt'), 'utf8'), 'by-nobody\n');
    assert.equal(fs.statSync(path.join(share, 'by-nobody.txt')).uid, process.getuid!());
  });

  virtiofsTest("virtiofs: a container's non-root user reads, and writes where permissions let it, as on Linux", async () => {
    // virtiofs keeps owners and modes and the guest kernel checks them (as
    // Docker on Linux does): another user than root reads what others may
    // read and writes where they may write. virtiofsd as root (this host)
    // creates its files with its own ids; as an ordinary user they would be
    // that user's subordinate ids.
    assert.equal((await inContainer('cat from-host.txt', { user: '65534:65534' })).trim(), 'hello from the host');
    const denied = await vm.docker([
      'run',
      '--rm',
      '--user',
      '65534:65534',
      '-v',
      `${share}:/src`,
      '-w',
      '/src',
      'bbs:1',
      'sh',
      '-c',
      'echo no > by-nobody.txt',
    ]);
    assert.notEqual(denied.code, 0, 'the share root is 0755 root: not writable by nobody');
    assert.match(denied.stderr, /Permission denied/);
    fs.mkdirSync(path.join(share, 'open'), { mode: 0o777 });
    fs.chmodSync(path.join(share, 'open'), 0o1777);
    await inContainer('echo by-nobody > open/by-nobody.txt && echo more >> open/by-nobody.txt', { user: '65534:65534' });
    const f = path.join(share, 'open', 'by-nobody.txt');
    assert.equal(fs.readFileSync(f, 'utf8'), 'by-nobody\nmore\n');
    assert.equal(fs.statSync(f).uid, 65534, 'owned by the container user it was made by');
  });

  test('permissions and the executable bit, both ways', async () => {
    fs.writeFileSync(path.join(share, 'run.sh'), '#!/bin/sh\necho ran\n', { mode: 0o755 });
    fs.writeFileSync(path.join(share, 'noexec.sh'), '#!/bin/sh\necho ran\n', { mode: 0o644 });
    assert.equal((await inContainer('./run.sh')).trim(), 'ran');
    const r = await vm.docker(['run', '--rm', '-v', `${share}:/src`, '-w', '/src', 'bbs:1', './noexec.sh']);
    assert.notEqual(r.code, 0, 'a file without the x bit does not run');
    await inContainer('chmod 700 from-container.txt && chmod +x noexec.sh');
    assert.equal(fs.statSync(path.join(share, 'from-container.txt')).mode & 0o777, 0o700);
    assert.ok(fs.statSync(path.join(share, 'noexec.sh')).mode & 0o100);
  });

  test('symlinks inside the share and pointing out of it', async () => {
    fs.symlinkSync('from-host.txt', path.join(share, 'link-in'));
    fs.symlinkSync('/etc/hostname', path.join(share, 'link-out'));
    assert.equal((await inContainer('cat link-in')).trim(), 'hello from the host');
    // A link out of the share is a link, not a door: the container resolves
    // it in its own file system, never on the host.
    assert.equal((await inContainer('readlink link-out')).trim(), '/etc/hostname');
    await inContainer('ln -s sub/dir/f made-link');
    assert.equal(fs.readlinkSync(path.join(share, 'made-link')), 'sub/dir/f');
  });

  test('rename over an existing file', async () => {
    fs.writeFileSync(path.join(share, 'a.txt'), 'A');
    fs.writeFileSync(path.join(share, 'b.txt'), 'B');
    await inContainer('mv a.txt b.txt');
    assert.ok(!fs.existsSync(path.join(share, 'a.txt')));
    assert.equal(fs.readFileSync(path.join(share, 'b.txt'), 'utf8'), 'A');
  });

  test('a large file: a byte past 4 GiB', async () => {
    await inContainer('printf x | dd of=big.bin bs=1 seek=5368709120 conv=notrunc 2>/dev/null; ls -l big.bin');
    const st = fs.statSync(path.join(share, 'big.bin'));
    assert.equal(st.size, 5 * 2 ** 30 + 1);
    const fd = fs.openSync(path.join(share, 'big.bin'), 'r');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, 5 * 2 ** 30);
    fs.closeSync(fd);
    assert.equal(b.toString(), 'x');
    fs.rmSync(path.join(share, 'big.bin'));
  });

  test('names with spaces and non-ASCII letters, both ways', async () => {
    fs.writeFileSync(path.join(share, 'häst och vagn.txt'), 'ü');
    assert.equal((await inContainer("cat 'häst och vagn.txt'")).trim(), 'ü');
    await inContainer("echo ok > 'новый файл.txt'");
    assert.equal(fs.readFileSync(path.join(share, 'новый файл.txt'), 'utf8'), 'ok\n');
  });

  test('file locking: a lock on a shared file holds between processes in the VM', async () => {
    // sshfs, and virtiofs as Berth runs it (no_posix_lock, no_flock), keep
    // POSIX and flock locks in the guest kernel: containers and guest
    // processes exclude each other; the host does not see them.
    const f = `${share}/lockfile`;
    const r = await vm.berth([
      'shell',
      '--',
      'sh',
      '-c',
      `flock ${shq(f)} sleep 5 & sleep 2; if flock -n ${shq(f)} true; then echo got-it; else echo refused; fi; wait`,
    ]);
    assert.equal(r.stdout.trim(), 'refused', r.stderr);
  });

  test('a file watcher in a container sees each host-side modify, create, rename and delete as its own inotify event', async (t) => {
    if (needNow(t, watcherProblem)) return;
    const dir = path.join(share, 'watched');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'app.js'), 'v1');
    const id = (await ok(['run', '-d', '-v', `${share}:/src`, 'bbs:1', 'inotify-watch', '/src/watched'])).trim();
    const logs = spawn('docker', ['logs', '-f', id], { env: vm.env });
    let out = '';
    logs.stdout.on('data', (d) => (out += d));
    try {
      assert.ok(await waitFor(() => out.includes('watching'), 30_000));
      // Give the engine a moment to start watching the bind-mounted folder.
      await new Promise((r) => setTimeout(r, 1500));
      const seen: Record<string, string> = {};
      // inotify-watch prints "KIND,KIND, name" ("." for the folder itself).
      // The guest's berth_notify module turns the engine's report of each
      // host change into the events the guest's own syscall would make;
      // each step names the events it must see, and none may be ATTRIB.
      const step = async (what: string, act: () => void, want: string[]) => {
        const mark = out.length;
        const t0 = performance.now();
        act();
        const events = () =>
          out
            .slice(mark)
            .split('\n')
            .map((l) => /^([A-Z_,]+) (.+)$/.exec(l))
            .filter((m) => m !== null)
            .flatMap((m) =>
              m[1]!
                .split(',')
                .filter(Boolean)
                .map((k) => `${k} ${m[2]}`),
            );
        const okay = await waitFor(() => want.every((w) => events().includes(w)), 15_000, 10);
        seen[what] = `${Math.round(performance.now() - t0)} ms: ${events().join('; ') || 'nothing'}`;
        assert.ok(okay, `${what}: wanted ${want.join(' and ')}, the container's watcher saw ${events().join('; ') || 'nothing'}`);
        assert.ok(!events().some((e) => e.startsWith('ATTRIB')), `${what}: no touch, the container's watcher saw ${events().join('; ')}`);
      };
      await step('modify', () => fs.writeFileSync(path.join(dir, 'app.js'), 'v2'), ['MODIFY app.js', 'CLOSE_WRITE app.js']);
      await step('create', () => fs.writeFileSync(path.join(dir, 'new.js'), 'n'), ['CREATE new.js', 'CLOSE_WRITE new.js']);
      // The container finds the new file as soon as it hears of it (no cached "no such file").
      assert.equal((await inContainer('cat watched/new.js')).trim(), 'n');
      await step('rename', () => fs.renameSync(path.join(dir, 'new.js'), path.join(dir, 'moved.js')), ['MOVED_FROM new.js', 'MOVED_TO moved.js']);
      await step('delete', () => fs.rmSync(path.join(dir, 'moved.js')), ['DELETE moved.js']);
      for (const [k, v] of Object.entries(seen)) process.stdout.write(`# watcher in container, host ${k}: ${v}\n`);
      // The container also reads the new content at once.
      assert.equal((await inContainer('cat watched/app.js')).trim(), 'v2');
    } finally {
      logs.kill();
      await ok(['rm', '-f', id]);
    }
  });

  test('host file times keep their precision (the nudges do not truncate them)', async () => {
    const f = path.join(share, 'watched', 'app.js');
    const before = fs.statSync(f).mtimeMs;
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(fs.statSync(f).mtimeMs, before);
  });

  virtiofsTest(
    'a read-only virtiofs share: after root in the VM remounts it read-write (the remount succeeds), a write fails with "Read-only file system"',
    async () => {
      const w = await vm.docker(['run', '--rm', '-v', `${roShare}:/r`, 'bbs:1', 'sh', '-c', 'echo no > /r/new']);
      assert.notEqual(w.code, 0, 'read-only share refuses writes');
      const r = await vm.berth([
        'shell',
        '--',
        'sh',
        '-c',
        `mount -o remount,rw ${shq(roShare)}; echo "mount=$?"; grep " ${roShare} virtiofs " /proc/mounts; echo no > ${shq(roShare)}/new; echo "write=$?"`,
      ]);
      const said = r.stdout + r.stderr;
      assert.match(said, /mount=0\n/, `the remount itself succeeded: ${said}`);
      assert.match(said, new RegExp(` ${roShare} virtiofs rw[, ]`), `the guest has it mounted read-write: ${said}`);
      assert.match(said, /write=[1-9]/, `the write failed: ${said}`);
      assert.match(said, /Read-only file system/, `with EROFS: ${said}`);
      assert.ok(!fs.existsSync(path.join(roShare, 'new')), 'nothing written on the host');
      assert.equal((await ok(['run', '--rm', '-v', `${roShare}:/r`, 'bbs:1', 'cat', '/r/keep.txt'])).trim(), 'keep');
    },
  );

  virtiofsTest('virtiofs: the guest cannot make device nodes on the host (FIFOs still work)', async () => {
    const r = await vm.berth(['shell', '--', 'sh', '-c', `cd ${shq(share)} && mknod blk b 8 0; echo "rc=$?"; mkfifo fifo && echo fifo-ok`]);
    assert.match(r.stdout + r.stderr, /Operation not permitted/);
    assert.match(r.stdout, /fifo-ok/);
    assert.ok(!fs.existsSync(path.join(share, 'blk')));
    assert.ok(fs.statSync(path.join(share, 'fifo')).isFIFO());
    fs.rmSync(path.join(share, 'fifo'));
  });

  test('a share added while running is mounted at once (reverse sshfs until a restart); removing it unmounts it', async () => {
    const extra = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-extra-'));
    try {
      fs.writeFileSync(path.join(extra, 'x'), 'live');
      assert.equal((await vm.berth(['share', 'add', extra, '--read-only'])).code, 0);
      const live = (
        JSON.parse((await vm.berth(['shares', '--json'])).stdout) as { shares: { hostPath: string; mechanism: string; mechanismReason?: string }[] }
      ).shares.find((x) => x.hostPath === extra);
      assert.equal(live?.mechanism, 'reverse-sshfs');
      if (virtiofs) assert.match(live!.mechanismReason!, /next restart/);
      assert.equal((await ok(['run', '--rm', '-v', `${extra}:/e`, 'bbs:1', 'cat', '/e/x'])).trim(), 'live');
      const w = await vm.docker(['run', '--rm', '-v', `${extra}:/e`, 'bbs:1', 'sh', '-c', 'echo no > /e/y']);
      assert.notEqual(w.code, 0, 'read-only share refuses writes');
      assert.ok(!fs.existsSync(path.join(extra, 'y')));
      assert.equal((await vm.berth(['share', 'rm', extra])).code, 0);
      const mounted = await vm.berth(['shell', '--', 'sh', '-c', `grep -c " ${extra} fuse" /proc/mounts || true`]);
      assert.equal(mounted.stdout.trim(), '0');
    } finally {
      fs.rmSync(extra, { recursive: true, force: true });
    }
  });

  test('berth stop in the middle of a write storm through the share: every file that crossed it is whole, both ways', async () => {
    const storm = path.join(share, 'storm');
    fs.mkdirSync(storm);
    // A container writes files through the share (each written to a temporary
    // name, synced, then renamed into place) while the host writes its own.
    const writer = (
      await ok([
        'run',
        '-d',
        '-v',
        `${share}:/src`,
        'bbs:1',
        'sh',
        '-c',
        'i=0; while true; do head -c 4096 /dev/urandom > /src/storm/.c$i.tmp && sync && mv /src/storm/.c$i.tmp /src/storm/c$i; i=$((i+1)); done',
      ])
    ).trim();
    const hostFiles = new Map<string, string>();
    let hostRunning = true;
    const hostWriter = (async () => {
      for (let i = 0; hostRunning; i++) {
        const data = `${i} `.repeat(1000);
        fs.writeFileSync(path.join(storm, `h${i}`), data);
        hostFiles.set(`h${i}`, data);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await new Promise((r) => setTimeout(r, 8000));
    const stop = await vm.berth(['stop'], { timeoutMs: 180_000 });
    hostRunning = false;
    await hostWriter;
    assert.equal(stop.code, 0, stop.stderr);
    // Guest to host: every file the container finished crossed the share and
    // is whole (4096 bytes); half-written ones only ever exist under their
    // temporary names.
    const crossedUp = fs.readdirSync(storm).filter((n) => /^c\d+$/.test(n));
    assert.ok(crossedUp.length > 0, 'the container wrote something');
    for (const n of crossedUp) assert.equal(fs.statSync(path.join(storm, n)).size, 4096, n);
    const again = await vm.berth(['start'], { timeoutMs: 10 * 60_000 });
    assert.equal(again.code, 0, again.stderr);
    await vm.docker(['rm', '-f', writer]);
    // Host to guest: every file the host wrote during the storm reads back
    // whole in a container (names and one checksum over all of them, in order).
    const names = [...hostFiles.keys()].sort();
    const want = crypto
      .createHash('sha256')
      .update(names.map((n) => hostFiles.get(n)!).join(''))
      .digest('hex');
    const seen = (await inContainer("cd storm && ls | grep '^h' | LC_ALL=C sort > /tmp/n && wc -l < /tmp/n && xargs cat < /tmp/n | sha256sum"))
      .trim()
      .split(/\s+/);
    assert.equal(Number(seen[0]), names.length, 'every host file is seen in the container');
    assert.equal(seen[1], want, 'and each is whole');
    process.stdout.write(`# write storm: ${names.length} host files read whole in a container, ${crossedUp.length} container files whole on the host\n`);
  });

  test('bad shares are refused with a clear error and change nothing', async () => {
    const bad = await vm.berth(['share', 'add', share, '--guest-path', '/etc']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /INVALID_SETTINGS/);
    assert.match(bad.stderr, /belongs to the VM's system/);
    const rel = await vm.berth(['share', 'rm', '/not/shared']);
    assert.equal(rel.code, 1);
    assert.match(rel.stderr, /is not a shared folder/);
  });

  test('docker run -v of a host folder that is not shared fails with the fix, instead of an empty folder', async () => {
    const outside = fs.mkdtempSync(path.join('/var/tmp', 'berth-unshared-'));
    try {
      fs.writeFileSync(path.join(outside, 'x'), 'data');
      const r = await vm.docker(['run', '--rm', '-v', `${outside}:/o`, 'bbs:1', 'ls', '/o']);
      assert.notEqual(r.code, 0, r.stdout);
      assert.match(r.stderr, /is not shared with the Berth VM/);
      assert.match(r.stderr, /berth share add/);
      // A named volume and a shared folder still work on the same socket.
      assert.equal((await ok(['run', '--rm', '-v', `${share}:/s`, 'bbs:1', 'echo', 'fine'])).trim(), 'fine');
    } finally {
      fs.rmSync(outside, { recursive: true, force: true });
    }
  });
  // Last: a share whose virtiofsd died leaves a dead device in the VM until it restarts.
  virtiofsTest("virtiofs: when a share's virtiofsd dies, the share falls back to reverse sshfs and says why", async () => {
    const list = async () =>
      (
        JSON.parse((await vm.berth(['shares', '--json'])).stdout) as {
          shares: { hostPath: string; state: string; mechanism: string; mechanismReason?: string }[];
        }
      ).shares;
    const tag = fs.readdirSync(path.join(vm.inst, 'virtiofs')).find((f) => f.startsWith('berth-loss-') && f.endsWith('.pid'))!;
    const pid = Number(fs.readFileSync(path.join(vm.inst, 'virtiofs', tag), 'utf8'));
    assert.ok(pidAlive(pid));
    const t0 = performance.now();
    process.kill(pid, 'SIGKILL');
    assert.ok(
      await waitFor(async () => (await list()).some((x) => x.hostPath === lossShare && x.mechanism === 'reverse-sshfs' && x.state === 'mounted'), 60_000, 100),
      JSON.stringify(await list()),
    );
    process.stdout.write(`# virtiofsd killed: the share was on reverse sshfs ${((performance.now() - t0) / 1000).toFixed(1)} s later\n`);
    const s = (await list()).find((x) => x.hostPath === lossShare)!;
    assert.match(s.mechanismReason!, /virtiofsd \(pid \d+\) exited.*reverse sshfs until the next restart/);
    assert.equal((await ok(['run', '--rm', '-v', `${lossShare}:/l`, 'bbs:1', 'cat', '/l/x.txt'])).trim(), 'before');
    await ok(['run', '--rm', '-v', `${lossShare}:/l`, 'bbs:1', 'sh', '-c', 'echo after > /l/y.txt']);
    assert.equal(fs.readFileSync(path.join(lossShare, 'y.txt'), 'utf8'), 'after\n');
    // The other shares are untouched.
    assert.ok((await list()).some((x) => x.hostPath === share && x.mechanism === 'virtiofs' && x.state === 'mounted'));
    // What the dead device still costs until a restart: a VM-wide sync waits
    // on it, uninterruptibly (so in the background, and only looked at).
    const sync = await vm.berth(
      [
        'shell',
        '--',
        'sh',
        '-c',
        'sync >/dev/null 2>&1 </dev/null & p=$!; sleep 5; if kill -0 $p 2>/dev/null; then echo "sync still waiting after 5 s"; else echo "sync done"; fi',
      ],
      { timeoutMs: 60_000 },
    );
    process.stdout.write(`# after a virtiofsd died: ${sync.stdout.trim()}\n`);
  });

  // After the kill above: a restart brings the share that fell back to virtiofs again.
  virtiofsTest('virtiofs: after a restart the share whose virtiofsd died is on virtiofs again', async () => {
    const before = (JSON.parse((await vm.berth(['shares', '--json'])).stdout) as { shares: { hostPath: string; mechanism: string }[] }).shares;
    assert.equal(before.find((x) => x.hostPath === lossShare)?.mechanism, 'reverse-sshfs', 'the kill test left it on its fallback');
    const r = await vm.berth(['restart'], { timeoutMs: 10 * 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const after = (JSON.parse((await vm.berth(['shares', '--json'])).stdout) as { shares: { hostPath: string; mechanism: string; state: string }[] }).shares;
    for (const p of [share, lossShare])
      assert.deepEqual(
        after.filter((x) => x.hostPath === p).map((x) => [x.mechanism, x.state]),
        [['virtiofs', 'mounted']],
        p,
      );
    assert.equal((await ok(['run', '--rm', '-v', `${lossShare}:/l`, 'bbs:1', 'cat', '/l/y.txt'])).trim(), 'after');
  });
}
