import fs from 'node:fs';
import { tailFile } from '../base/fs-util.js';

export function printTail(file: string, lines: number, fmt: (l: string) => string): void {
  const out = tailFile(file, lines, 4 << 20).map(fmt);
  if (out.length) process.stdout.write(out.join('\n') + '\n');
}

/** Print lines appended to `file` until interrupted (follows rotation by truncation). */
export function followFile(file: string, fmt: (l: string) => string): Promise<void> {
  let pos = fs.statSync(file).size;
  let partial = '';
  return new Promise(() => {
    fs.watchFile(file, { interval: 250 }, (cur) => {
      if (cur.size < pos) pos = 0;
      if (cur.size === pos) return;
      const fd = fs.openSync(file, 'r');
      const buf = Buffer.alloc(cur.size - pos);
      fs.readSync(fd, buf, 0, buf.length, pos);
      fs.closeSync(fd);
      pos = cur.size;
      const text = partial + buf.toString('utf8').replace(/\r/g, '');
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      if (lines.length) process.stdout.write(lines.map(fmt).join('\n') + '\n');
    });
  });
}
