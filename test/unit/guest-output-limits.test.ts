/**
 * Readers of guest output never buffer without a limit (issue 14, low
 * severity): a guest that sends a line or field that never ends gets its
 * channel closed and an error, and the engine's memory does not follow it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeChannel, fakeExecSession as fakeSession } from '../helpers/fake-exec.js';
import { silentLogger } from '../../app/base/log.js';
import { waitFor } from '../../app/base/process-util.js';
import { GuestSocketWatcher, MAX_WATCH_LINE } from '../../app/engine/forward/guest-socket-watcher.js';
import { GuestOutputTooLong, MAX_FIELD_BYTES, NulFields, scanGuest } from '../../app/engine/share/sync-guest.js';

test('the socket watcher closes a channel whose line passes the limit, and opens it again', async () => {
  const channels: FakeChannel[] = [];
  const w = new GuestSocketWatcher(fakeSession(channels), silentLogger());
  const seen: number[] = [];
  w.on('change', (s) => seen.push(s.length));
  w.start();
  try {
    assert.ok(await waitFor(() => channels.length === 1, 2000, 10));
    const ch = channels[0]!;
    ch.emit('data', Buffer.from('= t/127.0.0.1/8080\n'));
    assert.deepEqual(seen, [1], 'a normal line is read');
    // A line that never ends, in 64 KiB pieces, past the limit.
    const piece = Buffer.alloc(64 * 1024, 0x61);
    for (let sent = 0; sent <= MAX_WATCH_LINE && !ch.closed; sent += piece.length) ch.emit('data', piece);
    assert.ok(ch.closed, 'the channel is closed once the line passes the limit');
    ch.emit('data', Buffer.from('x\n= t/127.0.0.1/9090\n'));
    assert.deepEqual(seen, [1], 'nothing from the overlong line (or after it) is read');
    assert.ok(await waitFor(() => channels.length === 2, 5000, 20), 'the watcher starts again');
    channels[1]!.emit('data', Buffer.from('= t/127.0.0.1/9090 u/0.0.0.0/53\n'));
    assert.deepEqual(seen, [1, 2]);
  } finally {
    w.stop();
  }
});

test('a guest field over the limit is an error, not a growing buffer', () => {
  const f = new NulFields(16);
  const got: string[] = [];
  f.push(Buffer.from('short\0'), (x) => got.push(x));
  assert.deepEqual(got, ['short']);
  assert.throws(() => f.push(Buffer.alloc(17, 0x62), (x) => got.push(x)), GuestOutputTooLong);
  assert.throws(
    () => new NulFields(16).push(Buffer.from(`${'c'.repeat(20)}\0`), (x) => got.push(x)),
    GuestOutputTooLong,
    'also when the NUL arrives in the same chunk',
  );
  assert.deepEqual(got, ['short']);
  assert.equal(MAX_FIELD_BYTES, 64 * 1024);
});

test('a scan whose output passes the limits fails and closes its channel', async () => {
  const channels: FakeChannel[] = [];
  const session = fakeSession(channels);
  const scan = scanGuest(session, '/x');
  assert.ok(await waitFor(() => channels.length === 1, 2000, 10));
  const ch = channels[0]!;
  ch.emit('data', Buffer.from('file\0a\0sig\x001\0'));
  const piece = Buffer.alloc(16 * 1024, 0x61);
  for (let sent = 0; sent <= MAX_FIELD_BYTES && !ch.closed; sent += piece.length) ch.emit('data', piece);
  await assert.rejects(scan, GuestOutputTooLong);
  assert.ok(ch.closed);
});
