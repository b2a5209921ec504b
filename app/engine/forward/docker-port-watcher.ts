import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { ContainerSummary, DockerApi } from '../docker/docker-api.js';

/** A port a running container publishes. */
export interface PublishedPort {
  containerId: string;
  containerName: string;
  proto: 'tcp' | 'udp';
  /** Where dockerd (docker-proxy) listens in the guest: 0.0.0.0, ::, 127.0.0.1... */
  hostIp: string;
  hostPort: number;
  containerPort: number;
}

export function publishedPorts(c: ContainerSummary): PublishedPort[] {
  const name = (c.Names[0] ?? c.Id.slice(0, 12)).replace(/^\//, '');
  const out: PublishedPort[] = [];
  for (const p of c.Ports ?? []) {
    if (!p.PublicPort || (p.Type !== 'tcp' && p.Type !== 'udp')) continue;
    out.push({
      containerId: c.Id,
      containerName: name,
      proto: p.Type,
      hostIp: p.IP ?? '0.0.0.0',
      hostPort: p.PublicPort,
      containerPort: p.PrivatePort,
    });
  }
  return out;
}

/**
 * Published ports of running containers, from Docker's event stream: a
 * container's ports appear when it starts and go when it dies, without
 * waiting for the socket table. A full listing resyncs after every
 * (re)subscription, so nothing is missed across reconnects.
 */
export class DockerPortWatcher extends EventEmitter<{ change: [] }> {
  readonly byContainer = new Map<string, PublishedPort[]>();
  private stream?: { stop: () => void };
  private stopped = true;

  constructor(
    private readonly api: DockerApi,
    private readonly log: Logger,
  ) {
    super();
  }

  get ports(): PublishedPort[] {
    return [...this.byContainer.values()].flat();
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.stream = this.api.followContainers({
      event: (action, id) => void this.onEvent(action, id),
      list: (list) => {
        this.byContainer.clear();
        for (const c of list) {
          const ports = publishedPorts(c);
          if (ports.length) this.byContainer.set(c.Id, ports);
        }
        this.emit('change');
      },
      trouble: (what, err) =>
        this.log.debug({ err: err?.message }, what === 'events' ? 'docker event stream ended; resubscribing' : 'listing containers failed'),
    });
  }

  private async onEvent(action: string, id: string): Promise<void> {
    if (action === 'die' || action === 'destroy') {
      if (this.byContainer.delete(id)) this.emit('change');
      return;
    }
    try {
      const q = encodeURIComponent(JSON.stringify({ id: [id] }));
      const [c] = (await this.api.request('GET', `/containers/json?filters=${q}`)) as ContainerSummary[];
      if (this.stopped || !c) return;
      const ports = publishedPorts(c);
      if (ports.length) {
        this.byContainer.set(id, ports);
        this.emit('change');
      }
    } catch (err) {
      this.log.debug({ err: (err as Error).message, id }, 'inspecting a started container failed');
    }
  }

  stop(): void {
    this.stopped = true;
    this.stream?.stop();
    this.stream = undefined;
    this.byContainer.clear();
  }
}
