import crypto from 'node:crypto';
import net from 'node:net';
import type { Logger } from 'pino';
import { BerthError, toErrorInfo } from '../../contract/errors.js';
import { describeIssues } from '../../contract/issues.js';
import { listenPrivate, prepareSocketPath } from '../forward/unix-socket.js';
import {
  MAX_MESSAGE_BYTES,
  RequestSchema,
  methods,
  FRONT_END_METHODS,
  PROTOCOL_VERSION,
  protocolMismatch,
  type EventData,
  type EventName,
  type MethodName,
  type Params,
  type Response,
  type Handlers,
} from '../../contract/contract.js';
import { LineReader } from '../../base/line-reader.js';
import { TOO_DEEP, nestedTooDeep } from '../../contract/wire-limits.js';

interface Conn {
  sock: net.Socket;
  authed: boolean;
  subscribed: boolean;
  /** Hung up: nothing more is read from it or sent to it. */
  done: boolean;
}

/**
 * The engine's control API: the contract as JSON lines on an owner-only
 * unix socket (a named pipe on Windows). The first request must be `hello`
 * with the per-start token; every request's params are checked against the
 * contract's schema before a handler sees them.
 */
export class ControlServer {
  private server?: net.Server;
  private conns = new Set<Conn>();

  constructor(
    private readonly socketPath: string,
    private readonly token: string,
    private readonly handlers: Handlers,
    private readonly info: { version: string; instance: string },
    private readonly log: Logger,
  ) {}

  async listen(): Promise<void> {
    await prepareSocketPath(this.socketPath, 'control socket');
    const server = net.createServer((sock) => this.onConnection(sock));
    await listenPrivate(server, this.socketPath);
    this.server = server;
  }

  /** Send an event to every subscribed client. */
  broadcast<E extends EventName>(event: E, data: EventData<E>): void {
    const line = JSON.stringify({ event, data }) + '\n';
    for (const c of this.conns) if (c.subscribed && c.authed && !c.sock.destroyed) c.sock.write(line);
  }

  private onConnection(sock: net.Socket): void {
    const conn: Conn = { sock, authed: false, subscribed: false, done: false };
    this.conns.add(conn);
    const reader = new LineReader(
      MAX_MESSAGE_BYTES,
      (line) => {
        if (!conn.done) void this.onLine(conn, line);
      },
      () =>
        this.hangUp(conn, {
          id: null,
          error: {
            code: 'BAD_REQUEST',
            message: `request larger than ${MAX_MESSAGE_BYTES} bytes`,
            hint: 'Send one JSON request per line, each under 1 MiB.',
          },
        }),
    );
    sock.on('data', (d: Buffer) => {
      if (!conn.done) reader.push(d);
    });
    sock.on('error', () => undefined);
    sock.on('close', () => this.conns.delete(conn));
  }

  private send(conn: Conn, msg: Response): void {
    if (!conn.done && !conn.sock.destroyed) conn.sock.write(JSON.stringify(msg) + '\n');
  }

  /**
   * Send a last answer and close the connection for good: a client that
   * keeps its side half-open gets nothing more read (no request after a
   * refused hello or an oversized line is ever executed).
   */
  private hangUp(conn: Conn, msg: Response): void {
    if (conn.done) return;
    this.send(conn, msg);
    conn.done = true;
    conn.authed = false;
    conn.subscribed = false;
    const sock = conn.sock;
    sock.end(() => sock.destroy());
    // A peer that never reads would keep the socket open; do not wait for it.
    setTimeout(() => sock.destroy(), 2000).unref();
  }

  private async onLine(conn: Conn, line: string): Promise<void> {
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      return this.send(conn, {
        id: null,
        error: { code: 'BAD_REQUEST', message: 'the request is not valid JSON', hint: 'Send one JSON object per line.' },
      });
    }
    if (nestedTooDeep(raw)) return this.send(conn, { id: null, error: TOO_DEEP });
    const req = RequestSchema.safeParse(raw);
    if (!req.success) {
      return this.send(conn, {
        id: null,
        error: {
          code: 'BAD_REQUEST',
          message: `malformed request: ${describeIssues(req.error)}`,
          hint: 'A request is {"id": 1, "method": "vm.status", "params": {}}.',
        },
      });
    }
    const { id, method } = req.data;
    try {
      const result = await this.dispatch(conn, method, req.data.params ?? {});
      this.send(conn, { id, result });
    } catch (err) {
      const info = toErrorInfo(err);
      if (info.code === 'INTERNAL') this.log.error({ err, method }, 'control request failed');
      if (info.code === 'UNAUTHORIZED') this.hangUp(conn, { id, error: info });
      else this.send(conn, { id, error: info });
    }
  }

  private async dispatch(conn: Conn, method: string, rawParams: unknown): Promise<unknown> {
    // Before a good hello nothing else is looked at: any other call, known
    // or not, well-formed or not, ends the connection as UNAUTHORIZED.
    if (!conn.authed && method !== 'hello') {
      throw new BerthError('UNAUTHORIZED', 'say hello with the control token first', 'The first request must be `hello`.');
    }
    if (!Object.hasOwn(methods, method)) {
      throw new BerthError('BAD_REQUEST', `unknown method "${method}"`, `Known methods: ${Object.keys(methods).join(', ')}.`);
    }
    const m = method as MethodName;
    const parsed = methods[m].params.safeParse(rawParams);
    if (!parsed.success) {
      // A hello without a usable token is refused like a wrong token. One
      // with a token and a field this engine does not know stays
      // BAD_REQUEST: that is how a newer client learns the engine is older.
      if (m === 'hello' && !conn.authed && !hasUsableToken(rawParams)) throw badToken('hello without a usable control token');
      throw new BerthError('BAD_REQUEST', `bad params for ${m}: ${describeIssues(parsed.error)}`, 'Nothing was changed.');
    }
    const params: unknown = parsed.data;
    if (m === 'hello') {
      const p = params as Params<'hello'>;
      if (!tokenMatches(p.token, this.token)) {
        this.log.warn('control connection refused: bad token');
        throw badToken('the control token is wrong');
      }
      if (p.protocol !== undefined && p.protocol !== PROTOCOL_VERSION) throw protocolMismatch(p.protocol, PROTOCOL_VERSION, this.info.version);
      conn.authed = true;
      return { protocol: PROTOCOL_VERSION, version: this.info.version, instance: this.info.instance, pid: process.pid };
    }
    if (m === 'events.subscribe') {
      conn.subscribed = true;
      return {};
    }
    const handler = (this.handlers as Record<string, ((p: unknown) => Promise<unknown>) | undefined>)[m];
    if (!handler) {
      // host.doctor and the like judge the host the front end runs on: its gateway answers them.
      if (FRONT_END_METHODS.includes(m))
        throw new BerthError(
          'BAD_REQUEST',
          `${m} is answered by the dashboard or the desktop app, not by the engine`,
          'Run `berth doctor` for the same report.',
        );
      throw new BerthError('BAD_REQUEST', `${m} is not served by this engine`, 'Nothing was changed.');
    }
    return handler(params);
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.sock.destroy();
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}

function hasUsableToken(params: unknown): boolean {
  const token = (params as { token?: unknown } | null | undefined)?.token;
  return typeof token === 'string' && methods.hello.params.shape.token.safeParse(token).success;
}

function badToken(message: string): BerthError {
  return new BerthError('UNAUTHORIZED', message, 'Clients read the token from the instance folder; only its owner can.');
}

function tokenMatches(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}
