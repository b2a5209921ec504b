/**
 * The VM tests' static helper programs (test/fixtures/*.c) are built for
 * the guest's architecture: an x86_64 binary in an arm64 guest fails with
 * "exec format error", which the arm64 matrix (BERTH_GUEST_ARCH=aarch64)
 * met before.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { GuestArch } from '../../app/engine/drivers/driver.js';
import { buildFixture, fixtureCompiler } from '../helpers/net-probe.js';
import { after } from 'node:test';
import { needNow, test } from '../helpers/prereq-gate.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('fix');
after(() => t.cleanup());

/** ELF e_machine: 62 x86_64, 183 aarch64. */
const MACHINE: Record<GuestArch, number> = { x86_64: 62, aarch64: 183 };

test("the host's own architecture uses cc; the other one Debian's cross compiler, named with its packages", () => {
  assert.equal(fixtureCompiler('x86_64', 'x86_64').command, 'cc');
  const cross = fixtureCompiler('aarch64', 'x86_64');
  assert.equal(cross.command, 'aarch64-linux-gnu-gcc');
  assert.match(cross.from, /gcc-aarch64-linux-gnu and libc6-dev-arm64-cross/);
  assert.equal(fixtureCompiler('x86_64', 'aarch64').command, 'x86_64-linux-gnu-gcc');
});

for (const arch of ['x86_64', 'aarch64'] as const) {
  test(`the echo server and the watcher build as static ${arch} programs`, (ctx) => {
    const dir = path.join(t.dir, arch);
    fs.mkdirSync(dir);
    for (const name of ['echo-server', 'inotify-watch']) {
      const built = buildFixture(name, dir, arch);
      if (needNow(ctx, built.problem)) return;
      const elf = fs.readFileSync(built.bin!);
      assert.equal(elf.subarray(0, 4).toString('latin1'), '\x7fELF', name);
      assert.equal(elf.readUInt16LE(18), MACHINE[arch], `${name} is an ${arch} program`);
    }
  });
}
