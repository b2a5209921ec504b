/**
 * Sync mode without a VM: which folders may be synced (settings), path
 * mapping, the guest agent (run here with the host's Perl on a temp
 * folder), and the host side's scan and just-in-time checked writes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { create as tarCreate } from 'tar';
import { findExecutable } from '../../app/base/process-util.js';
import { isBerthError } from '../../app/contract/errors.js';
import { SettingsSchema } from '../../app/engine/settings/schema.js';
import { SettingsStore } from '../../app/engine/settings/store.js';
import { agentCommand, encodeOps, NulFields, parseScan, type GuestOp } from '../../app/engine/share/sync-guest.js';
import { applyHostOp, hostEntry, receiveTar, scanHost } from '../../app/engine/share/sync-host.js';
import { checkSyncable, guestSyncDirs, safeRelative, syncGuestPath, syncId, syncPathProblem } from '../../app/engine/settings/sync-paths.js';
import { shortTempDir } from '../helpers/temp.js';
import { formatSync } from '../../app/cli/output.js';

const shares = [{ hostPath: '/home/me' }, { hostPath: '/Volumes/work', guestPath: '/mnt/work' }];

test('a synced folder must lie in a share and must not nest with another', () => {
  assert.equal(syncPathProblem('/home/me/src/app', shares, []), undefined);
  assert.equal(syncPathProblem('/home/me', shares, []), undefined, 'a whole share may be synced');
  const out = syncPathProblem('/etc/app', shares, [])!;
  assert.match(out.message, /not inside a shared folder/);
  assert.match(out.hint, /berth share add/);
  assert.match(syncPathProblem('relative/app', shares, [])!.message, /absolute/);
  assert.match(syncPathProblem('/home/me/src/app/web', shares, ['/home/me/src/app'])!.message, /overlaps the synced folder \/home\/me\/src\/app/);
  assert.match(syncPathProblem('/home/me/src', shares, ['/home/me/src/app'])!.hint, /berth sync rm/);
  assert.equal(syncPathProblem('/home/me/src/app2', shares, ['/home/me/src/app']), undefined, 'a sibling with a common prefix is fine');
  // A sync would carry containers' writes back through a read-only share.
  const ro = syncPathProblem('/srv/docs/site', [...shares, { hostPath: '/srv/docs', readOnly: true }], [])!;
  assert.match(ro.message, /\/srv\/docs\/site is in the read-only shared folder \/srv\/docs/);
  assert.match(ro.hint, /berth share add \/srv\/docs` without --read-only/);
});

test('the guest path follows the share (same path, or its guest path)', () => {
  assert.equal(syncGuestPath('/home/me/src/app', shares), '/home/me/src/app');
  assert.equal(syncGuestPath('/Volumes/work/proj', shares), '/mnt/work/proj');
  assert.equal(syncGuestPath('/Volumes/work', shares), '/mnt/work');
  assert.equal(syncGuestPath('/opt/x', shares), undefined);
  assert.equal(syncGuestPath('C:\\Users\\me\\app', [{ hostPath: 'C:\\Users\\me', guestPath: '/mnt/host/c/Users/me' }], path.win32), '/mnt/host/c/Users/me/app');
});

test('guest copies live on the data disk under a stable id', () => {
  assert.equal(syncId('/home/me/app'), syncId('/home/me/app/'));
  assert.notEqual(syncId('/home/me/app'), syncId('/home/me/app2'));
  assert.match(guestSyncDirs(syncId('/x')).tree, /^\/var\/lib\/berth\/sync\/[0-9a-f]{16}\/tree$/);
});

test('relative paths from scans are checked before use', () => {
  for (const p of ['a', 'a/b.txt', 'ü x/ y']) assert.ok(safeRelative(p), p);
  for (const p of ['', '/a', 'a/../b', './a', 'a//b', '..', 'a\0b']) assert.ok(!safeRelative(p), p);
});

test('settings: synced folders are validated against the shares', () => {
  const t = shortTempDir('bsyu');
  try {
    const file = path.join(t.dir, 'settings.json');
    const store = new SettingsStore(file);
    store.update({ shares: [{ hostPath: t.dir }] });
    const r = store.update({ sync: [{ hostPath: path.join(t.dir, 'app') }] });
    assert.deepEqual(r.changed, ['sync']);
    assert.equal(r.restartRequired, false, 'live: no restart');
    assert.deepEqual(new SettingsStore(file).get().sync, [{ hostPath: path.join(t.dir, 'app') }], 'persisted');
    assert.throws(
      () => store.update({ sync: [{ hostPath: '/etc/app' }] }),
      (e: unknown) => isBerthError(e, 'INVALID_SETTINGS') && /sync\.0\.hostPath: \/etc\/app is not inside a shared folder/.test((e as Error).message),
    );
    assert.throws(() => store.update({ sync: [{ hostPath: 'app' }] }), /must be an absolute path/);
    assert.throws(() => store.update({ sync: [{ hostPath: path.join(t.dir, 'app') }, { hostPath: path.join(t.dir, 'app') }] }), /listed twice/);
    assert.throws(() => store.update({ sync: [{ hostPath: path.join(t.dir, 'app') }, { hostPath: path.join(t.dir, 'app', 'x') }] }), /overlaps/);
    assert.throws(() => store.update({ shares: [] }), /not inside a shared folder/, 'a share cannot go while a folder in it is synced');
    assert.throws(() => store.update({ shares: [{ hostPath: t.dir, readOnly: true }] }), /read-only shared folder/, 'nor become read-only');
    assert.deepEqual(store.get().sync, [{ hostPath: path.join(t.dir, 'app') }], 'bad updates change nothing');
    assert.deepEqual(SettingsSchema.parse({}).sync, [], 'nothing synced by default');
    assert.throws(() => checkSyncable(path.join(t.dir, 'missing'), store.get()), /not a folder on this computer/);
    assert.throws(
      () => checkSyncable('/etc', store.get()),
      (e: unknown) => isBerthError(e, 'INVALID_HOST_PATH') && /share add/.test((e as { hint: string }).hint),
    );
  } finally {
    t.cleanup();
  }
});

test('NUL fields survive any chunking', () => {
  const f = new NulFields();
  const out: string[] = [];
  const all = Buffer.from('a b\0ü\0\0x\n y\0', 'utf8');
  for (let i = 0; i < all.length; i++) f.push(all.subarray(i, i + 1), (s) => out.push(s));
  assert.deepEqual(out, ['a b', 'ü', '', 'x\n y']);
});

/** Run the guest agent locally (the host's Perl, GNU userland). */
function agent(mode: 'scan' | 'apply' | 'hash', root: string, input: Buffer, stage = ''): Promise<{ code: number | null; fields: string[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn('sh', ['-c', agentCommand(mode, root, stage)]);
    const fields: string[] = [];
    const nf = new NulFields();
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => nf.push(d, (s) => fields.push(s)));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, fields, stderr }));
    // A scan reads no input: the agent may be gone before it is written (EPIPE); its output and status decide.
    c.stdin.on('error', () => undefined);
    c.stdin.end(input);
  });
}

