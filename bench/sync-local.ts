/**
 * Sync mode's own cost, without a VM: the "guest" is this machine behind a
 * real ssh2 exec channel (test/helpers/exec-guest.ts), so the Perl agent,
 * GNU tar and the engine's cycles run for real at native speed. Next to the
 * VM rows it shows how much of a sync's time is the emulated guest's CPU.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { GuestSession } from '../app/engine/guest/session.js';
import { silentLogger } from '../app/base/log.js';
import { waitFor } from '../app/base/process-util.js';
import { syncId } from '../app/engine/settings/sync-paths.js';
import { SyncSession } from '../app/engine/share/sync-session.js';
import { startExecGuest } from '../test/helpers/exec-guest.js';

export interface SyncLocalResult {
  files: number;
  /** `berth sync add` of a folder holding `files` small files, to the first copy done. */
  initialMs: number;
  /** `files` more files written on the host while syncing, until all are in the copy. */
  liveMs: number;
}

function writeFiles(root: string, sub: string, n: number): void {
  for (let i = 0; i < n; i++) {
    const d = path.join(root, sub, `d${i % 50}`);
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, `f${i}.txt`), 'x'.repeat(100));
  }
}

function countFiles(dir: string): number {
  let n = 0;
  try {
    for (const d of fs.readdirSync(dir)) n += fs.readdirSync(path.join(dir, d)).length;
  } catch {
    /* not there yet */
  }
  return n;
}

export async function benchSyncLocal(files = 5000): Promise<SyncLocalResult> {
  const t = fs.mkdtempSync(path.join(os.tmpdir(), 'bsl-'));
  const host = path.join(t, 'host');
  const guestRoot = path.join(t, 'guest');
  writeFiles(host, 'a', files);
  const client = ssh2.utils.generateKeyPairSync('ed25519');
  const hostKey = ssh2.utils.generateKeyPairSync('ed25519');
  const guest = await startExecGuest({ hostPrivateKey: hostKey.private, clientPublicKey: client.public });
  const gs = new GuestSession({ host: '127.0.0.1', port: guest.port, privateKey: client.private, hostPublicKey: hostKey.public, log: silentLogger(), vmAlive: () => true });
  const sync = new SyncSession({ hostPath: host, guestPath: () => host, shareMounted: () => false, session: gs, log: silentLogger(), stateDir: path.join(t, 'state'), guestRoot });
  try {
    await gs.connect(5000);
    let t0 = performance.now();
    await sync.start();
    const initialMs = performance.now() - t0;
    t0 = performance.now();
    writeFiles(host, 'b', files);
    const copied = path.join(guestRoot, syncId(host), 'tree', 'b');
    if (!(await waitFor(() => countFiles(copied) >= files, 600_000, 50))) throw new Error('the live files did not reach the copy within 10 minutes');
    return { files, initialMs, liveMs: performance.now() - t0 };
  } finally {
    await sync.stop();
    gs.close();
    await guest.close();
    fs.rmSync(t, { recursive: true, force: true });
  }
}
