import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Logger } from 'pino';
import type { ClientChannel } from 'ssh2';
import type { GuestSession } from '../guest/session.js';
import { sleep } from '../../base/process-util.js';
import { decodeAddress, EPHEMERAL_START, type ListeningSocket } from './proc-net.js';
import { shq } from '../../base/shell-quote.js';

/**
 * Runs in the guest for as long as the channel is open: asks the kernel for
 * its listening sockets every half second and prints one line of tokens
 * ("t/127.0.0.1/8080 u/::/5353") only when the set changed, so an idle guest
 * sends nothing. It ends when its stdin reaches EOF (or carries anything), which happens when the
 * engine closes the channel or the connection dies: no loop outlives its
 * engine.
 *
 * It asks over netlink (sock_diag, listening sockets only) rather than
 * parsing /proc/net/*: measured under TCG over 30 s, netlink used 0.7 % of a
 * guest core, the /proc text 3 %, and a bash loop over /proc 14 %. /proc
 * stays as the fallback for kernels without sock_diag (tokens in its hex
 * form). Perl because perl-base is part of every Debian system.
 */
export const WATCH_SCRIPT = String.raw`
use strict; use Socket qw(SOCK_DGRAM inet_ntop); use IO::Select;
$| = 1;
my $iv = $ENV{BERTH_WATCH_INTERVAL} || 0.5;
my $stdin = IO::Select->new(\*STDIN);
my $nl; socket($nl, 16, SOCK_DGRAM, 4) or undef $nl;
my $kernel = pack('SSLL', 16, 0, 0, 0);
my $seq = 0;
sub diag { my ($fam, $proto, $states, $tag) = @_;
  my $req = pack('CCCCL', $fam, $proto, 0, 0, $states) . ("\0" x 48);
  send($nl, pack('LSSLL', 16 + length $req, 20, 0x301, ++$seq, 0) . $req, 0, $kernel) or return ();
  my @out;
  while (1) {
    my $buf; defined recv($nl, $buf, 65536, 0) or return @out;
    while (length($buf) >= 16) {
      my ($len, $type) = unpack('LS', $buf);
      return @out if $type == 2 || $type == 3 || $len < 16;
      my ($f, undef, undef, undef, $port, undef, $src) = unpack('CCCCnna16', substr($buf, 16, $len - 16));
      push @out, "$tag/" . inet_ntop($f, $f == 2 ? substr($src, 0, 4) : $src) . "/$port";
      substr($buf, 0, ($len + 3) & ~3) = '';
    }
  }
}
sub table { my ($f, $st, $tag) = @_; open(my $h, '<', $f) or return (); local $/; my $d = <$h>; close $h;
  return map { "$tag$_" } $d =~ /^\s*\d+:\s+([0-9A-F]+:[0-9A-F]{4})\s+\S+\s+$st\s/mg; }
my $prev = 'x';
while (1) {
  my $cur = $nl
    ? join(' ', diag(2, 6, 1 << 10, 't'), diag(10, 6, 1 << 10, 't'), diag(2, 17, 1 << 7, 'u'), diag(10, 17, 1 << 7, 'u'))
    : join(' ', table('/proc/net/tcp', '0A', 't'), table('/proc/net/tcp6', '0A', 't'), table('/proc/net/udp', '07', 'u'), table('/proc/net/udp6', '07', 'u'));
  if ($cur ne $prev) { print "= $cur\n"; $prev = $cur; }
  exit 0 if $stdin->can_read($iv);
}
`;

/** Decode one output line of WATCH_SCRIPT (netlink "t/IP/PORT" or /proc hex "tADDR:PORT" tokens). */
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
 * longer line is an error that closes the channel (the loop opens it again),
 * never a buffer that grows with whatever the guest sends.
 */
export const MAX_WATCH_LINE = 2 ** 20;

export class GuestSocketWatcher extends EventEmitter<{ change: [ListeningSocket[]] }> {
  private channel?: ClientChannel;
  private stopped = false;
  private running = false;
  current: ListeningSocket[] = [];

  constructor(
    private readonly session: GuestSession,
    private readonly log: Logger,
    private readonly intervalSec = 0.5,
  ) {
    super();
  }

  start(): void {
    this.stopped = false;
    if (!this.running) void this.loop();
  }

  private async loop(): Promise<void> {
    this.running = true;
    let delay = 200;
    while (!this.stopped) {
      try {
        const ch = await this.session.openExec(
          `BERTH_WATCH_INTERVAL=${this.intervalSec} exec perl -e ${shq(WATCH_SCRIPT)}`,
        );
        this.channel = ch;
        delay = 200;
        await new Promise<void>((resolve) => {
          let buf: string | undefined = '';
          ch.on('data', (d: Buffer) => {
            if (buf === undefined) return; // over the limit: closing
            buf += d.toString('latin1');
            let nl: number;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl);
              buf = buf.slice(nl + 1);
              if (line.length > MAX_WATCH_LINE) break;
              const socks = parseWatchLine(line);
              if (socks) {
                this.current = socks;
                this.emit('change', socks);
              }
            }
            if (buf.length > MAX_WATCH_LINE || nl >= 0) {
              this.log.warn({ limit: MAX_WATCH_LINE }, 'the guest socket watcher sent a line over the limit; starting it again');
              buf = undefined;
              ch.close();
            }
          });
          ch.stderr.on('data', (d: Buffer) => this.log.debug({ stderr: d.toString() }, 'socket watcher'));
          ch.on('close', () => resolve());
        });
      } catch (err) {
        if (this.stopped) break;
        this.log.debug({ err: (err as Error).message }, 'socket watcher cannot start yet');
      }
      this.channel = undefined;
      if (this.stopped) break;
      // The channel closed under us (reconnect, guest trouble): start over.
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
    this.running = false;
  }

  stop(): void {
    this.stopped = true;
    // EOF on the loop's stdin ends it in the guest.
    this.channel?.end();
    this.channel?.close();
    this.channel = undefined;
  }
}
