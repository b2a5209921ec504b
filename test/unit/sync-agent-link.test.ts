import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { create as tarCreate, Parser, type ReadEntry } from 'tar';
import type { GuestSession } from '../../app/engine/guest/session.js';
import { AgentUnavailable, SyncAgentLink } from '../../app/engine/share/sync-agent-link.js';
import { agentCommand, agentLink, hashGuest, lookGuest, pullGuest, pushGuest, runGuest, applyGuest } from '../../app/engine/share/sync-guest.js';
import type { ExecGuest } from '../helpers/exec-guest.js';
import { startSyncRig, type SyncRig } from '../helpers/sync-rig.js';
import { silentLogger } from '../../app/base/log.js';
import { guestSyncDirs } from '../../app/engine/settings/sync-paths.js';
import { pullFiles } from '../../app/engine/share/sync-transfer.js';
import { shortTempDir } from '../helpers/temp.js';
import { ustar } from '../helpers/ustar.js';

// The "guest" is this machine behind a real ssh exec channel (the sync
// tests' rig); `answer`, when set, replaces the kept agent's command (a
// hostile or broken guest).
let answer: string | undefined;
/** The kept agent's command (its mode and three arguments end it; the script itself names every mode). */
const isServe = (cmd: string) => /'serve' '[^']*' '[^']*' '[^']*'$/.test(cmd);
let rig: SyncRig;
let guest: ExecGuest;
let session: GuestSession;
const t = shortTempDir('bsal');
const root = path.join(t.dir, 'copy');
const stage = path.join(t.dir, 'stage');

before(async () => {
  fs.mkdirSync(path.join(root, 'src'), { recursive: true });
  fs.writeFileSync(path.join(root, 'src', 'a.js'), 'a');
  fs.writeFileSync(path.join(root, 'b.txt'), 'bb');
  const dir = (n: string) => path.join(t.dir, n);
  rig = await startSyncRig({
    hostPath: dir('host'),
    guestRoot: dir('guest'),
    stateDir: dir('state'),
    rewrite: (cmd) => (answer !== undefined && isServe(cmd) ? answer : cmd),
  });
  ({ guest, session } = rig);
});

after(async () => {
  agentLink(session, root).close();
  await rig.close();
  t.cleanup();
});

const serves = () => guest.commands.filter(isServe).length;

/** What the agent run on its own prints for `mode` (the reference). */
async function alone(mode: 'look' | 'hash', input: Buffer): Promise<string[]> {
  const out: string[] = [];
  const r = await runGuest(session, agentCommand(mode, root), input, (f) => out.push(f));
  assert.equal(r.code, 0, r.stderr);
  return out;
}

test('the kept agent answers looks, hashes, applies and pushes as the agent run alone does, over one exec', async () => {
  const before = serves();
  const lookIn = Buffer.from('d\0src\0s\0b.txt\0s\0missing\0', 'utf8');
  const link = new SyncAgentLink(session, agentCommand('serve', root));
  try {
    for (let i = 0; i < 3; i++) assert.deepEqual((await link.request('look', root, lookIn, 100)).fields, await alone('look', lookIn));
    const hashIn = Buffer.from('b.txt\0src/a.js\0', 'utf8');
    assert.deepEqual((await link.request('hash', root, hashIn, 100)).fields, await alone('hash', hashIn));
    assert.equal(link.answered, 4);
    assert.equal(serves() - before, 1, 'one agent for every request');
  } finally {
    link.close();
  }

  // Through the module's own link: a push of a small file and an apply land, with their results.
  fs.writeFileSync(path.join(t.dir, 'new.txt'), 'fresh');
  const tar = tarCreate({ cwd: t.dir, portable: true }, ['new.txt']) as unknown as Readable;
  const pushed = await pushGuest(session, root, stage, [{ op: 'place', path: 'new.txt' }], tar, 5);
  assert.equal(pushed[0]?.status, 'ok', JSON.stringify(pushed));
  assert.equal(fs.readFileSync(path.join(root, 'new.txt'), 'utf8'), 'fresh');
  assert.ok(!fs.existsSync(stage), 'the staging folder is removed');
  const applied = await applyGuest(session, root, stage, [{ op: 'mkdir', path: 'made/deep' }]);
  assert.deepEqual(applied, [{ status: 'ok', path: 'made/deep', info: '' }]);
  assert.ok(fs.statSync(path.join(root, 'made', 'deep')).isDirectory());
  assert.equal((await lookGuest(session, root, [], ['new.txt'])).get('new.txt')?.kind, 'file');
  assert.equal((await hashGuest(session, root, ['new.txt'])).size, 1);
  assert.ok(agentLink(session, root).answered >= 4, 'the module kept one agent for them');
});

