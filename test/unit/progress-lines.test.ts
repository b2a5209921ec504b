import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProgressLines } from '../../app/base/progress-lines.js';

function lines(tty: boolean, columns?: number) {
  let out = '';
  let now = 0;
  const pl = new ProgressLines({
    write: (t) => (out += t),
    tty,
    columns: () => columns,
    prefix: () => ({ text: '> ', width: 2 }),
    now: () => now,
  });
  return { pl, out: () => out, at: (ms: number) => (now = ms) };
}

test('on a terminal, one step updates one line in place and a new step starts a new line', () => {
  const t = lines(true);
  t.pl.say('checking the guest image');
  t.pl.say('fetched 1/3', 'fetch');
  t.pl.say('fetched 3/3', 'fetch');
  t.pl.say('unpacked 1/3', 'unpack');
  t.pl.say('guest image ready');
  t.pl.say('timer 5 s', 'timer');
  t.pl.end();
  assert.equal(t.out(), '> checking the guest image\n> fetched 1/3\r\x1b[2K> fetched 3/3\n> unpacked 1/3\n> guest image ready\n> timer 5 s\n');
});

test('on a terminal, an updating line is cut to the width so \\r can rewrite it', () => {
  const t = lines(true, 20);
  t.pl.say('debootstrap bookworm/amd64: busybox-static,kmod', 'step');
  t.pl.end();
  assert.equal(t.out(), '> debootstrap book…\n');
  assert.equal(t.out().length - 1, 19);
});

test('in a log, plain lines: a step at most every 5 s, its latest state before the next step', () => {
  const t = lines(false);
  t.pl.say('building');
  t.at(100);
  t.pl.say('fetched 1/9', 'fetch');
  t.at(1100);
  t.pl.say('fetched 4/9', 'fetch');
  t.at(5200);
  t.pl.say('fetched 7/9', 'fetch');
  t.at(6200);
  t.pl.say('fetched 9/9', 'fetch');
  t.at(6300);
  t.pl.say('unpacked 1/9', 'unpack');
  t.at(6400);
  t.pl.say('unpacked 2/9', 'unpack');
  t.pl.end();
  assert.equal(t.out(), '> building\n> fetched 1/9\n> fetched 7/9\n> fetched 9/9\n> unpacked 1/9\n> unpacked 2/9\n');
  assert.ok(!t.out().includes('\r'));
});
