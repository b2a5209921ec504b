/**
 * Sync mode with a real VM and the real docker CLI: a folder inside a share
 * is copied to the guest's disk and mounted at its own path in the VM, so
 * `docker run -v "$PWD":/src` uses the guest copy (ext4, not the share's
 * virtiofs or sshfs mount, which it is bind-mounted over); edits,
 * deletes and renames go both ways; files containers make belong to the host
 * user; a conflict keeps both versions and is reported; a restart keeps the
 * guest copy and syncs what changed meanwhile. Times are printed, never
 * asserted.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import { waitFor } from '../../app/base/process-util.js';
import type { SyncViewWire } from '../../app/contract/contract.js';
import { busyboxRootfsTar } from '../helpers/busybox-rootfs.js';
import { run } from '../helpers/run.js';
import { ensureImage, vmPrereqProblem } from './prereqs.js';
import { vmFixture } from './vm-fixture.js';

const problem = vmPrereqProblem();

const say = (s: string) => process.stdout.write(`# ${s}\n`);

gatedSuite('sync mode with a real VM', problem, { timeout: 40 * 60_000 }, () => {
  const vm = vmFixture('bsy');
  const { ok } = vm;
  const share = path.join(vm.dir, 'share');
  const proj = path.join(share, 'proj ü');
  const hp = (...p: string[]) => path.join(proj, ...p);

  const syncs = async (): Promise<SyncViewWire[]> => {
    const r = await vm.berth(['sync', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { syncs: SyncViewWire[] }).syncs;
  };
  const mine = async () => (await syncs()).find((s) => s.hostPath === proj);

  /** A shell snippet in a container with the synced folder at /src. */
  const inContainer = (script: string) => ok(['run', '--rm', '-v', `${proj}:/src`, '-w', '/src', 'bbs:1', 'sh', '-c', script]);

  /** Wait until `check` holds, print how long it took. */
  const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000) => {
    const t0 = performance.now();
    const okay = await waitFor(check, timeoutMs, 100);
    say(`${what}: ${okay ? `${Math.round(performance.now() - t0)} ms` : 'timed out'}`);
    assert.ok(okay, `${what}: did not happen within ${timeoutMs / 1000} s`);
  };

  before(async () => {
    await ensureImage();
    fs.mkdirSync(hp('src', 'deep'), { recursive: true });
    fs.writeFileSync(hp('README.md'), 'hello from the host\n');
    fs.writeFileSync(hp('src', 'deep', 'a.txt'), 'A\n');
    fs.writeFileSync(hp('build.sh'), '#!/bin/sh\necho built\n', { mode: 0o755 });
    fs.symlinkSync('src/deep/a.txt', hp('link-to-a'));
    for (let i = 0; i < 200; i++) fs.writeFileSync(hp('src', `f${i}.txt`), `file ${i}\n`);
    assert.equal((await vm.berth(['share', 'add', share])).code, 0);
    const add = await vm.berth(['sync', 'add', proj]);
    assert.equal(add.code, 0, add.stderr);
    const t0 = performance.now();
    const r = await vm.berth(['start'], { timeoutMs: 10 * 60_000 });
    assert.equal(r.code, 0, r.stderr);
    say(`berth start: ${Math.round(performance.now() - t0)} ms`);
    const tarFile = busyboxRootfsTar(vm.dir);
    const imp = await run('docker', ['import', tarFile, 'bbs:1'], { env: vm.env, timeoutMs: 180_000 });
    assert.equal(imp.code, 0, imp.stderr);
  });

  after(() => vm.cleanup());

  test('the first copy lands on the guest disk and is mounted at the folder path', async () => {
    await until(
      'first copy done and mounted',
      async () => {
        const s = await mine();
        return s?.state === 'watching' && s.mounted;
      },
      180_000,
    );
    const s = (await mine())!;
    assert.equal(s.guestPath, proj);
    assert.match(s.copyPath, /^\/var\/lib\/berth\/sync\/[0-9a-f]{16}\/tree$/);
    const out = await inContainer("grep ' /src ' /proc/mounts; cat README.md; ./build.sh; readlink link-to-a; cat link-to-a; ls src | wc -l");
    assert.match(out, / \/src ext4 /, `the container gets the guest copy (ext4), not the share's mount:\n${out}`);
    assert.match(out, /hello from the host/);
    assert.match(out, /built/);
    assert.match(out, /src\/deep\/a\.txt\nA\n/);
    assert.match(out.trim(), /\n201$/, 'the 200 files and the folder');
  });

  test('a host edit reaches the container', async () => {
    fs.writeFileSync(hp('README.md'), 'edited on the host\n');
    fs.writeFileSync(hp('src', 'new-on-host.txt'), 'new\n');
    await until('host edit seen in a container', async () => {
      const r = await vm.docker(['run', '--rm', '-v', `${proj}:/src`, 'bbs:1', 'cat', '/src/README.md', '/src/src/new-on-host.txt']);
      return r.stdout === 'edited on the host\nnew\n';
    });
  });

  test('a container write reaches the host, owned by the host user', async () => {
    await inContainer('echo made in a container > out.txt; mkdir -p dist/js && echo bundle > dist/js/app.js && chmod +x dist/js/app.js');
    await until('container write seen on the host', () => fs.existsSync(hp('dist', 'js', 'app.js')) && fs.existsSync(hp('out.txt')));
    assert.equal(fs.readFileSync(hp('out.txt'), 'utf8'), 'made in a container\n');
    assert.equal(fs.readFileSync(hp('dist', 'js', 'app.js'), 'utf8'), 'bundle\n');
    assert.equal(fs.statSync(hp('out.txt')).uid, process.getuid!(), 'owned by the host user');
    assert.equal(fs.statSync(hp('dist', 'js', 'app.js')).uid, process.getuid!());
    assert.ok(fs.statSync(hp('dist', 'js', 'app.js')).mode & 0o100, 'the executable bit came along');
  });

  test('deletes and renames, host to guest', async () => {
    fs.rmSync(hp('src', 'f0.txt'));
    fs.renameSync(hp('src', 'f1.txt'), hp('src', 'renamed-on-host.txt'));
    fs.renameSync(hp('src', 'deep'), hp('src', 'deeper'));
    await until('host delete and renames seen in a container', async () => {
      const r = await vm.docker([
        'run',
        '--rm',
        '-v',
        `${proj}:/src`,
        '-w',
        '/src/src',
        'bbs:1',
        'sh',
        '-c',
        'ls f0.txt f1.txt deep 2>/dev/null; cat renamed-on-host.txt deeper/a.txt',
      ]);
      return r.stdout === 'file 1\nA\n';
    });
  });

  test('deletes and renames, guest to host', async () => {
    await inContainer('rm src/f2.txt && mv src/f3.txt src/renamed-in-guest.txt && mv dist dist2 && rm -r src/deeper');
    await until(
      'guest delete and renames seen on the host',
      () =>
        !fs.existsSync(hp('src', 'f2.txt')) &&
        !fs.existsSync(hp('src', 'f3.txt')) &&
        fs.existsSync(hp('src', 'renamed-in-guest.txt')) &&
        fs.existsSync(hp('dist2', 'js', 'app.js')) &&
        !fs.existsSync(hp('dist')) &&
        !fs.existsSync(hp('src', 'deeper')),
    );
    assert.equal(fs.readFileSync(hp('src', 'renamed-in-guest.txt'), 'utf8'), 'file 3\n');
  });

  test('a conflict keeps both versions and is reported', async () => {
    fs.writeFileSync(hp('both.txt'), 'original\n');
    await until(
      'a new host file reaches the guest',
      async () => (await vm.docker(['run', '--rm', '-v', `${proj}:/src`, 'bbs:1', 'cat', '/src/both.txt'])).stdout === 'original\n',
    );
    // Freeze the engine so neither side's change is synced before the other
    // side changes the same file: a container writes in 4 s, the host now.
    const enginePid = JSON.parse((await vm.berth(['status', '--json'])).stdout).enginePid as number;
    const id = (await ok(['run', '-d', '-v', `${proj}:/src`, 'bbs:1', 'sh', '-c', 'sleep 4; echo guest version > /src/both.txt'])).trim();
    process.kill(enginePid, 'SIGSTOP');
    try {
      fs.writeFileSync(hp('both.txt'), 'host version\n');
      await new Promise((r) => setTimeout(r, 9000));
    } finally {
      process.kill(enginePid, 'SIGCONT');
    }
    await ok(['wait', id]);
    await ok(['rm', id]);
    let conflict: SyncViewWire['conflicts'][number] | undefined;
    await until('the conflict is reported', async () => {
      conflict = (await mine())?.conflicts.find((c) => c.path === hp('both.txt'));
      return !!conflict && fs.existsSync(conflict.guestCopy);
    });
    assert.match(path.basename(conflict!.guestCopy), /^both\.txt\.conflict-guest-\d{8}-\d{6}$/);
    assert.equal(fs.readFileSync(hp('both.txt'), 'utf8'), 'host version\n', "the host's version keeps the name");
    assert.equal(fs.readFileSync(conflict!.guestCopy, 'utf8'), 'guest version\n', "the guest's version is kept beside it");
    const inGuest = await inContainer(`cat both.txt ${path.basename(conflict!.guestCopy)}`);
    assert.equal(inGuest, 'host version\nguest version\n', 'the guest has both too');
    const text = await vm.berth(['sync']);
    assert.match(text.stdout, /Conflicts/);
    assert.ok(text.stdout.includes(conflict!.guestCopy));
    // Resolved by deleting the copy: the report goes away.
    fs.rmSync(conflict!.guestCopy);
    await until('a resolved conflict leaves the report', async () => !(await mine())?.conflicts.length);
  });

  test('an ssh reconnect: the guest copy is mounted again and syncing goes on', async () => {
    const connects = async () => (JSON.parse((await vm.berth(['status', '--json'])).stdout) as { session?: { connects: number } }).session?.connects ?? 0;
    const before = await connects();
    // Cut the engine's ssh connection from inside the guest: every sshd
    // session process (sshd-session since OpenSSH 9.8) except the one
    // running this command.
    await vm.berth([
      'shell',
      '--',
      'sh',
      '-c',
      'anc=" "; p=$$; while [ "$p" -gt 1 ]; do anc="$anc$p "; p=$(cut -d" " -f4 /proc/$p/stat); done; ' +
        'for p in $(pgrep -f "sshd(-session)?: root"); do case "$anc" in *" $p "*) ;; *) kill $p;; esac; done',
    ]);
    await until('the engine reconnected', async () => (await connects()) > before);
    await until(
      'the guest copy is mounted again',
      async () => {
        const out = (await vm.docker(['run', '--rm', '-v', `${proj}:/src`, 'bbs:1', 'grep', ' /src ', '/proc/mounts'])).stdout;
        return / \/src ext4 /.test(out);
      },
      120_000,
    );
    fs.writeFileSync(hp('after-reconnect.txt'), 'still syncing\n');
    await until(
      'a host edit after the reconnect reaches a container',
      async () => (await vm.docker(['run', '--rm', '-v', `${proj}:/src`, 'bbs:1', 'cat', '/src/after-reconnect.txt'])).stdout === 'still syncing\n',
    );
    await inContainer('echo back > after-reconnect-guest.txt');
    await until('a container write after the reconnect reaches the host', () => fs.existsSync(hp('after-reconnect-guest.txt')));
  });

  test('a restart keeps the guest copy and syncs what changed while the VM was stopped', async () => {
    const inode = async () => (await inContainer('stat -c %i README.md')).trim();
    const before = await inode();
    const st = await vm.berth(['stop'], { timeoutMs: 180_000 });
    assert.equal(st.code, 0, st.stderr);
    fs.writeFileSync(hp('while-stopped.txt'), 'written while the VM was stopped\n');
    fs.rmSync(hp('src', 'f4.txt'));
    const t0 = performance.now();
    const r = await vm.berth(['start'], { timeoutMs: 10 * 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const tm = (JSON.parse((await vm.berth(['status', '--json'])).stdout) as { timings?: Record<string, number> }).timings ?? {};
    say(
      `berth start with a synced folder: ${Math.round(performance.now() - t0)} ms (from boot: ssh ${tm.guestMs} ms, dockerd ${tm.dockerMs} ms, shares and synced folders ${tm.sharesMs} ms, socket ${tm.socketMs} ms)`,
    );
    const s = await mine();
    assert.equal(s?.mounted, true, 'mounted by the time start returns');
    const out = await inContainer("grep ' /src ' /proc/mounts; cat while-stopped.txt; ls src/f4.txt 2>&1 || true");
    assert.match(out, / \/src ext4 /);
    assert.match(out, /written while the VM was stopped/);
    assert.match(out, /No such file/);
    assert.equal(await inode(), before, 'the same guest copy (not copied again)');
  });

  test('sync rm deletes the guest copy and containers see the shared folder again', async () => {
    const r = await vm.berth(['sync', 'rm', proj]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await syncs()).length, 0);
    const out = await inContainer("grep ' /src ' /proc/mounts; cat README.md");
    // The share's own mount again: virtiofs (QEMU with virtiofsd) or reverse sshfs.
    assert.match(out, / \/src (virtiofs|fuse\.sshfs) /);
    assert.match(out, /edited on the host/);
    const left = await vm.berth(['shell', '--', 'sh', '-c', 'ls /var/lib/berth/sync | wc -l']);
    assert.equal(left.stdout.trim(), '0');
    assert.ok(fs.existsSync(hp('while-stopped.txt')), 'the host folder is untouched');
  });

  test('bad folders are refused with a clear error', async () => {
    const outside = await vm.berth(['sync', 'add', '/etc']);
    assert.equal(outside.code, 1);
    assert.match(outside.stderr, /not inside a shared folder/);
    assert.match(outside.stderr, /berth share add/);
    const missing = await vm.berth(['sync', 'add', path.join(share, 'nope')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not a folder/);
    const rm = await vm.berth(['sync', 'rm', '/not/synced']);
    assert.equal(rm.code, 1);
    assert.match(rm.stderr, /not a synced folder/);
  });
});
