/**
 * virtiofsd for QEMU's virtio-fs shares, without a VM: which virtiofsd it
 * is, whether it can run for this user, its command line, and the process
 * life cycle (a fake virtiofsd, and the real one when it is installed).
 *
 * Flags checked against the tools' own documentation:
 * - QEMU 7.2's C virtiofsd (docs/tools/virtiofsd.rst, `virtiofsd --help`):
 *   --socket-path=PATH, -o source=PATH, -o cache=none|auto|always,
 *   -o announce_submounts, -o posix_lock|no_posix_lock, -o flock|no_flock,
 *   -o xattr|no_xattr, -o modcaps=CAPLIST (e.g. +sys_admin:-chown),
 *   -o sandbox=namespace|chroot, --rlimit-nofile=NUM (0 leaves it), and the
 *   version line "virtiofsd version 7.2.22 (...)"; option values use
 *   libfuse's fuse_opt escapes (`\,`, `\\`).
 * - The Rust virtiofsd (README.md, "Usage"): --socket-path, --shared-dir,
 *   --cache=auto, --announce-submounts, --sandbox=namespace, --modcaps,
 *   --rlimit-nofile; `--version` prints "virtiofsd 1.10.1".
 * - util-linux 2.38 unshare(1): --user --map-root-user
 *   --map-users=OUTER,INNER,COUNT --map-groups=... (through newuidmap),
 *   --mount --propagation private; subuid(5) "name-or-uid:start:count".
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from '../helpers/prereq-gate.js';
import {
  cVirtiofsdPidFile,
  findBackends,
  fuseOptEscape,
  startBackends,
  stopBackends,
  virtiofsdArgs,
  virtiofsdCommand,
  wrapperScript,
} from '../../app/engine/drivers/virtiofsd.js';
import {
  LOW_OPEN_FILE_LIMIT,
  parseVirtiofsdVersion,
  probeVirtiofsd,
  subordinateRange,
  virtiofsdOpenFiles,
  bundledVirtiofsd,
  findVirtiofsd,
  RUST_VIRTIOFSD_PATHS,
  type ProbeHost,
  type VirtiofsdProbe,
} from '../../app/engine/drivers/virtiofsd-probe.js';
import type { VmSpec } from '../../app/engine/drivers/driver.js';
import { QemuDriver } from '../../app/engine/drivers/qemu.js';
import { isBerthError } from '../../app/contract/errors.js';
import { pidAlive } from '../../app/base/process-util.js';
import { shortTempDir } from '../helpers/temp.js';

test('which virtiofsd: the C one from QEMU or the Rust one, from --version', () => {
  assert.deepEqual(
    parseVirtiofsdVersion(
      'virtiofsd version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 Fabrice Bellard\nusing FUSE kernel interface version 7.36\n',
    ),
    { flavor: 'qemu-c', version: '7.2.22' },
  );
  assert.deepEqual(parseVirtiofsdVersion('virtiofsd 1.10.1\n'), { flavor: 'rust', version: '1.10.1' });
  assert.equal(parseVirtiofsdVersion('something else 1.0'), undefined);
});

test('where virtiofsd is looked for: a Rust one installed, then the one unpacked into the cache, then QEMU’s C one, then PATH', () => {
  const only =
    (...have: string[]) =>
    (p: string) =>
      have.includes(p);
  const cached = '/home/me/.cache/berth/virtiofsd/virtiofsd';
  assert.equal(bundledVirtiofsd('/home/me/.cache/berth'), cached);
  assert.equal(findVirtiofsd(undefined, only('/usr/libexec/virtiofsd', cached, '/usr/lib/qemu/virtiofsd'), cached), '/usr/libexec/virtiofsd');
  assert.equal(findVirtiofsd(undefined, only('/usr/lib/virtiofsd', '/usr/lib/qemu/virtiofsd'), cached), '/usr/lib/virtiofsd');
  assert.equal(findVirtiofsd(undefined, only(cached, '/usr/lib/qemu/virtiofsd'), cached), cached, 'Debian 12 after `npm run virtiofsd`');
  assert.equal(findVirtiofsd(undefined, only('/usr/lib/qemu/virtiofsd'), cached), '/usr/lib/qemu/virtiofsd');
});

test('subordinate ids: by name or uid, big enough ranges only', () => {
  const text = 'alice:100000:65536\nbob:165536:1000\n1001:300000:65536\n# comment\n';
  assert.equal(subordinateRange(text, { name: 'alice', id: 1000 }), 100000);
  assert.equal(subordinateRange(text, { name: 'bob', id: 1002 }), undefined, '1000 ids are too few');
  assert.equal(subordinateRange(text, { name: 'carol', id: 1001 }), 300000);
  assert.equal(subordinateRange('', { name: 'alice', id: 1000 }), undefined);
});

test('the C virtiofsd: cache=auto, submounts, no locks or xattrs passed through, no mknod, escaped source', () => {
  assert.equal(fuseOptEscape('/a,b\\c'), '/a\\,b\\\\c');
  assert.deepEqual(virtiofsdArgs({ flavor: 'qemu-c' }, { socketPath: '/i/virtiofs/t.sock', source: '/home/me,x', readOnly: false }, { kind: 'root' }), [
    '--socket-path=/i/virtiofs/t.sock',
    '-o',
    'source=/home/me\\,x',
    '-o',
    'cache=auto',
    '-o',
    'announce_submounts',
    '-o',
    'no_posix_lock',
    '-o',
    'no_flock',
    '-o',
    'no_xattr',
    '-o',
    'modcaps=-mknod:-setfcap',
    '-o',
    'sandbox=namespace',
  ]);
  const userns = virtiofsdArgs(
    { flavor: 'qemu-c' },
    { socketPath: '/s', source: '/x', readOnly: false },
    { kind: 'userns', uid: 1000, gid: 1000, subuid: 100000, subgid: 100000 },
  );
  assert.equal(userns.at(-1), '--rlimit-nofile=0', 'in a user namespace it leaves the open-files limit to the wrapper');
  assert.ok(!userns.some((x) => x.startsWith('timeout')), 'names stay cached for 1 s (cache=auto)');
});

test('the Rust virtiofsd: the same choices in its long options', () => {
  assert.deepEqual(virtiofsdArgs({ flavor: 'rust' }, { socketPath: '/s.sock', source: '/home/me,x', readOnly: false }, { kind: 'root' }), [
    '--socket-path=/s.sock',
    '--shared-dir=/home/me,x',
    '--cache=auto',
    '--announce-submounts',
    '--sandbox=namespace',
    '--modcaps=-mknod:-setfcap',
  ]);
  const handles = virtiofsdArgs({ flavor: 'rust' }, { socketPath: '/s.sock', source: '/x', readOnly: false }, { kind: 'root', fileHandles: true });
  assert.equal(handles.at(-1), '--inode-file-handles=prefer', 'as root with CAP_DAC_READ_SEARCH: cached files named by handle, not held open');
});

test('as root, a read-write share runs virtiofsd itself; a read-only one behind a read-only bind mount', () => {
  const d = { path: '/usr/lib/qemu/virtiofsd', flavor: 'qemu-c' as const, version: '7.2.22' };
  const rw = virtiofsdCommand(d, { socketPath: '/s', source: '/src', readOnly: false }, { kind: 'root' });
  assert.equal(rw.file, '/usr/lib/qemu/virtiofsd');
  const ro = virtiofsdCommand(d, { socketPath: '/s', source: '/src', readOnly: true }, { kind: 'root' });
  assert.equal(ro.file, 'unshare');
  assert.deepEqual(ro.args.slice(0, 6), [
    '--mount',
    '--propagation',
    'private',
    'sh',
    '-c',
    'mount --bind -- "$1" "$1" && mount -o remount,bind,ro -- "$1" && shift && exec "$@"',
  ]);
  assert.deepEqual(ro.args.slice(6, 9), ['berth-virtiofsd', '/src', '/usr/lib/qemu/virtiofsd']);
});

test('as a user: a user namespace where the user is root and guest ids 1-65536 are its subordinate ids', () => {
  const d = { path: '/usr/lib/qemu/virtiofsd', flavor: 'qemu-c' as const, version: '7.2.22' };
  const mode = { kind: 'userns' as const, uid: 1000, gid: 1000, subuid: 100000, subgid: 200000 };
  const c = virtiofsdCommand(d, { socketPath: '/s', source: '/src', readOnly: false }, mode);
  assert.equal(c.file, 'unshare');
  assert.deepEqual(c.args.slice(0, 7), [
    '--user',
    '--map-root-user',
    '--map-users=100000,1,65536',
    '--map-groups=200000,1,65536',
    '--mount',
    '--propagation',
    'private',
  ]);
  assert.equal(
    wrapperScript(mode, false),
    'mount -t tmpfs -o mode=0755 berth-virtiofsd /var/run && mkdir -p /var/run/virtiofsd && ulimit -n "$(ulimit -H -n)" 2>/dev/null && shift && exec "$@"',
  );
});

const host = (over: Partial<ProbeHost>): ProbeHost => ({
  platform: 'linux',
  uid: 0,
  gid: 0,
  userName: 'root',
  find: () => '/usr/lib/qemu/virtiofsd',
  run: (file) => (file === 'unshare' ? { code: 0, out: '' } : { code: 0, out: 'virtiofsd version 7.2.22 (Debian)\n' }),
  readFile: () => undefined,
  ...over,
});

test('can virtiofsd run here: root yes; a user with subordinate ids and working user namespaces yes; else why not', () => {
  const root = probeVirtiofsd(host({}));
  assert.deepEqual(root.support, { ok: true, how: 'virtiofsd 7.2.22 as root', needsSocket: true, readOnlyDevice: true });
  assert.deepEqual(root.mode, { kind: 'root' });

  const mac = probeVirtiofsd(host({ platform: 'darwin' }));
  assert.equal(mac.support.ok, false);

  const missing = probeVirtiofsd(host({ find: () => undefined }));
  assert.ok(!missing.support.ok && /not installed.*qemu-system-common/.test(missing.support.reason));

  const user = { uid: 1000, gid: 1000, userName: 'me' };
  const noSub = probeVirtiofsd(host(user));
  assert.ok(!noSub.support.ok && /subordinate/.test(noSub.support.reason));

  const sub = (p: string) => (p.endsWith('subuid') ? 'me:100000:65536\n' : p.endsWith('subgid') ? 'me:200000:65536\n' : undefined);
  const ok = probeVirtiofsd(host({ ...user, readFile: sub }));
  assert.equal(ok.support.ok, true);
  assert.deepEqual(ok.mode, { kind: 'userns', uid: 1000, gid: 1000, subuid: 100000, subgid: 200000 });

  const blocked = probeVirtiofsd(
    host({
      ...user,
      readFile: sub,
      run: (file) =>
        file === 'unshare' ? { code: 1, out: 'unshare: write failed /proc/self/uid_map: Operation not permitted' } : { code: 0, out: 'virtiofsd 1.10.1' },
    }),
  );
  assert.ok(!blocked.support.ok && /Operation not permitted/.test(blocked.support.reason));

  // An ordinary user under a low hard limit: no virtiofsd can name files by
  // handle there, so neither is used; the way out is a higher limit.
  const lowSub = (p: string) => (p === '/proc/self/limits' ? 'Max open files            4096                 4096                 files\n' : sub(p));
  const rustLow = probeVirtiofsd(
    host({ ...user, readFile: lowSub, run: (file) => (file === 'unshare' ? { code: 0, out: '' } : { code: 0, out: 'virtiofsd 1.13.2\n' }) }),
  );
  assert.ok(
    !rustLow.support.ok && /stay under 4,096 open files.+reverse sshfs\. Raise Berth's open-files limit/.test(rustLow.support.reason),
    JSON.stringify(rustLow.support),
  );
  assert.ok(!/sudo|CAP_DAC_READ_SEARCH/.test(rustLow.support.reason), 'no way out an ordinary user cannot take');
  const cLow = probeVirtiofsd(host({ ...user, readFile: lowSub }));
  assert.ok(!cLow.support.ok && /stay under 4,096 open files/.test(cLow.support.reason), JSON.stringify(cLow.support));
});

/** A fake virtiofsd: listens on --socket-path (or fails as asked) and stays up. */
function fakeVirtiofsd(dir: string, behaviour: 'listen' | 'fail'): string {
  const f = path.join(dir, 'fake-virtiofsd');
  const js =
    behaviour === 'fail'
      ? `process.stderr.write('fuse: unknown option(s): oops\\n'); process.exit(1);`
      : `const net = require('node:net'); const a = process.argv.find((x) => x.startsWith('--socket-path=')).slice(14); net.createServer().listen(a); setInterval(() => {}, 1000);`;
  fs.writeFileSync(f, `#!/bin/sh\nexec ${process.execPath} -e ${JSON.stringify(js)} -- "$@"\n`, { mode: 0o755 });
  return f;
}

