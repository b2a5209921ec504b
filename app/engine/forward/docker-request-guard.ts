import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * Watches the docker API requests on one client connection (client → guest
 * direction only) for the one thing Berth must refuse: a container that
 * bind-mounts a host folder that is not shared with the VM. Without this the
 * guest's dockerd would silently create an empty folder of that name inside
 * the VM; Docker Desktop says "Mounts denied" instead, and so do we.
 *
 * Everything else passes untouched. The stream is framed only as far as
 * needed to find request boundaries (Content-Length or chunked bodies); after
 * an upgraded request (attach, exec, BuildKit sessions) or anything it does
 * not understand it steps aside and passes raw bytes for good.
 */
export interface BindCheck {
  /** undefined: allowed; otherwise the reason it is refused. */
  (source: string): { message: string; hint: string } | undefined;
}

const MAX_HEAD = 64 * 1024;
const MAX_CREATE_BODY = 4 * 1024 * 1024;
const CREATE = /^(?:\/v[\d.]+)?\/containers\/create(?:\?|$)/;

type State =
  | { kind: 'head' }
  | { kind: 'length'; remaining: number }
  | { kind: 'chunk-size' }
  | { kind: 'chunk-data'; remaining: number }
  | { kind: 'chunk-crlf'; remaining: number }
  | { kind: 'trailer' }
  | { kind: 'create-body'; head: Buffer; length: number }
  | { kind: 'raw' };

export class DockerRequestGuard extends Transform {
  private state: State = { kind: 'head' };
  private buf: Buffer = Buffer.alloc(0);
  private upgradeAfterBody = false;
  refused = 0;

  constructor(
    private readonly check: BindCheck,
    /** Write an HTTP response straight back to the client and end it. */
    private readonly answer: (response: string) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.state.kind === 'raw') {
      this.push(chunk);
      return cb();
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    try {
      this.drain();
    } catch {
      // Something we do not understand: stop looking, pass everything.
      this.state = { kind: 'raw' };
      if (this.buf.length) this.push(this.buf);
      this.buf = Buffer.alloc(0);
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.buf.length) this.push(this.buf);
    this.buf = Buffer.alloc(0);
    cb();
  }

  private takeBytes(n: number): Buffer {
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  private afterBody(): void {
    this.state = this.upgradeAfterBody ? { kind: 'raw' } : { kind: 'head' };
    this.upgradeAfterBody = false;
    if (this.state.kind === 'raw' && this.buf.length) {
      this.push(this.buf);
      this.buf = Buffer.alloc(0);
    }
  }

  private drain(): void {
    for (;;) {
      const s = this.state;
      switch (s.kind) {
        case 'raw':
          if (this.buf.length) this.push(this.takeBytes(this.buf.length));
          return;
        case 'head': {
          const end = this.buf.indexOf('\r\n\r\n');
          if (end < 0) {
            if (this.buf.length > MAX_HEAD) throw new Error('head too long');
            return;
          }
          // Parsed before it is consumed: if it cannot be framed, the catch
          // in _transform passes it on with everything after it.
          const whole = this.buf;
          const head = whole.subarray(0, end + 4);
          this.buf = whole.subarray(end + 4);
          try {
            this.onHead(head);
          } catch (err) {
            this.buf = whole;
            throw err;
          }
          break;
        }
        case 'length': {
          if (!this.buf.length) return;
          const n = Math.min(s.remaining, this.buf.length);
          this.push(this.takeBytes(n));
          s.remaining -= n;
          if (s.remaining === 0) this.afterBody();
          break;
        }
        case 'chunk-size': {
          const nl = this.buf.indexOf('\r\n');
          if (nl < 0) {
            if (this.buf.length > 1024) throw new Error('chunk size line too long');
            return;
          }
          const line = this.takeBytes(nl + 2);
          const size = parseInt(line.toString('latin1').split(';')[0]!.trim(), 16);
          if (!Number.isFinite(size) || size < 0) throw new Error('bad chunk size');
          this.push(line);
          this.state = size === 0 ? { kind: 'trailer' } : { kind: 'chunk-data', remaining: size };
          break;
        }
        case 'chunk-data': {
          if (!this.buf.length) return;
          const n = Math.min(s.remaining, this.buf.length);
          this.push(this.takeBytes(n));
          s.remaining -= n;
          if (s.remaining === 0) this.state = { kind: 'chunk-crlf', remaining: 2 };
          break;
        }
        case 'chunk-crlf': {
          if (!this.buf.length) return;
          const n = Math.min(s.remaining, this.buf.length);
          this.push(this.takeBytes(n));
          s.remaining -= n;
          if (s.remaining === 0) this.state = { kind: 'chunk-size' };
          break;
        }
        case 'trailer': {
          const nl = this.buf.indexOf('\r\n');
          if (nl < 0) return;
          const line = this.takeBytes(nl + 2);
          this.push(line);
          if (line.length === 2) this.afterBody();
          break;
        }
        case 'create-body': {
          if (this.buf.length < s.length) return;
          const body = this.takeBytes(s.length);
          const refusal = this.checkCreate(body);
          if (refusal) {
            this.refused++;
            this.state = { kind: 'raw' };
            this.buf = Buffer.alloc(0);
            const json = JSON.stringify({ message: `${refusal.message}. ${refusal.hint}` });
            this.answer(
              `HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`,
            );
            return;
          }
          this.push(s.head);
          this.push(body);
          this.afterBody();
          break;
        }
      }
    }
  }

  private onHead(head: Buffer): void {
    const text = head.toString('latin1');
    const lines = text.split('\r\n');
    const [method, target] = (lines[0] ?? '').split(' ');
    const headers = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
    }
    const conn = (headers.get('connection') ?? '').toLowerCase();
    this.upgradeAfterBody = headers.has('upgrade') || conn.split(',').some((x) => x.trim() === 'upgrade');
    const chunked = (headers.get('transfer-encoding') ?? '').toLowerCase().includes('chunked');
    const lengthHeader = headers.get('content-length');
    const length = lengthHeader === undefined ? 0 : Number(lengthHeader);
    if (!chunked && (!Number.isInteger(length) || length < 0)) throw new Error('bad content-length');

    // (Expect: 100-continue would wait for an answer before sending the body.)
    if (method === 'POST' && target && CREATE.test(target) && !chunked && !headers.has('expect') && length > 0 && length <= MAX_CREATE_BODY) {
      this.state = { kind: 'create-body', head, length };
      return;
    }
    this.push(head);
    if (chunked) this.state = { kind: 'chunk-size' };
    else if (length > 0) this.state = { kind: 'length', remaining: length };
    else this.afterBody();
  }

