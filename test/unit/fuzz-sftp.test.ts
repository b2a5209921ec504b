/**
 * A hostile guest on the reverse-sshfs channel: malformed framing (length
 * words of 0, 1-4, >= 2^31, past the limit), truncated and garbage packets,
 * random request types, and well-formed requests with hostile contents
 * (paths out of the share, symlinks planted to the outside, forged handles,
 * directories renamed and replaced by a symlink while a handle is open,
 * setuid modes, FIFOs), in random chunks, against the real SFTP server in a
 * process of its own (what the engine runs): on a share, on a share nested
 * in it, and on the portable (macOS) path walk.
 *
 * After every run: the server process is still up and serves a new
 * session; nothing outside the share changed (content, mode, size, owner,
 * times); no file in the share is setuid or setgid, and no share root is
 * group- or other-writable.
 *
 * Seeded: the seed is printed; BERTH_FUZZ_SEED=<seed> replays a run (run i
 * uses seed + i).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fuzzSeed, randomString, rng, type Rng } from '../helpers/fuzz.js';
import { FXP, initPacket, packet, replyReader, type Attrs, type Field } from '../helpers/sftp-packets.js';
import { startSftpProcess, type SftpProcess } from '../helpers/sftp-process.js';
import { shortTempDir } from '../helpers/temp.js';

const SEED = fuzzSeed('sftp server');
/** Runs per test run (fixed, so CI does the same amount of work every time). */
const RUNS = 100;
const OPS_PER_RUN = 60;

const tmp = shortTempDir('fzs');
const socks = shortTempDir('fzs-sock');
const share = path.join(tmp.dir, 'share');
const nested = path.join(share, 'nested');
const outside = path.join(tmp.dir, 'outside');
let proc: SftpProcess;

/** The share as every run starts it. */
function buildShare() {
  // Emptied, not removed: the folder around it (outside the share) must not change.
  if (fs.existsSync(share)) for (const n of fs.readdirSync(share)) fs.rmSync(path.join(share, n), { recursive: true, force: true });
  fs.mkdirSync(path.join(share, 'sub', 'deep'), { recursive: true, mode: 0o755 });
  fs.chmodSync(share, 0o755);
  fs.writeFileSync(path.join(share, 'sub', 'file.txt'), 'inside\n');
  fs.writeFileSync(path.join(share, 'sub', 'deep', 'x'), 'x');
  fs.mkdirSync(nested, { mode: 0o755 });
  fs.writeFileSync(path.join(nested, 'n.txt'), 'nested\n');
  fs.symlinkSync('sub/file.txt', path.join(share, 'in-link'));
  fs.symlinkSync('../outside', path.join(share, 'out-rel'));
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(share, 'out-abs'));
  fs.symlinkSync(path.join(outside, 'missing'), path.join(share, 'out-missing'));
  execFileSync('mkfifo', [path.join(share, 'fifo')]);
}

function buildOutside() {
  fs.mkdirSync(path.join(outside, 'dir'), { recursive: true });
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'host secret\n', { mode: 0o600 });
  fs.writeFileSync(path.join(outside, 'dir', 'inner.txt'), 'inner\n', { mode: 0o644 });
  fs.writeFileSync(path.join(outside, 'tool'), '#!/bin/sh\n', { mode: 0o755 });
  fs.chmodSync(path.join(outside, 'secret.txt'), 0o600);
}

/** Everything about the tree outside the share that a write could change. */
function snapshot(withAtime: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const walk = (p: string) => {
    const st = fs.lstatSync(p);
    const rec: Record<string, unknown> = { mode: st.mode, size: st.size, uid: st.uid, gid: st.gid, ino: st.ino, mtime: st.mtimeMs, ctime: st.ctimeMs };
    if (withAtime) rec.atime = st.atimeMs;
    if (st.isFile()) rec.sha = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    if (st.isSymbolicLink()) rec.link = fs.readlinkSync(p);
    out[path.relative(tmp.dir, p) || '.'] = rec;
    if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) if (path.join(p, n) !== share) walk(path.join(p, n));
  };
  walk(tmp.dir);
  return out;
}
let withAtime = true;
let baseline: Record<string, unknown>;

/**
 * Setuid/setgid files anywhere in the share, and share roots open to
 * group/other writes. A nested share's root is only checked after a run on
 * that share: to the parent share's session it is an ordinary folder.
 */
