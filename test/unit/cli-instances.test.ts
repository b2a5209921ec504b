/**
 * The commands issue 19 added: `berth list`, `delete`, `reset`, `version`,
 * `completion`, and `context use` following the instance. A fake engine
 * (test/helpers/fake-engine.ts) plays the running default instance.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { PROTOCOL_VERSION } from '../../app/contract/contract.js';
import { startFakeEngine, type FakeEngine } from '../helpers/fake-engine.js';
import { berth, run } from '../helpers/run.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('cli');
const home = path.join(t.dir, 'home');
const env = { ...process.env, BERTH_HOME: home, BERTH_CACHE: path.join(t.dir, 'cache'), DOCKER_CONFIG: path.join(t.dir, 'docker'), NO_COLOR: '1' };
let engine: FakeEngine;
before(async () => {
  engine = await startFakeEngine(home, { running: true });
});
after(async () => {
  await engine.close();
  t.cleanup();
});

test('list: every instance with its state and driver, human and JSON', async () => {
  assert.equal((await berth(['--instance', 'work', 'settings', 'set', 'driver=qemu'], env)).code, 0);
  const r = await berth(['list'], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^NAME +STATE +DRIVER/m);
  assert.match(r.stdout, /^work +stopped +qemu /m);
  const j = JSON.parse((await berth(['list', '--json'], env)).stdout) as { instances: { name: string; state: string; driver?: string }[] };
  const work = j.instances.find((i) => i.name === 'work');
  assert.deepEqual([work?.state, work?.driver], ['stopped', 'qemu']);
  assert.ok(j.instances.some((i) => i.name === 'default'));
  assert.deepEqual(
    (await berth(['list', '--json'], { ...env, BERTH_HOME: path.join(t.dir, 'empty') })).stdout.trim(),
    JSON.stringify({ instances: [] }, null, 2),
  );
});

test('delete: refuses without a terminal or --force, with a hint; --force removes the folder and its docker context', async () => {
  const e = { ...env, BERTH_INSTANCE: 'gone' };
  assert.equal((await berth(['settings', 'set', 'cpus=1'], e)).code, 0);
  const dir = path.join(home, 'gone');
  const refused = await berth(['delete'], e);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /no terminal to ask .*\[CONFIRMATION_NEEDED\]/);
  assert.match(refused.stderr, /hint: Run `berth --instance gone delete --force`/);
  assert.ok(fs.existsSync(dir), 'nothing deleted');
  // Its docker context, made current, goes with it; the docker CLI is back on its default context.
  assert.equal((await berth(['context', 'use'], e)).code, 0);
  const contextMeta = path.join(env.DOCKER_CONFIG, 'contexts/meta', crypto.createHash('sha256').update('berth-gone').digest('hex'));
  assert.ok(fs.existsSync(contextMeta));
  const ok = await berth(['delete', '--force'], e);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(!fs.existsSync(dir));
  assert.match(ok.stdout, /Removed its docker context "berth-gone"; the docker CLI uses its default context again/);
  assert.ok(!fs.existsSync(contextMeta), 'the context is gone');
  assert.equal(JSON.parse(fs.readFileSync(path.join(env.DOCKER_CONFIG, 'config.json'), 'utf8')).currentContext, undefined);
  const again = await berth(['delete', '--force'], e);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /there is no instance "gone"/);
});

test('reset: asks first; with --force the disk goes and the settings are the defaults; refused while the VM runs', async () => {
  const e = { ...env, BERTH_INSTANCE: 'fresh' };
  assert.equal((await berth(['settings', 'set', 'memory=1GiB'], e)).code, 0);
  fs.writeFileSync(path.join(home, 'fresh', 'data.img'), 'disk');
  assert.match((await berth(['reset'], e)).stderr, /CONFIRMATION_NEEDED/);
  assert.ok(fs.existsSync(path.join(home, 'fresh', 'data.img')));
  const r = await berth(['reset', '--force'], e);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /removed .*data\.img/);
  assert.ok(!fs.existsSync(path.join(home, 'fresh', 'data.img')));
  assert.notEqual(JSON.parse(fs.readFileSync(path.join(home, 'fresh', 'settings.json'), 'utf8')).memoryMiB, 1024);
  const busy = await berth(['reset', '--force'], env);
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /\[VM_BUSY\]/);
});

test('version: the CLI and protocol always; the engine when it runs', async () => {
  const alone = await berth(['--instance', 'work', 'version', '--json'], env);
  assert.equal(alone.code, 0, alone.stderr);
  const a = JSON.parse(alone.stdout);
  assert.match(a.cli, /^\d+\.\d+\.\d+/);
  assert.equal(a.protocol, PROTOCOL_VERSION);
  assert.equal(a.engine, undefined);
  assert.match((await berth(['--instance', 'work', 'version'], env)).stdout, /^engine +not running$/m);
  const live = JSON.parse((await berth(['version', '--json'], env)).stdout);
  assert.equal(live.engine, 'fake');
  assert.match((await berth(['version'], env)).stdout, /^engine +fake \(pid \d+\)$/m);
});

test('completion: bash completes commands, subcommands and options from the program; zsh and fish print', async () => {
  const script = (await berth(['completion', 'bash'], env)).stdout;
  const file = path.join(t.dir, 'berth.bash');
  fs.writeFileSync(file, script);
  const complete = async (...words: string[]) => {
    const cmd = `source '${file}'; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _berth; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = await run('bash', ['-c', cmd]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim().split('\n');
  };
  assert.deepEqual(await complete('berth', 'st'), ['start', 'stop', 'status']);
  assert.deepEqual(await complete('berth', 'port', 'a'), ['add']);
  assert.deepEqual(await complete('berth', 'shares', 'add', '--r'), ['--read-only']);
  assert.ok((await complete('berth', '--instance', 'w', 'settings', '')).includes('set'));
  assert.ok((await complete('berth', 'settings', 'set', '--')).includes('--instance'), 'global options too');
  assert.ok((await complete('berth', 'comp')).includes('completion'));
  for (const sh of ['zsh', 'fish']) {
    const r = await berth(['completion', sh], env);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /berth/);
  }
  assert.equal((await berth(['completion', 'tcsh'], env)).code, 2);
});

test('context use: the context follows the instance and this BERTH_HOME, written if need be', async () => {
  const meta = (name: string) => path.join(env.DOCKER_CONFIG, 'contexts/meta', crypto.createHash('sha256').update(name).digest('hex'), 'meta.json');
  const r = await berth(['--instance', 'work', 'context', 'use'], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /"berth-work" \(unix:\/\/.*\/work\/docker\.sock\)/);
  assert.equal(JSON.parse(fs.readFileSync(path.join(env.DOCKER_CONFIG, 'config.json'), 'utf8')).currentContext, 'berth-work');
  assert.equal(JSON.parse(fs.readFileSync(meta('berth-work'), 'utf8')).Endpoints.docker.Host, `unix://${home}/work/docker.sock`);
  const otherHome = path.join(t.dir, 'other');
  assert.equal((await berth(['context', 'use'], { ...env, BERTH_HOME: otherHome })).code, 0);
  assert.equal(
    JSON.parse(fs.readFileSync(meta('berth'), 'utf8')).Endpoints.docker.Host,
    `unix://${otherHome}/default/docker.sock`,
    'the context points at the socket it printed',
  );
});
