/**
 * Where the docker and control sockets are, per platform (injected, never
 * process.platform): unix sockets in the instance folder on Linux and
 * macOS, named pipes on Windows, and the DOCKER_HOST / docker context URL
 * for each. The docker CLI's own Windows default is
 * npipe:////./pipe/docker_engine (docs.docker.com, "dockerd": -H
 * npipe:////./pipe/docker_engine), so Berth's pipe takes the same form.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { dockerHostUrl, ensureDockerContext } from '../../app/base/docker-context.js';
import { isBerthError } from '../../app/contract/errors.js';
import { listenError } from '../../app/engine/forward/unix-socket.js';
import { checkSocketPath, controlPipeName, dockerPipeName, instancePaths } from '../../app/base/paths.js';
import { shortTempDir, withEnv } from '../helpers/temp.js';

test('Windows: the docker socket is \\\\.\\pipe\\berth_docker, the control socket a pipe per instance', () => {
  const p = instancePaths('default', 'C:\\Users\\Me Too\\.berth', 'win32');
  assert.equal(p.dockerSocket, '\\\\.\\pipe\\berth_docker');
  assert.equal(p.controlSocket, '\\\\.\\pipe\\berth_default_control');
  assert.equal(p.dir, 'C:\\Users\\Me Too\\.berth\\default');
  assert.equal(p.token, 'C:\\Users\\Me Too\\.berth\\default\\control.token', 'the token stays a file in the profile');
  assert.equal(p.clientKey, 'C:\\Users\\Me Too\\.berth\\default\\keys\\id_ed25519');
  const w = instancePaths('work-2', 'C:\\Users\\me\\.berth', 'win32');
  assert.equal(w.dockerSocket, '\\\\.\\pipe\\berth_work-2_docker');
  assert.equal(w.controlSocket, '\\\\.\\pipe\\berth_work-2_control');
  assert.equal(dockerPipeName('default'), p.dockerSocket);
  assert.equal(controlPipeName('work-2'), w.controlSocket);
});

test('DOCKER_HOST: npipe:////./pipe/berth_docker on Windows, unix:// elsewhere', () => {
  assert.equal(dockerHostUrl('\\\\.\\pipe\\berth_docker', 'win32'), 'npipe:////./pipe/berth_docker');
  assert.equal(dockerHostUrl('\\\\.\\pipe\\berth_work_docker', 'win32'), 'npipe:////./pipe/berth_work_docker');
  assert.equal(dockerHostUrl('/Users/me/.berth/default/docker.sock', 'darwin'), 'unix:///Users/me/.berth/default/docker.sock');
  assert.equal(dockerHostUrl('/home/me/.berth/default/docker.sock', 'linux'), 'unix:///home/me/.berth/default/docker.sock');
});

test('macOS and Linux: unix sockets in the instance folder', () => {
  for (const platform of ['darwin', 'linux'] as const) {
    const p = instancePaths('default', '/Users/me/.berth', platform);
    assert.equal(p.dockerSocket, '/Users/me/.berth/default/docker.sock');
    assert.equal(p.controlSocket, '/Users/me/.berth/default/control.sock');
    assert.equal(p.vfkitSocket, '/Users/me/.berth/default/vfkit.sock');
  }
});

test('the docker context of a Windows instance points at its pipe', () => {
  const t = shortTempDir('ctx');
  const restore = withEnv({ DOCKER_CONFIG: t.dir });
  try {
    const p = instancePaths('default', 'C:\\Users\\me\\.berth', 'win32');
    assert.deepEqual(ensureDockerContext('default', p.dockerSocket, 'win32'), { name: 'berth', outcome: 'created' });
    const id = crypto.createHash('sha256').update('berth').digest('hex');
    const meta = JSON.parse(fs.readFileSync(path.join(t.dir, 'contexts', 'meta', id, 'meta.json'), 'utf8'));
    assert.equal(meta.Endpoints.docker.Host, 'npipe:////./pipe/berth_docker');
  } finally {
    restore();
    t.cleanup();
  }
});

test('socket path limits per platform: sun_path on Linux (107) and macOS (103), pipe names on Windows', () => {
  const at = (n: number) => '/' + 'x'.repeat(n - 1);
  checkSocketPath(at(107), 'linux');
  assert.throws(
    () => checkSocketPath(at(108), 'linux'),
    (e) => isBerthError(e, 'SOCKET_PATH_TOO_LONG') && /BERTH_HOME/.test(e.hint),
  );
  checkSocketPath(at(103), 'darwin');
  assert.throws(
    () => checkSocketPath(at(104), 'darwin'),
    (e) => isBerthError(e, 'SOCKET_PATH_TOO_LONG'),
  );
  checkSocketPath('\\\\.\\pipe\\berth_docker', 'win32');
  checkSocketPath(`\\\\.\\pipe\\${'a'.repeat(200)}`, 'win32');
  for (const bad of ['C:\\Users\\me\\docker.sock', '\\\\.\\pipe\\', '\\\\.\\pipe\\a\\b', `\\\\.\\pipe\\${'a'.repeat(250)}`]) {
    assert.throws(
      () => checkSocketPath(bad, 'win32'),
      (e) => isBerthError(e, 'SOCKET_PATH_TOO_LONG'),
      bad,
    );
  }
});

test('the longest instance name still fits under the sun_path limit from a typical home', () => {
  const name = 'a'.repeat(31);
  const p = instancePaths(name, '/Users/someone-long/.berth', 'darwin');
  for (const s of [p.dockerSocket, p.controlSocket, p.vfkitSocket, p.qmpSocket]) checkSocketPath(s, 'darwin');
});

test('a pipe another process serves is SOCKET_IN_USE with a hint; other listen errors pass through', () => {
  const inUse = Object.assign(new Error('listen EADDRINUSE: address already in use \\\\.\\pipe\\berth_docker'), { code: 'EADDRINUSE' });
  const e = listenError(inUse, '\\\\.\\pipe\\berth_docker');
  assert.ok(isBerthError(e, 'SOCKET_IN_USE'));
  assert.match(e.message, /berth_docker/);
  assert.match(e.hint, /--instance NAME/);
  const other = Object.assign(new Error('listen EACCES'), { code: 'EACCES' });
  assert.equal(listenError(other, '/x'), other);
});
