/**
 * Sync mode against a hostile guest: root in the VM can forge any scan the
 * agent sends, so the host must never write, delete or read through a link
 * a guest made, and a change that can never be applied must not spin the
 * sync (issue 14, findings 3 and 4).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import { create as tarCreate } from 'tar';
import type { GuestSession } from '../../app/engine/guest/session.js';
import { silentLogger } from '../../app/base/log.js';
import { findExecutable, sleep, waitFor } from '../../app/base/process-util.js';
import { applyHostOp, hostEntry, receiveTar, scanHost } from '../../app/engine/share/sync-host.js';
import { guestSyncDirs } from '../../app/engine/settings/sync-paths.js';
import { reconcile, type Action, type Entry, type Snapshot } from '../../app/engine/share/sync-plan.js';
import { PathRetries } from '../../app/engine/share/sync-retry.js';
import { applyActions, pullFiles } from '../../app/engine/share/sync-transfer.js';
import { fingerprint } from '../helpers/fingerprint.js';
import { cycleBound, flushCycle, startSyncRig, type SyncRig } from '../helpers/sync-rig.js';
import { agentLink } from '../../app/engine/share/sync-guest.js';
import { shortTempDir } from '../helpers/temp.js';
import { ustar } from '../helpers/ustar.js';

/** A guest session whose only channel answers with `tar` (what the hostile guest sends for a pull). */
function tarGuest(tarStream: NodeJS.ReadableStream): GuestSession {
  return {
    openExec: async () => Duplex.from({ readable: tarStream, writable: new PassThrough().resume() }),
    exec: async () => ({ code: 0, stdout: '', stderr: '' }),
  } as unknown as GuestSession;
}

test('a forged guest scan (link a -> outside, then file a/x) changes nothing outside the synced folder', async () => {
  const t = shortTempDir('bsyf');
  try {
    const root = path.join(t.dir, 'host');
    const outside = path.join(t.dir, 'outside');
    const src = path.join(t.dir, 'guest');
    fs.mkdirSync(root);
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'keep'), 'precious');
    fs.mkdirSync(path.join(src, 'a'), { recursive: true });
    fs.writeFileSync(path.join(src, 'a', 'x'), 'evil');
    const before = fingerprint(outside);

    // What root in the guest can send: first a link `a` out of the folder;
    // the next cycle, `a/x` and `a/sub` "in" it.
    const link = { kind: 'link' as const, sig: `l:${outside}`, target: outside };
    const anc = new Map();
    const noProgress = { starting: () => undefined, sent: () => undefined, landed: async () => undefined };
    const run = async (forged: Snapshot, files: string[]) => {
      const plan = reconcile(anc, await scanHost(root), forged);
      const tar = new PassThrough();
      if (files.length) tarCreate({ cwd: src, portable: true, noDirRecurse: true }, files).pipe(tar);
      else tar.end();
      return applyActions({ session: tarGuest(tar), hostPath: root, dirs: guestSyncDirs('x', t.dir), log: silentLogger(), anc }, plan.actions, noProgress);
    };
    await run(new Map([['a', link]]), []);
    const out = await run(
      new Map<string, Entry>([
        ['a', link],
        ['a/sub', { kind: 'dir', sig: '' }],
        ['a/x', { kind: 'file', sig: '4:1.000000:1:-', size: 4 }],
      ]),
      ['a/x'],
    );

    assert.deepEqual(fingerprint(outside), before, 'nothing outside the synced folder changed');
    assert.equal(fs.readlinkSync(path.join(root, 'a')), outside, 'the link itself is synced (as a link)');
    assert.ok(!anc.has('a/x') && !anc.has('a/sub'), 'what could not be applied is not recorded as in sync');
    assert.equal(out.copiedToHost.size, 0);

    // Modes: only the executable bit travels, never group/world write or setuid.
    fs.writeFileSync(path.join(src, 'wide'), 'w');
    fs.chmodSync(path.join(src, 'wide'), 0o4777);
    fs.writeFileSync(path.join(src, 'plain'), 'p');
    fs.chmodSync(path.join(src, 'plain'), 0o666);
    const s1 = new PassThrough();
    tarCreate({ cwd: src, noDirRecurse: true }, ['wide', 'plain']).pipe(s1);
    await receiveTar(
      root,
      s1,
      new Map([
        ['wide', {}],
        ['plain', {}],
      ]),
    );
    assert.equal(fs.statSync(path.join(root, 'wide')).mode & 0o7777, 0o755);
    assert.equal(fs.statSync(path.join(root, 'plain')).mode & 0o7777, 0o644);

    // The same through each host operation, and a delete through the link.
    const keep = (await hostEntry(path.join(outside, 'keep')))!;
    for (const r of [
      await applyHostOp(root, { op: 'mkdir', path: 'a/made' }),
      await applyHostOp(root, { op: 'link', path: 'a/l', target: '/etc/passwd' }),
      await applyHostOp(root, { op: 'del', path: 'a/keep', expect: keep }),
    ]) {
      assert.equal(r.status, 'err', `${r.path} is refused`);
      assert.ok(r.refused, `${r.path} is reported as refused, not retried at once`);
      assert.match(r.info, /a is a link on the host/);
    }
    const s2 = new PassThrough();
    tarCreate({ cwd: src, portable: true, noDirRecurse: true }, ['a/x']).pipe(s2);
    const [r] = await receiveTar(root, s2, new Map([['a/x', {}]]));
    assert.equal(r!.status, 'err');
    assert.deepEqual(fingerprint(outside), before, 'still nothing outside changed');
  } finally {
    t.cleanup();
  }
});

