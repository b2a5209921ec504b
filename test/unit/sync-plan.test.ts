/** Sync mode's decisions (three-way reconcile): pure, no VM. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  changedOn,
  conflictName,
  hashCandidates,
  orderActions,
  reconcile,
  type Action,
  type Ancestor,
  type Entry,
  type Snapshot,
} from '../../app/engine/share/sync-plan.js';

const file = (sig: string, size = 1): Entry => ({ kind: 'file', sig, size });
const dir: Entry = { kind: 'dir', sig: '' };
const link = (target: string): Entry => ({ kind: 'link', sig: `l:${target}`, target });
const snap = (o: Record<string, Entry>): Snapshot => new Map(Object.entries(o));
/** An ancestor where each path's host and guest signatures are h<name> and g<name>. */
const anc = (o: Record<string, Entry['kind']>): Ancestor =>
  new Map(Object.entries(o).map(([p, kind]) => [p, { kind, host: kind === 'dir' ? '' : `h:${p}`, guest: kind === 'dir' ? '' : `g:${p}` }]));
const ops = (as: Action[]) =>
  as.map((a) => {
    switch (a.op) {
      case 'copy':
        return `copy ${a.from}->${a.path}`;
      case 'mkdir':
      case 'delete':
        return `${a.op} ${a.on}:${a.path}`;
      case 'save':
        return `save ${a.path}->${a.to}`;
      case 'same':
        return `same ${a.path}`;
    }
  });
const NOW = new Date('2025-01-02T03:04:05.678Z');

test('changedOn compares a side with its own earlier signature only', () => {
  const a = { kind: 'file' as const, host: 'h1', guest: 'g1' };
  assert.equal(changedOn('host', a, file('h1')), false);
  assert.equal(changedOn('guest', a, file('g1')), false);
  assert.equal(changedOn('host', a, file('g1')), true, 'the other side’s signature means nothing here');
  assert.equal(changedOn('host', a, undefined), true, 'deleted');
  assert.equal(changedOn('host', undefined, undefined), false);
  assert.equal(changedOn('host', undefined, file('x')), true, 'created');
  assert.equal(changedOn('host', { kind: 'dir', host: '', guest: '' }, dir), false, 'folders: only presence and kind count');
  assert.equal(changedOn('host', a, dir), true, 'a file became a folder');
});

test('first sync: everything on the host goes to the guest, folders first', () => {
  const host = snap({ 'a.txt': file('h1'), src: dir, 'src/b.js': file('h2', 10), 'src/x': link('b.js') });
  const p = reconcile(new Map(), host, new Map(), { now: NOW });
  assert.deepEqual(ops(p.actions), ['mkdir guest:src', 'copy host->a.txt', 'copy host->src/b.js', 'copy host->src/x']);
  assert.equal(p.conflicts.length, 0);
});

test('nothing changed: nothing to do', () => {
  const a = anc({ 'a.txt': 'file', d: 'dir' });
  const p = reconcile(a, snap({ 'a.txt': file('h:a.txt'), d: dir }), snap({ 'a.txt': file('g:a.txt'), d: dir }));
  assert.deepEqual(p.actions, []);
  assert.deepEqual(p.forget, []);
});

test('an edit on one side goes to the other, replacing what the scan saw there', () => {
  const a = anc({ 'a.txt': 'file' });
  const hostEdit = reconcile(a, snap({ 'a.txt': file('h2') }), snap({ 'a.txt': file('g:a.txt') }));
  assert.deepEqual(ops(hostEdit.actions), ['copy host->a.txt']);
  assert.deepEqual(
    (hostEdit.actions[0] as Extract<Action, { op: 'copy' }>).expect,
    file('g:a.txt'),
    'just-in-time check: the guest must still hold what was scanned',
  );
  const guestEdit = reconcile(a, snap({ 'a.txt': file('h:a.txt') }), snap({ 'a.txt': file('g2') }));
  assert.deepEqual(ops(guestEdit.actions), ['copy guest->a.txt']);
});

test('deletes go both ways; a rename is a delete and a create', () => {
  const a = anc({ d: 'dir', 'd/a.txt': 'file', 'b.txt': 'file' });
  const p = reconcile(
    a,
    snap({ d: dir, 'd/a.txt': file('h:d/a.txt'), 'c.txt': file('h:c') }), // host renamed b.txt -> c.txt
    snap({ 'b.txt': file('g:b.txt') }), // guest deleted the folder d
  );
  assert.deepEqual(ops(p.actions), ['delete host:d/a.txt', 'delete guest:b.txt', 'delete host:d', 'copy host->c.txt']);
});

test('deletes run deepest first; folders are made parents first', () => {
  const acts: Action[] = [
    { op: 'delete', on: 'guest', path: 'a', expect: dir },
    { op: 'mkdir', on: 'host', path: 'x/y' },
    { op: 'delete', on: 'guest', path: 'a/b/c', expect: file('1') },
    { op: 'copy', from: 'host', path: 'z', entry: file('1') },
    { op: 'mkdir', on: 'host', path: 'x' },
    { op: 'save', on: 'guest', path: 'q', to: 'q.c', expect: file('1') },
    { op: 'delete', on: 'guest', path: 'a/b', expect: dir },
  ];
  assert.deepEqual(ops(orderActions(acts)), [
    'save q->q.c',
    'delete guest:a/b/c',
    'delete guest:a/b',
    'delete guest:a',
    'mkdir host:x',
    'mkdir host:x/y',
    'copy host->z',
  ]);
});

