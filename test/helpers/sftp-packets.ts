/**
 * Raw SFTP (protocol 3) packets, written byte by byte the way a hostile
 * guest could write them, and a reader for the server's replies. For tests
 * that must send what no well-behaved client library would (bad lengths,
 * truncated fields, forged handles).
 */
import type { Duplex } from 'node:stream';

export const FXP = {
  INIT: 1,
  OPEN: 3,
  CLOSE: 4,
  READ: 5,
  WRITE: 6,
  LSTAT: 7,
  FSTAT: 8,
  SETSTAT: 9,
  FSETSTAT: 10,
  OPENDIR: 11,
  READDIR: 12,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  REALPATH: 16,
  STAT: 17,
  RENAME: 18,
  READLINK: 19,
  SYMLINK: 20,
  EXTENDED: 200,
  VERSION: 2,
  STATUS: 101,
  HANDLE: 102,
  DATA: 103,
  NAME: 104,
  ATTRS: 105,
  EXTENDED_REPLY: 201,
} as const;

export const ATTR = { SIZE: 1, UIDGID: 2, PERMISSIONS: 4, ACMODTIME: 8 } as const;

export type Field = { u8: number } | { u32: number } | { u64: bigint | number } | { str: string | Buffer } | { attrs: Attrs } | { raw: Buffer };

export interface Attrs {
  size?: bigint | number;
  uid?: number;
  gid?: number;
  mode?: number;
  atime?: number;
  mtime?: number;
}

export function encodeField(f: Field): Buffer {
  if ('u8' in f) return Buffer.from([f.u8 & 0xff]);
  if ('u32' in f) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(f.u32 >>> 0, 0);
    return b;
  }
  if ('u64' in f) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(f.u64)), 0);
    return b;
  }
  if ('str' in f) {
    const s = typeof f.str === 'string' ? Buffer.from(f.str, 'utf8') : f.str;
    return Buffer.concat([encodeField({ u32: s.length }), s]);
  }
  if ('attrs' in f) {
    const a = f.attrs;
    let flags = 0;
    const parts: Buffer[] = [];
    if (a.size !== undefined) {
      flags |= ATTR.SIZE;
      parts.push(encodeField({ u64: a.size }));
    }
    if (a.uid !== undefined || a.gid !== undefined) {
      flags |= ATTR.UIDGID;
      parts.push(encodeField({ u32: a.uid ?? 0 }), encodeField({ u32: a.gid ?? 0 }));
    }
    if (a.mode !== undefined) {
      flags |= ATTR.PERMISSIONS;
      parts.push(encodeField({ u32: a.mode }));
    }
    if (a.atime !== undefined || a.mtime !== undefined) {
      flags |= ATTR.ACMODTIME;
      parts.push(encodeField({ u32: a.atime ?? 0 }), encodeField({ u32: a.mtime ?? 0 }));
    }
    return Buffer.concat([encodeField({ u32: flags }), ...parts]);
  }
  return f.raw;
}

/** One framed packet: uint32 length, byte type, then the fields. */
export function packet(type: number, ...fields: Field[]): Buffer {
  const body = Buffer.concat([Buffer.from([type]), ...fields.map(encodeField)]);
  return Buffer.concat([encodeField({ u32: body.length }), body]);
}

export const initPacket = () => packet(FXP.INIT, { u32: 3 });

export interface Reply {
  type: number;
  id: number;
  /** STATUS: the code. */
  code?: number;
  /** HANDLE: the handle. */
  handle?: Buffer;
  /** NAME: the file names. ATTRS: undefined. */
  names?: string[];
  body: Buffer;
}

/**
 * Read the server's replies off `stream` (every framed packet; VERSION has id -1).
 * `ended` says whether the server closed its side.
 */
export function replyReader(stream: Duplex) {
  const replies: Reply[] = [];
  let buf = Buffer.alloc(0);
  let ended = false;
  const waiters = new Set<() => void>();
  const wake = () => waiters.forEach((w) => w());
  stream.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0);
      if (buf.length < 4 + len) break;
      const body = buf.subarray(4, 4 + len);
      buf = buf.subarray(4 + len);
      const type = body[0]!;
      const r: Reply = { type, id: type === FXP.VERSION ? -1 : body.length >= 5 ? body.readUInt32BE(1) : -2, body };
      if (type === FXP.STATUS && body.length >= 9) r.code = body.readUInt32BE(5);
      if (type === FXP.HANDLE && body.length >= 9) r.handle = body.subarray(9, 9 + body.readUInt32BE(5));
      if (type === FXP.NAME && body.length >= 9) {
        const n = body.readUInt32BE(5);
        const names: string[] = [];
        let p = 9;
        for (let i = 0; i < n && p + 4 <= body.length; i++) {
          const l = body.readUInt32BE(p);
          names.push(body.toString('utf8', p + 4, p + 4 + l));
          p += 4 + l;
          p += 4 + body.readUInt32BE(p); // longname
          const flags = body.readUInt32BE(p);
          p += 4 + (flags & ATTR.SIZE ? 8 : 0) + (flags & ATTR.UIDGID ? 8 : 0) + (flags & ATTR.PERMISSIONS ? 4 : 0) + (flags & ATTR.ACMODTIME ? 8 : 0);
        }
        r.names = names;
      }
      replies.push(r);
    }
    wake();
  });
  const end = () => {
    ended = true;
    wake();
  };
  stream.once('end', end);
  stream.once('close', end);
  stream.once('error', end);
  return {
    replies,
    isEnded: () => ended,
    /** Wait for the reply to `id` (undefined when the server hung up or `ms` passed). */
    async reply(id: number, ms = 5000): Promise<Reply | undefined> {
      const deadline = Date.now() + ms;
      for (;;) {
        const r = replies.find((x) => x.id === id);
        if (r || ended || Date.now() > deadline) return r;
        await new Promise<void>((resolve) => {
          const w = () => {
            waiters.delete(w);
            clearTimeout(t);
            resolve();
          };
          const t = setTimeout(w, Math.max(1, deadline - Date.now()));
          waiters.add(w);
        });
      }
    },
  };
}
