/**
 * Invalid arguments to every `berth` command print that command's usage
 * and exit 2, and change nothing. The commands are read from `berth
 * --help` itself, so a command added later is covered (or this test says
 * which case it lacks). Needs the built CLI (`npm run build`), as cli.test.ts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { berth } from '../helpers/run.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('clu');
const env = {
  ...process.env,
  BERTH_HOME: path.join(t.dir, 'home'),
  BERTH_CACHE: path.join(t.dir, 'cache'),
  DOCKER_CONFIG: path.join(t.dir, 'docker'),
  NO_COLOR: '1',
};
after(() => t.cleanup());

/** Command names listed under "Commands:" in a help text (without `help`; `port|ports` is `port`). */
function commandsIn(help: string): { name: string; usage: string }[] {
  const section = help.split(/^Commands:\s*$/m)[1] ?? '';
  return section
    .split('\n')
    .map((l) => /^ {2}([^\s|]+)(?:\|\S+)?((?: (?:\[[^\]]*\]|<[^>]*>))*)/.exec(l))
    .filter((m): m is RegExpExecArray => !!m && m[1] !== 'help')
    .map((m) => ({ name: m[1]!, usage: m[2]!.trim() }));
}

interface Leaf {
  path: string[];
  /** Its arguments as help shows them: "[command...]", "<path>". */
  args: string;
}
const leaves: Leaf[] = [];

before(async () => {
  const root = await berth(['--help'], env);
  assert.equal(root.code, 0, root.stderr);
  for (const c of commandsIn(root.stdout)) {
    const sub = await berth([c.name, '--help'], env);
    const kids = commandsIn(sub.stdout);
    if (kids.length) for (const k of kids) leaves.push({ path: [c.name, k.name], args: k.usage.replace(/^\[options\]\s*/, '') });
    else leaves.push({ path: [c.name], args: c.usage.replace(/^\[options\]\s*/, '') });
  }
});

/** Bad values for options that take one, per command (the rest get only the generic cases). */
const BAD_VALUES: Record<string, string[][]> = {
  logs: [
    ['-n', 'many'],
    ['-n', '0'],
    ['-n', '-3'],
    ['--lines', '1.5'],
    ['--serial', '--guest'],
    ['--guest', '--follow'],
  ],
  dashboard: [
    ['--port', 'x'],
    ['--port', '0'],
  ],
  'port add': [['80'], ['8080:80/sctp'], ['a:b'], [':80'], ['8080:'], ['8080:80', '--host-ip']],
  'port rm': [['x'], ['80/sctp'], ['80:80']],
  'settings set': [['nonsense'], ['=4'], ['cpus'], ['cpus:4']],
  'share add': [['/tmp', '--guest-path']],
};

async function expectUsage(args: string[]): Promise<void> {
  const r = await berth(args, env, { timeoutMs: 30_000 });
  const where = `berth ${args.join(' ')}`;
  assert.equal(r.code, 2, `${where} exits 2 (got ${r.code}): ${r.stderr}`);
  assert.match(r.stderr, /error: /, `${where} says what is wrong`);
  assert.match(r.stderr, /Usage: berth /, `${where} prints usage`);
  assert.equal(r.stdout, '', `${where} prints nothing on stdout`);
}

test('every command is covered', () => {
  assert.ok(leaves.length >= 15, `found ${leaves.length} commands`);
  const names = leaves.map((l) => l.path.join(' '));
  for (const must of [
    'start',
    'stop',
    'restart',
    'status',
    'shell',
    'logs',
    'daemon',
    'settings set',
    'settings show',
    'port add',
    'port rm',
    'share add',
    'share rm',
    'sync add',
    'sync rm',
    'dashboard',
    'context use',
  ]) {
    assert.ok(names.includes(must), `"${must}" is listed by --help (found: ${names.join(', ')})`);
  }
});

test('an unknown option: usage and exit 2, for every command', async () => {
  for (const l of leaves) await expectUsage([...l.path, '--no-such-option']);
});

test('an unknown option before the command, and an unknown command', async () => {
  await expectUsage(['--frobnicate', 'status']);
  await expectUsage(['frobnicate']);
  await expectUsage(['--instance', 'Bad Name', 'status']);
  await expectUsage(['--instance']);
  for (const group of new Set(leaves.filter((l) => l.path.length > 1).map((l) => l.path[0]!))) await expectUsage([group, 'frobnicate']);
});