function shareViolations(roots = [share, nested]): string[] {
  const bad: string[] = [];
  for (const root of roots) {
    const st = fs.lstatSync(root, { throwIfNoEntry: false });
    if (st?.isDirectory() && st.mode & 0o022) bad.push(`${path.relative(tmp.dir, root)} is mode ${(st.mode & 0o7777).toString(8)}`);
  }
  const walk = (p: string) => {
    const st = fs.lstatSync(p);
    if (!st.isSymbolicLink() && st.mode & 0o6000) bad.push(`${path.relative(tmp.dir, p)} is mode ${(st.mode & 0o7777).toString(8)}`);
    if (st.isDirectory()) for (const n of fs.readdirSync(p)) walk(path.join(p, n));
  };
  walk(share);
  return bad;
}

before(async () => {
  buildOutside();
  buildShare();
  fs.chmodSync(tmp.dir, 0o755);
  // Reading a file may set its atime once (relatime); settle that, then see
  // whether this file system updates it on every read (then atimes say nothing).
  snapshot(true);
  const a = snapshot(true);
  const b = snapshot(true);
  withAtime = JSON.stringify(a) === JSON.stringify(b);
  if (!withAtime) console.log('# fuzz-sftp: this file system updates atime on every read; atimes are not compared');
  baseline = snapshot(withAtime);
  // 0: the share, 1: a share nested in it, 2: the share again on the portable (macOS) path walk.
  proc = await startSftpProcess(socks.dir, [{ root: share }, { root: nested }, { root: share, pathWalk: 'portable' }]);
});
after(async () => {
  await proc?.close();
  // Unblock anything a broken server left waiting on the FIFO, then clean up.
  try {
    const fd = fs.openSync(path.join(share, 'fifo'), fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    fs.closeSync(fd);
  } catch {
    /* gone */
  }
  tmp.cleanup();
  socks.cleanup();
});

/** A fresh session on the process answers INIT and a STAT of its root. */
async function healthy(which = 0): Promise<string | undefined> {
  const dead = async () => {
    await new Promise((res) => setTimeout(res, 100));
    return `the server process ${proc.alive() ? 'stopped accepting' : 'died'}: ${proc.stderr().slice(-1500)}`;
  };
  if (!proc.alive()) return dead();
  let sock: net.Socket;
  try {
    sock = await proc.connect(which);
  } catch {
    return dead();
  }
  const r = replyReader(sock);
  sock.write(initPacket());
  sock.write(packet(FXP.STAT, { u32: 7 }, { str: which === 1 ? nested : share }));
  const reply = await r.reply(7, 5000);
  sock.destroy();
  if (!proc.alive()) return dead();
  if (reply?.type !== FXP.ATTRS) return `a new session got no answer to STAT (${reply ? `type ${reply.type}` : 'nothing'})`;
  return undefined;
}

/** Write, and wait for the socket to take more (or to be gone: the server may hang up on bad input). */
async function sendAndWait(sock: net.Socket, bytes: Buffer) {
  if (sock.destroyed || sock.writableEnded) return;
  if (sock.write(bytes)) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      sock.off('drain', done).off('close', done).off('error', done);
      resolve();
    };
    sock.on('drain', done).on('close', done).on('error', done);
  });
}

// ---------------------------------------------------------------------------

test('one 14-byte packet with a length word >= 2^31 closes that session only; the server process stays up', async () => {
  for (const len of [0x80000000, 0xfffffff2, 0xffffffff]) {
    const sock = await proc.connect(0);
    const r = replyReader(sock);
    sock.write(initPacket());
    assert.equal((await r.reply(-1))?.type, FXP.VERSION);
    const bad = Buffer.alloc(14);
    bad.writeUInt32BE(len, 0);
    bad[4] = FXP.STAT;
    bad.writeUInt32BE(1, 5);
    sock.write(bad);
    await r.reply(1, 3000);
    for (let i = 0; i < 100 && !r.isEnded(); i++) await new Promise((res) => setTimeout(res, 20));
    assert.ok(r.isEnded(), `length 0x${len.toString(16)}: the session was not closed`);
    sock.destroy();
    assert.equal(await healthy(), undefined);
  }
  // Other impossible lengths: 0, shorter than a request header, past the limit.
  for (const len of [0, 1, 4, 256 * 1024 + 1, 0x7fffffff]) {
    const sock = await proc.connect(0);
    const r = replyReader(sock);
    sock.write(initPacket());
    const bad = Buffer.alloc(4 + 16);
    bad.writeUInt32BE(len, 0);
    sock.write(bad);
    for (let i = 0; i < 100 && !r.isEnded(); i++) await new Promise((res) => setTimeout(res, 20));
    assert.ok(r.isEnded(), `length ${len}: the session was not closed`);
    sock.destroy();
    assert.equal(await healthy(), undefined);
  }
  assert.deepEqual(snapshot(withAtime), baseline);
  assert.deepEqual(shareViolations(), []);
});

