import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import * as tar from 'tar';
import { renderEnv, writeConfigDisk } from '../../app/engine/guest/config-disk.js';
import { ustar } from '../../app/engine/guest/ustar.js';
import { ensureGuestKeys, fingerprint } from '../../app/base/ssh-keys.js';
import { shortTempDir } from '../helpers/temp.js';

test('keys are ed25519, owner-only, and stable across starts', () => {
  const t = shortTempDir();
  try {
    const k = ensureGuestKeys(path.join(t.dir, 'keys'), path.join(t.dir, 'keys/id'), path.join(t.dir, 'keys/host'), 'default');
    assert.match(k.clientPublic, /^ssh-ed25519 /);
    assert.match(k.hostPublic, /^ssh-ed25519 /);
    assert.notEqual(k.clientPublic, k.hostPublic);
    for (const f of ['id', 'id.pub', 'host', 'host.pub']) assert.equal(fs.statSync(path.join(t.dir, 'keys', f)).mode & 0o777, 0o600, f);
    assert.equal(fs.statSync(path.join(t.dir, 'keys')).mode & 0o777, 0o700);
    const again = ensureGuestKeys(path.join(t.dir, 'keys'), path.join(t.dir, 'keys/id'), path.join(t.dir, 'keys/host'), 'default');
    assert.equal(again.hostPublic, k.hostPublic);
    assert.match(fingerprint(k.hostPublic), /^SHA256:[A-Za-z0-9+/]{43}$/);
  } finally {
    t.cleanup();
  }
});

test('keys ssh2 cannot parse (its ed25519 generator cuts a leading zero byte) are never used', () => {
  const t = shortTempDir();
  try {
    const keys = path.join(t.dir, 'keys');
    fs.mkdirSync(keys, { mode: 0o700 });
    // A public half ssh2 wrote with 31 key bytes (AAAAH...), and a private half to match.
    fs.writeFileSync(path.join(keys, 'host.pub'), 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAH5ybeXuvv553ZsaAZ8Q0NEknWSouOb2SDZQlSeYmNtw= berth-guest@x\n');
    fs.writeFileSync(path.join(keys, 'host'), '-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n');
    const k = ensureGuestKeys(keys, path.join(keys, 'id'), path.join(keys, 'host'), 'x');
    assert.match(k.hostPublic, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI/, 'a 32-byte key');
    assert.doesNotThrow(() => fingerprint(k.hostPublic));
    // Many fresh pairs: every one parses (one in ~170 did not).
    for (let i = 0; i < 300; i++) {
      const d = path.join(t.dir, `k${i}`);
      const g = ensureGuestKeys(d, path.join(d, 'id'), path.join(d, 'host'), 'x');
      fingerprint(g.hostPublic);
      fingerprint(g.clientPublic);
    }
  } finally {
    t.cleanup();
  }
});

test('the config disk is a tar the guest can read, sector-aligned and owner-only', async () => {
  const t = shortTempDir();
  try {
    const disk = path.join(t.dir, 'config.tar');
    writeConfigDisk(path.join(t.dir, 'cfg'), disk, {
      authorizedKeys: 'ssh-ed25519 AAAA test',
      hostPrivateKey: 'PRIVATE',
      hostPublicKey: 'ssh-ed25519 BBBB host',
      env: { BERTH_NET: 'static', BERTH_HOSTNAME: 'berth' },
    });
    assert.equal(fs.statSync(disk).size % 512, 0);
    assert.equal(fs.statSync(disk).mode & 0o777, 0o600);
    const seen: Record<string, string> = {};
    await tar.t({
      file: disk,
      onReadEntry: (e) => {
        // Regular files, owner-only, owned by root once the guest unpacks them.
        assert.equal(e.type, 'File', e.path);
        assert.equal(e.mode! & 0o777, 0o600, e.path);
        assert.equal(e.uid, 0, e.path);
        assert.equal(e.gid, 0, e.path);
        const chunks: Buffer[] = [];
        e.on('data', (d: Buffer) => chunks.push(d));
        e.on('end', () => (seen[e.path] = Buffer.concat(chunks).toString()));
      },
    });
    assert.equal(seen['authorized_keys'], 'ssh-ed25519 AAAA test\n');
    assert.equal(seen['ssh_host_ed25519_key'], 'PRIVATE');
    assert.equal(seen['config.env'], 'BERTH_NET=static\nBERTH_HOSTNAME=berth\n');
  } finally {
    t.cleanup();
  }
});

test('the hand-made ustar reads back with tar, padded and ended as the format says', async () => {
  const t = shortTempDir();
  try {
    const big = 'x'.repeat(1000);
    const archive = ustar(
      [
        { name: 'a', content: '' },
        { name: 'b.txt', content: big, mode: 0o644 },
      ],
      1_700_000_000,
    );
    // a: a header; b.txt: a header and two blocks; then two empty blocks.
    assert.equal(archive.length, 512 * (1 + 1 + 2 + 2));
    assert.ok(archive.subarray(-1024).every((b) => b === 0));
    const file = path.join(t.dir, 'x.tar');
    fs.writeFileSync(file, archive);
    const seen: Record<string, { size: number; mode: number; mtime: number; body: string }> = {};
    await tar.t({
      file,
      onReadEntry: (e) => {
        const chunks: Buffer[] = [];
        e.on('data', (d: Buffer) => chunks.push(d));
        e.on('end', () => (seen[e.path] = { size: e.size!, mode: e.mode! & 0o7777, mtime: e.mtime!.getTime() / 1000, body: Buffer.concat(chunks).toString() }));
      },
    });
    assert.deepEqual(seen, {
      a: { size: 0, mode: 0o600, mtime: 1_700_000_000, body: '' },
      'b.txt': { size: 1000, mode: 0o644, mtime: 1_700_000_000, body: big },
    });
    assert.throws(() => ustar([{ name: '../x', content: '' }]), /bad file name/);
    assert.throws(() => ustar([{ name: 'dir/x', content: '' }]), /bad file name/);
  } finally {
    t.cleanup();
  }
});

test('config values that a shell would interpret are refused', () => {
  assert.throws(() => renderEnv({ BERTH_X: 'a; rm -rf /' }), /bad config value/);
  assert.throws(() => renderEnv({ BERTH_X: '$(id)' }), /bad config value/);
  assert.throws(() => renderEnv({ PATH: '/x' }), /bad config key/);
});
