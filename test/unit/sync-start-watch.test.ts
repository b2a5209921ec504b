/**
 * A change made the moment a synced folder's start() has resolved must be
 * noticed. start() used to run the first cycle and only then start the
 * watchers without waiting for them: a change made before the watches were
 * in place was never reported, and nothing looked again until the safety
 * rescan a minute later (sync-session.test.ts timed out on a loaded
 * machine). Here the guest's watcher is made slow to start (inotifywait runs
 * 1.5 s late), so the change always lands in that window.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import { findExecutable, waitFor } from '../../app/base/process-util.js';
import type { SyncSession } from '../../app/engine/share/sync-session.js';
import { startSyncRig, type SyncRig } from '../helpers/sync-rig.js';
import { shortTempDir } from '../helpers/temp.js';

const missing = ['perl', 'tar', 'inotifywait'].filter((x) => !findExecutable(x));
/** How late the guest's watcher starts. */
const WATCHER_LAG_MS = 1500;
/**
 * How long the change may take: well under the minute's safety rescan (so
 * only a watcher or a look after the watchers started can bring it), and
 * many cycles of these few files even on a loaded machine (about 1 s each).
 */
const NOTICED_WITHIN_MS = 15_000;

gatedSuite(
  'a synced folder notices changes made right after it started',
  missing.length ? `needs ${missing.join(', ')} on this host (apt-get install perl tar inotify-tools)` : undefined,
  {},
  () => {
    const t = shortTempDir('bsyw');
    const host = path.join(t.dir, 'host');
    let rig: SyncRig;
    let sync: SyncSession;

    before(async () => {
      fs.mkdirSync(host);
      fs.writeFileSync(path.join(host, 'a.txt'), 'A');
      rig = await startSyncRig({
        hostPath: host,
        guestRoot: path.join(t.dir, 'guest'),
        stateDir: path.join(t.dir, 'state'),
        rewrite: (c) => (c.includes('inotifywait') ? `sleep ${WATCHER_LAG_MS / 1000}; ${c}` : c),
      });
      sync = rig.make();
    });

    after(async () => {
      await rig?.close();
      t.cleanup();
    });

    test('a guest change made as start() resolves reaches the host, though the guest watcher was late', async () => {
      await sync.start();
      assert.equal(sync.view().state, 'watching');
      fs.writeFileSync(rig.copy('from-guest.txt'), 'G');
      const ok = await waitFor(() => fs.existsSync(path.join(host, 'from-guest.txt')), NOTICED_WITHIN_MS, 50);
      assert.ok(ok, `the guest change did not reach the host within ${NOTICED_WITHIN_MS / 1000} s (cycles: ${sync.view().cycles})`);
      assert.equal(fs.readFileSync(path.join(host, 'from-guest.txt'), 'utf8'), 'G');
    });
  },
);
