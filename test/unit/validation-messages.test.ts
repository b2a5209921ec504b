/**
 * One human message per validation rule (issue 19): the same bad value is
 * said the same way by the engine, the dashboard's gateway and the CLI,
 * with an engine running or not; zod's generic wording never reaches a user.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { ControlClient } from '../../app/client/control-client.js';
import { EngineGateway } from '../../app/client/engine-gateway.js';
import { BerthError, toErrorInfo } from '../../app/contract/errors.js';
import { describeIssues } from '../../app/contract/issues.js';
import { instancePaths } from '../../app/base/paths.js';
import { startFakeEngine, type FakeEngine } from '../helpers/fake-engine.js';
import { berth } from '../helpers/run.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('vm');
const home = path.join(t.dir, 'home');
const env = { ...process.env, BERTH_HOME: home, BERTH_CACHE: path.join(t.dir, 'cache'), DOCKER_CONFIG: path.join(t.dir, 'docker'), NO_COLOR: '1' };
let engine: FakeEngine;
before(async () => {
  engine = await startFakeEngine(home);
});
after(async () => {
  await engine.close();
  t.cleanup();
});

const PORT = 'bad params for ports.add: hostPort: must be a port from 1 to 65535';

test("zod's generic wording is said plainly", () => {
  const S = z
    .object({
      cpus: z.number().int(),
      driver: z.enum(['auto', 'qemu']),
      on: z.boolean(),
      n: z.number().max(9),
      s: z.string().min(1),
      l: z.array(z.number()).max(2),
    })
    .partial()
    .strict();
  const r = S.safeParse({ cpus: 'abc', driver: 'x', on: 1, n: 10, s: '', l: [1, 2, 3], memory: 1 });
  assert.ok(!r.success);
  assert.equal(
    describeIssues(r.error),
    'cpus: must be a number; driver: must be one of "auto", "qemu"; on: must be true or false; n: must be at most 9; s: must not be empty; l: must have at most 2 items; "memory" is not a known key',
  );
  const int = S.safeParse({ cpus: 1.5 });
  assert.ok(!int.success);
  assert.equal(describeIssues(int.error), 'cpus: must be a whole number');
});

test('the same bad port, the same message: engine, dashboard gateway (with and without an engine), CLI (with and without)', async () => {
  const said: Record<string, string> = {};
  const client = await ControlClient.connect(engine.paths);
  try {
    said.engine = await client.call('ports.add', { hostPort: 70000, guestPort: 80 }).then(
      () => 'accepted',
      (e) => toErrorInfo(e).message,
    );
  } finally {
    client.close();
  }
  const other = instancePaths('offline', home);
  fs.mkdirSync(other.dir, { recursive: true });
  for (const [name, paths, connect] of [
    ['gateway, engine running', engine.paths, () => ControlClient.connect(engine.paths)],
    ['gateway, no engine', other, async () => Promise.reject(new BerthError('ENGINE_NOT_RUNNING', 'not running', 'Start it.'))],
  ] as const) {
    const gw = new EngineGateway({ paths, watchMs: 0, connect });
    said[name] = await gw.call('ports.add', { hostPort: 70000, guestPort: 80 }).then(
      () => 'accepted',
      (e) => toErrorInfo(e).message,
    );
    gw.close();
  }
  for (const [name, instance] of [
    ['CLI, engine running', 'default'],
    ['CLI, no engine', 'offline'],
  ] as const) {
    const r = await berth(['--instance', instance, 'port', 'add', '70000:80'], env);
    assert.equal(r.code, 1, r.stderr);
    said[name] = /^error: (.*) \[/.exec(r.stderr)?.[1] ?? r.stderr;
  }
  for (const [where, message] of Object.entries(said)) assert.equal(message, PORT, where);
});
