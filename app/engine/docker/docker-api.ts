import http from 'node:http';

/**
 * The few Docker Engine API calls the engine makes itself (ports, later the
 * UI's lists), over the host's docker socket like any other client. API
 * version 1.41 is what the guest's dockerd (20.10) speaks; newer daemons
 * accept it too.
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

export class DockerApi {
  constructor(private readonly socketPath: string) {}

  request(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = http.request(
        {
          socketPath: this.socketPath,
          method,
          path: `${DOCKER_API}${path}`,
          agent: false,
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
    const req = http.request({ socketPath: this.socketPath, method: 'GET', path: `${DOCKER_API}/events?filters=${q}`, agent: false }, (res) => {
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
}
