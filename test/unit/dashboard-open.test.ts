/**
 * `berth dashboard` as another local user sees it. The real CLI runs as
 * the owner (root here) with a fake `xdg-open` on PATH that stays running,
 * the way a browser does, so whatever it was given is in its
 * /proc/<pid>/cmdline. A reader running as `nobody` then scans every
 * process's cmdline and environ it can read, opens every file named there
 * it can read, and collects every token-like string; each one is tried
 * against the dashboard's WebSocket. None may get in, while the owner's
 * own "browser" (following what the opener got) does.
 *
 * Also: `--json --no-open` gives the owner a working URL on stdout and
 * opens nothing, and the owner-only open file is gone when it stops.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { openFileHtml, writeOpenFile } from '../../app/cli/dashboard-open-file.js';
import { isBerthError } from '../../app/contract/errors.js';
import { waitFor } from '../../app/base/process-util.js';
import { BERTH_BIN } from '../helpers/run.js';
import { shortTempDir } from '../helpers/temp.js';

function whyNot(): string | undefined {
  if (process.platform !== 'linux') return 'needs /proc (Linux)';
  if (process.getuid?.() !== 0) return 'needs root, to run the reader as another user (nobody)';
  if (spawnSync('setpriv', ['--version']).status !== 0) return 'needs setpriv (util-linux)';
  if (spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'true']).status !== 0) return 'cannot switch to nobody:nogroup';
  if (!fs.existsSync(path.join(path.dirname(BERTH_BIN), '..', 'dist', 'app', 'cli', 'main.js'))) return 'Berth is not built (npm run build)';
  return undefined;
}
const problem = whyNot();
if (problem) process.stdout.write(`# dashboard other-user tests skipped: ${problem}\n`);

const t = shortTempDir('dop');
// A home folder other users may enter (0755, as on many Linux systems):
// only Berth's own modes may keep them out, not the test's temp folder.
fs.chmodSync(t.dir, 0o755);
const home = path.join(t.dir, 'home');
const renderer = path.join(t.dir, 'renderer');
const bin = path.join(t.dir, 'bin');
/** Where the fake opener records what it got (the test's own notes: owner-only). */
const notes = path.join(t.dir, 'notes');
const readerDir = path.join(t.dir, 'reader');

/** The attacker: as nobody, everything in /proc it can read, and every file named there it can read. */
const READER = `
import fs from 'node:fs';
const seen = [];
const found = new Set();
const take = (text) => {
  for (const m of text.matchAll(/[A-Za-z0-9_-]{16,128}/g)) found.add(m[0]);
};
const readable = (p) => {
  try {
    const st = fs.statSync(p);
    if (!st.isFile() || st.size > 1 << 20) return;
    take(fs.readFileSync(p, 'latin1'));
    seen.push({ file: p, read: true });
  } catch (e) {
    seen.push({ file: p, read: false, error: e.code });
  }
};
for (const pid of fs.readdirSync('/proc').filter((d) => /^\\d+$/.test(d))) {
  for (const what of ['cmdline', 'environ']) {
    let text;
    try {
      text = fs.readFileSync('/proc/' + pid + '/' + what, 'latin1');
    } catch {
      continue;
    }
    const args = text.split('\\0').filter(Boolean);
    if (what === 'cmdline') seen.push({ pid: Number(pid), argv: args });
    for (const a of args) {
      take(a);
      const v = a.includes('=') && what === 'environ' ? a.slice(a.indexOf('=') + 1) : a;
      if (v.startsWith('file://')) {
        try { readable(decodeURIComponent(new URL(v).pathname)); } catch {}
      } else if (v.startsWith('/')) readable(v);
    }
  }
}
process.stdout.write(JSON.stringify({ uid: process.getuid(), seen, candidates: [...found] }));
`;

const env = (): NodeJS.ProcessEnv => ({
  ...process.env,
  PATH: `${bin}:${process.env.PATH}`,
  BERTH_HOME: home,
  BERTH_CACHE: path.join(t.dir, 'cache'),
  BERTH_RENDERER_DIR: renderer,
  DOCKER_CONFIG: path.join(t.dir, 'docker'),
  NO_COLOR: '1',
});

/** Does this token open the dashboard's WebSocket? */
function wsOpens(port: number, token: string): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${encodeURIComponent(token)}`, { origin: `http://127.0.0.1:${port}` });
    const done = (ok: boolean) => {
      ws.removeAllListeners();
      ws.on('error', () => undefined);
      ws.terminate();
      resolve(ok);
    };
    ws.once('open', () => done(true));
    ws.once('unexpected-response', () => done(false));
    ws.once('error', () => done(false));
  });
}

