/**
 * ssh2's SFTP protocol engine over any byte stream.
 *
 * ssh2 only hands out an SFTP server bound to an ssh session ("sftp"
 * subsystem request). Reverse sshfs needs the opposite: the guest runs
 * `sshfs -o slave` under an ssh *exec* channel and speaks SFTP on its
 * stdin/stdout, so the engine has to serve SFTP over that channel's stream.
 * ssh2's protocol class (ssh2/lib/protocol/SFTP.js, not part of its public
 * API) does all the parsing and encoding; it only needs something that looks
 * like the ssh2 Channel it normally sits on:
 *
 *   client._protocol._remoteIdentRaw   the peer's ssh banner. We say OpenSSH:
 *                                       ssh2 then swaps SYMLINK's two paths
 *                                       the way OpenSSH's sftp-server does,
 *                                       which is the order sshfs sends them in.
 *   client._protocol.channelData(id, buf)   every outgoing packet (we write it
 *                                       to the stream)
 *   client._protocol.channelClose(id)   on a fatal protocol error (we end it)
 *   outgoing {state, window, packetSize}   ssh flow control; an infinite window
 *                                       means "write now", and real flow
 *                                       control is the stream's own
 *                                       backpressure (see hold/release)
 *   sftp.push(buf | null)               incoming bytes, in any chunking
 *
 * The server's VERSION packet in ssh2 advertises no extensions, and sshfs
 * only uses posix-rename, statvfs, hardlink and fsync when they are
 * advertised, so the first packet (always VERSION) is replaced by one that
 * lists ours. Replies ssh2 has no method for (SSH_FXP_EXTENDED_REPLY) go out
 * through sendPacket, on the same ordered path.
 *
 * Guest bytes never reach ssh2's parser unframed: the adapter cuts the
 * stream into packets itself and refuses a length word ssh2 would mishandle
 * (ssh2 1.17.0 reads one >= 2^31 as negative and throws a TypeError out of
 * push(), which would end the engine). A length outside 5 bytes .. 256 KiB
 * (OpenSSH's limit; every request has at least a type and an id) ends that
 * channel, and so does anything ssh2 or a request listener throws while a
 * packet is handled: a hostile guest can close its own mount, nothing more.
 *
 * Verified against ssh2 1.17.0 (pinned exactly in package.json); the unit
 * test test/unit/sftp-server.test.ts checks the version and the shape this
 * file relies on, so a bump fails loudly instead of corrupting mounts.
 */
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';

const require = createRequire(import.meta.url);

/** The ssh2 version this adapter was written and tested against. */
export const SSH2_VERSION_VERIFIED = '1.17.0';