const rootProbe = (bin: string): VirtiofsdProbe => ({
  support: { ok: true, how: 'fake', needsSocket: true, readOnlyDevice: true },
  binary: { path: bin, flavor: 'qemu-c', version: '7.2.22' },
  mode: { kind: 'root' },
});

test('virtiofsd per share: started detached, owner-only socket and pid file, found again, stopped', async () => {
  const t = shortTempDir('vfd');
  try {
    const bin = fakeVirtiofsd(t.dir, 'listen');
    const shares = [
      { hostPath: t.dir, tag: 'berth-a-1', socketPath: path.join(t.dir, 'virtiofs', 'berth-a-1.sock') },
      { hostPath: t.dir, tag: 'berth-b-2', socketPath: path.join(t.dir, 'virtiofs', 'berth-b-2.sock') },
    ];
    const backends = await startBackends(shares, rootProbe(bin));
    assert.equal(backends.length, 2);
    for (const b of backends) {
      assert.ok(pidAlive(b.pid));
      assert.equal(fs.statSync(b.socketPath).mode & 0o777, 0o600);
      assert.equal(fs.statSync(path.join(t.dir, 'virtiofs', `${b.tag}.pid`)).mode & 0o777, 0o600);
    }
    assert.equal(fs.statSync(path.join(t.dir, 'virtiofs')).mode & 0o777, 0o700);
    assert.deepEqual(
      findBackends(shares).map((b) => b.pid),
      backends.map((b) => b.pid),
      'a reattaching engine finds them',
    );
    await stopBackends(backends);
    for (const b of backends) {
      assert.ok(!pidAlive(b.pid));
      assert.ok(!fs.existsSync(b.socketPath));
    }
    assert.deepEqual(findBackends(shares), []);
  } finally {
    t.cleanup();
  }
});

