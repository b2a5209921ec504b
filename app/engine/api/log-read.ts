import type { InstancePaths } from '../../base/paths.js';
import { tailFile } from '../../base/fs-util.js';
import { formatLogLine } from '../../base/log-format.js';

export type LogSource = 'engine' | 'serial';

/**
 * `logs.read`: the last lines of the engine's log (formatted for people) or
 * of the VM's serial console. Plain files on the host, so this works with
 * the VM stopped and with no engine at all (the dashboard reads them itself
 * then).
 */
export function readLog(paths: Pick<InstancePaths, 'engineLog' | 'serialLog'>, source: LogSource, lines = 500) {
  const file = source === 'engine' ? paths.engineLog : paths.serialLog;
  // A formatted engine line is shorter than its JSON; the serial log has long boot lines.
  const raw = tailFile(file, lines, Math.max(256 * 1024, lines * 1024));
  return { source, file, lines: source === 'engine' ? raw.map(formatLogLine) : raw };
}
