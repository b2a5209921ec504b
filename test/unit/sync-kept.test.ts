/**
 * What a synced folder keeps between runs (share/sync-kept.ts): a token for
 * its guest copy, the ancestor and the conflicts, in an owner-only state
 * file; forgetting the ancestor reaches the disk before anything else.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { SyncKept } from '../../app/engine/share/sync-kept.js';

function temp(): { dir: string; file: string; done: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-kept-'));
  return { dir, file: path.join(dir, 'sync', 'abc.json'), done: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

test('a folder with no state gets a new token; what it saves comes back, owner-only', async () => {
  const t = temp();
  try {
    const a = new SyncKept(t.file, '/home/me/app');
    await a.load();
    assert.match(a.token, /^[0-9a-f]{24}$/);
    assert.equal(a.initialDone, false);
    a.initialDone = true;
    a.anc.set('src/x.ts', { kind: 'file', host: 'h1', guest: 'g1' });
    a.conflicts.record({ path: 'src/x.ts', guestCopy: 'src/x.guest.ts', host: 'file', guest: 'file', at: '2026-12-06T00:00:00Z' });
    await a.save();
    assert.equal(fs.statSync(t.file).mode & 0o777, 0o600);
    const b = new SyncKept(t.file, '/home/me/app');
    await b.load();
    assert.equal(b.token, a.token);
    assert.equal(b.initialDone, true);
    assert.deepEqual([...b.anc], [['src/x.ts', { kind: 'file', host: 'h1', guest: 'g1' }]]);
    assert.equal(b.conflicts.list.length, 1);
    // Another folder's state file is not taken.
    const other = new SyncKept(t.file, '/home/me/other');
    await other.load();
    assert.notEqual(other.token, a.token);
    assert.equal(other.anc.size, 0);
  } finally {
    t.done();
  }
});

test('forget drops the ancestor on disk at once and keeps the token; remove deletes the file', async () => {
  const t = temp();
  try {
    const a = new SyncKept(t.file, '/p');
    await a.load();
    a.initialDone = true;
    a.anc.set('f', { kind: 'file', host: 'h', guest: 'g' });
    await a.save();
    await a.forget();
    const b = new SyncKept(t.file, '/p');
    await b.load();
    assert.equal(b.anc.size, 0, 'a start after a failed first copy sees no ancestor, so nothing reads as deleted');
    assert.equal(b.initialDone, false);
    assert.equal(b.token, a.token);
    await b.remove();
    assert.equal(fs.existsSync(t.file), false);
    await b.remove();
  } finally {
    t.done();
  }
});
