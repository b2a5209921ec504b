/**
 * An SFTP client talking straight to the engine's SFTP server over an
 * in-memory stream pair: ssh2's own client-side protocol class, on the same
 * stream adapter the server uses. It sends whatever paths a test wants,
 * including the ones a well-behaved sshfs never would (a misbehaving guest).
 */
import { Duplex, PassThrough } from 'node:stream';
import type { SFTPWrapper } from 'ssh2';
import { openSftpChannel } from '../../app/engine/share/sftp-channel.js';

/** Two connected duplex streams (Node 20 has no stream.duplexPair). */
export function duplexPair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  return [Duplex.from({ readable: ba, writable: ab }), Duplex.from({ readable: ab, writable: ba })];
}

export interface TestSftpClient {
  sftp: SFTPWrapper;
  /** Extensions the server advertised in its VERSION reply. */
  extensions: Record<string, string>;
  /** Call a callback-style client method as a promise. */
  call<T = void>(fn: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T>;
  end(): void;
}

/** Connect an ssh2 SFTP client to `stream` and wait for the VERSION reply. */
export async function sftpClient(stream: Duplex): Promise<TestSftpClient> {
  const ch = openSftpChannel<SFTPWrapper & { _extensions: Record<string, string> }>(stream, { server: false });
  await new Promise<void>((resolve, reject) => {
    ch.sftp.once('ready', () => resolve());
    ch.sftp.once('error', reject);
  });
  return {
    sftp: ch.sftp,
    extensions: { ...ch.sftp._extensions },
    call: <T>(fn: (cb: (err: Error | null | undefined, value?: T) => void) => void) =>
      new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T)))),
    end: () => ch.close(),
  };
}

/** The SFTP status code carried by an ssh2 client error. */
export function sftpCode(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}
