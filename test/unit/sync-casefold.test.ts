/**
 * Sync mode onto a case-insensitive host folder (as macOS and Windows have
 * by default), with only what a plain container can do in its synced
 * folder: no forged scans, no root in the VM. The host folder is a FUSE
 * file system that folds case and Unicode form (test/helpers/casefold.ts);
 * where FUSE cannot mount, the test says why and runs the same attack with
 * the folding done by hand (the host's link already carries the folded name).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, gatedSuite, IN_CI, test } from '../helpers/prereq-gate.js';
import { findExecutable, sleep } from '../../app/base/process-util.js';
import { applyHostOp } from '../../app/engine/share/sync-host.js';
import type { SyncSession } from '../../app/engine/share/sync-session.js';
import { mountCaseFold, type CaseFoldMount } from '../helpers/casefold.js';
import { cycleBound, flushCycle, startSyncRig, type SyncRig } from '../helpers/sync-rig.js';
import { shortTempDir } from '../helpers/temp.js';
import { fingerprint } from '../helpers/fingerprint.js';

const missing = ['perl', 'tar'].filter((x) => !findExecutable(x));

gatedSuite(
  'a synced folder on a case-insensitive host file system',
  missing.length ? `needs ${missing.join(', ')} on this host (apt-get install perl tar)` : undefined,
  { timeout: 90_000 },
  () => {
    const t = shortTempDir('bsyc');
    const outside = path.join(t.dir, 'outside');
    let fold: CaseFoldMount | { why: string };
    let host = '';
    let rig: SyncRig | undefined;
    let sync: SyncSession | undefined;

    before(async () => {
      fs.mkdirSync(outside);
      fs.writeFileSync(path.join(outside, 'keep.plist'), 'precious');
      fold = await mountCaseFold(t.dir);
      if ('why' in fold) {
        // CI installs python3-fusepy and has /dev/fuse: a missing one there is a bug in the install step.
        if (IN_CI) throw new Error(`the case-folding FUSE folder cannot mount: ${fold.why}`);
        console.log(`# FUSE case-folding folder unavailable: ${fold.why}; the case-folding steps are simulated instead`);
        return;
      }
      host = fold.mount;
      rig = await startSyncRig({ hostPath: host, guestRoot: path.join(t.dir, 'guest'), stateDir: path.join(t.dir, 'state') });
      sync = rig.make();
      await sync.start();
    });

    after(async () => {
      await rig?.close();
      if (fold && !('why' in fold)) await fold.unmount();
      t.cleanup();
    });

    test('the folder folds case (or the test says why it cannot)', (tc) => {
      if ('why' in fold) return void tc.diagnostic(`simulated: ${fold.why}`);
      fs.writeFileSync(path.join(host, 'Probe'), 'p');
      assert.equal(fs.readFileSync(path.join(host, 'PROBE'), 'utf8'), 'p', 'PROBE finds Probe');
      assert.deepEqual(
        fs.readdirSync(host).filter((n) => /probe/i.test(n)),
        ['Probe'],
        'the name keeps its case',
      );
      fs.rmSync(path.join(host, 'probe'));
    });

    test('a container makes link A -> outside, then folder a/ with a file: nothing is written outside', async (tc) => {
      const before = fingerprint(outside);
      if ('why' in fold) {
        // By hand: on a folding host, the host's lookup of `a` finds the link `A`.
        const root = path.join(t.dir, 'sim');
        fs.mkdirSync(root, { recursive: true });
        fs.symlinkSync(outside, path.join(root, 'a'));
        const r = await applyHostOp(root, { op: 'link', path: 'a/evil.plist', target: '/bin/sh' });
        assert.equal(r.status, 'err');
        assert.deepEqual(fingerprint(outside), before);
        return void tc.diagnostic(`simulated: ${fold.why}`);
      }
      // Cycle 1: the link (a container can make any link in its folder).
      fs.symlinkSync(outside, rig!.copy('A'));
      await flushCycle(sync!);
      assert.ok(fs.lstatSync(path.join(fold.backing, 'A')).isSymbolicLink(), 'the link reached the host as a link');
      // Cycle 2: a folder `a` (a different name in the guest's Linux file system) and a file in it.
      fs.mkdirSync(rig!.copy('a'));
      fs.writeFileSync(rig!.copy('a', 'evil.plist'), '<plist>evil</plist>');
      fs.mkdirSync(rig!.copy('a', 'sub'));
      await flushCycle(sync!);
      await flushCycle(sync!);
      assert.deepEqual(fingerprint(outside), before, 'nothing outside the synced folder changed');
      assert.ok(fs.lstatSync(path.join(fold.backing, 'A')).isSymbolicLink(), 'the host still has the link, untouched');
      const problems = sync!.view().problems ?? [];
      tc.diagnostic(JSON.stringify(problems.map((p) => `${path.relative(host, p.path)}: ${p.problem}`)));
      assert.ok(
        problems.some((p) => p.path === path.join(host, 'a')),
        'the colliding folder is reported',
      );
      assert.ok(
        problems.some((p) => p.path === path.join(host, 'a', 'evil.plist')),
        'the file in it is reported',
      );
    });

    test('README and readme in the guest: one is reported, the sync does not spin', async (tc) => {
      if ('why' in fold)
        return void tc.diagnostic(`not run without a case-folding folder: ${fold.why}; the unwritable-folder test in sync-hostile.test.ts covers the backoff`);
      fs.writeFileSync(rig!.copy('README'), 'upper');
      fs.writeFileSync(rig!.copy('readme'), 'lower');
      await flushCycle(sync!);
      const c0 = sync!.view().cycles;
      await sleep(3000);
      const cycles = sync!.view().cycles - c0;
      tc.diagnostic(`${cycles} cycles in 3 s`);
      assert.ok(cycles <= cycleBound(), `the sync backs off (${cycles} cycles in 3 s; at most ${cycleBound()} expected)`);
      const names = fs.readdirSync(fold.backing).filter((n) => /^readme$/i.test(n));
      assert.equal(names.length, 1, 'one of them reached the host');
      const other = names[0] === 'README' ? 'readme' : 'README';
      assert.equal(fs.readFileSync(path.join(fold.backing, names[0]!), 'utf8'), names[0] === 'README' ? 'upper' : 'lower', 'with its own content');
      assert.ok(
        (sync!.view().problems ?? []).some((p) => p.path === path.join(host, other)),
        `${other} is reported: ${JSON.stringify(sync!.view().problems)}`,
      );
      assert.equal(fs.readFileSync(rig!.copy('README'), 'utf8'), 'upper', "the guest's files are left as they are");
      assert.equal(fs.readFileSync(rig!.copy('readme'), 'utf8'), 'lower');
    });
  },
);
