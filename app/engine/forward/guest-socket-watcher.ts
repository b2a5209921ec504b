import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { ClientChannel } from 'ssh2';
import type { GuestSession } from '../guest/session.js';
import { sleep } from '../process-util.js';
import { decodeAddress, EPHEMERAL_START, type ListeningSocket } from './proc-net.js';

/**
 * Runs in the guest for as long as the channel is open: reads the socket
 * tables every half second with bash builtins only (no process is started
 * per round), and prints one line of tokens ("t0100007F:1F90 u00000000:0035")
 * only when the set of listening sockets changed. At idle it sends nothing.
 * It stops when its stdin reaches EOF, which happens when the engine closes
 * the channel or the connection dies, so no loop outlives its engine.
 */
export const WATCH_SCRIPT = String.raw`
prev=x
while :; do
  cur=
  for f in /proc/net/tcp /proc/net/tcp6; do
    while read -r _ l _ st _; do [[ $st == 0A ]] && cur+=" t$l"; done < "$f"
  done
  for f in /proc/net/udp /proc/net/udp6; do
    while read -r _ l _ st _; do [[ $st == 07 ]] && cur+=" u$l"; done < "$f"
  done
  if [[ $cur != "$prev" ]]; then echo "=$cur"; prev=$cur; fi
  read -r -t ${'$'}{BERTH_WATCH_INTERVAL:-0.5} _
  (( $? > 128 )) || exit 0
done
`;

/** Decode one output line of WATCH_SCRIPT. */
export function parseWatchLine(line: string): ListeningSocket[] | undefined {
  if (!line.startsWith('=')) return undefined;
  const out: ListeningSocket[] = [];
  const seen = new Set<string>();
  for (const tok of line.slice(1).trim().split(/\s+/)) {
    if (!tok) continue;
    const proto = tok[0] === 't' ? 'tcp' : tok[0] === 'u' ? 'udp' : undefined;
    const a = proto && decodeAddress(tok.slice(1));
    if (!proto || !a || a.port === 0) continue;
    if (proto === 'udp' && a.port >= EPHEMERAL_START) continue;
    const key = `${proto}/${a.ip}/${a.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ proto, ...a });
  }
  return out;
}

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
          `BERTH_WATCH_INTERVAL=${this.intervalSec} exec bash --noprofile --norc -c ${shq(WATCH_SCRIPT)}`,
        );
        this.channel = ch;
        delay = 200;
        await new Promise<void>((resolve) => {
          let buf = '';
          ch.on('data', (d: Buffer) => {
            buf += d.toString('latin1');
            let nl: number;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl);
              buf = buf.slice(nl + 1);
              const socks = parseWatchLine(line);
              if (socks) {
                this.current = socks;
                this.emit('change', socks);
              }
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

/** Single-quote for a POSIX shell. */
function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
