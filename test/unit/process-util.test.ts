/**
 * The pid-file helpers every driver uses (QEMU, vfkit, virtiofsd) to find
 * its process again after an engine restart, without taking a recycled pid
 * for it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { isProcessOf, readPidFile } from '../../app/base/process-util.js';
import { shortTempDir } from '../helpers/temp.js';

test('readPidFile: the pid, or undefined for no file, an empty one, junk, zero or a negative number', (t) => {
  const d = shortTempDir('pid');
  t.after(d.cleanup);
  const f = path.join(d.dir, 'x.pid');
  assert.equal(readPidFile(f), undefined, 'no file');
  for (const [text, want] of [
    ['1234\n', 1234],
    ['  77 ', 77],
    ['', undefined],
    ['abc', undefined],
    ['0', undefined],
    ['-5', undefined],
    ['12.5', undefined],
  ] as const) {
    fs.writeFileSync(f, text);
    assert.equal(readPidFile(f), want, JSON.stringify(text));
  }
  assert.equal(readPidFile(d.dir), undefined, 'a folder');
});

test('isProcessOf: a live process whose command line holds every mark; not a dead pid, not another program', async (t) => {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', 'berth-mark-one', 'mark-two'], { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  const pid = child.pid!;
  assert.equal(isProcessOf(pid, 'berth-mark-one', 'mark-two'), true);
  assert.equal(isProcessOf(pid, 'berth-mark-one', 'qemu'), false, 'a pid recycled by another program is not ours');
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.equal(isProcessOf(pid, 'berth-mark-one'), false, 'dead');
  assert.equal(isProcessOf(0, 'x'), false);
});
