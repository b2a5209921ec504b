import type { PortView } from '../forward/port-manager.js';
import { addPort, addShare, addSync, removePort, removeShare, removeSync } from '../settings/edits.js';
import type { Settings } from '../settings/schema.js';
import type { SettingsStore } from '../settings/store.js';
import type { ShareView } from '../share/share-manager.js';
import type { SyncView } from '../share/sync-session.js';
import type { GuestRuntime } from './guest-runtime.js';

/**
 * Shares, manual ports and synced folders while the engine runs: the edit
 * goes to settings (settings/edits.ts, the same edits the CLI and the
 * dashboard make with no engine), then the running part reads it at once.
 * Each answer pairs what runs with what is configured.
 */
export class LiveEdits {
  constructor(
    private readonly store: () => SettingsStore,
    private readonly runtime: () => GuestRuntime | undefined,
  ) {}

  sharesList(): { shares: ShareView[]; configured: Settings['shares'] } {
    return { shares: this.runtime()?.sharesList() ?? [], configured: this.store().get().shares };
  }

  /** Share a host folder: saved in settings, mounted at once when the VM runs. */
  async sharesAdd(p: { hostPath: string; guestPath?: string; readOnly?: boolean }) {
    addShare(this.store(), p);
    await this.runtime()?.refresh('shares');
    return this.sharesList();
  }

  async sharesRemove(p: { hostPath: string }) {
    removeShare(this.store(), p.hostPath);
    await this.runtime()?.refresh('shares');
    return this.sharesList();
  }

  portsList(): { ports: PortView[]; manual: Settings['ports'] } {
    return { ports: this.runtime()?.portsList() ?? [], manual: this.store().get().ports };
  }

  /** Add a manual forward: saved in settings, live at once when the VM runs. */
  async portsAdd(p: { hostPort: number; guestPort: number; proto?: 'tcp' | 'udp'; hostIp?: string }) {
    addPort(this.store(), p);
    await this.runtime()?.refresh('ports');
    return this.portsList();
  }

  async portsRemove(p: { hostPort: number; proto?: 'tcp' | 'udp' }) {
    removePort(this.store(), p);
    await this.runtime()?.refresh('ports');
    return this.portsList();
  }

  syncList(): { syncs: SyncView[]; configured: Settings['sync'] } {
    return { syncs: this.runtime()?.syncList() ?? [], configured: this.store().get().sync };
  }

  /** Sync a folder inside a share: saved in settings, copied at once when the VM runs. */
  async syncAdd(p: { hostPath: string }) {
    addSync(this.store(), p.hostPath);
    await this.runtime()?.refresh('sync');
    return this.syncList();
  }

  /** Stop syncing a folder: a last sync both ways, then the guest copy is deleted. */
  async syncRemove(p: { hostPath: string }) {
    removeSync(this.store(), p.hostPath);
    await this.runtime()?.refresh('sync');
    return this.syncList();
  }

  /** Settings changed through the API: apply what can be applied live. */
  async settingsChanged(changed: string[]): Promise<void> {
    await this.runtime()?.settingsChanged(changed);
  }
}
