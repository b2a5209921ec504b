/**
 * The dashboard's gateway with no engine running: what works on the
 * settings file (shares, manual ports, synced folders: the same edits as the
 * CLI's, settings/edits.ts) and what says the engine is not running.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { EngineGateway } from '../../app/client/engine-gateway.js';
import { BerthError, isBerthError } from '../../app/contract/errors.js';
import { instancePaths } from '../../app/base/paths.js';
import { SettingsStore } from '../../app/engine/settings/store.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('gw');
after(() => t.cleanup());

const home = path.join(t.dir, 'home');
const shared = path.join(t.dir, 'work');
fs.mkdirSync(path.join(shared, 'app'), { recursive: true });
fs.mkdirSync(path.join(t.dir, 'elsewhere'));
fs.mkdirSync(path.join(t.dir, 'more'));
const paths = instancePaths('default', home);
fs.mkdirSync(paths.dir, { recursive: true });
new SettingsStore(paths.settings).update({ shares: [{ hostPath: shared }] });

const gateway = new EngineGateway({
  paths,
  watchMs: 0,
  connect: async () => {
    throw new BerthError('ENGINE_NOT_RUNNING', 'Berth is not running', 'Start it.');
  },
});
after(() => gateway.close());

const onFile = () => new SettingsStore(paths.settings).get();

test('no engine: a synced folder is added to and removed from the settings file, as `berth sync add|rm` does', async () => {
  const added = (await gateway.call('sync.add', { hostPath: path.join(shared, 'app') })) as { configured: { hostPath: string }[] };
  assert.deepEqual(added.configured, [{ hostPath: path.join(shared, 'app') }]);
  assert.deepEqual(onFile().sync, [{ hostPath: path.join(shared, 'app') }]);
  await gateway.call('sync.remove', { hostPath: path.join(shared, 'app') });
  assert.deepEqual(onFile().sync, []);
});

test('no engine: a folder outside every share cannot be synced, and nothing is written', async () => {
  const before = fs.readFileSync(paths.settings, 'utf8');
  await assert.rejects(
    gateway.call('sync.add', { hostPath: path.join(t.dir, 'elsewhere') }),
    (e) => isBerthError(e) && /berth share add/.test(`${e.message} ${e.hint}`),
  );
  await assert.rejects(gateway.call('sync.remove', { hostPath: path.join(shared, 'app') }), (e) => isBerthError(e, 'BAD_REQUEST'));
  assert.equal(fs.readFileSync(paths.settings, 'utf8'), before);
});

test('no engine: shares and manual ports are edited on the file too; what needs the VM says the engine is not running', async () => {
  await gateway.call('shares.add', { hostPath: path.join(t.dir, 'more') });
  assert.ok(onFile().shares.some((s) => s.hostPath === path.join(t.dir, 'more')));
  await gateway.call('ports.add', { hostPort: 18080, guestPort: 80 });
  assert.deepEqual(onFile().ports, [{ hostPort: 18080, guestPort: 80, proto: 'tcp' }]);
  await assert.rejects(gateway.call('containers.list', {}), (e) => isBerthError(e, 'ENGINE_NOT_RUNNING'));
});

test('a VM left without its engine is found for every driver: QEMU and vfkit by pid, Hyper-V by its run state', async (t) => {
  const { orphanVm } = await import('../../app/client/offline.js');
  const { spawn } = await import('node:child_process');
  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => sleeper.kill());
  const cases: [string, () => void, unknown][] = [
    ['nothing left', () => undefined, undefined],
    ['QEMU', () => fs.writeFileSync(paths.qemuPid, `${sleeper.pid}\n`), { driver: 'qemu', pid: sleeper.pid }],
    ['vfkit', () => fs.writeFileSync(paths.vfkitPid, `${sleeper.pid}\n`), { driver: 'vfkit', pid: sleeper.pid }],
    ['Hyper-V', () => fs.writeFileSync(paths.state, JSON.stringify({ driver: 'hyperv', sshPort: 0 })), { driver: 'hyperv' }],
    ['a dead QEMU', () => fs.writeFileSync(paths.qemuPid, '999999\n'), undefined],
    ['a QEMU run state but no process', () => fs.writeFileSync(paths.state, JSON.stringify({ driver: 'qemu', sshPort: 1 })), undefined],
  ];
  for (const [what, make, want] of cases) {
    for (const f of [paths.qemuPid, paths.vfkitPid, paths.state]) fs.rmSync(f, { force: true });
    make();
    assert.deepEqual(orphanVm(paths), want, what);
  }
  for (const f of [paths.qemuPid, paths.vfkitPid, paths.state]) fs.rmSync(f, { force: true });
});

test('Stop in the dashboard (and berth stop) on an orphaned VM of any driver has an engine take it over and stop it', async () => {
  const { offlineCall } = await import('../../app/client/offline.js');
  for (const [driver, leave] of [
    ['qemu', () => fs.writeFileSync(paths.qemuPid, `${process.pid}\n`)],
    ['vfkit', () => fs.writeFileSync(paths.vfkitPid, `${process.pid}\n`)],
    ['hyperv', () => fs.writeFileSync(paths.state, JSON.stringify({ driver: 'hyperv', sshPort: 0 }))],
  ] as const) {
    leave();
    let tookOver = 0;
    const stopped = { state: 'stopped' };
    const r = await offlineCall(paths, 'vm.stop', {}, async () => {
      tookOver++;
      return { call: async (m: string) => (m === 'vm.stop' ? stopped : undefined) } as never;
    });
    assert.equal(tookOver, 1, `${driver}: an engine was started to take the VM over`);
    assert.equal(r, stopped, driver);
    for (const f of [paths.qemuPid, paths.vfkitPid, paths.state]) fs.rmSync(f, { force: true });
  }
  // Nothing left: Stop answers stopped at once, and no engine is started.
  const r = (await offlineCall(paths, 'vm.stop', {}, async () => assert.fail('no engine should start'))) as { state: string };
  assert.equal(r.state, 'stopped');
});
