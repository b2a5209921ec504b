import type { dockerMethods } from '../../contract/contract-docker.js';
import type { Handlers } from '../../contract/contract.js';
import type { Broadcast } from '../../contract/contract.js';
import { DockerApi } from './docker-api.js';
import { containerDetails } from './docker-inspect.js';
import { DockerStats } from './docker-stats.js';
import { DockerStreams } from './docker-streams.js';
import { containerView, dockerError, imageView, volumeView, type ContainerSummaryFull, type ImageSummary, type VolumeSummary } from './docker-views.js';
import { DockerWatcher } from './docker-watch.js';
import { compareText } from '../../base/text-order.js';

/** What the Docker handlers get from the engine. */
export interface DockerHandlerContext {
  /** The Docker API through the host socket; throws VM_NOT_RUNNING when there is none. */
  api(): DockerApi;
  /** Send an event to every subscribed client. */
  broadcast: Broadcast;
  /** Aborting it ends the event watcher and every open stream (tests; the engine just exits). */
  signal?: AbortSignal;
  /** How often the event watcher looks again for a VM that is not running (default 2 s). */
  watchRetryMs?: number;
}

export type DockerHandlers = Pick<Handlers, keyof typeof dockerMethods>;

const enc = encodeURIComponent;

/**
 * The contract's Docker methods, served through the VM's dockerd over the
 * host's docker socket, like any other Docker client. Every failure is a
 * BerthError (DOCKER_NOT_FOUND, DOCKER_CONFLICT, DOCKER_FAILED,
 * DOCKER_UNREACHABLE, VM_NOT_RUNNING) with a hint.
 */
