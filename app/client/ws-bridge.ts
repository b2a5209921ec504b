import crypto from 'node:crypto';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { toErrorInfo, type ErrorInfo } from '../contract/errors.js';
import { MAX_MESSAGE_BYTES, RequestSchema } from '../contract/contract.js';
import type { EngineGateway } from './engine-gateway.js';
import { TOO_DEEP, nestedTooDeep } from '../contract/wire-limits.js';

/**
 * The browser dashboard's transport: the contract's JSON messages over a
 * WebSocket on loopback, one EngineGateway per page. The page sends
 * `{id, method, params}` and gets `{id, result}` or `{id, error}` and
 * `{event, data}`, exactly the control socket's messages.
 *
 * An upgrade is refused (403) without the per-start token, with a Host
 * that is not this loopback address and port, or with an Origin of another
 * site: a web page elsewhere, or one reached through DNS rebinding, cannot
 * drive the engine.
 */

export interface WsBridgeOptions {
  token: string;
  /** The port the HTTP server listens on (for the Host and Origin checks). */
  port: () => number;
  gateway: () => EngineGateway;
  path?: string;
}

/** Host header values that mean this server on loopback. */
export function allowedHosts(port: number): string[] {
  return [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
}

/** Why a request must be refused, or undefined when it may go on. */
export function hostProblem(req: http.IncomingMessage, port: number): string | undefined {
  const host = (req.headers.host ?? '').toLowerCase();
  if (!allowedHosts(port).includes(host)) return `the Host "${host.slice(0, 100)}" is not this dashboard's loopback address`;
  const origin = req.headers.origin;
  if (origin !== undefined && !allowedHosts(port).some((h) => origin.toLowerCase() === `http://${h}`)) {
    return `the Origin "${origin.slice(0, 100)}" is not this dashboard`;
  }
  return undefined;
}

function tokenOk(given: string | null, expected: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found' };

function refuse(socket: Duplex, status: number, error: ErrorInfo): void {
  const body = JSON.stringify({ error });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export class WsBridge {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES, perMessageDeflate: false });
  private readonly path: string;
  private readonly gateways = new Set<EngineGateway>();
  private opened = 0;

  constructor(
    server: http.Server,
    private readonly o: WsBridgeOptions,
  ) {
    this.path = o.path ?? '/ws';
    server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
  }

  get clients(): number {
    return this.wss.clients.size;
  }

  /** Pages that got in since the start (open or gone). */
  get pagesOpened(): number {
    return this.opened;
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://x');
    } catch {
      return refuse(socket, 400, { code: 'BAD_REQUEST', message: 'the request target is not a valid URL', hint: `The contract is at ${this.path}.` });
    }
    if (url.pathname !== this.path) {
      return refuse(socket, 404, { code: 'BAD_REQUEST', message: `nothing to upgrade at ${url.pathname}`, hint: `The contract is at ${this.path}.` });
    }
    const problem = hostProblem(req, this.o.port());
    if (problem) {
      return refuse(socket, 403, {
        code: 'UNAUTHORIZED',
        message: `connection refused: ${problem}`,
        hint: 'Open the dashboard at the address `berth dashboard` printed.',
      });
    }
    if (!tokenOk(url.searchParams.get('token'), this.o.token)) {
      return refuse(socket, 403, {
        code: 'UNAUTHORIZED',
        message: 'connection refused: the dashboard token is missing or wrong',
        hint: 'Open the address `berth dashboard` printed (each start makes a new token).',
      });
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws));
  }

  private onConnection(ws: WebSocket): void {
    this.opened++;
    const gw = this.o.gateway();
    this.gateways.add(gw);
    const send = (msg: unknown) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
    };
    gw.on('event', (event, data) => send({ event, data }));
    ws.on('message', (raw, isBinary) => {
      let msg: unknown;
      try {
        if (isBinary) throw new Error('binary');
        msg = JSON.parse(raw.toString());
      } catch {
        return send({ id: null, error: { code: 'BAD_REQUEST', message: 'the message is not valid JSON text', hint: 'Send one JSON request per message.' } });
      }
      if (nestedTooDeep(msg)) return send({ id: null, error: TOO_DEEP });
      const req = RequestSchema.safeParse(msg);
      if (!req.success) {
        return send({
          id: null,
          error: { code: 'BAD_REQUEST', message: 'malformed request', hint: 'A request is {"id": 1, "method": "vm.status", "params": {}}.' },
        });
      }
      const { id, method, params } = req.data;
      gw.call(method, params).then(
        (result) => send({ id, result }),
        (err) => send({ id, error: toErrorInfo(err) }),
      );
    });
    ws.on('error', () => undefined);
    ws.on('close', () => {
      this.gateways.delete(gw);
      void gw.close();
    });
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    await Promise.all([...this.gateways].map((g) => g.close()));
    this.gateways.clear();
    await new Promise<void>((r) => this.wss.close(() => r()));
  }
}