const perl = findExecutable('perl');

test("the guest agent scans, checks and applies (run with this host's Perl)", { skip: perl ? false : 'perl is not installed on this host' }, async () => {
  const t = shortTempDir('bsya');
  try {
    const root = path.join(t.dir, 'tree');
    const stage = path.join(t.dir, 'stage');
    fs.mkdirSync(path.join(root, 'd ü'), { recursive: true });
    fs.mkdirSync(stage);
    fs.writeFileSync(path.join(root, 'd ü', 'a.txt'), 'hello');
    fs.writeFileSync(path.join(root, 'x.sh'), '#!/bin/sh\n', { mode: 0o755 });
    fs.writeFileSync(path.join(root, '.berth-sync-tmp'), 'ignored');
    fs.symlinkSync('d ü/a.txt', path.join(root, 'l'));
    const s1 = await agent('scan', root, Buffer.alloc(0));
    assert.equal(s1.code, 0, s1.stderr);
    const snap = parseScan(s1.fields);
    assert.deepEqual([...snap.keys()].sort(), ['d ü', 'd ü/a.txt', 'l', 'x.sh']);
    assert.equal(snap.get('d ü/a.txt')!.size, 5);
    assert.match(snap.get('x.sh')!.sig, /^10:\d+\.\d{6}:\d+:x$/);
    assert.deepEqual(snap.get('l'), { kind: 'link', sig: 'l:d ü/a.txt', target: 'd ü/a.txt' });

    // A staged file is placed only if the target is what the scan saw.
    fs.mkdirSync(path.join(stage, 'd ü'));
    fs.writeFileSync(path.join(stage, 'd ü', 'a.txt'), 'from the host');
    fs.mkdirSync(path.join(stage, 'new'));
    fs.writeFileSync(path.join(stage, 'new', 'n.txt'), 'n');
    const ops: GuestOp[] = [
      { op: 'save', path: 'x.sh', to: 'x.sh.conflict-guest-1', expect: snap.get('x.sh')! },
      { op: 'place', path: 'd ü/a.txt', expect: snap.get('d ü/a.txt')! },
      { op: 'place', path: 'new/n.txt' },
      { op: 'link', path: 'l', target: 'x.sh', expect: snap.get('l')! },
      { op: 'del', path: 'd ü', expect: { kind: 'dir', sig: '' } },
      { op: 'mkdir', path: 'm/n' },
      { op: 'del', path: 'gone', expect: { kind: 'file', sig: '1:1.000000:1:-' } },
    ];
    const r = await agent('apply', root, encodeOps(ops), stage);
    assert.equal(r.code, 0, r.stderr);
    const res = [];
    for (let i = 0; i < r.fields.length; i += 3) res.push(`${r.fields[i]} ${r.fields[i + 1]}`);
    assert.deepEqual(res, ['ok x.sh', 'ok d ü/a.txt', 'ok new/n.txt', 'ok l', 'skip d ü', 'ok m/n', 'ok gone']);
    assert.equal(fs.readFileSync(path.join(root, 'd ü', 'a.txt'), 'utf8'), 'from the host');
    assert.match(r.fields[5]!, /^13:/, 'a placed file reports its new signature');
    assert.equal(fs.readFileSync(path.join(root, 'x.sh.conflict-guest-1'), 'utf8'), '#!/bin/sh\n');
    assert.equal(fs.readlinkSync(path.join(root, 'l')), 'x.sh');
    assert.ok(fs.statSync(path.join(root, 'm', 'n')).isDirectory());

    // A target that changed since the scan is left alone.
    const stale = { kind: 'file' as const, sig: snap.get('d ü/a.txt')!.sig };
    fs.writeFileSync(path.join(stage, 'late.txt'), 'late');
    const r2 = await agent(
      'apply',
      root,
      encodeOps([
        { op: 'place', path: 'd ü/a.txt', expect: stale },
        { op: 'del', path: 'new/n.txt', expect: stale },
      ]),
      stage,
    );
    assert.deepEqual([r2.fields[0], r2.fields[3]], ['skip', 'skip']);
    assert.equal(fs.readFileSync(path.join(root, 'd ü', 'a.txt'), 'utf8'), 'from the host');
    assert.ok(fs.existsSync(path.join(root, 'new', 'n.txt')));

    const h = await agent('hash', root, Buffer.from('new/n.txt\0missing\0'));
    assert.equal(h.fields[0], 'new/n.txt');
    assert.equal(h.fields[1], '1b16b1df538ba12dc3f97edbb85caa7050d46c148134290feba80f8236c83db9', 'sha256 of "n"');
    assert.equal(h.fields[3], '', 'a missing file has no hash');
  } finally {
    t.cleanup();
  }
});

