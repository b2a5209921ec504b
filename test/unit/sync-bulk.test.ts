/**
 * Big guest files are pulled beside the cycles (share/sync-bulk.ts): a
 * cycle that pulled a 100 MiB file took 27 s under TCG, and a host edit
 * waited behind it. Here the "guest" is this machine (sync-rig.ts), and
 * its tar of the files to pull is made slow (SLOW_S) by rewriting the
 * command, which also marks when the pull started.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import { findExecutable, waitFor } from '../../app/base/process-util.js';
import { BIG_PULL_BYTES } from '../../app/engine/share/sync-bulk.js';
import { startSyncRig, type SyncRig } from '../helpers/sync-rig.js';
import { shortTempDir } from '../helpers/temp.js';

const missing = ['perl', 'tar'].filter((x) => !findExecutable(x));
const SLOW_S = 3;

gatedSuite(
  'big guest files are pulled beside the sync cycles',
  missing.length ? `needs ${missing.join(', ')} (apt-get install perl tar)` : undefined,
  {},
  () => {
    const t = shortTempDir('bsyb');
    const host = path.join(t.dir, 'host');
    const mark = path.join(t.dir, 'pulling');
    let rig: SyncRig;

    before(async () => {
      fs.mkdirSync(host, { recursive: true });
      fs.writeFileSync(path.join(host, 'edit.txt'), 'v1');
      rig = await startSyncRig({
        hostPath: host,
        guestRoot: path.join(t.dir, 'guest'),
        stateDir: path.join(t.dir, 'state'),
        // Big files are pulled by a tar of their own (not the kept agent's answer).
        rewrite: (cmd) => cmd.replace('exec tar -c -f - --no-recursion', `touch '${mark}'; sleep ${SLOW_S}; exec tar -c -f - --no-recursion`),
      });
    });

    after(async () => {
      await rig?.close();
      t.cleanup();
    });

    test(`a host edit reaches the guest while a big file (${BIG_PULL_BYTES / 2 ** 20} MiB) is still being pulled, and both end equal`, async () => {
      const sync = rig.make();
      await sync.start();
      assert.equal(fs.readFileSync(rig.copy('edit.txt'), 'utf8'), 'v1');
      const big = Buffer.alloc(BIG_PULL_BYTES, 7);
      fs.writeFileSync(rig.copy('big.bin'), big);
      // A look at everything finds the big file and starts its pull (SLOW_S long).
      const first = sync.flush();
      assert.ok(await waitFor(() => fs.existsSync(mark), 10_000, 10), 'the pull of the big file started');
      const t0 = Date.now();
      fs.writeFileSync(path.join(host, 'edit.txt'), 'v2');
      sync.request(0);
      const edited = await waitFor(() => fs.readFileSync(rig.copy('edit.txt'), 'utf8') === 'v2', 10_000, 10);
      const editMs = Date.now() - t0;
      assert.ok(edited, 'the host edit reached the guest');
      assert.ok(editMs < SLOW_S * 1000, `the edit landed in ${editMs} ms, while the ${SLOW_S} s pull was still going`);
      await first;
      assert.ok(fs.readFileSync(path.join(host, 'big.bin')).equals(big), 'the big file landed whole');
      assert.equal(sync.view().problems, undefined);
      await sync.stop();
    });
  },
);
