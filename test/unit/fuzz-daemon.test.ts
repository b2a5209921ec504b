/**
 * Bad input on the control socket of the real daemon (`startDaemon`: the
 * engine, its handler table, settings, Docker handlers over a fake dockerd)
 * with a fake VM driver and a running fake guest: random lines get one
 * clear error each (never INTERNAL), and calls before a good `hello` are
 * refused as UNAUTHORIZED with the connection closed and no handler run.
 *
 * Seeded: the seed is printed; BERTH_FUZZ_SEED=<seed> replays a run.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ControlClient } from '../../app/client/control-client.js';
import { RequestSchema } from '../../app/contract/contract.js';
import { startDaemon, type RunningDaemon } from '../../app/engine/daemon.js';
import { instancePaths } from '../../app/base/paths.js';
import { waitFor } from '../../app/base/process-util.js';
import { hello, raw } from '../helpers/control-raw.js';
import { FakeDriver } from '../helpers/fake-driver.js';
import { startFakeDockerEngine, type FakeDockerd } from '../helpers/fake-dockerd.js';
import { fuzzSeed, garbageLine, malformedJson, randomJson, randomString, rng } from '../helpers/fuzz.js';
import { checkErrorShape, METHOD_NAMES, randomParams, randomRequest } from '../helpers/fuzz-requests.js';
import { fakeImageDir, shortTempDir, withEnv } from '../helpers/temp.js';

const t = shortTempDir('fzdm');
const home = path.join(t.dir, 'home');
const paths = instancePaths('fuzz', home);
const SEED = fuzzSeed('daemon control socket');
let restoreEnv: () => void;
let umask: number;
let dockerd: FakeDockerd;
let d: RunningDaemon;
/** The token of the daemon started before this one (a client holding it is a client of the last start). */
let lastStartToken = '';
/** Every call that reached one of the daemon's handlers, by method. */
const called: string[] = [];

const token = () => fs.readFileSync(paths.token, 'utf8').trim();

/** Wrap every handler of the daemon's control server so a call to it is seen. */
function spyOnHandlers(daemon: RunningDaemon): void {
  const handlers = (daemon.server as unknown as { handlers: Record<string, (p: unknown) => Promise<unknown>> }).handlers;
  for (const [name, fn] of Object.entries(handlers)) {
    handlers[name] = (p: unknown) => {
      called.push(name);
      return fn(p);
    };
  }
}

async function start(): Promise<RunningDaemon> {
  const driver = new FakeDriver({ mode: 'ok', hostKeyFile: paths.hostKey, clientPubFile: `${paths.clientKey}.pub`, dockerSocket: dockerd.socketPath });
  const daemon = await startDaemon({ instance: 'fuzz', exitOnStop: false, driver });
  spyOnHandlers(daemon);
  return daemon;
}

before(async () => {
  umask = process.umask();
  restoreEnv = withEnv({
    BERTH_HOME: home,
    BERTH_IMAGE_DIR: fakeImageDir(path.join(t.dir, 'img')),
    BERTH_ACCEL: 'tcg',
    DOCKER_CONFIG: path.join(t.dir, 'docker'),
    BERTH_CACHE: path.join(t.dir, 'cache'),
  });
  dockerd = await startFakeDockerEngine(path.join(t.dir, 'dockerd.sock'));
  // One start and stop first, so a token of the last start exists.
  const first = await start();
  lastStartToken = token();
  await first.shutdown(true);
  await first.done;
  d = await start();
  assert.notEqual(token(), lastStartToken, 'each start makes a new token');
  const c = await ControlClient.connect(paths, 'fuzz-setup');
  try {
    assert.equal((await c.call('vm.start', {})).state, 'running');
  } finally {
    c.close();
  }
});
after(async () => {
  await d?.shutdown(true);
  await d?.done;
  await dockerd?.close();
  process.umask(umask);
  restoreEnv();
  t.cleanup();
});

async function stillServes(): Promise<void> {
  const client = await ControlClient.connect(paths, 'fuzz-check');
  try {
    const s = await client.call('vm.status', {});
    assert.equal(s.instance, 'fuzz');
    assert.equal(s.state, 'running');
  } finally {
    client.close();
  }
}

