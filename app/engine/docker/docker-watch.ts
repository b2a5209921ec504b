import type { Broadcast } from '../../contract/contract.js';
import type { DockerApi, DockerEvent } from './docker-api.js';
import { containerView, type ContainerSummaryFull } from './docker-views.js';

/**
 * Docker's event stream turned into the contract's change events, so the
 * UI's lists follow `docker run`, `docker rm`, Compose and everything else
 * live. Started by the first Docker request a client makes; from then on it
 * follows the VM: when the VM stops the stream ends, and it is picked up
 * again once the VM runs.
 */

/** Container actions that do not change what the list shows. */
const QUIET = /^(exec_|attach|detach|resize|top|archive-path|extract-to-dir|copy|export|commit|kill)/;
const VOLUME_ACTIONS = new Set(['create', 'destroy', 'prune']);

export class DockerWatcher {
  private active = false;
  private stream?: { stop: () => void };
  private retry?: NodeJS.Timeout;
  private pending = new Map<string, { action: string; timer: NodeJS.Timeout }>();
  private closed = false;

  constructor(
    private readonly api: () => DockerApi,
    private readonly broadcast: Broadcast,
    private readonly o: { retryMs: number; debounceMs: number } = { retryMs: 2000, debounceMs: 50 },
  ) {}

  get watching(): boolean {
    return !!this.stream;
  }

  /** Start following Docker's events (and keep at it while the VM comes and goes). */
  ensure(): void {
    if (this.closed) return;
    this.active = true;
    if (!this.stream && !this.retry) this.connect();
  }

  private connect(): void {
    this.retry = undefined;
    if (this.closed || this.stream) return;
    let api: DockerApi;
    try {
      api = this.api();
    } catch {
      return this.schedule(); // VM not running yet
    }
    const s = api.events(
      { type: ['container', 'image', 'volume'] },
      (e) => this.onEvent(api, e),
      () => {
        if (this.stream === s) this.stream = undefined;
        this.schedule();
      },
    );
    this.stream = s;
  }

  private schedule(): void {
    if (this.closed || !this.active || this.retry) return;
    this.retry = setTimeout(() => this.connect(), this.o.retryMs);
    this.retry.unref();
  }

  private onEvent(api: DockerApi, e: DockerEvent): void {
    const id = e.Actor?.ID ?? '';
    if (!id) return;
    if (e.Type === 'container') {
      if (QUIET.test(e.Action)) return;
      // Several events per change (create, start; die, stop, destroy):
      // one look at the container after the burst.
      const prev = this.pending.get(id);
      if (prev) clearTimeout(prev.timer);
      const action = e.Action.split(':')[0]!;
      const timer = setTimeout(() => void this.publishContainer(api, id, action), this.o.debounceMs);
      this.pending.set(id, { action, timer });
    } else if (e.Type === 'image') {
      this.broadcast('images.changed', { id, action: e.Action });
    } else if (e.Type === 'volume' && VOLUME_ACTIONS.has(e.Action)) {
      this.broadcast('volumes.changed', { name: id, action: e.Action });
    }
  }

  private async publishContainer(api: DockerApi, id: string, action: string): Promise<void> {
    this.pending.delete(id);
    if (action === 'destroy') {
      this.broadcast('containers.changed', { id, action, container: null });
      return;
    }
    try {
      const q = encodeURIComponent(JSON.stringify({ id: [id] }));
      const list = (await api.request('GET', `/containers/json?all=1&filters=${q}`)) as ContainerSummaryFull[];
      const c = list.find((x) => x.Id === id);
      this.broadcast('containers.changed', { id, action: c ? action : 'destroy', container: c ? containerView(c) : null });
    } catch {
      // The VM went away meanwhile: the UI reloads its lists when it is back.
    }
  }

  close(): void {
    this.closed = true;
    this.active = false;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.stream?.stop();
    this.stream = undefined;
  }
}
