/**
 * The bench's floor (bench/boot-floor.ts): an initramfs the kernel can
 * unpack (checked with the system's cpio when it has one), and a QEMU
 * command line that is Berth's VM minus everything but the kernel.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { after, test } from 'node:test';
import { cpioNewc, FLOOR_MARKER, floorInitramfs, floorQemuArgs } from '../../bench/boot-floor.js';
import type { VmSpec } from '../../app/engine/drivers/driver.js';
import { buildQemuArgs } from '../../app/engine/drivers/qemu.js';
import { findExecutable } from '../../app/base/process-util.js';
import { busyboxProblem } from '../helpers/busybox-rootfs.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('flr');
after(() => t.cleanup());

test('cpio newc: headers, names and data padded to 4 bytes, a trailer', () => {
  const a = cpioNewc([{ name: 'init', mode: 0o100755, data: Buffer.from('abc') }]);
  assert.equal(a.subarray(0, 6).toString(), '070701');
  assert.equal(a.length % 4, 0);
  // header 110 + "init\0" 5 = 115 → 116; data 3 → 4; then the trailer.
  assert.equal(a.subarray(116, 119).toString(), 'abc');
  assert.equal(a.subarray(120, 126).toString(), '070701');
  assert.ok(a.includes(Buffer.from('TRAILER!!!\0')));
  const mode = parseInt(a.subarray(6 + 8, 6 + 16).toString(), 16);
  assert.equal(mode, 0o100755);
});

test('the floor initramfs: busybox, a console device, an /init that prints the marker and powers off', (ctx) => {
  const bb = busyboxProblem();
  if (bb) return ctx.skip(bb);
  const file = floorInitramfs(path.join(t.dir, 'floor.img'));
  const cpio = zlib.gunzipSync(fs.readFileSync(file));
  const init = cpio.subarray(cpio.indexOf('#!/bin/busybox sh')).toString('latin1');
  assert.match(init, new RegExp(`^#!/bin/busybox sh\\necho ${FLOOR_MARKER}\\nexec /bin/busybox poweroff -f\\n`));
  if (!findExecutable('cpio')) return ctx.diagnostic('no cpio here: the listing is not checked');
  const list = spawnSync('cpio', ['-itv', '--quiet'], { input: cpio, encoding: 'utf8' });
  assert.equal(list.status, 0, list.stderr);
  const lines = list.stdout.trim().split('\n');
  assert.deepEqual(
    lines.map((l) => l.split(/\s+/).at(-1)),
    ['bin', 'bin/busybox', 'dev', 'dev/console', 'init'],
  );
  assert.match(lines[3]!, /^crw------- .* 5, +1 /, 'the console is char 5,1');
  assert.match(lines[4]!, /^-rwxr-xr-x /);
});

test("the floor boots Berth's machine, accelerator, CPUs and memory, and nothing else", () => {
  const spec = {
    name: 'x',
    arch: 'x86_64',
    accel: 'tcg',
    cpus: 2,
    memoryMiB: 2048,
    kernel: '/k',
    initrd: '/i',
    cmdline: 'console=ttyS0 quiet panic=-1 apparmor=0',
    disks: [],
    sshHostPort: 2222,
    serialLog: '/s',
    controlSocket: '/c',
    pidFile: '/p',
  } as unknown as VmSpec;
  const berth = buildQemuArgs(spec);
  const floor = floorQemuArgs({ arch: 'x86_64', accel: 'tcg', kernel: '/k', initrd: '/f', cpus: 2, memoryMiB: 2048 });
  const flag = (args: string[], f: string) => args[args.indexOf(f) + 1];
  for (const f of ['-machine', '-accel', '-cpu', '-smp', '-m', '-kernel']) assert.equal(flag(floor, f), flag(berth, f), f);
  assert.equal(flag(floor, '-initrd'), '/f');
  assert.equal(flag(floor, '-append'), 'console=ttyS0 quiet panic=-1');
  assert.ok(!floor.includes('-drive') && !floor.includes('-netdev') && !floor.includes('-device'), 'no disks, no network, no devices');
});
