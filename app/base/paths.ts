import os from 'node:os';
import path from 'node:path';
import { BerthError } from '../contract/errors.js';

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
function maxSocketPath(platform: NodeJS.Platform): number {
  return platform === 'linux' ? 107 : 103;
}

/**
 * Windows has no unix sockets Docker's CLI would use: the docker socket and
 * the control socket are named pipes, which Node's net module serves and
 * dials like sockets. The docker pipe of the default instance is
 * \\.\pipe\berth_docker (DOCKER_HOST=npipe:////./pipe/berth_docker), next to
 * Docker Desktop's docker_engine, so both can be installed at once.
 *
 * Who may open them: Node (libuv) creates a pipe with Windows' default
 * security descriptor (full control for LocalSystem, Administrators and the
 * creating user; read-only for Everyone, which cannot send a request) and
 * offers no way to narrow it (`readableAll`/`writableAll` only widen it).
 * Rancher Desktop's docker proxy gets the same default (go-winio ListenPipe
 * without a descriptor uses RtlDefaultNpAcl); Docker Desktop restricts its
 * pipes to the starting user, Administrators and LocalSystem. So on Windows:
 *  - the control pipe answers nothing but BAD_REQUEST/UNAUTHORIZED before
 *    `hello` with the per-start token, and the token file lives in the
 *    instance folder under the user's profile, which only the user, SYSTEM
 *    and Administrators can read;
 *  - the docker pipe is as open as Rancher Desktop's: other local users can
 *    open it only for reading, which cannot carry a request.
 * Not covered: a pipe name taken first by another user's process (libuv's
 * FILE_FLAG_FIRST_PIPE_INSTANCE makes our listen fail, SOCKET_IN_USE, but a
 * client cannot check who serves a pipe from Node), and remote clients (libuv
 * does not set PIPE_REJECT_REMOTE_CLIENTS; the default ACL still refuses
 * them writes unless they are administrators).
 */
export const WINDOWS_PIPE_PREFIX = '\\\\.\\pipe\\';

export function dockerPipeName(instance: string): string {
  return `${WINDOWS_PIPE_PREFIX}berth_${instance === 'default' ? '' : `${instance}_`}docker`;
}

export function controlPipeName(instance: string): string {
  return `${WINDOWS_PIPE_PREFIX}berth_${instance}_control`;
}

export interface InstancePaths {
  name: string;
  dir: string;
  settings: string;
  state: string;
  /** The last starts' phase times (boot/start-clock.ts): what the start checklist expects. */
  startTimes: string;
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
  /** vfkit's pid and REST socket (macOS). */
  vfkitPid: string;
  vfkitSocket: string;
  /** Hyper-V: the data disk as a dynamic VHDX, the config disk as a fixed VHD. */
  dataVhdx: string;
  configVhd: string;
}

/**
 * Every file of an instance. `platform` picks unix sockets or named pipes
 * and the path flavour (tests simulate Windows and macOS on Linux).
 */
export function instancePaths(name: string, home = berthHome(), platform: NodeJS.Platform = process.platform): InstancePaths {
  validateInstanceName(name);
  const P = platform === 'win32' ? path.win32 : path.posix;
  const dir = P.join(home, name);
  const p = (f: string) => P.join(dir, f);
  return {
    name,
    dir,
    settings: p('settings.json'),
    state: p('state.json'),
    startTimes: p('start-times.json'),
    lock: p('engine.lock'),
    controlSocket: platform === 'win32' ? controlPipeName(name) : p('control.sock'),
    token: p('control.token'),
    dockerSocket: platform === 'win32' ? dockerPipeName(name) : p('docker.sock'),
    keysDir: p('keys'),
    clientKey: P.join(dir, 'keys', 'id_ed25519'),
    hostKey: P.join(dir, 'keys', 'ssh_host_ed25519_key'),
    configDir: p('config'),
    configDisk: p('config.tar'),
    dataDisk: p('data.img'),
    serialLog: p('serial.log'),
    engineLog: p('engine.log'),
    daemonOut: p('daemon.out'),
    qemuPid: p('qemu.pid'),
    qmpSocket: p('qmp.sock'),
    vfkitPid: p('vfkit.pid'),
    vfkitSocket: p('vfkit.sock'),
    dataVhdx: p('data.vhdx'),
    configVhd: p('config.vhd'),
  };
}

/** Refuse socket paths the kernel would silently truncate, and pipe names Windows would refuse. */
export function checkSocketPath(socketPath: string, platform: NodeJS.Platform = process.platform): void {
  if (platform === 'win32') {
    // CreateNamedPipe: \\.\pipe\name, at most 256 characters, no backslash in the name.
    const rest = socketPath.startsWith(WINDOWS_PIPE_PREFIX) ? socketPath.slice(WINDOWS_PIPE_PREFIX.length) : undefined;
    if (rest === undefined || !rest || rest.includes('\\') || socketPath.length > 256) {
      throw new BerthError(
        'SOCKET_PATH_TOO_LONG',
        `${socketPath} is not a valid Windows named pipe`,
        'Named pipes are \\\\.\\pipe\\NAME with at most 256 characters; use a shorter instance name.',
      );
    }
    return;
  }
  const max = maxSocketPath(platform);
  const len = Buffer.byteLength(socketPath);
  if (len > max) {
    throw new BerthError(
      'SOCKET_PATH_TOO_LONG',
      `the socket path ${socketPath} is ${len} bytes long; this OS allows ${max}`,
      'Set BERTH_HOME to a shorter folder (for example ~/.berth) or use a shorter instance name.',
    );
  }
}
