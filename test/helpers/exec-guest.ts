/**
 * A guest stand-in whose exec requests really run: an ssh2 server on
 * loopback that accepts only the engine's key and runs each exec command
 * with `sh -c` on this machine, stdin/stdout/stderr carried over the channel
 * and the exit status sent back, as sshd does. For reverse sshfs without a
 * VM: the engine's `sshfs -o slave` command runs here, behind a real ssh2
 * exec channel.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import ssh2 from 'ssh2';
import { onlyKey } from './fake-guest.js';

const { Server } = ssh2;

export interface ExecGuest {
  port: number;
  /** Every command started, in order. */
  commands: string[];
  close(): Promise<void>;
}

export async function startExecGuest(o: {
  hostPrivateKey: string;
  clientPublicKey: string;
  /** Change a command before it runs (a hostile guest: forged answers). */
  rewrite?: (command: string) => string;
}): Promise<ExecGuest> {
  const auth = onlyKey(o.clientPublicKey);
  const commands: string[] = [];
  const clients = new Set<ssh2.Connection>();
  const children = new Set<ChildProcess>();

  const server = new Server({ hostKeys: [o.hostPrivateKey] }, (client) => {
    clients.add(client);
    client.on('close', () => clients.delete(client));
    client.on('error', () => undefined);
    client.on('authentication', auth);
    client.on('ready', () => {
      // Replies go at once, as the VM's sshd's do (Nagle here held each run's small answers for the client's delayed ACK).
      // ssh2's server-side connection has setNoDelay; its types leave it out.
      (client as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
      client.on('session', (accept) => {
        accept().on('exec', (acceptExec, _reject, info) => {
          const ch = acceptExec();
          commands.push(info.command);
          // cwd '/': never start inside a mount this process serves.
          const child = spawn('sh', ['-c', o.rewrite ? o.rewrite(info.command) : info.command], { cwd: '/', stdio: ['pipe', 'pipe', 'pipe'] });
          children.add(child);
          child.stdout.pipe(ch, { end: false });
          child.stderr.pipe(ch.stderr, { end: false });
          ch.pipe(child.stdin);
          child.stdin.on('error', () => undefined);
          ch.on('error', () => undefined);
          child.on('close', (code, signal) => {
            children.delete(child);
            if (signal) ch.exit(signal.replace(/^SIG/, ''), false, '');
            else ch.exit(code ?? 0);
            ch.end();
          });
          ch.on('close', () => {
            if (child.exitCode === null) child.kill('SIGTERM');
          });
        });
      });
    });
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });

  return {
    port,
    commands,
    close() {
      for (const c of children) c.kill('SIGKILL');
      for (const c of clients) c.end();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
