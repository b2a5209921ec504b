/**
 * CLI habits users bring from other tools (issue 19): colour decided per
 * stream and off with NO_COLOR, `berth` alone, typos that suggest, global
 * options in every command's help, `status` exit codes. Needs the built CLI.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { colourWanted, palette } from '../../app/cli/output.js';
import { BERTH_BIN, berth, run } from '../helpers/run.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('clh');
const env: NodeJS.ProcessEnv = {
  ...process.env,
  BERTH_HOME: path.join(t.dir, 'home'),
  BERTH_CACHE: path.join(t.dir, 'cache'),
  DOCKER_CONFIG: path.join(t.dir, 'docker'),
  NO_COLOR: '1',
};
after(() => t.cleanup());

const ESC = '\x1b[';
const hasScript = (() => {
  try {
    execFileSync('script', ['-qec', 'true', '/dev/null'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

test('colour: only for a terminal, never with NO_COLOR or TERM=dumb', () => {
  assert.equal(colourWanted({ isTTY: true }, {}), true);
  assert.equal(colourWanted({ isTTY: false }, {}), false);
  assert.equal(colourWanted({}, {}), false);
  assert.equal(colourWanted({ isTTY: true }, { NO_COLOR: '1' }), false);
  assert.equal(colourWanted({ isTTY: true }, { NO_COLOR: '' }), true, 'an empty NO_COLOR does not count (no-color.org)');
  assert.equal(colourWanted({ isTTY: true }, { TERM: 'dumb' }), false);
  assert.equal(palette(true).red('x'), `${ESC}31mx${ESC}0m`);
  assert.equal(palette(false).red('x'), 'x');
});

/** `berth shell` while stopped fails with a coloured-when-allowed error, under a pseudo-terminal from script(1). */
async function underPty(redirect: string, extra: NodeJS.ProcessEnv = {}): Promise<{ tty: string; file: string }> {
  const file = path.join(t.dir, `redirect-${Math.random().toString(36).slice(2)}`);
  const e: NodeJS.ProcessEnv = { ...env, ...extra, TERM: 'xterm' };
  if (!('NO_COLOR' in extra)) delete e.NO_COLOR;
  const r = await run('script', ['-qec', `'${process.execPath}' '${BERTH_BIN}' shell -- true ${redirect}'${file}'`, '/dev/null'], { env: e });
  return { tty: r.stdout, file: fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '' };
}

test('colour per stream: stderr is coloured only when stderr itself is a terminal', { skip: !hasScript && 'script(1) is not installed' }, async () => {
  const errToFile = await underPty('2>');
  assert.match(errToFile.file, /error: .*ENGINE_NOT_RUNNING/);
  assert.ok(!errToFile.file.includes(ESC), `no escape codes in redirected stderr: ${JSON.stringify(errToFile.file)}`);
  const outToFile = await underPty('>');
  assert.ok(outToFile.tty.includes(`${ESC}31merror:`), `stderr on a terminal is coloured: ${JSON.stringify(outToFile.tty)}`);
  const noColour = await underPty('>', { NO_COLOR: '1' });
  assert.match(noColour.tty, /error: /);
  assert.ok(!noColour.tty.includes(ESC), 'NO_COLOR turns colour off on a terminal too');
});

test('`berth` alone: a short help on stdout, exit 0', async () => {
  const r = await berth([], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Usage: berth /m);
  assert.match(r.stdout, /Commands: start, stop/);
  assert.match(r.stdout, /berth --help/);
  assert.ok(r.stdout.split('\n').length < 15, 'short');
  assert.equal(r.stderr, '');
});

test('a typo suggests the command and points at the help, without printing it all', async () => {
  const r = await berth(['strat'], env);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command 'strat'/);
  assert.match(r.stderr, /Did you mean start\?/);
  assert.match(r.stderr, /berth --help/);
  assert.ok(!/Commands:/.test(r.stderr), `no command list: ${r.stderr}`);
  assert.ok(r.stderr.split('\n').length <= 4, r.stderr);
  const sub = await berth(['settings', 'shwo'], env);
  assert.equal(sub.code, 2);
  assert.match(sub.stderr, /Did you mean show\?/);
});