test('both sides deleted, or made the same folder: nothing moves, the ancestor follows', () => {
  const p = reconcile(anc({ gone: 'file' }), snap({ newdir: dir }), snap({ newdir: dir }));
  assert.deepEqual(p.forget, ['gone']);
  assert.deepEqual(ops(p.actions), ['same newdir']);
});

test('both changed to the same bytes (found by hash): no conflict', () => {
  const a = anc({ 'a.txt': 'file' });
  const host = snap({ 'a.txt': file('h2', 5) });
  const guest = snap({ 'a.txt': file('g2', 5) });
  assert.deepEqual(hashCandidates(a, host, guest), ['a.txt']);
  const p = reconcile(a, host, guest, { equal: new Set(['a.txt']) });
  assert.deepEqual(ops(p.actions), ['same a.txt']);
  assert.equal(p.conflicts.length, 0);
  assert.deepEqual(hashCandidates(a, host, snap({ 'a.txt': file('g2', 6) })), [], 'different sizes differ without hashing');
});

test('both changed differently: a conflict keeps both versions', () => {
  const a = anc({ 'src/a.txt': 'file', src: 'dir' });
  const p = reconcile(a, snap({ src: dir, 'src/a.txt': file('h2') }), snap({ src: dir, 'src/a.txt': file('g2') }), { now: NOW });
  const c = 'src/a.txt.conflict-guest-20250102-030405';
  assert.deepEqual(ops(p.actions), [`save src/a.txt->${c}`, `copy guest->${c}`, 'copy host->src/a.txt']);
  const hostCopy = p.actions[2] as Extract<Action, { op: 'copy' }>;
  assert.equal(hostCopy.expect, undefined, 'the guest version was moved aside first');
  assert.deepEqual(p.conflicts, [{ path: 'src/a.txt', guestCopy: c, host: 'file', guest: 'file', at: NOW.toISOString() }]);
});

test('both created the same name with different contents: a conflict too', () => {
  const p = reconcile(new Map(), snap({ n: file('h', 1) }), snap({ n: file('g', 2) }), { now: NOW });
  assert.equal(p.conflicts.length, 1);
});

test('a delete against an edit: the edit wins, both ways, nothing is lost', () => {
  const a = anc({ 'a.txt': 'file' });
  assert.deepEqual(ops(reconcile(a, new Map(), snap({ 'a.txt': file('g2') })).actions), ['copy guest->a.txt']);
  assert.deepEqual(ops(reconcile(a, snap({ 'a.txt': file('h2') }), new Map()).actions), ['copy host->a.txt']);
});

test('a folder deleted on one side while the other added a file in it: the file survives', () => {
  const a = anc({ d: 'dir', 'd/old': 'file' });
  const p = reconcile(a, new Map(), snap({ d: dir, 'd/old': file('g:d/old'), 'd/new': file('g3') }));
  // d/new goes to the host (its folder is made on the way); the delete of d
  // only removes an empty folder, so it cannot take d/new with it.
  assert.deepEqual(ops(p.actions), ['delete guest:d/old', 'delete guest:d', 'copy guest->d/new']);
});

test('a file replaced by a folder (and back) on one side', () => {
  const a = anc({ x: 'file' });
  assert.deepEqual(ops(reconcile(a, snap({ x: dir, 'x/y': file('h') }), snap({ x: file('g:x') })).actions), [
    'delete guest:x',
    'mkdir guest:x',
    'copy host->x/y',
  ]);
  const b = anc({ x: 'dir' });
  assert.deepEqual(ops(reconcile(b, snap({ x: file('h') }), snap({ x: dir })).actions), ['delete guest:x', 'copy host->x']);
});

test('a guest folder in conflict with a host file is moved aside with all it holds', () => {
  const p = reconcile(new Map(), snap({ x: file('h') }), snap({ x: dir, 'x/in': file('g') }), { now: NOW });
  assert.deepEqual(ops(p.actions), ['save x->x.conflict-guest-20250102-030405', 'copy host->x']);
  assert.equal(p.conflicts[0]!.guest, 'dir');
});

test('links are compared by target', () => {
  const p = reconcile(new Map(), snap({ l: link('a') }), snap({ l: link('a') }));
  assert.deepEqual(ops(p.actions), ['same l']);
  const q = reconcile(new Map(), snap({ l: link('a') }), snap({ l: link('b') }), { now: NOW });
  assert.equal(q.conflicts.length, 1);
});

test('conflict names carry the side and the time, and never collide', () => {
  const taken = new Set(['a.txt.conflict-guest-20250102-030405']);
  assert.equal(
    conflictName('a.txt', 'guest', NOW, (p) => taken.has(p)),
    'a.txt.conflict-guest-20250102-030405-2',
  );
  assert.equal(
    conflictName('d/b', 'host', NOW, () => false),
    'd/b.conflict-host-20250102-030405',
  );
});
