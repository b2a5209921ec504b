import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import type { ControlClient } from '../client/control-client.js';
import { EngineGateway } from '../client/engine-gateway.js';
import { toErrorInfo, type ErrorInfo } from '../contract/errors.js';
import type { InstancePaths } from '../base/paths.js';
import type { VmState } from '../contract/vm-states.js';
import type { ElectronLike, WindowLike } from './electron-like.js';
import { berthArgv, connectOrStartEngine, type BerthCommand } from './engine-process.js';
import { runMenuAction, trayMenu, type MenuItemModel } from './menu-model.js';
import { terminalLaunch, type TerminalLaunch } from './terminal-command.js';
import { trayView, type TrayIcon } from './tray-state.js';
import { restoreBounds, saveBounds, type KeyValueStore } from './window-state.js';

export const IPC_CALL = 'berth:call';
export const IPC_EVENT = 'berth:event';
/** The system's folder picker, for the File sharing screen (app/preload/bridge.ts). */
export const IPC_PICK_FOLDER = 'berth:pickFolder';

export interface DesktopDeps {
  electron: ElectronLike;
  /** electron-store (window bounds, UI preferences); engine settings stay in the engine. */
  store: KeyValueStore;
  paths: InstancePaths;
  berth: BerthCommand;
  rendererIndex: string;
  preload: string;
  icons: Record<TrayIcon, string>;
  platform?: NodeJS.Platform;
  /** Reach the engine (default: connect, starting `berth daemon` when none runs). */
  connect?: (spawn: boolean) => Promise<ControlClient>;
  /** Start the first terminal command that exists (default: spawn them in turn). */
  launchTerminal?: (candidates: TerminalLaunch[]) => Promise<void>;
}

type Screen = 'home' | 'settings' | 'troubleshoot';

export interface DesktopApp {
  gateway?: EngineGateway;
  /** The tray menu as data (what the tests look at). */
  menu(): MenuItemModel[];
  window(): WindowLike | undefined;
  showWindow(screen: Screen): void;
  quit(stopVm: boolean): Promise<void>;
}

/**
 * Electron main, as plain wiring around an injected `electron` module:
 * single-instance lock, the engine (started if needed, never owned: the
 * VM outlives the app), one window, the tray following the VM state, the
 * contract to the renderer over IPC, and quitting through the engine.
 */
