/**
 * A small fake of the `electron` module, for main's and preload's unit
 * tests (the Electron binary cannot be downloaded here): it records what
 * main does with windows, the tray, menus, IPC and the app, and lets a test
 * click menu items and call IPC handlers.
 */
import { EventEmitter } from 'node:events';

export interface MenuTemplateItem {
  label?: string;
  type?: string;
  enabled?: boolean;
  checked?: boolean;
  click?: () => void;
  submenu?: MenuTemplateItem[];
}

export class FakeWebContents extends EventEmitter {
  sent: [string, ...unknown[]][] = [];
  executed: string[] = [];
  openHandler?: (d: { url: string }) => { action: string };
  send(channel: string, ...args: unknown[]) {
    this.sent.push([channel, ...args]);
  }
  setWindowOpenHandler(h: (d: { url: string }) => { action: 'deny' | 'allow' }) {
    this.openHandler = h;
  }
  async executeJavaScript(code: string) {
    this.executed.push(code);
    return undefined;
  }
}

export class FakeWindow extends EventEmitter {
  static all: FakeWindow[] = [];
  webContents = new FakeWebContents();
  loaded: { file: string; hash?: string }[] = [];
  shown = false;
  destroyed = false;
  bounds = { x: 10, y: 20, width: 1000, height: 700 };
  constructor(readonly options: Record<string, any>) {
    super();
    if (options.width) this.bounds = { x: options.x ?? 0, y: options.y ?? 0, width: options.width, height: options.height };
    FakeWindow.all.push(this);
  }
  async loadFile(file: string, options?: { hash?: string }) {
    this.loaded.push({ file, hash: options?.hash });
    setImmediate(() => this.emit('ready-to-show'));
  }
  show() {
    this.shown = true;
  }
  focus() {}
  restore() {}
  isMinimized() {
    return false;
  }
  isDestroyed() {
    return this.destroyed;
  }
  getBounds() {
    return { ...this.bounds };
  }
  /** What closing the window does in Electron: close, then closed. */
  close() {
    this.emit('close', { preventDefault() {} });
    this.destroyed = true;
    this.emit('closed');
  }
}

export class FakeTray extends EventEmitter {
  static last?: FakeTray;
  image: unknown;
  tooltip = '';
  menu?: { template: MenuTemplateItem[] };
  constructor(image: unknown) {
    super();
    this.image = image;
    FakeTray.last = this;
  }
  setImage(i: unknown) {
    this.image = i;
  }
  setToolTip(t: string) {
    this.tooltip = t;
  }
  setContextMenu(m: { template: MenuTemplateItem[] }) {
    this.menu = m;
  }
  /** Click the menu item with this label (submenus searched too). */
  click(label: string) {
    const find = (items: MenuTemplateItem[]): MenuTemplateItem | undefined => {
      for (const i of items) {
        if (i.label === label) return i;
        const s = i.submenu && find(i.submenu);
        if (s) return s;
      }
      return undefined;
    };
    const item = find(this.menu?.template ?? []);
    if (!item?.click) throw new Error(`no clickable menu item "${label}"`);
    if (item.enabled === false) throw new Error(`menu item "${label}" is disabled`);
    item.click();
  }
}

export function fakeElectron(o: { lock?: boolean; wasOpenedAtLogin?: boolean } = {}) {
  const app = new EventEmitter() as EventEmitter & Record<string, any>;
  const login = { openAtLogin: false, wasOpenedAtLogin: !!o.wasOpenedAtLogin };
  let resolveReady!: () => void;
  const ready = new Promise<void>((r) => (resolveReady = r));
  const handlers = new Map<string, (event: unknown, ...args: unknown[]) => Promise<unknown>>();
  const dialogs: { message: string; detail?: string }[] = [];
  const opened: string[] = [];
  /** What the folder picker answers next (null: the user cancels), and the pickers shown. */
  const picker = { next: null as string | null, shown: [] as { title?: string; properties: string[] }[] };
  Object.assign(app, {
    quitCalls: 0,
    requestSingleInstanceLock: () => o.lock ?? true,
    quit() {
      app.quitCalls++;
    },
    whenReady: () => ready,
    getLoginItemSettings: () => ({ ...login }),
    setLoginItemSettings: (s: { openAtLogin: boolean }) => {
      login.openAtLogin = s.openAtLogin;
    },
  });
  FakeWindow.all = [];
  FakeTray.last = undefined;
  return {
    electron: {
      app,
      BrowserWindow: FakeWindow,
      Tray: FakeTray,
      Menu: { buildFromTemplate: (template: MenuTemplateItem[]) => ({ template }) },
      nativeImage: { createFromPath: (p: string) => ({ path: p }) },
      ipcMain: {
        handle: (channel: string, h: (event: unknown, ...args: unknown[]) => Promise<unknown>) => {
          handlers.set(channel, h);
        },
      },
      shell: {
        openExternal: async (url: string) => {
          opened.push(url);
        },
      },
      dialog: {
        showMessageBox: async (m: { message: string; detail?: string }) => {
          dialogs.push(m);
          return { response: 0 };
        },
        showOpenDialog: async (_w: unknown, opts: { title?: string; properties: string[] }) => {
          picker.shown.push(opts);
          return picker.next === null ? { canceled: true, filePaths: [] } : { canceled: false, filePaths: [picker.next] };
        },
      },
      screen: { getAllDisplays: () => [{ bounds: { x: 0, y: 0, width: 1920, height: 1080 } }] },
    },
    app,
    ready: () => {
      resolveReady();
      app.emit('ready');
    },
    handlers,
    dialogs,
    opened,
    picker,
  };
}

/** A fake ipcRenderer and contextBridge, for the preload surface. */
export function fakePreloadElectron() {
  const exposed = new Map<string, unknown>();
  const invoked: unknown[][] = [];
  const listeners = new Map<string, Set<(e: unknown, ...a: unknown[]) => void>>();
  return {
    exposed,
    invoked,
    listeners,
    contextBridge: { exposeInMainWorld: (k: string, v: unknown) => void exposed.set(k, v) },
    ipcRenderer: {
      invoke: async (channel: string, ...args: unknown[]) => {
        invoked.push([channel, ...args]);
        return { ok: true, result: { echoed: args } };
      },
      on: (channel: string, l: (e: unknown, ...a: unknown[]) => void) => {
        const s = listeners.get(channel) ?? new Set();
        s.add(l);
        listeners.set(channel, s);
      },
      removeListener: (channel: string, l: (e: unknown, ...a: unknown[]) => void) => {
        listeners.get(channel)?.delete(l);
      },
      emit(channel: string, ...args: unknown[]) {
        for (const l of listeners.get(channel) ?? []) l({ sender: 'main' }, ...args);
      },
    },
  };
}
