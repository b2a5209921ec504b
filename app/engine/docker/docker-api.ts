import http from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * The few Docker Engine API calls the engine makes itself (ports, later the
 * UI's lists), over the host's docker socket like any other client. API
 * version 1.41 (Engine 20.10) is enough for them; the guest's dockerd 26
 * speaks 1.45 and accepts every version back to 1.24.
 */
export const DOCKER_API = '/v1.41';

export interface ContainerPort {
  IP?: string;
  PrivatePort: number;
  PublicPort?: number;
  Type: 'tcp' | 'udp' | 'sctp';
}

export interface ContainerSummary {
  Id: string;
  Names: string[];
  Image: string;
  State: string;
  Status: string;
  Ports: ContainerPort[];
}

export interface DockerEvent {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes?: Record<string, string> };
  time?: number;
}

export class DockerApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * http's client calls a few net.Socket methods on its connection; a plain
 * stream (an ssh channel) gets them as no-ops (timeouts are ours, per request).
 */
function asSocket(s: Duplex): Duplex {
  const sock = s as Duplex & Record<string, unknown>;
  for (const m of ['setTimeout', 'setNoDelay', 'setKeepAlive', 'ref', 'unref']) {
    if (typeof sock[m] !== 'function') sock[m] = () => sock;
  }
  return sock;
}

/** Opens a fresh byte stream to dockerd (an ssh channel to the guest's socket). */
export type DockerDial = () => Promise<Duplex>;

export class DockerApi {
  /**
   * `to`: the path of a unix socket that reaches dockerd, or a dial
   * function. The engine's own clients (port watcher, change notifier,
   * idle check) dial the guest directly, so they never count as someone
   * using the host's docker socket.
   */
  constructor(private readonly to: string | DockerDial) {}

  /** How http reaches dockerd for one request. */
  private get via(): Pick<http.RequestOptions, 'socketPath' | 'createConnection' | 'agent'> {
    const to = this.to;
    // No agent: one connection per request (and createConnection is only used without one).
    if (typeof to === 'string') return { socketPath: to, agent: false };
    return {
      // http waits for `done` when createConnection returns nothing.
      createConnection: ((_opts: unknown, done: (err: Error | null, s?: Duplex) => void) => {
        to().then(
          (s) => done(null, asSocket(s)),
          (err: Error) => done(err),
        );
        return undefined;
      }) as unknown as http.RequestOptions['createConnection'],
    };
  }

