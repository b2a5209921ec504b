import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { engineCommand } from '../../app/client/engine-launcher.js';
import { dropEngineMallocEnv, ENGINE_MALLOC_ENV, ENGINE_NODE_FLAGS } from '../../app/client/engine-memory.js';
import { shortTempDir } from '../helpers/temp.js';

const opts = { execPath: '/usr/bin/node', script: '/opt/berth/bin/berth.js', env: { PATH: '/usr/bin' }, exitOnStop: true };

test('the engine is `berth daemon` with its memory flags before the script and glibc settings in its environment', () => {
  const c = engineCommand({ name: 'dev' }, opts);
  assert.equal(c.file, '/usr/bin/node');
  assert.deepEqual(c.args, ['--max-semi-space-size=1', '/opt/berth/bin/berth.js', 'daemon', '--instance', 'dev', '--exit-on-stop']);
  assert.deepEqual(c.env, {
    PATH: '/usr/bin',
    MALLOC_ARENA_MAX: '2',
    MALLOC_MMAP_THRESHOLD_: '16384',
  });
  assert.deepEqual(engineCommand({ name: 'dev' }, { ...opts, exitOnStop: false }).args.slice(-1), ['dev']);
});

test('a malloc setting the user made wins over the engine default', () => {
  const c = engineCommand({ name: 'default' }, { ...opts, env: { MALLOC_ARENA_MAX: '8' } });
  assert.equal(c.env.MALLOC_ARENA_MAX, '8');
  assert.equal(c.env.MALLOC_MMAP_THRESHOLD_, ENGINE_MALLOC_ENV.MALLOC_MMAP_THRESHOLD_);
});

test('the engine takes out the malloc settings that hold the launcher values, not a user value: what it starts (QEMU, virtiofsd) runs with glibc defaults', () => {
  const env = engineCommand({ name: 'default' }, { ...opts, env: { PATH: '/usr/bin', MALLOC_ARENA_MAX: '8' } }).env;
  dropEngineMallocEnv(env);
  assert.deepEqual(env, { PATH: '/usr/bin', MALLOC_ARENA_MAX: '8' });
});

test("node takes the engine's flags, and its young generation stays at 1 MB a half after heavy churn (without, 16 MB a half)", () => {
  const { dir, cleanup } = shortTempDir('bl');
  const script = path.join(dir, 'churn.js');
  // Short-lived garbage at a high rate, as a sync's packing makes; then the young generation's size.
  fs.writeFileSync(
    script,
    `let keep = [];
for (let i = 0; i < 3e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 20000) keep = []; }
const ns = require('v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
process.stdout.write(JSON.stringify({ size: ns.space_size, arena: process.env.MALLOC_ARENA_MAX }));`,
  );
  const run = (flags: string[]) =>
    JSON.parse(execFileSync(process.execPath, [...flags, script], { encoding: 'utf8', env: engineCommand({ name: 'x' }, { ...opts, env: {} }).env }));
  const held = run(ENGINE_NODE_FLAGS);
  const grown = run([]);
  cleanup();
  assert.equal(held.arena, '2');
  assert.ok(held.size <= 2 * 1024 * 1024, `young generation ${held.size} bytes with the engine's flags`);
  assert.ok(grown.size > 4 * 1024 * 1024, `young generation ${grown.size} bytes without: the churn did not grow it, so the test shows nothing`);
});
