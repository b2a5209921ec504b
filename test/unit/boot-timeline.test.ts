/**
 * The boot timeline on the engine's side: the guest's stamps parsed
 * strictly (the guest is untrusted: garbage, floods, lies about its clock
 * are dropped, never thrown), placed on the engine's clock, and merged with
 * the engine's own steps in the order they happened.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatBootTimeline } from '../../app/cli/boot-timeline-format.js';
import { formatStatus } from '../../app/cli/output.js';
import { VmStatusSchema } from '../../app/contract/contract.js';
import { BootTimeline } from '../../app/engine/boot/boot-timeline.js';
import {
  MAX_GUEST_STEPS,
  MAX_TIMELINE_BYTES,
  parseGuestStamps,
  placeGuestSteps,
  READ_TIMELINE_COMMAND,
  readGuestStamps,
} from '../../app/engine/guest/boot-timeline.js';
import { fuzzSeed, randomString, rng } from '../helpers/fuzz.js';

const GOOD = 'init 0.61\nroot-mounted 1.20\nsysinit 1.25\nnetwork-up 2.50\n\n@uptime 20.00 35.10\n';

describe('parsing the guest stamps', () => {
  test('a good answer: each step with its seconds, and the clock now', () => {
    assert.deepEqual(parseGuestStamps(GOOD), {
      steps: [
        { step: 'init', sec: 0.61 },
        { step: 'root-mounted', sec: 1.2 },
        { step: 'sysinit', sec: 1.25 },
        { step: 'network-up', sec: 2.5 },
      ],
      nowSec: 20,
    });
  });

  test('no clock reading, no timeline (an older image, a failed command)', () => {
    assert.equal(parseGuestStamps(''), undefined);
    assert.equal(parseGuestStamps('init 0.61\n'), undefined);
    assert.equal(parseGuestStamps('init 0.61\n@uptime \n'), undefined);
    assert.equal(parseGuestStamps('init 0.61\n@uptime abc 1.0\n'), undefined);
    assert.equal(parseGuestStamps('@uptime 99999999.00 1.00\n'), undefined, 'a clock past any boot');
  });

  test('lines that are not "step seconds" are dropped', () => {
    const junk = [
      'INIT 1.0', // upper case
      'in it 1.0',
      'init  1.0',
      'init 1.0 extra',
      'init -1.0',
      'init 1e3',
      'init 0x10',
      'init NaN',
      'init Infinity',
      '-init 1.0',
      '9init 1.0',
      `${'a'.repeat(33)} 1.0`,
      'init 12345678.0',
      'init 1.1234567',
      'init\t1.0',
      'init 1.0\r',
      'ïnit 1.0',
      '__proto__ 1.0',
      'constructor 1.0',
      '@uptime 5.00 1.00',
    ].join('\n');
    const r = parseGuestStamps(`${junk}\nsysinit 3.5\n@uptime 20.00 1.00\n`);
    assert.deepEqual(r?.steps, [
      { step: 'constructor', sec: 1 },
      { step: 'sysinit', sec: 3.5 },
    ]);
    // "constructor" is a well-formed name; it is only ever a label lookup, never a property write.
  });

  test('each step once, the first line wins; at most MAX_GUEST_STEPS', () => {
    const r = parseGuestStamps('init 1.0\ninit 2.0\n@uptime 3.00 0.00\n');
    assert.deepEqual(r?.steps, [{ step: 'init', sec: 1 }]);
    const many = Array.from({ length: 100 }, (_, i) => `step-${i} ${i}.0`).join('\n');
    const m = parseGuestStamps(`${many}\n@uptime 200.00 0\n`);
    assert.equal(m?.steps.length, MAX_GUEST_STEPS);
  });

  test('a stamp after the clock read with it, or of a step the engine stamps itself, is dropped', () => {
    const r = parseGuestStamps('init 1.0\ndocker-api-listening 50.0\nkernel 3.0\nssh-connected 0.5\nsocket-ready 0.1\nvm-spawn 0.1\n@uptime 20.00 1\n');
    assert.deepEqual(r?.steps, [{ step: 'init', sec: 1 }]);
  });

  test('the last clock line counts: one written into the file by the guest cannot stand in for it', () => {
    const r = parseGuestStamps('@uptime 900.00 1\ninit 1.0\n@uptime 20.00 1\n');
    assert.equal(r?.nowSec, 20);
  });

  test('a flood is cut: no more than the file limit is looked at', () => {
    const flood = 'x'.repeat(10 * MAX_TIMELINE_BYTES);
    assert.equal(parseGuestStamps(`${flood}\n@uptime 1.00 1\n`), undefined);
    const longLines = `init 1.0\n${'init 2.0 '.repeat(2000)}\n@uptime 3.00 1\n`;
    assert.equal(parseGuestStamps(longLines), undefined, 'the clock line is past the limit');
    const t0 = performance.now();
    parseGuestStamps(`${'a'.repeat(4 << 20)}\n@uptime 1.00 1\n`);
    assert.ok(performance.now() - t0 < 200, 'a 4 MiB answer is not scanned whole');
  });

  test('random bytes never throw and never make a step', () => {
    const r0 = rng(fuzzSeed('guest stamps'));
    const pieces = ['init 1.0', 'sshd-listening 3.25', '@uptime 4.00 1.00', '@uptime ', ' ', '\n', '\r\n', '0.5', 'a-b 9999999.999999'];
    for (let i = 0; i < 3000; i++) {
      const parts = Array.from({ length: r0.int(12) }, () => (r0.bool(0.5) ? r0.pick(pieces) : randomString(r0)));
      const r = parseGuestStamps(parts.join(r0.bool() ? '\n' : ''));
      if (r) for (const x of r.steps) assert.ok(Number.isFinite(x.sec) && x.sec >= 0 && x.sec <= r.nowSec);
    }
  });

  test('the command reads the file bounded, then the clock last', () => {
    assert.match(
      READ_TIMELINE_COMMAND,
      new RegExp(`^head -c ${MAX_TIMELINE_BYTES} /run/berth/boot-timeline 2>/dev/null; printf '\\\\n@uptime '; cat /proc/uptime$`),
    );
  });
});

describe('placing guest steps on the engine clock', () => {
  test('the clock read at engine ms R says N seconds: a step at S seconds is at R - (N - S) s; the kernel is at zero', () => {
    const steps = placeGuestSteps(parseGuestStamps(GOOD)!, 25_000);
    assert.deepEqual(steps, [
      { step: 'kernel', atMs: 5000, source: 'guest' },
      { step: 'init', atMs: 5610, source: 'guest' },
      { step: 'root-mounted', atMs: 6200, source: 'guest' },
      { step: 'sysinit', atMs: 6250, source: 'guest' },
      { step: 'network-up', atMs: 7500, source: 'guest' },
    ]);
  });

  test('readGuestStamps takes the midpoint of the round trip, and never throws', async () => {
    let now = 1000;
    const clock = () => now;
    const session = {
      exec: async (cmd: string) => {
        assert.equal(cmd, READ_TIMELINE_COMMAND);
        now += 200;
        return { code: 0, stdout: GOOD, stderr: '' };
      },
    };
    const r = await readGuestStamps(session, clock);
    assert.equal(r?.readAtMs, 1100);
    assert.equal(await readGuestStamps({ exec: async () => Promise.reject(new Error('channel open failure')) }, clock), undefined);
    assert.equal(await readGuestStamps({ exec: async () => ({ code: 1, stdout: 'garbage', stderr: '' }) }, clock), undefined);
    assert.equal(
      await readGuestStamps(
        {
          exec: () => {
            throw new Error('sync throw');
          },
        },
        clock,
      ),
      undefined,
    );
  });
});

describe('the BootTimeline of a start', () => {
  const fakeClock = () => {
    const c = { now: 10_000, fn: () => c.now };
    return c;
  };

  test('host steps from begin, the first mark counts, guest steps merged in time order', async () => {
    const c = fakeClock();
    const tl = new BootTimeline(c.fn);
    assert.equal(tl.view(), undefined, 'no start, no timeline');
    tl.mark('vm-spawn');
    assert.equal(tl.view(), undefined, 'marks before begin are ignored');
    tl.begin();
    c.now += 100;
    tl.mark('vm-spawn');
    c.now += 50;
    tl.mark('vm-process-up');
    c.now += 9000;
    tl.mark('ssh-connected');
    c.now += 3000;
    tl.mark('docker-ready');
    tl.mark('vm-spawn');
    const guest = 'init 0.60\nsshd-listening 8.00\ndocker-api-listening 10.90\n@uptime 11.00 1\n';
    await tl.readGuest({ exec: async () => ({ code: 0, stdout: guest, stderr: '' }) });
    c.now += 100;
    tl.mark('socket-ready');
    const v = tl.view()!;
    assert.deepEqual(
      v.map((s) => [s.step, s.atMs, s.source]),
      [
        ['vm-spawn', 100, 'host'],
        ['vm-process-up', 150, 'host'],
        ['kernel', 1150, 'guest'],
        ['init', 1750, 'guest'],
        ['sshd-listening', 9150, 'guest'],
        ['ssh-connected', 9150, 'host'],
        ['docker-api-listening', 12050, 'guest'],
        ['docker-ready', 12150, 'host'],
        ['socket-ready', 12250, 'host'],
      ],
    );
    tl.clear();
    assert.equal(tl.view(), undefined);
  });

  test('the last guest step missing: read once more; a guest that does not answer leaves the host steps', async () => {
    const c = fakeClock();
    const tl = new BootTimeline(c.fn);
    tl.begin();
    tl.mark('vm-spawn');
    let calls = 0;
    await tl.readGuest(
      {
        exec: async () => {
          calls++;
          return { code: 0, stdout: calls === 1 ? 'init 0.5\n@uptime 1.00 1\n' : 'init 0.5\ndocker-api-listening 1.5\n@uptime 2.00 1\n', stderr: '' };
        },
      },
      { retryMs: 1 },
    );
    assert.equal(calls, 2);
    assert.ok(tl.view()!.some((s) => s.step === 'docker-api-listening'));

    const tl2 = new BootTimeline(c.fn);
    tl2.begin();
    tl2.mark('vm-spawn');
    await tl2.readGuest({ exec: async () => Promise.reject(new Error('gone')) }, { retryMs: 1 });
    assert.deepEqual(tl2.view(), [{ step: 'vm-spawn', atMs: 0, source: 'host' }]);
  });
});

describe('the readable timeline (berth start, berth status)', () => {
  test('each step with its time, the time since the step before, its label and whose clock', () => {
    const lines = formatBootTimeline([
      { step: 'vm-spawn', atMs: 120, source: 'host' },
      { step: 'kernel', atMs: 900, source: 'guest' },
      { step: 'docker-api-listening', atMs: 12_345, source: 'guest' },
      { step: 'socket-ready', atMs: 12_600, source: 'host' },
    ]);
    assert.deepEqual(lines, [
      '   0.1 s   +0.1 s  VM process spawned               host',
      '   0.9 s   +0.8 s  kernel started                   guest',
      '  12.3 s  +11.4 s  Docker API listening             guest',
      '  12.6 s   +0.3 s  docker socket ready on the host  host',
    ]);
  });

  test("a step the CLI does not know is shown by its name; a name that is one of Object's own is not a label", () => {
    const lines = formatBootTimeline(
      [
        { step: 'new-step', atMs: 1000, source: 'guest' },
        { step: 'constructor', atMs: 2000, source: 'guest' },
        { step: '__proto__', atMs: 3000, source: 'guest' },
        { step: 'toString', atMs: 2500, source: 'guest' },
        { step: 'evil\u001b[31m', atMs: 4000, source: 'guest' },
      ],
      '',
    );
    assert.match(lines[0]!, /new-step +guest$/);
    assert.match(lines[1]!, /constructor/);
    assert.match(lines[2]!, /__proto__/);
    assert.match(lines[3]!, /\+0\.0 s {2}toString/, 'out of order: no negative time');
    assert.match(lines[4]!, /evil\?\[31m/, 'no terminal escapes from the wire');
    assert.deepEqual(formatBootTimeline([]), []);
  });
});

test('berth status shows the timeline under its own heading; the status schema carries it', () => {
  const st = VmStatusSchema.parse({
    instance: 'default',
    state: 'running',
    driver: 'qemu',
    cpus: 2,
    memoryMiB: 2048,
    diskGiB: 64,
    dockerSocket: '/s',
    dockerHost: 'unix:///s',
    enginePid: 1,
    bootTimeline: [
      { step: 'vm-spawn', atMs: 100, source: 'host' },
      { step: 'init', atMs: 2100, source: 'guest' },
    ],
  });
  const out = formatStatus(st).split('\n');
  const i = out.findIndex((l) => l.startsWith('boot timeline '));
  assert.ok(i > 0, out.join('\n'));
  assert.match(out[i]!, /^boot timeline 0\.1 s {2}\+0\.1 s {2}VM process spawned {7}host$/);
  assert.match(out[i + 1]!, /^ {14}2\.1 s {2}\+2\.0 s {2}initramfs \/init running {2}guest$/);
  assert.throws(() => VmStatusSchema.parse({ ...st, bootTimeline: [{ step: 'x', atMs: 1, source: 'elsewhere' }] }));
});
