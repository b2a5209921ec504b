/**
 * The fake guest of engine-idle.ts's `--vm fake` run, in a process of its
 * own so that its ssh2 server and fake dockerd do not count in the
 * engine's memory: `node fake-guest-process.js PORT HOSTKEY CLIENTPUB DIR`.
 * It prints "ready" once sshd and dockerd answer, and exits when asked to
 * power off (or on SIGTERM).
 */
import fs from 'node:fs';
import path from 'node:path';
import { startFakeDockerEngine } from '../../test/helpers/fake-dockerd.js';
import { startFakeGuest } from '../../test/helpers/fake-guest.js';

const [port, hostKeyFile, clientPubFile, dir] = process.argv.slice(2);
const dockerd = await startFakeDockerEngine(path.join(dir!, 'fake-dockerd.sock'));
await startFakeGuest({
  port: Number(port),
  hostPrivateKey: fs.readFileSync(hostKeyFile!, 'utf8'),
  clientPublicKey: fs.readFileSync(clientPubFile!, 'utf8'),
  sockets: { '/var/run/docker.sock': dockerd.socketPath },
  exec: (cmd) => {
    // These run for as long as their channel is open (sshfs until unmounted),
    // and an idle guest says nothing on them.
    if (/socket-watch|sshfs|nudge/.test(cmd)) return new Promise(() => undefined);
    if (cmd.includes('poweroff')) setTimeout(() => process.exit(0), 50);
    return { code: 0 };
  },
});
process.on('SIGTERM', () => process.exit(0));
process.stdout.write('ready\n');
