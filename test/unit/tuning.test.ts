/**
 * The engine's environment overrides (app/base/tuning.ts): read once into a
 * typed object, bad values refused naming the variable, and nothing else
 * in app/ reading BERTH_* from process.env.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { isBerthError } from '../../app/contract/errors.js';
import { defaultTuning, readTuning, TUNING, tuningInEffect } from '../../app/base/tuning.js';
import { ROOT } from '../helpers/run.js';

test('with nothing set, every override is its default', () => {
  const t = readTuning({});
  assert.deepEqual(t, {
    syncStartTimeoutMs: 120_000,
    syncStopTimeoutMs: 60_000,
    stopTimeoutMs: 60_000,
    recoveryDelayMs: 2000,
    kvmProbeTimeoutMs: 8000,
    qemuHostForwards: [],
    hostRelay: false,
    logLevel: 'info',
    logStderr: false,
  });
  assert.equal(t.bootTimeoutMs, undefined, 'boot and docker timeouts depend on the accelerator: the engine decides');
  assert.deepEqual(defaultTuning(), t);
  assert.deepEqual(tuningInEffect(t), {});
});

test('an empty variable counts as unset', () => {
  assert.deepEqual(readTuning({ BERTH_BOOT_TIMEOUT_MS: '', BERTH_ACCEL: '', BERTH_STOP_TIMEOUT_MS: '' }), readTuning({}));
});

test('values are parsed into their types', () => {
  const t = readTuning({
    BERTH_BOOT_TIMEOUT_MS: '1500',
    BERTH_RECOVERY_DELAY_MS: '0',
    BERTH_ACCEL: 'tcg',
    BERTH_SHARE_MECHANISM: 'sshfs',
    BERTH_BOOT: 'efi',
    BERTH_GUEST_ARCH: 'arm64',
    BERTH_QEMU: '/opt/qemu',
    BERTH_QEMU_HOSTFWD: '28080:18080,28081:18081',
    BERTH_LOG_LEVEL: 'debug',
    BERTH_LOG_STDERR: '1',
  });
  assert.equal(t.bootTimeoutMs, 1500);
  assert.equal(t.recoveryDelayMs, 0);
  assert.equal(t.accel, 'tcg');
  assert.equal(t.shareMechanism, 'sshfs');
  assert.equal(t.boot, 'efi');
  assert.equal(t.guestArch, 'aarch64', 'arm64 is aarch64');
  assert.equal(readTuning({ BERTH_GUEST_ARCH: 'amd64' }).guestArch, 'x86_64');
  assert.equal(t.qemu, '/opt/qemu');
  assert.deepEqual(t.qemuHostForwards, ['28080:18080', '28081:18081']);
  assert.equal(t.logLevel, 'debug');
  assert.equal(t.logStderr, true);
  assert.deepEqual(tuningInEffect(t), {
    BERTH_BOOT_TIMEOUT_MS: '1500',
    BERTH_RECOVERY_DELAY_MS: '0',
    BERTH_ACCEL: 'tcg',
    BERTH_SHARE_MECHANISM: 'sshfs',
    BERTH_BOOT: 'efi',
    BERTH_GUEST_ARCH: 'aarch64',
    BERTH_QEMU: '/opt/qemu',
    BERTH_QEMU_HOSTFWD: '28080:18080,28081:18081',
    BERTH_LOG_LEVEL: 'debug',
    BERTH_LOG_STDERR: '1',
  });
});

test('each bad value is refused with INVALID_SETTINGS, naming the variable and what it takes', () => {
  const bad: [string, string, RegExp][] = [
    ['BERTH_BOOT_TIMEOUT_MS', 'abc', /milliseconds/],
    ['BERTH_BOOT_TIMEOUT_MS', '1.5', /milliseconds/],
    ['BERTH_BOOT_TIMEOUT_MS', '-1', /milliseconds/],
    ['BERTH_DOCKER_TIMEOUT_MS', '60s', /milliseconds/],
    ['BERTH_SYNC_START_TIMEOUT_MS', 'x', /milliseconds/],
    ['BERTH_SYNC_STOP_TIMEOUT_MS', 'x', /milliseconds/],
    ['BERTH_STOP_TIMEOUT_MS', '0', /1 or more/],
    ['BERTH_RECOVERY_DELAY_MS', 'soon', /milliseconds/],
    ['BERTH_KVM_PROBE_TIMEOUT_MS', '99999999999', /milliseconds/],
    ['BERTH_ACCEL', 'whpx', /kvm, tcg or hvf/],
    ['BERTH_SHARE_MECHANISM', 'nfs', /auto, virtiofs or sshfs/],
    ['BERTH_BOOT', 'bios', /kernel, efi or vhdx/],
    ['BERTH_GUEST_ARCH', 'riscv64', /x86_64 .* aarch64/],
    ['BERTH_QEMU_HOSTFWD', '28080', /host:guest/],
    ['BERTH_LOG_LEVEL', 'loud', /info, debug/],
    ['BERTH_LOG_STDERR', 'true', /1 or 0/],
  ];
  for (const [name, value, takes] of bad) {
    assert.throws(
      () => readTuning({ [name]: value }),
      (e) => isBerthError(e, 'INVALID_SETTINGS') && e.message.startsWith(`${name}=${value} `) && takes.test(e.hint) && e.hint.includes(name),
      `${name}=${value}`,
    );
  }
});

test('every override has a variable, what it takes and a line saying what it is for', () => {
  const names = Object.values(TUNING).map((d) => d.env);
  assert.equal(new Set(names).size, names.length);
  for (const d of Object.values(TUNING)) {
    assert.match(d.env, /^BERTH_[A-Z0-9_]+$/);
    assert.ok(d.takes.length > 2 && d.doc.length > 10, d.env);
  }
});

/** The files that may read BERTH_* from process.env: the tuning module and the process's own identity (paths, the CLI's program, Electron main). */
const MAY_READ_ENV = new Set(['app/base/tuning.ts', 'app/base/paths.ts', 'app/cli/program.ts', 'app/cli/dashboard.ts', 'app/main/main.ts']);

test('no module but tuning.ts and the process entries reads BERTH_* from process.env', () => {
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.tsx?$/.test(e.name)) {
        const rel = path.relative(ROOT, p).split(path.sep).join('/');
        if (MAY_READ_ENV.has(rel)) continue;
        fs.readFileSync(p, 'utf8')
          .split('\n')
          .forEach((line, i) => {
            // process.env.BERTH_X, process.env['BERTH_X'], and a BERTH_ name looked up in a whole environment.
            if (/process\.env(\.BERTH_|\[\s*['"`]BERTH_)/.test(line) || (/process\.env\b/.test(line) && /BERTH_/.test(line)) || /\benv\.BERTH_/.test(line)) {
              offenders.push(`${rel}:${i + 1}: ${line.trim()}`);
            }
          });
      }
    }
  };
  walk(path.join(ROOT, 'app'));
  assert.deepEqual(offenders, [], 'read overrides through readTuning (app/base/tuning.ts) and pass them in');
});
