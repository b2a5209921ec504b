import type { ErrorInfo } from '../../../contract/errors';
import { CallError, type Transport } from './transport';

type Pending = { resolve: (v: unknown) => void; reject: (e: unknown) => void };

/**
 * The dashboard's transport: contract messages over a WebSocket to
 * `berth dashboard`, authenticated with the per-start token from the page's
 * address. Calls made while it (re)connects wait for it; it reconnects by
 * itself with backoff when the connection drops.
 */
export class WebSocketTransport implements Transport {
  private ws?: WebSocket;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private queue: string[] = [];
  private events = new Set<(event: string, data: unknown) => void>();
  private links = new Set<(up: boolean, problem?: ErrorInfo) => void>();
  private backoff = 250;
  private up = false;
  private closed = false;

  constructor(private readonly url: string) {
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.backoff = 250;
      this.setLink(true);
      for (const m of this.queue.splice(0)) ws.send(m);
    };
    ws.onmessage = (ev) => this.onMessage(String(ev.data));
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      const problem: ErrorInfo = opened
        ? {
            code: 'ENGINE_NOT_RUNNING',
            message: 'the connection to the dashboard server closed',
            hint: 'Reconnecting… If `berth dashboard` was stopped, run it again and open the new address.',
          }
        : {
            code: 'UNAUTHORIZED',
            message: 'the dashboard server refused or did not answer',
            hint: 'Open the address `berth dashboard` printed; each start makes a new one.',
          };
      for (const p of this.pending.values()) p.reject(new CallError(problem));
      this.pending.clear();
      this.setLink(false, problem);
      if (this.closed) return;
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 5000);
    };
  }

  private setLink(up: boolean, problem?: ErrorInfo): void {
    if (this.up === up && up) return;
    this.up = up;
    for (const cb of this.links) cb(up, problem);
  }

  private onMessage(text: string): void {
    let msg: { id?: number | null; result?: unknown; error?: ErrorInfo; event?: string; data?: unknown };
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof msg.event === 'string') {
      for (const cb of this.events) cb(msg.event, msg.data);
      return;
    }
    if (typeof msg.id !== 'number') return;
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.error) p.reject(new CallError(msg.error));
    else p.resolve(msg.result);
  }

  call(method: string, params: unknown): Promise<unknown> {
    const id = this.nextId++;
    const line = JSON.stringify({ id, method, params: params ?? {} });
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(line);
      else this.queue.push(line);
    });
  }

  onEvent(cb: (event: string, data: unknown) => void): () => void {
    this.events.add(cb);
    return () => this.events.delete(cb);
  }

  onLink(cb: (up: boolean, problem?: ErrorInfo) => void): () => void {
    this.links.add(cb);
    return () => this.links.delete(cb);
  }

  close(): void {
    this.closed = true;
    this.ws?.close();
  }
}

/** The dashboard's WebSocket address for this page, with the token from the address (kept for reloads). */
export function dashboardSocketUrl(loc: Location, storage: Storage): string {
  const m = /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(loc.hash);
  if (m) storage.setItem('berth.token', m[1]!);
  const token = m?.[1] ?? storage.getItem('berth.token') ?? '';
  const proto = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${loc.host}/ws?token=${encodeURIComponent(token)}`;
}
