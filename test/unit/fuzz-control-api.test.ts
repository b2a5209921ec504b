/**
 * Bad input on the control socket: random bytes, malformed JSON, wrong
 * types, unknown methods, a 64 MiB line, deeply nested JSON, half-written
 * requests and hundreds of connections at once, against the real control
 * server, settings store and Docker handlers (fake engine, no VM). Every
 * line gets one clear error (code, message, hint; never INTERNAL) or a
 * clean close, and the engine still answers a good request afterwards.
 *
 * Seeded: the seed is printed; BERTH_FUZZ_SEED=<seed> replays a run.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ControlClient } from '../../app/client/control-client.js';
import { SettingsStore } from '../../app/engine/settings/store.js';
import { startFakeEngine, type FakeEngine } from '../helpers/fake-engine.js';
import { fuzzSeed, garbageLine, rng } from '../helpers/fuzz.js';
import { checkErrorShape, randomPatch } from '../helpers/fuzz-requests.js';
import { hello as helloWith, raw as rawConnection, type Raw } from '../helpers/control-raw.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('fzc');
let eng: FakeEngine;
let token: string;
const SEED = fuzzSeed('control socket');

before(async () => {
  eng = await startFakeEngine(path.join(t.dir, 'home'), { running: true, phaseMs: 2 });
  token = fs.readFileSync(eng.paths.token, 'utf8').trim();
});
after(async () => {
  await eng.close();
  t.cleanup();
});

const raw = () => rawConnection(eng.paths.controlSocket);
const hello = (c: Raw) => helloWith(c, token);

/** The engine is alive and well: a new client gets a status. */
async function stillServes(): Promise<void> {
  const client = await ControlClient.connect(eng.paths, 'fuzz-check');
  try {
    const s = await client.call('vm.status', {});
    assert.equal(s.instance, 'default');
  } finally {
    client.close();
  }
  SettingsStore.load(eng.paths.settings); // the settings file is still valid
}

test(`bad settings patches change nothing on disk, good ones are saved (seed ${SEED})`, async () => {
  const r = rng(SEED + 1);
  const client = await ControlClient.connect(eng.paths, 'fuzz');
  let refused = 0;
  try {
    for (let i = 0; i < 150; i++) {
      const before = fs.readFileSync(eng.paths.settings, 'utf8');
      const patch = randomPatch(r);
      try {
        const res = await client.call('settings.update', { patch });
        assert.deepEqual(SettingsStore.load(eng.paths.settings), res.settings, 'what was saved is what was answered');
      } catch (err) {
        refused++;
        checkErrorShape(err, `settings.update ${JSON.stringify(patch)} (seed ${SEED})`);
        assert.equal(fs.readFileSync(eng.paths.settings, 'utf8'), before, `a refused patch changed the file: ${JSON.stringify(patch)} (seed ${SEED})`);
      }
    }
  } finally {
    client.close();
  }
  assert.ok(refused > 50);
  await stillServes();
});

test('a 64 MiB line: refused with BAD_REQUEST and the connection closed; nothing after it is read', async () => {
  const c = await raw();
  await hello(c);
  const chunk = Buffer.alloc(1 << 20, 0x61);
  let written = 0;
  // Write until the engine hangs up (it should, after 1 MiB) or 64 MiB went out.
  while (written < 64 << 20 && !c.isClosed() && c.lines.length === 0) {
    const ok = c.sock.write(chunk);
    written += chunk.length;
    if (!ok) await new Promise<void>((r) => (c.sock.once('drain', r), c.sock.once('close', r)));
  }
  // A request smuggled after the huge line must not be executed.
  const before = fs.readFileSync(eng.paths.settings, 'utf8');
  c.write('\n');
  await new Promise((r) => setTimeout(r, 100));
  c.write(JSON.stringify({ id: 'smuggled', method: 'settings.update', params: { patch: { portBind: 'all' } } }) + '\n');
  await new Promise((r) => setTimeout(r, 200));
  await Promise.race([c.closed, new Promise((r) => setTimeout(r, 10_000))]);
  assert.ok(c.isClosed(), 'the engine closed the connection');
  const answers = c.lines.map((l) => JSON.parse(l));
  assert.equal(answers.length, 1, `one answer, not ${JSON.stringify(answers).slice(0, 300)}`);
  assert.equal(checkErrorShape(answers[0].error, '64 MiB').code, 'BAD_REQUEST');
  assert.match(answers[0].error.message, /larger than/);
  assert.equal(fs.readFileSync(eng.paths.settings, 'utf8'), before, 'the request after the huge line was not executed');
  await stillServes();
});