/** A guest whose kept sync agent answers every request with `body` (a pull's forged tar). */
function forgedAgentGuest(body: Buffer): GuestSession {
  const openExec = async () => {
    let answered = false;
    const ch = new Duplex({
      read() {},
      write(_chunk, _enc, cb) {
        if (!answered) {
          answered = true;
          setImmediate(() => ch.push(Buffer.concat([Buffer.from(`ok ${body.length}\n`), body])));
        }
        cb();
      },
    });
    return Object.assign(ch, { stderr: new PassThrough(), close: () => ch.destroy() });
  };
  return { openExec, exec: async () => ({ code: 0, stdout: '', stderr: '' }) } as unknown as GuestSession;
}

test("a kept agent's forged pull (paths out of the folder, through a link, setuid) changes nothing outside the synced folder", async () => {
  const t = shortTempDir('bsyp');
  try {
    const root = path.join(t.dir, 'host');
    const outside = path.join(t.dir, 'outside');
    fs.mkdirSync(root);
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'keep'), 'precious');
    fs.symlinkSync(outside, path.join(root, 'a'));
    const before = fingerprint(outside);
    const tar = Buffer.concat([
      ustar('../outside/keep', 'evil'),
      ustar(`${outside}/keep`, 'evil'),
      ustar('a/keep', 'evil'),
      ustar('wide', 'w', 0o4777),
      Buffer.alloc(1024),
    ]);
    const file = (p: string): Extract<Action, { op: 'copy' }> => ({
      op: 'copy',
      from: 'guest',
      path: p,
      entry: { kind: 'file', sig: '4:1.000000:1:-', size: 4 },
    });
    const want = new Map(['../outside/keep', 'a/keep', 'wide'].map((p) => [p, file(p)]));
    const results = await pullFiles(
      { session: forgedAgentGuest(tar), hostPath: root, dirs: guestSyncDirs('x', t.dir), log: silentLogger(), anc: new Map() },
      want,
    );
    assert.deepEqual(fingerprint(outside), before, 'nothing outside the synced folder changed');
    assert.equal(results.find((r) => r.path === 'a/keep')?.status, 'err', 'a file through a host link is refused');
    assert.ok(!results.some((r) => r.path === '../outside/keep' && r.status === 'ok'));
    assert.equal(fs.statSync(path.join(root, 'wide')).mode & 0o7777, 0o755, 'the executable bit only: no setuid, no group/world write');
  } finally {
    t.cleanup();
  }
});

const missing = ['perl', 'tar'].filter((x) => !findExecutable(x));

