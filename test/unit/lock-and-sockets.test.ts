import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { isBerthError } from '../../app/contract/errors.js';
import { listenPrivate, prepareSocketPath } from '../../app/engine/forward/unix-socket.js';
import { InstanceLock } from '../../app/base/lock.js';
import { checkSocketPath } from '../../app/base/paths.js';
import { shortTempDir } from '../helpers/temp.js';

test('a second engine is refused while the first lives', async () => {
  const t = shortTempDir();
  // A live node process stands in for the other engine.
  const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    const file = path.join(t.dir, 'engine.lock');
    fs.writeFileSync(file, `${other.pid}\n`);
    assert.throws(
      () => InstanceLock.acquire(file),
      (e) => isBerthError(e, 'INSTANCE_LOCKED') && e.message.includes(String(other.pid)),
    );
    assert.equal(fs.readFileSync(file, 'utf8').trim(), String(other.pid));
  } finally {
    other.kill();
    t.cleanup();
  }
});

test('a stale lock from a dead engine is recovered', async () => {
  const t = shortTempDir();
  try {
    const dead = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    await new Promise((r) => dead.on('exit', r));
    const file = path.join(t.dir, 'engine.lock');
    fs.writeFileSync(file, `${dead.pid}\n`);
    const lock = InstanceLock.acquire(file);
    assert.equal(lock.recoveredFrom, dead.pid);
    assert.equal(fs.readFileSync(file, 'utf8').trim(), String(process.pid));
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    lock.release();
    assert.ok(!fs.existsSync(file));
  } finally {
    t.cleanup();
  }
});

test('a lock whose pid is not an engine any more is stale', () => {
  const t = shortTempDir();
  try {
    const file = path.join(t.dir, 'engine.lock');
    fs.writeFileSync(file, '1\n'); // pid 1 is init, not Berth
    const lock = InstanceLock.acquire(file);
    lock.release();
  } finally {
    t.cleanup();
  }
});

test('socket path in use by a live server: reported, left alone', async () => {
  const t = shortTempDir();
  const p = path.join(t.dir, 'docker.sock');
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(p, r));
  try {
    await assert.rejects(prepareSocketPath(p, 'docker socket'), (e) => isBerthError(e, 'SOCKET_IN_USE') && /instance/.test(e.hint));
    assert.ok(fs.existsSync(p));
  } finally {
    srv.close();
    t.cleanup();
  }
});

test('a stale socket file is removed; a regular file is not touched', async () => {
  const t = shortTempDir();
  try {
    const p = path.join(t.dir, 'docker.sock');
    // A process that listens and is then SIGKILLed leaves the file behind.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(p)}, () => console.log('up'))`]);
    await new Promise((r) => child.stdout.once('data', r));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    assert.ok(fs.existsSync(p));
    await prepareSocketPath(p, 'docker socket');
    assert.ok(!fs.existsSync(p));

    fs.writeFileSync(p, 'my notes');
    await assert.rejects(prepareSocketPath(p, 'docker socket'), (e) => isBerthError(e, 'SOCKET_PATH_OCCUPIED'));
    assert.equal(fs.readFileSync(p, 'utf8'), 'my notes');
  } finally {
    t.cleanup();
  }
});

test('socket paths too long for the OS are refused with a hint', () => {
  assert.throws(
    () => checkSocketPath('/tmp/' + 'x'.repeat(120)),
    (e) => isBerthError(e, 'SOCKET_PATH_TOO_LONG') && /BERTH_HOME/.test(e.hint),
  );
  checkSocketPath('/tmp/short.sock');
});

test('sockets are owner-only from the start', async () => {
  const t = shortTempDir();
  try {
    const p = path.join(t.dir, 's.sock');
    const srv = net.createServer();
    await listenPrivate(srv, p);
    assert.equal(fs.statSync(p).mode & 0o777, 0o600);
    srv.close();
  } finally {
    t.cleanup();
  }
});
