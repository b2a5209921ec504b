/**
 * The docker CLI's proxies for containers and builds (base/docker-proxies.ts):
 * Berth's key only (its socket's address), the user's "default" and other
 * daemons' entries and every other key of config.json kept, removed when
 * the settings have none, a config.json that is not JSON left untouched;
 * and what the settings make of them (the host's loopback as the VM
 * reaches it). The docker CLI itself reads the file in the VM test.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { syncDockerProxies } from '../../app/base/docker-proxies.js';
import { clientProxies } from '../../app/engine/docker/daemon-config.js';
import { defaultSettings } from '../../app/engine/settings/schema.js';
import { shortTempDir, withEnv } from '../helpers/temp.js';

const HOST = 'unix:///home/me/.berth/default/docker.sock';

test("config.json: Berth's own key set and removed; the user's default, other daemons and other keys kept, and the file's mode", () => {
  const t = shortTempDir('dprx');
  const restore = withEnv({ DOCKER_CONFIG: t.dir });
  try {
    const file = path.join(t.dir, 'config.json');
    assert.equal(syncDockerProxies(HOST, {}), 'unchanged', 'nothing to remove, no file made');
    assert.ok(!fs.existsSync(file));
    const theirs = { auths: { 'registry.example.com': { auth: 'eDp5' } }, currentContext: 'berth', proxies: { default: { httpProxy: 'http://theirs:1' } } };
    fs.writeFileSync(file, JSON.stringify(theirs), { mode: 0o640 });
    assert.equal(syncDockerProxies(HOST, { httpProxy: 'http://10.0.2.2:3128', httpsProxy: '', noProxy: 'localhost' }), 'set');
    const now = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.deepEqual(now, {
      ...theirs,
      proxies: { default: { httpProxy: 'http://theirs:1' }, [HOST]: { httpProxy: 'http://10.0.2.2:3128', noProxy: 'localhost' } },
    });
    assert.equal(fs.statSync(file).mode & 0o777, 0o640, 'the mode it had');
    assert.equal(syncDockerProxies(HOST, { httpProxy: 'http://10.0.2.2:3128', noProxy: 'localhost' }), 'unchanged');
    assert.equal(syncDockerProxies(HOST, {}), 'removed');
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), theirs, 'back to what the user had');
    // With no other entry, the proxies key goes too.
    fs.writeFileSync(file, JSON.stringify({ auths: {} }));
    syncDockerProxies(HOST, { httpsProxy: 'http://p:1' });
    syncDockerProxies(HOST, {});
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), { auths: {} });
    // Not JSON: refused, the file as it was.
    fs.writeFileSync(file, '{ broken');
    assert.throws(() => syncDockerProxies(HOST, { httpProxy: 'http://p:1' }));
    assert.equal(fs.readFileSync(file, 'utf8'), '{ broken');
  } finally {
    restore();
    t.cleanup();
  }
});

test('client proxies from the settings: as the VM reaches them; noProxy only with a proxy', () => {
  const s = { ...defaultSettings(), httpProxy: 'http://127.0.0.1:3128', httpsProxy: 'http://proxy.corp:8080', noProxy: 'localhost,.corp' };
  assert.deepEqual(clientProxies(s, '10.0.2.2'), { httpProxy: 'http://10.0.2.2:3128', httpsProxy: 'http://proxy.corp:8080', noProxy: 'localhost,.corp' });
  const t = shortTempDir('dprx2');
  const restore = withEnv({ DOCKER_CONFIG: t.dir });
  try {
    assert.equal(syncDockerProxies(HOST, clientProxies({ ...defaultSettings(), noProxy: 'localhost' })), 'unchanged', 'noProxy alone writes nothing');
  } finally {
    restore();
    t.cleanup();
  }
});
