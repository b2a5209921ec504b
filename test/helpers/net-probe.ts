/**
 * Small network probes the VM tests share: an echo round trip through a
 * forwarded port, a poll that reports how long something took, and a static
 * helper binary built from test/fixtures for the guest's architecture.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { packageRoot } from '../../app/base/package-root.js';
import { waitFor } from '../../app/base/process-util.js';
import type { GuestArch } from '../../app/engine/drivers/driver.js';
import { configuredGuestArch, hostGuestArch } from '../../app/engine/image/recipe.js';

/** Send `payload`, half-close, and collect everything echoed back until the peer ends. */
export function echoRoundTrip(port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection({ host: '127.0.0.1', port, allowHalfOpen: true });
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('end', () => resolve(Buffer.concat(parts)));
    s.on('error', reject);
    s.on('connect', () => s.end(payload));
  });
}

/** Poll until `check` holds; prints and returns the milliseconds it took (throws after `limitMs`). */
export async function timeUntil(what: string, check: () => Promise<boolean>, limitMs = 15_000): Promise<number> {
  const t0 = performance.now();
  const okay = await waitFor(check, limitMs, 25);
  const ms = Math.round(performance.now() - t0);
  assert.ok(okay, `${what}: not within ${limitMs} ms`);
  process.stdout.write(`# ${what}: ${ms} ms\n`);
  return ms;
}

/**
 * Build test/fixtures/NAME.c statically into DIR for the guest's
 * architecture (the host's cc, or for the other one Debian's cross
 * compiler, as BERTH_GUEST_ARCH=aarch64 on an x86_64 host asks); the
 * binary's path, or why it could not be built (the caller skips with that
 * reason, never silently).
 */
export function buildFixture(name: string, dir: string, arch: GuestArch = configuredGuestArch()): { bin?: string; problem?: string } {
  const bin = path.join(dir, name);
  const cc = fixtureCompiler(arch);
  try {
    execFileSync(cc.command, ['-static', '-O2', '-o', bin, path.join(packageRoot(), 'test', 'fixtures', `${name}.c`)], { stdio: 'pipe' });
    return { bin };
  } catch (err) {
    return { problem: `cannot build the static ${name} for ${arch} with ${cc.command} (${(err as Error).message.split('\n')[0]}); ${cc.from}` };
  }
}

/** The C compiler that makes static programs for `arch`'s guest, and where it comes from. */
export function fixtureCompiler(arch: GuestArch, host: GuestArch = hostGuestArch()): { command: string; from: string } {
  if (arch === host) return { command: 'cc', from: 'Debian: gcc and libc6-dev (./scripts/test.sh installs them)' };
  return arch === 'aarch64'
    ? { command: 'aarch64-linux-gnu-gcc', from: 'Debian: gcc-aarch64-linux-gnu and libc6-dev-arm64-cross (./scripts/test.sh installs them)' }
    : { command: 'x86_64-linux-gnu-gcc', from: 'Debian: gcc-x86-64-linux-gnu and libc6-dev-amd64-cross' };
}
