import crypto from 'node:crypto';
import type { Duplex } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { Broadcast } from '../../contract/contract.js';
import { BerthError, toErrorInfo, type ErrorInfo } from '../../contract/errors.js';
import type { DockerApi } from './docker-api.js';
import { dockerError } from './docker-views.js';

/**
 * The long-lived Docker streams the UI opens: container logs and terminal
 * (exec) sessions. Each has an id; its data goes out as events carrying
 * that id, in batches (a burst of output is a few events, not thousands).
 * The oldest stream is closed when a client opens more than the limit, so
 * streams a vanished client left behind cannot pile up.
 */

const FLUSH_MS = 20;
const FLUSH_BYTES = 32 * 1024;

/** The shell a terminal runs when the client names no command: bash where there is one. */
export const DEFAULT_SHELL = ['/bin/sh', '-c', 'if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi'];

export function newStreamId(kind: 'logs' | 'term' | 'stats'): string {
  return `${kind}-${crypto.randomBytes(8).toString('hex')}`;
}

/** Collects decoded text and hands it on at most every FLUSH_MS (or when large, or when the source changes). */
class Batcher<S extends string> {
  private text = '';
  private source?: S;
  private timer?: NodeJS.Timeout;

  constructor(private readonly emit: (source: S, text: string) => void) {}

  push(source: S, text: string): void {
    if (!text) return;
    if (this.source !== undefined && this.source !== source) this.flush();
    this.source = source;
    this.text += text;
    if (this.text.length >= FLUSH_BYTES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.text && this.source !== undefined) this.emit(this.source, this.text);
    this.text = '';
    this.source = undefined;
  }
}

/**
 * Docker's multiplexed stream format (a container without a tty): frames
 * of an 8-byte header (stream type, 3 zero bytes, big-endian length) and
 * the payload.
 */
export class StdStreamDemuxer {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (source: 'stdout' | 'stderr', payload: Buffer) => void) {}

  push(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    while (this.buf.length >= 8) {
      const size = this.buf.readUInt32BE(4);
      if (this.buf.length < 8 + size) break;
      const type = this.buf[0];
      const payload = this.buf.subarray(8, 8 + size);
      this.buf = this.buf.subarray(8 + size);
      this.onFrame(type === 2 ? 'stderr' : 'stdout', payload);
    }
  }
}

interface LogStream {
  stop(): void;
  finish(error?: ErrorInfo): void;
}

interface TermSession {
  api: DockerApi;
  execId: string;
  socket: Duplex;
  finish(): void;
}

export class DockerStreams {
  private logs = new Map<string, LogStream>();
  private terms = new Map<string, TermSession>();

  constructor(
    private readonly broadcast: Broadcast,
    private readonly limits = { logs: 32, terminals: 16 },
  ) {}

  get openLogs(): number {
    return this.logs.size;
  }
  get openTerminals(): number {
    return this.terms.size;
  }

  async startLogs(api: DockerApi, p: { id: string; follow?: boolean; tail?: number; timestamps?: boolean }): Promise<{ stream: string; tty: boolean }> {
    const ref = encodeURIComponent(p.id);
    let tty: boolean;
    try {
      const info = (await api.request('GET', `/containers/${ref}/json`)) as { Config?: { Tty?: boolean } };
      tty = !!info.Config?.Tty;
    } catch (err) {
      throw dockerError(err, `read the log of ${p.id}`);
    }
    const id = newStreamId('logs');
    const q = new URLSearchParams({
      stdout: '1',
      stderr: '1',
      follow: p.follow === false ? '0' : '1',
      tail: String(p.tail ?? 500),
      timestamps: p.timestamps ? '1' : '0',
    });
    const decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
    const batch = new Batcher<'stdout' | 'stderr'>((source, text) => this.broadcast('containers.logs.data', { stream: id, source, text }));
    const demux = new StdStreamDemuxer((source, payload) => batch.push(source, decoders[source].write(payload)));
    let done = false;
    const finish = (error?: ErrorInfo) => {
      if (done) return;
      done = true;
      this.logs.delete(id);
      batch.push('stdout', decoders.stdout.end());
      batch.push('stderr', decoders.stderr.end());
      batch.flush();
      this.broadcast('containers.logs.end', error ? { stream: id, error } : { stream: id });
    };
    this.evict(this.logs, this.limits.logs, (s) => {
      s.stop();
      s.finish({ code: 'STREAM_NOT_FOUND', message: 'this log stream was closed: too many were open at once', hint: 'Open the log again.' });
    });
    const handle = api.stream(
      `/containers/${ref}/logs?${q}`,
      (d) => (tty ? batch.push('stdout', decoders.stdout.write(d)) : demux.push(d)),
      (err) => finish(err ? toErrorInfo(dockerError(err, `read the log of ${p.id}`)) : undefined),
    );
    this.logs.set(id, { stop: handle.stop, finish });
    return { stream: id, tty };
  }

