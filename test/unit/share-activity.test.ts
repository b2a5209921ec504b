import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adviseShares, BUSY_CHANGES, BUSY_MINUTES, FolderActivity } from '../../app/engine/share/share-activity.js';
import { formatShares } from '../../app/cli/output.js';
import type { ShareViewWire } from '../../app/contract/contract.js';

const MIN = 60_000;
const view = (hostPath: string): ShareViewWire => ({ hostPath, guestPath: hostPath, readOnly: false, mechanism: 'virtiofs', state: 'mounted' });

test('folder activity: changes are counted over the last ten minutes, and crossing the mark says busy once', () => {
  const a = new FolderActivity();
  const busy: string[] = [];
  a.on('busy', (f) => busy.push(f));
  const t0 = 100 * MIN;
  a.count('/p/a', BUSY_CHANGES - 1, t0);
  assert.equal(a.changes('/p/a', t0), BUSY_CHANGES - 1);
  assert.deepEqual(busy, []);
  a.count('/p/a', 1, t0 + 1000);
  a.count('/p/a', 500, t0 + 2000);
  assert.deepEqual(busy, ['/p/a'], 'once, when it crossed');
  a.count('/p/a', 10, t0 + 5 * MIN);
  assert.equal(a.changes('/p/a', t0 + 5 * MIN), BUSY_CHANGES + 510);
  // Ten minutes after the burst only the later changes are left; then nothing, and the folder is forgotten.
  assert.equal(a.changes('/p/a', t0 + BUSY_MINUTES * MIN), 10);
  assert.equal(a.changes('/p/a', t0 + 15 * MIN), 0);
  assert.deepEqual(a.folders(), []);
  // A new burst after the quiet says busy again.
  a.count('/p/a', BUSY_CHANGES, t0 + 20 * MIN);
  assert.deepEqual(busy, ['/p/a', '/p/a']);
  a.count('/p/b', 0, t0);
  assert.deepEqual(a.folders(), ['/p/a']);
});

test('advice: the busiest unsynced folder goes to the innermost share that holds it; quiet and synced folders get none', () => {
  const a = new FolderActivity();
  const now = 50 * MIN;
  a.count('/home/u/web', 3000, now);
  a.count('/home/u/api', 9000, now);
  a.count('/home/u/quiet', BUSY_CHANGES - 1, now);
  a.count('/srv/data/db', 4000, now);
  a.count('/home/u/synced/x', 20000, now);
  const views = [view('/home/u'), view('/srv/data'), view('/srv/data/db'), view('/opt')];
  const out = adviseShares(views, a, ['/home/u/synced'], now);
  assert.deepEqual(out[0]!.busy, { folder: '/home/u/api', changes: 9000, minutes: BUSY_MINUTES });
  assert.equal(out[0]!.advice, "/home/u/api changed 9,000 times in 10 minutes: synced, containers work on it at the VM disk's speed");
  assert.equal(out[1]!.busy, undefined, '/srv/data/db is its own share');
  assert.equal(out[2]!.busy?.folder, '/srv/data/db');
  assert.deepEqual(out[3], views[3], 'a share with nothing busy is left as it was');
  // Once synced, no advice for it: the next busiest.
  assert.equal(adviseShares(views, a, ['/home/u/api', '/home/u/synced'], now)[0]!.busy?.folder, '/home/u/web');
  assert.equal(adviseShares(views, a, ['/home/u'], now)[0]!.busy, undefined);
  assert.equal(adviseShares(views, a, [], now + BUSY_MINUTES * MIN)[0]!.busy, undefined, 'old news');
});

test('berth shares: a busy folder gets a line with why and the command that syncs it', () => {
  const a = new FolderActivity();
  a.count('/home/u/my app', 2500);
  const [v] = adviseShares([view('/home/u')], a, []);
  const text = formatShares([v!], [{ hostPath: '/home/u' }]);
  assert.match(text, /Sync it: \/home\/u\/my app changed 2,500 times in 10 minutes: synced, containers work on it at the VM disk's speed\./);
  assert.match(text, /\n {2}berth sync add '\/home\/u\/my app'$/);
  assert.doesNotMatch(formatShares([view('/home/u')], [{ hostPath: '/home/u' }]), /Sync it/);
});