// ---------------------------------------------------------------------------

interface RunState {
  r: Rng;
  root: string;
  handles: Buffer[];
  nextId: number;
  names: string[];
}

const ODD_MODES = [0o777, 0o4755, 0o2755, 0o6777, 0o7777, 0o1777, 0o666, 0o000, 0xffffffff, 0o170777, 0o100644];
const ODD_SIZES: (number | bigint)[] = [0, 1, 7, 2 ** 31, 2 ** 32, 2n ** 63n, 2n ** 64n - 1n];
const ODD_TIMES = [0, 1, 2 ** 31, 2 ** 32 - 1, 1_500_000_000];

function pathFor(s: RunState): string {
  const { r, root } = s;
  const R = (...p: string[]) => [root, ...p].join('/');
  const pool = [
    root,
    '.',
    '',
    R('sub'),
    R('sub', 'file.txt'),
    R('sub', 'deep', 'x'),
    R('in-link'),
    R('out-rel'),
    R('out-rel', 'secret.txt'),
    R('out-rel', 'dir', 'inner.txt'),
    R('out-abs'),
    R('out-missing'),
    R('fifo'),
    R('nested'),
    R('nested', 'n.txt'),
    R('..', 'outside', 'secret.txt'),
    R('sub', '..', '..', 'outside'),
    '../outside/secret.txt',
    'out-rel/secret.txt',
    '/etc/passwd',
    path.join(outside, 'secret.txt'),
    outside,
    `${R('sub')}\0/x`,
    R('a'.repeat(300)),
    ...s.names.map((n) => R(n)),
    ...s.names.map((n) => R(n, 'secret.txt')),
  ];
  if (r.bool(0.1)) return randomString(r, 30);
  if (r.bool(0.15)) {
    const n = `n${r.int(6)}`;
    if (!s.names.includes(n)) s.names.push(n);
    return r.bool(0.7) ? R(n) : R('sub', n);
  }
  return r.pick(pool);
}

function linkTarget(s: RunState): string {
  return s.r.pick([
    outside,
    path.join(outside, 'secret.txt'),
    path.join(outside, 'dir'),
    '../outside',
    '../outside/secret.txt',
    '..',
    '.',
    '/',
    'sub',
    s.root,
    path.join(s.root, 'fifo'),
    '../../..',
    randomString(s.r, 20),
  ]);
}

function attrsFor(r: Rng): Attrs {
  const a: Attrs = {};
  if (r.bool(0.4)) a.size = r.pick(ODD_SIZES);
  if (r.bool(0.6)) a.mode = r.pick(ODD_MODES);
  if (r.bool(0.2)) [a.uid, a.gid] = [r.int(70000), r.int(70000)];
  if (r.bool(0.3)) [a.atime, a.mtime] = [r.pick(ODD_TIMES), r.pick(ODD_TIMES)];
  return a;
}

function handleFor(s: RunState): Buffer {
  const { r } = s;
  if (s.handles.length && r.bool(0.8)) return r.pick(s.handles);
  return r.pick([Buffer.alloc(0), crypto.randomBytes(4), Buffer.from([0, 0, 0, 1]), Buffer.alloc(256, 1), Buffer.from('handle')]);
}

