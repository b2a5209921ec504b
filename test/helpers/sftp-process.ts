/**
 * The engine's SFTP server in a process of its own (sftp-process-child.ts),
 * so a test can tell "the server refused" from "the engine died": a guest's
 * bytes that throw inside the server take this process down exactly as
 * they would take down the engine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import type { PathWalk } from '../../app/engine/share/share-jail.js';
import { ROOT } from './run.js';

export interface SftpProcess {
  child: ChildProcess;
  /** Whether the process is still running. */
  alive(): boolean;
  /** What it wrote to stderr (a crash's stack trace). */
  stderr(): string;
  /** A new connection to one share (one SFTP session). */
  connect(share: number): Promise<net.Socket>;
  close(): Promise<void>;
}

export async function startSftpProcess(dir: string, roots: { root: string; readOnly?: boolean; pathWalk?: PathWalk }[]): Promise<SftpProcess> {
  const shares = roots.map((r, i) => ({ ...r, socket: path.join(dir, `sftp-${i}.sock`) }));
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test', 'helpers', 'sftp-process-child.ts'), JSON.stringify(shares)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('ready\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`sftp process exited ${code} before it was ready: ${err}`)));
  });
  return {
    child,
    alive: () => child.exitCode === null && child.signalCode === null,
    stderr: () => err,
    connect: (share) =>
      new Promise((resolve, reject) => {
        const sock = net.createConnection(shares[share]!.socket);
        sock.once('connect', () => resolve(sock));
        sock.once('error', reject);
      }),
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
