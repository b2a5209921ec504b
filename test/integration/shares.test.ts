/**
 * File sharing with a real VM and the real docker CLI: a host folder is
 * mounted in the guest at the same path (reverse sshfs), so
 * `docker run -v "$PWD":/src` works unchanged; edits show both ways, files
 * containers create belong to the host user, and host edits reach file
 * watchers in containers. Times are printed, not asserted.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../../app/engine/process-util.js';
import { busyboxRootfsTar } from '../helpers/busybox-rootfs.js';
import { buildFixture } from '../helpers/net-probe.js';
import { run } from '../helpers/run.js';
import { ensureImage, vmPrereqProblem } from './prereqs.js';
import { vmFixture } from './vm-fixture.js';

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

const problem = vmPrereqProblem();
if (problem) process.stdout.write(`# file sharing tests skipped: ${problem}\n`);

describe('file sharing with a real VM', { skip: problem ?? false, timeout: 30 * 60_000 }, () => {
  const vm = vmFixture('bs');
  const { ok } = vm;
  // A shared folder of its own (inside the fixture's temp dir), added with
  // `berth share add` before the start, plus the default home share.
  const share = path.join(vm.dir, 'work space ü');
  let watcher: string | undefined;
  let watcherProblem: string | undefined;

  before(async () => {
    await ensureImage();
    fs.mkdirSync(share);
    const add = await vm.berth(['share', 'add', share]);
    assert.equal(add.code, 0, add.stderr);
    const r = await vm.berth(['start'], { timeoutMs: 10 * 60_000 });
    assert.equal(r.code, 0, r.stderr);
    ({ bin: watcher, problem: watcherProblem } = buildFixture('inotify-watch', vm.dir));
    const tarFile = busyboxRootfsTar(vm.dir, '/bin/busybox', watcher ? { 'bin/inotify-watch': watcher } : {});
    const imp = await run('docker', ['import', tarFile, 'bbs:1'], { env: vm.env, timeoutMs: 180_000 });
    assert.equal(imp.code, 0, imp.stderr);
  });

  after(() => vm.cleanup());

  /** Run a shell snippet in a container with the share at /src; stdout. */
  const inContainer = (script: string, opts: { user?: string } = {}) =>
    ok(['run', '--rm', ...(opts.user ? ['--user', opts.user] : []), '-v', `${share}:/src`, '-w', '/src', 'bbs:1', 'sh', '-c', script]);

  test('berth shares shows the folder mounted with its mechanism', async () => {
    const r = JSON.parse((await vm.berth(['shares', '--json'])).stdout) as { shares: { hostPath: string; state: string; mechanism: string }[] };
    const s = r.shares.find((x) => x.hostPath === share);
    assert.equal(s?.state, 'mounted');
    assert.equal(s?.mechanism, 'reverse-sshfs');
    const st = JSON.parse((await vm.berth(['status', '--json'])).stdout);
    assert.ok(st.shares.some((x: { hostPath: string }) => x.hostPath === share), 'status lists the shares');
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

  test("a container's non-root user can read and write the share", async () => {
    await inContainer('echo by-nobody > by-nobody.txt && cat from-host.txt', { user: '65534:65534' });
    assert.equal(fs.readFileSync(path.join(share, 'by-nobody.txt'), 'utf8'), 'by-nobody\n');
    assert.equal(fs.statSync(path.join(share, 'by-nobody.txt')).uid, process.getuid!());
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
    // sshfs keeps POSIX and flock locks in the guest kernel: containers and
    // guest processes exclude each other; the host does not see them.
    const f = `${share}/lockfile`;
    const r = await vm.berth([
      'shell', '--', 'sh', '-c',
      `flock ${shq(f)} sleep 5 & sleep 2; if flock -n ${shq(f)} true; then echo got-it; else echo refused; fi; wait`,
    ]);
    assert.equal(r.stdout.trim(), 'refused', r.stderr);
  });

  test('a file watcher in a container sees host-side create, modify, rename and delete', async (t) => {
    if (watcherProblem) return t.skip(watcherProblem);
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
      const step = async (what: string, act: () => void, name: string) => {
        const mark = out.length;
        const t0 = performance.now();
        act();
        const okay = await waitFor(() => out.slice(mark).split('\n').some((l) => l.endsWith(` ${name}`) || l.endsWith(' .')), 15_000, 10);
        const lines = out.slice(mark).trim().split('\n').filter(Boolean);
        seen[what] = okay ? `${Math.round(performance.now() - t0)} ms: ${lines.join('; ')}` : 'no event';
        assert.ok(okay, `${what}: the container's watcher saw nothing`);
      };
      await step('modify', () => fs.writeFileSync(path.join(dir, 'app.js'), 'v2'), 'app.js');
      await step('create', () => fs.writeFileSync(path.join(dir, 'new.js'), 'n'), 'new.js');
      await step('rename', () => fs.renameSync(path.join(dir, 'new.js'), path.join(dir, 'moved.js')), 'moved.js');
      await step('delete', () => fs.rmSync(path.join(dir, 'moved.js')), 'moved.js');
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

  test('a share added while running is mounted at once; removing it unmounts it', async () => {
    const extra = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-extra-'));
    try {
      fs.writeFileSync(path.join(extra, 'x'), 'live');
      assert.equal((await vm.berth(['share', 'add', extra, '--read-only'])).code, 0);
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

  test('stopping the VM in the middle of a write storm corrupts nothing', async () => {
    const storm = path.join(share, 'storm');
    fs.mkdirSync(storm);
    // A container writes files through the share (each written to a temporary
    // name, synced, then renamed into place) while the host writes its own.
    const writer = (
      await ok([
        'run', '-d', '-v', `${share}:/src`, 'bbs:1', 'sh', '-c',
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
    // Every file the host wrote is there, whole.
    for (const [name, data] of hostFiles) assert.equal(fs.readFileSync(path.join(storm, name), 'utf8'), data, name);
    // Every file the container finished is whole (4096 bytes); half-written
    // ones only ever exist under their temporary names.
    const done = fs.readdirSync(storm).filter((n) => n.startsWith('c'));
    assert.ok(done.length > 0, 'the container wrote something');
    for (const n of done) assert.equal(fs.statSync(path.join(storm, n)).size, 4096, n);
    process.stdout.write(`# write storm: ${hostFiles.size} host files, ${done.length} container files intact\n`);
    const again = await vm.berth(['start'], { timeoutMs: 10 * 60_000 });
    assert.equal(again.code, 0, again.stderr);
    await vm.docker(['rm', '-f', writer]);
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
});
