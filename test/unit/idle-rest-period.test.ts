/**
 * How often the idle rest looks (app/engine/runtime/idle-rest.ts), on
 * Node's mock clock: a quarter of the idle time between 1 s and 30 s, and
 * every 30 s when the VM never rests (`idleMinutes` 0), where it used to
 * wake the engine every second for nothing.
 */
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { IdleRest } from '../../app/engine/runtime/idle-rest.js';
import { silentLogger } from '../../app/base/log.js';

/** Moves the mock clock, then lets the check's awaits run (setImmediate is not mocked). */
async function tick(ms: number): Promise<void> {
  mock.timers.tick(ms);
  await new Promise((r) => setImmediate(r));
}

/** An armed idle rest on the mock clock; `looks` counts its reads of the setting. */
function watching(minutes: () => number, busy: string | undefined) {
  const seen = { looks: 0, rests: 0 };
  const idle = new IdleRest({
    log: silentLogger(),
    idleMinutes: () => {
      seen.looks++;
      return minutes();
    },
    busyReason: async () => busy,
    rest: () => seen.rests++,
  });
  idle.arm();
  return { idle, seen };
}

/** How many times the idle rest looked at its setting over `ms` of mock time. */
async function looksOver(minutes: () => number, ms: number): Promise<{ looks: number; rests: number }> {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const { idle, seen } = watching(minutes, 'a container runs');
    for (let t = 0; t < ms; t += 500) await tick(500);
    idle.disarm();
    return seen;
  } finally {
    mock.timers.reset();
  }
}

test('never resting (idleMinutes 0), it looks at the setting every 30 s, not every second', async () => {
  const { looks, rests } = await looksOver(() => 0, 90_000);
  // Each look reads the setting twice (the check and the next period): 3 looks in 90 s.
  assert.ok(looks <= 8, `looked ${looks} times in 90 s`);
  assert.equal(rests, 0);
});

test('with a short idle time it looks every quarter of it, at least every second', async () => {
  // 0.05 minutes = 3 s: every 1 s (the floor, above 0.75 s).
  const { looks } = await looksOver(() => 0.05, 10_000);
  assert.ok(looks >= 10, `looked ${looks} times in 10 s`);
});

test('a setting changed from 0 is seen within 30 s', async () => {
  let minutes = 0;
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const { idle, seen } = watching(() => minutes, undefined);
    await tick(1000);
    minutes = 15;
    const before = seen.looks;
    for (let t = 0; t < 30_000; t += 500) await tick(500);
    assert.ok(seen.looks > before, 'the new setting was not looked at within 30 s');
    idle.disarm();
  } finally {
    mock.timers.reset();
  }
});
