/**
 * What the preload script puts in the page: `window.berth` with `call`
 * (one contract call, answered as {ok, result} or {ok: false, error}) and
 * `onEvent` (the contract's events), and `pickFolder` (the system's folder
 * picker, for a shared folder). Nothing else: no ipcRenderer, no Node.
 * Main checks every call against the contract.
 */
export const IPC_CALL = 'berth:call';
export const IPC_EVENT = 'berth:event';
export const IPC_PICK_FOLDER = 'berth:pickFolder';

export interface ContextBridgeLike {
  exposeInMainWorld(key: string, api: unknown): void;
}

export interface IpcRendererLike {
  invoke(channel: string, ...args: unknown[]): Promise<unknown>;
  on(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
  removeListener(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
}

type Envelope = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string; hint: string } };

export function berthBridge(ipc: IpcRendererLike) {
  return Object.freeze({
    call(method: unknown, params: unknown): Promise<Envelope> {
      if (typeof method !== 'string' || method.length > 64) {
        return Promise.resolve({
          ok: false,
          error: { code: 'BAD_REQUEST', message: 'the method must be a contract method name', hint: 'See app/contract/contract.ts.' },
        });
      }
      return ipc.invoke(IPC_CALL, method, params ?? {}) as Promise<Envelope>;
    },
    /** The folder the user chose in the system's picker, or null when cancelled. */
    async pickFolder(): Promise<string | null> {
      const r = await ipc.invoke(IPC_PICK_FOLDER);
      return typeof r === 'string' ? r : null;
    },
    onEvent(cb: (event: string, data: unknown) => void): () => void {
      if (typeof cb !== 'function') throw new TypeError('onEvent needs a function');
      const listener = (_e: unknown, event: unknown, data: unknown) => cb(event as string, data);
      ipc.on(IPC_EVENT, listener);
      return () => void ipc.removeListener(IPC_EVENT, listener);
    },
  });
}

export function exposeBerth(contextBridge: ContextBridgeLike, ipc: IpcRendererLike): void {
  contextBridge.exposeInMainWorld('berth', berthBridge(ipc));
}
