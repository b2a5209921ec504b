import type { ErrorInfo } from '../../../contract/errors';
import { CallError, type Transport } from './transport';

/** What app/preload puts on `window.berth` (structured-clone values only). */
export interface PreloadBridge {
  call(method: string, params: unknown): Promise<{ ok: true; result: unknown } | { ok: false; error: ErrorInfo }>;
  onEvent(cb: (event: string, data: unknown) => void): () => void;
  /** The system's folder picker (absent from older preloads). */
  pickFolder?(): Promise<string | null>;
}

/** Electron's transport: the contract through the preload bridge to main. */
export class PreloadTransport implements Transport {
  readonly pickFolder?: () => Promise<string | null>;

  constructor(private readonly bridge: PreloadBridge) {
    if (bridge.pickFolder) this.pickFolder = () => bridge.pickFolder!();
  }

  async call(method: string, params: unknown): Promise<unknown> {
    const r = await this.bridge.call(method, params ?? {});
    if (!r.ok) throw new CallError(r.error);
    return r.result;
  }

  onEvent(cb: (event: string, data: unknown) => void): () => void {
    return this.bridge.onEvent(cb);
  }

  onLink(cb: (up: boolean) => void): () => void {
    cb(true); // main is always there while the window is
    return () => undefined;
  }
}
