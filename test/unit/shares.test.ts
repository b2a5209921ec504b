/** Shared folders without a VM: settings checks, path mapping, the guest's nudge script. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { isBerthError } from '../../app/contract/errors.js';
import { guestPathFor, hostPathFor, nudgeLine } from '../../app/engine/share/change-notifier.js';
import { guestProgram } from '../../app/engine/guest/programs.js';
import { mountsEscape } from '../../app/engine/guest/queries.js';
import { defaultShares, guestPathProblem } from '../../app/engine/settings/schema.js';
import { SettingsStore } from '../../app/engine/settings/store.js';
import { shortTempDir } from '../helpers/temp.js';

test('the default share is the home folder (and a temp folder that is not /tmp)', () => {
  const d = defaultShares();
  assert.deepEqual(d[0], { hostPath: os.homedir() });
  assert.ok(d.every((s) => s.hostPath !== '/tmp'));
});

test('guest paths the VM needs are refused', () => {
  for (const p of ['/', '/etc', '/etc/x', '/usr/local', '/var/lib/docker', '/var/lib/docker/volumes', '/proc', '/run/berth', '/tmp', '/mnt/data']) {
    assert.ok(guestPathProblem(p), p);
  }
  for (const p of ['/Users/me', '/home/me/src', '/root', '/var/folders/xy/T', '/tmp/work', '/mnt/host/c/Users']) {
    assert.equal(guestPathProblem(p), undefined, p);
  }
  assert.match(guestPathProblem('relative')!, /absolute/);
  assert.match(guestPathProblem('/a/../etc')!, /\.\./);
});

test('share settings: validated, duplicates refused, nothing saved on error', () => {
  const t = shortTempDir();
  try {
    const s = new SettingsStore(path.join(t.dir, 's.json'));
    s.update({ shares: [{ hostPath: '/srv/code', guestPath: '/code' }, { hostPath: t.dir }] });
    assert.equal(s.get().shares.length, 2);
    for (const bad of [
      [{ hostPath: 'rel' }],
      [{ hostPath: '/x', guestPath: '/usr' }],
      [
        { hostPath: '/a', guestPath: '/same' },
        { hostPath: '/b', guestPath: '/same' },
      ],
      [{ hostPath: '/etc' }],
      [{ hostPath: '/x', extra: 1 }],
    ]) {
      assert.throws(
        () => s.update({ shares: bad }),
        (e) => isBerthError(e, 'INVALID_SETTINGS'),
        JSON.stringify(bad),
      );
    }
    assert.equal(s.get().shares.length, 2);
  } finally {
    t.cleanup();
  }
});

test('host and guest paths map through the longest matching share', () => {
  const shares = [
    { hostPath: '/home/me', guestPath: '/home/me' },
    { hostPath: '/data/proj', guestPath: '/home/me/proj' },
  ];
  assert.equal(hostPathFor('/home/me/a/b', shares), '/home/me/a/b');
  assert.equal(hostPathFor('/home/me/proj/src/x.ts', shares), '/data/proj/src/x.ts');
  assert.equal(hostPathFor('/elsewhere', shares), undefined);
  assert.equal(guestPathFor('/data/proj/src/x.ts', shares), '/home/me/proj/src/x.ts');
  assert.equal(guestPathFor('/home/me', shares), '/home/me');
  assert.equal(guestPathFor('/homework', shares), undefined);
});

test('/proc/mounts escaping', () => {
  assert.equal(mountsEscape('/a b/c\td\\e'), '/a\\040b/c\\011d\\134e');
});

test('without the events module, the nudge script sets a file to its own times, to the nanosecond, both ways of telling them', async () => {
  const t = shortTempDir();
  try {
    const f = path.join(t.dir, 'f.txt');
    const g = path.join(t.dir, 'g.txt');
    fs.writeFileSync(f, 'x');
    fs.writeFileSync(g, 'y');
    const before = fs.lstatSync(f, { bigint: true });
    // `h`: the engine's (host) times; `f`: the file server's current ones
    // (statx past the cache), whatever the line says; a missing path is
    // skipped; a delete and a rename's old name touch nothing (their
    // folder's `p` line does).
    assert.ok(!fs.existsSync('/proc/berth-notify'), 'this test is of the fallback');
    const lines = [
      nudgeLine('h', 'm', before, f),
      `f c 1 0 2 0 ${g}`,
      nudgeLine('h', 'c', before, path.join(t.dir, 'gone.txt')),
      nudgeLine('h', 'd', undefined, path.join(t.dir, 'gone.txt')),
      nudgeLine('h', 'F', undefined, t.dir),
      'garbage',
    ];
    const dirBefore = fs.lstatSync(t.dir, { bigint: true });
    const gBefore = fs.lstatSync(g, { bigint: true });
    const child = spawn('perl', ['-e', guestProgram('nudge.pl')]);
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.stdin.end(lines.join('\n') + '\n');
    await new Promise((r) => child.on('exit', r));
    assert.equal(child.exitCode, 0, err);
    const after = fs.lstatSync(f, { bigint: true });
    assert.equal(after.mtimeNs, before.mtimeNs);
    assert.equal(after.atimeNs, before.atimeNs);
    assert.ok(after.ctimeNs >= before.ctimeNs, 'the times were set (ctime moves)');
    assert.equal(fs.lstatSync(g, { bigint: true }).mtimeNs, gBefore.mtimeNs, "`f` used the file's own times, not the line's");
    assert.equal(fs.lstatSync(t.dir, { bigint: true }).ctimeNs, dirBefore.ctimeNs, 'd and F lines touch nothing');
  } finally {
    t.cleanup();
  }
});

test('nudge lines carry seconds and nanoseconds apart', () => {
  assert.equal(nudgeLine('f', 'm', { atimeNs: 1_700_000_000_123_456_789n, mtimeNs: 5n }, '/a b/c'), 'f m 1700000000 123456789 0 5 /a b/c');
  assert.equal(nudgeLine('h', 'd', undefined, '/a'), 'h d 0 0 0 0 /a');
});

test("addShare (the engine's, the gateway's and the CLI's edit) refuses a folder that does not exist, and saves nothing", async () => {
  const { addShare } = await import('../../app/engine/settings/edits.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-addshare-'));
  try {
    const store = new SettingsStore(path.join(dir, 'settings.json'));
    assert.throws(
      () => addShare(store, { hostPath: path.join(dir, 'nope') }),
      (e) => isBerthError(e, 'INVALID_HOST_PATH') && /does not exist/.test(e.message),
    );
    assert.ok(!fs.existsSync(path.join(dir, 'settings.json')));
    fs.mkdirSync(path.join(dir, 'yes'));
    assert.ok(addShare(store, { hostPath: path.join(dir, 'yes') }).some((s) => s.hostPath === path.join(dir, 'yes')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('addShare and addSync refuse a relative path or one with a NUL or newline before touching the disk, and save nothing', async () => {
  const { addShare, addSync } = await import('../../app/engine/settings/edits.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-addpath-'));
  try {
    const store = new SettingsStore(path.join(dir, 'settings.json'));
    // The daemon's working folder must never give a relative path its meaning.
    fs.mkdirSync(path.join(dir, 'rel'));
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      for (const edit of [(p: string) => addShare(store, { hostPath: p }), (p: string) => addSync(store, p)]) {
        assert.throws(
          () => edit('rel'),
          (e) => isBerthError(e, 'INVALID_HOST_PATH') && /not an absolute path/.test(e.message) && /full path/.test(e.hint ?? ''),
        );
        // The fuzz case that once came back INTERNAL (fs refuses NUL with a programmer's error).
        for (const bad of [`${dir}/AF/\udb2c\u0003+KK\u0000Is`, `${dir}/a\nb`]) {
          assert.throws(
            () => edit(bad),
            (e) => isBerthError(e, 'INVALID_HOST_PATH') && /NUL or newline/.test(e.message),
          );
        }
      }
    } finally {
      process.chdir(cwd);
    }
    assert.ok(!fs.existsSync(path.join(dir, 'settings.json')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
