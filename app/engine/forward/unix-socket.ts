import fs from 'node:fs';
import net from 'node:net';
import { BerthError } from '../../contract/errors.js';
import { checkSocketPath } from '../../base/paths.js';

/** Does something accept connections on this unix socket (or named pipe)? */
export function socketIsLive(socketPath: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(socketPath);
    const done = (live: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(live);
    };
    const timer = setTimeout(() => done(true), timeoutMs); // accepted but silent: someone is there
    s.on('connect', () => done(true));
    s.on('error', () => done(false));
  });
}

/**
 * Make `socketPath` ready to listen on: a stale socket left by a dead
 * process is removed; a live one, or a file that is not a socket, is
 * reported and left alone.
 */
export async function prepareSocketPath(socketPath: string, what: string): Promise<void> {
  checkSocketPath(socketPath);
  if (process.platform === 'win32') return;
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw new BerthError(
      'SOCKET_PATH_OCCUPIED',
      `${socketPath} exists and is not a socket, so the ${what} cannot be created there`,
      'Move or delete that file (Berth never deletes files it did not create), then start again.',
    );
  }
  if (await socketIsLive(socketPath)) {
    throw new BerthError(
      'SOCKET_IN_USE',
      `another process is already serving ${socketPath}`,
      'Another Berth engine (or another tool) owns this socket. Stop it, or use another instance with `--instance NAME`.',
    );
  }
  fs.rmSync(socketPath, { force: true });
}

/**
 * A listen failure as the user should meet it. On Windows a pipe name is
 * taken while any process serves it (libuv creates the first instance with
 * FILE_FLAG_FIRST_PIPE_INSTANCE and reports EADDRINUSE), and there is no
 * stale file to clean up as prepareSocketPath does for unix sockets.
 */
export function listenError(err: NodeJS.ErrnoException, socketPath: string): Error {
  if (err.code !== 'EADDRINUSE') return err;
  return new BerthError(
    'SOCKET_IN_USE',
    `another process is already serving ${socketPath}`,
    'Another Berth engine (or another tool) owns this socket or named pipe. Stop it, or use another instance with `--instance NAME`.',
  );
}

/** Listen on a unix socket that is owner-only from its first moment. */
export function listenPrivate(server: net.Server, socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const old = process.platform === 'win32' ? undefined : process.umask(0o177);
    const onError = (err: NodeJS.ErrnoException) => {
      if (old !== undefined) process.umask(old);
      reject(listenError(err, socketPath));
    };
    server.once('error', onError);
    server.listen(socketPath, () => {
      if (old !== undefined) process.umask(old);
      server.off('error', onError);
      if (process.platform !== 'win32') fs.chmodSync(socketPath, 0o600);
      resolve();
    });
  });
}