export const SFTP_STATUS = {
  OK: 0,
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const;
export type SftpStatus = (typeof SFTP_STATUS)[keyof typeof SFTP_STATUS];

export const SFTP_OPEN = {
  READ: 0x01,
  WRITE: 0x02,
  APPEND: 0x04,
  CREAT: 0x08,
  TRUNC: 0x10,
  EXCL: 0x20,
} as const;

const SSH_FXP_VERSION = 2;
/** Shortest packet: a type byte and a uint32 (a request's id, INIT's and VERSION's version). */
const MIN_PACKET = 5;
/** Longest packet either side may send (OpenSSH's SFTP_MAX_MSG_LENGTH, ssh2's own limit). */
export const MAX_PACKET = 256 * 1024;
const SSH_FXP_EXTENDED_REPLY = 201;

/** Attributes as ssh2 parses them from a request (absent fields are undefined). */
export interface SftpInAttrs {
  size?: number;
  uid?: number;
  gid?: number;
  mode?: number;
  atime?: number;
  mtime?: number;
}

/** Attributes as ssh2 encodes them in a reply. */
export interface SftpOutAttrs {
  size?: number;
  uid?: number;
  gid?: number;
  mode?: number;
  atime?: number;
  mtime?: number;
}

export interface SftpName {
  filename: string;
  longname: string;
  attrs: SftpOutAttrs;
}

/** The server-side surface of ssh2's SFTP class that Berth uses. */
export interface SftpServerEngine extends EventEmitter {
  status(reqId: number, code: SftpStatus, message?: string): void;
  handle(reqId: number, handle: Buffer): void;
  data(reqId: number, data: Buffer): void;
  name(reqId: number, names: SftpName[]): void;
  attrs(reqId: number, attrs: SftpOutAttrs): void;
}

interface Ssh2SftpInternals extends EventEmitter {
  push(data: Buffer | null): void;
  destroy(): void;
  _init(): void;
  _extensions: Record<string, string>;
}

interface OutgoingState {
  id: number;
  state: 'open' | 'eof' | 'closing' | 'closed';
  window: number;
  packetSize: number;
}

type Ssh2SftpCtor = new (
  client: { _protocol: unknown },
  chanInfo: { type: string; incoming: OutgoingState; outgoing: OutgoingState },
  cfg: { server?: boolean; debug?: (msg: string) => void },
) => Ssh2SftpInternals;

let ctor: Ssh2SftpCtor | undefined;
function sftpClass(): Ssh2SftpCtor {
  if (!ctor) {
    const mod = require('ssh2/lib/protocol/SFTP.js') as { SFTP?: unknown };
    if (typeof mod.SFTP !== 'function') {
      throw new Error(`ssh2/lib/protocol/SFTP.js has no SFTP class (ssh2 changed; verified with ${SSH2_VERSION_VERIFIED})`);
    }
    ctor = mod.SFTP as Ssh2SftpCtor;
  }
  return ctor;
}

/** The installed ssh2 version (for the test that pins it). */
export function installedSsh2Version(): string {
  return (require('ssh2/package.json') as { version: string }).version;
}

/** An SSH_FXP_VERSION packet for protocol 3 with these extensions. */
export function versionPacket(extensions: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(extensions)) parts.push(sshString(name), sshString(value));
  const body = Buffer.concat(parts);
  const out = Buffer.allocUnsafe(4 + 1 + 4 + body.length);
  out.writeUInt32BE(1 + 4 + body.length, 0);
  out[4] = SSH_FXP_VERSION;
  out.writeUInt32BE(3, 5);
  body.copy(out, 9);
  return out;
}

/** An SSH_FXP_EXTENDED_REPLY packet. */
export function extendedReplyPacket(reqId: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + 1 + 4 + payload.length);
  out.writeUInt32BE(1 + 4 + payload.length, 0);
  out[4] = SSH_FXP_EXTENDED_REPLY;
  out.writeUInt32BE(reqId >>> 0, 5);
  payload.copy(out, 9);
  return out;
}

export function sshString(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  const out = Buffer.allocUnsafe(4 + b.length);
  out.writeUInt32BE(b.length, 0);
  b.copy(out, 4);
  return out;
}

/** Read SSH strings from an extended request's data; undefined when malformed. */
export function readSshStrings(data: Buffer | undefined, count: number): Buffer[] | undefined {
  if (!data) return count === 0 ? [] : undefined;
  const out: Buffer[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 4 > data.length) return undefined;
    const len = data.readUInt32BE(p);
    p += 4;
    if (p + len > data.length) return undefined;
    out.push(data.subarray(p, p + len));
    p += len;
  }
  return out;
}

function isPlainVersion3(buf: Buffer): boolean {
  return buf.length === 9 && buf.readUInt32BE(0) === 5 && buf[4] === SSH_FXP_VERSION && buf.readUInt32BE(5) === 3;
}

export interface SftpChannelOptions {
  /** true: answer requests (sshfs is the client); false: send them (tests). */
  server: boolean;
  /** Server only: extensions listed in our VERSION reply. */
  extensions?: Record<string, string>;
  /** ssh2's packet-level debug lines. */
  debug?: (msg: string) => void;
}

export interface SftpChannel<E> {
  sftp: E;
  /** Write a raw, fully framed SFTP packet, ordered with ssh2's own. */
  sendPacket(buf: Buffer): void;
  /** Stop reading requests for `reason` until release(reason). */
  hold(reason: string): void;
  release(reason: string): void;
  /** Resolves once the stream has ended or failed (never rejects). */
  closed: Promise<Error | undefined>;
  /** End our side and stop reading. */
  close(): void;
}