test("an agent's error is its answer; the agent goes on", async () => {
  const link = new SyncAgentLink(session, agentCommand('serve', root));
  try {
    const bad = await link.request('apply', stage, Buffer.from('nonsense\0x\0', 'utf8'), 10);
    assert.equal(bad.ok, false);
    assert.match(bad.error, /unknown op nonsense/);
    assert.equal((await link.request('look', root, Buffer.from('s\0b.txt\0'), 10)).ok, true);
  } finally {
    link.close();
  }
});

test('a quiet agent is stopped, and the next request starts one again', async () => {
  const link = new SyncAgentLink(session, agentCommand('serve', root), 50);
  try {
    const before = serves();
    await link.request('look', root, Buffer.from('s\0b.txt\0'), 10);
    await new Promise((r) => setTimeout(r, 300));
    await link.request('look', root, Buffer.from('s\0b.txt\0'), 10);
    assert.equal(serves() - before, 2);
  } finally {
    link.close();
  }
});

test('a hostile or broken agent: a bad answer fails the request and closes the channel; one that is gone leaves it to the agent run alone', async () => {
  const link = new SyncAgentLink(session, agentCommand('serve', root));
  const look = () => link.request('look', root, Buffer.from('s\0b.txt\0'), 4);
  try {
    for (const [reply, why] of [
      ['printf "yes 3\\nabc"', /malformed answer/],
      ['printf "ok 99999999999999\\n"', /malformed answer/],
      ['printf "ok 2\\nabcdef"', /more than its answer/],
      ['printf "ok 10\\na\\0b\\0c\\0d\\0e\\0"', /more than 4 fields/],
    ] as const) {
      answer = `cat >/dev/null & ${reply}; sleep 5`;
      await assert.rejects(look(), why);
    }
    answer = 'exit 0';
    await assert.rejects(look(), AgentUnavailable);
    // The same request through the module falls back to an agent of its own: the right answer all the same.
    agentLink(session, root).close();
    const viaModule = await lookGuest(session, root, [], ['b.txt']);
    assert.equal(viaModule.get('b.txt')?.kind, 'file');
  } finally {
    answer = undefined;
    link.close();
  }
  assert.equal((await look()).ok, true, 'a good agent again after');
});

test('the kept agent enters the copy afresh for each request: a copy removed and made again is the one it sees', async () => {
  const other = path.join(t.dir, 'other');
  fs.mkdirSync(other);
  fs.writeFileSync(path.join(other, 'one'), '1');
  const link = new SyncAgentLink(session, agentCommand('serve', other));
  const look = async () => (await link.request('look', other, Buffer.from('d\0.\0s\0one\0s\0two\0'), 100)).fields.filter((_, i) => i % 4 === 1);
  try {
    assert.deepEqual(await look(), ['one']);
    fs.rmSync(other, { recursive: true });
    const gone = await link.request('look', other, Buffer.from('s\0one\0'), 100);
    assert.equal(gone.ok, false);
    assert.match(gone.error, /cannot enter/);
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'two'), '2');
    assert.deepEqual(await look(), ['two']);
  } finally {
    link.close();
  }
});

/** Files a tar must carry whole under `src`: a path past ustar's 100 bytes, UTF-8, a newline, modes, empty, 70 kB; their names. */
function oddTree(src: string, mtime: number): string[] {
  const files: [string, string, number][] = [
    [`${'deep/'.repeat(25)}${'n'.repeat(120)}.txt`, 'long path', 0o644],
    ['é ü/ñame with spaces.js', 'utf-8', 0o644],
    ['run.sh', '#!/bin/sh\necho hi\n', 0o755],
    ['empty', '', 0o600],
    ['line\nbreak', 'newline in the name', 0o644],
    ['big.bin', 'x'.repeat(70_000), 0o644],
  ];
  for (const [p, body, mode] of files) {
    fs.mkdirSync(path.dirname(path.join(src, p)), { recursive: true });
    fs.writeFileSync(path.join(src, p), body);
    fs.chmodSync(path.join(src, p), mode);
    fs.utimesSync(path.join(src, p), mtime, mtime);
  }
  return files.map(([p]) => p);
}

