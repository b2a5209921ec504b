/**
 * A process that does what the engine does for reverse sshfs, and nothing
 * else: serveSftp on every connection to a unix socket, one socket per
 * share. Tests talk to it as a hostile guest and watch whether it survives
 * (see sftp-process.ts). argv[2]: JSON [{ socket, root, readOnly?, pathWalk? }].
 */
import net from 'node:net';
import { silentLogger } from '../../app/base/log.js';
import { serveSftp } from '../../app/engine/share/sftp-server.js';
import type { PathWalk } from '../../app/engine/share/share-jail.js';

const shares = JSON.parse(process.argv[2] ?? '[]') as { socket: string; root: string; readOnly?: boolean; pathWalk?: PathWalk }[];
let listening = 0;
for (const s of shares) {
  const server = net.createServer((sock) => {
    sock.on('error', () => undefined);
    serveSftp(sock, { root: s.root, readOnly: s.readOnly, pathWalk: s.pathWalk, log: silentLogger() }).catch((err: Error) => {
      process.stderr.write(`serve ${s.root}: ${err.message}\n`);
      sock.destroy();
    });
  });
  server.listen(s.socket, () => {
    if (++listening === shares.length) process.stdout.write('ready\n');
  });
}