/**
 * Put ssh2's SFTP engine on `stream`. In server mode the caller listens for
 * the request events (OPEN, READ, ...) on `sftp`; in client mode the caller
 * waits for 'ready' and uses ssh2's client methods.
 */
export function openSftpChannel<E = SftpServerEngine>(stream: Duplex, opts: SftpChannelOptions): SftpChannel<E> {
  let versionSeen = !opts.server;
  let ended = false;
  const holds = new Set<string>();
  let resolveClosed!: (err: Error | undefined) => void;
  const closed = new Promise<Error | undefined>((r) => (resolveClosed = r));

  const write = (buf: Buffer) => {
    if (ended || stream.destroyed || stream.writableEnded) return;
    if (!stream.write(buf) && !holds.has('output')) {
      // The guest reads slower than we answer: stop taking requests until it catches up.
      hold('output');
      stream.once('drain', () => release('output'));
    }
  };

  const protocol = {
    // Makes ssh2 treat the peer as OpenSSH (see the file comment: SYMLINK order).
    _remoteIdentRaw: 'SSH-2.0-OpenSSH_9.2 berth-sftp-stream',
    channelData(_id: number, data: Buffer) {
      if (!versionSeen) {
        versionSeen = true;
        if (isPlainVersion3(data) && opts.extensions) data = versionPacket(opts.extensions);
      }
      write(data);
    },
    channelClose() {
      finish(undefined);
    },
  };
  const outgoing: OutgoingState = { id: 0, state: 'open', window: Infinity, packetSize: Infinity };
  const incoming: OutgoingState = { id: 0, state: 'open', window: Infinity, packetSize: Infinity };
  const Sftp = sftpClass();
  const sftp = new Sftp({ _protocol: protocol }, { type: 'sftp', incoming, outgoing }, { server: opts.server, debug: opts.debug });

  function hold(reason: string) {
    holds.add(reason);
    if (!ended) stream.pause();
  }
  function release(reason: string) {
    if (!holds.delete(reason)) return;
    if (!holds.size && !ended) stream.resume();
  }

  function finish(err: Error | undefined) {
    if (ended) return;
    ended = true;
    outgoing.state = 'closed';
    pending = [];
    pendingBytes = 0;
    stream.off('data', onData);
    try {
      sftp.push(null);
    } catch {
      /* already ended */
    }
    if (!stream.destroyed && !stream.writableEnded) stream.end();
    resolveClosed(err);
  }

  // Framing: whole packets only, each length checked, ssh2 never trusted not to throw.
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const take = (n: number): Buffer => {
    const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    pending = rest.length ? [rest] : [];
    pendingBytes = rest.length;
    return out;
  };
  const onData = (chunk: Buffer) => {
    if (ended) return;
    pending.push(chunk);
    pendingBytes += chunk.length;
    while (!ended && pendingBytes >= 4) {
      if (pending[0]!.length < 4) pending = [Buffer.concat(pending, pendingBytes)];
      const len = pending[0]!.readUInt32BE(0);
      if (len < MIN_PACKET || len > MAX_PACKET) {
        finish(new Error(`SFTP packet length ${len} is outside ${MIN_PACKET}..${MAX_PACKET}: closing the channel`));
        return;
      }
      if (pendingBytes < 4 + len) return;
      const pkt = take(4 + len);
      try {
        sftp.push(pkt);
      } catch (err) {
        finish(new Error(`SFTP packet refused: ${(err as Error)?.message ?? String(err)}`));
        return;
      }
    }
  };
  stream.on('data', onData);
  stream.once('end', () => finish(undefined));
  stream.once('close', () => finish(undefined));
  stream.once('error', (err: Error) => finish(err));
  // A protocol error from the peer (malformed packet): ssh2 emits 'error' and
  // destroys the channel (channelClose above).
  sftp.on('error', (err: Error) => finish(err));

  if (!opts.server) sftp._init();

  return {
    sftp: sftp as unknown as E,
    sendPacket: write,
    hold,
    release,
    closed,
    close: () => finish(undefined),
  };
}
