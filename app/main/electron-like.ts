/**
 * The part of the `electron` module main uses, as structural types, so the
 * wiring runs in tests against a small fake (the Electron binary cannot run
 * everywhere the tests do). main.ts passes the real module.
 */

export interface WebContentsLike {
  send(channel: string, ...args: unknown[]): void;
  on(event: string, listener: (...args: any[]) => void): unknown;
  setWindowOpenHandler(handler: (details: { url: string }) => { action: 'deny' | 'allow' }): void;
  executeJavaScript(code: string): Promise<unknown>;
}

export interface WindowLike {
  webContents: WebContentsLike;
  loadFile(file: string, options?: { hash?: string }): Promise<void>;
  on(event: string, listener: (...args: any[]) => void): unknown;
  once(event: string, listener: (...args: any[]) => void): unknown;
  show(): void;
  focus(): void;
  restore(): void;
  isMinimized(): boolean;
  isDestroyed(): boolean;
  getBounds(): { x: number; y: number; width: number; height: number };
}

export interface TrayLike {
  setImage(image: unknown): void;
  setToolTip(tip: string): void;
  setContextMenu(menu: unknown): void;
  on(event: string, listener: (...args: any[]) => void): unknown;
}

export interface ElectronLike {
  app: {
    requestSingleInstanceLock(): boolean;
    quit(): void;
    on(event: string, listener: (...args: any[]) => void): unknown;
    whenReady(): Promise<void>;
    getLoginItemSettings(): { openAtLogin: boolean; wasOpenedAtLogin?: boolean };
    setLoginItemSettings(settings: { openAtLogin: boolean; openAsHidden?: boolean }): void;
  };
  BrowserWindow: new (options: any) => WindowLike;
  Tray: new (image: any) => TrayLike;
  Menu: { buildFromTemplate(template: any[]): unknown };
  nativeImage: { createFromPath(path: string): unknown };
  ipcMain: { handle(channel: string, listener: (event: any, ...args: any[]) => Promise<unknown>): void };
  shell: { openExternal(url: string): Promise<void> };
  dialog: {
    showMessageBox(options: { type?: string; title?: string; message: string; detail?: string }): Promise<unknown>;
    showOpenDialog(window: WindowLike | undefined, options: { title?: string; properties: string[] }): Promise<{ canceled: boolean; filePaths: string[] }>;
  };
  screen: { getAllDisplays(): { bounds: { x: number; y: number; width: number; height: number } }[] };
}
