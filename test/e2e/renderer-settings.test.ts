/**
 * Issue 19's dashboard screens in Chromium against the fake engine:
 * Settings (every error in one round, GiB with the host's limits, the
 * choices this host cannot use disabled with doctor's reason, Apply &
 * restart), File sharing (add, the nonexistent-path error, read-only and
 * sync toggles, the home share asks first), Troubleshoot's doctor panel
 * and guest log, Home's TCG warning and the start checklist's times, and
 * the layout at 800×700 and 1280×800 in light and dark with no horizontal
 * scroll. Screenshots go to test-artifacts/e2e/.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { startDashboard, type DashboardServer } from '../../app/cli/dashboard.js';
import { ControlClient } from '../../app/client/control-client.js';
import { doctorReport } from '../../app/client/doctor.js';
import type { GatewayOptions } from '../../app/client/engine-gateway.js';
import { defaultTuning } from '../../app/base/tuning.js';
import { lowLimitReason } from '../../app/engine/drivers/virtiofsd-probe.js';
import { linuxHost } from '../helpers/fake-host.js';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import { startFakeEngine, type FakeEngine } from '../helpers/fake-engine.js';
import { makeCa } from '../helpers/registry.js';
import { shortTempDir } from '../helpers/temp.js';
import { chromiumProblem, ensureRendererBuilt, launchBrowser, screenshot, unlabeledControls, unreachableByKeyboard, watchConsole } from './browser.js';

const problem = chromiumProblem();

const SCREENS = ['Home', 'Containers', 'Images', 'Volumes', 'Ports', 'File sharing', 'Settings', 'Troubleshoot'];

gatedSuite('the dashboard: settings, file sharing, doctor, layout', problem, { timeout: 5 * 60_000 }, () => {
  const t = shortTempDir('rnds');
  let engine: FakeEngine;
  let dash: DashboardServer;
  let browser: Browser;
  let page: Page;
  let problems: string[];

  const go = async (screen: string) => {
    const nav = page.getByRole('navigation', { name: 'Screens' });
    const menu = nav.getByRole('button', { name: /screens menu/ });
    if (await menu.isVisible()) {
      if ((await menu.getAttribute('aria-expanded')) !== 'true') await menu.click();
    }
    await nav.getByRole('link', { name: screen, exact: true }).click();
    await page.getByRole('heading', { level: 1, name: screen }).waitFor();
  };
  const settingsLoaded = () => page.waitForFunction(() => !!(document.querySelector('input[name=memoryMiB]') as HTMLInputElement | null)?.value);

  before(async () => {
    engine = await startFakeEngine(path.join(t.dir, 'home'), { phaseMs: 150 });
    browser = await launchBrowser();
    // The doctor judges a Linux PC without KVM (QEMU installed): what CI and most dev machines here are.
    const doctor: GatewayOptions['doctor'] = (o) => doctorReport({ ...o, facts: linuxHost({ kvm: false }), tuning: defaultTuning() });
    dash = await startDashboard({ paths: engine.paths, root: ensureRendererBuilt(), connect: () => ControlClient.connect(engine.paths, 'test'), doctor });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    problems = watchConsole(page);
    await page.goto(dash.url);
    await page.getByTestId('vm-state').getByText('Stopped').waitFor();
  });
  after(async () => {
    await browser?.close();
    await dash?.close();
    await engine?.close();
    t.cleanup();
  });

  test('Settings: every bad value is reported at its field and in a summary at the top, in one round; nothing is saved', async () => {
    await go('Settings');
    await settingsLoaded();
    const before = fs.readFileSync(engine.paths.settings, 'utf8');
    await page.getByRole('textbox', { name: 'CPUs' }).fill('abc');
    await page.getByRole('textbox', { name: 'Memory (GiB)' }).fill('0.25');
    await page.getByRole('textbox', { name: 'Disk (GiB)' }).fill('2');
    await page.getByRole('textbox', { name: 'Rest when idle (minutes)' }).fill('5000');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    const summary = page.getByTestId('settings-summary');
    await summary.waitFor();
    assert.match(await page.getByTestId('error-cpus').innerText(), /must be a number/);
    assert.match(await page.getByTestId('error-memoryMiB').innerText(), /must be at least 512 MiB \(0\.5 GiB\)/);
    assert.match(await page.getByTestId('error-diskGiB').innerText(), /must be at least 4 GiB/);
    assert.match(await page.getByTestId('error-idleMinutes').innerText(), /at most 1440 minutes/);
    const text = await summary.innerText();
    assert.match(text, /4 values are not valid\.\n[^]*Nothing was saved\./);
    for (const label of ['CPUs', 'Memory (GiB)', 'Disk (GiB)', 'Rest when idle (minutes)']) await summary.getByRole('link', { name: label }).waitFor();
    assert.equal(await summary.getAttribute('role'), 'alert');
    const [sy, fy] = await Promise.all([summary.boundingBox(), page.getByTestId('field-cpus').boundingBox()]);
    assert.ok(sy!.y < fy!.y, 'the summary is above the fields');
    for (const name of ['CPUs', 'Memory (GiB)', 'Disk (GiB)'])
      assert.equal(await page.getByRole('textbox', { name }).getAttribute('aria-invalid'), 'true', name);
    assert.equal(fs.readFileSync(engine.paths.settings, 'utf8'), before, 'nothing saved');
    // A link in the summary takes the keyboard to the field.
    await summary.getByRole('link', { name: 'Memory (GiB)' }).click();
    assert.equal(await page.evaluate(() => (document.activeElement as HTMLInputElement).name), 'memoryMiB');
    await screenshot(page, 'settings-every-error');
    await page.getByRole('button', { name: 'Revert' }).click();
    await page.getByTestId('settings-summary').waitFor({ state: 'detached' });
    assert.deepEqual(problems, []);
  });

  test('Settings: memory in GiB with the host limits, steppers, and what this host cannot use disabled with the reason', async () => {
    await settingsLoaded();
    const memory = page.getByRole('textbox', { name: 'Memory (GiB)' });
    const saved = JSON.parse(fs.readFileSync(engine.paths.settings, 'utf8')) as { memoryMiB: number };
    assert.equal(Number(await memory.inputValue()), Math.round((saved.memoryMiB / 1024) * 100) / 100, 'shown in GiB');
    const hostGiB = Math.round((os.totalmem() / 2 ** 30) * 100) / 100;
    const range = await page.getByTestId('range-memoryMiB').innerText();
    assert.match(range, /0\.5 to [\d.]+ GiB \(this host has [\d.]+ GiB\)/);
    assert.ok(Math.abs(Number(/has ([\d.]+) GiB/.exec(range)![1]) - hostGiB) < 0.02, `${range} names the host's memory`);
    assert.match(await page.getByTestId('range-cpus').innerText(), new RegExp(`this host has ${os.cpus().length} CPUs`));
    const value = Number(await memory.inputValue());
    await page.getByRole('button', { name: 'More memory' }).click();
    assert.equal(Number(await memory.inputValue()), Math.floor(value / 0.5) * 0.5 + 0.5, 'one step of 0.5 GiB');
    await memory.press('ArrowDown');
    assert.equal(Number(await memory.inputValue()), Math.ceil((value + 0.5) / 0.5) * 0.5 - 0.5);

    // The doctor answers (this is a Linux host): vfkit, Hyper-V, HVF and Rosetta cannot be chosen, and say why.
    await page.getByTestId('unavailable-driver').waitFor();
    const driver = page.getByRole('combobox', { name: 'VM driver' });
    const disabled = await driver
      .locator('option')
      .evaluateAll((os) => os.filter((o) => (o as HTMLOptionElement).disabled).map((o) => (o as HTMLOptionElement).value));
    assert.deepEqual(disabled.sort(), ['hyperv', 'vfkit']);
    assert.match(await page.getByTestId('unavailable-driver').innerText(), /vfkit: vfkit runs only on macOS/);
    assert.match(await page.getByTestId('unavailable-driver').innerText(), /Hyper-V: Hyper-V is a Windows feature/);
    const accelOff = await page
      .getByRole('combobox', { name: 'Accelerator' })
      .locator('option')
      .evaluateAll((os) => os.filter((o) => (o as HTMLOptionElement).disabled).map((o) => (o as HTMLOptionElement).value));
    assert.deepEqual(accelOff.sort(), ['hvf', 'kvm'], 'no KVM on this host, and HVF is macOS');
    assert.match(await page.getByTestId('unavailable-accel').innerText(), /KVM: \/dev\/kvm does not exist/);
    assert.match(await page.getByTestId('unavailable-accel').innerText(), /HVF: HVF is macOS's Hypervisor\.framework; this host runs Linux/);
    const rosetta = page.getByRole('checkbox', { name: 'Run amd64 (x86_64) binaries with Rosetta' });
    assert.equal(await rosetta.isDisabled(), true);
    assert.match(await page.getByTestId('unavailable-rosetta').innerText(), /Rosetta needs a Mac with Apple silicon/);
    const describedBy = (await rosetta.getAttribute('aria-describedby'))!.split(' ');
    assert.ok(
      describedBy.some((id) => id.endsWith('-off')),
      'the reason is tied to the control',
    );
    await screenshot(page, 'settings-limits-and-choices');
    assert.deepEqual(problems, []);
  });

  test('Settings: the fields wait for the saved values, so what is typed first is not replaced by them', async () => {
    // A busy engine (a VM booting under TCG) answers late; the saved values must not land on top of what the user typed.
    engine.slow.set('settings.get', 1500);
    try {
      await go('Home');
      await go('Settings');
      const memory = page.getByRole('textbox', { name: 'Memory (GiB)' });
      assert.equal(await memory.isDisabled(), true, 'disabled while the saved values load');
      await memory.fill('0.25'); // waits until it can be typed in
      await page.getByRole('button', { name: 'Apply', exact: true }).click();
      assert.match(await page.getByTestId('error-memoryMiB').innerText(), /must be at least 512 MiB/);
      await page.getByRole('button', { name: 'Revert' }).click();
      await page.getByTestId('settings-summary').waitFor({ state: 'detached' });
    } finally {
      engine.slow.delete('settings.get');
    }
    assert.deepEqual(problems, []);
  });

  test('Settings: registries and proxy: a URL where host:port belongs, a bad proxy and a CA file that is not there are refused at their fields; good values are saved as lists', async () => {
    await go('Settings');
    await settingsLoaded();
    await page.getByRole('group', { name: 'Registries and proxy' }).waitFor();
    const before = fs.readFileSync(engine.paths.settings, 'utf8');
    const box = (name: string) => page.getByRole('textbox', { name, exact: true });
    const apply = () => page.getByRole('button', { name: 'Apply', exact: true }).click();
    await box('Insecure registries').fill('http://reg:5000');
    await box('HTTP proxy').fill('proxy:3128');
    await apply();
    await page.getByTestId('settings-summary').waitFor();
    assert.match(await page.getByTestId('error-insecureRegistries').innerText(), /must be host:port without a scheme \(write reg:5000\)/);
    assert.match(await page.getByTestId('error-httpProxy').innerText(), /must start with http:\/\/, https:\/\/ or socks5:\/\//);
    assert.equal(fs.readFileSync(engine.paths.settings, 'utf8'), before, 'nothing saved');
    await page.getByRole('button', { name: 'Revert' }).click();
    await page.getByTestId('settings-summary').waitFor({ state: 'detached' });
    await box('CA certificates').fill(path.join(t.dir, 'no-such-ca.pem'));
    await apply();
    assert.match(await page.getByTestId('error-caCertificates').innerText(), /no-such-ca\.pem does not exist/);
    assert.equal(fs.readFileSync(engine.paths.settings, 'utf8'), before, 'nothing saved');
    // A real CA, two registries, a proxy on this computer.
    const ca = makeCa(t.dir, 'Corp CA').cert;
    await box('CA certificates').fill(ca);
    await box('Insecure registries').fill('host.docker.internal:5000, 10.0.0.5:5000');
    await box('HTTP proxy').fill('http://127.0.0.1:3128');
    await apply();
    await page.getByTestId('settings-result').getByText(/Saved/).waitFor();
    const saved = JSON.parse(fs.readFileSync(engine.paths.settings, 'utf8'));
    assert.deepEqual(
      [saved.insecureRegistries, saved.caCertificates, saved.httpProxy],
      [['host.docker.internal:5000', '10.0.0.5:5000'], [ca], 'http://127.0.0.1:3128'],
    );
    assert.equal(await box('Insecure registries').inputValue(), 'host.docker.internal:5000, 10.0.0.5:5000');
    await screenshot(page, 'settings-registries');
    assert.deepEqual(problems, []);
  });

  test('Settings: Apply & restart saves and restarts the running VM', async () => {
    await go('Home');
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    await page.getByTestId('vm-state').getByText('Running').waitFor();
    await go('Settings');
    await settingsLoaded();
    await page.getByRole('textbox', { name: 'Memory (GiB)' }).fill('1');
    const restarted = new Promise<void>((resolve) => engine.sm.on('change', (c: { state: string }) => c.state === 'stopping' && resolve()));
    await page.getByRole('button', { name: 'Apply & restart' }).click();
    await page.getByTestId('settings-result').getByText('Saved memoryMiB.').waitFor();
    await restarted;
    assert.equal(JSON.parse(fs.readFileSync(engine.paths.settings, 'utf8')).memoryMiB, 1024);
    await page.getByRole('status', { name: 'VM running' }).waitFor();
    assert.deepEqual(problems, []);
  });

  test('Home: the TCG warning, and the start checklist with each phase time and the usual time from the last starts', async () => {
    await go('Home');
    await page.getByTestId('vm-state').getByText('Running').waitFor();
    const warning = page.getByTestId('tcg-warning');
    await warning.waitFor();
    assert.match(await warning.innerText(), /software emulation/);
    await page.getByRole('button', { name: 'Stop', exact: true }).click();
    await page.getByTestId('vm-state').getByText('Stopped').waitFor();
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    // Two starts are on record by now (the start and the restart above).
    await page
      .getByTestId('phase-time-boot')
      .getByText(/usually 0\.\d s/)
      .waitFor();
    await page
      .getByTestId('phase-time-prepare')
      .getByText(/^ \d+\.\d s \(usually/)
      .waitFor();
    await screenshot(page, 'home-start-checklist');
    await page.getByTestId('vm-state').getByText('Running').waitFor();
    const kept = JSON.parse(fs.readFileSync(engine.paths.startTimes, 'utf8')) as { starts: { phases: Record<string, number> }[] };
    assert.equal(kept.starts.length, 3);
    assert.ok(
      kept.starts.every((s) => s.phases.boot! >= 100),
      'each phase took about 150 ms',
    );
    assert.deepEqual(problems, []);
  });

  test('File sharing: its own screen; a nonexistent folder is refused with a hint; a folder is added, read-only and synced; the home share asks first', async () => {
    await go('File sharing');
    const home = os.homedir();
    await page.locator(`[data-testid=share-row][data-path="${home}"]`).waitFor();
    const hostField = page.getByRole('textbox', { name: 'Host folder' });
    await hostField.fill('/nonexistent/berth-dir');
    await page.getByRole('button', { name: 'Share folder' }).click();
    const err = page.getByTestId('share-add-error');
    await err.waitFor();
    assert.match(await err.innerText(), /\/nonexistent\/berth-dir does not exist/);
    assert.match(await err.innerText(), /create it first, or check the path for a typo/);
    assert.match(await err.innerText(), /INVALID_HOST_PATH/);
    assert.ok(!fs.readFileSync(engine.paths.settings, 'utf8').includes('/nonexistent'), 'nothing saved');
    await screenshot(page, 'shares-nonexistent');

    const dir = path.join(t.dir, 'project');
    fs.mkdirSync(dir);
    await hostField.fill(dir);
    await page.getByRole('button', { name: 'Share folder' }).click();
    const row = page.locator(`[data-testid=share-row][data-path="${dir}"]`);
    await row.waitFor();
    await err.waitFor({ state: 'detached' });
    await row.getByTestId('share-mechanism').getByText('virtiofs').waitFor();
    await row.getByText('mounted').waitFor();
    // The toggles show what the engine saved: checked once it answered.
    const ro = page.getByRole('checkbox', { name: `${dir} read-only` });
    await ro.click();
    await page.waitForFunction((d) => (document.querySelector(`[data-path="${d}"] input[type=checkbox]`) as HTMLInputElement).checked, dir);
    const share = () =>
      (JSON.parse(fs.readFileSync(engine.paths.settings, 'utf8')).shares as { hostPath: string; readOnly?: boolean }[]).find((s) => s.hostPath === dir);
    assert.deepEqual(share(), { hostPath: dir, readOnly: true });
    // A sync carries containers' writes back to the host: not for a read-only share.
    assert.equal(await page.getByRole('checkbox', { name: `Sync ${dir}` }).isDisabled(), true);
    await ro.click();
    await page.waitForFunction((d) => !(document.querySelector(`[data-path="${d}"] input[type=checkbox]`) as HTMLInputElement).checked, dir);
    assert.deepEqual(share(), { hostPath: dir });
    await page.getByRole('checkbox', { name: `Sync ${dir}` }).click();
    await page
      .getByRole('status')
      .getByText(/kept in sync/)
      .waitFor();
    assert.equal(await page.getByRole('checkbox', { name: `Sync ${dir}` }).isChecked(), true);
    assert.deepEqual(JSON.parse(fs.readFileSync(engine.paths.settings, 'utf8')).sync, [{ hostPath: dir }]);
    await page.getByRole('checkbox', { name: `Sync ${dir}` }).click();
    await page
      .getByRole('status')
      .getByText(/no longer synced/)
      .waitFor();

    // On a host where virtiofs is not used (here: a low open-files limit), the row says why and the way back; virtiofs again when that changes.
    engine.setShareFallback(`not virtiofs: ${lowLimitReason('virtiofsd 1.13.2 (Rust)', 20_000, '')}`);
    const mechanism = row.getByTestId('share-mechanism');
    await mechanism.getByText(/stay under 20,000 open files/).waitFor();
    assert.match(await mechanism.innerText(), /^reverse-sshfs\s[^]*stay under 20,000 open files[^]+reverse sshfs\. Raise Berth's open-files limit/);
    engine.setShareFallback(undefined);
    await mechanism.getByText(/stay under/).waitFor({ state: 'detached' });
    assert.equal((await mechanism.innerText()).trim(), 'virtiofs');

    // A folder in it that containers mount changes by the thousand: the row says so, and one click syncs that folder.
    const busyDir = path.join(dir, 'app');
    fs.mkdirSync(busyDir);
    engine.activity.count(busyDir, 2500);
    const advice = row.getByTestId('share-advice');
    await advice.waitFor();
    assert.match(await advice.innerText(), new RegExp(`${busyDir} changed 2,500 times in 10 minutes`));
    await screenshot(page, 'shares-busy-advice');
    await page.getByRole('button', { name: `Sync the busy folder ${busyDir}` }).click();
    await page
      .getByRole('status')
      .getByText(new RegExp(`${busyDir} is kept in sync`))
      .waitFor();
    assert.deepEqual(JSON.parse(fs.readFileSync(engine.paths.settings, 'utf8')).sync, [{ hostPath: busyDir }]);
    await advice.waitFor({ state: 'detached' });
    // A folder synced inside a share is listed under the table, and stops syncing from there.
    await page.getByRole('button', { name: `Stop syncing ${busyDir}` }).click();
    await page.getByTestId('synced-inside').waitFor({ state: 'detached' });
    assert.deepEqual(JSON.parse(fs.readFileSync(engine.paths.settings, 'utf8')).sync, []);

    // Removing the home share asks first; Cancel keeps it.
    await page.getByRole('button', { name: `Stop sharing ${home}` }).click();
    const dialog = page.getByRole('dialog', { name: 'Stop sharing your home folder?' });
    await dialog.waitFor();
    assert.match(await dialog.innerText(), /docker run -v/);
    await screenshot(page, 'shares-remove-home');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    assert.ok(
      JSON.parse(fs.readFileSync(engine.paths.settings, 'utf8')).shares.some((s: { hostPath: string }) => s.hostPath === home),
      'kept',
    );
    await page.getByRole('button', { name: `Stop sharing ${dir}` }).click();
    await page
      .getByRole('dialog', { name: `Stop sharing ${dir}?` })
      .getByRole('button', { name: 'Stop sharing' })
      .click();
    await row.waitFor({ state: 'detached' });
    assert.equal(share(), undefined);
    assert.deepEqual(problems, []);
  });

  test("Troubleshoot: the doctor panel (drivers, why, the accelerator) and the guest's log", async () => {
    await go('Troubleshoot');
    const panel = page.getByTestId('doctor-panel');
    await panel.getByTestId('doctor-driver').first().waitFor();
    const drivers = await panel.getByTestId('doctor-driver').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-driver')));
    assert.deepEqual(drivers, ['qemu', 'vfkit', 'hyperv'], 'in the order Berth prefers them on Linux');
    assert.match(await panel.locator('[data-driver=vfkit]').innerText(), /no\s+vfkit runs only on macOS/);
    assert.match(await panel.locator('[data-driver=hyperv]').innerText(), /Hyper-V is a Windows feature/);
    assert.match(await panel.getByTestId('doctor-host').innerText(), /^Linux 6\.1\.0/);
    assert.match(await panel.locator('[data-driver=qemu]').innerText(), /yes \(used\)\s+QEMU 7\.2\.11.*\/dev\/kvm does not exist/s);
    assert.match(await panel.getByTestId('doctor-accel').innerText(), /Accelerator\s+tcg.*software emulation/s);
    await page.getByRole('log', { name: 'Guest system log' }).getByText('fake guest log').waitFor();
    await screenshot(page, 'troubleshoot-doctor');
    assert.deepEqual(problems, []);
  });

  for (const [width, height] of [
    [800, 700],
    [1280, 800],
  ] as const) {
    for (const scheme of ['light', 'dark'] as const) {
      test(`${width}×${height} ${scheme}: no horizontal scroll on any screen, controls labelled and reachable by keyboard`, async () => {
        const c = engine.dockerd.addContainer({
          name: `a-container-with-a-rather-long-name-for-the-layout-${width}-${scheme}`,
          Image: 'registry.example.com/some-team/some-image-with-a-long-name:1.2.3-alpine',
        });
        engine.dockerd.log(c.Id, 'hello\n');
        await page.setViewportSize({ width, height });
        await page.emulateMedia({ colorScheme: scheme });
        for (const screen of SCREENS) {
          await go(screen);
          await page.waitForLoadState('networkidle');
          const w = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
          assert.ok(w.scroll <= w.client, `${screen} at ${width} px (${scheme}): the document is ${w.scroll} px wide in a ${w.client} px window`);
          await screenshot(page, `layout-${width}-${scheme}-${screen.toLowerCase().replace(/ /g, '-')}`);
          assert.deepEqual(await unlabeledControls(page), [], `${screen}: unlabeled controls`);
          if (scheme === 'light') assert.deepEqual(await unreachableByKeyboard(page), [], `${screen}: controls Tab never reaches`);
        }
        if (width === 800) {
          // The sidebar is a bar with a menu button; the screens are behind it, and reachable.
          const menu = page.getByRole('button', { name: /screens menu/ });
          assert.equal(await menu.isVisible(), true);
          assert.equal(await page.getByRole('link', { name: 'Home', exact: true }).isVisible(), false, 'collapsed');
          await go('File sharing');
          const remove = page.getByRole('button', { name: `Stop sharing ${os.homedir()}` });
          const box = (await remove.boundingBox())!;
          assert.ok(box.x + box.width <= width, 'Remove is inside the window');
          // Containers: the long name is cut with the whole of it in a tooltip; the row's actions and the drawer's are inside the window.
          await go('Containers');
          const name = c.Names[0]!.slice(1);
          const open = page.getByRole('button', { name: `Details of ${name}` });
          assert.equal(await open.getAttribute('title'), name);
          assert.ok(await open.evaluate((e) => e.scrollWidth > e.clientWidth), 'the name is cut');
          const rowRemove = (await page.getByRole('button', { name: `Remove ${name}` }).boundingBox())!;
          assert.ok(rowRemove.x + rowRemove.width <= width, "the row's Remove is inside the window");
          await open.click();
          const drawer = page.getByRole('region', { name });
          for (const control of [
            drawer.getByRole('button', { name: `Close the details of ${name}` }),
            drawer.getByRole('button', { name: `Download the log of ${name}` }),
          ]) {
            const b = (await control.boundingBox())!;
            assert.ok(b.x >= 0 && b.x + b.width <= width && b.y + b.height <= height, `${await control.getAttribute('aria-label')} is inside the window`);
          }
          await screenshot(page, `layout-${width}-${scheme}-containers-drawer`, { fullPage: false });
          await page.keyboard.press('Escape');
          await drawer.waitFor({ state: 'detached' });
        }
        await page.emulateMedia({ colorScheme: null });
        assert.deepEqual(problems, []);
      });
    }
  }
});
