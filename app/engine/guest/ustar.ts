/**
 * A ustar archive of a few small regular files, as the config disk needs
 * (config-disk.ts): the format by hand with Node's own Buffer, rather than
 * the tar package, which the engine would otherwise load at every start and
 * hold for as long as it runs. Names are plain file names (no folders),
 * owner root (uid/gid 0, as tar's portable mode leaves them).
 */
const BLOCK = 512;

export interface UstarFile {
  name: string;
  content: string | Buffer;
  /** Permission bits; default 0o600. */
  mode?: number;
}

/** `value` in octal, zero-padded to `width - 1` digits and a NUL. */
function octal(value: number, width: number): string {
  const s = Math.trunc(value).toString(8);
  if (s.length > width - 1) throw new Error(`ustar: ${value} does not fit in ${width - 1} octal digits`);
  return s.padStart(width - 1, '0') + '\0';
}

function header(name: string, size: number, mode: number, mtime: number): Buffer {
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(name)) throw new Error(`ustar: bad file name ${JSON.stringify(name)}`);
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 'ascii');
  h.write(octal(mode & 0o7777, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid
  h.write(octal(0, 8), 116, 'ascii'); // gid
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(mtime, 12), 136, 'ascii');
  h.write('0', 156, 'ascii'); // a regular file
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  // The checksum counts its own field as eight spaces.
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

/** The whole archive: each file's header and content padded to 512 bytes, then two empty blocks. */
export function ustar(files: UstarFile[], mtime = Math.floor(Date.now() / 1000)): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const data = typeof f.content === 'string' ? Buffer.from(f.content) : f.content;
    parts.push(header(f.name, data.length, f.mode ?? 0o600, mtime), data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}
