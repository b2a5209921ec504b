import fs from 'node:fs';
import pino, { type Logger } from 'pino';

/** Keep one old log when the current one passes this size at engine start. */
const ROTATE_BYTES = 5 << 20;

/**
 * The engine's log: JSON lines (pino) in the instance folder, owner-only.
 * BERTH_LOG_LEVEL sets the level; BERTH_LOG_STDERR=1 copies it to stderr.
 */
export function createEngineLogger(file: string): Logger {
  try {
    if (fs.statSync(file).size > ROTATE_BYTES) fs.renameSync(file, `${file}.1`);
  } catch {
    /* no log yet */
  }
  fs.closeSync(fs.openSync(file, 'a', 0o600));
  const level = process.env.BERTH_LOG_LEVEL || 'info';
  const dest = pino.destination({ dest: file, sync: false, mkdir: true });
  if (process.env.BERTH_LOG_STDERR === '1') {
    return pino({ level }, pino.multistream([{ stream: dest, level }, { stream: process.stderr, level }]));
  }
  return pino({ level }, dest);
}

/** A logger that drops everything (unit tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
