/**
 * The log view's ANSI handling (app/renderer/src/components/ansi.ts):
 * colours become styled segments of plain text, and no escape sequence or
 * control character from a container survives, whatever it sends.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ansiSegments, plainText } from '../../app/renderer/src/components/ansi.js';

test('colours and styles become segments: 16, 256 and 24-bit colours, bold, underline, reset', () => {
  assert.deepEqual(ansiSegments('\x1b[32minfo\x1b[39m server ready'), [{ text: 'info', fg: '#3fb950' }, { text: ' server ready' }]);
  assert.deepEqual(ansiSegments('\x1b[1;31mERROR\x1b[0m \x1b[4mlink\x1b[24m'), [
    { text: 'ERROR', fg: '#ff7b72', bold: true },
    { text: ' ' },
    { text: 'link', underline: true },
  ]);
  assert.deepEqual(ansiSegments('\x1b[38;5;208morange\x1b[0m'), [{ text: 'orange', fg: 'rgb(255, 135, 0)' }]);
  assert.deepEqual(ansiSegments('\x1b[38;2;10;20;30;48;2;1;2;3mtrue\x1b[0m'), [{ text: 'true', fg: 'rgb(10, 20, 30)', bg: 'rgb(1, 2, 3)' }]);
  assert.deepEqual(ansiSegments('plain'), [{ text: 'plain' }]);
  assert.deepEqual(ansiSegments(''), []);
});

test('no escape code or control character survives: cursor moves, titles, hyperlinks, C1, broken sequences', () => {
  const hostile = [
    '\x1b[2K\x1b[1G\x1b[?25lprogress',
    '\x1b]0;new title\x07after',
    '\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\',
    '\x1bPq#0;2;0;0;0\x1b\\sixel',
    'bell\x07 back\x08space nul\x00 del\x7f c1\x9b31m',
    '\x1b[31',
    '\x1b',
    '\x1b[999999999999999999999m big',
  ];
  for (const line of hostile) {
    const text = ansiSegments(line)
      .map((s) => s.text)
      .join('');
    assert.doesNotMatch(text, /[\x00-\x08\x0b-\x1f\x7f\x9b]/, JSON.stringify(line));
    assert.equal(plainText(line), text);
  }
  assert.equal(plainText('\x1b]0;new title\x07after'), 'after');
  assert.equal(plainText('\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\'), 'click');
  assert.equal(plainText('tab\tkept'), 'tab\tkept');
});

test('markup in a log line stays text (React renders the segments as text, never as HTML)', () => {
  assert.deepEqual(ansiSegments('<img src=x onerror=alert(1)>'), [{ text: '<img src=x onerror=alert(1)>' }]);
  assert.deepEqual(ansiSegments('\x1b[31m<script>x</script>'), [{ text: '<script>x</script>', fg: '#ff7b72' }]);
});
