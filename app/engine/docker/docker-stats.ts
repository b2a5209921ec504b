import type { Broadcast } from '../../contract/contract.js';
import { BerthError, toErrorInfo, type ErrorInfo } from '../../contract/errors.js';
import type { DockerApi } from './docker-api.js';
import { newStreamId } from './docker-streams.js';
import { dockerError } from './docker-views.js';

/**
 * Live CPU and memory of one container for an open detail view: one
 * Docker stats request (`stream=1`, dockerd samples about once a second)
 * per stream, each sample turned into a small event. Nothing polls: a
 * stream costs nothing until dockerd sends a sample, and it ends when the
 * view stops it, the container goes, or a client opens more than the
 * limit (the oldest is closed), so a vanished client cannot leave many
 * behind. dockerd's JSON comes from the guest: a line past the limit ends
 * the stream, and numbers that are not finite count as zero.
 */

/** One stats line is a few KiB; a line longer than this is not dockerd's. */
export const MAX_STATS_LINE = 256 * 1024;
/** Samples closer together than this are dropped (dockerd sends one a second). */
const MIN_INTERVAL_MS = 500;

export interface StatsNumbers {
  cpuPercent: number;
  memoryBytes: number;
  memoryLimitBytes: number;
  pids?: number;
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
const rec = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' ? (v as Record<string, unknown>) : {});

/**
 * One Docker stats object as `docker stats` computes it: CPU from the
 * container's and the system's usage since the previous sample, scaled by
 * the online CPUs; memory without the inactive page cache (cgroup v2's
 * inactive_file, v1's total_inactive_file).
 */
export function statsNumbers(raw: unknown): StatsNumbers {
  const s = rec(raw);
  const cpu = rec(s.cpu_stats);
  const pre = rec(s.precpu_stats);
  const cpuDelta = num(rec(cpu.cpu_usage).total_usage) - num(rec(pre.cpu_usage).total_usage);
  const sysDelta = num(cpu.system_cpu_usage) - num(pre.system_cpu_usage);
  const perCpu = rec(cpu.cpu_usage).percpu_usage;
  const online = num(cpu.online_cpus) || (Array.isArray(perCpu) ? perCpu.length : 0) || 1;
  const cpuPercent = cpuDelta > 0 && sysDelta > 0 ? Math.min((cpuDelta / sysDelta) * online * 100, online * 100) : 0;
  const mem = rec(s.memory_stats);
  const detail = rec(mem.stats);
  const cache = num(detail.inactive_file) || num(detail.total_inactive_file);
  const usage = num(mem.usage);
  const out: StatsNumbers = {
    cpuPercent: Math.round(cpuPercent * 10) / 10,
    memoryBytes: Math.max(0, usage - (cache < usage ? cache : 0)),
    memoryLimitBytes: num(mem.limit),
  };
  const pids = rec(s.pids_stats).current;
  if (typeof pids === 'number' && Number.isFinite(pids) && pids >= 0) out.pids = pids;
  return out;
}

interface StatsStream {
  stop(): void;
  finish(error?: ErrorInfo): void;
}

export class DockerStats {
  private streams = new Map<string, StatsStream>();

  constructor(
    private readonly broadcast: Broadcast,
    private readonly limit = 16,
  ) {}

  get open(): number {
    return this.streams.size;
  }

  async start(api: DockerApi, p: { id: string }): Promise<{ stream: string }> {
    try {
      // A name or id Docker does not know is an error now, not an event later.
      await api.request('GET', `/containers/${encodeURIComponent(p.id)}/json`, undefined, 10_000);
    } catch (err) {
      throw dockerError(err, `read the stats of ${p.id}`);
    }
    const id = newStreamId('stats');
    let buf = '';
    let last = 0;
    let done = false;
    const finish = (error?: ErrorInfo) => {
      if (done) return;
      done = true;
      this.streams.delete(id);
      this.broadcast('containers.stats.end', error ? { stream: id, error } : { stream: id });
    };
    const onLine = (line: string) => {
      if (!line.trim()) return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        return; // not a stats object: skip it
      }
      const now = Date.now();
      if (now - last < MIN_INTERVAL_MS) return;
      last = now;
      this.broadcast('containers.stats.data', { stream: id, ...statsNumbers(parsed), at: new Date(now).toISOString() });
    };
    while (this.streams.size >= this.limit) {
      const [oldest] = this.streams.values();
      if (!oldest) break;
      oldest.stop();
      oldest.finish({ code: 'STREAM_NOT_FOUND', message: 'this stats stream was closed: too many were open at once', hint: 'Open the container again.' });
    }
    const handle = api.stream(
      `/containers/${encodeURIComponent(p.id)}/stats?stream=1`,
      (d) => {
        buf += d.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          onLine(line);
        }
        if (buf.length > MAX_STATS_LINE) {
          handle.stop();
          finish({
            code: 'DOCKER_FAILED',
            message: `the stats of ${p.id} sent a line over ${MAX_STATS_LINE / 1024} KiB`,
            hint: 'Open the container again; Docker in the VM may be misbehaving.',
          });
        }
      },
      (err) => finish(err ? toErrorInfo(dockerError(err, `read the stats of ${p.id}`)) : undefined),
    );
    this.streams.set(id, { stop: handle.stop, finish });
    return { stream: id };
  }

  stop(stream: string): void {
    const s = this.streams.get(stream);
    if (!s) throw new BerthError('STREAM_NOT_FOUND', `there is no stats stream ${stream}`, 'It has ended (or the engine restarted); open it again.');
    s.stop();
    s.finish();
  }

  closeAll(): void {
    for (const s of [...this.streams.values()]) {
      s.stop();
      s.finish();
    }
  }
}