test("--instance and --json are in every command's help", async () => {
  for (const args of [['status'], ['port', 'add'], ['settings', 'set'], ['share', 'add'], ['logs']]) {
    const r = await berth([...args, '--help'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Global Options:[\s\S]*--instance <name>[\s\S]*--json/, `berth ${args.join(' ')} --help`);
  }
});

test('status: exit 3 while not running, saying what to run; JSON too', async () => {
  const r = await berth(['status'], env);
  assert.equal(r.code, 3);
  assert.match(r.stdout, /Berth is not running\. Start it with `berth start`\./);
  const j = await berth(['status', '--json'], env);
  assert.equal(j.code, 3);
  assert.equal(JSON.parse(j.stdout).state, 'stopped');
  const other = await berth(['--instance', 'work', 'status'], env);
  assert.equal(other.code, 3);
  assert.match(other.stdout, /`berth --instance work start`/);
});

test('one naming scheme: `port`, `share` and `sync` list alone and change with add/rm; the plurals are aliases', async () => {
  const e = { ...env, BERTH_INSTANCE: 'naming' };
  assert.equal((await berth(['port', 'add', '18600:80'], e)).code, 0);
  for (const list of ['port', 'ports']) {
    const r = await berth([list], e);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /127\.0\.0\.1:18600\s+guest:80/);
  }
  assert.equal((await berth(['ports', 'rm', '18600'], e)).code, 0, 'the old plural takes the subcommands too');
  for (const list of ['share', 'shares']) assert.match((await berth([list], e)).stdout, /HOST FOLDER/);
  const typo = await berth(['share', 'ad', t.dir], e);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /unknown command 'ad'\n\(Did you mean add\?\)/);
  const help = await berth(['--help'], e);
  assert.match(help.stdout, /^ {2}port\|ports /m);
  assert.match(help.stdout, /^ {2}share\|shares /m);
});

test('`share add` of a folder that does not exist (or of a file) fails with a hint; nothing is saved', async () => {
  const e = { ...env, BERTH_INSTANCE: 'sharebad' };
  const file = path.join(env.BERTH_HOME!, 'sharebad', 'settings.json');
  const missing = await berth(['share', 'add', path.join(t.dir, 'nonexistent', 'dir')], e);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /error: .*nonexistent\/dir does not exist \[INVALID_HOST_PATH\]/);
  assert.match(missing.stderr, /hint: Share a folder that exists/);
  assert.ok(!fs.existsSync(file), 'nothing saved');
  const aFile = path.join(t.dir, 'a-file');
  fs.writeFileSync(aFile, 'x');
  const notDir = await berth(['share', 'add', aFile], e);
  assert.equal(notDir.code, 1);
  assert.match(notDir.stderr, /is not a folder \[INVALID_HOST_PATH\]/);
  const ok = await berth(['share', 'add', t.dir, '--read-only'], e);
  assert.equal(ok.code, 0, ok.stderr);
});

test('`share add --sync` shares and syncs in one step; a folder that cannot be synced stays shared and says why', async () => {
  const e = { ...env, BERTH_INSTANCE: 'sharesync' };
  const file = path.join(env.BERTH_HOME!, 'sharesync', 'settings.json');
  const dir = path.join(t.dir, 'project');
  fs.mkdirSync(dir);
  const ok = await berth(['share', 'add', dir, '--sync'], e);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`Sharing ${dir} at ${dir} in the VM when it runs\\.\nSyncing it with a copy on the VM's disk once the VM runs\\.`));
  const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.ok(saved.shares.some((x: { hostPath: string }) => x.hostPath === dir));
  assert.deepEqual(saved.sync, [{ hostPath: dir }]);
  // A folder inside the synced one cannot be synced too (nested): shared, and the error says so.
  const inner = path.join(dir, 'inner');
  fs.mkdirSync(inner);
  const nested = await berth(['share', 'add', inner, '--sync'], e);
  assert.equal(nested.code, 1);
  assert.match(nested.stderr, /is shared, but cannot be synced: .*overlaps the synced folder/);
  assert.match(nested.stderr, /hint: Synced folders cannot be nested/);
  const after = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.ok(
    after.shares.some((x: { hostPath: string }) => x.hostPath === inner),
    'the share was kept',
  );
  assert.deepEqual(after.sync, [{ hostPath: dir }]);
  const both = await berth(['share', 'add', dir, '--sync', '--read-only'], e);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--sync and --read-only do not go together/);
});
