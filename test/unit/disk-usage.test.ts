/**
 * The data disk's space in the status (issue 17 item 5): the host file's
 * allocated blocks (a sparse file takes less than its size), the guest's df
 * parsed strictly (odd answers are dropped), asked at most once per period,
 * and the line `berth status` prints.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { diskLine } from '../../app/cli/output.js';
import { GuestDiskUsage, hostDisk, parseDf } from '../../app/engine/runtime/disk-usage.js';
import { shortTempDir } from '../helpers/temp.js';

test('host side: a sparse disk file takes only what was written', () => {
  const t = shortTempDir('dku');
  try {
    const f = path.join(t.dir, 'data.img');
    assert.equal(hostDisk(f), undefined, 'no disk before the first start');
    const fd = fs.openSync(f, 'w');
    fs.ftruncateSync(fd, 1024 ** 3);
    fs.writeSync(fd, Buffer.alloc(4 << 20, 7), 0, 4 << 20, 0);
    fs.closeSync(fd);
    const d = hostDisk(f)!;
    assert.equal(d.sizeBytes, 1024 ** 3);
    assert.ok(d.allocatedBytes >= 4 << 20 && d.allocatedBytes < 64 << 20, `allocated ${d.allocatedBytes}`);
  } finally {
    t.cleanup();
  }
});

test('guest side: df -P -k of /mnt/data parsed; anything else is not believed', () => {
  const out = 'Filesystem     1024-blocks    Used Available Capacity Mounted on\n/dev/vdb          65739308 1234567  61131892       2% /mnt/data\n';
  assert.deepEqual(parseDf(out), { fsBytes: 65739308 * 1024, usedBytes: 1234567 * 1024 });
  assert.equal(parseDf(out.replace('/mnt/data', '/')), undefined, 'another mount');
  assert.equal(parseDf(out.replace('1234567', '99999999999')), undefined, 'more used than the whole');
  assert.equal(parseDf('garbage'), undefined);
  assert.equal(parseDf(out.replace('1234567', '-5')), undefined);
});

test('guest side: asked at most once per period, one question at a time; a failure keeps the last answer', async () => {
  let asked = 0;
  let answer = { code: 0, stdout: '/dev/vdb 1000 100 900 10% /mnt/data\n', stderr: '' };
  const u = new GuestDiskUsage({
    exec: async () => {
      asked++;
      await new Promise((r) => setTimeout(r, 20));
      return answer;
    },
  });
  assert.deepEqual(u.view(), {});
  await Promise.all([u.refresh(5000), u.refresh(5000)]);
  assert.equal(asked, 1, 'two callers, one question');
  assert.equal(u.view().usedBytes, 100 * 1024);
  await u.refresh(5000);
  assert.equal(asked, 1, 'fresh enough');
  answer = { code: 1, stdout: '', stderr: 'df: no' };
  await u.refresh(0);
  assert.equal(asked, 2);
  assert.equal(u.view().usedBytes, 100 * 1024, 'the last good answer stays');
  assert.match(u.view().usedAt!, /^\d{4}-\d\d-\d\dT/);
});

test('guest side: a guest that does not answer holds a status up at most the wait; its late answer is there for the next', async () => {
  let answer!: (r: { code: number; stdout: string; stderr: string }) => void;
  const u = new GuestDiskUsage({ exec: () => new Promise((r) => (answer = r)) });
  const t0 = performance.now();
  await u.refresh(5000, 200);
  const took = performance.now() - t0;
  assert.ok(took >= 150 && took < 1000, `waited ${took} ms`);
  assert.deepEqual(u.view(), {});
  answer({ code: 0, stdout: '/dev/vdb 1000 300 700 30% /mnt/data\n', stderr: '' });
  await new Promise((r) => setImmediate(r));
  assert.equal(u.view().usedBytes, 300 * 1024);
});

test('berth status: used in the VM, on this computer, of the size', () => {
  const GiB = 2 ** 30;
  assert.equal(
    diskLine({ sizeBytes: 64 * GiB, allocatedBytes: 1.25 * GiB, usedBytes: 1.1 * GiB }).replace(/\x1b\[[0-9;]*m/g, ''),
    "1.1 GiB used in the VM, 1.3 GiB on this computer's disk (of 64.0 GiB)",
  );
  assert.equal(
    diskLine({ sizeBytes: 64 * GiB, allocatedBytes: 200 * 2 ** 20 }).replace(/\x1b\[[0-9;]*m/g, ''),
    "200.0 MiB on this computer's disk (of 64.0 GiB)",
  );
});