gatedSuite(
  'a hostile guest over a real ssh exec channel',
  missing.length ? `needs ${missing.join(', ')} on this host (apt-get install perl tar)` : undefined,
  { timeout: 60_000 },
  () => {
    const t = shortTempDir('bsyg');
    const host = path.join(t.dir, 'host');
    const outside = path.join(t.dir, 'outside');
    const guestRoot = path.join(t.dir, 'guest');
    const stateDir = path.join(t.dir, 'state');
    let rig: SyncRig;
    /** Forge the agent's scans: `a` is reported as a link out of the folder (the real `a/` is a folder). */
    let forge = false;

    before(async () => {
      fs.mkdirSync(host, { recursive: true });
      fs.mkdirSync(outside);
      fs.writeFileSync(path.join(outside, 'keep'), 'precious');
      rig = await startSyncRig({
        hostPath: host,
        guestRoot,
        stateDir,
        // The agent itself lies, run alone or kept running: an END block, or a look wrapped, adds
        // the forged entry after the real ones (later entries win).
        rewrite: (cmd) => {
          if (!forge) return cmd;
          if (/^exec perl -e .* '(scan|look)' '[^']*' '[^']*' '[^']*'$/s.test(cmd))
            return cmd.replace('use strict;', `use strict; END { print qq(link\\0a\\0l:${outside}\\0${outside}\\0) }`);
          if (/'serve' '[^']*' '[^']*' '[^']*'$/.test(cmd))
            return cmd.replace(
              '# Kept running for a synced folder',
              `{ my $real = \\&look; *look = sub { $real->(@_); out(qq(link), qq(a), qq(l:${outside}), qq(${outside})); }; }\n# Kept running for a synced folder`,
            );
          return cmd;
        },
      });
    });

    after(async () => {
      await rig?.close();
      t.cleanup();
    });

    test('root in the guest forges a scan (link a -> outside, file a/x): nothing outside changes, the refusal is reported', async () => {
      const sync = rig.make();
      await sync.start();
      const before = fingerprint(outside);
      forge = true;
      // The kept agent was started honest: the next request starts the lying one.
      agentLink(rig.session, rig.copy()).close();
      try {
        // One cycle: the guest "has" a link `a` out of the folder; the host makes it (a link is synced as a link).
        await flushCycle(sync);
        assert.ok(fs.lstatSync(path.join(host, 'a')).isSymbolicLink());
        // The next: `a/sub` and `a/x` "in" it.
        fs.mkdirSync(rig.copy('a', 'sub'), { recursive: true });
        fs.writeFileSync(rig.copy('a', 'x'), 'evil');
        await flushCycle(sync);
        assert.deepEqual(fingerprint(outside), before, 'nothing outside the synced folder changed');
        assert.ok(fs.lstatSync(path.join(host, 'a')).isSymbolicLink());
        const problems = sync.view().problems ?? [];
        assert.ok(
          problems.some((p) => p.path === path.join(host, 'a', 'x') && /a is a link on the host/.test(p.problem)),
          `a/x is reported: ${JSON.stringify(sync.view())}`,
        );
      } finally {
        forge = false;
        agentLink(rig.session, rig.copy()).close();
        await sync.stop();
      }
    });

    test('a change that can never be applied (an unwritable host folder) backs off and is reported, no livelock', async (t) => {
      fs.rmSync(host, { recursive: true, force: true });
      fs.rmSync(guestRoot, { recursive: true, force: true });
      fs.rmSync(stateDir, { recursive: true, force: true });
      const ro = path.join(host, 'ro');
      fs.mkdirSync(ro, { recursive: true });
      // Root ignores modes: a read-only bind mount makes the folder unwritable for root too.
      let undo = () => fs.chmodSync(ro, 0o755);
      if (process.getuid?.() === 0) {
        const m = spawnSync('sh', ['-c', `mount --bind '${ro}' '${ro}' && mount -o remount,bind,ro '${ro}'`], { encoding: 'utf8' });
        assert.equal(m.status, 0, `cannot make a read-only bind mount as root: ${m.stderr}`);
        undo = () => void spawnSync('umount', [ro]);
        t.diagnostic('the unwritable folder is a read-only bind mount (running as root)');
      } else fs.chmodSync(ro, 0o555);
      const sync = rig.make();
      try {
        await sync.start();
        fs.writeFileSync(rig.copy('ro', 'new.txt'), 'from the guest');
        await flushCycle(sync);
        const c0 = sync.view().cycles;
        await sleep(3000);
        const cycles = sync.view().cycles - c0;
        t.diagnostic(`${cycles} cycles in 3 s with one unappliable change`);
        assert.ok(cycles <= cycleBound(), `the sync backs off (${cycles} cycles in 3 s; at most ${cycleBound()} expected)`);
        const p = (sync.view().problems ?? []).find((x) => x.path === path.join(ro, 'new.txt'));
        assert.ok(p, `the path is reported: ${JSON.stringify(sync.view())}`);
        assert.ok(p.attempts >= 2 && p.attempts <= 8, `tried a few times, not forever (${p.attempts})`);
        assert.equal(sync.view().state, 'watching', 'the rest of the folder keeps syncing');

        // Once the host can take it, the next try applies it and the report goes.
        undo();
        undo = () => undefined;
        fs.chmodSync(ro, 0o755);
        const ok = await waitFor(() => fs.existsSync(path.join(ro, 'new.txt')) && !(sync.view().problems ?? []).length, 20_000, 100);
        assert.ok(ok, `applied after the folder became writable: ${JSON.stringify(sync.view().problems)}`);
      } finally {
        undo();
        await sync.stop();
      }
    });
  },
);