async function anyOpens(port: number, candidates: string[]): Promise<string[]> {
  const working: string[] = [];
  for (let i = 0; i < candidates.length; i += 32) {
    const batch = candidates.slice(i, i + 32);
    const ok = await Promise.all(batch.map((c) => wsOpens(port, c)));
    batch.forEach((c, j) => ok[j] && working.push(c));
  }
  return working;
}

/** Where a browser that was handed `arg` ends up: the page's address (following an owner-only open file). */
function followAsOwner(arg: string): string {
  if (!arg.startsWith('file://')) return arg;
  const html = fs.readFileSync(fileURLToPath(arg), 'utf8');
  const m = /http-equiv="refresh" content="0;\s*url=([^"]+)"/.exec(html);
  assert.ok(m, `the open file redirects: ${html}`);
  return m[1]!.replace(/&amp;/g, '&');
}

function tokenOf(url: string): string {
  const m = /#token=([A-Za-z0-9_-]+)/.exec(url);
  assert.ok(m, `a token in ${url}`);
  return m[1]!;
}

interface Running {
  child: ChildProcess;
  stdout: () => string;
  exited: Promise<number | null>;
}

function startCli(args: string[]): Running {
  const child = spawn(process.execPath, [BERTH_BIN, 'dashboard', ...args], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  void exited.then((code) => code !== 0 && code !== null && process.stderr.write(`berth dashboard exited ${code}: ${err}\n`));
  return { child, stdout: () => out, exited };
}

async function stopCli(r: Running): Promise<number | null> {
  if (r.child.exitCode === null) r.child.kill('SIGTERM');
  return r.exited;
}

const openers: number[] = [];

describe('the dashboard token and other local users', { skip: problem ?? false, timeout: 120_000 }, () => {
  before(() => {
    fs.mkdirSync(home, { mode: 0o755 });
    fs.chmodSync(home, 0o755);
    fs.mkdirSync(renderer, { recursive: true });
    fs.writeFileSync(path.join(renderer, 'index.html'), '<!doctype html><title>Berth</title>\n');
    fs.mkdirSync(notes, { mode: 0o700 });
    fs.mkdirSync(bin, { mode: 0o755 });
    // The opener records its pid and first argument, then stays (as a browser does).
    fs.writeFileSync(
      path.join(bin, 'xdg-open'),
      `#!/bin/sh\nprintf '%s\\n%s\\n' "$$" "$1" > "${notes}/opened.tmp"\nmv "${notes}/opened.tmp" "${notes}/opened"\nsleep 600\n`,
      { mode: 0o755 },
    );
    fs.mkdirSync(readerDir, { mode: 0o755 });
    fs.chmodSync(readerDir, 0o755);
    fs.writeFileSync(path.join(readerDir, 'reader.mjs'), READER, { mode: 0o644 });
  });
  after(() => {
    for (const pid of openers) {
      try {
        process.kill(-pid, 'SIGKILL'); // the opener runs detached: its own process group
      } catch {
        /* gone */
      }
    }
    t.cleanup();
  });

  test("nobody scanning /proc (every cmdline, environ and file named there) finds no working token; the owner's browser gets in", async () => {
    const r = startCli([]);
    try {
      assert.ok(
        await waitFor(() => /http:\/\/127\.0\.0\.1:\d+/.test(r.stdout()) && fs.existsSync(path.join(notes, 'opened')), 20_000),
        'the dashboard runs and opened a browser',
      );
      const port = Number(/http:\/\/127\.0\.0\.1:(\d+)/.exec(r.stdout())![1]);
      const [pidLine, arg] = fs.readFileSync(path.join(notes, 'opened'), 'utf8').split('\n');
      const openerPid = Number(pidLine);
      openers.push(openerPid);

      const read = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, path.join(readerDir, 'reader.mjs')], {
        encoding: 'utf8',
        cwd: '/',
        maxBuffer: 64 << 20,
      });
      assert.equal(read.status, 0, read.stderr);
      const found = JSON.parse(read.stdout) as {
        uid: number;
        seen: { pid?: number; argv?: string[]; file?: string; read?: boolean; error?: string }[];
        candidates: string[];
      };
      assert.notEqual(found.uid, 0, 'the reader is not root');
      // The scan works: nobody sees the opener's command line (so the test is not passing blind).
      const opener = found.seen.find((s) => s.pid === openerPid);
      assert.ok(
        opener?.argv?.some((a) => a.endsWith('xdg-open')),
        `nobody sees the opener: ${JSON.stringify(opener)}`,
      );
      assert.ok(opener!.argv!.includes(arg!), 'and what it was given');
      assert.ok(found.candidates.length > 0);
      // A file the opener was given was tried too: nobody could not read it.
      if (arg!.startsWith('file://')) {
        const tried = found.seen.find((s) => s.file === fileURLToPath(arg!));
        assert.deepEqual(tried && { read: tried.read, error: tried.error }, { read: false, error: 'EACCES' }, 'nobody tried the open file and was refused');
      }

      const working = await anyOpens(port, found.candidates);
      assert.deepEqual(working, [], `tokens nobody learned from /proc that open the dashboard (opener got ${arg})`);

      // The owner's browser, handed the same argument, gets in.
      assert.equal(await wsOpens(port, tokenOf(followAsOwner(arg!))), true, 'the owner gets in');
    } finally {
      await stopCli(r);
    }
  });

  test("--json --no-open: a working URL on the owner's stdout, an owner-only open file, no browser, and the file is gone after stop", async () => {
    fs.rmSync(path.join(notes, 'opened'), { force: true });
    const r = startCli(['--json', '--no-open']);
    try {
      assert.ok(await waitFor(() => r.stdout().includes('\n'), 20_000), 'the JSON line');
      const j = JSON.parse(r.stdout().split('\n')[0]!) as { url: string; openUrl: string };
      const port = Number(/^http:\/\/127\.0\.0\.1:(\d+)\/#token=/.exec(j.url)?.[1]);
      assert.ok(port > 0, j.url);
      assert.equal(await wsOpens(port, tokenOf(j.url)), true, 'the printed URL works');
      assert.match(j.openUrl, /^file:\/\//);
      const file = fileURLToPath(j.openUrl);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600, 'the open file is owner-only');
      assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700, 'in an owner-only folder');
      assert.equal(followAsOwner(j.openUrl), j.url, 'the open file leads to the same page');
      assert.doesNotMatch(j.openUrl, /token/);
      assert.ok(!fs.existsSync(path.join(notes, 'opened')), 'no browser was opened');
      assert.equal(await stopCli(r), 0);
      assert.ok(!fs.existsSync(file), 'the open file is removed when the dashboard stops');
    } finally {
      await stopCli(r);
    }
  });
});

