/**
 * The engine's troubleshooting methods: logs.read, the diagnostics bundle
 * (keys and tokens never in it) and the factory reset (only with the VM
 * stopped; data disk gone, settings back to defaults).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { unzipSync, strFromU8 } from 'fflate';
import { buildDiagnostics, redact } from '../../app/engine/api/diagnostics.js';
import { factoryReset } from '../../app/engine/api/factory-reset.js';
import { readLog } from '../../app/engine/api/log-read.js';
import { isBerthError } from '../../app/contract/errors.js';
import { instancePaths } from '../../app/base/paths.js';
import { readTuning, tryReadTuning } from '../../app/base/tuning.js';
import { SettingsStore } from '../../app/engine/settings/store.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('ts');
after(() => t.cleanup());
const paths = instancePaths('default', path.join(t.dir, 'home'));
fs.mkdirSync(paths.keysDir, { recursive: true });

const PRIVATE = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----';
const TOKEN = 'f'.repeat(10) + '0123456789abcdef'.repeat(3);

test('redact: private keys, public keys, tokens and password-like fields', () => {
  const text = `key:\n${PRIVATE}\nhost ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO7 berth\n{"token":"abc123","password": "pw"}\nurl http://x/?token=zzz&a=1\ncontrol ${TOKEN}`;
  const out = redact(text, [TOKEN]);
  assert.doesNotMatch(out, /b3BlbnNzaC1rZXkt|AAAAC3Nza|abc123|"pw"|zzz/);
  assert.ok(!out.includes(TOKEN));
  assert.match(out, /<private key redacted>/);
  assert.match(out, /ssh-ed25519 <key redacted>/);
  assert.match(out, /\?token=<redacted>&a=1/);
});

test('logs.read: the engine log formatted for people, the serial log as it is', () => {
  fs.writeFileSync(paths.engineLog, [1, 2, 3].map((i) => JSON.stringify({ level: 30, time: 0, msg: `m${i}` })).join('\n') + '\n');
  fs.writeFileSync(paths.serialLog, 'Linux version 6.1\r\n\x1b[0mberth-init: up\r\n');
  const e = readLog(paths, 'engine', 2);
  assert.equal(e.lines.length, 2);
  assert.match(e.lines[1]!, /INFO m3$/);
  assert.deepEqual(readLog(paths, 'serial').lines, ['Linux version 6.1', 'berth-init: up']);
  assert.deepEqual(readLog({ ...paths, serialLog: path.join(t.dir, 'none') }, 'serial').lines, []);
});

test('diagnostics bundle: logs, settings and status in a zip; no key or token anywhere in it', () => {
  fs.writeFileSync(paths.clientKey, PRIVATE);
  fs.writeFileSync(paths.token, TOKEN + '\n');
  fs.appendFileSync(paths.engineLog, JSON.stringify({ level: 30, time: 0, msg: `leak ${TOKEN} ${PRIVATE}` }) + '\n');
  fs.writeFileSync(paths.settings, JSON.stringify({ cpus: 1 }));
  const b = buildDiagnostics({ paths, extra: { 'status.json': { state: 'stopped' }, 'guest.log': 'sshd: ok\n' } });
  assert.ok(fs.existsSync(b.path));
  assert.equal(fs.statSync(b.path).mode & 0o777, 0o600);
  assert.equal(Buffer.from(b.base64, 'base64').length, b.bytes);
  const files = unzipSync(fs.readFileSync(b.path));
  assert.deepEqual(Object.keys(files).sort(), ['engine.log', 'guest.log', 'serial.log', 'settings.json', 'status.json', 'system.json']);
  const all = Object.values(files)
    .map((f) => strFromU8(f))
    .join('\n');
  assert.ok(!all.includes(TOKEN), 'the control token is not in the bundle');
  assert.doesNotMatch(all, /PRIVATE KEY-----\nb3Bl/);
  assert.match(strFromU8(files['engine.log']!), /leak <redacted>/);
  assert.equal(JSON.parse(strFromU8(files['settings.json']!)).cpus, 1);
  for (let i = 0; i < 6; i++) buildDiagnostics({ paths });
  assert.ok(fs.readdirSync(paths.dir).filter((f) => f.startsWith('berth-diagnostics-')).length <= 5, 'old bundles are pruned');
});

test('diagnostics bundle: system.json lists the overrides in effect from the tuning, or why they were refused', () => {
  const system = (tuning: Parameters<typeof buildDiagnostics>[0]['tuning']) =>
    JSON.parse(strFromU8(unzipSync(fs.readFileSync(buildDiagnostics({ paths, tuning }).path))['system.json']!));
  assert.deepEqual(system(readTuning({ BERTH_ACCEL: 'tcg', BERTH_STOP_TIMEOUT_MS: '5000', BERTH_LOG_LEVEL: 'info' })).overrides, {
    BERTH_ACCEL: 'tcg',
    BERTH_STOP_TIMEOUT_MS: '5000',
  });
  assert.deepEqual(system(readTuning({})).overrides, {});
  assert.match(system(tryReadTuning({ BERTH_ACCEL: 'whpx' })).overrides.refused, /^BERTH_ACCEL=whpx /);
});

test('factory reset: refused unless the VM is stopped; then the data disk goes and settings are defaults', () => {
  fs.writeFileSync(paths.dataDisk, 'disk');
  fs.writeFileSync(paths.settings, JSON.stringify({ cpus: 1, memoryMiB: 1024, portBind: 'all' }));
  const store = new SettingsStore(paths.settings);
  assert.throws(
    () => factoryReset({ paths, state: 'running', settings: store }),
    (e: unknown) => isBerthError(e, 'VM_BUSY') && /Stop the VM first/.test(e.hint),
  );
  assert.ok(fs.existsSync(paths.dataDisk), 'nothing deleted while running');
  const r = factoryReset({ paths, state: 'stopped', settings: store });
  assert.ok(r.removed.includes(paths.dataDisk));
  assert.equal(fs.existsSync(paths.dataDisk), false);
  assert.equal(r.settings.portBind, 'loopback');
  assert.equal(new SettingsStore(paths.settings).get().memoryMiB, SettingsStore.load('/nonexistent').memoryMiB);
  assert.ok(fs.existsSync(paths.clientKey), 'keys stay');
});

test("factory reset deletes Hyper-V's data and config disks too", () => {
  fs.writeFileSync(paths.dataVhdx, 'vhdx');
  fs.writeFileSync(paths.configVhd, 'vhd');
  const r = factoryReset({ paths, state: 'stopped', settings: new SettingsStore(paths.settings) });
  assert.ok(r.removed.includes(paths.dataVhdx) && r.removed.includes(paths.configVhd));
  assert.equal(fs.existsSync(paths.dataVhdx), false);
  assert.equal(fs.existsSync(paths.configVhd), false);
});

test('factory reset puts a grown disk size back to the default (the disk is gone)', () => {
  fs.writeFileSync(paths.dataDisk, '');
  fs.truncateSync(paths.dataDisk, 2 ** 30);
  fs.writeFileSync(paths.settings, JSON.stringify({ diskGiB: 100 }));
  const store = new SettingsStore(paths.settings, { dataDisk: paths.dataDisk });
  const r = factoryReset({ paths, state: 'stopped', settings: store });
  assert.equal(r.settings.diskGiB, 64);
  assert.deepEqual(r.kept, []);
});
