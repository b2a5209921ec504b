/**
 * Chromium for the UI tests (playwright-core with Debian's chromium, never
 * a downloaded browser): launch, console-error capture, screenshots under
 * test-artifacts/, the accessibility check, and the renderer build the
 * tests need.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, ConsoleMessage, Page } from 'playwright-core';
import { ROOT } from '../helpers/run.js';

export const CHROMIUM = process.env.BERTH_CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'e2e');

/** Why the browser tests cannot run here, or undefined. */
export function chromiumProblem(): string | undefined {
  if (!fs.existsSync(CHROMIUM)) return `${CHROMIUM} is missing (apt-get install -y chromium)`;
  try {
    fs.accessSync(path.join(ROOT, 'node_modules', 'playwright-core', 'package.json'));
  } catch {
    return 'playwright-core is not installed (npm ci)';
  }
  return undefined;
}

export async function launchBrowser(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  // launch() gives every run a fresh temporary profile.
  return chromium.launch({
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
}

/** Console errors and uncaught page errors, collected for an assertion at the end. */
export function watchConsole(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m: ConsoleMessage) => {
    if (m.type() === 'error') problems.push(`console.error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return problems;
}

/** `fullPage: false`: only what the window shows (a fixed drawer as the user sees it). */
export async function screenshot(page: Page, name: string, { fullPage = true } = {}): Promise<string> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}

const NAMED_ROLES = new Set(['button', 'link', 'textbox', 'searchbox', 'checkbox', 'combobox', 'tab', 'spinbutton', 'radio', 'switch', 'slider']);

interface AriaNode {
  role?: string;
  name?: string;
  children?: (AriaNode | string)[];
}

/** Controls in Playwright's accessibility snapshot of the page that have no accessible name. */
export async function unlabeledControls(page: Page): Promise<string[]> {
  const tree = (await page.locator('body').ariaSnapshotJSON()) as unknown as AriaNode | AriaNode[];
  const out: string[] = [];
  const walk = (n: AriaNode | string) => {
    if (typeof n === 'string') return;
    if (n.role && NAMED_ROLES.has(n.role) && !(n.name ?? '').trim()) out.push(`${n.role} without a name`);
    for (const c of n.children ?? []) walk(c);
  };
  for (const n of Array.isArray(tree) ? tree : [tree]) walk(n);
  return out;
}

/**
 * Press Tab through the page and report the visible, enabled controls that
 * focus never reached (a control only a mouse can use).
 */
export async function unreachableByKeyboard(page: Page, maxTabs = 400): Promise<string[]> {
  await page.evaluate(() => {
    (document.activeElement as HTMLElement | null)?.blur();
    document.querySelectorAll('[data-kbd-reached]').forEach((e) => e.removeAttribute('data-kbd-reached'));
  });
  const total = await page.evaluate(() => document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]').length);
  for (let i = 0; i < Math.min(maxTabs, total * 2 + 5); i++) {
    await page.keyboard.press('Tab');
    await page.evaluate(() => document.activeElement?.setAttribute('data-kbd-reached', '1'));
  }
  return page.evaluate(() => {
    const missed: string[] = [];
    for (const el of document.querySelectorAll<HTMLElement>('a[href], button, input, select, textarea')) {
      const visible = el.offsetParent !== null && getComputedStyle(el).visibility !== 'hidden';
      const disabled = (el as HTMLButtonElement).disabled;
      if (!visible || disabled || el.closest('dialog:not([open])') || el.closest('.xterm')) continue;
      if (!el.hasAttribute('data-kbd-reached'))
        missed.push(`${el.tagName.toLowerCase()} "${(el.getAttribute('aria-label') ?? el.textContent ?? '').trim().slice(0, 40)}"`);
    }
    return missed;
  });
}

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

/** dist/renderer, built now when missing or older than its sources (`npm test` builds it first). */
export function ensureRendererBuilt(): string {
  const out = path.join(ROOT, 'dist', 'renderer');
  const index = path.join(out, 'index.html');
  const src = path.join(ROOT, 'app', 'renderer');
  if (fs.existsSync(index) && fs.statSync(index).mtimeMs >= newestMtime(src)) return out;
  process.stdout.write('# building the renderer (dist/renderer is missing or stale)\n');
  const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--config', path.join(src, 'vite.config.ts')], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`the renderer did not build:\n${r.stdout}\n${r.stderr}`);
  return out;
}