test("the kept agent unpacks a push's tar itself exactly as GNU tar does: long and odd names, modes, mtimes, empty files", async () => {
  const src = path.join(t.dir, 'src-odd');
  const names = oddTree(src, 1_700_000_000.123);
  const ops = names.map((p) => ({ op: 'place' as const, path: p }));
  const kept = path.join(t.dir, 'odd-kept');
  const tarred = path.join(t.dir, 'odd-tar');
  for (const r of [kept, tarred]) fs.mkdirSync(r);
  const pack = () => tarCreate({ cwd: src, portable: true, noDirRecurse: true, follow: false }, names) as unknown as Readable;
  const before = agentLink(session, kept).answered;
  const viaAgent = await pushGuest(session, kept, `${kept}-stage`, ops, pack(), 100);
  assert.equal(agentLink(session, kept).answered, before + 1, 'through the kept agent');
  const viaTar = await pushGuest(session, tarred, `${tarred}-stage`, ops, pack()); // streamed: GNU tar unpacks
  assert.deepEqual(
    viaAgent.map((r) => r.status),
    names.map(() => 'ok'),
  );
  assert.deepEqual(
    viaTar.map((r) => r.status),
    names.map(() => 'ok'),
  );
  for (const p of names) {
    const a = fs.lstatSync(path.join(kept, p));
    const b = fs.lstatSync(path.join(tarred, p));
    assert.equal(fs.readFileSync(path.join(kept, p), 'utf8'), fs.readFileSync(path.join(tarred, p), 'utf8'), p);
    assert.equal(a.mode, b.mode, `${p}: mode`);
    assert.equal(Math.round(a.mtimeMs), Math.round(b.mtimeMs), `${p}: mtime`);
  }
  assert.ok(!fs.existsSync(`${kept}-stage`) && !fs.existsSync(`${tarred}-stage`), 'staging folders removed');
  agentLink(session, kept).close();
});

test('the kept agent gives a file the mode in its tar header, also bits its own umask would take away, as GNU tar as root does', async () => {
  // node-tar's portable headers never carry them; a tar made otherwise may.
  const files: [string, number][] = [
    ['shared/group.txt', 0o664],
    ['shared/all.txt', 0o666],
    ['shared/plain.txt', 0o644],
    ['top.sh', 0o775],
  ];
  const tar = () => Readable.from([Buffer.concat([...files.map(([p, m]) => ustar(p, `mode ${m.toString(8)}`, m)), Buffer.alloc(1024)])]);
  const ops = files.map(([p]) => ({ op: 'place' as const, path: p }));
  const kept = path.join(t.dir, 'modes-kept');
  const tarred = path.join(t.dir, 'modes-tar');
  for (const r of [kept, tarred]) fs.mkdirSync(r);
  const old = process.umask(0o022);
  try {
    const before = agentLink(session, kept).answered;
    assert.deepEqual(
      (await pushGuest(session, kept, `${kept}-stage`, ops, tar(), 100)).map((r) => r.status),
      ['ok', 'ok', 'ok', 'ok'],
    );
    assert.equal(agentLink(session, kept).answered, before + 1, 'through the kept agent');
    assert.deepEqual(
      (await pushGuest(session, tarred, `${tarred}-stage`, ops, tar())).map((r) => r.status),
      ['ok', 'ok', 'ok', 'ok'],
    );
  } finally {
    process.umask(old);
  }
  for (const [p, m] of files) {
    assert.equal(fs.statSync(path.join(tarred, p)).mode & 0o7777, m, `${p}: GNU tar`);
    assert.equal(fs.statSync(path.join(kept, p)).mode & 0o7777, m, `${p}: the kept agent`);
  }
  agentLink(session, kept).close();
});

test('a tar the kept agent cannot unpack fails the push and leaves nothing staged or placed', async () => {
  const dest = path.join(t.dir, 'bad-tar');
  fs.mkdirSync(dest);
  for (const [what, tar] of [
    ['a path out of the staging folder', Buffer.concat([ustar('../escape', 'x'), Buffer.alloc(1024)])],
    ['a body cut short', ustar('aaaaaaaaa', 'x').subarray(0, 512)],
  ] as const) {
    await assert.rejects(
      pushGuest(session, dest, `${dest}-stage`, [{ op: 'place', path: 'aaaaaaaaa' }], Readable.from([tar]), 1),
      /copying files into the guest failed/,
      what,
    );
    assert.ok(!fs.existsSync(`${dest}-stage`), `${what}: staging folder removed`);
    assert.deepEqual(fs.readdirSync(dest), [], what);
  }
  assert.ok(!fs.existsSync(path.join(t.dir, 'escape')));
  agentLink(session, dest).close();
});

