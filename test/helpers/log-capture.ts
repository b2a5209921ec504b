/** A logger whose lines (pino's JSON, one per entry) are kept in memory for a test to read. */
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

export function captureLogger(level: pino.Level = 'info'): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = pino(
    { level },
    new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    }),
  );
  return { log, lines };
}
