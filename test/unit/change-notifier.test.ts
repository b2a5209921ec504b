/**
 * What the change notifier (share/change-notifier.ts) tells the guest for
 * each kind of host change in a folder a container bind-mounts: created,
 * written, attributes, deleted, and a rename as one F/T pair (the same inode
 * gone from one name and made at another in one batch). The real host
 * watcher (@parcel/watcher) on a temporary folder; the guest's nudge
 * program is a fake channel that keeps the lines.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { silentLogger } from '../../app/base/log.js';
import { waitFor } from '../../app/base/process-util.js';
import type { DockerApi } from '../../app/engine/docker/docker-api.js';
import type { GuestSession } from '../../app/engine/guest/session.js';
import { ChangeNotifier } from '../../app/engine/share/change-notifier.js';

test('host changes reach the guest as their own kinds: create, write, attributes, delete, and a rename as one pair', async () => {
  const host = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'berth-notify-')));
  const lines: string[] = [];
  const channel = Object.assign(new PassThrough(), { stderr: new EventEmitter() });
  channel.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  const session = { openExec: () => Promise.resolve(channel) } as unknown as GuestSession;
  const docker = {
    followContainers: (h: { list: (l: { Id: string }[]) => void }) => {
      h.list([{ Id: 'c1' }]);
      return { stop: () => undefined };
    },
    request: () => Promise.resolve({ Mounts: [{ Type: 'bind', Source: '/guest' }] }),
  } as unknown as DockerApi;
  const n = new ChangeNotifier(session, docker, silentLogger(), () => [{ hostPath: host, guestPath: '/guest', mechanism: 'virtiofs' }]);
  /** The events of the lines since `mark`: "EV guestpath". */
  const since = (mark: number) => lines.slice(mark).map((l) => `${l.split(' ')[1]} ${l.split(' ').slice(6).join(' ')}`);
  const step = async (act: () => void, want: string[]) => {
    const mark = lines.length;
    act();
    const got = await waitFor(() => want.every((w) => since(mark).includes(w)), 5000, 10);
    assert.ok(got, `wanted ${want.join(', ')}; got ${since(mark).join(', ') || 'nothing'}`);
    return since(mark);
  };
  fs.writeFileSync(path.join(host, 'old.js'), 'there before the container');
  try {
    n.start();
    await new Promise((r) => setTimeout(r, 500));
    // A file there before the container started, renamed: a rename too (its inode was learnt when the watch began).
    await step(() => fs.renameSync(path.join(host, 'old.js'), path.join(host, 'older.js')), ['F /guest/old.js', 'T /guest/older.js']);
    await step(() => fs.writeFileSync(path.join(host, 'a.js'), 'v1'), ['c /guest/a.js', 'p /guest']);
    const w = await step(() => fs.appendFileSync(path.join(host, 'a.js'), 'v2'), ['m /guest/a.js']);
    assert.ok(!w.includes('p /guest'), 'a write does not change the folder');
    await step(() => fs.chmodSync(path.join(host, 'a.js'), 0o755), ['a /guest/a.js']);
    const r = await step(() => fs.renameSync(path.join(host, 'a.js'), path.join(host, 'b.js')), ['F /guest/a.js', 'T /guest/b.js']);
    assert.ok(!r.includes('d /guest/a.js') && !r.includes('c /guest/b.js'), `a rename is not a delete and a create: ${r.join(', ')}`);
    assert.equal(r.indexOf('T /guest/b.js'), r.indexOf('F /guest/a.js') + 1, 'F is followed by its T');
    await step(() => fs.rmSync(path.join(host, 'b.js')), ['d /guest/b.js', 'p /guest']);
    // A folder made with a file in it at once (before the host watcher can watch the folder): both created, the folder first.
    const made = await step(() => {
      fs.mkdirSync(path.join(host, 'new'));
      fs.writeFileSync(path.join(host, 'new', 'y'), 'y');
    }, ['c /guest/new', 'c /guest/new/y']);
    assert.ok(made.indexOf('c /guest/new') < made.indexOf('c /guest/new/y'));
    // A folder, then a file in it: both created.
    await step(() => fs.mkdirSync(path.join(host, 'sub')), ['c /guest/sub', 'p /guest']);
    await step(() => fs.writeFileSync(path.join(host, 'sub', 'x'), 'x'), ['c /guest/sub/x', 'p /guest/sub']);
  } finally {
    n.stop();
    fs.rmSync(host, { recursive: true, force: true });
  }
});