/** One well-framed request with hostile contents. */
function request(s: RunState): Buffer {
  const { r } = s;
  const id: Field = { u32: s.nextId++ };
  const p = (): Field => ({ str: pathFor(s) });
  const h = (): Field => ({ str: handleFor(s) });
  switch (r.int(19)) {
    case 0:
      return packet(FXP.OPEN, id, p(), { u32: r.bool(0.8) ? r.int(64) : r.int(2 ** 32) }, { attrs: attrsFor(r) });
    case 1:
      return packet(FXP.CLOSE, id, h());
    case 2:
      return packet(FXP.READ, id, h(), { u64: r.pick([0, 1, 2 ** 53, 2n ** 63n, 2n ** 64n - 1n]) }, { u32: r.pick([0, 1, 4096, 65536, 2 ** 31, 2 ** 32 - 1]) });
    case 3:
      return packet(FXP.WRITE, id, h(), { u64: r.pick([0, 3, 2 ** 40, 2n ** 63n - 1n, 2n ** 64n - 1n]) }, { str: crypto.randomBytes(r.int(64)) });
    case 4:
      return packet(FXP.LSTAT, id, p());
    case 5:
      return packet(FXP.FSTAT, id, h());
    case 6:
      return packet(FXP.SETSTAT, id, p(), { attrs: attrsFor(r) });
    case 7:
      return packet(FXP.FSETSTAT, id, h(), { attrs: attrsFor(r) });
    case 8:
      return packet(FXP.OPENDIR, id, p());
    case 9:
      return packet(FXP.READDIR, id, h());
    case 10:
      return packet(FXP.REMOVE, id, p());
    case 11:
      return packet(FXP.MKDIR, id, p(), { attrs: attrsFor(r) });
    case 12:
      return packet(FXP.RMDIR, id, p());
    case 13:
      return packet(FXP.REALPATH, id, p());
    case 14:
      return packet(FXP.STAT, id, p());
    case 15:
      return packet(FXP.RENAME, id, p(), p());
    case 16:
      return packet(FXP.READLINK, id, p());
    case 17:
      // OpenSSH order: target, then the link's own path.
      return packet(FXP.SYMLINK, id, { str: linkTarget(s) }, p());
    default: {
      const name = r.pick([
        'posix-rename@openssh.com',
        'statvfs@openssh.com',
        'fstatvfs@openssh.com',
        'hardlink@openssh.com',
        'fsync@openssh.com',
        'limits@openssh.com',
        randomString(r, 20),
      ]);
      const args = Array.from({ length: r.int(3) }, () => (r.bool(0.3) ? h() : p()));
      return packet(FXP.EXTENDED, id, { str: name }, ...args);
    }
  }
}

/**
 * The swap a root guest races with: open a folder (or a file in it), move
 * the folder, put a link to the outside in its place, use the handle and
 * the old path.
 */
async function swapAttack(s: RunState, sock: net.Socket, replies: ReturnType<typeof replyReader>) {
  const { r, root } = s;
  const dir = r.pick(['sub', 'nested', 'sub/deep']);
  const id0 = s.nextId++;
  const asFile = r.bool(0.3);
  await sendAndWait(
    sock,
    asFile
      ? packet(FXP.OPEN, { u32: id0 }, { str: `${root}/${dir}/file.txt` }, { u32: 1 }, { attrs: {} })
      : packet(FXP.OPENDIR, { u32: id0 }, { str: `${root}/${dir}` }),
  );
  const got = (await replies.reply(id0))?.handle ?? handleFor(s);
  const id = () => ({ u32: s.nextId++ });
  const moved = `moved${r.int(1000)}`;
  const link = r.pick([path.join(outside, 'secret.txt'), outside, '../outside', '../../outside', path.join(outside, 'dir')]);
  await sendAndWait(
    sock,
    Buffer.concat([
      packet(FXP.RENAME, id(), { str: `${root}/${dir}` }, { str: `${root}/${moved}` }),
      packet(FXP.SYMLINK, id(), { str: link }, { str: `${root}/${dir}` }),
      packet(FXP.FSETSTAT, id(), { str: got }, { attrs: { size: r.pick([0, undefined]), mode: r.pick([0o777, 0o6777]), atime: 1, mtime: 1 } }),
      packet(FXP.FSTAT, id(), { str: got }),
      packet(FXP.READDIR, id(), { str: got }),
      packet(FXP.EXTENDED, id(), { str: 'fstatvfs@openssh.com' }, { str: got }),
      packet(FXP.SETSTAT, id(), { str: `${root}/${dir}/secret.txt` }, { attrs: { size: 0, mode: 0o777, atime: 1, mtime: 1 } }),
      packet(FXP.SETSTAT, id(), { str: `${root}/${dir}` }, { attrs: { mode: 0o777 } }),
      packet(FXP.OPEN, id(), { str: `${root}/${dir}/inner.txt` }, { u32: 0x1a }, { attrs: { mode: 0o6777 } }),
    ]),
  );
}

