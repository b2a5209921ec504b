/**
 * The dashboard's numbers for `npm run bench`: first paint, the time until
 * a list of 200 containers is on screen, and the renderer's memory, in
 * Debian's Chromium against `berth dashboard`'s server.
 *
 * Everything between the page and dockerd is the real code (the dashboard
 * server, the WebSocket bridge, the control server, the Docker handlers and
 * their HTTP client); dockerd itself is a fake holding the containers, so
 * the numbers measure Berth and not how long a TCG VM takes to create 200
 * containers.
 *
 *   const r = await benchDashboard({ containers: 200, runs: 3 });
 *   rows.push(...dashboardRows(r));
 */
import fs from 'node:fs';
import path from 'node:path';
import { startDashboard } from '../app/cli/dashboard.js';
import { ControlClient } from '../app/client/control-client.js';
import { packageRoot } from '../app/base/package-root.js';
import { processRssKiB } from '../app/base/process-util.js';
import { startFakeEngine } from '../test/helpers/fake-engine.js';

export interface DashboardBenchResult {
  containers: number;
  runs: number;
  /** Navigation start → first paint / first contentful paint (ms), one per run. */
  firstPaintMs: number[];
  firstContentfulPaintMs: number[];
  /** Navigation start → every container row of the list in the DOM (ms), one per run. */
  containerListMs: number[];
  /** After the list is shown: the page's JS heap in use, its DOM nodes, the largest renderer process's RSS. */
  jsHeapMiB: number[];
  domNodes: number[];
  rendererRssMiB: number[];
  /** Why it could not run (no Chromium, no built renderer), when it could not. */
  skipped?: string;
}

const CHROMIUM = process.env.BERTH_CHROMIUM || '/usr/bin/chromium';

/** Processes below `root` (Linux /proc) whose command line has `--type=renderer`. */
function rendererPids(root: number): number[] {
  const parent = new Map<number, number>();
  const cmd = new Map<number, string>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      cmd.set(Number(d), fs.readFileSync(`/proc/${d}/cmdline`, 'utf8'));
    } catch {
      /* gone */
    }
  }
  const below = (pid: number): boolean => {
    for (let p = parent.get(pid), n = 0; p && n < 20; p = parent.get(p), n++) if (p === root) return true;
    return false;
  };
  return [...cmd].filter(([pid, c]) => c.includes('--type=renderer') && below(pid)).map(([pid]) => pid);
}

