/**
 * virtiofs shares without a VM: stable tags within the virtio-fs limit,
 * the guest's mount command, and which shares a start gives virtio-fs
 * devices (and why the others go by reverse sshfs).
 *
 * Limits checked against their sources: the virtio-fs tag field is 36
 * bytes (virtio 1.2, 5.11.4 "Device configuration layout": u8 tag[36]);
 * `mount -t virtiofs TAG DIR` (Linux Documentation/filesystems/virtiofs.rst);
 * vfkit's `--device virtio-fs,sharedDir=...,mountTag=...` has no read-only
 * option and splits on every comma (vfkit doc/usage.md, "File Sharing");
 * Linux's sun_path holds 107 bytes and a NUL (unix(7)).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { GuestSession } from '../../app/engine/guest/session.js';
import { silentLogger } from '../../app/base/log.js';
import { waitFor } from '../../app/base/process-util.js';
import { ShareManager } from '../../app/engine/share/share-manager.js';
import { shortTempDir } from '../helpers/temp.js';
import { MAX_TAG_BYTES, planShares, routeOf, shareKey, virtiofsTag, type PlanInputs } from '../../app/engine/share/virtiofs.js';
import { mountsCommand, mountVirtiofs } from '../../app/engine/guest/queries.js';

test('tags: at most 36 bytes of [a-z0-9-], stable, one per share identity', () => {
  const shares = [
    { hostPath: '/home/me' },
    { hostPath: '/home/me', readOnly: true },
    { hostPath: '/home/me', guestPath: '/work' },
    { hostPath: '/Users/me/Projects/a very long folder name with ünïcödé and spaces that goes on and on' },
    { hostPath: '/' },
    { hostPath: '/srv/日本語' },
    { hostPath: 'C:\\Users\\me' },
  ];
  const tags = shares.map(virtiofsTag);
  for (const t of tags) {
    assert.ok(Buffer.byteLength(t) <= MAX_TAG_BYTES, `${t} is ${Buffer.byteLength(t)} bytes`);
    assert.match(t, /^berth-[a-z0-9-]+$/);
    assert.doesNotMatch(t, /--|-$/);
  }
  assert.equal(new Set(tags).size, tags.length, 'every share its own tag');
  assert.deepEqual(shares.map(virtiofsTag), tags, 'the same on every start');
  assert.match(tags[0]!, /^berth-me-[0-9a-f]{10}$/);
  assert.match(tags[5]!, /^berth-[0-9a-f]{10}$/, 'a name with no ASCII letters keeps only the hash');
  assert.match(tags[6]!, /^berth-me-/, 'Windows paths name the last folder');
});

test('the guest mounts by tag at the share path; a bad tag or mount point is refused before anything runs', async () => {
  const { session, scripts } = fakeSession(() => ({ code: 0 }));
  await mountVirtiofs(session, 'berth-me-0123456789', '/home/me', false);
  await mountVirtiofs(session, 't', "/it's here", true);
  assert.deepEqual(scripts, [
    mountsCommand('mount-virtiofs', '/home/me', 'berth-me-0123456789', 'rw'),
    mountsCommand('mount-virtiofs', "/it's here", 't', 'ro'),
  ]);
  await assert.rejects(mountVirtiofs(session, 'bad tag', '/x', false));
  await assert.rejects(mountVirtiofs(session, 'a'.repeat(37), '/x', false));
  await assert.rejects(mountVirtiofs(session, 't', 'relative', false));
  assert.equal(scripts.length, 2);
});

const base: PlanInputs = {
  shares: [{ hostPath: '/home/me' }, { hostPath: '/srv/data', readOnly: true }, { hostPath: '/gone' }],
  setting: 'auto',
  driver: 'qemu',
  support: { ok: true, how: 'virtiofsd 7.2.22 as root', needsSocket: true, readOnlyDevice: true },
  socketDir: '/home/me/.berth/default/virtiofs',
  isDir: (p) => p !== '/gone',
};

test('QEMU with virtiofsd: a device and a socket per share; a missing folder goes by sshfs', () => {
  const p = planShares(base);
  assert.deepEqual(
    p.devices.map((d) => ({ ...d, tag: d.tag.replace(/[0-9a-f]{10}$/, 'H') })),
    [
      { hostPath: '/home/me', tag: 'berth-me-H', socketPath: `/home/me/.berth/default/virtiofs/${virtiofsTag({ hostPath: '/home/me' })}.sock` },
      { hostPath: '/srv/data', tag: 'berth-data-H', readonly: true, socketPath: `/home/me/.berth/default/virtiofs/${virtiofsTag(base.shares[1]!)}.sock` },
    ],
  );
  assert.deepEqual(routeOf(p, base.shares[0]!), { mechanism: 'virtiofs', reason: 'virtiofsd 7.2.22 as root', tag: virtiofsTag(base.shares[0]!) });
  const gone = routeOf(p, { hostPath: '/gone' });
  assert.equal(gone.mechanism, 'reverse-sshfs');
  assert.match(gone.reason, /did not exist at start/);
  const later = routeOf(p, { hostPath: '/added/later' });
  assert.equal(later.mechanism, 'reverse-sshfs');
  assert.match(later.reason, /next restart/);
  assert.equal(shareKey({ hostPath: '/a' }), shareKey({ hostPath: '/a', guestPath: '/a' }));
});

test('sshfs in settings, or no virtio-fs here: every share by reverse sshfs, with the reason', () => {
  const forced = planShares({ ...base, setting: 'sshfs', settingSource: 'BERTH_SHARE_MECHANISM' });
  assert.deepEqual(forced.devices, []);
  assert.equal(routeOf(forced, base.shares[0]!).reason, 'shareMechanism=sshfs (BERTH_SHARE_MECHANISM)');
  const none = planShares({ ...base, support: { ok: false, reason: 'virtiofsd is not installed' } });
  assert.deepEqual(none.devices, []);
  assert.equal(routeOf(none, base.shares[0]!).reason, 'virtiofsd is not installed');
  assert.equal(routeOf(none, { hostPath: '/later' }).reason, 'virtiofsd is not installed');
  const asked = planShares({ ...base, setting: 'virtiofs', support: { ok: false, reason: 'virtiofsd is not installed' } });
  assert.equal(routeOf(asked, base.shares[0]!).reason, 'shareMechanism=virtiofs (settings), but virtiofsd is not installed');
});

test('vfkit: no sockets; read-only shares and paths vfkit cannot carry go by reverse sshfs', () => {
  const p = planShares({
    ...base,
    driver: 'vfkit',
    shares: [{ hostPath: '/Users/me' }, { hostPath: '/Users/me/ro', readOnly: true }, { hostPath: '/Users/me/a,b' }],
    support: { ok: true, how: "Virtualization.framework's virtio-fs (vfkit)", needsSocket: false, readOnlyDevice: false, unsafePathChars: ',"' },
  });
  assert.deepEqual(p.devices, [{ hostPath: '/Users/me', tag: virtiofsTag({ hostPath: '/Users/me' }) }]);
  assert.match(routeOf(p, { hostPath: '/Users/me/ro', readOnly: true }).reason, /cannot be read-only/);
  assert.match(routeOf(p, { hostPath: '/Users/me/a,b' }).reason, /has ",", which vfkit's command line cannot carry/);
});

test('a socket path too long for Linux: that share goes by reverse sshfs, saying how to fix it', () => {
  const p = planShares({ ...base, shares: [{ hostPath: '/home/me' }], socketDir: `/${'x'.repeat(100)}` });
  assert.deepEqual(p.devices, []);
  assert.match(routeOf(p, { hostPath: '/home/me' }).reason, /socket path would be \d+ bytes.*BERTH_HOME/);
});

/** A guest session that runs nothing: records exec scripts, answers by rule; no exec channels. */
function fakeSession(answer: (script: string) => { code: number; stderr?: string }) {
  const scripts: string[] = [];
  const session = {
    exec: async (script: string) => {
      scripts.push(script);
      const a = answer(script);
      return { code: a.code, stdout: '', stderr: a.stderr ?? '' };
    },
    openExec: async () => {
      throw new Error('no exec channels in this fake');
    },
  };
  return { session: session as unknown as GuestSession, scripts };
}

