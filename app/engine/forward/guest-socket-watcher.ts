/**
 * Follows the guest's listening sockets. The guest side
 * (programs/socket-watch.pl) runs for as long as the channel is open: it
 * asks the kernel for its listening sockets and prints one line of tokens
 * ("t/127.0.0.1/8080 u/::/5353") only when the set changed, so an idle
 * guest sends nothing. It looks every half second for 30 s after a change
 * or a `poke()` (docker in use: a container may listen), and every few
 * seconds otherwise, so an idle guest wakes seldom. (Ports docker
 * publishes come from its events, not from here.) It ends when its stdin
 * reaches EOF or carries anything but "look" lines, which happens when the
 * engine closes the channel or the connection dies: no loop outlives its
 * engine.
 *
 * It asks over netlink (sock_diag, listening sockets only) rather than
 * parsing /proc/net/*: measured under TCG over 30 s, netlink used 0.7 % of a
 * guest core, the /proc text 3 %, and a bash loop over /proc 14 %. /proc
 * stays as the fallback for kernels without sock_diag (tokens in its hex
 * form). Perl because perl-base is part of every Debian system.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Logger } from 'pino';
import type { GuestSession } from '../guest/session.js';
import { KeptGuestProgram } from '../guest/kept-program.js';
import { decodeAddress, EPHEMERAL_START, type ListeningSocket } from './proc-net.js';
import { perlCommand } from '../guest/programs.js';
import { sh } from '../../base/shell-quote.js';

/** Decode one output line of programs/socket-watch.pl (netlink "t/IP/PORT" or /proc hex "tADDR:PORT" tokens). */
export function parseWatchLine(line: string): ListeningSocket[] | undefined {
  if (!line.startsWith('=')) return undefined;
  const out: ListeningSocket[] = [];
  const seen = new Set<string>();
  for (const tok of line.slice(1).trim().split(/\s+/)) {
    if (!tok) continue;
    const proto = tok[0] === 't' ? 'tcp' : tok[0] === 'u' ? 'udp' : undefined;
    if (!proto) continue;
    let a: { ip: string; port: number; family: 4 | 6 } | undefined;
    const m = /^[tu]\/([0-9A-Fa-f.:]+)\/(\d{1,5})$/.exec(tok);
    if (m) {
      const family = net.isIP(m[1]!);
      if (family) a = { ip: m[1]!.toLowerCase(), port: Number(m[2]), family: family as 4 | 6 };
    } else {
      a = decodeAddress(tok.slice(1));
    }
    if (!a || a.port === 0 || a.port > 65535) continue;
    if (proto === 'udp' && a.port >= EPHEMERAL_START) continue;
    const key = `${proto}/${a.ip}/${a.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ proto, ...a });
  }
  return out;
}

/**
 * The longest line the watcher takes from the guest. A real one lists every
 * listening socket (about 25 bytes each): 1 MiB is some 40,000 of them. A
 * longer line is an error that closes the channel (guest/kept-program.ts
 * opens it again), never a buffer that grows with whatever the guest sends.
 */
export const MAX_WATCH_LINE = 2 ** 20;

export class GuestSocketWatcher extends EventEmitter<{ change: [ListeningSocket[]] }> {
  private readonly program: KeptGuestProgram;
  private lastPoke = 0;
  current: ListeningSocket[] = [];

  constructor(session: GuestSession, log: Logger, intervalSec = 0.5, idleIntervalSec = 3) {
    super();
    this.program = new KeptGuestProgram(session, log, {
      name: 'the guest socket watcher',
      command: sh`BERTH_WATCH_INTERVAL=${intervalSec} BERTH_WATCH_IDLE_INTERVAL=${idleIntervalSec} ` + perlCommand('socket-watch.pl'),
      maxLine: MAX_WATCH_LINE,
      onLine: (line) => {
        const socks = parseWatchLine(line);
        if (!socks) return;
        this.current = socks;
        this.emit('change', socks);
      },
    });
  }

  start(): void {
    this.program.start();
  }

  /** Docker is in use: look now, and often for a while (at most one poke a second). */
  poke(): void {
    const now = Date.now();
    if (!this.program.open || now - this.lastPoke < 1000) return;
    this.lastPoke = now;
    this.program.write('look\n');
  }

  stop(): void {
    this.program.stop();
  }
}