test(`600 random lines on the control socket: one error per line with a code, message and hint (never INTERNAL); the connection stays usable (seed ${SEED})`, async () => {
  const r = rng(SEED);
  const c = await raw(paths.controlSocket);
  await hello(c, token());
  const expectIds: unknown[] = [];
  const N = 600;
  for (let i = 0; i < N; i++) {
    let line: string | Buffer;
    const kind = r.int(4);
    if (kind === 0) line = garbageLine(r);
    else if (kind === 1) line = JSON.stringify(randomJson(r, 3));
    else if (kind === 2) line = malformedJson(r, JSON.stringify(randomRequest(r, i)));
    else line = JSON.stringify(randomRequest(r, i));
    let parsed: unknown;
    try {
      parsed = JSON.parse(line.toString());
    } catch {
      parsed = undefined;
    }
    const req = RequestSchema.safeParse(parsed);
    expectIds.push(req.success ? req.data.id : null);
    c.write(Buffer.concat([Buffer.from(line), Buffer.from('\n')]));
  }
  // Answers carry an id; events (a random line may subscribe) do not.
  const answersNow = () => c.lines.map((l) => JSON.parse(l) as { id: unknown; result?: unknown; error?: unknown }).filter((m) => 'id' in m);
  assert.ok(await waitFor(() => answersNow().length >= N || c.isClosed(), 60_000), `only ${answersNow().length} of ${N} answers (seed ${SEED})`);
  const answers = answersNow();
  assert.equal(c.isClosed(), false, 'the connection stays open');
  assert.equal(answers.length, N, 'one answer per line');
  assert.deepEqual(answers.map((a) => JSON.stringify(a.id)).sort(), expectIds.map((id) => JSON.stringify(id)).sort(), 'answers carry the request ids');
  let errors = 0;
  for (const a of answers) {
    if (a.error) {
      errors++;
      checkErrorShape(a.error, `answer to id ${JSON.stringify(a.id)} (seed ${SEED})`);
    } else assert.ok('result' in a, `an answer is a result or an error (seed ${SEED})`);
  }
  assert.ok(errors > N / 2, 'most of it was refused');
  assert.ok(new Set(called).size > 5, `the daemon's own handlers ran (${[...new Set(called)].join(', ')})`);
  // A good request on the same connection works afterwards.
  c.lines.length = 0;
  c.write(JSON.stringify({ id: 'after', method: 'vm.status', params: {} }) + '\n');
  assert.ok(await waitFor(() => c.lines.some((l) => JSON.parse(l).id === 'after'), 10_000), 'the good request is answered');
  const ok = c.lines.map((l) => JSON.parse(l) as { id: unknown; result?: { state: string } }).find((m) => m.id === 'after');
  assert.equal(ok?.result?.state, 'running', 'a good request works afterwards');
  c.sock.destroy();
  await stillServes();
});

test(`calls before hello, with no, an empty, a short, a long, a wrong or last start's token: UNAUTHORIZED, connection closed, no handler runs (seed ${SEED})`, async () => {
  const r = rng(SEED + 1);
  const good = token();
  const tokens: unknown[] = [
    undefined,
    '',
    good.slice(0, -1),
    good + '0',
    'x'.repeat(5000),
    crypto.randomBytes(32).toString('hex'),
    lastStartToken,
    42,
    [good],
  ];
  const attempts: { what: string; lines: string[] }[] = [];
  // Calls with no hello at all: every method, known or made up, good params or not.
  for (let i = 0; i < 40; i++) {
    const method =
      i < METHOD_NAMES.length ? METHOD_NAMES[i]! : r.pick([randomString(r, 12), 'vm.start', 'engine.shutdown', 'engine.factoryReset', 'settings.update']);
    if (method === 'hello') continue;
    const params = r.bool() ? randomParams(r, method) : method === 'settings.update' ? { patch: { cpus: 1 } } : {};
    attempts.push({ what: `${method} with no hello`, lines: [JSON.stringify({ id: i, method, params })] });
  }
  // A hello with a bad token, then a call.
  for (const tk of tokens) {
    const params = tk === undefined ? {} : { token: tk };
    attempts.push({
      what: `hello with ${JSON.stringify(tk)?.slice(0, 20)}`,
      lines: [JSON.stringify({ id: 1, method: 'hello', params }), JSON.stringify({ id: 2, method: 'vm.stop', params: { force: true } })],
    });
  }
  const calledBefore = called.length;
  for (const a of attempts) {
    const c = await raw(paths.controlSocket);
    // All of it at once, as a client that does not wait for answers.
    c.write(a.lines.join('\n') + '\n');
    const answers = (await c.waitLines(a.lines.length)) as { error?: { code: string } }[];
    await Promise.race([c.closed, new Promise((_, reject) => setTimeout(() => reject(new Error(`${a.what}: the connection was not closed`)), 5000))]);
    assert.equal(answers.length, 1, `${a.what}: one answer, nothing after it is read (${JSON.stringify(answers)})`);
    assert.equal(checkErrorShape(answers[0]!.error, a.what).code, 'UNAUTHORIZED', a.what);
    c.sock.destroy();
  }
  assert.deepEqual(called.slice(calledBefore), [], 'no handler ran');
  await stillServes();
});