describe('the open file', { skip: process.platform === 'win32' ? 'unix modes' : false }, () => {
  const u = shortTempDir('dof');
  after(() => u.cleanup());

  test('owner-only, made fresh (a file or link left in its place is replaced, not written through), files of dead dashboards removed', () => {
    const dir = path.join(u.dir, 'dashboard');
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.chmodSync(dir, 0o755);
    const outside = path.join(u.dir, 'outside.txt');
    fs.writeFileSync(outside, 'untouched');
    fs.symlinkSync(outside, path.join(dir, `open-${process.pid}.html`));
    const stale = path.join(dir, 'open-2147483646.html'); // no such process
    fs.writeFileSync(stale, 'old');
    const f = writeOpenFile(dir, 'http://127.0.0.1:1234/#token=abc');
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.lstatSync(f.path).isFile(), true);
    assert.equal(fs.statSync(f.path).mode & 0o777, 0o600);
    assert.equal(fs.readFileSync(outside, 'utf8'), 'untouched');
    assert.ok(!fs.existsSync(stale), "a dead dashboard's file is removed");
    assert.equal(f.url, `file://${f.path}`);
    assert.match(fs.readFileSync(f.path, 'utf8'), /content="0;url=http:\/\/127\.0\.0\.1:1234\/#token=abc"/);
    f.remove();
    assert.ok(!fs.existsSync(f.path));
  });

  test('a folder that is a link is refused', () => {
    const real = path.join(u.dir, 'real');
    fs.mkdirSync(real, { mode: 0o700 });
    const link = path.join(u.dir, 'link');
    fs.symlinkSync(real, link);
    assert.throws(
      () => writeOpenFile(link, 'http://127.0.0.1:1/#token=x'),
      (e) => isBerthError(e, 'PATH_NOT_PRIVATE'),
    );
    assert.deepEqual(fs.readdirSync(real), []);
  });

  test('the address cannot break out of the page: attribute and script escaped', () => {
    const html = openFileHtml('http://127.0.0.1:1/#token=a"b</script><img src=x>&c');
    assert.ok(!html.includes('<img'), html);
    assert.ok(!html.includes('a"b'), html); // the attribute's quote stays shut (the script has it as a\"b)
    assert.equal((html.match(/<\/script>/g) ?? []).length, 1, html);
    assert.match(html, /&amp;c/);
  });
});
