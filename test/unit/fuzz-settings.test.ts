/**
 * Broken settings files on disk: corrupt JSON, a truncated file, unknown
 * keys, wrong types, out-of-range values, an empty file, a folder in its
 * place, an unreadable file, and seeded random damage. Each gives a clear
 * problem (the file's path and what is wrong, with a hint); the store and
 * the engine go on with the last good settings; the user's file is never
 * overwritten or deleted: left as it is, or moved aside by a save that
 * says where. A bad `settings.update` changes nothing.
 *
 * Seeded: the seed is printed; BERTH_FUZZ_SEED=<seed> replays a run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { ControlClient } from '../../app/client/control-client.js';
import { startDaemon } from '../../app/engine/daemon.js';
import { isBerthError } from '../../app/contract/errors.js';
import { instancePaths } from '../../app/base/paths.js';
import { defaultTuning } from '../../app/base/tuning.js';
import { defaultSettings } from '../../app/engine/settings/schema.js';
import { SettingsStore, lastGoodPath } from '../../app/engine/settings/store.js';
import { FakeDriver } from '../helpers/fake-driver.js';
import { startFakeDockerd } from '../helpers/fake-guest.js';
import { fuzzSeed, randomJson, randomString, rng } from '../helpers/fuzz.js';
import { ROOT } from '../helpers/run.js';
import { fakeImageDir, shortTempDir, withEnv } from '../helpers/temp.js';

const t = shortTempDir('fzs');
after(() => t.cleanup());
const SEED = fuzzSeed('settings files');
let n = 0;

const GOOD = { cpus: 1, memoryMiB: 1024, diskGiB: 80 };

/** A folder with a settings file saved cleanly once (so a last good copy exists). */
function saved(): { dir: string; file: string; good: ReturnType<typeof defaultSettings> } {
  const dir = path.join(t.dir, `s${++n}`);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'settings.json');
  const store = new SettingsStore(file);
  const good = store.update(GOOD).settings;
  assert.ok(fs.existsSync(lastGoodPath(file)), 'a save leaves a last good copy');
  assert.equal(fs.statSync(lastGoodPath(file)).mode & 0o777, 0o600);
  return { dir, file, good };
}

const goodText = JSON.stringify({ ...defaultSettings(), ...GOOD }, null, 2);

/** Broken files and what the problem must say about them. */
const CASES: [name: string, write: (file: string) => void, code: RegExp, why: RegExp][] = [
  ['corrupt JSON', (f) => fs.writeFileSync(f, '{"cpus": 2,, }'), /SETTINGS_FILE_CORRUPT/, /not valid JSON/],
  ['a truncated file', (f) => fs.writeFileSync(f, goodText.slice(0, goodText.length / 2)), /SETTINGS_FILE_CORRUPT/, /truncated/],
  ['an unknown key', (f) => fs.writeFileSync(f, JSON.stringify({ cpus: 1, memry: 4096 })), /INVALID_SETTINGS/, /memry/],
  ['a wrong type', (f) => fs.writeFileSync(f, JSON.stringify({ memoryMiB: '4 GB' })), /INVALID_SETTINGS/, /memoryMiB: must be a number/],
  ['zero CPUs', (f) => fs.writeFileSync(f, JSON.stringify({ cpus: 0 })), /INVALID_SETTINGS/, /cpus/],
  ['too little memory', (f) => fs.writeFileSync(f, JSON.stringify({ memoryMiB: 100 })), /INVALID_SETTINGS/, /memoryMiB: must be at least 512/],
  ['a huge disk', (f) => fs.writeFileSync(f, JSON.stringify({ diskGiB: 1e9 })), /INVALID_SETTINGS/, /diskGiB: must be at most/],
  [
    'a port out of range',
    (f) => fs.writeFileSync(f, JSON.stringify({ ports: [{ hostPort: 70000, guestPort: 80 }] })),
    /INVALID_SETTINGS/,
    /ports\.0\.hostPort/,
  ],
  ['an unknown accelerator', (f) => fs.writeFileSync(f, JSON.stringify({ accel: 'warp' })), /INVALID_SETTINGS/, /accel/],
  ['rosetta not a boolean', (f) => fs.writeFileSync(f, JSON.stringify({ rosetta: 'yes' })), /INVALID_SETTINGS/, /rosetta: must be true or false/],
  ['JSON null', (f) => fs.writeFileSync(f, 'null'), /INVALID_SETTINGS/, /top level/],
  ['a JSON array', (f) => fs.writeFileSync(f, '[]'), /INVALID_SETTINGS/, /top level/],
  ['binary garbage', (f) => fs.writeFileSync(f, Buffer.from([0x00, 0xff, 0xfe, 0x7b, 0x0a, 0x80])), /SETTINGS_FILE_CORRUPT/, /not valid JSON/],
  ['an empty file', (f) => fs.writeFileSync(f, ''), /SETTINGS_FILE_CORRUPT/, /is empty/],
  ['only whitespace', (f) => fs.writeFileSync(f, ' \n\t\n'), /SETTINGS_FILE_CORRUPT/, /is empty/],
  [
    'a folder in its place',
    (f) => (fs.rmSync(f), fs.mkdirSync(f), fs.writeFileSync(path.join(f, 'mine.txt'), 'keep me')),
    /SETTINGS_FILE_UNREADABLE/,
    /is a folder/,
  ],
];

