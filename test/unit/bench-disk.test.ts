/**
 * The bench's disk space section (bench/disk-space.ts): when the host file
 * counts as back, and the table's rows.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { diskSpaceRows, isBack } from '../../bench/disk-space.js';

const MiB = 2 ** 20;
const d = (allocated: number, used?: number) => ({
  sizeBytes: 65536 * MiB,
  allocatedBytes: allocated * MiB,
  ...(used === undefined ? {} : { usedBytes: used * MiB }),
});

test('back: at least 90 % of what the write added is given back, whatever the guest counts as used', () => {
  const before = d(566, 170);
  const full = d(1592, 1194);
  assert.equal(isBack(d(567, 170), before, full), true, '1 MiB over before: back (the 817e794 run, 396 MiB over df before the write)');
  assert.equal(isBack(d(668, 170), before, full), true, '102 MiB over: under 10 % of the 1026 MiB written');
  assert.equal(isBack(d(700, 170), before, full), false, '134 MiB over: more than 10 %');
  assert.equal(isBack(full, before, full), false);
});

test('rows: before, written, back after N s; or not back', () => {
  const base = { before: d(300, 150), full: d(1350, 1180), writeMs: 12_300, trace: [{ atMs: 7200, disk: d(330, 160) }], backMs: 7200 };
  const rows = diskSpaceRows(base);
  assert.equal(rows[0], '## Disk space given back');
  assert.ok(rows.includes('| before | 300 MiB | 150 MiB |'));
  assert.ok(rows.includes('| 1 GiB written (in 12.3 s) | 1350 MiB | 1180 MiB |'));
  assert.ok(rows.includes('| **back 7.2 s after `docker volume rm`** | 330 MiB | 160 MiB |'));
  const { backMs: _, ...notBack } = base;
  assert.ok(diskSpaceRows({ ...notBack, trace: [{ atMs: 90_000, disk: d(1300, 160) }] }).includes('| not back after 90 s | 1300 MiB | 160 MiB |'));
});
