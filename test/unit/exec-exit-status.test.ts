/**
 * A command's exit status can reach the host in the same read as the
 * channel's opening (a command that ends at once, the engine busy): it is
 * then emitted before the code that opened the channel resumes after
 * `await`, and a listener added there never hears it. The status must
 * still be known (GuestSession.openExec for the engine's guest helpers,
 * runShell for `berth shell CMD`). Before the fix a sync scan that exited 0
 * read as "exit null" now and then, and `berth shell sh -c 'exit 3'` said 0.
 *
 * The guest here answers each exec with its status in the same tick as
 * the acceptance, so the three messages travel together every time.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import ssh2 from 'ssh2';
import { silentLogger } from '../../app/base/log.js';
import { newEd25519Pair } from '../../app/base/ssh-keys.js';
import { runShell } from '../../app/cli/shell.js';
import { GuestSession } from '../../app/engine/guest/session.js';
import { onlyKey } from '../helpers/fake-guest.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('bexit');
const client = newEd25519Pair();
const hostKey = newEd25519Pair();
let server: ssh2.Server;
let port = 0;
let gs: GuestSession;

before(async () => {
  server = new ssh2.Server({ hostKeys: [hostKey.private] }, (c) => {
    c.on('error', () => undefined);
    c.on('authentication', onlyKey(client.public));
    c.on('ready', () =>
      c.on('session', (accept) =>
        accept().on('exec', (acceptExec, _reject, info) => {
          // One write for the acceptance, the status and the close.
          const sock = (c as unknown as { _sock: net.Socket })._sock;
          sock.cork();
          const ch = acceptExec();
          ch.exit(Number(/exit (\d+)/.exec(info.command)?.[1] ?? 0));
          ch.end();
          process.nextTick(() => sock.uncork());
        }),
      ),
    );
  });
  port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
  gs = new GuestSession({ host: '127.0.0.1', port, privateKey: client.private, hostPublicKey: hostKey.public, log: silentLogger(), vmAlive: () => true });
  await gs.connect(5000);
});

after(async () => {
  gs?.close();
  await new Promise((r) => server.close(r));
  t.cleanup();
});

test('openExec: an exit status that came with the opening is kept on the channel', async () => {
  for (const want of [0, 3, 0, 1]) {
    const ch = await gs.openExec(`exit ${want}`);
    await new Promise<void>((resolve) => {
      ch.on('close', () => resolve());
      ch.resume();
    });
    assert.equal(ch.exitCode, want);
  }
});

test('berth shell CMD returns an exit status that came with the opening', async () => {
  const keyFile = path.join(t.dir, 'key');
  fs.writeFileSync(keyFile, client.private, { mode: 0o600 });
  const ep = { host: '127.0.0.1', port, user: 'root', privateKeyPath: keyFile, hostPublicKey: hostKey.public };
  for (const want of [3, 0, 5]) assert.equal(await runShell(ep, ['sh', '-c', `exit ${want}`]), want);
});