function snapshot(file: string): string {
  const st = fs.statSync(file);
  return st.isDirectory() ? `dir:${fs.readdirSync(file).join(',')}` : fs.readFileSync(file).toString('base64');
}

for (const [name, write, code, why] of CASES) {
  test(`broken settings file: ${name}`, () => {
    const { file, good } = saved();
    const running = new SettingsStore(file); // an engine that was already up
    write(file);
    const before = snapshot(file);

    for (const store of [new SettingsStore(file), running]) {
      assert.deepEqual(store.get(), good, 'the last good settings are used');
      const p = store.problem;
      assert.ok(p, 'the problem is reported');
      assert.match(p.code, code);
      assert.ok(p.message.includes(file), `the message names the file: ${p.message}`);
      assert.match(p.message, why);
      assert.match(p.hint, /last good settings/);
      assert.match(p.hint, /left as it is/);
    }
    assert.equal(snapshot(file), before, 'reading never changes the file');

    const store = new SettingsStore(file);
    assert.throws(
      () => store.update({ memoryMiB: 1 }),
      (e) => isBerthError(e, 'INVALID_SETTINGS'),
    );
    assert.throws(
      () => store.update({ nonsense: 1 }),
      (e) => isBerthError(e, 'INVALID_SETTINGS'),
    );
    assert.equal(snapshot(file), before, 'a refused update changes nothing');

    const r = store.update({ memoryMiB: 1536 });
    assert.deepEqual(r.settings, { ...good, memoryMiB: 1536 }, 'the save starts from the last good settings');
    const aside = /moved to (\S+) and/.exec(r.notice ?? '')?.[1];
    assert.ok(aside, `the save says where the broken file went: ${r.notice}`);
    assert.equal(snapshot(aside), before, 'the broken file was moved aside intact');
    assert.deepEqual(SettingsStore.load(file), r.settings);
    assert.deepEqual(SettingsStore.load(lastGoodPath(file)), r.settings);
    assert.equal(store.problem, undefined);
  });
}

test('a file that was never good: the problem is the error, and a save starts from the defaults', () => {
  const dir = path.join(t.dir, 'never');
  fs.mkdirSync(dir);
  const file = path.join(dir, 'settings.json');
  fs.writeFileSync(file, '{"memoryMiB": "lots"}');
  const store = new SettingsStore(file);
  assert.throws(
    () => store.get(),
    (e) => isBerthError(e, 'INVALID_SETTINGS') && e.message.includes(file) && /delete it/.test(e.hint),
  );
  const r = store.update({ cpus: 1 });
  assert.equal(r.settings.memoryMiB, defaultSettings().memoryMiB);
  assert.match(r.notice ?? '', /moved to/);
  assert.equal(fs.readdirSync(dir).filter((f) => f.includes('.broken-')).length, 1);
});

test('a byte order mark (Notepad) is not an error', () => {
  const { file } = saved();
  fs.writeFileSync(file, '\ufeff' + JSON.stringify({ cpus: 1, memoryMiB: 2048 }));
  const s = new SettingsStore(file);
  assert.equal(s.problem, undefined);
  assert.equal(s.get().memoryMiB, 2048);
});

test('a hand edit is picked up by a running store, and becomes the last good copy', () => {
  const { file } = saved();
  const store = new SettingsStore(file);
  fs.writeFileSync(file, JSON.stringify({ cpus: 1, memoryMiB: 3072 }));
  fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
  assert.equal(store.get().memoryMiB, 3072);
  assert.equal(SettingsStore.load(lastGoodPath(file)).memoryMiB, 3072);
});

