/**
 * Loaded into an engine process with `node --import` by engine-idle.ts
 * (never by the app): on each SIGUSR2 it appends one JSON report to the
 * file named by BERTH_ENGINE_PROBE. A report holds the process's memory
 * (RSS from /proc, process.memoryUsage, V8's heap spaces), and, with
 * BERTH_ENGINE_PROBE_WAKEUPS=1, every callback that ran since the last
 * report, grouped by where its async resource (timer, socket, ...) was
 * made; with BERTH_ENGINE_PROBE_SCRIPTS=1, the scripts V8 has parsed, by
 * package; with BERTH_ENGINE_PROBE_HEAP=1, live heap by the script that
 * allocated it (V8's sampling heap profiler, started here at load).
 *
 * Each option costs memory of its own: the memory numbers are only
 * meaningful from a run with none of them (engine-idle.ts runs that first).
 */
import { createHook } from 'node:async_hooks';
import fs from 'node:fs';
import v8 from 'node:v8';

const out = process.env.BERTH_ENGINE_PROBE;
const wakeups = process.env.BERTH_ENGINE_PROBE_WAKEUPS === '1';
const scripts = process.env.BERTH_ENGINE_PROBE_SCRIPTS === '1';
const heap = process.env.BERTH_ENGINE_PROBE_HEAP === '1';

/** The first stack frame outside node's internals and this file: where a resource was made. */
function siteOf(stack: string | undefined): string {
  const frames = (stack ?? '')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().replace(/^at /, ''));
  const own = frames.filter((f) => !f.includes('node:') && !f.includes('engine-probe') && !f.includes('(<anonymous>)'));
  const pick = own.slice(0, 3).map((f) => f.replace(/file:\/\/[^ )]*\/(dist|node_modules)\//, '$1/'));
  return pick.join(' < ') || frames[0] || '?';
}

const sites = new Map<number, string>();
const counts = new Map<string, number>();
if (wakeups) {
  createHook({
    init(id, type) {
      if (type === 'PROMISE') return;
      const holder: { stack?: string } = {};
      Error.captureStackTrace(holder);
      sites.set(id, `${type} ${siteOf(holder.stack)}`);
    },
    before(id) {
      const site = sites.get(id);
      if (site) counts.set(site, (counts.get(site) ?? 0) + 1);
    },
    destroy(id) {
      sites.delete(id);
    },
  }).enable();
}

// node:inspector only when asked: loading it costs memory of its own.
const inspector = heap || scripts ? (await import('node:inspector')).default : undefined;
let session: import('node:inspector').Session | undefined;
const post = <T>(method: string, params?: object) =>
  new Promise<T>((resolve, reject) => session!.post(method, params ?? {}, (err, r) => (err ? reject(err) : resolve(r as T))));
if (heap) {
  session = new inspector!.Session();
  session.connect();
  void post('HeapProfiler.startSampling', { samplingInterval: 4096 });
}

function procStatus(): Record<string, number> {
  const r: Record<string, number> = {};
  for (const line of fs.readFileSync('/proc/self/status', 'utf8').split('\n')) {
    const m = /^(VmRSS|RssAnon|RssFile|RssShmem|VmHWM):\s+(\d+) kB/.exec(line);
    if (m) r[m[1]!] = Number(m[2]);
  }
  return r;
}

/** A script URL reduced to what it belongs to: a package, or the file of ours. */
function ownerOf(url: string): string {
  const nm = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const d = /\/dist\/(.*)$/.exec(url);
  if (d) return d[1]!;
  if (url.startsWith('node:')) return 'node:';
  return url || '(eval)';
}

interface HeapNode {
  callFrame: { url: string };
  selfSize: number;
  children: HeapNode[];
}

async function report(): Promise<object> {
  const r: Record<string, unknown> = {
    at: new Date().toISOString(),
    proc: procStatus(),
    memoryUsage: process.memoryUsage(),
    heapSpaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { used: s.space_used_size, size: s.space_size }])),
    heap: v8.getHeapStatistics(),
    activeResources: process.getActiveResourcesInfo(),
  };
  if (wakeups) {
    r.wakeups = Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]));
    counts.clear();
  }
  if (heap) {
    const { profile } = await post<{ profile: { head: HeapNode } }>('HeapProfiler.getSamplingProfile');
    const by = new Map<string, number>();
    const walk = (n: HeapNode) => {
      const k = ownerOf(n.callFrame.url);
      by.set(k, (by.get(k) ?? 0) + n.selfSize);
      n.children.forEach(walk);
    };
    walk(profile.head);
    r.liveHeapByScript = Object.fromEntries([...by].sort((a, b) => b[1] - a[1]).slice(0, 60));
  }
  if (scripts) {
    const s = new inspector!.Session();
    s.connect();
    const parsed: { url: string; length: number }[] = [];
    s.on('Debugger.scriptParsed', (m) => parsed.push({ url: m.params.url, length: (m.params as { length?: number }).length ?? 0 }));
    await new Promise<void>((resolve) => s.post('Debugger.enable', () => resolve()));
    s.disconnect();
    const by = new Map<string, { files: number; chars: number }>();
    for (const p of parsed) {
      const k = ownerOf(p.url);
      const e = by.get(k) ?? { files: 0, chars: 0 };
      e.files++;
      e.chars += p.length;
      by.set(k, e);
    }
    r.scripts = Object.fromEntries([...by].sort((a, b) => b[1].chars - a[1].chars));
  }
  return r;
}

if (out) {
  process.on('SIGUSR2', () => {
    void report().then((r) => fs.appendFileSync(out, JSON.stringify(r) + '\n'));
  });
}
