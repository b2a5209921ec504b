/**
 * A guest program kept running over an exec channel for as long as the
 * engine wants it: the socket watcher (forward/guest-socket-watcher.ts). Its
 * output is read line by line, each line at most `maxLine` characters: a
 * longer one (a guest sending without end) closes the channel rather than
 * growing a buffer. When the channel closes under it (an ssh reconnect,
 * guest trouble) the program is started again, after 200 ms, doubling up
 * to 5 s while it keeps failing.
 * Closing the channel's stdin is what ends it in the guest, so no loop
 * outlives its engine.
 */
import type { Logger } from 'pino';
import type { ClientChannel } from 'ssh2';
import { sleep } from '../../base/process-util.js';
import type { GuestSession } from './session.js';

export interface KeptProgramOptions {
  /** Its name in the log. */
  name: string;
  /** The command line it runs in the guest. */
  command: string;
  /** The longest line taken from it; past it the channel closes and opens again. */
  maxLine: number;
  /** One line of its output. 'done' ends the loop: the program said it cannot run here. */
  onLine(line: string): void | 'done';
}

export class KeptGuestProgram {
  private channel?: ClientChannel;
  private stopped = false;
  private running = false;

  constructor(
    private readonly session: GuestSession,
    private readonly log: Logger,
    private readonly o: KeptProgramOptions,
  ) {}

  start(): void {
    this.stopped = false;
    if (!this.running) void this.loop();
  }

  /** Whether a channel is open now. */
  get open(): boolean {
    return this.channel !== undefined;
  }

  /** Send a line to its stdin, when it runs. */
  write(line: string): void {
    this.channel?.write(line);
  }

  private async loop(): Promise<void> {
    this.running = true;
    let delay = 200;
    while (!this.stopped) {
      let done = false;
      try {
        const ch = await this.session.openExec(this.o.command);
        if (this.stopped) {
          ch.end();
          ch.close();
          break;
        }
        this.channel = ch;
        delay = 200;
        done = await this.read(ch);
      } catch (err) {
        if (this.stopped) break;
        this.log.debug({ err: (err as Error).message }, `${this.o.name} cannot start yet`);
      }
      this.channel = undefined;
      if (this.stopped || done) break;
      // The channel closed under us (reconnect, guest trouble): start over.
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
    this.running = false;
  }

  /** Read its lines until the channel closes; true when it said it cannot run. */
  private read(ch: ClientChannel): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let buf: string | undefined = '';
      let done = false;
      const tooLong = () => {
        this.log.warn({ limit: this.o.maxLine }, `${this.o.name} sent a line over the limit; starting it again`);
        buf = undefined;
        ch.close();
      };
      ch.on('data', (d: Buffer) => {
        if (buf === undefined) return; // over the limit or done: closing
        buf += d.toString('latin1');
        let nl: number;
        while (buf !== undefined && (nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.length > this.o.maxLine) return tooLong();
          if (this.o.onLine(line) === 'done') {
            done = true;
            buf = undefined;
            ch.end();
            ch.close();
          }
        }
        if (buf !== undefined && buf.length > this.o.maxLine) tooLong();
      });
      ch.stderr.on('data', (d: Buffer) => this.log.debug({ stderr: d.toString('latin1').slice(0, 512) }, this.o.name));
      ch.on('close', () => resolve(done));
    });
  }

  stop(): void {
    this.stopped = true;
    // EOF on its stdin ends it in the guest.
    this.channel?.end();
    this.channel?.close();
    this.channel = undefined;
  }
}
