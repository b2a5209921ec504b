import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import { BerthError, isBerthError, type ErrorInfo } from '../contract/errors.js';
import type { InstancePaths } from '../base/paths.js';
import { PROTOCOL_VERSION, protocolMismatch, type EventData, type EventName, type MethodName, type Params, type Result } from '../contract/contract.js';
import { LineReader } from '../base/line-reader.js';

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

/** Rebuild a BerthError from the wire so callers see code, message and hint. */
function fromWire(e: ErrorInfo): BerthError {
  return new BerthError(e.code, e.message, e.hint, e.details);
}

/**
 * A client of the engine's control API (CLI, Electron main, tests): typed
 * calls and events over the control socket.
 */
export class ControlClient extends EventEmitter<{
  event: [EventName, unknown];
  close: [];
}> {
  private nextId = 1;
  private pending = new Map<number, Pending>();

  /** What the engine said in `hello`: its Berth version, protocol and pid. */
  engine?: { version: string; protocol: number; pid: number };

  private constructor(private readonly sock: net.Socket) {
    super();
    const reader = new LineReader(
      64 << 20,
      (line) => this.onLine(line),
      () => sock.destroy(),
    );
    sock.on('data', (d: Buffer) => reader.push(d));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      for (const p of this.pending.values()) {
        p.reject(
          new BerthError(
            'ENGINE_NOT_RUNNING',
            'the connection to the Berth engine closed',
            'The engine may have stopped or crashed; `berth logs --engine` shows why.',
          ),
        );
      }
      this.pending.clear();
      this.emit('close');
    });
  }

  /** Connect and authenticate with the instance's token. */
  static async connect(paths: Pick<InstancePaths, 'controlSocket' | 'token'>, client = 'berth-cli'): Promise<ControlClient> {
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(paths.controlSocket);
      s.once('connect', () => resolve(s));
      s.once('error', (err: NodeJS.ErrnoException) =>
        reject(new BerthError('ENGINE_NOT_RUNNING', `the Berth engine is not running (${err.code ?? err.message})`, 'Start it with `berth start`.')),
      );
    });
    const c = new ControlClient(sock);
    let token: string;
    try {
      token = fs.readFileSync(paths.token, 'utf8').trim();
    } catch {
      sock.destroy();
      throw new BerthError('UNAUTHORIZED', `cannot read the control token ${paths.token}`, 'Only the user who started Berth can control it.');
    }
    try {
      const hi = await c.call('hello', { token, client, protocol: PROTOCOL_VERSION });
      if (hi.protocol !== PROTOCOL_VERSION) throw protocolMismatch(PROTOCOL_VERSION, hi.protocol, hi.version);
      c.engine = { version: hi.version, protocol: hi.protocol, pid: hi.pid };
    } catch (err) {
      sock.destroy();
      // An engine from before the protocol check refuses the unknown field.
      if (isBerthError(err, 'BAD_REQUEST') && /protocol/.test(err.message)) throw protocolMismatch(PROTOCOL_VERSION, undefined, 'older');
      throw err;
    }
    return c;
  }

  private onLine(line: string): void {
    let msg: { id?: number; result?: unknown; error?: ErrorInfo; event?: EventName; data?: unknown };
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    if (msg.event) {
      this.emit('event', msg.event, msg.data);
      return;
    }
    if (typeof msg.id !== 'number') return;
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.error) p.reject(fromWire(msg.error));
    else p.resolve(msg.result);
  }

  call<M extends MethodName>(method: M, params: Params<M>): Promise<Result<M>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.sock.write(JSON.stringify({ id, method, params }) + '\n');
    });
  }

  /** Subscribe to engine events; `on` is called for each one. */
  async subscribe(on: <E extends EventName>(event: E, data: EventData<E>) => void): Promise<void> {
    this.on('event', (e, d) => on(e, d as EventData<typeof e>));
    await this.call('events.subscribe', {});
  }

  close(): void {
    this.sock.end();
    this.sock.destroy();
  }
}
