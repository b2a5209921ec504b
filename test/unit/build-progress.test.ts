import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BuildProgress, cleanLine, formatSeconds, type BuildProgressMessage } from '../../app/engine/image/build-progress.js';

// A real x86_64 build's output (vm-images/build.sh, mmdebstrap --verbose),
// each line after the milliseconds since the build began. Trimmed: most
// apt "Get:" lines (the counter reads their number) and repeated dpkg chatter
// are left out; every "Unpacking" and "Setting up" line is kept.
const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'image-build-amd64.txt');

function recorded(): Array<{ ms: number; line: string }> {
  return fs
    .readFileSync(fixture, 'utf8')
    .split('\n')
    .filter((l) => l)
    .map((l) => {
      const sp = l.indexOf(' ');
      return { ms: Number(l.slice(0, sp)), line: l.slice(sp + 1) };
    });
}

/** Feed the recording with its own timing, ticking every second as the store does. */
function replay(p = new BuildProgress()): Array<BuildProgressMessage & { ms: number }> {
  const out: Array<BuildProgressMessage & { ms: number }> = [];
  let nextTick = 1000;
  for (const { ms, line } of recorded()) {
    for (; nextTick <= ms; nextTick += 1000) out.push(...p.tick(nextTick).map((m) => ({ ...m, ms: nextTick })));
    out.push(...p.line(line, ms).map((m) => ({ ...m, ms })));
  }
  const end = recorded().at(-1)!.ms + 500;
  out.push(...p.finish(end).map((m) => ({ ...m, ms: end })));
  return out;
}

test('a recorded build: steps, then package counters that reach their totals', () => {
  const msgs = replay();
  const texts = msgs.map((m) => m.message);
  assert.match(texts[0]!, /^debootstrap bookworm\/amd64: /);
  for (const want of [
    'base system: downloading packages',
    'base system: packages fetched 69/69',
    'base system: extracting 69 packages',
    'base system: installing packages',
    'base system: packages unpacked 69/69, configured 69/69',
    'guest packages: resolving',
    'guest packages: packages fetched 87/87',
    'guest packages: packages unpacked 87/87, configured 87/87',
    'guest files',
    'initramfs',
    'root image (squashfs, zstd)',
  ]) {
    assert.ok(texts.includes(want), `missing "${want}" in:\n${texts.join('\n')}`);
  }
  assert.match(texts.at(-1)!, /^done: /);
  // Counters go up within a step and carry how far they are.
  const unpacked = msgs.filter((m) => m.step === 'guest packages:install');
  assert.ok(unpacked.length > 3);
  for (let i = 1; i < unpacked.length; i++) assert.ok(unpacked[i]!.fraction! >= unpacked[i - 1]!.fraction!);
  assert.equal(unpacked.at(-1)!.fraction, 1);
  // Nothing of apt's or dpkg's own text is shown: no package names, no warnings.
  assert.ok(!texts.some((t) => /libc6|pre-depends|update-alternatives|Use of uninitialized/.test(t)), texts.join('\n'));
});

test('the silent stretches (extracting, squashfs) report their elapsed seconds', () => {
  const texts = replay().map((m) => m.message);
  assert.ok(texts.includes('base system: extracting 69 packages (5 s)'), texts.join('\n'));
  assert.ok(
    texts.some((t) => /^root image \(squashfs, zstd\) \(\d+ s\)$/.test(t)),
    texts.join('\n'),
  );
});

test('rate-limited: at most one message a second per step (but its final count when it ends), every step change at once', () => {
  const msgs = replay();
  for (let i = 1; i < msgs.length; i++) {
    const last = msgs[i + 1]?.step !== msgs[i]!.step;
    if (msgs[i]!.step === msgs[i - 1]!.step && !last) assert.ok(msgs[i]!.ms - msgs[i - 1]!.ms >= 1000, JSON.stringify(msgs.slice(i - 1, i + 1)));
  }
  // Some 1,400 lines of output become a few messages per second of build at most.
  const seconds = recorded().at(-1)!.ms / 1000;
  assert.ok(msgs.length < seconds * 1.5, `${msgs.length} messages in ${seconds} s`);
  // A step's last state comes out before the next step begins.
  const i = msgs.findIndex((m) => m.message === 'base system: extracting 69 packages');
  assert.equal(msgs[i - 1]!.message, 'base system: packages fetched 69/69');
});

test('a burst of lines in one second: the first at once, the latest after a second', () => {
  const p = new BuildProgress();
  p.line('   0 upgraded, 3 newly installed, 0 to remove and 0 not upgraded.', 0);
  assert.deepEqual(p.line('   Get:1 http://x/debian bookworm/main amd64 a amd64 1 [1 kB]', 10), [
    { step: 'base system:fetch', message: 'base system: packages fetched 1/3', fraction: 1 / 3 },
  ]);
  assert.deepEqual(p.line('   Get:2 http://x/debian bookworm/main amd64 b amd64 1 [1 kB]', 20), []);
  assert.deepEqual(p.line('   Get:3 http://x/debian bookworm/main amd64 c amd64 1 [1 kB]', 30), []);
  assert.deepEqual(p.tick(500), []);
  assert.deepEqual(
    p.tick(1010).map((m) => m.message),
    ['base system: packages fetched 3/3'],
  );
  assert.deepEqual(p.tick(2020), []);
});

test('odd, hostile or unknown lines are ignored and never throw', () => {
  const p = new BuildProgress();
  const junk = [
    '',
    '   ',
    'Get:',
    'Get:99999999999999999999 x',
    'Get:-1 x',
    '   Unpacking',
    '   Setting up',
    '   I: ',
    '   I: something new in a later mmdebstrap...',
    '\x1b[2K\rextracting:   42.00 [=====>    ]\r',
    '\u0000\u0007\u001b]0;title\u0007',
    'x'.repeat(1_000_000),
    '   Unpacking ' + 'a'.repeat(100_000) + ' (1) ...', // cut at 1,000 characters: no longer the shape
    '   Unpacking ' + 'b'.repeat(500) + ' (1) ...',
    '== ',
    '==',
    '\ud800',
  ];
  const out: BuildProgressMessage[] = [];
  for (const [i, l] of junk.entries()) out.push(...p.line(l, i), ...p.tick(i));
  // The only thing counted is the one well-formed (if long) Unpacking line, without a total.
  assert.deepEqual(
    out.map((m) => m.message),
    ['base system: packages unpacked 1, configured 0'],
  );
  assert.equal(out[0]!.fraction, undefined);
});

test('a "== " step keeps its text but loses control characters and length', () => {
  const p = new BuildProgress();
  const [m] = p.line('== kernel \x1b[31mfrom\x1b[0m linux-image\x07 ' + 'y'.repeat(2000), 0);
  assert.ok(m);
  assert.ok(m.message.startsWith('kernel from linux-image y'), m.message);
  assert.ok(m.message.length < 1000);
  assert.equal(cleanLine('a\tb\x1b[1mc\u009bd'), 'a bcd');
});

test('elapsed time reads as seconds, then minutes', () => {
  assert.equal(formatSeconds(4_999), '4 s');
  assert.equal(formatSeconds(59_000), '59 s');
  assert.equal(formatSeconds(125_000), '2 min 05 s');
  assert.equal(formatSeconds(-5), '0 s');
});
