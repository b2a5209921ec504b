import os from 'node:os';
import path from 'node:path';
import { BerthError } from './errors.js';

/** Instance names become folder names, socket names and docker context names. */
export const INSTANCE_NAME_RE = /^[a-z0-9][a-z0-9-]{0,30}$/;

export function validateInstanceName(name: string): string {
  if (!INSTANCE_NAME_RE.test(name)) {
    throw new BerthError(
      'INVALID_INSTANCE_NAME',
      `"${name}" is not a valid instance name`,
      'Use 1-31 lowercase letters, digits and dashes, starting with a letter or digit (for example "default" or "work-2").',
    );
  }
  return name;
}

/** ~/.berth, or $BERTH_HOME. Holds one folder per instance. */
export function berthHome(): string {
  return process.env.BERTH_HOME || path.join(os.homedir(), '.berth');
}

/** Where built guest images are cached (outside any repo). */
export function cacheDir(): string {
  if (process.env.BERTH_CACHE) return process.env.BERTH_CACHE;
  if (process.platform === 'darwin') return path.join(os.homedir(), 'Library', 'Caches', 'berth');
  if (process.platform === 'win32') {
    return path.join(process.env.LOCALAPPDATA || path.join(os.homedir(), 'AppData', 'Local'), 'berth', 'cache');
  }
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'berth');
}

/** The longest unix socket path the OS takes (sun_path minus the NUL). */
const MAX_SOCKET_PATH = process.platform === 'linux' ? 107 : 103;

export interface InstancePaths {
  name: string;
  dir: string;
  settings: string;
  state: string;
  lock: string;
  controlSocket: string;
  token: string;
  dockerSocket: string;
  keysDir: string;
  clientKey: string;
  hostKey: string;
  configDir: string;
  configDisk: string;
  dataDisk: string;
  serialLog: string;
  engineLog: string;
  daemonOut: string;
  qemuPid: string;
  qmpSocket: string;
}

export function instancePaths(name: string, home = berthHome()): InstancePaths {
  validateInstanceName(name);
  const dir = path.join(home, name);
  const p = (f: string) => path.join(dir, f);
  return {
    name,
    dir,
    settings: p('settings.json'),
    state: p('state.json'),
    lock: p('engine.lock'),
    controlSocket: process.platform === 'win32' ? `\\\\.\\pipe\\berth_${name}_control` : p('control.sock'),
    token: p('control.token'),
    dockerSocket:
      process.platform === 'win32'
        ? `\\\\.\\pipe\\berth_${name === 'default' ? '' : `${name}_`}docker`
        : p('docker.sock'),
    keysDir: p('keys'),
    clientKey: path.join(dir, 'keys', 'id_ed25519'),
    hostKey: path.join(dir, 'keys', 'ssh_host_ed25519_key'),
    configDir: p('config'),
    configDisk: p('config.tar'),
    dataDisk: p('data.img'),
    serialLog: p('serial.log'),
    engineLog: p('engine.log'),
    daemonOut: p('daemon.out'),
    qemuPid: p('qemu.pid'),
    qmpSocket: p('qmp.sock'),
  };
}

/** Refuse socket paths the kernel would silently truncate. */
export function checkSocketPath(socketPath: string): void {
  if (process.platform === 'win32') return;
  const len = Buffer.byteLength(socketPath);
  if (len > MAX_SOCKET_PATH) {
    throw new BerthError(
      'SOCKET_PATH_TOO_LONG',
      `the socket path ${socketPath} is ${len} bytes long; this OS allows ${MAX_SOCKET_PATH}`,
      'Set BERTH_HOME to a shorter folder (for example ~/.berth) or use a shorter instance name.',
    );
  }
}