  request(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = http.request(
        {
          ...this.via,
          method,
          path: `${DOCKER_API}${path}`,
          headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              /* plain text */
            }
            if (status >= 400) {
              const msg = (parsed as { message?: string } | undefined)?.message ?? text;
              reject(new DockerApiError(status, msg));
            } else resolve(parsed);
          });
          res.on('error', reject);
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`docker API ${method} ${path} timed out`)));
      req.on('error', reject);
      req.end(data);
    });
  }

  /**
   * Follow containers starting and going, for as long as the caller wants:
   * `event` for each start, die and destroy; `list` with the running
   * containers after each (re)subscription (subscribed first, then listed,
   * so an event between the two is not lost). A stream that ends (dockerd
   * restarted, the guest went away) is opened again after `retryMs`.
   */
  followContainers(h: {
    event(action: 'start' | 'die' | 'destroy', id: string): void;
    list(containers: ContainerSummary[]): void;
    /** The stream ended (and will be opened again), or listing failed. */
    trouble?(what: 'events' | 'list', err?: Error): void;
    retryMs?: number;
  }): { stop: () => void } {
    let stopped = false;
    let stream: { stop: () => void } | undefined;
    let retry: NodeJS.Timeout | undefined;
    const subscribe = () => {
      if (stopped) return;
      stream = this.events(
        { type: ['container'], event: ['start', 'die', 'destroy'] },
        (e) => {
          if (!stopped && (e.Action === 'start' || e.Action === 'die' || e.Action === 'destroy')) h.event(e.Action, e.Actor.ID);
        },
        (err) => {
          if (stopped) return;
          h.trouble?.('events', err);
          retry = setTimeout(subscribe, h.retryMs ?? 500);
        },
      );
      this.listContainers().then(
        (list) => {
          if (!stopped) h.list(list);
        },
        (err: Error) => {
          if (!stopped) h.trouble?.('list', err);
        },
      );
    };
    subscribe();
    return {
      stop: () => {
        stopped = true;
        clearTimeout(retry);
        stream?.stop();
      },
    };
  }

  listContainers(all = false): Promise<ContainerSummary[]> {
    return this.request('GET', `/containers/json${all ? '?all=1' : ''}`) as Promise<ContainerSummary[]>;
  }

  /**
   * Stream events matching `filters` until `stop()` is called or the
   * connection ends (then `onEnd` runs once).
   */
  events(filters: Record<string, string[]>, onEvent: (e: DockerEvent) => void, onEnd: (err?: Error) => void): { stop: () => void } {
    let ended = false;
    const end = (err?: Error) => {
      if (ended) return;
      ended = true;
      onEnd(err);
    };
    const q = encodeURIComponent(JSON.stringify(filters));
    const req = http.request({ ...this.via, method: 'GET', path: `${DOCKER_API}/events?filters=${q}` }, (res) => {
      if ((res.statusCode ?? 0) >= 400) {
        res.resume();
        return end(new DockerApiError(res.statusCode ?? 0, 'events request refused'));
      }
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          try {
            onEvent(JSON.parse(line) as DockerEvent);
          } catch {
            /* a partial or odd line: skip it */
          }
        }
      });
      res.on('end', () => end());
      res.on('error', (e) => end(e));
    });
    req.on('error', (e) => end(e));
    req.end();
    return {
      stop: () => {
        ended = true;
        req.destroy();
      },
    };
  }

  /**
   * A streamed GET (logs, stats): `onData` gets the raw body as it arrives
   * until the daemon ends it or `stop()` is called (then `onEnd` runs once,
   * with the error when the request failed).
   */
  stream(path: string, onData: (d: Buffer) => void, onEnd: (err?: Error) => void): { stop: () => void } {
    let ended = false;
    const end = (err?: Error) => {
      if (ended) return;
      ended = true;
      onEnd(err);
    };
    const req = http.request({ ...this.via, method: 'GET', path: `${DOCKER_API}${path}` }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 400) {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => end(new DockerApiError(status, errorMessage(Buffer.concat(chunks).toString('utf8')))));
        return;
      }
      res.on('data', (d: Buffer) => {
        if (!ended) onData(d);
      });
      res.on('end', () => end());
      res.on('error', (e) => end(e));
      res.on('close', () => end());
    });
    req.on('error', (e) => end(e));
    req.end();
    return {
      stop: () => {
        ended = true;
        req.destroy();
      },
    };
  }

  /**
   * A hijacked request (exec start, attach): POST `body` with
   * `Upgrade: tcp`; once dockerd answers 101 the connection is a raw
   * two-way byte stream, returned with any bytes already read past the
   * headers.
   */
  hijack(path: string, body: unknown, timeoutMs = 30_000): Promise<{ socket: Duplex; head: Buffer }> {
    return new Promise((resolve, reject) => {
      const data = Buffer.from(JSON.stringify(body));
      const req = http.request({
        ...this.via,
        method: 'POST',
        path: `${DOCKER_API}${path}`,
        headers: {
          'content-type': 'application/json',
          'content-length': data.length,
          connection: 'Upgrade',
          upgrade: 'tcp',
        },
      });
      const timer = setTimeout(() => req.destroy(new Error(`docker API POST ${path} timed out`)), timeoutMs);
      req.on('upgrade', (_res, socket, head) => {
        clearTimeout(timer);
        resolve({ socket, head });
      });
      req.on('response', (res) => {
        // Not upgraded: an error (or a daemon too old to upgrade).
        clearTimeout(timer);
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          reject(
            new DockerApiError(status >= 400 ? status : 500, status >= 400 ? errorMessage(text) : `dockerd did not upgrade the connection (HTTP ${status})`),
          );
        });
      });
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      req.end(data);
    });
  }
}

/** dockerd's {"message": "..."} error body, or the text itself. */
function errorMessage(text: string): string {
  try {
    const m = (JSON.parse(text) as { message?: unknown }).message;
    if (typeof m === 'string') return m;
  } catch {
    /* plain text */
  }
  return text.trim() || 'no details';
}
