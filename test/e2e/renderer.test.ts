/**
 * The renderer builds, and loads in Chromium through `berth dashboard`'s
 * server with no console errors; every screen works against an engine
 * without a VM (the real control server and Docker handlers over a fake
 * dockerd); every control is labelled and reachable with the keyboard.
 * The real-VM journey is in dashboard-vm.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import type { Browser, Page } from 'playwright-core';
import { startDashboard, type DashboardServer } from '../../app/cli/dashboard.js';
import { writeOpenFile } from '../../app/cli/dashboard-open-file.js';
import { ControlClient } from '../../app/client/control-client.js';
import { doctorReport } from '../../app/client/doctor.js';
import type { GatewayOptions } from '../../app/client/engine-gateway.js';
import { defaultTuning } from '../../app/base/tuning.js';
import { macHost } from '../helpers/fake-host.js';
import { startFakeEngine, type FakeEngine } from '../helpers/fake-engine.js';
import { ROOT } from '../helpers/run.js';
import { shortTempDir } from '../helpers/temp.js';
import { chromiumProblem, launchBrowser, screenshot, unlabeledControls, unreachableByKeyboard, watchConsole } from './browser.js';

const problem = chromiumProblem();

gatedSuite('the renderer in Chromium', problem, { timeout: 5 * 60_000 }, () => {
  const t = shortTempDir('rnd');
  let engine: FakeEngine;
  let dash: DashboardServer;
  let browser: Browser;
  let page: Page;
  let problems: string[];
  const outDir = path.join(t.dir, 'renderer');

  before(async () => {
    engine = await startFakeEngine(path.join(t.dir, 'home'), { phaseMs: 200 });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await dash?.close();
    await engine?.close();
    t.cleanup();
  });

  test('vite builds it', () => {
    const r = spawnSync(
      process.execPath,
      [
        path.join(ROOT, 'node_modules/vite/bin/vite.js'),
        'build',
        '--config',
        path.join(ROOT, 'app/renderer/vite.config.ts'),
        '--outDir',
        outDir,
        '--emptyOutDir',
      ],
      { cwd: ROOT, encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.ok(fs.existsSync(path.join(outDir, 'index.html')));
    assert.ok(fs.readdirSync(path.join(outDir, 'assets')).some((f) => f.endsWith('.js')));
  });

  test('it loads with no console errors and shows the VM stopped, then Start runs it through the phases', async () => {
    // The doctor judges an Apple-silicon Mac, where every choice of the form (Rosetta too) can be made.
    const doctor: GatewayOptions['doctor'] = (o) => doctorReport({ ...o, facts: macHost(), tuning: defaultTuning() });
    dash = await startDashboard({ paths: engine.paths, root: outDir, connect: () => ControlClient.connect(engine.paths, 'test'), doctor });
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    problems = watchConsole(page);
    // As `berth dashboard` opens it: the owner-only open file, which sends the browser on with the token.
    const openFile = writeOpenFile(path.join(t.dir, 'open'), dash.url);
    await page.goto(openFile.url, { waitUntil: 'commit' });
    await page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\//);
    await page.getByTestId('vm-state').getByText('Stopped').waitFor();
    assert.doesNotMatch(page.url(), /token=/, 'the token leaves the address bar');
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    await page.getByRole('list', { name: 'Start progress' }).waitFor();
    await page.getByTestId('vm-state').getByText('Running').waitFor();
    assert.match(await page.getByTestId('docker-host').innerText(), /^export DOCKER_HOST=unix:\/\//);
    assert.deepEqual(problems, []);
  });

  test('every screen: a screenshot, no unlabeled control, everything reachable with Tab', async () => {
    const c = engine.dockerd.addContainer({ name: 'web', Ports: [{ IP: '0.0.0.0', PrivatePort: 80, PublicPort: 18480, Type: 'tcp' }] });
    engine.dockerd.log(c.Id, 'hello from web\n');
    for (const screen of ['Home', 'Containers', 'Images', 'Volumes', 'Ports', 'File sharing', 'Settings', 'Troubleshoot']) {
      await page.getByRole('navigation', { name: 'Screens' }).getByRole('link', { name: screen, exact: true }).click();
      await page.getByRole('heading', { level: 1, name: screen }).waitFor();
      await page.waitForLoadState('networkidle');
      await screenshot(page, `fake-${screen.toLowerCase().replace(/ /g, '-')}`);
      assert.deepEqual(await unlabeledControls(page), [], `${screen}: unlabeled controls`);
      assert.deepEqual(await unreachableByKeyboard(page), [], `${screen}: controls Tab never reaches`);
    }
    assert.deepEqual(problems, []);
  });

  test('containers appear live, logs stream and filter in the drawer, the terminal answers, remove asks first', async () => {
    await page.getByRole('link', { name: 'Containers' }).click();
    const later = engine.dockerd.addContainer({ name: 'later' });
    await page.locator('[data-testid=container-row][data-name=later]').waitFor();
    await page.getByRole('button', { name: 'Details of web' }).click();
    const drawer = page.getByRole('region', { name: 'web' });
    const log = drawer.getByTestId('log-lines');
    await log.getByText('hello from web').waitFor();
    const web = [...engine.dockerd.containers.values()].find((x) => x.Names[0] === '/web')!;
    engine.dockerd.log(web.Id, 'second line\n');
    await log.getByText('second line').waitFor();
    await drawer.getByRole('searchbox', { name: 'Search' }).fill('second');
    await page.waitForFunction(() => !document.querySelector('[data-testid=log-lines]')!.textContent!.includes('hello from web'));
    await drawer.getByRole('checkbox', { name: 'Timestamps' }).check();
    assert.match(await log.innerText(), /^\d{4}-\d\d-\d\dT\S+ second line/);
    await drawer.getByRole('tab', { name: 'Terminal' }).click();
    await page.locator('.xterm-rows').getByText('/ #').first().waitFor();
    await page.locator('.xterm-helper-textarea').focus();
    await page.keyboard.type('echo term-ok-42\r');
    await page.waitForFunction(() => /term-ok-42\s*\n?.*term-ok-42/s.test((document.querySelector('.xterm-rows') as HTMLElement).innerText));
    await screenshot(page, 'fake-terminal');
    await drawer.getByRole('button', { name: 'Close the details of web' }).click();
    await drawer.waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'Remove later' }).click();
    const dialog = page.getByRole('dialog', { name: 'Remove later?' });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    assert.ok(engine.dockerd.containers.has(later.Id), 'cancel removes nothing');
    await page.getByRole('button', { name: 'Remove later' }).click();
    await dialog.getByRole('button', { name: 'Remove container' }).click();
    await page.locator('[data-testid=container-row][data-name=later]').waitFor({ state: 'detached' });
    assert.equal(engine.dockerd.containers.has(later.Id), false);
    assert.deepEqual(problems, []);
  });

  test('settings: a bad value shows the engine error at the field and saves nothing; a good one is saved', async () => {
    await page.getByRole('link', { name: 'Settings' }).click();
    // The form is there and holds the engine's values: on another screen (no input yet) it is not loaded.
    const loaded = () => page.waitForFunction(() => !!(document.querySelector('input[name=memoryMiB]') as HTMLInputElement | null)?.value);
    await loaded(); // the form shows the engine's settings before anything is typed
    const before = fs.readFileSync(engine.paths.settings, 'utf8');
    const memory = page.getByRole('textbox', { name: 'Memory (GiB)' });
    await memory.fill('0.1');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.getByTestId('error-memoryMiB').waitFor();
    assert.match(await page.getByTestId('error-memoryMiB').innerText(), /at least 512 MiB/);
    assert.equal(await memory.getAttribute('aria-invalid'), 'true');
    assert.match(await page.getByRole('alert').innerText(), /Nothing was saved/);
    assert.equal(fs.readFileSync(engine.paths.settings, 'utf8'), before, 'nothing saved');
    await memory.fill('abc');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page
      .getByTestId('error-memoryMiB')
      .getByText(/must be a number/)
      .waitFor();
    await memory.fill('1');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.getByTestId('settings-result').getByText('Saved memoryMiB.').waitFor();
    assert.equal(JSON.parse(fs.readFileSync(engine.paths.settings, 'utf8')).memoryMiB, 1024);
    await page.getByTestId('settings-result').getByRole('button', { name: 'Restart now' }).waitFor();

    // The driver and Rosetta, shown and saved like the others.
    const driver = page.getByRole('combobox', { name: 'VM driver' });
    assert.equal(await driver.inputValue(), 'auto');
    assert.deepEqual(await driver.locator('option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value)), ['auto', 'vfkit', 'qemu', 'hyperv']);
    const rosetta = page.getByRole('checkbox', { name: 'Run amd64 (x86_64) binaries with Rosetta' });
    assert.equal(await rosetta.isChecked(), false);
    const helpId = (await rosetta.getAttribute('aria-describedby'))!.split(' ')[0]!;
    assert.match(await page.locator(`[id="${helpId}"]`).innerText(), /Apple silicon with the vfkit driver/, 'its help is tied to it');
    await driver.selectOption('qemu');
    await rosetta.check();
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.getByTestId('settings-result').getByText('Saved driver, rosetta.').waitFor();
    const saved = JSON.parse(fs.readFileSync(engine.paths.settings, 'utf8'));
    assert.equal(saved.driver, 'qemu');
    assert.equal(saved.rosetta, true, 'a boolean, not the string "true"');
    await page.getByTestId('settings-result').getByRole('button', { name: 'Restart now' }).click();
    await page.getByRole('link', { name: 'Home' }).click();
    await page
      .getByTestId('rosetta-state')
      .getByText(/^not used\. Rosetta is on in settings but not used: only the vfkit driver/)
      .waitFor();
    await page.getByRole('link', { name: 'Settings' }).click();
    await loaded();
    assert.equal(await page.getByRole('combobox', { name: 'VM driver' }).inputValue(), 'qemu', 'read back from the engine');
    assert.equal(await page.getByRole('checkbox', { name: 'Run amd64 (x86_64) binaries with Rosetta' }).isChecked(), true);
    await page.getByRole('checkbox', { name: 'Run amd64 (x86_64) binaries with Rosetta' }).uncheck();
    await page.getByRole('combobox', { name: 'VM driver' }).selectOption('auto');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.getByTestId('settings-result').getByText('Saved driver, rosetta.').waitFor();
    assert.equal(JSON.parse(fs.readFileSync(engine.paths.settings, 'utf8')).rosetta, false);

    await screenshot(page, 'fake-settings-saved');
  });

  test('a broken settings file: Home and Settings warn, Berth goes on with the last good ones, Save writes them anew', async () => {
    const good = fs.readFileSync(engine.paths.settings, 'utf8');
    fs.writeFileSync(engine.paths.settings, good.slice(0, 40)); // an editor that died mid-save
    await page.getByRole('link', { name: 'Home' }).click();
    const homeWarning = page.getByTestId('settings-problem');
    await homeWarning.getByText(/is not valid JSON \(it ends too early: truncated\?\)/).waitFor();
    assert.match(await homeWarning.innerText(), /last good settings/, 'with the hint');
    assert.equal(await homeWarning.getAttribute('role'), 'status', 'a warning, not an alert: Berth goes on');
    await screenshot(page, 'fake-home-settings-problem');

    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByTestId('settings-problem').waitFor();
    await page.waitForFunction(() => !!(document.querySelector('input[name=memoryMiB]') as HTMLInputElement | null)?.value);
    assert.equal(Number(await page.getByRole('textbox', { name: 'Memory (GiB)' }).inputValue()) * 1024, JSON.parse(good).memoryMiB, 'the last good values');
    assert.equal(fs.readFileSync(engine.paths.settings, 'utf8'), good.slice(0, 40), 'the broken file is left as it is until the user saves');
    await page.getByRole('button', { name: 'Apply', exact: true }).click(); // nothing changed, but the file is broken: saved anew
    const result = page.getByTestId('settings-result');
    await result.getByText(/was broken .* it was moved to .*settings\.json\.broken-/).waitFor();
    assert.deepEqual(JSON.parse(fs.readFileSync(engine.paths.settings, 'utf8')), JSON.parse(good));
    const aside = fs.readdirSync(path.dirname(engine.paths.settings)).filter((f) => f.startsWith('settings.json.broken-'));
    assert.equal(aside.length, 1);
    assert.equal(fs.readFileSync(path.join(path.dirname(engine.paths.settings), aside[0]!), 'utf8'), good.slice(0, 40), 'nothing lost');
    await page.getByTestId('settings-problem').waitFor({ state: 'detached' });
    await page.getByRole('link', { name: 'Home' }).click();
    await page.getByTestId('vm-state').waitFor();
    await page.getByTestId('settings-problem').waitFor({ state: 'detached' });
    assert.deepEqual(problems, []);
  });

  test('troubleshoot: logs, a diagnostics bundle downloaded, factory reset only when stopped', async () => {
    await page.getByRole('link', { name: 'Troubleshoot' }).click();
    await page
      .getByRole('log', { name: 'Engine log' })
      .getByText(/engine starting \(fake\)/)
      .waitFor();
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Create diagnostics bundle' }).click();
    const d = await download;
    assert.match(d.suggestedFilename(), /^berth-diagnostics-default-.*\.zip$/);
    await page.getByTestId('diag-result').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Factory reset…' }).isDisabled(), true, 'not while running');
    assert.deepEqual(problems, []);
  });

  test('resting shows on Home and in the badge, with Start (wake) and Stop', async () => {
    await page.getByRole('link', { name: 'Home' }).click();
    await page.getByTestId('vm-state').getByText('Running').waitFor();
    // As the engine does after idleMinutes with nothing in use.
    engine.sm.to('stopping');
    engine.sm.to('resting');
    await page.getByTestId('vm-state').getByText('Resting').waitFor();
    assert.match(await page.getByTestId('resting-note').innerText(), /next docker command wakes it/);
    assert.match(await page.getByRole('status').first().innerText(), /resting/i);
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    await page.getByTestId('vm-state').getByText('Running').waitFor();
    assert.deepEqual(problems, []);
  });

  test('with the VM stopped, the Docker screens offer to start it', async () => {
    await page.getByRole('link', { name: 'Home' }).click();
    await page.getByRole('button', { name: 'Stop', exact: true }).click();
    await page.getByTestId('vm-state').getByText('Stopped').waitFor();
    await page.getByRole('link', { name: 'Containers' }).click();
    await page.getByRole('button', { name: 'Start the VM' }).waitFor();
  });
});