  stopLogs(stream: string): void {
    const s = this.logs.get(stream);
    if (!s) throw notFound('log stream', stream);
    s.stop();
    s.finish();
  }

  async startTerminal(api: DockerApi, p: { id: string; cols: number; rows: number; command?: string[] }): Promise<{ session: string }> {
    const ref = encodeURIComponent(p.id);
    let execId: string;
    let conn: { socket: Duplex; head: Buffer };
    try {
      const ex = (await api.request('POST', `/containers/${ref}/exec`, {
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: true,
        Cmd: p.command ?? DEFAULT_SHELL,
        Env: ['TERM=xterm-256color', `COLUMNS=${p.cols}`, `LINES=${p.rows}`],
      })) as { Id: string };
      execId = ex.Id;
      conn = await api.hijack(`/exec/${encodeURIComponent(execId)}/start`, { Detach: false, Tty: true });
    } catch (err) {
      throw dockerError(err, `open a terminal in ${p.id}`);
    }
    const session = newStreamId('term');
    const decoder = new StringDecoder('utf8');
    const batch = new Batcher<'out'>((_s, data) => this.broadcast('terminal.output', { session, data }));
    const { socket } = conn;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      this.terms.delete(session);
      batch.push('out', decoder.end());
      batch.flush();
      socket.destroy();
      void api
        .request('GET', `/exec/${encodeURIComponent(execId)}/json`, undefined, 10_000)
        .then((r) => {
          const info = r as { ExitCode?: number | null; Running?: boolean };
          const exit: { session: string; exitCode?: number } = { session };
          if (!info.Running && typeof info.ExitCode === 'number') exit.exitCode = info.ExitCode;
          this.broadcast('terminal.exit', exit);
        })
        .catch(() => this.broadcast('terminal.exit', { session }));
    };
    this.evict(this.terms, this.limits.terminals, (t) => t.finish());
    this.terms.set(session, { api, execId, socket, finish });
    if (conn.head.length) batch.push('out', decoder.write(conn.head));
    socket.on('data', (d: Buffer) => batch.push('out', decoder.write(d)));
    socket.on('error', () => finish());
    socket.on('close', () => finish());
    socket.on('end', () => finish());
    // The size can be set only once the process runs.
    await this.resize(session, p.cols, p.rows).catch(() => undefined);
    return { session };
  }

  input(session: string, data: string): void {
    const t = this.terms.get(session);
    if (!t) throw notFound('terminal session', session);
    t.socket.write(data);
  }

  async resize(session: string, cols: number, rows: number): Promise<void> {
    const t = this.terms.get(session);
    if (!t) throw notFound('terminal session', session);
    try {
      await t.api.request('POST', `/exec/${encodeURIComponent(t.execId)}/resize?h=${rows}&w=${cols}`, undefined, 10_000);
    } catch (err) {
      throw dockerError(err, 'resize the terminal');
    }
  }

  stopTerminal(session: string): void {
    const t = this.terms.get(session);
    if (!t) throw notFound('terminal session', session);
    t.finish();
  }

  /** End every stream (the VM stops, the engine shuts down). */
  closeAll(): void {
    for (const s of [...this.logs.values()]) {
      s.stop();
      s.finish();
    }
    for (const t of [...this.terms.values()]) t.finish();
  }

  private evict<T>(map: Map<string, T>, limit: number, close: (v: T) => void): void {
    while (map.size >= limit) {
      const [oldest] = map.values();
      if (oldest === undefined) break;
      const before = map.size;
      close(oldest);
      if (map.size === before) map.delete(map.keys().next().value as string);
    }
  }
}

function notFound(what: string, id: string): BerthError {
  return new BerthError('STREAM_NOT_FOUND', `there is no ${what} ${id}`, 'It has ended (or the engine restarted); open it again.');
}