test('a virtiofsd that fails: VIRTIOFSD_FAILED with its own words, and the ones started before are stopped', async () => {
  const t = shortTempDir('vfd');
  try {
    const good = fakeVirtiofsd(t.dir, 'listen');
    const bad = path.join(t.dir, 'bad');
    fs.mkdirSync(bad);
    const badBin = fakeVirtiofsd(bad, 'fail');
    const first = { hostPath: t.dir, tag: 'berth-a-1', socketPath: path.join(t.dir, 'v', 'berth-a-1.sock') };
    const started = await startBackends([first], rootProbe(good));
    await assert.rejects(
      startBackends([{ hostPath: t.dir, tag: 'berth-b-2', socketPath: path.join(t.dir, 'v', 'berth-b-2.sock') }], rootProbe(badBin)),
      (e) => isBerthError(e, 'VIRTIOFSD_FAILED') && /exit status 1/.test(e.message) && /unknown option/.test(e.details ?? ''),
    );
    await stopBackends(started);
  } finally {
    t.cleanup();
  }
});

const real = probeVirtiofsd();
test(
  'the real virtiofsd of this host listens on its socket and stops',
  { needs: real.support.ok ? undefined : `no usable virtiofsd here: ${real.support.reason} (apt-get install qemu-system-x86)` },
  async () => {
    const t = shortTempDir('vfr');
    try {
      const src = path.join(t.dir, 'src');
      fs.mkdirSync(src);
      for (const readonly of [false, true]) {
        const tag = readonly ? 'berth-ro-1' : 'berth-rw-1';
        const [b] = await startBackends([{ hostPath: src, tag, readonly, socketPath: path.join(t.dir, 'v', `${tag}.sock`) }], real);
        assert.ok(b && pidAlive(b.pid), `${tag} runs`);
        assert.ok(fs.statSync(b.socketPath).isSocket());
        await stopBackends([b]);
        assert.ok(!pidAlive(b.pid));
        assert.ok(!fs.existsSync(cVirtiofsdPidFile(b.socketPath)), 'its own pid file in /var/run/virtiofsd goes too');
      }
    } finally {
      t.cleanup();
    }
  },
);