test('the host side: scan, checked deletes and links, files from a tar stream', async () => {
  const t = shortTempDir('bsyh');
  try {
    const root = path.join(t.dir, 'host');
    fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(root, 'sub', 'keep.txt'), 'keep');
    fs.writeFileSync(path.join(root, '.berth-sync-abc'), 'temp');
    const snap = await scanHost(root);
    assert.deepEqual([...snap.keys()].sort(), ['sub', 'sub/keep.txt']);

    assert.equal((await applyHostOp(root, { op: 'del', path: 'sub', expect: { kind: 'dir', sig: '' } })).status, 'skip', 'a folder is deleted only when empty');
    assert.equal(
      (await applyHostOp(root, { op: 'del', path: 'sub/keep.txt', expect: { kind: 'file', sig: 'other' } })).status,
      'skip',
      'changed since the scan',
    );
    assert.equal((await applyHostOp(root, { op: 'del', path: '../x', expect: { kind: 'file', sig: '' } })).status, 'err', 'no escaping the root');
    const l = await applyHostOp(root, { op: 'link', path: 'a/l', target: '../sub/keep.txt' });
    assert.equal(l.status, 'ok');
    assert.equal(fs.readFileSync(path.join(root, 'a', 'l'), 'utf8'), 'keep');

    // A tar stream as GNU tar in the guest sends it.
    const src = path.join(t.dir, 'guest');
    fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(src, 'sub', 'keep.txt'), 'from the guest');
    fs.writeFileSync(path.join(src, 'sub', 'new.sh'), 'run', { mode: 0o755 });
    fs.writeFileSync(path.join(src, 'unwanted'), 'x');
    const mtime = new Date('2024-05-06T07:08:09Z');
    fs.utimesSync(path.join(src, 'sub', 'new.sh'), mtime, mtime);
    const stream = new PassThrough();
    tarCreate({ cwd: src, portable: true, noDirRecurse: true }, ['sub/keep.txt', 'sub/new.sh', 'unwanted']).pipe(stream);
    const wanted = new Map([
      ['sub/keep.txt', { expect: snap.get('sub/keep.txt')! }],
      ['sub/new.sh', {}],
    ]);
    const results = await receiveTar(root, stream, wanted);
    assert.deepEqual(
      results.map((r) => `${r.status} ${r.path}`),
      ['ok sub/keep.txt', 'ok sub/new.sh'],
    );
    assert.equal(fs.readFileSync(path.join(root, 'sub', 'keep.txt'), 'utf8'), 'from the guest');
    const st = fs.statSync(path.join(root, 'sub', 'new.sh'));
    assert.ok(st.mode & 0o100, 'executable bit kept');
    assert.equal(st.mtime.getTime(), mtime.getTime(), 'mtime kept');
    assert.equal((await hostEntry(path.join(root, 'sub', 'new.sh')))!.sig, results[1]!.entry!.sig);
    assert.ok(!fs.existsSync(path.join(root, 'unwanted')));
    assert.deepEqual(
      fs.readdirSync(path.join(root, 'sub')).filter((n) => n.startsWith('.berth-sync-')),
      [],
      'no temporary files left',
    );

    // The host file changed after the scan: the incoming version is dropped, the host's kept.
    const s2 = new PassThrough();
    tarCreate({ cwd: src, portable: true }, ['sub/keep.txt']).pipe(s2);
    const r2 = await receiveTar(root, s2, new Map([['sub/keep.txt', { expect: snap.get('sub/keep.txt')! }]]));
    assert.equal(r2[0]!.status, 'skip');
  } finally {
    t.cleanup();
  }
});

