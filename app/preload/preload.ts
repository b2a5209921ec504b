// Electron preload (sandboxed; built by Vite into dist/electron/preload.cjs).
import { contextBridge, ipcRenderer } from 'electron';
import { exposeBerth } from './bridge.js';

exposeBerth(contextBridge, ipcRenderer);