test('QEMU that cannot set up virtio-fs: VIRTIOFSD_FAILED (the engine starts again without it), and its virtiofsd is stopped', async () => {
  const t = shortTempDir('vfq');
  try {
    fs.writeFileSync(
      path.join(t.dir, 'qemu-system-x86_64'),
      `#!/bin/sh\necho "qemu-system-x86_64: -device vhost-user-fs-pci,chardev=vfs0,tag=t: 'vhost-user-fs-pci' is not a valid device model name" >&2\nexit 1\n`,
      { mode: 0o755 },
    );
    const bin = fakeVirtiofsd(t.dir, 'listen');
    const driver = new QemuDriver({ platform: 'linux', arch: 'x64' }, () => rootProbe(bin), { qemu: path.join(t.dir, 'qemu-system-x86_64') });
    assert.equal((await driver.virtiofs()).ok, true);
    const socketPath = path.join(t.dir, 'v', 'berth-a-1.sock');
    const spec: VmSpec = {
      name: 'vfq',
      arch: 'x86_64',
      accel: 'tcg',
      cpus: 1,
      memoryMiB: 512,
      kernel: '/k',
      initrd: '/i',
      cmdline: 'quiet',
      disks: [],
      sshHostPort: 40022,
      serialLog: path.join(t.dir, 'serial.log'),
      pidFile: path.join(t.dir, 'qemu.pid'),
      controlSocket: path.join(t.dir, 'qmp.sock'),
      shares: [{ hostPath: t.dir, tag: 'berth-a-1', socketPath }],
    };
    await assert.rejects(driver.start(spec), (e) => isBerthError(e, 'VIRTIOFSD_FAILED') && /not a valid device model name/.test(e.message));
    assert.ok(!fs.existsSync(socketPath), 'the virtiofsd it started is gone');
    assert.deepEqual(findBackends(spec.shares!), []);
  } finally {
    t.cleanup();
  }
});

