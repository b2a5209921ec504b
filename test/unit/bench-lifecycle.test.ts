/**
 * The bench's life-cycle sections (bench/lifecycle-rows.ts), without a VM:
 * the guest's samples are read strictly, memory given back is computed
 * from RSS readings as the issue defines it, the tables say what was
 * measured; and the lifecycle run has its own results file.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { containerStartRows, memoryReturn, memoryRows, parseGuestMicros, rssTrace, wakeRows, type RssSample } from '../../bench/lifecycle-rows.js';
import { RESULT_FILES, resultsPath } from '../../bench/results-file.js';

const MiB = 1024;

describe('the guest loop samples', () => {
  test('microseconds one a line, as ms', () => {
    assert.deepEqual(parseGuestMicros('1500\n250000\n', 2, 'x'), [1.5, 250]);
    assert.deepEqual(parseGuestMicros('  1000 \n2000', 2, 'x'), [1, 2]);
  });

  test('a failed run, a missing or an extra sample, or garbage is an error naming what was measured', () => {
    assert.throws(() => parseGuestMicros('1500\nfail\n', 2, 'docker run inside the guest'), /docker run inside the guest: 1 of 2 samples/);
    assert.throws(() => parseGuestMicros('1500\n', 2, 'x'), /1 of 2/);
    assert.throws(() => parseGuestMicros('1\n2\n3\n', 2, 'x'), /of 2/);
    assert.throws(() => parseGuestMicros('', 1, 'x'), /0 of 1/);
    for (const bad of ['0', '-5', '1e3', '0x10', 'NaN', '1.5', '12 13', '9999999999999']) {
      assert.throws(() => parseGuestMicros(bad, 1, 'x'), /of 1/, bad);
    }
  });
});

describe('memory given back', () => {
  /** Readings every second from t=0; the free at 10 s. */
  const series = (kiBs: number[]): RssSample[] => kiBs.map((kiB, i) => ({ atMs: i * 1000, kiB }));
  const idle = 600 * MiB;

  test('peak, the reading 30 s after the free, and the first reading within 128 MiB of idle', () => {
    const kiBs = [
      ...Array.from({ length: 10 }, (_, i) => idle + i * 100 * MiB), // the burst, up to 1500 MiB
      ...Array.from({ length: 41 }, (_, i) => Math.max(idle + 20 * MiB, idle + 1000 * MiB - i * 100 * MiB)),
    ];
    const r = memoryReturn(series(kiBs), idle, 10_000);
    assert.equal(r.peakKiB, idle + 1000 * MiB);
    // 10 s after the free: 1000 - 900 = 100 MiB above idle, the first within 128.
    assert.equal(r.backMs, 9000);
    assert.equal(r.at30KiB, idle + 20 * MiB);
    assert.equal(r.lastKiB, idle + 20 * MiB);
    assert.equal(r.slackMiB, 128);
  });

  test('a reading exactly 128 MiB above idle counts; memory that never comes back has no time', () => {
    assert.equal(memoryReturn(series([idle, idle + 900 * MiB, idle + 128 * MiB]), idle, 1000).backMs, 1000);
    const never = memoryReturn(series([idle, idle + 900 * MiB, idle + 900 * MiB, idle + 129 * MiB]), idle, 1000);
    assert.equal(never.backMs, undefined);
    assert.equal(never.at30KiB, undefined, 'no reading 30 s after the free');
  });

  test('readings before the free never count as back; out-of-order readings are sorted', () => {
    const s = [
      { atMs: 3000, kiB: idle },
      { atMs: 0, kiB: idle },
      { atMs: 1000, kiB: idle + 900 * MiB },
      { atMs: 2000, kiB: idle + 800 * MiB },
    ];
    const r = memoryReturn(s, idle, 1500);
    assert.equal(r.backMs, 1500);
    assert.equal(r.lastKiB, idle);
    assert.throws(() => memoryReturn([], idle, 0), /no QEMU RSS readings/);
  });

  test('the trace: one reading every 5 s after the free, in MiB', () => {
    const s = series(Array.from({ length: 12 }, (_, i) => (1000 - i * 10) * MiB));
    assert.equal(rssTrace(s, 1000), '+0 s: 990, +5 s: 940, +10 s: 890');
  });

  test('the table: the target met or not, the guest side named', () => {
    const ret = memoryReturn(series([idle, idle + 1024 * MiB, idle + 1024 * MiB, idle + 50 * MiB]), idle, 1000);
    const rows = memoryRows({
      burstMiB: 1024,
      how: 'wrote 1024 MiB',
      ret,
      trace: 't',
      guest: { balloonDriver: true, reportingOrder: 9 },
      memoryBackend: 'anonymous memory',
    }).join('\n');
    assert.match(rows, /^## Memory given back$/m);
    assert.match(rows, /balloon driver bound, reporting order 9 \(pages of 2 MiB and up\)/);
    assert.match(rows, /\| QEMU RSS at idle \(median of 5 readings\) \| 600 MiB \|/);
    assert.match(rows, /\| peak during the 1024 MiB burst \| 1624 MiB \|/);
    assert.match(rows, /\| \*\*back within 128 MiB of idle after\*\* \| \*\*2\.0 s\*\* \(target: 30 s, met\) \|/);
    const never = memoryRows({
      burstMiB: 1024,
      how: 'x',
      ret: { ...ret, backMs: undefined },
      trace: 't',
      guest: { balloonDriver: false },
      memoryBackend: 'm',
    }).join('\n');
    assert.match(never, /balloon driver \*\*not bound\*\*, reporting order n\/a/);
    assert.match(never, /\*\*not within 60\.0 s\*\* \(target: 30 s, not met\)/);
  });
});

