import fs from 'node:fs';
import pino, { type Logger } from 'pino';
import type { Tuning } from './tuning.js';

/** Keep one old log when the current one passes this size at engine start. */
const ROTATE_BYTES = 5 << 20;

/**
 * The engine's log: JSON lines (pino) in the instance folder, owner-only.
 * The level (BERTH_LOG_LEVEL) and a copy to stderr (BERTH_LOG_STDERR=1)
 * come from the tuning.
 */
export function createEngineLogger(file: string, o: Pick<Tuning, 'logLevel' | 'logStderr'> = { logLevel: 'info', logStderr: false }): Logger {
  try {
    if (fs.statSync(file).size > ROTATE_BYTES) fs.renameSync(file, `${file}.1`);
  } catch {
    /* no log yet */
  }
  fs.closeSync(fs.openSync(file, 'a', 0o600));
  const level = o.logLevel;
  const dest = pino.destination({ dest: file, sync: false, mkdir: true });
  if (o.logStderr) {
    return pino(
      { level },
      pino.multistream([
        { stream: dest, level },
        { stream: process.stderr, level },
      ]),
    );
  }
  return pino({ level }, dest);
}

/** A logger that drops everything (unit tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