test("virtiofsd's open-files limit: the hard limit it inherits, unless root may raise it; under a low one, by handle or not at all", () => {
  const limits = (soft: string, hard: string) =>
    `Limit                     Soft Limit           Hard Limit           Units     \nMax open files            ${soft}                ${hard}                files     \n`;
  const capEff = (hex: string) => `Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t${hex}\nCapBnd:\t${hex}\n`;
  const files = (f: Record<string, string>) => (p: string) => f[p];
  const root = { kind: 'root' } as const;
  const userns = { kind: 'userns', uid: 1000, gid: 1000, subuid: 100000, subgid: 200000 } as const;
  // A container without CAP_SYS_RESOURCE (bit 24), as on the machine where the bench found it: stuck at the hard limit.
  const boxed = files({ '/proc/self/limits': limits('20000', '20000'), '/proc/self/status': capEff('000001fffeffffff'), '/proc/sys/fs/nr_open': '1048576\n' });
  assert.equal(virtiofsdOpenFiles({ readFile: boxed }, root), 20000);
  // Root with the capability: virtiofsd raises it to a million (at most fs.nr_open).
  const full = files({ '/proc/self/limits': limits('1024', '4096'), '/proc/self/status': capEff('000001ffffffffff'), '/proc/sys/fs/nr_open': '1048576\n' });
  assert.equal(virtiofsdOpenFiles({ readFile: full }, root), 1_000_000);
  const smallNrOpen = files({
    '/proc/self/limits': limits('1024', '4096'),
    '/proc/self/status': capEff('000001ffffffffff'),
    '/proc/sys/fs/nr_open': '65536\n',
  });
  assert.equal(virtiofsdOpenFiles({ readFile: smallNrOpen }, root), 65536);
  // In a user namespace the capability is no help on the host: the hard limit.
  assert.equal(virtiofsdOpenFiles({ readFile: full }, userns), 4096);
  assert.equal(virtiofsdOpenFiles({ readFile: files({ '/proc/self/limits': limits('unlimited', 'unlimited') }) }, userns), 1_000_000);
  assert.equal(virtiofsdOpenFiles({ readFile: () => undefined }, root), undefined);

  // In the probe: only a limit under LOW_OPEN_FILE_LIMIT counts. QEMU's C
  // virtiofsd is not used under one (it stops taking the guest's FORGETs
  // after enough of them): reverse sshfs, with why and the ways out.
  const boxedProbe = probeVirtiofsd(host({ readFile: boxed })).support;
  assert.ok(
    !boxedProbe.ok &&
      /stay under 20,000 open files.+reverse sshfs\. `sudo npm run virtiofsd` brings the Rust virtiofsd.+raise Berth's open-files limit/.test(
        boxedProbe.reason,
      ),
    JSON.stringify(boxedProbe),
  );
  const fine = probeVirtiofsd(host({ readFile: full })).support;
  assert.ok(fine.ok && LOW_OPEN_FILE_LIMIT > 20000);

  // The Rust virtiofsd as root where the limit is low names cached files by handle (CAP_DAC_READ_SEARCH, bit 2): no limit to show.
  const rust = (readFile: (p: string) => string | undefined) =>
    probeVirtiofsd(host({ readFile, run: (file) => (file === 'unshare' ? { code: 0, out: '' } : { code: 0, out: 'virtiofsd 1.13.2\n' }) }));
  const byHandle = rust(boxed);
  assert.deepEqual(byHandle.mode, { kind: 'root', fileHandles: true });
  assert.ok(byHandle.support.ok, JSON.stringify(byHandle.support));
  assert.ok(byHandle.support.ok && /Rust\) as root, files named by handle \(it may hold only 20000 open\)/.test(byHandle.support.how));
  // Where it may raise its limit it does, and keeps no capability to open any file by handle.
  const raised = rust(full);
  assert.deepEqual(raised.mode, { kind: 'root' });
  assert.ok(raised.support.ok && !/handle/.test(raised.support.how));
  // Without CAP_DAC_READ_SEARCH (bit 2 cleared) it would hold files open like the C one: not used, and the capability is a way out.
  const noDac = rust(
    files({ '/proc/self/limits': limits('20000', '20000'), '/proc/self/status': capEff('000001fffefffffb'), '/proc/sys/fs/nr_open': '1048576\n' }),
  );
  assert.ok(
    !noDac.support.ok &&
      /stay under 20,000 open files.+reverse sshfs\. Give Berth CAP_DAC_READ_SEARCH.+raise Berth's open-files limit/.test(noDac.support.reason),
    JSON.stringify(noDac.support),
  );
});