test('berth sync: state, first-copy progress, conflicts and folders not live yet', () => {
  assert.match(formatSync([], []), /No folders are synced.*berth sync add PATH/);
  const base = { guestPath: '/h/app', copyPath: '/var/lib/berth/sync/x/tree', mounted: true, entries: 10, cycles: 3, conflicts: [] };
  const out = formatSync(
    [
      {
        ...base,
        hostPath: '/h/app',
        state: 'watching',
        lastSyncAt: new Date().toISOString(),
        conflicts: [{ path: '/h/app/a.txt', guestCopy: '/h/app/a.txt.conflict-guest-20250101-000000', at: '' }],
      },
      { ...base, hostPath: '/h/big', state: 'copying', mounted: false, initial: { files: 5, totalFiles: 10, bytes: 2 ** 20, totalBytes: 2 ** 21 } },
      { ...base, hostPath: '/h/gone', state: 'error', error: '/h/gone does not exist on this computer', hint: 'Create it.' },
    ],
    [{ hostPath: '/h/app' }, { hostPath: '/h/later' }],
  );
  assert.match(out, /\/h\/app\s+watching\s+10 .*mounted at \/h\/app in the VM 1 conflict/);
  assert.match(out, /first copy: 5\/10 files, 1\.0 MiB of 2\.0 MiB/);
  assert.match(out, /\/h\/gone\s+error .*does not exist/);
  assert.match(out, /\/h\/later\s+stopped/);
  assert.match(out, /Conflicts[\s\S]*\/h\/app\/a\.txt\n.*a\.txt\.conflict-guest-20250101-000000/);
});

test('files go to the guest in batches of at most 1,000 files or 64 MiB', async () => {
  const { batches } = await import('../../app/engine/share/sync-session.js');
  const f = (size: number) => ({ entry: { kind: 'file', size } });
  assert.deepEqual(batches([]), []);
  assert.deepEqual(
    batches(Array.from({ length: 2500 }, () => f(1))).map((b) => b.length),
    [1000, 1000, 500],
  );
  assert.deepEqual(
    batches([f(40 * 2 ** 20), f(40 * 2 ** 20), f(200 * 2 ** 20), f(1)]).map((b) => b.length),
    [1, 1, 1, 1],
    'a big file goes alone',
  );
  assert.deepEqual(
    batches([{ entry: { kind: 'link' } }, f(1)]).map((b) => b.length),
    [2],
  );
});