test('container start: p50 and p95 of each side, the warm-up apart, the difference signed', () => {
  const rows = containerStartRows({
    image: 'bb:1',
    host: [100, 110, 120, 130, 140, 150, 160, 170, 180, 1000],
    guest: [300, 300, 300, 300, 300, 300, 300, 300, 300, 300],
    warmup: { host: 2000, guest: 2500 },
  }).join('\n');
  assert.match(rows, /`docker run --rm bb:1 true`, 10 times on each side/);
  assert.match(rows, /\| host, through Berth's socket \| 145 ms \| 1000 ms \| 2000 ms \|/);
  assert.match(rows, /\| inside the guest \| 300 ms \| 300 ms \| 2500 ms \|/);
  assert.match(rows, /\| \*\*host − guest \(p50\)\*\* \| \*\*−155 ms\*\* \|/);
  assert.doesNotMatch(rows, /--network none/, 'no row for what was not measured');
  const noNet = containerStartRows({ image: 'bb:1', host: [1], guest: [1], guestNoNet: [50, 60, 70], warmup: { host: 1, guest: 1 } }).join('\n');
  assert.match(noNet, /\| inside the guest, `--network none` \(no veth, no network namespace set-up\) \| 60 ms \| 70 ms \| \|/);
});

test('wake from rest: each wake, the median, the cold start and the ratio against the 1.1× target', () => {
  const r = { wakes: [20_000, 22_000, 21_000], engineWakes: [19_000, undefined, 20_500], restAfterMs: [9000, 8000, 7000], idleMinutes: 0.1, coldMs: 30_000 };
  const rows = wakeRows(r).join('\n');
  assert.match(rows, /rests after 6\.0 s with nothing in use/);
  assert.match(rows, /\| wake 1 \(rested 9\.0 s after the last use\): .* \(the engine's count: 19\.0 s\) \| 20\.0 s \|/);
  assert.match(rows, /the engine's count: n\/a\) \| 22\.0 s \|/);
  assert.match(rows, /\| wake, median of 3 \| 21\.0 s \|/);
  assert.match(rows, /\| \*\*wake \/ cold\*\* \| \*\*0\.70×\*\* \(target ≤ 1\.1×, met\) \|/);
  assert.match(wakeRows({ ...r, coldMs: 15_000 }).join('\n'), /\*\*1\.40×\*\* \(target ≤ 1\.1×, not met\)/);
});

test("the lifecycle run writes results-lifecycle.md, and --out never names another kind's file", () => {
  const dir = path.resolve('/tmp/bench-dir');
  assert.equal(RESULT_FILES.lifecycle, 'results-lifecycle.md');
  assert.equal(resultsPath(dir, 'lifecycle', undefined), path.join(dir, 'results-lifecycle.md'));
  assert.equal(resultsPath(dir, 'lifecycle', '/tmp/x.md'), '/tmp/x.md');
  assert.throws(() => resultsPath(dir, 'lifecycle', path.join(dir, 'results.md')), /the full run's file/);
  assert.throws(() => resultsPath(dir, 'full', path.join(dir, 'results-lifecycle.md')), /the lifecycle run's file/);
});
