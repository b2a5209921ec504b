/**
 * UDP over ssh. SSH forwards only streams, so datagrams travel framed
 * ([u32 client id][u16 length][payload], network byte order) over one exec
 * channel per forwarded port. In the guest a small Perl relay
 * (programs/udp-relay.pl; perl-base is part of every Debian system) keeps
 * one connected UDP socket per host-side client, so replies find their way
 * back; idle clients expire after 2 min. The relay exits when its stdin
 * closes (engine gone, link lost).
 */
import type dgram from 'node:dgram';
import type { Logger } from 'pino';
import type { ClientChannel } from 'ssh2';
import type { GuestSession } from '../guest/session.js';
import { perlCommand } from '../guest/programs.js';

export function frame(clientId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt32BE(clientId, 0);
  head.writeUInt16BE(payload.length, 4);
  return Buffer.concat([head, payload]);
}

/** Incremental decoder of frames arriving in arbitrary chunks. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly onFrame: (clientId: number, payload: Buffer) => void) {}
  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 6) {
      const len = this.buf.readUInt16BE(4);
      if (this.buf.length < 6 + len) break;
      this.onFrame(this.buf.readUInt32BE(0), this.buf.subarray(6, 6 + len));
      this.buf = this.buf.subarray(6 + len);
    }
  }
}

interface Client {
  sock: dgram.Socket;
  address: string;
  port: number;
}

/** The host half: datagrams from any of `sockets` go to guestIp:guestPort and back. */
export class UdpRelay {
  private channel?: Promise<ClientChannel>;
  private clients = new Map<number, Client>();
  private ids = new Map<string, number>();
  private nextId = 1;
  datagrams = 0;

  constructor(
    private readonly session: GuestSession,
    private readonly guestIp: string,
    private readonly guestPort: number,
    private readonly log: Logger,
  ) {}

  attach(sock: dgram.Socket): void {
    sock.on('message', (msg, rinfo) => void this.fromHost(sock, msg, rinfo));
  }

  private ensureChannel(): Promise<ClientChannel> {
    if (!this.channel) {
      const ip = this.guestIp.replace(/[^0-9A-Fa-f:.]/g, '');
      this.channel = this.session.openExec(perlCommand('udp-relay.pl', [ip, this.guestPort])).then((ch) => {
        const reader = new FrameReader((id, payload) => {
          const c = this.clients.get(id);
          if (c) c.sock.send(payload, c.port, c.address);
        });
        ch.on('data', (d: Buffer) => reader.push(d));
        ch.stderr.on('data', (d: Buffer) => this.log.debug({ stderr: d.toString() }, 'udp relay'));
        ch.on('close', () => {
          // Lost with the link or ended: the next datagram starts a new one.
          this.channel = undefined;
        });
        return ch;
      });
      this.channel.catch(() => (this.channel = undefined));
    }
    return this.channel;
  }

  private async fromHost(sock: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): Promise<void> {
    const key = `${rinfo.address}|${rinfo.port}|${sock.address().address}`;
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(key, id);
      this.clients.set(id, { sock, address: rinfo.address, port: rinfo.port });
    }
    try {
      const ch = await this.ensureChannel();
      ch.write(frame(id, msg));
      this.datagrams++;
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'udp relay unavailable; datagram dropped');
    }
  }

  close(): void {
    void this.channel?.then((ch) => {
      ch.end();
      ch.close();
    });
    this.channel = undefined;
    this.clients.clear();
    this.ids.clear();
  }
}
