/**
 * The dashboard's gateway with no engine running: what works on the
 * settings file (shares, manual ports, synced folders: the same edits as the
 * CLI's, settings/edits.ts) and what says the engine is not running.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { EngineGateway } from '../../app/engine/api/engine-gateway.js';
import { BerthError, isBerthError } from '../../app/engine/errors.js';
import { instancePaths } from '../../app/engine/paths.js';
import { SettingsStore } from '../../app/engine/settings/store.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('gw');
after(() => t.cleanup());

const home = path.join(t.dir, 'home');
const shared = path.join(t.dir, 'work');
fs.mkdirSync(path.join(shared, 'app'), { recursive: true });
fs.mkdirSync(path.join(t.dir, 'elsewhere'));
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
  await assert.rejects(gateway.call('sync.add', { hostPath: path.join(t.dir, 'elsewhere') }), (e) => isBerthError(e) && /berth share add/.test(`${e.message} ${e.hint}`));
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
