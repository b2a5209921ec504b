/**
 * A guest program kept running over exec (guest/kept-program.ts): lines
 * reach the owner, one the program says "cannot run here" with ends the
 * loop for good, a channel that closes under it is opened again, and stop()
 * ends its stdin.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../../app/base/log.js';
import { sleep, waitFor } from '../../app/base/process-util.js';
import { KeptGuestProgram } from '../../app/engine/guest/kept-program.js';
import { FakeChannel, fakeExecSession as fakeSession } from '../helpers/fake-exec.js';

test('lines reach the owner; a channel closed under it opens again; stop() ends its stdin', async () => {
  const channels: FakeChannel[] = [];
  const commands: string[] = [];
  const lines: string[] = [];
  const p = new KeptGuestProgram(fakeSession(channels, commands), silentLogger(), {
    name: 't',
    command: 'perl x.pl',
    maxLine: 64,
    onLine: (l) => void lines.push(l),
  });
  p.start();
  assert.ok(await waitFor(() => channels.length === 1, 2000, 5));
  channels[0]!.emit('data', Buffer.from('one\ntw'));
  channels[0]!.emit('data', Buffer.from('o\n'));
  assert.deepEqual(lines, ['one', 'two'], 'lines split across chunks are joined');
  assert.equal(p.open, true);
  p.write('look\n');
  assert.deepEqual(channels[0]!.written, ['look\n']);
  channels[0]!.close();
  assert.ok(await waitFor(() => channels.length === 2, 3000, 10), 'started again');
  assert.deepEqual(commands, ['perl x.pl', 'perl x.pl']);
  p.stop();
  assert.ok(channels[1]!.ended && channels[1]!.closed, 'EOF on its stdin ends it in the guest');
  assert.equal(p.open, false);
  await sleep(600);
  assert.equal(channels.length, 2, 'not started again after stop()');
});

test('"done" from the owner (the program cannot run here) ends the loop for good', async () => {
  const channels: FakeChannel[] = [];
  const p = new KeptGuestProgram(fakeSession(channels, []), silentLogger(), {
    name: 't',
    command: 'perl watch.pl',
    maxLine: 64,
    onLine: (l) => (l.startsWith('none ') ? 'done' : undefined),
  });
  p.start();
  assert.ok(await waitFor(() => channels.length === 1, 2000, 5));
  channels[0]!.emit('data', Buffer.from('none no count\nignored\n'));
  assert.ok(channels[0]!.closed);
  await sleep(600);
  assert.equal(channels.length, 1, 'not started again');
  p.stop();
});
