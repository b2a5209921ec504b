/** Bytes for people: 1.2 GB (powers of 1000, as Docker prints them). */
export function formatBytes(n: number | undefined): string {
  if (n === undefined || n < 0) return '—';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** "3 minutes ago" from unix seconds. */
export function timeAgo(unixSeconds: number, now = Date.now()): string {
  const s = Math.max(0, Math.round(now / 1000 - unixSeconds));
  const steps: [number, string][] = [
    [60, 'second'],
    [60, 'minute'],
    [24, 'hour'],
    [30, 'day'],
    [12, 'month'],
    [Infinity, 'year'],
  ];
  let v = s;
  for (const [size, unit] of steps) {
    if (v < size) return `${v} ${unit}${v === 1 ? '' : 's'} ago`;
    v = Math.floor(v / size);
  }
  return 'long ago';
}

export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

export const STATE_LABELS: Record<string, string> = {
  stopped: 'Stopped',
  resting: 'Resting',
  starting: 'Starting',
  running: 'Running',
  stopping: 'Stopping',
  error: 'Error',
};

/**
 * The engine's start phases, in order (its list lives in a module the
 * renderer cannot load at run time; a phase the engine does not have is
 * simply never reported).
 */
export const START_PHASES: readonly string[] = ['prepare', 'image', 'boot', 'guest', 'docker', 'shares', 'socket'];

export const PHASE_LABELS: Record<string, string> = {
  prepare: 'Preparing',
  image: 'Guest image',
  boot: 'Booting the VM',
  guest: 'Waiting for the guest',
  docker: 'Starting Docker',
  shares: 'Sharing your home folder',
  socket: 'Forwarding the Docker socket',
};
