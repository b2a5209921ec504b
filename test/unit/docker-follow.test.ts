/**
 * DockerApi.followContainers, which the port watcher and the change
 * notifier both stand on: subscribed, then listed; only container life
 * events; the stream opened again after dockerd drops it (with a new
 * list, since events may have been missed); nothing after stop().
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { DockerApi } from '../../app/engine/docker/docker-api.js';
import { sleep, waitFor } from '../../app/base/process-util.js';
import { startFakeDockerEngine } from '../helpers/fake-dockerd.js';
import { shortTempDir } from '../helpers/temp.js';

test('followContainers: list after subscribing, life events only, resubscribe and relist after a drop, silence after stop', async (t) => {
  const dir = shortTempDir('dfw');
  const d = await startFakeDockerEngine(path.join(dir.dir, 'docker.sock'));
  t.after(async () => {
    await d.close();
    dir.cleanup();
  });
  const a = d.addContainer({ name: 'a' });
  const lists: string[][] = [];
  const events: string[] = [];
  const trouble: string[] = [];
  const streams = () => d.requests.filter((r) => r.includes('/events?')).length;
  const f = new DockerApi(d.socketPath).followContainers({
    event: (action, id) => events.push(`${action} ${id}`),
    list: (l) => lists.push(l.map((c) => c.Id)),
    trouble: (what) => trouble.push(what),
    retryMs: 50,
  });
  assert.ok(await waitFor(() => lists.length === 1 && streams() === 1, 5000));
  assert.deepEqual(lists[0], [a.Id]);
  const i1 = d.requests.findIndex((r) => r.includes('/events?'));
  const l1 = d.requests.findIndex((r) => r.includes('/containers/json'));
  assert.ok(i1 < l1, 'subscribed before listing: nothing falls between the two');
  assert.match(decodeURIComponent(d.requests[i1]!), /"event":\["start","die","destroy"\]/);

  await sleep(100); // the stream's headers are in
  d.event({ Type: 'container', Action: 'exec_start: sh', Actor: { ID: a.Id } });
  d.event({ Type: 'container', Action: 'die', Actor: { ID: a.Id } });
  assert.ok(await waitFor(() => events.length === 1, 5000));
  assert.deepEqual(events, [`die ${a.Id}`], 'other actions are not passed on');

  d.dropEvents(); // dockerd restarted, or the guest went away for a moment
  assert.ok(await waitFor(() => lists.length === 2 && streams() === 2, 5000), 'subscribed again and listed again');
  assert.deepEqual(trouble, ['events']);
  await sleep(100);
  d.event({ Type: 'container', Action: 'start', Actor: { ID: 'b' } });
  assert.ok(await waitFor(() => events.length === 2, 5000));
  assert.equal(events[1], 'start b');

  f.stop();
  d.event({ Type: 'container', Action: 'destroy', Actor: { ID: 'b' } });
  d.dropEvents();
  await sleep(300);
  assert.equal(events.length, 2, 'no event after stop');
  assert.equal(streams(), 2, 'no new subscription after stop');
  assert.deepEqual(trouble, ['events']);
});