export async function benchDashboard(o: { containers?: number; runs?: number } = {}): Promise<DashboardBenchResult> {
  const n = o.containers ?? 200;
  const runs = o.runs ?? 3;
  const result: DashboardBenchResult = {
    containers: n,
    runs,
    firstPaintMs: [],
    firstContentfulPaintMs: [],
    containerListMs: [],
    jsHeapMiB: [],
    domNodes: [],
    rendererRssMiB: [],
  };
  const rendererRoot = path.join(packageRoot(), 'dist', 'renderer');
  if (!fs.existsSync(CHROMIUM)) return { ...result, skipped: `${CHROMIUM} is missing (apt-get install -y chromium)` };
  if (!fs.existsSync(path.join(rendererRoot, 'index.html'))) return { ...result, skipped: 'the renderer is not built (npm run build)' };

  const { chromium } = await import('playwright-core');
  const home = fs.mkdtempSync('/tmp/bdash-');
  const engine = await startFakeEngine(home, { running: true });
  for (let i = 0; i < n; i++) {
    engine.dockerd.addContainer({
      name: `svc-${String(i).padStart(3, '0')}`,
      Image: i % 3 ? 'nginx:1.27' : 'postgres:16',
      State: i % 4 ? 'running' : 'exited',
      Created: 1_700_000_000 + i,
      Ports: i % 2 ? [{ IP: '0.0.0.0', PrivatePort: 80, PublicPort: 20000 + i, Type: 'tcp' }] : [],
      Labels: i % 5 ? {} : { 'com.docker.compose.project': `stack-${i % 7}` },
    });
  }
  const dash = await startDashboard({ paths: engine.paths, root: rendererRoot, connect: () => ControlClient.connect(engine.paths, 'bench') });
  const server = await chromium.launchServer({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-dev-shm-usage',
    ],
  });
  const browser = await chromium.connect(server.wsEndpoint());
  try {
    // One unmeasured load first: the OS file cache, not the dashboard, would dominate it.
    for (let run = -1; run < runs; run++) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      // A string, not a function: a bundler's helpers around a function would not exist in the page.
      await page.addInitScript(
        `new MutationObserver(() => { if (window.__listShownAt === undefined && document.querySelectorAll('[data-testid=container-row]').length >= ${n}) window.__listShownAt = performance.now(); }).observe(document, { childList: true, subtree: true });`,
      );
      // The page opens straight on the container list (token in the address as `berth dashboard` prints it).
      await page.goto(dash.url.replace('/#token=', '/#/containers&token='), { waitUntil: 'load' });
      // Functions without DOM types (this file is built for Node); the page's CSP forbids evaluating strings.
      await page.waitForFunction(() => (globalThis as { __listShownAt?: number }).__listShownAt !== undefined, null, { timeout: 60_000 });
      // Paint entries can be recorded a little after the frame: wait for both, and a load without them is an error, not a number.
      await page
        .waitForFunction(
          () => {
            const names = (globalThis as unknown as { performance: { getEntriesByType(t: string): { name: string }[] } }).performance
              .getEntriesByType('paint')
              .map((e) => e.name);
            return names.includes('first-paint') && names.includes('first-contentful-paint');
          },
          null,
          { timeout: 10_000 },
        )
        .catch(() => {
          throw new Error('the dashboard page reported no first-paint / first-contentful-paint entry within 10 s of listing the containers');
        });
      const t = await page.evaluate(() => {
        const g = globalThis as unknown as { __listShownAt: number; performance: { getEntriesByType(t: string): { name: string; startTime: number }[] } };
        const paint = Object.fromEntries(g.performance.getEntriesByType('paint').map((e) => [e.name, e.startTime]));
        return { fp: paint['first-paint']!, fcp: paint['first-contentful-paint']!, list: g.__listShownAt };
      });
      const cdp = await context.newCDPSession(page);
      await cdp.send('HeapProfiler.collectGarbage');
      await cdp.send('Performance.enable');
      const metrics = Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
      // The page's renderer is the largest of them (Chromium keeps a spare one around).
      const rss = Math.max(0, ...rendererPids(server.process().pid!).map((pid) => processRssKiB(pid) ?? 0));
      if (run >= 0) {
        result.firstPaintMs.push(t.fp);
        result.firstContentfulPaintMs.push(t.fcp);
        result.containerListMs.push(t.list);
        result.jsHeapMiB.push((metrics.JSHeapUsedSize ?? NaN) / 2 ** 20);
        result.domNodes.push(metrics.Nodes ?? NaN);
        result.rendererRssMiB.push(rss / 1024);
      }
      await context.close();
    }
  } finally {
    await browser.close().catch(() => undefined);
    await server.close().catch(() => undefined);
    await dash.close();
    await engine.close();
    fs.rmSync(home, { recursive: true, force: true });
  }
  return result;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** The result as a markdown section for bench/results.md. */
export function dashboardRows(r: DashboardBenchResult): string[] {
  if (r.skipped) return ['## Dashboard', '', `Not measured: ${r.skipped}.`, ''];
  const ms = (xs: number[]) => `${median(xs).toFixed(0)} ms (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;
  const mib = (xs: number[]) => `${median(xs).toFixed(1)} MiB`;
  return [
    '## Dashboard',
    '',
    `\`berth dashboard\` in headless Chromium, opened on the container list with ${r.containers} containers; from navigation start, median of ${r.runs} loads (range). Real dashboard server, WebSocket bridge, control server and Docker handlers; a fake dockerd holds the containers.`,
    '',
    '| measure | value |',
    '|---|---|',
    `| first paint | ${ms(r.firstPaintMs)} |`,
    `| first contentful paint | ${ms(r.firstContentfulPaintMs)} |`,
    `| all ${r.containers} containers listed | ${ms(r.containerListMs)} |`,
    `| renderer JS heap in use (after GC) | ${mib(r.jsHeapMiB)} |`,
    `| largest renderer process RSS (shared pages counted) | ${mib(r.rendererRssMiB)} |`,
    `| DOM nodes | ${median(r.domNodes).toFixed(0)} |`,
    '',
  ];
}