test('an unreadable file (mode 000): the problem says so, the last good settings are used', () => {
  const { dir, file, good } = saved();
  fs.chmodSync(file, 0o000);
  // Root reads any file, so when the tests run as root the store is opened
  // by an unprivileged user (nobody) who owns everything but the file.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    fs.chownSync(path.dirname(dir), 65534, 65534);
    fs.chownSync(dir, 65534, 65534);
    fs.chownSync(lastGoodPath(file), 65534, 65534);
    fs.chmodSync(path.dirname(dir), 0o755);
  }
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test', 'helpers', 'settings-probe.ts'), file], {
    cwd: ROOT,
    encoding: 'utf8',
    ...(asRoot ? { uid: 65534, gid: 65534, env: { ...process.env, HOME: '/tmp', TSX_TSCONFIG_PATH: undefined } } : {}),
  });
  if (asRoot) fs.chownSync(path.dirname(dir), 0, 0);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.deepEqual(out.settings, good);
  assert.equal(out.problem.code, 'SETTINGS_FILE_UNREADABLE');
  assert.match(out.problem.message, /permission denied/);
  assert.ok(out.problem.message.includes(file));
  assert.match(out.problem.hint, /mode 600/);
  assert.equal(fs.statSync(file).mode & 0o777, 0, 'left as it is');
});

test(`seeded random damage: never a crash, always the last good settings or the file's own (seed ${SEED})`, () => {
  const r = rng(SEED);
  const { file, good } = saved();
  const text = fs.readFileSync(file);
  for (let i = 0; i < 300; i++) {
    let broken: Buffer;
    switch (r.int(4)) {
      case 0:
        broken = text.subarray(0, r.int(text.length));
        break;
      case 1: {
        broken = Buffer.from(text);
        for (let k = 1 + r.int(3); k > 0; k--) broken[r.int(broken.length)] = r.int(256);
        break;
      }
      case 2: {
        const o = JSON.parse(text.toString());
        o[r.bool(0.7) ? r.pick(Object.keys(o)) : randomString(r, 8)] = randomJson(r, 2);
        broken = Buffer.from(JSON.stringify(o));
        break;
      }
      default:
        broken = Buffer.from(JSON.stringify(randomJson(r, 3)));
    }
    fs.writeFileSync(file, broken);
    const store = new SettingsStore(file);
    const s = store.get();
    if (store.problem) {
      assert.deepEqual(s, good, `seed ${SEED}, round ${i}`);
      assert.ok(store.problem.message.includes(file));
      assert.ok(store.problem.hint.length > 0);
    } else {
      assert.deepEqual(s, SettingsStore.load(file), `seed ${SEED}, round ${i}: a file without a problem is used as it is`);
    }
    assert.deepEqual(fs.readFileSync(file), broken, 'never overwritten by a read');
    fs.writeFileSync(file, text);
    new SettingsStore(file); // back to the good one (the last good copy follows it)
  }
});

test('the engine with a broken settings file keeps running, boots with the last good settings and says why', async () => {
  const home = path.join(t.dir, 'home');
  const restore = withEnv({
    BERTH_HOME: home,
    DOCKER_CONFIG: path.join(t.dir, 'docker'),
    BERTH_CACHE: path.join(t.dir, 'cache'),
  });
  const umask = process.umask();
  const paths = instancePaths('broken', home);
  const dockerd = await startFakeDockerd(path.join(t.dir, 'dockerd.sock'));
  const driver = new FakeDriver({
    mode: 'ok',
    hostKeyFile: paths.hostKey,
    clientPubFile: `${paths.clientKey}.pub`,
    dockerSocket: path.join(t.dir, 'dockerd.sock'),
  });
  fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  new SettingsStore(paths.settings).update({ cpus: 1, memoryMiB: 1024 });
  fs.writeFileSync(paths.settings, '{"cpus": 1, "memoryMiB": 10');
  const tuning = defaultTuning({ imageDir: fakeImageDir(path.join(t.dir, 'img')), accel: 'tcg' });
  const d = await startDaemon({ instance: 'broken', exitOnStop: false, driver, tuning });
  try {
    const c = await ControlClient.connect(paths);
    try {
      const st = await c.call('vm.status', {});
      assert.equal(st.settingsProblem?.code, 'SETTINGS_FILE_CORRUPT');
      assert.ok(st.settingsProblem?.message.includes(paths.settings));
      const shown = await c.call('settings.get', {});
      assert.equal(shown.memoryMiB, 1024);
      assert.equal(shown.problem?.code, 'SETTINGS_FILE_CORRUPT');
      const up = await c.call('vm.start', {});
      assert.equal(up.state, 'running');
      assert.equal(driver.specs[0]!.memoryMiB, 1024, 'booted with the last good settings');
      await assert.rejects(c.call('settings.update', { patch: { cpus: 'many' } }), (e) => isBerthError(e, 'INVALID_SETTINGS'));
      assert.equal(fs.readFileSync(paths.settings, 'utf8'), '{"cpus": 1, "memoryMiB": 10', 'a bad update touched nothing');
      await c.call('vm.stop', {});
    } finally {
      c.close();
    }
  } finally {
    await d.shutdown(true);
    await d.done;
    dockerd.close();
    process.umask(umask);
    restore();
  }
});
