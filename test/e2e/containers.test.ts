/**
 * The Containers screen in Chromium at 1280×800 with 50 containers, against
 * an engine without a VM (the real dashboard server, control server and
 * Docker handlers over a fake dockerd): Compose groups stopped and started
 * as one, the detail drawer (coloured logs in view, live CPU and memory
 * over one stats stream, inspect), running-only, multi-select and bulk
 * actions, keyboard and labels, and what an open dashboard costs the
 * engine. Screenshots go to test-artifacts/e2e/.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import type { Browser, Locator, Page } from 'playwright-core';
import { startDashboard, type DashboardServer } from '../../app/cli/dashboard.js';
import { ControlClient } from '../../app/client/control-client.js';
import { sleep, waitFor } from '../../app/base/process-util.js';
import { startFakeEngine, type FakeEngine } from '../helpers/fake-engine.js';
import { shortTempDir } from '../helpers/temp.js';
import { chromiumProblem, ensureRendererBuilt, launchBrowser, screenshot, unlabeledControls, unreachableByKeyboard, watchConsole } from './browser.js';

const problem = chromiumProblem();
const N = 50;

gatedSuite('the Containers screen in Chromium (50 containers, 1280×800)', problem, { timeout: 5 * 60_000 }, () => {
  const t = shortTempDir('ctr');
  let engine: FakeEngine;
  let dash: DashboardServer;
  let browser: Browser;
  let page: Page;
  let problems: string[];

  const row = (name: string) => page.locator(`[data-testid=container-row][data-name="${name}"]`);
  const stateOf = (name: string) => row(name).getByTestId('container-state');
  const dockerState = (name: string) => [...engine.dockerd.containers.values()].find((c) => c.Names[0] === `/${name}`)?.State;
  /** The element's box lies inside the viewport: seen without scrolling. */
  const inView = async (l: Locator) => {
    const b = (await l.boundingBox())!;
    return b.y >= 0 && b.x >= 0 && b.y + b.height <= 800 && b.x + b.width <= 1280;
  };

  before(async () => {
    const root = ensureRendererBuilt();
    engine = await startFakeEngine(path.join(t.dir, 'home'), { running: true });
    const compose = (project: string, service: string) => ({ 'com.docker.compose.project': project, 'com.docker.compose.service': service });
    for (const s of ['web', 'db', 'cache']) {
      engine.dockerd.addContainer({
        name: `shop-${s}-1`,
        Image: s === 'db' ? 'postgres:16' : s === 'cache' ? 'redis:7' : 'nginx:1.27',
        Labels: compose('shop', s),
        Env: [`SERVICE=${s}`, 'TZ=UTC'],
        Mounts:
          s === 'db'
            ? [{ Type: 'volume', Name: 'shop_pgdata', Source: '/var/lib/docker/volumes/shop_pgdata/_data', Destination: '/var/lib/postgresql/data', RW: true }]
            : [],
        Ports: s === 'web' ? [{ IP: '0.0.0.0', PrivatePort: 80, PublicPort: 18080, Type: 'tcp' }] : [],
        usage: { cpuNsPerSec: 0.25e9, memoryBytes: 48 * 2 ** 20 },
      });
    }
    for (const s of ['app', 'worker']) engine.dockerd.addContainer({ name: `blog-${s}-1`, Labels: compose('blog', s) });
    for (let i = 0; engine.dockerd.containers.size < N; i++) {
      engine.dockerd.addContainer({
        name: `svc-${String(i).padStart(2, '0')}`,
        Image: i % 3 ? 'nginx:1.27' : 'busybox:latest',
        State: i % 4 ? 'running' : 'exited',
      });
    }
    const web = [...engine.dockerd.containers.values()].find((c) => c.Names[0] === '/shop-web-1')!;
    for (let i = 0; i < 150; i++) engine.dockerd.log(web.Id, `\x1b[2m${i}\x1b[22m GET /item/${i} 200\n`);
    engine.dockerd.log(web.Id, '\x1b[32mINFO\x1b[39m listening on :80\n');
    engine.dockerd.log(web.Id, '\x1b[1;31mERROR\x1b[0m upstream \x1b]0;title\x07timed out\n', 'stderr');
    dash = await startDashboard({ paths: engine.paths, root, connect: () => ControlClient.connect(engine.paths, 'test') });
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    problems = watchConsole(page);
    await page.goto(dash.url.replace('/#token=', '/#/containers&token='));
    await page.getByRole('heading', { level: 1, name: 'Containers' }).waitFor();
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=container-row]').length === n, N);
  });
  after(async () => {
    await browser?.close();
    await dash?.close();
    await engine?.close();
    t.cleanup();
  });

  test('Compose projects are groups; a group is stopped and started as one, the others untouched', async () => {
    const groups = await page.getByTestId('container-group').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-project')));
    assert.deepEqual(groups, ['blog', 'shop', ''], 'projects by name, then the containers in none');
    const shop = page.locator('[data-testid=container-group][data-project=shop]');
    assert.match(await shop.getByTestId('group-summary').innerText(), /3 of 3 running/);
    await page.getByRole('button', { name: 'Stop every container of shop' }).click();
    await shop.getByTestId('group-summary').getByText('0 of 3 running').waitFor();
    for (const s of ['web', 'db', 'cache']) {
      assert.equal(await stateOf(`shop-${s}-1`).innerText(), 'exited');
      assert.equal(dockerState(`shop-${s}-1`), 'exited');
    }
    assert.equal(dockerState('blog-app-1'), 'running', 'another project is untouched');
    await screenshot(page, 'containers-group-stopped', { fullPage: false });
    assert.equal(await page.getByRole('button', { name: 'Stop every container of shop' }).isDisabled(), true, 'nothing left to stop');
    await page.getByRole('button', { name: 'Start every container of shop' }).click();
    await shop.getByTestId('group-summary').getByText('3 of 3 running').waitFor();
    for (const s of ['web', 'db', 'cache']) assert.equal(dockerState(`shop-${s}-1`), 'running');

    const toggle = page.getByRole('button', { name: 'shop: show or hide its containers' });
    await toggle.click();
    assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
    await row('shop-web-1').waitFor({ state: 'detached' });
    await toggle.click();
    await row('shop-web-1').waitFor();
    assert.deepEqual(problems, []);
  });

  test('the drawer: the log in view without scrolling, in colour from ANSI codes; live CPU and memory; inspect', async () => {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.getByRole('button', { name: 'Details of shop-web-1' }).click();
    const drawer = page.getByRole('region', { name: 'shop-web-1' });
    const log = drawer.getByRole('log', { name: 'Log of shop-web-1' });
    await log.getByText('timed out').waitFor();
    assert.equal(await page.evaluate(() => window.scrollY), 0, 'the page did not scroll');
    assert.ok(await inView(log), 'the whole log box is in the viewport');
    const box = (await log.boundingBox())!;
    assert.ok(box.height >= 400, `the log takes most of the height (${box.height} px)`);
    const error = log.locator('span.ansi', { hasText: 'ERROR' });
    const info = log.locator('span.ansi', { hasText: 'INFO' });
    assert.ok(await inView(error), 'the newest lines are in view (follow)');
    assert.equal(await error.evaluate((e) => getComputedStyle(e).color), 'rgb(255, 123, 114)', 'ERROR in red');
    assert.equal(await error.evaluate((e) => getComputedStyle(e).fontWeight), '700', 'and bold');
    assert.equal(await info.evaluate((e) => getComputedStyle(e).color), 'rgb(63, 185, 80)', 'INFO in green');
    const text = await log.innerText();
    assert.doesNotMatch(text, /\x1b|\[\d+m|\]0;/, 'no escape code shows');
    assert.match(text, /ERROR upstream timed out/);
    await screenshot(page, 'containers-drawer-logs', { fullPage: false });
    const download = page.waitForEvent('download');
    await drawer.getByRole('button', { name: 'Download the log of shop-web-1' }).click();
    const file = await (await download).path();
    assert.equal((await download).suggestedFilename(), 'shop-web-1.log');
    const saved = fs.readFileSync(file, 'utf8');
    assert.match(saved, /^0 GET \/item\/0 200\n/);
    assert.match(saved, /\nERROR upstream timed out\n$/, 'plain text, no escape codes');

    await drawer
      .getByTestId('stats-cpu')
      .getByText(/^\d+\.\d %$/)
      .waitFor();
    assert.equal(await drawer.getByTestId('stats-cpu').innerText(), '25.0 %', 'a quarter of one CPU (0.25 s a second), as docker stats says');
    assert.match(await drawer.getByTestId('stats-memory').innerText(), /^50\.3 MB of 2\.1 GB$/);
    assert.equal(engine.dockerd.openStats(), 1, 'one stats stream for the open drawer');

    await drawer.getByRole('tab', { name: 'Inspect' }).click();
    const inspect = drawer.getByTestId('inspect');
    await inspect.getByRole('table', { name: 'Environment of shop-web-1' }).getByText('SERVICE').waitFor();
    assert.match(await inspect.getByRole('table', { name: 'Labels of shop-web-1' }).innerText(), /com\.docker\.compose\.project\s+shop/);
    assert.match(await inspect.innerText(), /80\/tcp → localhost:18080/);
    await screenshot(page, 'containers-drawer-inspect', { fullPage: false });

    // Another container in the same drawer: the stream follows, still one.
    await page.getByRole('button', { name: 'Details of shop-db-1' }).click();
    const db = page.getByRole('region', { name: 'shop-db-1' });
    await db.getByRole('table', { name: 'Mounts of shop-db-1' }).getByText('/var/lib/postgresql/data').waitFor();
    assert.ok(await waitFor(() => engine.dockerd.openStats() === 1, 3000), `stats streams: ${engine.dockerd.openStats()}`);
    assert.deepEqual(problems, []);
  });

  test('the drawer and the grouped list: every control labelled and reachable with Tab; Escape closes and stops the stats', async () => {
    const db = page.getByRole('region', { name: 'shop-db-1' });
    for (const tab of ['Logs', 'Inspect']) {
      await db.getByRole('tab', { name: tab }).click();
      assert.deepEqual(await unlabeledControls(page), [], `${tab}: unlabeled controls`);
      assert.deepEqual(await unreachableByKeyboard(page, 600), [], `${tab}: controls Tab never reaches`);
    }
    await db.getByRole('tab', { name: 'Logs' }).click();
    await db.getByRole('searchbox', { name: 'Search' }).focus();
    await page.keyboard.press('Escape');
    await db.waitFor({ state: 'detached' });
    assert.ok(await waitFor(() => engine.dockerd.openStats() === 0, 3000), 'the stats stream closed with the drawer');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Details of shop-db-1', 'focus went back to what opened it');
    // Keyboard only: Enter on the name opens it again.
    await page.keyboard.press('Enter');
    await page.getByRole('region', { name: 'shop-db-1' }).waitFor();
    await page.keyboard.press('Escape');
    assert.deepEqual(problems, []);
  });

  test('running only; multi-select with bulk stop and start; a bulk remove asks first', async () => {
    const running = () => [...engine.dockerd.containers.values()].filter((c) => c.State === 'running').length;
    await page.getByRole('checkbox', { name: 'Running only' }).check();
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=container-row]').length === n, running());
    await page.getByRole('checkbox', { name: 'Running only' }).uncheck();
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=container-row]').length === n, N);

    await page.getByRole('checkbox', { name: 'Select svc-01' }).check();
    await page.getByRole('checkbox', { name: 'Select svc-02' }).check();
    const bar = page.getByRole('region', { name: 'Selected containers' });
    await bar.getByText('2 selected').waitFor();
    await bar.getByRole('button', { name: 'Stop' }).click();
    await stateOf('svc-01').getByText('exited').waitFor();
    await stateOf('svc-02').getByText('exited').waitFor();
    await screenshot(page, 'containers-bulk-selected');
    await bar.getByRole('button', { name: 'Start', exact: true }).click();
    await stateOf('svc-01').getByText('running').waitFor();
    await stateOf('svc-02').getByText('running').waitFor();
    await bar.getByRole('button', { name: 'Clear selection' }).click();
    await bar.waitFor({ state: 'detached' });

    await page.getByRole('checkbox', { name: 'Select every container of blog' }).check();
    await bar.getByText('2 selected').waitFor();
    await bar.getByRole('button', { name: 'Remove…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Remove 2 selected containers?' });
    await dialog.waitFor();
    assert.match(await dialog.innerText(), /blog-app-1, blog-worker-1/);
    await dialog.getByRole('button', { name: 'Remove 2 containers' }).click();
    await page.locator('[data-testid=container-group][data-project=blog]').waitFor({ state: 'detached' });
    assert.equal(dockerState('blog-app-1'), undefined);
    assert.equal(dockerState('blog-worker-1'), undefined);
    await bar.waitFor({ state: 'detached' }); // the removed ones left the selection
    assert.deepEqual(problems, []);
  });

  test('an open dashboard does not poll: with the drawer open dockerd sees no request but the stats stream; the engine CPU', async (tc) => {
    await page.getByRole('button', { name: 'Details of shop-web-1' }).click();
    const drawer = page.getByRole('region', { name: 'shop-web-1' });
    await drawer.getByTestId('stats-cpu').getByText(/%$/).waitFor();
    await sleep(1000);
    const seen = engine.dockerd.requests.length;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await sleep(10_000);
    const used = process.cpuUsage(cpu0);
    const wall = performance.now() - t0;
    const share = ((used.user + used.system) / 1000 / wall) * 100;
    assert.deepEqual(engine.dockerd.requests.slice(seen), [], 'no Docker request in 10 s: the list follows events, the stats are one stream');
    assert.equal(engine.dockerd.openStats(), 1);
    // The engine side (control server, Docker handlers, dashboard bridge) runs in this process with the fake dockerd and
    // Playwright's client: an upper bound for the engine. A measurement, not an assertion (bench numbers are not asserted).
    tc.diagnostic(
      `engine-side CPU with the dashboard open on ${N} containers and the drawer streaming stats: ${share.toFixed(2)} % of one core over ${(wall / 1000).toFixed(1)} s`,
    );
    console.log(`# engine-side CPU, dashboard open on ${N} containers, drawer open: ${share.toFixed(2)} % of one core`);
    await page.keyboard.press('Escape');
    assert.deepEqual(problems, []);
  });
});