export function dockerHandlers(ctx: DockerHandlerContext): DockerHandlers {
  const watcher = new DockerWatcher(() => ctx.api(), ctx.broadcast, { retryMs: ctx.watchRetryMs ?? 2000, debounceMs: 50 });
  const streams = new DockerStreams(ctx.broadcast);
  const stats = new DockerStats(ctx.broadcast);
  ctx.signal?.addEventListener('abort', () => {
    watcher.close();
    streams.closeAll();
    stats.closeAll();
  });

  /** The API for a request; the first request also starts the change events. */
  const api = (): DockerApi => {
    const a = ctx.api();
    watcher.ensure();
    return a;
  };

  async function call<T>(what: string, fn: (a: DockerApi) => Promise<T>): Promise<T> {
    const a = api();
    try {
      return await fn(a);
    } catch (err) {
      throw dockerError(err, what);
    }
  }

  async function viewOf(a: DockerApi, id: string) {
    const q = enc(JSON.stringify({ id: [id] }));
    let list = (await a.request('GET', `/containers/json?all=1&filters=${q}`)) as ContainerSummaryFull[];
    if (!list.length) {
      // A name rather than an id (Docker matches names as a regular expression).
      const name = `^/${id.replace(/\./g, '\\.')}$`;
      list = (await a.request('GET', `/containers/json?all=1&filters=${enc(JSON.stringify({ name: [name] }))}`)) as ContainerSummaryFull[];
    }
    const c = list.find((x) => x.Id.startsWith(id) || x.Names?.some((n) => n.replace(/^\//, '') === id));
    return c ? containerView(c) : null;
  }

  return {
    'docker.info': () =>
      call('read Docker info', async (a) => {
        const i = (await a.request('GET', '/info')) as Record<string, unknown>;
        const n = (k: string) => (typeof i[k] === 'number' ? (i[k] as number) : 0);
        const s = (k: string) => (typeof i[k] === 'string' ? (i[k] as string) : '');
        return {
          serverVersion: s('ServerVersion'),
          containers: n('Containers'),
          running: n('ContainersRunning'),
          paused: n('ContainersPaused'),
          stopped: n('ContainersStopped'),
          images: n('Images'),
          ncpu: n('NCPU'),
          memTotal: n('MemTotal'),
          kernel: s('KernelVersion'),
          os: s('OperatingSystem'),
        };
      }),

    'containers.list': (p) =>
      call('list containers', async (a) => {
        const list = (await a.request('GET', `/containers/json${p.all === false ? '' : '?all=1'}`)) as ContainerSummaryFull[];
        return { containers: list.map(containerView).sort((x, y) => y.created - x.created || compareText(x.name, y.name)) };
      }),

    'containers.start': (p) =>
      call(`start container ${p.id}`, async (a) => {
        await a.request('POST', `/containers/${enc(p.id)}/start`);
        return { container: await viewOf(a, p.id) };
      }),

    'containers.stop': (p) =>
      call(`stop container ${p.id}`, async (a) => {
        const t = p.timeoutSeconds ?? 10;
        await a.request('POST', `/containers/${enc(p.id)}/stop?t=${t}`, undefined, (t + 60) * 1000);
        return { container: await viewOf(a, p.id) };
      }),

    'containers.restart': (p) =>
      call(`restart container ${p.id}`, async (a) => {
        const t = p.timeoutSeconds ?? 10;
        await a.request('POST', `/containers/${enc(p.id)}/restart?t=${t}`, undefined, (t + 60) * 1000);
        return { container: await viewOf(a, p.id) };
      }),

    'containers.remove': (p) =>
      call(`remove container ${p.id}`, async (a) => {
        await a.request('DELETE', `/containers/${enc(p.id)}?force=${p.force ? 1 : 0}&v=${p.volumes ? 1 : 0}`, undefined, 120_000);
        return {};
      }),

    'containers.logs': (p) => streams.startLogs(api(), p),
    'containers.logs.stop': async (p) => {
      streams.stopLogs(p.stream);
      return {};
    },

    'containers.inspect': (p) => call(`inspect container ${p.id}`, async (a) => containerDetails(await a.request('GET', `/containers/${enc(p.id)}/json`))),

    'containers.stats': (p) => stats.start(api(), p),
    'containers.stats.stop': async (p) => {
      stats.stop(p.stream);
      return {};
    },

    'terminal.start': (p) => streams.startTerminal(api(), p),
    'terminal.input': async (p) => {
      streams.input(p.session, p.data);
      return {};
    },
    'terminal.resize': async (p) => {
      await streams.resize(p.session, p.cols, p.rows);
      return {};
    },
    'terminal.stop': async (p) => {
      streams.stopTerminal(p.session);
      return {};
    },

    'images.list': () =>
      call('list images', async (a) => {
        const [images, containers] = await Promise.all([
          a.request('GET', '/images/json') as Promise<ImageSummary[]>,
          a.request('GET', '/containers/json?all=1') as Promise<ContainerSummaryFull[]>,
        ]);
        const used = new Set(containers.map((c) => c.ImageID).filter((x): x is string => !!x));
        return { images: images.map((i) => imageView(i, used)).sort((x, y) => y.created - x.created) };
      }),

    'images.remove': (p) =>
      call(`remove image ${p.id}`, async (a) => {
        const r = (await a.request('DELETE', `/images/${enc(p.id)}?force=${p.force ? 1 : 0}`, undefined, 120_000)) as {
          Untagged?: string;
          Deleted?: string;
        }[];
        return {
          deleted: (r ?? []).flatMap((x) => (x.Deleted ? [x.Deleted] : [])),
          untagged: (r ?? []).flatMap((x) => (x.Untagged ? [x.Untagged] : [])),
        };
      }),

    'images.prune': (p) =>
      call('prune images', async (a) => {
        const filters = enc(JSON.stringify({ dangling: [p.all ? 'false' : 'true'] }));
        const r = (await a.request('POST', `/images/prune?filters=${filters}`, undefined, 300_000)) as {
          ImagesDeleted?: unknown[] | null;
          SpaceReclaimed?: number;
        };
        return { deleted: r.ImagesDeleted?.length ?? 0, reclaimedBytes: r.SpaceReclaimed ?? 0 };
      }),

    'volumes.list': () =>
      call('list volumes', async (a) => {
        const r = (await a.request('GET', '/volumes')) as { Volumes?: VolumeSummary[] | null };
        const vols = r.Volumes ?? [];
        // Sizes come from `system df`, which can be slow on a busy VM: the list does not wait long for them.
        const df = (await a.request('GET', '/system/df', undefined, 10_000).catch(() => undefined)) as { Volumes?: VolumeSummary[] | null } | undefined;
        const usage = new Map((df?.Volumes ?? []).map((v) => [v.Name, v.UsageData]));
        return {
          volumes: vols.map((v) => volumeView({ ...v, UsageData: usage.get(v.Name) ?? v.UsageData })).sort((x, y) => compareText(x.name, y.name)),
        };
      }),

    'volumes.remove': (p) =>
      call(`remove volume ${p.name}`, async (a) => {
        await a.request('DELETE', `/volumes/${enc(p.name)}?force=${p.force ? 1 : 0}`, undefined, 120_000);
        return {};
      }),

    'volumes.prune': () =>
      call('prune volumes', async (a) => {
        const r = (await a.request('POST', '/volumes/prune', undefined, 300_000)) as { VolumesDeleted?: unknown[] | null; SpaceReclaimed?: number };
        return { deleted: r.VolumesDeleted?.length ?? 0, reclaimedBytes: r.SpaceReclaimed ?? 0 };
      }),
  };
}

export { DockerApi };
