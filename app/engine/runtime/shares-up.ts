/**
 * The shared folders on one guest session: the share manager (mounts by
 * virtio-fs or reverse sshfs, per the share plan), the change notifier that
 * carries host edits to containers' watchers, the advice on what to sync,
 * and a virtio-fs device whose virtiofsd went away.
 */
import type { Logger } from 'pino';
import type { DockerApi } from '../docker/docker-api.js';
import type { RunningVm } from '../drivers/driver.js';
import type { GuestSession } from '../guest/session.js';
import type { Settings } from '../settings/schema.js';
import { within } from '../settings/sync-paths.js';
import { ChangeNotifier } from '../share/change-notifier.js';
import { adviseShares } from '../share/share-activity.js';
import { ShareManager, type ShareView } from '../share/share-manager.js';
import { routeOf, type SharePlan } from '../share/virtiofs.js';

export interface SharesUp {
  notifier: ChangeNotifier;
  shares: ShareManager;
  /** The first mounts are done (failures are logged, never thrown). */
  mounted: Promise<void>;
  stop(): Promise<void>;
}

export function bringUpShares(o: {
  session: GuestSession;
  log: Logger;
  vm: RunningVm;
  settings: () => Settings;
  /** Which shares are virtio-fs devices of this VM (absent: all reverse sshfs). */
  sharePlan?: SharePlan;
  dockerApi: DockerApi;
  /** The shares' views changed. */
  changed: (list: ShareView[]) => void;
}): SharesUp {
  const { session, log } = o;
  // Set once the manager is made: the notifier is made first, and asks later.
  const made: { shares?: ShareManager } = {};
  const notifier = new ChangeNotifier(
    session,
    o.dockerApi,
    log,
    () => (made.shares?.list() ?? []).filter((x) => x.state === 'mounted'),
    // Synced folders' guest copies get real writes (and real inotify events) from the sync.
    (hostPath) => o.settings().sync.some((x) => within(hostPath, x.hostPath)),
  );
  const plan = o.sharePlan ?? { routes: {}, later: 'reverse sshfs (this VM was started without a share plan)' };
  const manager = new ShareManager(
    session,
    log,
    () => o.settings().shares,
    (p) => notifier.guestChanged(p),
    (s) => routeOf(plan, s),
    (views) =>
      adviseShares(
        views,
        notifier.activity,
        o.settings().sync.map((x) => x.hostPath),
      ),
  );
  made.shares = manager;
  notifier.activity.on('busy', () => manager.emit('change', manager.list()));
  o.vm.onShareLost?.((tag, reason) => {
    // A guest asked to power off takes its virtio-fs devices down first:
    // each virtiofsd exits a moment before the VM, which is no share lost.
    if (session.currentState !== 'closed') manager.virtiofsLost(tag, reason);
  });
  manager.on('change', (list) => o.changed(list));
  const mounted = manager.start().catch((err: Error) => log.error({ err: err.message }, 'shared folders failed'));
  return {
    notifier,
    shares: manager,
    mounted,
    async stop() {
      notifier.stop();
      await manager.stop().catch(() => undefined);
    },
  };
}
