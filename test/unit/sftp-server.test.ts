/**
 * The engine's SFTP server for reverse sshfs (app/engine/share/sftp-server.ts).
 *
 * Part 1 speaks SFTP to it directly, with ssh2's client over an in-memory
 * stream: the protocol details, and what a misbehaving guest could send.
 * Part 2 mounts a temp folder with the real `sshfs -o slave` (what the guest
 * runs, same command line) piped to the server in this process, and works
 * through the mount with node:fs and shell tools. Calls on the mount are
 * awaited one at a time: see test/helpers/sshfs-mount.ts for why.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import type { FileEntry, Stats as SftpStats } from 'ssh2';
import { isBerthError } from '../../app/contract/errors.js';
import { GuestSession } from '../../app/engine/guest/session.js';
import { silentLogger } from '../../app/base/log.js';
import { installedSsh2Version, SFTP_STATUS, SSH2_VERSION_VERIFIED } from '../../app/engine/share/sftp-channel.js';
import { serveSftp, SSHFS_OPTIONS, sshfsCommand, statusFor, type SftpSession } from '../../app/engine/share/sftp-server.js';
import { startExecGuest } from '../helpers/exec-guest.js';
import { duplexPair, sftpClient, sftpCode, type TestSftpClient } from '../helpers/sftp-client.js';
import { canSwitchUser, fusermount, hasCommand, isMounted, mountLocal, OTHER_USER, sh, sshfsUnavailable, type LocalMount } from '../helpers/sshfs-mount.js';
import { ROOT } from '../helpers/run.js';
import { shortTempDir } from '../helpers/temp.js';
import { newEd25519Pair } from '../../app/base/ssh-keys.js';

const GiB = 2 ** 30;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A server on one end of a stream pair, ssh2's client on the other. */
async function connect(root: string, opts: { readOnly?: boolean; remoteRoot?: string } = {}) {
  const [serverSide, clientSide] = duplexPair();
  const session = await serveSftp(serverSide, { root, log: silentLogger(), ...opts });
  const client = await sftpClient(clientSide);
  return { session, client };
}

async function refusedWith(p: Promise<unknown>, code: number, text?: RegExp) {
  await assert.rejects(p, (err: unknown) => {
    assert.equal(sftpCode(err), code, `status ${sftpCode(err)} (${(err as Error).message}), expected ${code}`);
    if (text) assert.match((err as Error).message, text);
    return true;
  });
}

