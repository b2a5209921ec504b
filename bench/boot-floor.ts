/**
 * The floor a start is held against (issue 16): the same kernel, booted by
 * QEMU with the same machine, accelerator, CPUs and memory as Berth's VM,
 * but with a trivial initramfs (busybox and an /init that prints a marker
 * and powers off: no root disk, no modules, no services). Host time from
 * spawning QEMU to the marker on the serial console is the time this
 * kernel takes to reach userspace here; nothing Berth does can beat it.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { Accelerator, GuestArch } from '../app/engine/drivers/driver.js';
import { findQemu, serialConsole } from '../app/engine/drivers/qemu.js';
import { qemuAccel, qemuMachine, tcgCpu } from '../app/engine/drivers/qemu-host.js';

export const FLOOR_MARKER = 'BERTH-FLOOR-USERSPACE';

interface CpioEntry {
  name: string;
  /** st_mode: type and permissions. */
  mode: number;
  data?: Buffer;
  /** A device node's major and minor. */
  rdev?: [number, number];
}

/** One archive in the kernel's initramfs format (cpio "newc", see the kernel's ramfs-rootfs-initramfs.rst). */
export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  const put = (e: CpioEntry, ino: number) => {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(`${e.name}\0`);
    const fields = [ino, e.mode, 0, 0, 1, 0, data.length, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, name.length, 0];
    const header = Buffer.from(`070701${fields.map(hex).join('')}`);
    parts.push(header, name, pad4(header.length + name.length), data, pad4(data.length));
  };
  entries.forEach((e, i) => put(e, i + 1));
  put({ name: 'TRAILER!!!', mode: 0 }, 0);
  return Buffer.concat(parts);
}

/** The floor's initramfs (gzip, as Berth's own): busybox, a console, and an /init that says it got here. */
export function floorInitramfs(file: string, busybox = '/bin/busybox'): string {
  const init = `#!/bin/busybox sh\necho ${FLOOR_MARKER}\nexec /bin/busybox poweroff -f\n`;
  const cpio = cpioNewc([
    { name: 'bin', mode: 0o040755 },
    { name: 'bin/busybox', mode: 0o100755, data: fs.readFileSync(busybox) },
    { name: 'dev', mode: 0o040755 },
    // The kernel opens /dev/console for /init from the initramfs itself.
    { name: 'dev/console', mode: 0o020600, rdev: [5, 1] },
    { name: 'init', mode: 0o100755, data: Buffer.from(init) },
  ]);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, zlib.gzipSync(cpio, { level: 9 }));
  return file;
}

export interface FloorInput {
  arch: GuestArch;
  accel: Accelerator;
  kernel: string;
  initrd: string;
  cpus: number;
  memoryMiB: number;
  timeoutMs?: number;
}

/** The QEMU command line: Berth's machine, accelerator, CPUs and memory (drivers/qemu.ts), nothing else. */
export function floorQemuArgs(o: FloorInput): string[] {
  return [
    '-machine',
    qemuMachine(o.arch, o.accel),
    '-accel',
    qemuAccel(o.accel),
    '-cpu',
    o.accel === 'tcg' ? tcgCpu(o.arch) : 'host',
    '-smp',
    String(o.cpus),
    '-m',
    `${o.memoryMiB}M`,
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-serial',
    'stdio',
    '-no-reboot',
    '-kernel',
    o.kernel,
    '-initrd',
    o.initrd,
    '-append',
    `console=${serialConsole(o.arch)} quiet panic=-1`,
  ];
}

/** Milliseconds from spawning QEMU to the marker; QEMU is gone when it resolves. */
export function measureFloor(o: FloorInput): Promise<number> {
  const timeoutMs = o.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(findQemu(o.arch), floorQemuArgs(o), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let ms: number | undefined;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out = (out + d).slice(-4096);
      if (ms === undefined && out.includes(FLOOR_MARKER)) ms = performance.now() - t0;
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (err = (err + d).slice(-2048)));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (ms !== undefined) resolve(ms);
      else reject(new Error(`the floor boot never printed ${FLOOR_MARKER} (exit ${code}): ${err.trim() || out.trim().slice(-500)}`));
    });
  });
}
