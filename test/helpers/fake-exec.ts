/**
 * A guest session whose exec channels the test drives by hand: it emits the
 * guest's output into them and reads what the engine did with them (closed,
 * stdin ended, lines written). For the readers of guest programs' output
 * (kept programs, the socket watcher, sync's field parser).
 */
import { EventEmitter } from 'node:events';
import type { GuestSession } from '../../app/engine/guest/session.js';

export class FakeChannel extends EventEmitter {
  stderr = new EventEmitter();
  closed = false;
  ended = false;
  written: string[] = [];
  close(): void {
    if (this.closed) return;
    this.closed = true;
    setImmediate(() => this.emit('close'));
  }
  end(): void {
    this.ended = true;
  }
  write(s: string): void {
    this.written.push(s);
  }
  pipe(): void {}
}

/** Each openExec gives a new FakeChannel, pushed on `channels`; its command goes on `commands`. */
export function fakeExecSession(channels: FakeChannel[], commands: string[] = []): GuestSession {
  return {
    openExec: async (cmd: string) => {
      commands.push(cmd);
      const ch = new FakeChannel();
      channels.push(ch);
      return ch;
    },
  } as unknown as GuestSession;
}
