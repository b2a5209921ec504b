/**
 * `berth settings` as issue 19 asked: sizes with units, the nearest key for
 * a typo, every key in the help (from the schema), `show` aligned and
 * unquoted. Needs the built CLI.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { settingsKeys } from '../../app/client/settings-keys.js';
import { parsePairs } from '../../app/cli/settings-input.js';
import { nearest } from '../../app/cli/suggest.js';
import { isBerthError } from '../../app/contract/errors.js';
import { berth } from '../helpers/run.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('cls');
const env = {
  ...process.env,
  BERTH_HOME: path.join(t.dir, 'home'),
  BERTH_CACHE: path.join(t.dir, 'cache'),
  DOCKER_CONFIG: path.join(t.dir, 'docker'),
  NO_COLOR: '1',
};
after(() => t.cleanup());
const onFile = (instance: string) => JSON.parse(fs.readFileSync(path.join(env.BERTH_HOME, instance, 'settings.json'), 'utf8'));

test('the key table comes from the schema: types, ranges, defaults, units', () => {
  const keys = Object.fromEntries(settingsKeys().map((k) => [k.key, k]));
  assert.deepEqual(Object.keys(keys), [
    'cpus',
    'memoryMiB',
    'diskGiB',
    'accel',
    'driver',
    'rosetta',
    'idleMinutes',
    'portBind',
    'shareMechanism',
    'ports',
    'shares',
    'sync',
    'insecureRegistries',
    'caCertificates',
    'httpProxy',
    'httpsProxy',
    'noProxy',
  ]);
  assert.equal(keys.cpus!.max, os.cpus().length);
  assert.deepEqual([keys.insecureRegistries!.type, keys.httpProxy!.type, keys.httpProxy!.default, keys.httpProxy!.restart], ['texts', 'text', '', true]);
  assert.equal(keys.memoryMiB!.min, 512);
  assert.equal(keys.memoryMiB!.unit, 'MiB');
  assert.deepEqual([keys.diskGiB!.min, keys.diskGiB!.max, keys.diskGiB!.default, keys.diskGiB!.unit], [4, 4096, 64, 'GiB']);
  assert.deepEqual(keys.driver!.choices, ['auto', 'qemu', 'vfkit', 'hyperv']);
  assert.equal(keys.rosetta!.type, 'boolean');
  assert.equal(keys.portBind!.restart, false);
  assert.equal(keys.ports!.type, 'list');
  assert.deepEqual([keys.idleMinutes!.integer, keys.cpus!.integer], [undefined, true]);
});

test('text keys take the value as typed; lists of text are comma-separated, empty for none', () => {
  const keys = settingsKeys();
  assert.deepEqual(parsePairs(['httpProxy=http://127.0.0.1:3128', 'noProxy=localhost,.corp'], keys), {
    httpProxy: 'http://127.0.0.1:3128',
    noProxy: 'localhost,.corp',
  });
  assert.deepEqual(parsePairs(['insecureRegistries=host.docker.internal:5000, 10.0.0.5:5000'], keys), {
    insecureRegistries: ['host.docker.internal:5000', '10.0.0.5:5000'],
  });
  assert.deepEqual(parsePairs(['insecureRegistries=', 'httpsProxy='], keys), { insecureRegistries: [], httpsProxy: '' });
  // CA files named relative to where the command runs.
  assert.deepEqual(parsePairs(['caCertificates=corp/ca.pem,/etc/ssl/b.pem'], keys), { caCertificates: [path.resolve('corp/ca.pem'), '/etc/ssl/b.pem'] });
  // A text that looks like a number stays text: the schema says what it takes.
  assert.deepEqual(parsePairs(['httpProxy=3128'], keys), { httpProxy: '3128' });
});

test("units: sizes in any binary unit become the key's own", () => {
  const keys = settingsKeys();
  for (const [pair, want] of [
    ['memory=4GiB', { memoryMiB: 4096 }],
    ['memory=4096MiB', { memoryMiB: 4096 }],
    ['memoryMiB=4G', { memoryMiB: 4096 }],
    ['memoryMiB=1.5gb', { memoryMiB: 1536 }],
    ['memoryMiB=2048', { memoryMiB: 2048 }],
    ['diskGiB=1TiB', { diskGiB: 1024 }],
    ['disk=100G', { diskGiB: 100 }],
    ['diskGiB=80', { diskGiB: 80 }],
  ] as const) {
    assert.deepEqual(parsePairs([pair], keys), want, pair);
  }
  assert.throws(
    () => parsePairs(['memory=4096'], keys),
    (e) => isBerthError(e, 'INVALID_SETTINGS') && /needs a unit/.test(e.message) && /memory=4GiB/.test(e.hint),
  );
  assert.throws(
    () => parsePairs(['diskGiB=100MiB'], keys),
    (e) => isBerthError(e, 'INVALID_SETTINGS') && /not a whole number of GiB/.test(e.message),
  );
});

test('did you mean: the nearest key, or none when nothing is near', () => {
  assert.equal(nearest('strat', ['start', 'stop', 'status']), 'start');
  assert.equal(nearest('memroy', ['memoryMiB', 'memory']), 'memory');
  assert.equal(nearest('memoryMB', ['memoryMiB', 'memory']), 'memoryMiB');
  assert.equal(nearest('cpu', ['cpus', 'accel']), 'cpus');
  assert.equal(nearest('zzz', ['cpus', 'accel']), undefined);
});

test('`settings set`: units end to end, a typo suggests the key, a list says which command edits it', async () => {
  const e = { ...env, BERTH_INSTANCE: 'units' };
  const ok = await berth(['settings', 'set', 'memory=1GiB', 'disk=100G'], e);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /Saved: memoryMiB=1024, diskGiB=100\./);
  assert.deepEqual([onFile('units').memoryMiB, onFile('units').diskGiB], [1024, 100]);
  const typo = await berth(['settings', 'set', 'memroy=4GiB'], e);
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /"memroy" is not a setting \(did you mean memory\?\) \[INVALID_SETTINGS\]/);
  assert.match(typo.stderr, /hint: Nothing was saved\. `berth settings set --help` lists every key/);
  const cpu = await berth(['settings', 'set', 'cpu=1'], e);
  assert.match(cpu.stderr, /did you mean cpus\?/);
  const abc = await berth(['settings', 'set', 'cpus=abc'], e);
  assert.match(abc.stderr, /cpus: must be a number \[INVALID_SETTINGS\]/);
  const list = await berth(['settings', 'set', 'ports=8080'], e);
  assert.equal(list.code, 1);
  assert.match(list.stderr, /hint: Nothing was saved\. Edit it with `berth port add` and `berth port rm`/);
  assert.equal(onFile('units').memoryMiB, 1024, 'nothing changed');
});

test('`settings set --help` lists every key with type, range and default', async () => {
  const r = await berth(['settings', 'set', '--help'], env);
  assert.equal(r.code, 0);
  for (const k of settingsKeys()) assert.match(r.stdout, new RegExp(`^ {2}${k.key} `, 'm'), k.key);
  assert.match(r.stdout, /^ {2}memoryMiB +number \(MiB\) +512\.\.\d+ +default \d+ +restart/m);
  assert.match(r.stdout, /^ {2}diskGiB +number \(GiB\) +4\.\.4096 +default 64/m);
  assert.match(r.stdout, /^ {2}driver +auto\|qemu\|vfkit\|hyperv +default auto/m);
  assert.match(r.stdout, /memory=4096MiB/);
});

test('`settings show`: aligned columns, strings without quotes, lists one per line', async () => {
  const e = { ...env, BERTH_INSTANCE: 'show' };
  assert.equal((await berth(['settings', 'set', 'driver=qemu'], e)).code, 0);
  assert.equal((await berth(['port', 'add', '18700:80'], e)).code, 0);
  const r = await berth(['settings', 'show'], e);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stdout.includes('"'), r.stdout);
  // The widest key (insecureRegistries) sets the column.
  assert.match(r.stdout, /^driver {14}qemu$/m);
  assert.match(r.stdout, /^ports {15}18700:80\/tcp$/m);
  assert.match(r.stdout, /^sync {16}\(none\)$/m);
  assert.match(r.stdout, /^httpProxy {11}\(none\)$/m, 'an empty text says none');
  const cols = r.stdout
    .trimEnd()
    .split('\n')
    .map((l) => /^\S+ +(?=\S)/.exec(l)?.[0].length ?? /^ +(?=\S)/.exec(l)?.[0].length);
  assert.equal(new Set(cols).size, 1, `one value column: ${r.stdout}`);
});
