/**
 * The scope of a cycle that follows the watchers' events (sync-scope.ts):
 * which paths it looks at, which part of the ancestor it plans with, and
 * what of a guest's answer it believes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ancestorIn, coveredBy, scopeOf, within } from '../../app/engine/share/sync-scope.js';
import type { Ancestor, AncestorEntry, Entry, Snapshot } from '../../app/engine/share/sync-plan.js';
import { SYNC_TEMP_PREFIX } from '../../app/engine/settings/sync-paths.js';

test('a path inside another named one is covered by it; the folders on the way are looked at alone', () => {
  const s = scopeOf(['a/b/c.txt', 'a/b', 'a-x', 'a/b/d/e', 'z/y.txt', 'z/y.txt'])!;
  assert.deepEqual(s.deep, ['a-x', 'a/b', 'z/y.txt']);
  assert.deepEqual(s.shallow, ['a', 'z']);
});

test('our temporary files are no change; a path that is not plain relative asks for everything', () => {
  assert.deepEqual(scopeOf([`a/${SYNC_TEMP_PREFIX}123`]), { deep: [], shallow: [] });
  assert.equal(scopeOf(['../etc/passwd']), undefined);
  assert.equal(scopeOf(['/abs']), undefined);
  assert.equal(scopeOf(['a//b']), undefined);
  assert.equal(scopeOf(['']), undefined);
});

test('coveredBy: the path or a folder it is in', () => {
  const set = new Set(['a/b']);
  assert.ok(coveredBy(set, 'a/b'));
  assert.ok(coveredBy(set, 'a/b/c/d'));
  assert.ok(!coveredBy(set, 'a/bc'));
  assert.ok(!coveredBy(set, 'a'));
});

test('the ancestor in scope: the named paths, and what was under a folder on either side', () => {
  const f = (sig: string) => ({ kind: 'file' as const, host: sig, guest: sig });
  const anc: Ancestor = new Map<string, AncestorEntry>([
    ['a', { kind: 'dir', host: '', guest: '' }],
    ['a/x', f('1')],
    ['a/y/z', f('2')],
    ['b.txt', f('3')],
    ['c', { kind: 'dir', host: '', guest: '' }],
    ['c/in', f('4')],
  ]);
  const s = scopeOf(['a', 'b.txt', 'c/in'])!;
  const none: Snapshot = new Map();
  assert.deepEqual([...ancestorIn(anc, s, none, none).keys()].sort(), ['a', 'a/x', 'a/y/z', 'b.txt', 'c', 'c/in']);
  // A file edited alone: no walk over the rest of the ancestor.
  assert.deepEqual([...ancestorIn(anc, scopeOf(['b.txt'])!, none, none).keys()], ['b.txt']);
  // A folder the host made where the ancestor knew nothing: what the ancestor had under that name comes along.
  const anc2: Ancestor = new Map([['n/old', f('5')]]);
  const host: Snapshot = new Map([['n', { kind: 'dir', sig: '' }]]);
  assert.deepEqual([...ancestorIn(anc2, scopeOf(['n'])!, host, none).keys()], ['n/old']);
});

test('what the guest answers outside the scope is dropped (a hostile guest may name anything)', () => {
  const e = { kind: 'file' as const, sig: 's' };
  const g: Snapshot = new Map<string, Entry>([
    ['a', { kind: 'dir', sig: '' }],
    ['a/b', e],
    ['a/b/c', e],
    ['elsewhere', e],
    ['a/other', e],
  ]);
  assert.deepEqual([...within(g, scopeOf(['a/b'])!).keys()], ['a', 'a/b', 'a/b/c']);
});
