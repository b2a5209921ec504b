/**
 * A synced folder without a VM, for the sync tests: the "guest" is this
 * machine behind a real ssh2 exec channel (exec-guest.ts), so the engine's
 * Perl agent, GNU tar and whole cycles run for real. `rewrite` makes the
 * guest hostile (forged scans, as root in the VM could send).
 */
import path from 'node:path';
import { findExecutable } from '../../app/base/process-util.js';
import { GuestSession } from '../../app/engine/guest/session.js';
import { silentLogger } from '../../app/base/log.js';
import { syncId } from '../../app/engine/settings/sync-paths.js';
import { SyncSession } from '../../app/engine/share/sync-session.js';
import { startExecGuest, type ExecGuest } from './exec-guest.js';
import { newEd25519Pair } from '../../app/base/ssh-keys.js';

export interface SyncRig {
  guest: ExecGuest;
  session: GuestSession;
  /** A new SyncSession for the folder (not started). */
  make(): SyncSession;
  /** A path in the guest copy. */
  copy(...p: string[]): string;
  close(): Promise<void>;
}

export async function startSyncRig(o: { hostPath: string; guestRoot: string; stateDir: string; rewrite?: (command: string) => string }): Promise<SyncRig> {
  const client = newEd25519Pair();
  const hostKey = newEd25519Pair();
  const guest = await startExecGuest({ hostPrivateKey: hostKey.private, clientPublicKey: client.public, rewrite: o.rewrite });
  const session = new GuestSession({
    host: '127.0.0.1',
    port: guest.port,
    privateKey: client.private,
    hostPublicKey: hostKey.public,
    log: silentLogger(),
    vmAlive: () => true,
  });
  await session.connect(5000);
  const sessions: SyncSession[] = [];
  return {
    guest,
    session,
    make() {
      const s = new SyncSession({
        hostPath: o.hostPath,
        guestPath: () => o.hostPath,
        shareMounted: () => false,
        session,
        log: silentLogger(),
        stateDir: o.stateDir,
        guestRoot: o.guestRoot,
      });
      sessions.push(s);
      return s;
    },
    copy: (...p) => path.join(o.guestRoot, syncId(o.hostPath), 'tree', ...p),
    async close() {
      for (const s of sessions) await s.stop();
      session.close();
      await guest.close();
    },
  };
}

/**
 * The most cycles a session may run in 3 s while one change keeps failing:
 * its retries (0.5 s, then 1 s: 2), one watcher event, and, when the guest
 * has no inotifywait (the "guest" here is this machine), the 2 s rescans
 * (2). A livelock runs one cycle after another (25 in 2 s in issue 14).
 */
export function cycleBound(): number {
  return findExecutable('inotifywait') ? 4 : 6;
}

/** Run a cycle now (or join the one running, then run one more). */
export async function flushCycle(s: SyncSession): Promise<void> {
  await s.flush();
}
