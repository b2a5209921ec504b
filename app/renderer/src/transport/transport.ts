import type { ErrorInfo } from '../../../contract/errors';

/**
 * How the UI reaches the engine's contract. Two implementations, the
 * preload bridge (Electron) and the dashboard's WebSocket; the UI only
 * ever sees this interface.
 */
export interface Transport {
  /** One contract call; rejects with a CallError (code, message, hint). */
  call(method: string, params: unknown): Promise<unknown>;
  /** Every contract event; returns the unsubscribe function. */
  onEvent(cb: (event: string, data: unknown) => void): () => void;
  /** Whether the transport itself is up (the page can reach the engine side); returns the unsubscribe function. */
  onLink(cb: (up: boolean, problem?: ErrorInfo) => void): () => void;
  /**
   * The system's folder picker, where there is one (Electron): the chosen
   * folder, or null when the user cancelled. A browser page has none (it
   * cannot learn host paths) and types the path.
   */
  pickFolder?(): Promise<string | null>;
}

/** A contract error as the UI shows it: code, one-line message, hint. */
export class CallError extends Error {
  readonly code: string;
  readonly hint: string;
  readonly details?: string;

  constructor(info: { code: string; message: string; hint: string; details?: string }) {
    super(info.message);
    this.name = 'CallError';
    this.code = info.code;
    this.hint = info.hint;
    if (info.details) this.details = info.details;
  }

  static from(err: unknown): CallError {
    if (err instanceof CallError) return err;
    const e = err as Partial<ErrorInfo> | undefined;
    if (e && typeof e.code === 'string' && typeof e.message === 'string') {
      return new CallError({ code: e.code, message: e.message, hint: typeof e.hint === 'string' ? e.hint : '' });
    }
    return new CallError({ code: 'INTERNAL', message: err instanceof Error ? err.message : String(err), hint: 'This is a bug in Berth; please report it.' });
  }
}