export function startDesktopApp(d: DesktopDeps): DesktopApp {
  const { app, BrowserWindow, Tray, Menu, nativeImage, ipcMain, shell, dialog, screen } = d.electron;
  const platform = d.platform ?? process.platform;
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return { menu: () => [], window: () => undefined, showWindow: () => undefined, quit: async () => undefined };
  }

  const connect = d.connect ?? ((_spawn: boolean) => connectOrStartEngine(d.paths, d.berth, true));
  const gateway = new EngineGateway({ paths: d.paths, connect });
  const indexUrl = pathToFileURL(d.rendererIndex).href;
  let win: WindowLike | undefined;
  let tray: InstanceType<ElectronLike['Tray']> | undefined;
  let quitting = false;
  let vm: { state?: VmState; phase?: string; error?: ErrorInfo } = {};
  let engine: 'up' | 'down' | 'connecting' = 'connecting';

  const openAtLogin = () => app.getLoginItemSettings().openAtLogin;
  const view = () => trayView({ ...vm, engine });
  const menu = () => trayMenu(view(), vm.state, { openAtLogin: openAtLogin() });

  const report = (err: unknown, what: string) => {
    const e = toErrorInfo(err);
    void dialog.showMessageBox({ type: 'error', title: 'Berth', message: e.message, detail: `${e.hint}\n\n(${e.code}, ${what})` });
  };

  const toTemplate = (items: MenuItemModel[]): unknown[] =>
    items.map((m) =>
      m.type === 'separator'
        ? { type: 'separator' }
        : {
            label: m.label,
            enabled: m.enabled ?? true,
            ...(m.type === 'checkbox' ? { type: 'checkbox', checked: !!m.checked } : {}),
            ...(m.submenu ? { submenu: toTemplate(m.submenu) } : {}),
            ...(m.action ? { click: () => void runMenuAction(m.action!, actions) } : {}),
          },
    );

  const updateTray = () => {
    if (!tray) return;
    const v = view();
    tray.setImage(nativeImage.createFromPath(d.icons[v.icon]));
    tray.setToolTip(v.tooltip);
    tray.setContextMenu(Menu.buildFromTemplate(toTemplate(menu())));
  };

  gateway.on('event', (event, data) => {
    if (event === 'vm.state') {
      const s = data as { state: VmState; error?: ErrorInfo };
      vm = { state: s.state, ...(s.error ? { error: s.error } : {}) };
      updateTray();
    } else if (event === 'vm.progress') {
      vm = { ...vm, phase: (data as { phase: string }).phase };
      updateTray();
    }
    if (win && !win.isDestroyed()) win.webContents.send(IPC_EVENT, event, data);
  });
  gateway.on('link', (up) => {
    engine = up ? 'up' : 'down';
    updateTray();
  });

  // The renderer's only door: contract calls, from our own page only.
  ipcMain.handle(IPC_CALL, async (event: { senderFrame?: { url: string } | null }, method: unknown, params: unknown) => {
    const from = event.senderFrame?.url ?? '';
    if (from.split('#')[0] !== indexUrl) {
      return { ok: false, error: { code: 'UNAUTHORIZED', message: 'calls come only from the Berth window', hint: 'This page is not the Berth UI.' } };
    }
    try {
      return { ok: true, result: await gateway.call(method as string, params) };
    } catch (err) {
      return { ok: false, error: toErrorInfo(err) };
    }
  });

  // The folder picker: a path the user chose in the system's dialog (the engine still checks it).
  ipcMain.handle(IPC_PICK_FOLDER, async (event: { senderFrame?: { url: string } | null }) => {
    if ((event.senderFrame?.url ?? '').split('#')[0] !== indexUrl) return null;
    const r = await dialog.showOpenDialog(win, { title: 'Share a folder with the VM', properties: ['openDirectory', 'createDirectory'] });
    return r.canceled ? null : (r.filePaths[0] ?? null);
  });

  const createWindow = (screenId: Screen, show: boolean) => {
    const bounds = restoreBounds(
      d.store,
      screen.getAllDisplays().map((x) => x.bounds),
    );
    const w = new BrowserWindow({
      ...bounds,
      minWidth: 760,
      minHeight: 520,
      show: false,
      title: 'Berth',
      webPreferences: { preload: d.preload, contextIsolation: true, nodeIntegration: false, sandbox: true, webSecurity: true, spellcheck: false },
    });
    win = w;
    // Links (a container's port) open in the user's browser; the window never navigates away.
    w.webContents.setWindowOpenHandler(({ url }: { url: string }) => {
      if (/^https?:\/\//.test(url)) void shell.openExternal(url);
      return { action: 'deny' };
    });
    w.webContents.on('will-navigate', (e: { preventDefault(): void }, url: string) => {
      if (url.split('#')[0] !== indexUrl) e.preventDefault();
    });
    // A reload or a crashed renderer leaves no log stream or terminal behind.
    w.webContents.on('did-start-loading', () => void gateway.releaseStreams());
    w.webContents.on('render-process-gone', () => void gateway.releaseStreams());
    w.on('close', () => saveBounds(d.store, w.getBounds()));
    w.on('closed', () => {
      if (win === w) win = undefined;
      void gateway.releaseStreams();
    });
    if (show) w.once('ready-to-show', () => w.show());
    void w.loadFile(d.rendererIndex, { hash: `/${screenId}` });
  };

  const showWindow = (screenId: Screen) => {
    if (!win || win.isDestroyed()) return createWindow(screenId, true);
    void win.webContents.executeJavaScript(`location.hash = ${JSON.stringify(`#/${screenId}`)}`);
    if (win.isMinimized()) win.restore();
    win.show();
    win.focus();
  };

  const launchTerminal =
    d.launchTerminal ??
    (async (candidates: TerminalLaunch[]) => {
      for (const c of candidates) {
        const ok = await new Promise<boolean>((resolve) => {
          const child = spawn(c.command, c.args, { detached: true, stdio: 'ignore', env: d.berth.env });
          child.once('error', () => resolve(false));
          child.once('spawn', () => (child.unref(), resolve(true)));
        });
        if (ok) return;
      }
      throw Object.assign(new Error('no terminal program found'), {
        code: 'UNSUPPORTED_HOST',
        hint: 'Install a terminal emulator, or run `berth shell` in yours.',
      });
    });

  const quit = async (stopVm: boolean) => {
    try {
      await gateway.call('engine.shutdown', { stopVm });
    } catch (err) {
      // No engine to ask: nothing runs that would need stopping.
      if (toErrorInfo(err).code !== 'ENGINE_NOT_RUNNING') report(err, 'quit');
    }
    quitting = true;
    await gateway.close();
    app.quit();
  };

  const actions = {
    call: (m: 'vm.start' | 'vm.stop' | 'vm.restart', p: Record<string, never>) => gateway.call(m, p),
    showWindow,
    openTerminal: () => launchTerminal(terminalLaunch(platform, berthArgv(d.berth, d.paths.name), d.berth.env)),
    openAtLogin,
    setOpenAtLogin: (on: boolean) => {
      app.setLoginItemSettings({ openAtLogin: on, openAsHidden: true });
      d.store.set('prefs.openAtLogin', on);
      updateTray();
    },
    quit,
    report,
  };

  app.on('second-instance', () => showWindow('home'));
  app.on('activate', () => showWindow('home'));
  // Closing the window keeps Berth in the tray; only Quit ends the app.
  app.on('window-all-closed', () => undefined);
  app.on('before-quit', () => {
    quitting = true;
  });

  void app.whenReady().then(async () => {
    tray = new Tray(nativeImage.createFromPath(d.icons.stopped));
    tray.on('click', () => showWindow('home'));
    updateTray();
    const atLogin = app.getLoginItemSettings().wasOpenedAtLogin;
    createWindow('home', !atLogin);
    try {
      const s = await gateway.call('vm.status', {});
      // Events that came meanwhile are newer than this answer.
      if (vm.state === undefined) vm = { state: (s as { state: VmState }).state };
      engine = gateway.connected ? 'up' : 'down';
    } catch (err) {
      engine = 'down';
      report(err, 'connecting to the engine');
    }
    updateTray();
  });

  return { gateway, menu, window: () => win, showWindow, quit: (stopVm) => (quitting ? Promise.resolve() : quit(stopVm)) };
}