  private checkCreate(body: Buffer): { message: string; hint: string } | undefined {
    let spec: { HostConfig?: { Binds?: unknown; Mounts?: unknown } };
    try {
      spec = JSON.parse(body.toString('utf8'));
    } catch {
      return undefined; // dockerd will answer a bad body itself
    }
    const sources: string[] = [];
    const binds = spec.HostConfig?.Binds;
    if (Array.isArray(binds)) {
      for (const b of binds) if (typeof b === 'string') sources.push(bindSource(b));
    }
    const mounts = spec.HostConfig?.Mounts;
    if (Array.isArray(mounts)) {
      for (const m of mounts as { Type?: string; Source?: string }[]) {
        if (m?.Type === 'bind' && typeof m.Source === 'string') sources.push(m.Source);
      }
    }
    for (const src of sources) {
      if (!src.startsWith('/')) continue; // a named volume
      const r = this.check(path.posix.normalize(src));
      if (r) return r;
    }
    return undefined;
  }
}

/** The source part of a "SRC:DST[:OPTS]" bind. */
export function bindSource(bind: string): string {
  const i = bind.indexOf(':');
  return i < 0 ? bind : bind.slice(0, i);
}

/** Guest paths a container may bind without a share: the VM's own files. */
const GUEST_PATHS = [
  '/var/run/docker.sock',
  '/run',
  '/var/run',
  '/proc',
  '/sys',
  '/dev',
  '/lib/modules',
  '/var/lib/docker',
  '/etc',
  '/usr',
  '/bin',
  '/sbin',
  '/lib',
];

const under = (p: string, root: string) => p === root || p.startsWith(root === '/' ? '/' : `${root}/`);

/**
 * The bind rule: a path in a shared folder, or one of the VM's own, is
 * fine; a path that exists on the host but is not shared is refused (it
 * would be an empty folder in the VM); anything else is left to Docker.
 */
export function makeBindCheck(sharedGuestPaths: () => string[], existsOnHost: (p: string) => boolean): BindCheck {
  return (source) => {
    if (GUEST_PATHS.some((g) => under(source, g))) return undefined;
    if (sharedGuestPaths().some((g) => under(source, g.replace(/\/+$/, '') || '/'))) return undefined;
    if (!existsOnHost(source)) return undefined;
    return {
      message: `the path ${source} is not shared with the Berth VM, so the container would see an empty folder`,
      hint: `Share it (or a folder above it) with \`berth share add ${source}\`, or use a named volume`,
    };
  };
}