/** A tar's regular files: path → mode, size, whole-second mtime, contents. */
async function tarFiles(tar: Buffer): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const p = new Parser();
  p.on('entry', (e: ReadEntry) => {
    const chunks: Buffer[] = [];
    e.on('data', (c: Buffer) => chunks.push(c));
    e.on('end', () => {
      if (e.type === 'File')
        out.set(e.path, `${(e.mode ?? 0).toString(8)} ${e.size} ${Math.floor((e.mtime?.getTime() ?? 0) / 1000)} ${Buffer.concat(chunks).toString('utf8')}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    p.on('end', resolve);
    p.on('error', reject);
    p.end(tar);
  });
  return out;
}

test('a pull through the kept agent gives the files `tar -c` gives: long and odd names, modes, mtimes; links, FIFOs and missing files left out', async () => {
  const src = path.join(t.dir, 'pull-src');
  const files = oddTree(src, 1_700_000_000.7);
  fs.symlinkSync('run.sh', path.join(src, 'link'));
  spawnSync('mkfifo', [path.join(src, 'fifo')]);
  const names = [...files, 'link', 'fifo', 'missing'];
  const before = agentLink(session, src).answered;
  const kept = await pullGuest(session, src, names, 1_000_000);
  assert.equal(agentLink(session, src).answered, before + 1, 'through the kept agent');
  const ch = await session.openExec(`cd '${src}' && exec tar -c -f - --no-recursion --verbatim-files-from --null -T - 2>/dev/null; true`);
  const chunks: Buffer[] = [];
  ch.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise((r) => ch.on('close', r));
  ch.end(Buffer.from(names.map((n) => `${n}\0`).join(''), 'utf8'));
  await closed;
  const viaAgent = await tarFiles(kept!);
  assert.deepEqual([...viaAgent.keys()].sort(), [...files].sort());
  assert.deepEqual(viaAgent, await tarFiles(Buffer.concat(chunks)));

  // Within the cap: a file that would pass it is left out (the caller fetches it on its own).
  const capped = await tarFiles((await pullGuest(session, src, ['run.sh', 'big.bin', 'empty'], 1000))!);
  assert.deepEqual([...capped.keys()], ['run.sh', 'empty']);
  agentLink(session, src).close();
});

test('a pull whose answer is bigger than its files can make is refused, and the channel closed', async () => {
  const src = path.join(t.dir, 'pull-src2');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'a'), 'a');
  try {
    answer = `cat >/dev/null & head -c 100 /dev/zero | { printf 'ok 9000\n'; cat; }; sleep 5`;
    await assert.rejects(pullGuest(session, src, ['a'], 10), /answer is over \d+ bytes/);
  } finally {
    answer = undefined;
  }
  agentLink(session, src).close();
});

test('a pull of many files or many bytes runs a tar of its own; a few small ones come from the kept agent', async () => {
  const dirs = guestSyncDirs('many', path.join(t.dir, 'g'));
  const host = path.join(t.dir, 'many-host');
  fs.mkdirSync(dirs.tree, { recursive: true });
  fs.mkdirSync(host);
  const want = (n: number, size: number) =>
    new Map(
      Array.from({ length: n }, (_, i) => {
        const p = `f${i}-${n}`;
        fs.writeFileSync(path.join(dirs.tree, p), 'x'.repeat(size));
        return [p, { op: 'copy' as const, from: 'guest' as const, path: p, entry: { kind: 'file' as const, sig: '', size } }];
      }),
    );
  const ctx = { session, hostPath: host, dirs, log: silentLogger(), anc: new Map() };
  for (const [n, size, kept] of [
    [3, 10, true],
    [1001, 0, false],
    [2, 3 * 2 ** 20, false],
  ] as const) {
    const before = agentLink(session, dirs.tree).answered;
    const got = await pullFiles(ctx, want(n, size));
    assert.equal(got.filter((r) => r.status === 'ok').length, n, `${n} files of ${size} bytes all landed`);
    assert.equal(
      agentLink(session, dirs.tree).answered - before,
      kept ? 1 : 0,
      `${n} files of ${size} bytes: ${kept ? 'the kept agent' : 'a tar of their own'}`,
    );
  }
  agentLink(session, dirs.tree).close();
});
