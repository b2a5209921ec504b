import { createContext, useContext, useEffect, useRef } from 'react';
import type { EventData, EventName, MethodName, Params, Result } from '../../contract/contract';
import { CallError, type Transport } from './transport/transport';

export { CallError };

/** Stream events: their id field, so data can reach the view that opened the stream. */
const STREAM_KEYS: Partial<Record<EventName, 'stream' | 'session'>> = {
  'containers.logs.data': 'stream',
  'containers.logs.end': 'stream',
  'containers.stats.data': 'stream',
  'containers.stats.end': 'stream',
  'terminal.output': 'session',
  'terminal.exit': 'session',
};

type StreamHandler = (event: EventName, data: unknown) => void;

/**
 * The typed contract for the UI, over whichever transport it got. Stream
 * events that arrive before their view knows the stream's id (the engine
 * may send the first output before the reply) are kept a few seconds and
 * handed over when the view registers.
 */
export class Api {
  private handlers = new Map<string, StreamHandler>();
  private early = new Map<string, { at: number; events: [EventName, unknown][] }>();
  private listeners = new Set<(event: EventName, data: unknown) => void>();

  constructor(readonly transport: Transport) {
    transport.onEvent((event, data) => this.dispatch(event as EventName, data));
  }

  call<M extends MethodName>(method: M, params: Params<M>): Promise<Result<M>> {
    return this.transport.call(method, params).then(
      (r) => r as Result<M>,
      (e) => {
        throw CallError.from(e);
      },
    );
  }

  on<E extends EventName>(event: E, cb: (data: EventData<E>) => void): () => void {
    const l = (e: EventName, d: unknown) => {
      if (e === event) cb(d as EventData<E>);
    };
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  onAny(cb: (event: EventName, data: unknown) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** Receive the events of one stream (log stream or terminal session). */
  stream(id: string, handler: StreamHandler): () => void {
    this.handlers.set(id, handler);
    const early = this.early.get(id);
    this.early.delete(id);
    for (const [e, d] of early?.events ?? []) handler(e, d);
    return () => this.handlers.delete(id);
  }

  private dispatch(event: EventName, data: unknown): void {
    const key = STREAM_KEYS[event];
    if (key) {
      const id = (data as Record<string, string>)[key]!;
      const h = this.handlers.get(id);
      if (h) h(event, data);
      else this.keepEarly(id, event, data);
      return;
    }
    for (const l of [...this.listeners]) l(event, data);
  }

  private keepEarly(id: string, event: EventName, data: unknown): void {
    const now = Date.now();
    for (const [k, v] of this.early) if (now - v.at > 5000) this.early.delete(k);
    if (this.early.size > 50) return;
    const e = this.early.get(id) ?? { at: now, events: [] };
    if (e.events.length < 2000) e.events.push([event, data]);
    this.early.set(id, e);
  }
}

export const ApiContext = createContext<Api | null>(null);

export function useApi(): Api {
  const api = useContext(ApiContext);
  if (!api) throw new Error('no Api in context');
  return api;
}

/** Subscribe to a contract event for the life of a component. */
export function useEvent<E extends EventName>(event: E, cb: (data: EventData<E>) => void): void {
  const api = useApi();
  const ref = useRef(cb);
  ref.current = cb;
  useEffect(() => api.on(event, (d) => ref.current(d)), [api, event]);
}
