/* Formatting of the engine's JSON log lines for people (kept apart from
 * log.ts so the CLI does not load pino to print them). */

/** One pino JSON line as "12:00:01 INFO message key=value". */
export function formatLogLine(line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line);
  } catch {
    return line;
  }
  const names: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
  const time = typeof o.time === 'number' ? new Date(o.time).toISOString().replace('T', ' ').slice(0, 23) : '';
  const { level, time: _t, pid: _p, hostname: _h, msg, ...rest } = o;
  const extra = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${time} ${names[level as number] ?? level} ${msg ?? ''}${extra ? ` ${extra}` : ''}`;
}