test('per-path retries: a cycle settled in one call reports each path once, and a look at everything forgets what it no longer plans', () => {
  const r = new PathRetries({ reportAfter: 2, now: () => 0 });
  const abs = (p: string) => `/h/${p}`;
  const failed = new Map([
    ['a', { info: 'busy', refused: false }],
    ['b', { info: 'a link on the way', refused: true }],
  ]);
  assert.deepEqual(
    r.settle([], failed, undefined, abs).map((v) => [v.path, v.problem]),
    [['/h/b', 'a link on the way']],
    'a refusal at once',
  );
  assert.deepEqual(
    r.settle([], failed, undefined, abs).map((v) => v.path),
    ['/h/a'],
    'a at its second failure; b not again',
  );
  assert.deepEqual(r.settle(['a'], new Map(), undefined, abs), []);
  assert.deepEqual(
    r.problems(abs).map((v) => v.path),
    ['/h/b'],
    'a landed',
  );
  r.settle([], new Map(), new Set(['c']), abs);
  assert.equal(r.size, 0, 'b is no longer planned after a look at everything');
});

test('per-path retries: doubling delays, reported after a few failures or at once when refused, forgotten when fixed', () => {
  let now = 1_000_000;
  const r = new PathRetries({ baseMs: 500, maxMs: 4000, reportAfter: 3, now: () => now });
  assert.equal(r.failed('a', 'busy'), false);
  assert.ok(r.waiting('a'));
  assert.equal(r.nextDue(), now + 500);
  now += 500;
  assert.ok(!r.waiting('a'), 'due after 500 ms');
  assert.equal(r.failed('a', 'busy'), false);
  assert.equal(r.nextDue(), now + 1000, 'then 1 s');
  now += 1000;
  assert.equal(r.failed('a', 'still busy'), true, 'reported at the third failure');
  for (let i = 0; i < 5; i++) r.failed('a', 'x');
  assert.equal(r.nextDue(), now + 4000, 'capped');
  assert.equal(r.failed('link', 'a link on the way', true), true, 'a refusal is reported at once');
  assert.deepEqual(
    r.problems((p) => `/h/${p}`).map((p) => [p.path, p.attempts]),
    [
      ['/h/a', 8],
      ['/h/link', 1],
    ],
  );
  assert.equal(r.succeeded('a'), true);
  // A path due within half its delay is tried with a cycle that runs anyway.
  r.failed('b', 'busy');
  r.failed('b', 'busy');
  now += 499;
  assert.ok(r.waiting('b'), 'more than half its delay to go');
  now += 2;
  assert.ok(!r.waiting('b'), 'less than half its delay to go: goes along');
  r.keepOnly(new Set());
  assert.equal(r.size, 0, 'a path the plan no longer touches is forgotten');
});
