/**
 * The dashboard end to end: `berth dashboard` as a user runs it, Debian's
 * Chromium, a real engine with a real VM (TCG here) and the real docker
 * CLI. Start the VM from the UI, see a container started with `docker run`
 * appear, open its port, stream its log, type in its terminal, stop and
 * remove it, and change settings. Screenshots of every screen go to
 * test-artifacts/e2e/. Times are printed, not asserted (`npm run bench`).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import type { Browser, Page } from 'playwright-core';
import { busyboxRootfsTar } from '../helpers/busybox-rootfs.js';
import { BERTH_BIN } from '../helpers/run.js';
import { ensureImage, vmPrereqProblem } from '../integration/prereqs.js';
import { vmFixture } from '../integration/vm-fixture.js';
import { chromiumProblem, ensureRendererBuilt, launchBrowser, screenshot, unlabeledControls, watchConsole } from './browser.js';

const problem = vmPrereqProblem() ?? chromiumProblem();

const PORT = 18480;
const MIN = 60_000;

gatedSuite('the dashboard with a real VM', problem, { timeout: 30 * MIN }, () => {
  const vm = vmFixture('bd');
  let dashboard: ChildProcess | undefined;
  let url = '';
  /** The owner-only open file the CLI would hand a browser (the token never on a command line). */
  let openUrl = '';
  let browser: Browser;
  let page: Page;
  let problems: string[];
  const t0 = Date.now();
  const note = (what: string) => process.stdout.write(`# ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);

  before(async () => {
    await ensureImage();
    ensureRendererBuilt();
    dashboard = spawn(process.execPath, [BERTH_BIN, 'dashboard', '--no-open', '--json'], { env: vm.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    dashboard.stderr!.on('data', (d) => (err += d));
    ({ url, openUrl } = await new Promise<{ url: string; openUrl: string }>((resolve, reject) => {
      let out = '';
      dashboard!.stdout!.on('data', (d) => {
        out += d;
        const line = out.split('\n')[0]!;
        if (out.includes('\n')) resolve(JSON.parse(line) as { url: string; openUrl: string });
      });
      dashboard!.once('exit', (code) => reject(new Error(`berth dashboard exited ${code}: ${err}`)));
    }));
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/#token=/);
    assert.match(openUrl, /^file:\/\//);
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.setDefaultTimeout(60_000);
    problems = watchConsole(page);
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    if (dashboard && dashboard.exitCode === null) {
      dashboard.kill('SIGTERM');
      await new Promise((r) => dashboard!.once('exit', r));
    }
    await vm.cleanup();
  });

  const go = async (screen: string) => {
    await page.getByRole('navigation', { name: 'Screens' }).getByRole('link', { name: screen }).click();
    await page.getByRole('heading', { level: 1, name: screen }).waitFor();
  };
  const checkScreen = async (name: string) => {
    await page.waitForTimeout(300);
    await screenshot(page, `vm-${name}`);
    assert.deepEqual(await unlabeledControls(page), [], `${name}: unlabeled controls`);
  };
  const row = (name: string) => page.locator(`[data-testid=container-row][data-name="${name}"]`);

  test('no engine yet: the VM shows stopped; Start starts it and the state follows to running', async () => {
    // As a browser `berth dashboard` opens: the owner-only file, which sends it on with the token.
    await page.goto(openUrl, { waitUntil: 'commit' });
    await page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\//);
    await page.getByTestId('vm-state').getByText('Stopped').waitFor();
    await checkScreen('home-stopped');
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    await page
      .getByTestId('vm-state')
      .getByText(/^Starting/)
      .waitFor({ timeout: 2 * MIN });
    note('UI shows starting');
    await page.getByRole('list', { name: 'Start progress' }).waitFor();
    await page.waitForFunction(
      () => /Booting the VM|Waiting for the guest|Starting Docker/.test(document.querySelector('[data-testid=vm-state]')!.textContent!),
      null,
      { timeout: 5 * MIN },
    );
    await screenshot(page, 'vm-home-starting');
    await page
      .getByTestId('vm-state')
      .getByText('Running')
      .waitFor({ timeout: 10 * MIN });
    note('UI shows running');
    assert.match(await page.getByTestId('docker-host').innerText(), new RegExp(`DOCKER_HOST=unix://${vm.sock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    await page.getByTestId('containers-count').waitFor();
    await checkScreen('home-running');
  });

  test('a container run with the docker CLI appears live, and its port link opens it', async () => {
    const tar = busyboxRootfsTar(vm.dir);
    await vm.ok(['import', tar, 'bbd:1']);
    await go('Containers');
    await page.getByText('No containers yet').waitFor();
    await vm.ok([
      'run',
      '-d',
      '--name',
      'web',
      '-p',
      `${PORT}:80`,
      'bbd:1',
      'sh',
      '-c',
      'httpd -p 80 -h /www; i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 1; done',
    ]);
    note('docker run returned');
    await row('web').waitFor({ timeout: 30_000 });
    note('container row shown');
    await row('web').getByTestId('container-state').getByText('running').waitFor();
    const link = row('web').getByRole('link', { name: `Open port ${PORT} of web in the browser` });
    assert.equal(await link.getAttribute('href'), `http://localhost:${PORT}`);
    // The forward follows Docker's events; give it its second.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const popupP = page.context().waitForEvent('page');
      await link.click();
      const popup = await popupP;
      await popup.waitForLoadState('domcontentloaded').catch(() => undefined);
      const text = (await popup.content().catch(() => '')) ?? '';
      await popup.close();
      if (text.includes('hello from busybox httpd')) break;
      assert.ok(Date.now() < deadline, `the port link did not show the container's page; last page: ${text.slice(0, 300)}`);
      await page.waitForTimeout(500);
    }
    note('port link opened the container page');
    await checkScreen('containers');
  });

  test("its drawer: the log streams (search, timestamps), live CPU and memory from Docker's stats, inspect", async () => {
    await row('web').getByRole('button', { name: 'Details of web' }).click();
    const drawer = page.getByRole('region', { name: 'web' });
    const log = drawer.getByTestId('log-lines');
    await log.getByText('tick 1', { exact: true }).waitFor({ timeout: 30_000 });
    const seen = async () => Math.max(...[...(await log.innerText()).matchAll(/tick (\d+)/g)].map((m) => Number(m[1])));
    const first = await seen();
    await page.waitForFunction(
      (n) => [...document.querySelector('[data-testid=log-lines]')!.textContent!.matchAll(/tick (\d+)/g)].some((m) => Number(m[1]) >= n + 2),
      first,
      { timeout: 30_000 },
    );
    await drawer.getByRole('searchbox', { name: 'Search' }).fill('tick 1');
    await page.waitForFunction(
      () =>
        document.querySelector('[data-testid=log-lines]')!.textContent!.split('tick').length > 1 &&
        !/tick 0/.test(document.querySelector('[data-testid=log-lines]')!.textContent!),
    );
    await drawer.getByRole('searchbox', { name: 'Search' }).fill('');
    await drawer.getByRole('checkbox', { name: 'Timestamps' }).check();
    assert.match(await log.innerText(), /\d{4}-\d\d-\d\dT[\d:.]+Z tick \d+/);
    await drawer
      .getByTestId('stats-cpu')
      .getByText(/^\d+\.\d %$/)
      .waitFor({ timeout: 30_000 });
    assert.match(await drawer.getByTestId('stats-memory').innerText(), /^[\d.]+ [kMG]?B of [\d.]+ [MG]B$/);
    await checkScreen('containers-logs');
    // What the engine spends with the dashboard open on this container (a measurement, printed).
    const pid = (JSON.parse((await vm.berth(['status', '--json'])).stdout) as { enginePid: number }).enginePid;
    const ticks = () =>
      fs
        .readFileSync(`/proc/${pid}/stat`, 'utf8')
        .split(') ')[1]!
        .split(' ')
        .slice(11, 13)
        .reduce((a, b) => a + Number(b), 0);
    const c0 = ticks();
    await page.waitForTimeout(10_000);
    note(`engine CPU with the dashboard open and the drawer streaming stats: ${(((ticks() - c0) / 100 / 10) * 100).toFixed(1)} % of one core over 10 s`);
    await drawer.getByRole('tab', { name: 'Inspect' }).click();
    await drawer.getByTestId('inspect').getByText('Environment').waitFor();
    await checkScreen('containers-inspect');
  });

  test('its terminal: what is typed runs in the container and the output comes back', async () => {
    const drawer = page.getByRole('region', { name: 'web' });
    await drawer.getByRole('tab', { name: 'Terminal' }).click();
    const rows = page.locator('.xterm-rows');
    await rows.getByText('#').first().waitFor({ timeout: 30_000 });
    await page.locator('.xterm-helper-textarea').focus();
    await page.keyboard.type('echo "sum=$((6*7))"; hostname\r');
    await page.waitForFunction(() => /sum=42/.test((document.querySelector('.xterm-rows') as HTMLElement).innerText), null, { timeout: 30_000 });
    const id = (await vm.ok(['inspect', '-f', '{{.Id}}', 'web'])).trim();
    await page.waitForFunction((h) => (document.querySelector('.xterm-rows') as HTMLElement).innerText.includes(h), id.slice(0, 12), { timeout: 10_000 });
    note('terminal answered');
    await checkScreen('containers-terminal');
    await drawer.getByRole('button', { name: 'Close the details of web' }).click();
    await drawer.waitFor({ state: 'detached' });
  });

  test('stop and remove it from the UI', async () => {
    await row('web').getByRole('button', { name: 'Stop web' }).click();
    await row('web')
      .getByTestId('container-state')
      .getByText('exited')
      .waitFor({ timeout: 2 * MIN });
    assert.match(await vm.ok(['ps', '-a', '--format', '{{.Names}} {{.State}}']), /^web exited$/m);
    await row('web').getByRole('button', { name: 'Remove web' }).click();
    await page.getByRole('dialog', { name: 'Remove web?' }).getByRole('button', { name: 'Remove container' }).click();
    await row('web').waitFor({ state: 'detached', timeout: 60_000 });
    assert.equal((await vm.ok(['ps', '-a', '-q'])).trim(), '');
  });

  test('images, volumes, ports and troubleshoot show what the VM has', async () => {
    await vm.ok(['volume', 'create', 'e2e-data']);
    await go('Images');
    await page.getByRole('cell', { name: 'bbd:1', exact: true }).first().waitFor();
    await checkScreen('images');
    await go('Volumes');
    await page.getByRole('cell', { name: 'e2e-data', exact: true }).waitFor();
    await checkScreen('volumes');
    await go('Ports');
    await page.getByRole('table', { name: 'Forwarded ports' }).waitFor();
    await checkScreen('ports');
    await go('Troubleshoot');
    await page
      .getByRole('log', { name: 'Engine log' })
      .getByText(/vm state/)
      .first()
      .waitFor();
    await page
      .getByRole('log', { name: 'VM console (serial log)' })
      .getByText(/berth-init/)
      .first()
      .waitFor();
    // The doctor judges this very host: QEMU runs the VM.
    await page.locator('[data-testid=doctor-driver][data-driver=qemu]').getByText('yes (used)').waitFor();
    await page.getByRole('log', { name: 'Guest system log' }).waitFor(); // read in the guest (busybox logread)
    await checkScreen('troubleshoot');
  });

  test('settings: a bad memory value is refused at the field and nothing is saved; a good one is saved with a restart offered', async () => {
    const file = path.join(vm.inst, 'settings.json');
    const before = fs.readFileSync(file, 'utf8');
    await go('Settings');
    const memory = page.getByRole('textbox', { name: 'Memory (GiB)' });
    await memory.fill('0.1');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    const err = page.getByTestId('error-memoryMiB');
    await err.waitFor();
    assert.match(await err.innerText(), /at least 512 MiB/);
    assert.match(await page.getByRole('alert').first().innerText(), /Nothing was saved/);
    await screenshot(page, 'vm-settings-error');
    assert.equal(fs.readFileSync(file, 'utf8'), before, 'nothing saved');
    const good = JSON.parse(before).memoryMiB === 1024 ? 1536 : 1024;
    await memory.fill(String(good / 1024));
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.getByTestId('settings-result').getByText('Saved memoryMiB.').waitFor();
    assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).memoryMiB, good);
    await page.getByTestId('settings-result').getByRole('button', { name: 'Restart now' }).waitFor();
    await checkScreen('settings');
  });

  test('stop the VM from the UI: the state follows to stopped and stays there when the engine exits', async () => {
    await go('Home');
    await page.getByRole('button', { name: 'Stop', exact: true }).click();
    await page
      .getByTestId('vm-state')
      .getByText('Stopped')
      .waitFor({ timeout: 3 * MIN });
    note('UI shows stopped');
    await page.waitForTimeout(3000); // the engine exits after a stop; the page must not flip to an error
    assert.equal(await page.getByTestId('vm-state').innerText(), 'Stopped');
    assert.deepEqual(problems, [], 'no console errors');
  });
});