// ---------------------------------------------------------------------------
describe('SFTP protocol, straight to the server', () => {
  const tmp = shortTempDir('sftp');
  const root = path.join(tmp.dir, 'share');
  const outside = path.join(tmp.dir, 'outside');
  let session: SftpSession;
  let c: TestSftpClient;
  const R = (...p: string[]) => [root, ...p].join('/');

  before(async () => {
    fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'secret.txt'), 'host secret\n');
    fs.writeFileSync(path.join(root, 'sub', 'file.txt'), 'inside\n');
    fs.symlinkSync('../outside', path.join(root, 'escape'));
    fs.symlinkSync(outside, path.join(root, 'abs-escape'));
    fs.symlinkSync('../outside/created-through-link.txt', path.join(root, 'dangling-out'));
    fs.symlinkSync('sub/file.txt', path.join(root, 'inlink'));
    ({ session, client: c } = await connect(root));
  });
  after(async () => {
    c.end();
    await session.closed;
    tmp.cleanup();
  });

  test(`ssh2 is pinned at ${SSH2_VERSION_VERIFIED}, the version whose internal SFTP class the adapter was written against`, () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    assert.equal(pkg.dependencies.ssh2, SSH2_VERSION_VERIFIED, 'package.json must pin ssh2 exactly (re-read sftp-channel.ts before bumping)');
    assert.equal(installedSsh2Version(), SSH2_VERSION_VERIFIED);
  });

  test('VERSION advertises the OpenSSH extensions sshfs uses', () => {
    assert.deepEqual(
      {
        rename: c.extensions['posix-rename@openssh.com'],
        statvfs: c.extensions['statvfs@openssh.com'],
        hardlink: c.extensions['hardlink@openssh.com'],
        fsync: c.extensions['fsync@openssh.com'],
      },
      { rename: '1', statvfs: '2', hardlink: '1', fsync: '1' },
    );
  });

  test('paths outside the share are refused with PERMISSION_DENIED, symlinks included', async () => {
    const before = session.stats().refused;
    const outsidePaths = [
      '/etc/passwd',
      `${root}/../outside/secret.txt`,
      '../outside/secret.txt', // relative: resolved against the share root
      R('escape', 'secret.txt'), // through a relative symlink in the share
      R('abs-escape', 'secret.txt'), // through an absolute one
      R('escape'), // following the link itself (STAT follows)
    ];
    for (const p of outsidePaths) {
      await refusedWith(
        c.call<SftpStats>((cb) => c.sftp.stat(p, cb)),
        SFTP_STATUS.PERMISSION_DENIED,
        /outside the shared folder/,
      );
    }
    await refusedWith(
      c.call((cb) => c.sftp.open(R('escape', 'secret.txt'), 'r', cb)),
      SFTP_STATUS.PERMISSION_DENIED,
    );
    await refusedWith(
      c.call((cb) => c.sftp.opendir(R('abs-escape'), cb)),
      SFTP_STATUS.PERMISSION_DENIED,
    );
    await refusedWith(
      c.call((cb) => c.sftp.setstat(R('escape', 'secret.txt'), { mode: 0o777 }, cb)),
      SFTP_STATUS.PERMISSION_DENIED,
    );
    await refusedWith(
      c.call((cb) => c.sftp.mkdir(R('escape', 'newdir'), cb)),
      SFTP_STATUS.PERMISSION_DENIED,
    );
    // O_CREAT through a dangling symlink would create a file outside.
    await refusedWith(
      c.call((cb) => c.sftp.open(R('dangling-out'), 'w', cb)),
      SFTP_STATUS.PERMISSION_DENIED,
    );
    assert.equal(fs.existsSync(path.join(outside, 'created-through-link.txt')), false);
    await refusedWith(
      c.call((cb) => c.sftp.rename(R('sub', 'file.txt'), `${outside}/moved.txt`, cb)),
      SFTP_STATUS.PERMISSION_DENIED,
    );
    await refusedWith(
      c.call((cb) => c.sftp.ext_openssh_rename(R('sub', 'file.txt'), R('escape', 'moved.txt'), cb)),
      SFTP_STATUS.PERMISSION_DENIED,
    );
    await refusedWith(
      c.call((cb) => c.sftp.ext_openssh_hardlink(`${outside}/secret.txt`, R('stolen'), cb)),
      SFTP_STATUS.PERMISSION_DENIED,
    );
    await refusedWith(
      c.call((cb) => c.sftp.ext_openssh_hardlink(R('escape', 'secret.txt'), R('stolen'), cb)),
      SFTP_STATUS.PERMISSION_DENIED,
    );
    await refusedWith(
      c.call((cb) => c.sftp.symlink('/etc', `${outside}/planted`, cb)),
      SFTP_STATUS.PERMISSION_DENIED,
    );
    await refusedWith(
      c.call((cb) => c.sftp.ext_openssh_statvfs('/', cb)),
      SFTP_STATUS.PERMISSION_DENIED,
    );
    await refusedWith(
      c.call((cb) => c.sftp.realpath(R('escape'), cb)),
      SFTP_STATUS.PERMISSION_DENIED,
    );
    assert.equal(fs.readFileSync(path.join(outside, 'secret.txt'), 'utf8'), 'host secret\n');
    assert.deepEqual(fs.readdirSync(outside), ['secret.txt']);
    assert.ok(session.stats().refused >= before + outsidePaths.length + 12);

    // The links themselves are part of the share: lstat and readlink work.
    const st = await c.call<SftpStats>((cb) => c.sftp.lstat(R('escape'), cb));
    assert.ok(st.isSymbolicLink());
    assert.equal(await c.call<string>((cb) => c.sftp.readlink(R('escape'), cb)), '../outside');
    // ... and a symlink inside that stays inside is followed.
    assert.equal((await c.call<SftpStats>((cb) => c.sftp.stat(R('inlink'), cb))).size, 7);
  });

  test('removing or renaming the shared folder itself is refused', async () => {
    await refusedWith(
      c.call((cb) => c.sftp.rmdir(root, cb)),
      SFTP_STATUS.PERMISSION_DENIED,
      /shared folder itself/,
    );
    await refusedWith(
      c.call((cb) => c.sftp.rename(root, R('sub', 'x'), cb)),
      SFTP_STATUS.PERMISSION_DENIED,
    );
    assert.ok(fs.statSync(root).isDirectory());
  });

  test('REALPATH answers in the guest view and resolves symlinks inside the share', async () => {
    assert.equal(await c.call<string>((cb) => c.sftp.realpath('.', cb)), root);
    assert.equal(await c.call<string>((cb) => c.sftp.realpath(R('sub', '..', 'inlink'), cb)), R('sub', 'file.txt'));
    assert.equal(await c.call<string>((cb) => c.sftp.realpath(R('sub', 'not-yet'), cb)), R('sub', 'not-yet'));
  });

  test('SYMLINK: OpenSSH argument order (target first), the target stored verbatim', async () => {
    // ssh2's client, seeing an OpenSSH server, sends (target, link) like sshfs.
    await c.call((cb) => c.sftp.symlink('sub/file.txt', R('made-link'), cb));
    assert.equal(fs.readlinkSync(path.join(root, 'made-link')), 'sub/file.txt');
    await c.call((cb) => c.sftp.symlink('/nowhere/at/all', R('made-abs'), cb));
    assert.equal(fs.readlinkSync(path.join(root, 'made-abs')), '/nowhere/at/all');
  });

  test('64-bit offsets: one byte written at 5 GiB reads back; reading past the end is EOF', async () => {
    const h = await c.call<Buffer>((cb) => c.sftp.open(R('sparse'), 'w+', cb));
    try {
      await c.call((cb) => c.sftp.write(h, Buffer.from('Z'), 0, 1, 5 * GiB, cb));
      assert.equal((await c.call<SftpStats>((cb) => c.sftp.fstat(h, cb))).size, 5 * GiB + 1);
      const buf = Buffer.alloc(8);
      const n = await c.call<number>((cb) => c.sftp.read(h, buf, 0, 8, 5 * GiB, (err, bytes) => cb(err, bytes)));
      assert.equal(n, 1);
      assert.equal(buf.toString('latin1', 0, 1), 'Z');
      const eof = await c.call<number>((cb) => c.sftp.read(h, buf, 0, 8, 5 * GiB + 1, (err, bytes) => cb(err, bytes)));
      assert.equal(eof, 0);
    } finally {
      await c.call((cb) => c.sftp.close(h, cb));
    }
    assert.equal(fs.statSync(path.join(root, 'sparse')).size, 5 * GiB + 1);
    fs.unlinkSync(path.join(root, 'sparse'));
  });

  test('EEXIST, ENOTEMPTY and a plain RENAME onto an existing name are FAILURE with the reason', async () => {
    await refusedWith(
      c.call((cb) => c.sftp.open(R('sub', 'file.txt'), 'wx', cb)),
      SFTP_STATUS.FAILURE,
      /EEXIST/,
    );
    await refusedWith(
      c.call((cb) => c.sftp.mkdir(R('sub'), cb)),
      SFTP_STATUS.FAILURE,
      /EEXIST/,
    );
    await refusedWith(
      c.call((cb) => c.sftp.rmdir(R('sub'), cb)),
      SFTP_STATUS.FAILURE,
      /ENOTEMPTY/,
    );
    fs.writeFileSync(path.join(root, 'other.txt'), 'other\n');
    await refusedWith(
      c.call((cb) => c.sftp.rename(R('other.txt'), R('sub', 'file.txt'), cb)),
      SFTP_STATUS.FAILURE,
      /already exists/,
    );
    await refusedWith(
      c.call<SftpStats>((cb) => c.sftp.stat(R('missing'), cb)),
      SFTP_STATUS.NO_SUCH_FILE,
    );
    assert.equal(fs.readFileSync(path.join(root, 'sub', 'file.txt'), 'utf8'), 'inside\n');
  });

  test('extensions: posix-rename replaces, hardlink, statvfs, fsync', async () => {
    fs.writeFileSync(path.join(root, 'new.txt'), 'new\n');
    fs.writeFileSync(path.join(root, 'old.txt'), 'old\n');
    await c.call((cb) => c.sftp.ext_openssh_rename(R('new.txt'), R('old.txt'), cb));
    assert.equal(fs.readFileSync(path.join(root, 'old.txt'), 'utf8'), 'new\n');
    assert.equal(fs.existsSync(path.join(root, 'new.txt')), false);

    await c.call((cb) => c.sftp.ext_openssh_hardlink(R('old.txt'), R('old-link.txt'), cb));
    assert.equal(fs.statSync(path.join(root, 'old-link.txt')).ino, fs.statSync(path.join(root, 'old.txt')).ino);

    const vfs = await c.call<{ f_bsize: number; f_blocks: number; f_namemax: number; f_flag: number }>((cb) => c.sftp.ext_openssh_statvfs(root, cb as never));
    const host = await fsp.statfs(root);
    assert.equal(vfs.f_bsize, host.bsize);
    assert.equal(vfs.f_blocks, host.blocks);
    assert.equal(vfs.f_namemax, 255);
    assert.equal(vfs.f_flag & 1, 0, 'not read-only');

    const h = await c.call<Buffer>((cb) => c.sftp.open(R('synced.txt'), 'w', cb));
    await c.call((cb) => c.sftp.write(h, Buffer.from('synced'), 0, 6, 0, cb));
    await c.call((cb) => c.sftp.ext_openssh_fsync(h, cb));
    assert.equal(fs.readFileSync(path.join(root, 'synced.txt'), 'utf8'), 'synced');
    await c.call((cb) => c.sftp.close(h, cb));
  });

  test('ownership changes are accepted and change nothing on the host', async () => {
    fs.writeFileSync(path.join(root, 'owned.txt'), 'x');
    const st = fs.statSync(path.join(root, 'owned.txt'));
    await c.call((cb) => c.sftp.setstat(R('owned.txt'), { uid: 4242, gid: 4242 }, cb));
    const after = fs.statSync(path.join(root, 'owned.txt'));
    assert.deepEqual([after.uid, after.gid], [st.uid, st.gid]);
  });

  test("a nudge (a file's times set to their own values) is not reported as a guest change; a real one is", async () => {
    const dir = path.join(tmp.dir, 'mut');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'f'), 'x');
    const mutated: string[] = [];
    const [serverSide, clientSide] = duplexPair();
    const s = await serveSftp(serverSide, { root: dir, log: silentLogger(), onMutate: (p) => mutated.push(p) });
    const m = await sftpClient(clientSide);
    try {
      const st = fs.statSync(path.join(dir, 'f'));
      const [a, t] = [Math.floor(st.atimeMs / 1000), Math.floor(st.mtimeMs / 1000)];
      await m.call((cb) => m.sftp.setstat(`${dir}/f`, { atime: a, mtime: t }, cb));
      assert.deepEqual(mutated, [], 'the nudge marked the file as changed by the guest');
      await m.call((cb) => m.sftp.setstat(`${dir}/f`, { atime: a - 10, mtime: t - 10 }, cb));
      await m.call((cb) => m.sftp.setstat(`${dir}/f`, { mode: 0o600 }, cb));
      assert.deepEqual(mutated, [path.join(dir, 'f'), path.join(dir, 'f')]);
    } finally {
      m.end();
      await s.close();
    }
  });

  test('READDIR answers in batches of at most 100 and ends with EOF', async () => {
    const dir = path.join(root, 'batch');
    fs.mkdirSync(dir);
    for (let i = 0; i < 250; i++) fs.writeFileSync(path.join(dir, `e${i}`), '');
    const h = await c.call<Buffer>((cb) => c.sftp.opendir(R('batch'), cb));
    const batches: FileEntry[][] = [];
    for (;;) {
      try {
        // { full: true } keeps "." and ".." (ssh2 knows the option, its types do not).
        const readdirFull = c.sftp.readdir.bind(c.sftp) as unknown as (h: Buffer, o: object, cb: (e: Error | undefined, l: FileEntry[]) => void) => void;
        batches.push(await c.call<FileEntry[]>((cb) => readdirFull(h, { full: true }, cb)));
      } catch (err) {
        assert.equal(sftpCode(err), SFTP_STATUS.EOF);
        break;
      }
    }
    await c.call((cb) => c.sftp.close(h, cb));
    const names = batches.flat().map((e) => e.filename);
    assert.equal(names.length, 252);
    assert.deepEqual(names.slice(0, 2), ['.', '..']);
    assert.ok(batches.length >= 3 && batches.every((b) => b.length <= 102), `batch sizes ${batches.map((b) => b.length)}`);
    const e0 = batches.flat().find((e) => e.filename === 'e0')!;
    assert.match(e0.longname, /^-rw.+ e0$/);
  });

  test('a read-only share refuses every change and still serves reads', async () => {
    const ro = await connect(root, { readOnly: true });
    try {
      const cl = ro.client;
      await refusedWith(
        cl.call((cb) => cl.sftp.open(R('ro.txt'), 'w', cb)),
        SFTP_STATUS.PERMISSION_DENIED,
        /read-only/,
      );
      await refusedWith(
        cl.call((cb) => cl.sftp.open(R('sub', 'file.txt'), 'r+', cb)),
        SFTP_STATUS.PERMISSION_DENIED,
      );
      await refusedWith(
        cl.call((cb) => cl.sftp.mkdir(R('ro-dir'), cb)),
        SFTP_STATUS.PERMISSION_DENIED,
      );
      await refusedWith(
        cl.call((cb) => cl.sftp.unlink(R('old.txt'), cb)),
        SFTP_STATUS.PERMISSION_DENIED,
      );
      await refusedWith(
        cl.call((cb) => cl.sftp.setstat(R('old.txt'), { mode: 0o600 }, cb)),
        SFTP_STATUS.PERMISSION_DENIED,
      );
      await refusedWith(
        cl.call((cb) => cl.sftp.ext_openssh_rename(R('old.txt'), R('x.txt'), cb)),
        SFTP_STATUS.PERMISSION_DENIED,
      );
      await refusedWith(
        cl.call((cb) => cl.sftp.symlink('x', R('ro-link'), cb)),
        SFTP_STATUS.PERMISSION_DENIED,
      );
      const h = await cl.call<Buffer>((cb) => cl.sftp.open(R('sub', 'file.txt'), 'r', cb));
      const buf = Buffer.alloc(64);
      const n = await cl.call<number>((cb) => cl.sftp.read(h, buf, 0, 64, 0, (err, bytes) => cb(err, bytes)));
      assert.equal(buf.toString('utf8', 0, n), 'inside\n');
      await cl.call((cb) => cl.sftp.close(h, cb));
      const vfs = await cl.call<{ f_flag: number }>((cb) => cl.sftp.ext_openssh_statvfs(root, cb as never));
      assert.equal(vfs.f_flag & 1, 1, 'ST_RDONLY');
      assert.equal(fs.existsSync(path.join(root, 'ro.txt')), false);
    } finally {
      ro.client.end();
      await ro.session.closed;
    }
  });

  test('a guest path other than the host path (the Windows layout) maps below the host folder', async () => {
    const guestRoot = '/mnt/host/c/Users/me';
    const w = await connect(root, { remoteRoot: guestRoot });
    try {
      const cl = w.client;
      assert.equal((await cl.call<SftpStats>((cb) => cl.sftp.stat(`${guestRoot}/sub/file.txt`, cb))).size, 7);
      assert.equal(await cl.call<string>((cb) => cl.sftp.realpath(`${guestRoot}/sub/../inlink`, cb)), `${guestRoot}/sub/file.txt`);
      // The host's own path is not the guest's name for the share.
      await refusedWith(
        cl.call<SftpStats>((cb) => cl.sftp.stat(R('sub', 'file.txt'), cb)),
        SFTP_STATUS.PERMISSION_DENIED,
      );
      await refusedWith(
        cl.call<SftpStats>((cb) => cl.sftp.stat('/mnt/host/c/Users', cb)),
        SFTP_STATUS.PERMISSION_DENIED,
      );
    } finally {
      w.client.end();
      await w.session.closed;
    }
  });

  test('the session ends with the stream and closes what the guest left open', async () => {
    const s = await connect(root);
    await s.client.call<Buffer>((cb) => s.client.sftp.open(R('sub', 'file.txt'), 'r', cb));
    await s.client.call<Buffer>((cb) => s.client.sftp.opendir(R('sub'), cb));
    assert.equal(s.session.stats().openHandles, 2);
    s.client.end();
    await s.session.closed;
    assert.equal(s.session.stats().openHandles, 0);
  });

  test('a missing shared folder is a user-facing error', async () => {
    const [a] = duplexPair();
    await assert.rejects(serveSftp(a, { root: path.join(tmp.dir, 'nope'), log: silentLogger() }), (err: unknown) => isBerthError(err, 'INVALID_HOST_PATH'));
  });

  test('errno codes map to SFTP statuses the way OpenSSH maps them', () => {
    const e = (code: string) => Object.assign(new Error(code), { code });
    assert.equal(statusFor(e('ENOENT'))[0], SFTP_STATUS.NO_SUCH_FILE);
    assert.equal(statusFor(e('EACCES'))[0], SFTP_STATUS.PERMISSION_DENIED);
    assert.equal(statusFor(e('EPERM'))[0], SFTP_STATUS.PERMISSION_DENIED);
    assert.equal(statusFor(e('EEXIST'))[0], SFTP_STATUS.FAILURE);
    assert.equal(statusFor(e('ENOTEMPTY'))[0], SFTP_STATUS.FAILURE);
    assert.equal(statusFor(e('ENOSPC'))[0], SFTP_STATUS.FAILURE);
    assert.equal(statusFor(e('ENOSYS'))[0], SFTP_STATUS.OP_UNSUPPORTED);
  });

  test('sshfsCommand: the options, one shell word per path, ro for read-only shares', async () => {
    assert.equal(sshfsCommand('/Users/me', '/Users/me'), `sshfs -o slave,${SSHFS_OPTIONS.join(',')} :/Users/me /Users/me`);
    for (const o of ['allow_other', 'idmap=user', 'no_contain_symlinks', 'dcache_timeout=1']) assert.ok(SSHFS_OPTIONS.includes(o), o);
    assert.ok(!SSHFS_OPTIONS.includes('default_permissions'));
    const odd = '/Users/me/My Project/it\'s "here" $HOME';
    const r = await sh(`set -- ${sshfsCommand(odd, odd)}; printf '%s\\n' "$@"`);
    assert.deepEqual(r.stdout.split('\n').slice(0, -1), ['sshfs', '-o', `slave,${SSHFS_OPTIONS.join(',')}`, `:${odd}`, odd]);
    assert.match(sshfsCommand('/a', '/a', { readOnly: true }), /,ro /);
    assert.throws(
      () => sshfsCommand('relative', '/a'),
      (err: unknown) => isBerthError(err, 'INVALID_HOST_PATH'),
    );
  });

  test('no synchronous fs call anywhere on the serving path', () => {
    for (const f of ['sftp-server.ts', 'share-jail.ts', 'sftp-channel.ts', 'sftp-handles.ts', 'sftp-open.ts', 'sftp-attrs.ts']) {
      const src = fs.readFileSync(path.join(ROOT, 'app', 'engine', 'share', f), 'utf8');
      assert.doesNotMatch(src, /\w+Sync\s*\(/, `${f} must stay async (a sync call can deadlock a mount served by this process)`);
    }
  });
});

