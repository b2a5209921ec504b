import fs from 'node:fs';
import ssh2 from 'ssh2';
import type { ClientChannel } from 'ssh2';
import type { Result } from '../contract/contract.js';
import { BerthError } from '../contract/errors.js';
import { publicKeyBlob } from '../base/ssh-keys.js';
import { shWord } from '../base/shell-quote.js';

const { Client } = ssh2;

/** Quote words for the guest's /bin/sh. */
export function shellQuote(words: string[]): string {
  return words.map(shWord).join(' ');
}

/**
 * `berth shell [cmd...]`: an ssh2 session into the VM, with a pty when the
 * terminal is interactive. Resolves with the remote exit status.
 */
export async function runShell(ep: Result<'guest.sshEndpoint'>, command: string[]): Promise<number> {
  const hostBlob = publicKeyBlob(ep.hostPublicKey);
  const client = new Client();
  await new Promise<void>((resolve, reject) => {
    client.on('ready', () => resolve());
    client.on('error', (err) => reject(new BerthError('GUEST_UNREACHABLE', `cannot open a shell in the VM: ${err.message}`, 'Check `berth status`.')));
    client.connect({
      host: ep.host,
      port: ep.port,
      username: ep.user,
      privateKey: fs.readFileSync(ep.privateKeyPath),
      hostVerifier: (key: Buffer) => key.equals(hostBlob),
      readyTimeout: 20_000,
    });
  });

  const stdin = process.stdin;
  const interactive = stdin.isTTY && process.stdout.isTTY;
  const pty = interactive ? { term: process.env.TERM || 'xterm-256color', rows: process.stdout.rows, cols: process.stdout.columns } : undefined;

  // The exit status is heard from the moment the channel opens: a short
  // command's 'exit' can arrive before the code after the await runs.
  let code = 1;
  const stream = await new Promise<ClientChannel>((resolve, reject) => {
    const cb = (err: Error | undefined, ch: ClientChannel) => {
      if (err) return reject(err);
      ch.once('exit', (c: number | null, signal?: string) => {
        code = c ?? (signal ? 128 + 1 : 1);
      });
      resolve(ch);
    };
    if (command.length) client.exec(shellQuote(command), pty ? { pty } : {}, cb);
    else if (pty) client.shell(pty, cb);
    else client.exec('/bin/bash -l || /bin/sh', cb); // no terminal: a plain shell reading stdin
  });

  return new Promise<number>((resolve) => {
    const onResize = () => stream.setWindow(process.stdout.rows, process.stdout.columns, 0, 0);
    if (interactive) {
      stdin.setRawMode(true);
      process.stdout.on('resize', onResize);
    }
    stdin.pipe(stream);
    stream.pipe(process.stdout);
    stream.stderr.pipe(process.stderr);
    stream.on('close', () => {
      if (interactive) {
        stdin.setRawMode(false);
        process.stdout.off('resize', onResize);
      }
      stdin.unpipe(stream);
      stdin.pause();
      client.end();
      resolve(code);
    });
  });
}
