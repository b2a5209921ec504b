import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareText } from '../../app/base/text-order.js';

test('Docker names sort as localeCompare sorted them: case-insensitively, lower case first', () => {
  const names = ['web-2', 'Api', 'api', 'db_1', 'web-10', 'cache', 'API.v2', 'tcp', 'udp', 'Cache', 'b.2', 'b_2', 'b-2'];
  assert.deepEqual([...names].sort(compareText), ['api', 'Api', 'API.v2', 'b_2', 'b-2', 'b.2', 'cache', 'Cache', 'db_1', 'tcp', 'udp', 'web-10', 'web-2']);
  assert.equal(compareText('same', 'same'), 0);
});

test('on random Docker names the order is exactly localeCompare', () => {
  const first = 'abcXYZ09';
  const rest = 'abcXYZ09_.-';
  const pick = (s: string) => s[Math.floor(Math.random() * s.length)]!;
  for (let i = 0; i < 5000; i++) {
    const name = () => pick(first) + Array.from({ length: Math.floor(Math.random() * 5) }, () => pick(rest)).join('');
    const [a, b] = [name(), name()];
    assert.equal(Math.sign(compareText(a, b)), Math.sign(a.localeCompare(b)), `${a} vs ${b}`);
  }
});
