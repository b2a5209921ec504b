import http from 'node:http';

interface RestReply {
  status: number;
  body: string;
}

/** vfkit's REST API over its unix socket (doc/usage.md, "RESTful API"). */
export class VfkitRest {
  constructor(readonly socketPath: string) {}

  private request(method: 'GET' | 'POST', urlPath: string, body?: unknown, timeoutMs = 3000): Promise<RestReply> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request(
        {
          socketPath: this.socketPath,
          path: urlPath,
          method,
          headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
          timeout: timeoutMs,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`vfkit REST ${method} ${urlPath} timed out`)));
      req.on('error', reject);
      req.end(data);
    });
  }

  async state(timeoutMs?: number): Promise<string> {
    const r = await this.request('GET', '/vm/state', undefined, timeoutMs);
    if (r.status !== 200) throw new Error(`vfkit GET /vm/state answered ${r.status}: ${r.body.trim()}`);
    const parsed = JSON.parse(r.body) as { state?: unknown };
    if (typeof parsed.state !== 'string') throw new Error(`vfkit GET /vm/state gave no state: ${r.body.trim()}`);
    return parsed.state;
  }

  /** `Stop` asks the guest (VZ requestStop); `HardStop` pulls the plug. */
  async changeState(state: 'Stop' | 'HardStop' | 'Pause' | 'Resume', timeoutMs?: number): Promise<void> {
    const r = await this.request('POST', '/vm/state', { state }, timeoutMs);
    if (r.status < 200 || r.status >= 300) throw new Error(`vfkit POST /vm/state ${state} answered ${r.status}: ${r.body.trim()}`);
  }
}