test('the set-up scripts give a host with only QEMU’s C virtiofsd the Rust one, from the guest’s release, run by its own loader', () => {
  const root = path.resolve(import.meta.dirname, '..', '..');
  const read = (f: string) => fs.readFileSync(path.join(root, f), 'utf8');
  for (const f of ['scripts/install.sh', 'scripts/test.sh']) assert.match(read(f), /node dist\/scripts\/build-virtiofsd\.js/, `${f} runs it`);
  const sh = read('scripts/virtiofsd.sh');
  assert.match(sh, /vm-images\/suite\.txt/, 'the guest’s suite');
  assert.match(sh, /mmdebstrap --mode=root --variant=extract --include=virtiofsd/, 'unpacked with its dependencies, nothing run');
  assert.match(sh, /--library-path/, 'the launcher runs it through the unpacked loader and C library');
  assert.doesNotMatch(sh, /https?:\/\//, 'no mirror named: the sources come from the host');
});

test('npm run virtiofsd: sources it cannot use are an error with a code and a hint, and nothing is left in the cache', () => {
  const root = path.resolve(import.meta.dirname, '..', '..');
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-vfsd-'));
  const empty = path.join(cache, 'empty.sources');
  fs.writeFileSync(empty, '\n');
  try {
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'scripts', 'build-virtiofsd.ts'), '--force'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, BERTH_CACHE: cache, BERTH_APT_SOURCES: empty },
      timeout: 60_000,
    });
    const system = RUST_VIRTIOFSD_PATHS.find((p) => fs.existsSync(p));
    if (system) {
      // A host with an installed Rust virtiofsd has nothing to unpack.
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /nothing to do/);
      return;
    }
    assert.equal(r.status, 1, r.stdout);
    const code = process.getuid?.() === 0 ? 'VIRTIOFSD_UNPACK_FAILED' : 'VIRTIOFSD_UNPACK_NEEDS_ROOT';
    assert.match(r.stderr, new RegExp(`^error: .+ \\[${code}\\]\\nhint: .+`), r.stderr);
    if (code === 'VIRTIOFSD_UNPACK_FAILED') assert.match(r.stderr, /is empty/);
    assert.deepEqual(fs.readdirSync(cache), ['empty.sources'], 'nothing unpacked, no temp folder left');
  } finally {
    fs.rmSync(cache, { recursive: true, force: true });
  }
});
