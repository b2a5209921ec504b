import type net from 'node:net';
import type { Transform } from 'node:stream';
import type { Channel } from 'ssh2';

/**
 * Join a host socket and an ssh channel, bytes untouched both ways.
 * Half-closes cross over (EOF on one side becomes EOF on the other while the
 * reverse direction keeps flowing); an error or close on either side ends
 * both. The host socket must be created with allowHalfOpen and paused.
 * `inbound`, if given, sits between the host socket and the channel.
 */
export function bridge(sock: net.Socket, ch: Channel, inbound?: Transform): void {
  if (inbound) {
    sock.pipe(inbound).pipe(ch);
    inbound.on('error', () => sock.destroy());
  } else {
    sock.pipe(ch);
  }
  ch.pipe(sock);
  ch.on('error', () => sock.destroy());
  ch.on('close', () => {
    // The guest side is done; let queued bytes reach the client first.
    if (!sock.writableEnded) sock.end();
  });
  sock.on('close', () => ch.destroy());
  sock.resume();
}