test('too many arguments: usage and exit 2, for every command that takes a fixed number', async () => {
  for (const l of leaves) {
    if (l.args.includes('...')) continue; // variadic: any number is fine
    const fill = (l.args.match(/<[^>]*>/g) ?? []).map(() => '1:1');
    await expectUsage([...l.path, ...fill, 'extra1', 'extra2']);
  }
});

test('a missing required argument: usage and exit 2', async () => {
  for (const l of leaves) if (/</.test(l.args)) await expectUsage(l.path);
});

test('bad option values and malformed arguments: usage and exit 2', async () => {
  for (const [cmd, cases] of Object.entries(BAD_VALUES)) {
    assert.ok(
      leaves.some((l) => l.path.join(' ') === cmd),
      `${cmd} exists`,
    );
    for (const c of cases) await expectUsage([...cmd.split(' '), ...c]);
  }
});

test('a usage error changes nothing: no instance folder, no settings file, no engine', () => {
  assert.ok(!fs.existsSync(path.join(env.BERTH_HOME, 'default', 'settings.json')), 'no settings written');
  assert.ok(!fs.existsSync(path.join(env.BERTH_HOME, 'default', 'engine.lock')), 'no engine started');
});

test('shell: an unknown option before `--` is a usage error; after it, it belongs to the guest command', async () => {
  await expectUsage(['shell', '--frob']);
  const r = await berth(['shell', '--', '--frob'], env);
  assert.equal(r.code, 1, 'not a usage error (the engine is not running)');
  assert.match(r.stderr, /ENGINE_NOT_RUNNING/);
});

test('`berth settings set` with bad values changes nothing, whether the file is good or broken', async () => {
  const e = { ...env, BERTH_INSTANCE: 'setbad' };
  const file = path.join(env.BERTH_HOME, 'setbad', 'settings.json');
  assert.equal((await berth(['settings', 'set', 'cpus=1', 'memoryMiB=1024'], e)).code, 0);
  for (const broken of [undefined, '{"cpus": 1, "memoryMiB": 10']) {
    if (broken) fs.writeFileSync(file, broken);
    const before = fs.readFileSync(file, 'utf8');
    for (const bad of [
      ['memoryMiB=100'],
      ['cpus=0'],
      ['cpus=abc'],
      ['diskGiB=99999999'],
      ['accel=warp'],
      ['portBind=everywhere'],
      ['rosetta=yes'],
      ['rosetta=1'],
      ['driver=true'],
      ['nosuchkey=1'],
      ['cpus=1', 'memoryMiB=1'],
    ]) {
      const r = await berth(['settings', 'set', ...bad], e);
      assert.equal(r.code, 1, `${bad.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /INVALID_SETTINGS/);
      assert.match(r.stderr, /hint: Nothing was saved/);
      assert.equal(fs.readFileSync(file, 'utf8'), before, `${bad.join(' ')} changed nothing`);
    }
  }
  // The broken file: `show` warns and shows the last good settings; a good `set` moves it aside and says where.
  const show = await berth(['settings', 'show', '--json'], e);
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stderr, /warning: the settings file .*settings\.json is not valid JSON/);
  assert.equal(JSON.parse(show.stdout).memoryMiB, 1024);
  const fix = await berth(['settings', 'set', 'memoryMiB=2048'], e);
  assert.equal(fix.code, 0, fix.stderr);
  const aside = /moved to (\S+) and/.exec(fix.stderr)?.[1];
  assert.ok(aside && fs.readFileSync(aside, 'utf8') === '{"cpus": 1, "memoryMiB": 10', `moved aside intact: ${fix.stderr}`);
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).memoryMiB, 2048);
});

test('`berth settings set` takes true and false for a boolean setting (rosetta), and shows it back', async () => {
  const e = { ...env, BERTH_INSTANCE: 'setbool' };
  const file = path.join(env.BERTH_HOME, 'setbool', 'settings.json');
  const on = await berth(['settings', 'set', 'rosetta=true'], e);
  assert.equal(on.code, 0, on.stderr);
  assert.match(on.stdout, /^Saved: rosetta=true\.$/m);
  assert.match(on.stdout, /berth restart/, 'it applies at the next start');
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).rosetta, true);
  const show = await berth(['settings', 'show'], e);
  assert.match(show.stdout, /^rosetta +true$/m);
  const off = await berth(['settings', 'set', 'rosetta=false', 'driver=vfkit'], e);
  assert.equal(off.code, 0, off.stderr);
  const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.equal(saved.rosetta, false);
  assert.equal(saved.driver, 'vfkit');
});