/** Bytes that are not a valid packet. */
function malformed(s: RunState): Buffer {
  const { r } = s;
  switch (r.int(6)) {
    case 0: {
      const b = Buffer.alloc(4 + 10);
      b.writeUInt32BE(r.pick([0x80000000, 0xffffffff, 0xfffffff2, 0, 1, 2, 3, 4, 256 * 1024 + 1, 2 ** 30]), 0);
      b[4] = r.int(256);
      return b;
    }
    case 1: {
      // A known request cut short, with an honest length.
      const full = request(s);
      const body = full.subarray(4, 4 + Math.max(1, r.int(full.length - 4)));
      const len = Buffer.alloc(4);
      len.writeUInt32BE(body.length, 0);
      return Buffer.concat([len, body]);
    }
    case 2:
      return packet(r.int(256), { raw: crypto.randomBytes(r.int(40)) });
    case 3:
      return initPacket(); // a second INIT
    case 4:
      return packet(FXP.EXTENDED, { u32: s.nextId++ }, { str: 'posix-rename@openssh.com' }, { raw: crypto.randomBytes(r.int(12)) });
    default:
      return crypto.randomBytes(1 + r.int(64));
  }
}

async function fuzzRun(seed: number, counts: { requests: number; answered: number; cut: number; which: number }): Promise<string | undefined> {
  const r = rng(seed);
  const which = r.pick([0, 0, 1, 2]);
  counts.which = which;
  const s: RunState = { r, root: which === 1 ? nested : share, handles: [], nextId: 1, names: [] };
  let sock: net.Socket;
  try {
    sock = await proc.connect(which);
  } catch {
    return healthy(which);
  }
  sock.on('error', () => undefined);
  const replies = replyReader(sock);
  await sendAndWait(sock, initPacket());
  for (let op = 0; op < OPS_PER_RUN && !replies.isEnded();) {
    const burst: Buffer[] = [];
    let swap = false;
    for (let k = 1 + r.int(6); k > 0 && op < OPS_PER_RUN; k--, op++) {
      const roll = r.next();
      if (roll < 0.03) burst.push(malformed(s));
      else if (roll < 0.1) swap = true;
      else burst.push(request(s));
    }
    // In random slices: the server must not care how the bytes arrive.
    const bytes = Buffer.concat(burst);
    for (let at = 0; at < bytes.length;) {
      const n = r.bool(0.7) ? bytes.length - at : 1 + r.int(bytes.length - at);
      await sendAndWait(sock, bytes.subarray(at, at + n));
      at += n;
    }
    if (swap && !replies.isEnded()) await swapAttack(s, sock, replies);
    const lastId = s.nextId - 1;
    await replies.reply(lastId, 5000);
    for (const x of replies.replies) if (x.handle && !s.handles.some((h) => h.equals(x.handle!))) s.handles.push(x.handle);
    if (!proc.alive()) break;
  }
  counts.requests += s.nextId - 1;
  counts.answered += replies.replies.filter((x) => x.id > 0).length;
  if (replies.isEnded()) counts.cut++;
  sock.destroy();
  return healthy(which);
}

test(`${RUNS} seeded runs of hostile SFTP sessions: the server stays up, nothing outside the share changes`, { timeout: 10 * 60_000 }, async (t) => {
  let sessions = 0;
  const counts = { requests: 0, answered: 0, cut: 0, which: 0 };
  for (let i = 0; i < RUNS; i++) {
    const seed = (SEED + i) >>> 0;
    const problem = await fuzzRun(seed, counts);
    sessions++;
    assert.equal(problem, undefined, `run ${i} (BERTH_FUZZ_SEED=${SEED}, run seed ${seed}): ${problem}`);
    assert.deepEqual(snapshot(withAtime), baseline, `run ${i} (BERTH_FUZZ_SEED=${SEED}, run seed ${seed}): something outside the share changed`);
    assert.deepEqual(shareViolations(counts.which === 1 ? [share, nested] : [share]), [], `run ${i} (BERTH_FUZZ_SEED=${SEED}, run seed ${seed})`);
    buildShare();
  }
  t.diagnostic(
    `${sessions} hostile sessions, ${counts.requests} requests, ${counts.answered} answered, ${counts.cut} sessions closed by the server on bad input; server process still up`,
  );
});
