/**
 * A whole synced folder without a VM: the "guest" is this machine behind a
 * real ssh2 exec channel (test/helpers/exec-guest.ts), so the engine's Perl
 * agent, GNU tar and the cycles run for real; only the mount over the share
 * is left out. Without inotifywait here, the guest side falls back to
 * rescanning every 2 s, which this test also covers.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import { GuestSession } from '../../app/engine/guest/session.js';
import { silentLogger } from '../../app/base/log.js';
import { findExecutable, waitFor } from '../../app/base/process-util.js';
import { syncId } from '../../app/engine/settings/sync-paths.js';
import { SyncSession, type SyncConflictView } from '../../app/engine/share/sync-session.js';
import { startExecGuest, type ExecGuest } from '../helpers/exec-guest.js';
import { shortTempDir } from '../helpers/temp.js';
import { newEd25519Pair } from '../../app/base/ssh-keys.js';

const missing = ['perl', 'tar'].filter((x) => !findExecutable(x));

gatedSuite(
  'a synced folder over a real ssh exec channel',
  missing.length ? `needs ${missing.join(', ')} on this host (apt-get install perl tar)` : undefined,
  {},
  () => {
    const t = shortTempDir('bsys');
    const host = path.join(t.dir, 'host');
    const guestRoot = path.join(t.dir, 'guest');
    const stateDir = path.join(t.dir, 'state');
    let guest: ExecGuest;
    let gs: GuestSession;
    let sync: SyncSession;
    const conflicts: SyncConflictView[] = [];
    const copy = (...p: string[]) => path.join(guestRoot, syncId(host), 'tree', ...p);
    const h = (...p: string[]) => path.join(host, ...p);
    const make = () => {
      const s = new SyncSession({ hostPath: host, guestPath: () => host, shareMounted: () => false, session: gs, log: silentLogger(), stateDir, guestRoot });
      s.on('conflict', (c) => conflicts.push(c));
      return s;
    };
    const settle = (what: string, check: () => boolean) => waitFor(check, 20_000, 50).then((ok) => assert.ok(ok, `${what} did not happen within 20 s`));

    before(async () => {
      fs.mkdirSync(path.join(host, 'src'), { recursive: true });
      fs.writeFileSync(h('a.txt'), 'A');
      fs.writeFileSync(h('src', 'b.sh'), 'B', { mode: 0o755 });
      fs.symlinkSync('a.txt', h('link'));
      const client = newEd25519Pair();
      const hostKey = newEd25519Pair();
      guest = await startExecGuest({ hostPrivateKey: hostKey.private, clientPublicKey: client.public });
      gs = new GuestSession({
        host: '127.0.0.1',
        port: guest.port,
        privateKey: client.private,
        hostPublicKey: hostKey.public,
        log: silentLogger(),
        vmAlive: () => true,
      });
      await gs.connect(5000);
      sync = make();
      await sync.start();
    });

    after(async () => {
      await sync?.stop();
      gs?.close();
      await guest?.close();
      t.cleanup();
    });

    test('the first copy brings everything to the guest, with modes and links', () => {
      const v = sync.view();
      assert.equal(v.state, 'watching', v.error);
      assert.equal(v.entries, 4);
      assert.equal(fs.readFileSync(copy('a.txt'), 'utf8'), 'A');
      assert.ok(fs.statSync(copy('src', 'b.sh')).mode & 0o100);
      assert.equal(fs.readlinkSync(copy('link')), 'a.txt');
      assert.ok(fs.existsSync(path.join(stateDir, `${syncId(host)}.json`)), 'the ancestor is saved');
    });

    test('edits, deletes and renames go both ways', async () => {
      fs.writeFileSync(h('a.txt'), 'A2');
      fs.renameSync(h('src', 'b.sh'), h('src', 'c.sh'));
      fs.writeFileSync(copy('from-guest.txt'), 'G');
      fs.mkdirSync(copy('dist'));
      fs.writeFileSync(copy('dist', 'x.js'), 'x');
      fs.rmSync(copy('link'));
      const arrived = {
        'dist/x.js on the host': () => fs.existsSync(h('dist', 'x.js')),
        'from-guest.txt on the host': () => fs.existsSync(h('from-guest.txt')),
        'link gone on the host': () => !fs.existsSync(h('link')),
        'src/c.sh in the guest': () => fs.existsSync(copy('src', 'c.sh')),
        'src/b.sh gone in the guest': () => !fs.existsSync(copy('src', 'b.sh')),
        'a.txt edited in the guest': () => fs.existsSync(copy('a.txt')) && fs.readFileSync(copy('a.txt'), 'utf8') === 'A2',
      };
      const missing = () => Object.keys(arrived).filter((k) => !arrived[k as keyof typeof arrived]());
      const ok = await waitFor(() => missing().length === 0, 20_000, 50);
      assert.ok(ok, `both ways did not happen within 20 s; still missing: ${missing().join(', ')}`);
      assert.equal(fs.readFileSync(h('from-guest.txt'), 'utf8'), 'G');
      assert.ok(fs.statSync(copy('src', 'c.sh')).mode & 0o100, 'a rename keeps the executable bit');
    });

    test('a burst of 2,500 files crosses in three batches (each packed while the one before is in the guest), every file whole, and so does its delete', async () => {
      for (let i = 0; i < 2500; i++) {
        fs.mkdirSync(h('burst', `d${i % 7}`), { recursive: true });
        fs.writeFileSync(h('burst', `d${i % 7}`, `f${i}.txt`), `file ${i}\n`.repeat(1 + (i % 5)));
      }
      const count = () =>
        [0, 1, 2, 3, 4, 5, 6].reduce((n, d) => n + (fs.existsSync(copy('burst', `d${d}`)) ? fs.readdirSync(copy('burst', `d${d}`)).length : 0), 0);
      await settle('all 2,500 in the guest copy', () => count() === 2500);
      await sync.flush();
      for (let i = 0; i < 2500; i++) assert.equal(fs.readFileSync(copy('burst', `d${i % 7}`, `f${i}.txt`), 'utf8'), `file ${i}\n`.repeat(1 + (i % 5)), `f${i}`);
      assert.equal(sync.view().state, 'watching', sync.view().error);
      fs.rmSync(h('burst'), { recursive: true });
      await settle('the burst deleted in the guest copy', () => !fs.existsSync(copy('burst')));
    });

    test('a conflict keeps both versions, reported once', async () => {
      // Stop watching so both edits happen before the next cycle.
      await sync.stop();
      fs.writeFileSync(h('a.txt'), 'host edit');
      fs.writeFileSync(copy('a.txt'), 'guest edit!');
      sync = make();
      await sync.start();
      assert.equal(conflicts.length, 1);
      const c = conflicts[0]!;
      assert.equal(c.path, h('a.txt'));
      assert.equal(fs.readFileSync(h('a.txt'), 'utf8'), 'host edit');
      assert.equal(fs.readFileSync(copy('a.txt'), 'utf8'), 'host edit');
      assert.equal(fs.readFileSync(c.guestCopy, 'utf8'), 'guest edit!');
      assert.equal(fs.readFileSync(copy(path.basename(c.guestCopy)), 'utf8'), 'guest edit!');
      assert.deepEqual(
        sync.view().conflicts.map((x) => x.path),
        [h('a.txt')],
      );
      fs.rmSync(c.guestCopy);
      await settle('the resolved conflict leaves the report', () => sync.view().conflicts.length === 0 && !fs.existsSync(copy(path.basename(c.guestCopy))));
    });

    test('the same edit on both sides is no conflict', async () => {
      await sync.stop();
      fs.writeFileSync(h('same.txt'), 'same');
      fs.writeFileSync(copy('same.txt'), 'same');
      sync = make();
      await sync.start();
      assert.equal(conflicts.length, 1, 'no new conflict');
    });

    test('changes made while nothing ran are picked up on start (a restart)', async () => {
      await sync.stop();
      fs.writeFileSync(h('while-off.txt'), 'w');
      fs.rmSync(h('from-guest.txt'));
      sync = make();
      await sync.start();
      assert.equal(fs.readFileSync(copy('while-off.txt'), 'utf8'), 'w');
      assert.ok(!fs.existsSync(copy('from-guest.txt')));
    });

    test('a guest copy that is not the one last synced is copied again, never read as deletes', async () => {
      await sync.stop();
      fs.rmSync(path.join(guestRoot, syncId(host)), { recursive: true });
      sync = make();
      await sync.start();
      assert.ok(fs.existsSync(h('a.txt')), 'the host keeps its files');
      // A first copy that failed (a timed-out command under load) is tried again by itself.
      await settle(
        `the copy (state ${sync.view().state}: ${sync.view().error ?? 'no error'})`,
        () => fs.existsSync(copy('a.txt')) && fs.existsSync(copy('dist', 'x.js')),
      );
      assert.equal(fs.readFileSync(copy('a.txt'), 'utf8'), 'host edit');
    });

    test('a guest copy made anew whose first copy failed is copied again on the next start, never read as deletes', async () => {
      await sync.stop();
      fs.rmSync(path.join(guestRoot, syncId(host)), { recursive: true });
      // The link drops just after the new guest copy is marked as this
      // folder's: the first copy never happens (under load, a timed-out push).
      let dropped = false;
      const fail = () => Promise.reject(new Error('the link dropped'));
      const flaky = new Proxy(gs, {
        get(target, prop) {
          if (prop === 'exec') {
            return (cmd: string, o?: Parameters<GuestSession['exec']>[1]) => {
              if (dropped) return fail();
              const r = target.exec(cmd, o);
              if (cmd.includes(`${syncId(host)}/token`) && cmd.includes('printf')) dropped = true;
              return r;
            };
          }
          if (prop === 'openExec') return dropped ? fail : target.openExec.bind(target);
          const v: unknown = Reflect.get(target, prop);
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const first = new SyncSession({
        hostPath: host,
        guestPath: () => host,
        shareMounted: () => false,
        session: flaky,
        log: silentLogger(),
        stateDir,
        guestRoot,
      });
      await first.start();
      assert.ok(dropped, 'the new copy was marked');
      assert.equal(first.view().state, 'error');
      await first.stop();
      sync = make();
      await sync.start();
      assert.equal(sync.view().state, 'watching', sync.view().error);
      assert.ok(fs.existsSync(h('a.txt')), 'the host keeps its files');
      assert.equal(fs.readFileSync(copy('a.txt'), 'utf8'), 'host edit');
      assert.ok(fs.existsSync(h('dist', 'x.js')));
    });

    test('a missing host folder stops the sync with an error; the guest copy stays', async () => {
      await sync.stop();
      fs.renameSync(host, `${host}.away`);
      try {
        sync = make();
        await sync.start();
        const v = sync.view();
        assert.equal(v.state, 'error');
        assert.match(v.error!, /does not exist/);
        assert.ok(fs.existsSync(copy('a.txt')));
      } finally {
        await sync.stop();
        fs.renameSync(`${host}.away`, host);
      }
    });

    test('remove deletes the guest copy and the state, not the host folder', async () => {
      sync = make();
      await sync.start();
      await sync.remove();
      assert.ok(!fs.existsSync(path.join(guestRoot, syncId(host))));
      assert.ok(!fs.existsSync(path.join(stateDir, `${syncId(host)}.json`)));
      assert.ok(fs.existsSync(h('a.txt')));
    });
  },
);