// ---------------------------------------------------------------------------
const noSshfs = sshfsUnavailable();
const notRoot = canSwitchUser() ? false : 'needs root to act as a container user with another uid';

if (noSshfs) {
  // Counted as a skip, with the reason in the report (never silent).
  console.log(`# sftp-server: sshfs mount tests skipped: ${noSshfs}`);
  test('through a real `sshfs -o slave` mount', { skip: `cannot mount locally: ${noSshfs}` }, () => undefined);
} else
  describe('through a real `sshfs -o slave` mount', () => {
    const tmp = shortTempDir('sshfs');
    const root = path.join(tmp.dir, 'share');
    const mnt = path.join(tmp.dir, 'mnt');
    const outside = path.join(tmp.dir, 'outside');
    const M = (...p: string[]) => path.join(mnt, ...p);
    const H = (...p: string[]) => path.join(root, ...p);
    const mounts: LocalMount[] = [];
    const cleanups: (() => Promise<unknown>)[] = [];
    let m: LocalMount;

    before(async () => {
      for (const d of [root, mnt, outside]) fs.mkdirSync(d, { recursive: true });
      fs.chmodSync(tmp.dir, 0o755); // the "container user" must reach the mount point
      fs.writeFileSync(path.join(outside, 'secret.txt'), 'host secret\n');
      m = await mountLocal(root, mnt);
      mounts.push(m);
    });
    after(async () => {
      // Always unmount, whatever failed, before removing the folders.
      for (const x of mounts) await x.unmount().catch((err) => console.log(`# unmount ${x.mountPoint}: ${err}`));
      for (const c of cleanups) await c().catch((err) => console.log(`# cleanup: ${err}`));
      tmp.cleanup();
    });

    test('over a real ssh2 exec channel (GuestSession.openExec), the way the engine runs it', async () => {
      const client = newEd25519Pair();
      const hostKey = newEd25519Pair();
      const guest = await startExecGuest({ hostPrivateKey: hostKey.private, clientPublicKey: client.public });
      const gs = new GuestSession({
        host: '127.0.0.1',
        port: guest.port,
        privateKey: client.private,
        hostPublicKey: hostKey.public,
        log: silentLogger(),
        vmAlive: () => true,
      });
      const mnt4 = path.join(tmp.dir, 'mnt-ssh');
      await fsp.mkdir(mnt4);
      const cleanup = async () => {
        if (await isMounted(mnt4)) await sh(`${fusermount()} -uz ${mnt4}`);
        gs.close();
        await guest.close();
      };
      cleanups.push(cleanup);
      await gs.connect(5000);
      const ch = await gs.openExec(sshfsCommand(root, mnt4));
      let stderr = '';
      ch.stderr.on('data', (d: Buffer) => (stderr += d));
      const served = await serveSftp(ch, { root, log: silentLogger() });
      for (let i = 0; !(await isMounted(mnt4)); i++) {
        assert.ok(i < 400, `sshfs over ssh did not mount: ${stderr}`);
        await sleep(25);
      }
      const data = crypto.randomBytes(2 * 1024 * 1024 + 3);
      await fsp.writeFile(path.join(mnt4, 'over-ssh.bin'), data);
      assert.ok((await fsp.readFile(H('over-ssh.bin'))).equals(data));
      assert.ok((await fsp.readFile(path.join(mnt4, 'over-ssh.bin'))).equals(data));
      assert.ok((await fsp.readdir(mnt4)).includes('over-ssh.bin'));
      assert.equal(guest.commands[0], sshfsCommand(root, mnt4));
      // Unmounting in the guest ends sshfs, the channel, and the session.
      assert.equal((await sh(`${fusermount()} -u ${mnt4}`)).code, 0);
      await served.closed;
      assert.equal(served.stats().openHandles, 0);
      await cleanup();
      cleanups.splice(cleanups.indexOf(cleanup), 1);
    });

    test('what the guest writes the host reads, and the other way round', async () => {
      const data = crypto.randomBytes(3 * 1024 * 1024 + 17);
      await fsp.writeFile(M('from-guest.bin'), data);
      assert.ok((await fsp.readFile(H('from-guest.bin'))).equals(data));
      assert.ok((await fsp.readFile(M('from-guest.bin'))).equals(data));

      await fsp.writeFile(H('from-host.txt'), 'v1\n');
      assert.equal(await fsp.readFile(M('from-host.txt'), 'utf8'), 'v1\n');
      // A host edit that grows the file: seen once the caches have expired (the
      // guest kernel's attributes, 1 s, and sshfs's, dcache_timeout=1).
      await fsp.writeFile(H('from-host.txt'), 'version two, longer\n');
      await sleep(2100);
      assert.equal(await fsp.readFile(M('from-host.txt'), 'utf8'), 'version two, longer\n');

      // O_APPEND lands at the real end even when the host appended meanwhile.
      await fsp.appendFile(M('log.txt'), 'guest 1\n');
      await fsp.appendFile(H('log.txt'), 'host 1\n');
      await fsp.appendFile(M('log.txt'), 'guest 2\n');
      assert.equal(await fsp.readFile(H('log.txt'), 'utf8'), 'guest 1\nhost 1\nguest 2\n');
    });

    test('permissions, chmod and the executable bit', async () => {
      await fsp.writeFile(M('run.sh'), '#!/bin/sh\necho ran\n', { mode: 0o644 });
      assert.equal((await fsp.stat(H('run.sh'))).mode & 0o777, 0o644);
      const denied = await sh(M('run.sh'));
      assert.equal(denied.code, 126, 'a file without an x bit does not run');
      await fsp.chmod(M('run.sh'), 0o755);
      assert.equal((await fsp.stat(H('run.sh'))).mode & 0o777, 0o755);
      assert.equal((await sh(M('run.sh'))).stdout, 'ran\n');

      await fsp.writeFile(H('host-mode.txt'), 'x', { mode: 0o640 });
      await fsp.chmod(H('host-mode.txt'), 0o751);
      assert.equal((await fsp.stat(M('host-mode.txt'))).mode & 0o7777, 0o751);
    });

    test("a container's non-root user reads and writes; what it creates is the host user's", { skip: notRoot }, async () => {
      await fsp.writeFile(H('host-owned.txt'), 'host data\n', { mode: 0o644 });
      const r = await sh(
        `cd ${mnt} && cat host-owned.txt && echo guest >> host-owned.txt && echo new > by-other-user.txt && mkdir made-dir && id -u`,
        OTHER_USER,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `host data\n${OTHER_USER.uid}\n`);
      assert.equal(await fsp.readFile(H('host-owned.txt'), 'utf8'), 'host data\nguest\n');
      for (const f of ['by-other-user.txt', 'made-dir']) {
        const st = await fsp.stat(H(f));
        assert.deepEqual([st.uid, st.gid], [process.getuid!(), process.getgid!()], `${f} belongs to the host user`);
      }
      // chown in a container (tar, cp -a, npm as root) succeeds and changes nothing.
      const chown = await sh(`chown 1234:1234 ${M('by-other-user.txt')}`);
      assert.equal(chown.code, 0, chown.stderr);
      assert.equal((await fsp.stat(H('by-other-user.txt'))).uid, process.getuid!());
    });

    test('idmap=user: the host user shows as the sshfs user in the guest, others keep their uid', { skip: notRoot }, async () => {
      // The host user here is root, so make a share owned by "someone" (4321)
      // to see the mapping: sshfs learns the host user from the share root.
      const root2 = path.join(tmp.dir, 'share2');
      const mnt2 = path.join(tmp.dir, 'mnt2');
      await fsp.mkdir(root2);
      await fsp.mkdir(mnt2);
      await fsp.writeFile(path.join(root2, 'mine.txt'), 'x');
      await fsp.writeFile(path.join(root2, 'theirs.txt'), 'y');
      await fsp.chown(root2, 4321, 4321);
      await fsp.chown(path.join(root2, 'mine.txt'), 4321, 4321);
      await fsp.chown(path.join(root2, 'theirs.txt'), 777, 777);
      const m2 = await mountLocal(root2, mnt2);
      mounts.push(m2);
      const mine = await fsp.stat(path.join(mnt2, 'mine.txt'));
      const theirs = await fsp.stat(path.join(mnt2, 'theirs.txt'));
      assert.deepEqual([mine.uid, mine.gid], [process.getuid!(), process.getgid!()]);
      assert.deepEqual([theirs.uid, theirs.gid], [777, 777]);
      await m2.unmount();
    });

    test('symlinks inside the share, relative with .., absolute, and pointing out of it', async () => {
      await fsp.writeFile(M('target.txt'), 'target\n');
      await fsp.symlink('target.txt', M('link'));
      assert.equal(await fsp.readlink(H('link')), 'target.txt', 'link and target not swapped');
      assert.equal(await fsp.readFile(M('link'), 'utf8'), 'target\n');

      // node_modules/.bin style: relative with .. (Debian's sshfs hides these
      // unless no_contain_symlinks).
      await fsp.mkdir(M('nm', 'pkg'), { recursive: true });
      await fsp.mkdir(M('nm', '.bin'));
      await fsp.writeFile(M('nm', 'pkg', 'cli.js'), 'cli\n');
      await fsp.symlink('../pkg/cli.js', M('nm', '.bin', 'cli'));
      assert.equal(await fsp.readlink(M('nm', '.bin', 'cli')), '../pkg/cli.js');
      assert.equal(await fsp.readFile(M('nm', '.bin', 'cli'), 'utf8'), 'cli\n');

      // An absolute link made on the host comes through verbatim: in the guest
      // the share sits at the same path, so it points into the share there too.
      await fsp.symlink(H('target.txt'), H('abs-in'));
      assert.equal(await fsp.readlink(M('abs-in')), H('target.txt'));

      // A link out of the share is shown as a link; following it happens in
      // the guest's own file system, the server never serves what is outside.
      const refused = m.session.stats().refused;
      await fsp.symlink(outside, H('out'));
      assert.ok((await fsp.lstat(M('out'))).isSymbolicLink());
      assert.equal(await fsp.readlink(M('out')), outside);
      assert.equal(m.session.stats().refused, refused);
    });

    test('a path outside the share gets a clear refusal through sshfs too (follow_symlinks mount)', async () => {
      // sshfs normally never asks for such a path (the guest kernel follows
      // links itself); with follow_symlinks it asks the server to, and the
      // server refuses: EACCES in the guest, a warning in the engine log.
      await fsp.symlink(path.join(outside, 'secret.txt'), H('out-file')).catch(() => undefined);
      const mnt3 = path.join(tmp.dir, 'mnt3');
      await fsp.mkdir(mnt3);
      const m3 = await mountLocal(root, mnt3, { extraOptions: ['follow_symlinks'] });
      mounts.push(m3);
      await assert.rejects(fsp.readFile(path.join(mnt3, 'out-file'), 'utf8'), { code: 'EACCES' });
      assert.equal(await fsp.readFile(path.join(mnt3, 'link'), 'utf8'), 'target\n', 'links inside still work');
      assert.ok(m3.session.stats().refused >= 1);
      await m3.unmount();
    });

    test('rename over an existing file (posix-rename@openssh.com)', async () => {
      await fsp.writeFile(M('a.txt'), 'A\n');
      await fsp.writeFile(M('b.txt'), 'B\n');
      await fsp.rename(M('a.txt'), M('b.txt'));
      assert.equal(await fsp.readFile(H('b.txt'), 'utf8'), 'A\n');
      assert.equal(fs.existsSync(H('a.txt')), false);
      assert.equal(await fsp.readFile(M('b.txt'), 'utf8'), 'A\n');
      assert.ok((m.session.stats().byOp['posix-rename@openssh.com'] ?? 0) >= 1);
    });

    test('files larger than 4 GiB: one byte at 5 GiB in a sparse file', async () => {
      const fh = await fsp.open(M('sparse.bin'), 'w+');
      try {
        await fh.write(Buffer.from('Z'), 0, 1, 5 * GiB);
        await fh.sync();
      } finally {
        await fh.close();
      }
      assert.equal((await fsp.stat(M('sparse.bin'))).size, 5 * GiB + 1);
      assert.equal((await fsp.stat(H('sparse.bin'))).size, 5 * GiB + 1);
      const rd = await fsp.open(M('sparse.bin'), 'r');
      try {
        const buf = Buffer.alloc(4);
        const { bytesRead } = await rd.read(buf, 0, 4, 5 * GiB);
        assert.equal(bytesRead, 1);
        assert.equal(buf.toString('latin1', 0, 1), 'Z');
        const zero = Buffer.alloc(4, 1);
        await rd.read(zero, 0, 4, 4 * GiB + 12345);
        assert.deepEqual([...zero], [0, 0, 0, 0]);
      } finally {
        await rd.close();
      }
      await fsp.unlink(M('sparse.bin'));
    });

    test('names with spaces and non-ASCII characters', async () => {
      const dir = 'ünï cödé dir';
      await fsp.mkdir(M(dir));
      const names = ['with space.txt', 'naïve café.txt', '日本語 ファイル.txt', 'emoji 🚢.txt', `quote's "double" $x.txt`];
      for (const n of names) await fsp.writeFile(M(dir, n), n);
      assert.deepEqual((await fsp.readdir(H(dir))).sort(), [...names].sort());
      for (const n of names) assert.equal(await fsp.readFile(H(dir, n), 'utf8'), n);
      await fsp.writeFile(H(dir, 'hôst ñame.txt'), 'from host');
      assert.ok((await fsp.readdir(M(dir))).includes('hôst ñame.txt'));
      assert.equal(await fsp.readFile(M(dir, 'hôst ñame.txt'), 'utf8'), 'from host');
    });

    test('a folder of 1000 entries: mkdir, create, readdir, rmdir', async () => {
      const before = m.session.stats().byOp.READDIR ?? 0;
      await fsp.mkdir(M('many'));
      for (let i = 0; i < 1000; i++) await fsp.writeFile(M('many', `f${String(i).padStart(4, '0')}`), String(i));
      const seen = (await fsp.readdir(M('many'))).sort();
      assert.equal(seen.length, 1000);
      assert.equal(seen[0], 'f0000');
      assert.equal(seen[999], 'f0999');
      assert.equal((await fsp.readdir(H('many'))).length, 1000);
      assert.ok((m.session.stats().byOp.READDIR ?? 0) - before >= 10, 'listed in batches');
      // SFTP v3 has no ENOTEMPTY: sshfs reads the server's FAILURE to RMDIR as one.
      await assert.rejects(fsp.rmdir(M('many')), { code: 'ENOTEMPTY' });
      for (const f of seen) await fsp.unlink(M('many', f));
      await fsp.rmdir(M('many'));
      assert.equal(fs.existsSync(H('many')), false);
    });

    test('truncate (path and open file) and utimes', async () => {
      await fsp.writeFile(M('trunc.txt'), 'hello world');
      await fsp.truncate(M('trunc.txt'), 5);
      assert.equal(await fsp.readFile(H('trunc.txt'), 'utf8'), 'hello');
      const fh = await fsp.open(M('trunc.txt'), 'r+');
      await fh.truncate(8);
      await fh.close();
      assert.deepEqual(await fsp.readFile(H('trunc.txt')), Buffer.from('hello\0\0\0'));

      await fsp.utimes(M('trunc.txt'), 1_000_000_000, 1_500_000_000);
      const st = await fsp.stat(H('trunc.txt'));
      assert.equal(Math.floor(st.mtimeMs / 1000), 1_500_000_000);
      assert.equal(Math.floor(st.atimeMs / 1000), 1_000_000_000);
    });

    test('hard links (hardlink@openssh.com)', async () => {
      await fsp.writeFile(M('h1.txt'), 'one');
      await fsp.link(M('h1.txt'), M('h2.txt'));
      const [a, b] = [await fsp.stat(H('h1.txt')), await fsp.stat(H('h2.txt'))];
      assert.equal(a.ino, b.ino);
      assert.equal(b.nlink, 2);
      await fsp.writeFile(M('h2.txt'), 'two');
      assert.equal(await fsp.readFile(H('h1.txt'), 'utf8'), 'two');
      assert.ok((m.session.stats().byOp['hardlink@openssh.com'] ?? 0) >= 1);
    });

    test('df: statvfs reports the host file system', async () => {
      const [guest, host] = [await fsp.statfs(mnt), await fsp.statfs(root)];
      assert.equal(guest.bsize, host.bsize);
      assert.equal(guest.blocks, host.blocks);
      const df = await sh(`df -P ${mnt}`);
      assert.equal(df.code, 0, df.stderr);
      assert.ok((m.session.stats().byOp['statvfs@openssh.com'] ?? 0) >= 1);
    });

    test('fsync reaches the host (fsync@openssh.com)', async () => {
      const fh = await fsp.open(M('synced.txt'), 'w');
      try {
        await fh.write('flushed');
        await fh.sync();
        assert.equal(await fsp.readFile(H('synced.txt'), 'utf8'), 'flushed', 'on the host before close');
      } finally {
        await fh.close();
      }
      assert.ok((m.session.stats().byOp['fsync@openssh.com'] ?? 0) >= 1);
    });

    test('unlink of an open file: the open file keeps working, nothing is left behind', async (t) => {
      const fh = await fsp.open(M('open-unlinked.txt'), 'w+');
      try {
        await fh.write('still here', 0);
        await fsp.unlink(M('open-unlinked.txt'));
        await assert.rejects(fsp.access(M('open-unlinked.txt')), { code: 'ENOENT' });
        const buf = Buffer.alloc(10);
        await fh.read(buf, 0, 10, 0);
        assert.equal(buf.toString(), 'still here');
        // libfuse keeps the data under a hidden name until the last close.
        const hidden = (await fsp.readdir(root)).filter((n) => n.startsWith('.fuse_hidden'));
        t.diagnostic(`while open, the host folder has: ${hidden.join(', ') || '(nothing)'}`);
        assert.equal(fs.existsSync(H('open-unlinked.txt')), false);
      } finally {
        await fh.close();
      }
      let left: string[] = [];
      for (let i = 0; i < 40; i++) {
        left = (await fsp.readdir(root)).filter((n) => n.startsWith('.fuse_hidden'));
        if (!left.length) break;
        await sleep(50);
      }
      assert.deepEqual(left, [], 'no .fuse_hidden file left after close');
    });

    test('O_EXCL create of an existing file fails with EEXIST', async () => {
      await fsp.writeFile(M('exists.txt'), 'x');
      await assert.rejects(fsp.open(M('exists.txt'), 'wx'), { code: 'EEXIST' });
      await fsp.writeFile(H('exists-host.txt'), 'made on the host');
      await assert.rejects(fsp.open(M('exists-host.txt'), 'wx'), { code: 'EEXIST' });
      assert.equal(await fsp.readFile(H('exists-host.txt'), 'utf8'), 'made on the host');
    });

    test('locks stay in the guest: sshfs does not forward flock', { skip: hasCommand('flock') ? false : 'needs flock (util-linux)' }, async () => {
      await fsp.writeFile(M('lockfile'), '');
      // Its own process group: flock, its shell and the sleep all go at the end.
      const holder = spawn('flock', [M('lockfile'), '-c', 'echo locked; sleep 30'], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
      try {
        await new Promise<void>((resolve, reject) => {
          holder.stdout.once('data', () => resolve());
          holder.once('exit', (code) => reject(new Error(`flock exited ${code}`)));
        });
        // Another process on the mount side sees the lock (the guest kernel keeps it)...
        assert.equal((await sh(`flock -n ${M('lockfile')} true`)).code, 1);
        // ...the host does not: the lock never left the mount.
        assert.equal((await sh(`flock -n ${H('lockfile')} true`)).code, 0);
      } finally {
        const exited = new Promise((r) => (holder.exitCode !== null ? r(undefined) : holder.once('exit', r)));
        process.kill(-holder.pid!, 'SIGKILL');
        await exited;
        holder.stdout.destroy();
      }
    });

    test('the event loop keeps turning during a large transfer', async (t) => {
      const delay = monitorEventLoopDelay({ resolution: 10 });
      delay.enable();
      let ticks = 0;
      const timer = setInterval(() => ticks++, 20);
      const t0 = performance.now();
      let r;
      try {
        r = await sh(`dd if=/dev/zero of=${M('big.bin')} bs=1M count=256 conv=fsync 2>&1 && cat ${M('big.bin')} > /dev/null`, {
          timeoutMs: 120_000,
        });
      } finally {
        clearInterval(timer);
        delay.disable();
      }
      const ms = performance.now() - t0;
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal((await fsp.stat(H('big.bin'))).size, 256 * 1024 * 1024);
      const maxDelayMs = delay.max / 1e6;
      t.diagnostic(`256 MiB written and read back in ${ms.toFixed(0)} ms; ${ticks} timer ticks; event loop delay max ${maxDelayMs.toFixed(1)} ms`);
      assert.ok(ticks >= ms / 20 / 4, `timer fired ${ticks} times in ${ms.toFixed(0)} ms`);
      assert.ok(maxDelayMs < 1000, `event loop blocked for ${maxDelayMs.toFixed(0)} ms`);
      await fsp.unlink(H('big.bin'));
    });
  });
