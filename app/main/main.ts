/**
 * Electron main's entry (built by Vite into dist/electron/main.cjs). Thin:
 * it hands the real `electron` module, electron-store and the app's paths
 * to desktop-app.ts, where the logic lives and is tested.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as electron from 'electron';
import Store from 'electron-store';
import { instancePaths } from '../base/paths.js';
import { startDesktopApp } from './desktop-app.js';
import type { ElectronLike } from './electron-like.js';

const root = electron.app.getAppPath();
const resources = electron.app.isPackaged ? process.resourcesPath : path.join(root, 'app', 'main');
const icon = (name: string) => path.join(resources, 'icons', `tray-${name}.png`);

/** A packaged app carries the guest image among its resources (forge.config.ts): the engine boots that one. */
function bundledImage(): Record<string, string> {
  if (!electron.app.isPackaged || process.env.BERTH_IMAGE_DIR) return {};
  const dir = fs
    .readdirSync(process.resourcesPath)
    .map((d) => path.join(process.resourcesPath, d))
    .find((d) => fs.existsSync(path.join(d, 'manifest.json')));
  return dir ? { BERTH_IMAGE_DIR: dir } : {};
}

startDesktopApp({
  electron: electron as unknown as ElectronLike,
  store: new Store({ name: 'berth-desktop' }) as unknown as { get(k: string): unknown; set(k: string, v: unknown): void },
  paths: instancePaths(process.env.BERTH_INSTANCE || 'default'),
  // The engine runs on Electron's own Node (ELECTRON_RUN_AS_NODE): no separate Node install.
  berth: { execPath: process.execPath, script: path.join(root, 'bin', 'berth.js'), env: { ...process.env, ...bundledImage(), ELECTRON_RUN_AS_NODE: '1' } },
  rendererIndex: path.join(root, 'dist', 'renderer', 'index.html'),
  preload: path.join(root, 'dist', 'electron', 'preload.cjs'),
  icons: { stopped: icon('stopped'), starting: icon('starting'), running: icon('running'), error: icon('error') },
});
