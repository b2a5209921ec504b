/**
 * Hot reload, as a developer feels it (issue 18): how long a host edit
 * takes to reach a file watcher in a container, and a container's write to
 * reach the host's own watcher, through one shared folder.
 *
 * - host → container: a container runs the inotify-watch fixture on the
 *   folder; the bench rewrites one of many files (a different one each
 *   time, so a late event of an earlier edit is never taken for this one)
 *   and times until the watcher prints an event for that name.
 * - container → host: the same container reads lines on its stdin (docker
 *   attach through Berth's socket) and writes each to a file in the
 *   folder, then echoes it; the host's fs.watch (inotify here) times the
 *   file's first event, and the echo shows what the attach path alone
 *   costs (its round trip), in the same run.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { sleep, waitFor } from '../app/base/process-util.js';
import { pct } from './bench-kit.js';

export interface HotReloadResult {
  label: string;
  edits: number;
  /** What the container's watcher printed for the first edit (its kinds). */
  firstEvents: string;
  hostToContainer: number[];
  containerToHost: number[];
  /** The attach's round trip of the same lines (stdin in, echo out). */
  attachEcho: number[];
}

/** Lines a child prints, each with when it arrived. */
function lineLog(stream: NodeJS.ReadableStream): { lines: { at: number; text: string }[] } {
  const log = { lines: [] as { at: number; text: string }[] };
  let part = '';
  stream.on('data', (d: Buffer) => {
    const at = performance.now();
    const all = part + d.toString();
    const pieces = all.split('\n');
    part = pieces.pop() ?? '';
    for (const text of pieces) log.lines.push({ at, text });
  });
  return log;
}

/** What `find` finds, polled every 2 ms (waitFor); an error naming `what` after `timeoutMs`. */
async function until<T>(what: string, find: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  let v: T | undefined;
  if (await waitFor(() => (v = find()) !== undefined, timeoutMs, 2)) return v!;
  throw new Error(`hot reload bench: ${what} did not happen within ${timeoutMs / 1000} s`);
}

/**
 * `dir`: a host folder shared at the same path; `image` has busybox and
 * /bin/inotify-watch; `env` points docker at Berth.
 */
export async function benchHotReload(label: string, dir: string, image: string, env: NodeJS.ProcessEnv, edits = 200): Promise<HotReloadResult> {
  const hot = path.join(dir, 'hot');
  fs.rmSync(hot, { recursive: true, force: true });
  fs.mkdirSync(hot);
  for (let i = 0; i < edits; i++) fs.writeFileSync(path.join(hot, `m${i}.js`), 'v0');
  const script = `inotify-watch ${hot} & while read l; do echo "$l" > ${hot}/out.txt; echo "wrote $l"; done`;
  const child = spawn('docker', ['run', '--rm', '-i', '-v', `${dir}:${dir}`, image, 'sh', '-c', script], { env });
  const out = lineLog(child.stdout);
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const watcher = fs.watch(hot);
  const hostEvents: { at: number; name: string }[] = [];
  watcher.on('change', (_kind, name) => hostEvents.push({ at: performance.now(), name: String(name) }));
  const result: HotReloadResult = { label, edits, firstEvents: '', hostToContainer: [], containerToHost: [], attachEcho: [] };
  try {
    await until(`the watcher in the container starting (${err.trim()})`, () => out.lines.find((l) => l.text.startsWith('watching')));
    // The engine starts watching a bind-mounted folder when it hears of the
    // container: edit until the first event comes through, untimed.
    const warm = path.join(hot, 'warm.js');
    for (let n = 0; ; n++) {
      const mark = out.lines.length;
      fs.writeFileSync(warm, `w${n}`);
      await sleep(500);
      if (out.lines.slice(mark).some((l) => l.text.endsWith(' warm.js'))) break;
      if (n > 60) throw new Error('hot reload bench: no event in the container for 30 s of edits');
    }
    await sleep(300);
    for (let i = 0; i < edits; i++) {
      const name = `m${i}.js`;
      const mark = out.lines.length;
      const t0 = performance.now();
      fs.writeFileSync(path.join(hot, name), `v${i + 1}`);
      const got = await until(`an event for ${name}`, () => out.lines.slice(mark).find((l) => l.text.endsWith(` ${name}`)));
      result.hostToContainer.push(got.at - t0);
      if (i === 0) {
        await sleep(200);
        result.firstEvents = out.lines
          .slice(mark)
          .filter((l) => l.text.endsWith(` ${name}`))
          .map((l) => l.text)
          .join('; ');
      }
    }
    for (let i = 0; i < edits; i++) {
      const eventMark = hostEvents.length;
      const mark = out.lines.length;
      const t0 = performance.now();
      child.stdin.write(`line-${i}\n`);
      const ev = await until('the host event for out.txt', () => hostEvents.slice(eventMark).find((e) => e.name === 'out.txt'));
      const echo = await until('the echo', () => out.lines.slice(mark).find((l) => l.text === `wrote line-${i}`));
      result.containerToHost.push(ev.at - t0);
      result.attachEcho.push(echo.at - t0);
      // Let the write's other events (open, close) pass before the next line.
      await sleep(20);
    }
  } finally {
    watcher.close();
    child.stdin.end();
    child.kill();
    fs.rmSync(hot, { recursive: true, force: true });
  }
  return result;
}

/** The results.md rows for one or more shared folders. */
export function hotReloadRows(results: HotReloadResult[]): string[] {
  const f = (xs: number[]) => `${Math.round(pct(xs, 50))} ms / ${Math.round(pct(xs, 95))} ms / ${Math.round(Math.max(...xs))} ms`;
  return [
    "Hot reload: a host edit → the inotify event in a container watching the folder (on a synced folder the sync carries the edit to the guest copy, and the container's write back), and a container write → the host's own watcher (fs.watch); one container, the bench rewriting a different file each time. The container's writes are asked for over `docker run -i` (the attach through Berth's socket), whose round trip (line in, echo out) is shown alongside as what that path alone costs.",
    '',
    '| folder | host edit → event in the container, p50 / p95 / max | container write → host event | attach round trip (reference) | events the container saw for one host edit |',
    '|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${r.label} (${r.edits} edits each way) | ${f(r.hostToContainer)} | ${f(r.containerToHost)} | ${f(r.attachEcho)} | ${r.firstEvents.replace(/\|/g, '\\|') || 'none'} |`,
    ),
    '',
  ];
}