test('deeply nested JSON: BAD_REQUEST, not a stack overflow', async () => {
  const c = await raw();
  await hello(c);
  const depth = 200_000;
  const deep = '['.repeat(depth) + ']'.repeat(depth);
  c.write(`{"id":1,"method":"settings.update","params":{"patch":{"ports":${deep}}}}\n`);
  c.write(`{"id":2,"method":"settings.update","params":{"patch":{"x":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}}}\n`);
  c.write(`{"id":3,"method":"vm.status","params":${'['.repeat(100_000)}${']'.repeat(100_000)}}\n`);
  const answers = (await c.waitLines(3)) as { id: number; error?: unknown }[];
  assert.equal(answers.length, 3);
  for (const a of answers) assert.equal(checkErrorShape(a.error, `deep ${a.id}`).code, 'BAD_REQUEST');
  c.sock.destroy();
  await stillServes();
});

test('half-written requests: completed later they are answered; cut off they are dropped cleanly', async () => {
  const c = await raw();
  await hello(c);
  const req = Buffer.from(JSON.stringify({ id: 7, method: 'vm.status', params: {} }) + '\n');
  // byte by byte, including a multi-byte character split across writes
  const withUtf8 = Buffer.from(JSON.stringify({ id: 8, method: 'vm.status', params: { ['é😀']: 1 } }) + '\n');
  for (const b of [req, withUtf8]) {
    for (let i = 0; i < b.length; i++) {
      c.write(b.subarray(i, i + 1));
      if (i % 7 === 0) await new Promise((r) => setImmediate(r));
    }
  }
  const [a, b] = (await c.waitLines(2)) as { id: number; result?: unknown; error?: unknown }[];
  assert.equal(a!.id, 7);
  assert.ok(a!.result);
  assert.equal(b!.id, 8);
  checkErrorShape(b!.error, 'unknown param key');
  // A request cut off mid-line, then the client half-closes or vanishes.
  for (const end of ['end', 'destroy'] as const) {
    const d = await raw();
    await hello(d);
    d.write('{"id": 9, "method": "vm.st');
    if (end === 'end') d.sock.end();
    else d.sock.destroy();
    await d.closed;
    assert.equal(d.lines.length, 0, 'nothing answered for half a request');
  }
  await stillServes();
});

test(`hundreds of connections at once, good and bad: all answered, none lost (seed ${SEED})`, async () => {
  const r = rng(SEED + 3);
  const jobs: Promise<void>[] = [];
  for (let i = 0; i < 150; i++) {
    jobs.push(
      (async () => {
        const client = await ControlClient.connect(eng.paths, `c${i}`);
        try {
          const s = await client.call('vm.status', {});
          assert.equal(s.instance, 'default');
          await assert.rejects(client.call('vm.stop', { force: 'yes' } as never), (e) => (checkErrorShape(e, 'bad vm.stop'), true));
          assert.ok(Array.isArray((await client.call('containers.list', {})).containers));
        } finally {
          client.close();
        }
      })(),
    );
  }
  for (let i = 0; i < 100; i++) {
    jobs.push(
      (async () => {
        const c = await raw();
        c.write(Buffer.concat([garbageLine(r, 2000), Buffer.from('\n')]));
        const [a] = (await c.waitLines(1)) as { error?: unknown }[];
        checkErrorShape(a?.error, 'garbage');
        c.sock.destroy();
      })(),
    );
  }
  await Promise.all(jobs);
  await stillServes();
});
