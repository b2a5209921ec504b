import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { contextName, ensureDockerContext, removeDockerContext, useDockerContext } from '../../app/base/docker-context.js';
import { isBerthError } from '../../app/contract/errors.js';
import { shortTempDir, withEnv } from '../helpers/temp.js';

const meta = (dir: string, name: string) => path.join(dir, 'contexts/meta', crypto.createHash('sha256').update(name).digest('hex'), 'meta.json');

test('creates the context the way `docker context create` lays it out', () => {
  const t = shortTempDir();
  const restore = withEnv({ DOCKER_CONFIG: t.dir });
  try {
    assert.deepEqual(ensureDockerContext('default', '/h/.berth/default/docker.sock'), { name: 'berth', outcome: 'created' });
    const m = JSON.parse(fs.readFileSync(meta(t.dir, 'berth'), 'utf8'));
    assert.equal(m.Name, 'berth');
    assert.equal(m.Endpoints.docker.Host, 'unix:///h/.berth/default/docker.sock');
    assert.equal(ensureDockerContext('default', '/h/.berth/default/docker.sock').outcome, 'unchanged');
    assert.equal(ensureDockerContext('default', '/other/docker.sock').outcome, 'updated');
    assert.equal(contextName('work'), 'berth-work');
  } finally {
    restore();
    t.cleanup();
  }
});

test("never overwrites someone else's context of the same name", () => {
  const t = shortTempDir();
  const restore = withEnv({ DOCKER_CONFIG: t.dir });
  try {
    const f = meta(t.dir, 'berth');
    fs.mkdirSync(path.dirname(f), { recursive: true });
    const theirs = JSON.stringify({ Name: 'berth', Metadata: {}, Endpoints: { docker: { Host: 'tcp://x:2375' } } });
    fs.writeFileSync(f, theirs);
    assert.equal(ensureDockerContext('default', '/s').outcome, 'conflict');
    assert.equal(fs.readFileSync(f, 'utf8'), theirs);
    assert.throws(
      () => useDockerContext('default'),
      (e) => isBerthError(e, 'DOCKER_CONTEXT_CONFLICT'),
    );
  } finally {
    restore();
    t.cleanup();
  }
});

test('`context use` sets currentContext and keeps the rest of config.json', () => {
  const t = shortTempDir();
  const restore = withEnv({ DOCKER_CONFIG: t.dir });
  try {
    assert.throws(
      () => useDockerContext('default'),
      (e) => isBerthError(e, 'DOCKER_CONTEXT_CONFLICT') && /berth start/.test(e.hint),
    );
    ensureDockerContext('default', '/s');
    fs.writeFileSync(path.join(t.dir, 'config.json'), JSON.stringify({ auths: { 'r.example': {} }, currentContext: 'x' }), { mode: 0o600 });
    useDockerContext('default');
    const cfg = JSON.parse(fs.readFileSync(path.join(t.dir, 'config.json'), 'utf8'));
    assert.equal(cfg.currentContext, 'berth');
    assert.deepEqual(cfg.auths, { 'r.example': {} });
    assert.equal(fs.statSync(path.join(t.dir, 'config.json')).mode & 0o777, 0o600);
  } finally {
    restore();
    t.cleanup();
  }
});

test('removeDockerContext: only ours and only for this socket; the docker CLI goes back to its default context', () => {
  const t = shortTempDir();
  const restore = withEnv({ DOCKER_CONFIG: t.dir });
  try {
    assert.equal(removeDockerContext('work', '/h/work/docker.sock').outcome, 'absent');
    ensureDockerContext('work', '/other-home/work/docker.sock');
    assert.equal(removeDockerContext('work', '/h/work/docker.sock').outcome, 'another-socket', "another BERTH_HOME's instance keeps its context");
    assert.ok(fs.existsSync(meta(t.dir, 'berth-work')));
    ensureDockerContext('work', '/h/work/docker.sock');
    useDockerContext('work');
    fs.writeFileSync(path.join(t.dir, 'config.json'), JSON.stringify({ auths: { x: {} }, currentContext: 'berth-work' }));
    assert.deepEqual(removeDockerContext('work', '/h/work/docker.sock'), { name: 'berth-work', outcome: 'removed', wasCurrent: true });
    assert.ok(!fs.existsSync(path.dirname(meta(t.dir, 'berth-work'))), 'its folder is gone');
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(t.dir, 'config.json'), 'utf8')), { auths: { x: {} } }, 'the rest of config.json is kept');
    // Someone else's context of the same name is never removed.
    const f = meta(t.dir, 'berth-work');
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, JSON.stringify({ Name: 'berth-work', Metadata: {}, Endpoints: { docker: { Host: 'unix:///h/work/docker.sock' } } }));
    assert.equal(removeDockerContext('work', '/h/work/docker.sock').outcome, 'not-ours');
    assert.ok(fs.existsSync(f));
  } finally {
    restore();
    t.cleanup();
  }
});
