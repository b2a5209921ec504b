/**
 * The guest watcher's echo of the sync's own changes (sync-echo.ts): an
 * event the sync caused is dropped once, anything else still makes a look.
 * With the rig (a real inotifywait on the "guest" copy), each host change
 * costs one cycle; before, its echo from the guest ran a second one.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { after, before, gatedSuite, test as gatedTest } from '../helpers/prereq-gate.js';
import { findExecutable, waitFor } from '../../app/base/process-util.js';
import { EXPECT_MS, GuestEchoes } from '../../app/engine/share/sync-echo.js';
import type { SyncSession } from '../../app/engine/share/sync-session.js';
import { startSyncRig, type SyncRig } from '../helpers/sync-rig.js';
import { shortTempDir } from '../helpers/temp.js';

test('an expected echo is dropped once; another kind, another path or a late one is not', () => {
  let now = 1000;
  const e = new GuestEchoes(() => now);
  e.expect([
    { path: 'a.js', kind: 'MOVED_TO' },
    { path: 'old.js', kind: 'DELETE' },
    { path: 'lib', kind: 'CREATE,ISDIR' },
  ]);
  assert.equal(e.consume('a.js', 'CLOSE_WRITE,CLOSE'), false, 'a container writing the file is a change');
  assert.equal(e.consume('b.js', 'MOVED_TO'), false, 'another path');
  assert.equal(e.consume('a.js', 'MOVED_TO'), true);
  assert.equal(e.consume('a.js', 'MOVED_TO'), false, 'used up: a second rename onto it is a change');
  assert.equal(e.consume('lib', 'CREATE,ISDIR'), true);
  now += EXPECT_MS;
  assert.equal(e.consume('old.js', 'DELETE'), false, 'too late to be the echo');
  assert.equal(e.size, 0);
});

test('an op expected twice is dropped twice; one that did not apply is forgotten', () => {
  const e = new GuestEchoes(() => 0);
  e.expect([{ path: 'a.js', kind: 'MOVED_TO' }]);
  e.expect([{ path: 'a.js', kind: 'MOVED_TO' }]);
  e.forget('a.js');
  assert.equal(e.consume('a.js', 'MOVED_TO'), true);
  assert.equal(e.consume('a.js', 'MOVED_TO'), false);
  e.expect([{ path: 'b.js', kind: 'MOVED_TO' }]);
  e.forget('b.js');
  assert.equal(e.consume('b.js', 'MOVED_TO'), false, 'the op was skipped: a container rename there is a change');
});

const missing = ['perl', 'tar', 'inotifywait'].filter((x) => !findExecutable(x));

gatedSuite(
  "the sync's own guest changes do not come back as changes",
  missing.length ? `needs ${missing.join(', ')} on this host (apt-get install perl tar inotify-tools)` : undefined,
  {},
  () => {
    const t = shortTempDir('bsye');
    const host = path.join(t.dir, 'host');
    let rig: SyncRig;
    let sync: SyncSession;

    before(async () => {
      fs.mkdirSync(host);
      fs.writeFileSync(path.join(host, 'edit.txt'), 'v1');
      fs.writeFileSync(path.join(host, 'gone.txt'), 'x');
      rig = await startSyncRig({ hostPath: host, guestRoot: path.join(t.dir, 'guest'), stateDir: path.join(t.dir, 'state') });
      sync = rig.make();
      await sync.start();
    });

    after(async () => {
      await rig?.close();
      t.cleanup();
    });

    /** Make a change on the host, wait for the guest copy, then for quiet; the cycles it took. */
    async function cyclesFor(change: () => void, landed: () => boolean): Promise<number> {
      // Quiet first: the first copy's (or the last step's) cycles are over.
      await new Promise((r) => setTimeout(r, 700));
      const before = sync.view().cycles;
      change();
      assert.ok(await waitFor(landed, 15_000, 20), 'the change did not reach the guest copy');
      // An echo comes back within a few hundred ms here; its cycle would follow at once.
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(sync.view().state, 'watching');
      return sync.view().cycles - before;
    }

    gatedTest('a new file, an edit, a delete and a new folder cost one cycle each, not two', async () => {
      const steps: [string, () => void, () => boolean][] = [
        ['new file', () => fs.writeFileSync(path.join(host, 'new.txt'), 'N'), () => fs.existsSync(rig.copy('new.txt'))],
        [
          'edit',
          () => fs.writeFileSync(path.join(host, 'edit.txt'), 'v2'),
          () => fs.existsSync(rig.copy('edit.txt')) && fs.readFileSync(rig.copy('edit.txt'), 'utf8') === 'v2',
        ],
        ['delete', () => fs.rmSync(path.join(host, 'gone.txt')), () => !fs.existsSync(rig.copy('gone.txt'))],
        ['new folder', () => fs.mkdirSync(path.join(host, 'lib')), () => fs.existsSync(rig.copy('lib'))],
      ];
      const spent: string[] = [];
      let total = 0;
      for (const [what, change, landed] of steps) {
        const n = await cyclesFor(change, landed);
        spent.push(`${what}: ${n}`);
        total += n;
      }
      // One each; a host watcher that splits a change in two batches may add one.
      assert.ok(total <= steps.length + 1, `cycles per change: ${spent.join(', ')}`);
    });

    gatedTest("a container's change right after the sync's own is still seen", async () => {
      fs.writeFileSync(path.join(host, 'both.txt'), 'host');
      assert.ok(await waitFor(() => fs.existsSync(rig.copy('both.txt')), 15_000, 20));
      fs.writeFileSync(rig.copy('both.txt'), 'guest');
      const ok = await waitFor(() => fs.readFileSync(path.join(host, 'both.txt'), 'utf8') === 'guest', 15_000, 50);
      assert.ok(ok, 'the guest write after the placed file did not reach the host');
    });
  },
);
