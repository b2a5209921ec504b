/**
 * The built Electron main (dist/electron/main.cjs, what Electron would
 * load) runs under plain Node with a fake `electron` module swapped in:
 * it loads (bundling is right, electron-store works), starts a real
 * `berth daemon` for its instance, shows the engine's state in the tray,
 * and Quit asks that engine to shut down. The real Electron binary cannot
 * be downloaded here; this is as close as it gets.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { needNow, test } from '../helpers/prereq-gate.js';
import { ROOT } from '../helpers/run.js';
import { shortTempDir } from '../helpers/temp.js';

const FAKE_ELECTRON = String.raw`
const Module = require('module');
const { EventEmitter } = require('events');
const fs = require('fs');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
let tray;
const find = (items, label) => {
  for (const i of items || []) {
    if (i.label === label) return i;
    const s = find(i.submenu, label);
    if (s) return s;
  }
};
const app = Object.assign(new EventEmitter(), {
  isPackaged: false,
  getAppPath: () => process.env.FAKE_APP_PATH,
  getPath: () => process.env.FAKE_USER_DATA,
  getVersion: () => '0.0.0',
  getName: () => 'Berth',
  requestSingleInstanceLock: () => true,
  whenReady: () => Promise.resolve(),
  getLoginItemSettings: () => ({ openAtLogin: false }),
  setLoginItemSettings() {},
  quit() { out({ quit: true }); setTimeout(() => process.exit(0), 50); },
});
class Tray extends EventEmitter {
  constructor() { super(); tray = this; }
  setImage(i) { out({ trayImage: i.path }); }
  setToolTip(t) {
    out({ tooltip: t });
    if (t === 'Berth: stopped' && !this.quitting) {
      this.quitting = true;
      setTimeout(() => find(tray.menu.template, 'Quit and Stop the VM').click(), 100);
    }
  }
  setContextMenu(m) { this.menu = m; }
}
class WebContents extends EventEmitter { send() {} setWindowOpenHandler() {} executeJavaScript() { return Promise.resolve(); } }
class BrowserWindow extends EventEmitter {
  constructor(o) { super(); out({ webPreferences: o.webPreferences }); this.webContents = new WebContents(); }
  loadFile(f) { out({ loadFile: f, exists: fs.existsSync(f) }); return Promise.resolve(); }
  show() {} focus() {} restore() {} isMinimized() { return false; } isDestroyed() { return false; }
  getBounds() { return { x: 0, y: 0, width: 800, height: 600 }; }
}
const electron = {
  app, Tray, BrowserWindow,
  Menu: { buildFromTemplate: (template) => ({ template }) },
  nativeImage: { createFromPath: (p) => ({ path: p }) },
  ipcMain: { handle: (ch) => out({ ipcHandle: ch }), on() {} },
  shell: { openExternal: async () => {}, openPath: async () => '' },
  dialog: { showMessageBox: async (m) => out({ dialog: m }) },
  screen: { getAllDisplays: () => [{ bounds: { x: 0, y: 0, width: 1920, height: 1080 } }] },
};
const load = Module._load;
Module._load = function (request, ...rest) {
  if (request === 'electron') return electron;
  return load.call(this, request, ...rest);
};
`;

test('dist/electron/main.cjs loads, starts a real engine, shows its state in the tray, and Quit shuts the engine down', { timeout: 120_000 }, async (t) => {
  const bin = path.join(ROOT, 'dist', 'app', 'cli', 'main.js');
  if (needNow(t, fs.existsSync(bin) ? undefined : 'dist/app/cli/main.js is missing (npm run build): this test runs the real `berth daemon`')) return;
  const main = path.join(ROOT, 'dist', 'electron', 'main.cjs');
  const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--config', path.join(ROOT, 'app/main/vite.config.ts')], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `vite build of main failed:\n${r.stderr}`);
  const tmp = shortTempDir('dbn');
  try {
    const hook = path.join(tmp.dir, 'fake-electron.cjs');
    fs.writeFileSync(hook, FAKE_ELECTRON);
    const home = path.join(tmp.dir, 'h');
    const child = spawn(process.execPath, ['-r', hook, main], {
      cwd: ROOT,
      env: { ...process.env, BERTH_HOME: home, FAKE_APP_PATH: ROOT, FAKE_USER_DATA: path.join(tmp.dir, 'userdata') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('exit', (c) => (clearTimeout(timer), resolve(c)));
    });
    const lines = stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(code, 0, `main exited ${code}\n${stdout}\n${stderr}`);
    assert.ok(lines.some((l) => l.ipcHandle === 'berth:call'));
    const prefs = lines.find((l) => l.webPreferences)!.webPreferences as Record<string, unknown>;
    assert.equal(prefs.contextIsolation, true);
    assert.equal(prefs.sandbox, true);
    assert.equal(prefs.nodeIntegration, false);
    assert.equal(prefs.preload, path.join(ROOT, 'dist', 'electron', 'preload.cjs'));
    assert.equal(lines.find((l) => l.loadFile)!.loadFile, path.join(ROOT, 'dist', 'renderer', 'index.html'));
    assert.ok(
      lines.some((l) => l.tooltip === 'Berth: stopped'),
      `the tray showed the engine's state:\n${stdout}`,
    );
    assert.ok(lines.some((l) => l.quit === true));
    assert.ok(fs.existsSync(path.join(ROOT, 'app', 'main', 'icons', 'tray-stopped.png')), 'the tray icon exists');
    // The engine it started was asked to shut down, and does.
    const sock = path.join(home, 'default', 'control.sock');
    const deadline = Date.now() + 20_000;
    while (fs.existsSync(sock) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    assert.equal(fs.existsSync(sock), false, 'the engine shut down after Quit');
    assert.match(fs.readFileSync(path.join(home, 'default', 'engine.log'), 'utf8'), /engine shutting down/);
  } finally {
    tmp.cleanup();
  }
});