describe('the share manager with virtiofs routes', () => {
  const t = shortTempDir('vsm');
  after(() => t.cleanup());
  const share = { hostPath: t.dir };
  const plan = planShares({ ...base, shares: [share], isDir: () => true });
  const tag = virtiofsTag(share);

  test('mounts by tag at the share path, and shows virtiofs and how it is served', async () => {
    const { session, scripts } = fakeSession(() => ({ code: 0 }));
    const m = new ShareManager(
      session,
      silentLogger(),
      () => [share],
      undefined,
      (s) => routeOf(plan, s),
    );
    await m.start();
    assert.deepEqual(m.list(), [
      { hostPath: t.dir, guestPath: t.dir, readOnly: false, mechanism: 'virtiofs', mechanismReason: 'virtiofsd 7.2.22 as root', state: 'mounted' },
    ]);
    assert.equal(scripts[0], mountsCommand('mount-virtiofs', t.dir, tag, 'rw'));
    await m.stop();
  });

  test('a virtiofs mount that fails falls back to reverse sshfs, saying why', async () => {
    const { session } = fakeSession((s) =>
      s === mountsCommand('mount-virtiofs', t.dir, tag, 'rw') ? { code: 32, stderr: 'mount: unknown filesystem type virtiofs' } : { code: 0 },
    );
    const m = new ShareManager(
      session,
      silentLogger(),
      () => [share],
      undefined,
      (s) => routeOf(plan, s),
    );
    await m.start();
    const v = m.list()[0]!;
    assert.equal(v.mechanism, 'reverse-sshfs');
    assert.match(v.mechanismReason!, /the virtiofs mount failed \(mount: unknown filesystem type virtiofs\); reverse sshfs until the next restart/);
    await m.stop();
  });

  test('a share whose file server went away is detached and goes by reverse sshfs; removing a virtiofs share unmounts only its own mount', async () => {
    const { session, scripts } = fakeSession(() => ({ code: 0 }));
    let shares = [share];
    const m = new ShareManager(
      session,
      silentLogger(),
      () => shares,
      undefined,
      (s) => routeOf(plan, s),
    );
    await m.start();
    m.virtiofsLost('some-other-tag', 'not ours');
    assert.equal(m.list()[0]!.mechanism, 'virtiofs');
    m.virtiofsLost(tag, 'its virtiofsd (pid 42) exited');
    await waitFor(() => m.list()[0]!.mechanism === 'reverse-sshfs', 5000);
    assert.match(m.list()[0]!.mechanismReason!, /its virtiofsd \(pid 42\) exited \(restart the VM soon.*\); reverse sshfs until the next restart/);
    assert.ok(
      scripts.some((s) => s.startsWith('umount -l ')),
      'the dead mount is detached',
    );
    await m.stop();

    const second = fakeSession(() => ({ code: 0 }));
    const m2 = new ShareManager(
      second.session,
      silentLogger(),
      () => shares,
      undefined,
      (s) => routeOf(plan, s),
    );
    await m2.start();
    shares = [];
    await m2.refresh();
    const last = second.scripts.at(-1)!;
    assert.equal(last, mountsCommand('unmount-virtiofs', t.dir, tag));
    await m2.stop();
  });
});
