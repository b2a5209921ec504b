/**
 * A fake dockerd on a unix socket: the slice of the Docker Engine API the
 * engine's Docker handlers use (containers, logs, exec with a hijacked
 * connection, images, volumes, events), with state a test can change. The
 * "shell" of an exec echoes what it gets, answers `echo X` with X, and
 * exits on `exit N`. For unit tests, the renderer-in-Chromium test and the
 * dashboard bench (hundreds of containers without a VM).
 */
import http from 'node:http';
import type net from 'node:net';

export interface FakeContainer {
  Id: string;
  Names: string[];
  Image: string;
  ImageID: string;
  State: string;
  Status: string;
  Created: number;
  Ports: { IP?: string; PrivatePort: number; PublicPort?: number; Type: 'tcp' | 'udp' }[];
  Labels: Record<string, string>;
  Tty: boolean;
  log: { source: 1 | 2; text: string; time: string }[];
  /** For inspect: "KEY=value" lines and mounts as Docker lists them. */
  Env: string[];
  Mounts: { Type: string; Name?: string; Source: string; Destination: string; RW: boolean }[];
  /** What its stats stream reports: CPU nanoseconds used per second of wall time, memory bytes. */
  usage: { cpuNsPerSec: number; memoryBytes: number };
}

export interface FakeDockerd {
  socketPath: string;
  containers: Map<string, FakeContainer>;
  images: { Id: string; RepoTags: string[]; Size: number; Created: number }[];
  volumes: { Name: string; Driver: string; Mountpoint: string; CreatedAt: string; size: number; refs: number }[];
  /** Every request line seen ("GET /v1.41/containers/json?all=1"). */
  requests: string[];
  /** Stats streams open now, by container id. */
  openStats(): number;
  /** How often a stats stream sends a sample (default 1000 ms, as dockerd). */
  statsMs: number;
  /** Exec sessions: id -> the resizes and input they got. */
  execs: Map<string, { container: string; cmd: string[]; resizes: string[]; input: string; exitCode?: number; running: boolean }>;
  addContainer(c: Partial<FakeContainer> & { name: string }): FakeContainer;
  /** Append a log line (and send it to followers). */
  log(id: string, text: string, source?: 'stdout' | 'stderr'): void;
  /** Change a container's state and emit the events Docker would. */
  setState(id: string, state: 'running' | 'exited'): void;
  remove(id: string): void;
  /** Emit a raw event. */
  event(e: { Type: string; Action: string; Actor: { ID: string } }): void;
  /** Cut the event streams (as a VM stop would). */
  dropEvents(): void;
  close(): Promise<void>;
}

const hex = (n: number) => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('');

function frame(source: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text);
  const h = Buffer.alloc(8);
  h[0] = source;
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

export async function startFakeDockerEngine(socketPath: string): Promise<FakeDockerd> {
  const containers = new Map<string, FakeContainer>();
  const images: FakeDockerd['images'] = [
    { Id: `sha256:${'a'.repeat(64)}`, RepoTags: ['busybox:latest'], Size: 4_400_000, Created: 1_700_000_000 },
    { Id: `sha256:${'b'.repeat(64)}`, RepoTags: ['<none>:<none>'], Size: 12_000_000, Created: 1_690_000_000 },
  ];
  const volumes: FakeDockerd['volumes'] = [
    { Name: 'data', Driver: 'local', Mountpoint: '/var/lib/docker/volumes/data/_data', CreatedAt: '2024-01-01T00:00:00Z', size: 1_048_576, refs: 0 },
  ];
  const requests: string[] = [];
  const execs: FakeDockerd['execs'] = new Map();
  const eventStreams = new Set<http.ServerResponse>();
  const followers = new Map<string, Set<{ res: http.ServerResponse; tty: boolean; timestamps: boolean }>>();
  const sockets = new Set<net.Socket>();
  const statsFollowers = new Map<string, Set<http.ServerResponse>>();

  const event = (e: { Type: string; Action: string; Actor: { ID: string } }) => {
    const line = JSON.stringify({ ...e, time: Math.floor(Date.now() / 1000) }) + '\n';
    for (const r of eventStreams) r.write(line);
  };

  const find = (ref: string): FakeContainer | undefined => {
    for (const c of containers.values()) if (c.Id.startsWith(ref) || c.Names[0] === `/${ref}`) return c;
    return undefined;
  };

  const summary = (c: FakeContainer) => {
    const { log: _l, Tty: _t, Env: _e, usage: _u, ...rest } = c;
    return rest;
  };

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body === undefined ? '' : JSON.stringify(body));
  };
  const notFound = (res: http.ServerResponse, what: string) => json(res, 404, { message: `No such container: ${what}` });

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://d');
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    const p = url.pathname.replace(/^\/v1\.\d+/, '');
    const q = url.searchParams;
    let m: RegExpExecArray | null;
    req.resume();

    if (p === '/_ping') return void res.end('OK');
    if (p === '/version') return json(res, 200, { Version: 'fake', ApiVersion: '1.41' });
    if (p === '/info') {
      const all = [...containers.values()];
      return json(res, 200, {
        ServerVersion: '20.10-fake',
        Containers: all.length,
        ContainersRunning: all.filter((c) => c.State === 'running').length,
        ContainersPaused: 0,
        ContainersStopped: all.filter((c) => c.State !== 'running').length,
        Images: images.length,
        NCPU: 2,
        MemTotal: 2 * 2 ** 30,
        KernelVersion: '6.1.0-fake',
        OperatingSystem: 'Berth fake',
      });
    }
    if (p === '/events') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      eventStreams.add(res);
      res.on('close', () => eventStreams.delete(res));
      return;
    }
    if (p === '/containers/json' && req.method === 'GET') {
      let list = [...containers.values()];
      // As Docker: `limit` lists stopped containers too, like all=1.
      if (q.get('all') !== '1' && !q.get('limit')) list = list.filter((c) => c.State === 'running');
      const filters = q.get('filters') ? (JSON.parse(q.get('filters')!) as Record<string, string[]>) : {};
      if (filters.id) list = list.filter((c) => filters.id!.some((i) => c.Id.startsWith(i)));
      if (filters.name) list = list.filter((c) => filters.name!.some((n) => new RegExp(n).test(c.Names[0]!)));
      return json(res, 200, list.map(summary));
    }
    if ((m = /^\/containers\/([^/]+)\/json$/.exec(p))) {
      const c = find(decodeURIComponent(m[1]!));
      if (!c) return notFound(res, m[1]!);
      const bindings: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
      for (const port of c.Ports) {
        const k = `${port.PrivatePort}/${port.Type}`;
        bindings[k] ??= port.PublicPort ? [] : null;
        if (port.PublicPort) bindings[k]!.push({ HostIp: port.IP ?? '0.0.0.0', HostPort: String(port.PublicPort) });
      }
      return json(res, 200, {
        Id: c.Id,
        Name: c.Names[0],
        Created: new Date(c.Created * 1000).toISOString(),
        Path: 'sh',
        Args: ['-c', 'serve'],
        Image: c.ImageID,
        Config: { Tty: c.Tty, Image: c.Image, Env: c.Env, Labels: c.Labels, WorkingDir: '/' },
        State: { Status: c.State, Running: c.State === 'running' },
        HostConfig: { RestartPolicy: { Name: 'no' } },
        Mounts: c.Mounts,
        NetworkSettings: { Ports: bindings, Networks: { bridge: { IPAddress: c.State === 'running' ? '172.17.0.2' : '' } } },
      });
    }
    if ((m = /^\/containers\/([^/]+)\/stats$/.exec(p))) {
      const c = find(decodeURIComponent(m[1]!));
      if (!c) return notFound(res, m[1]!);
      res.writeHead(200, { 'content-type': 'application/json' });
      // As dockerd: cumulative CPU counters, the previous sample's in precpu_stats.
      let cpu = 0;
      let system = 0;
      let pre = { cpu: 0, system: 0 };
      const sample = () => {
        pre = { cpu, system };
        const running = c.State === 'running';
        cpu += running ? c.usage.cpuNsPerSec * (api.statsMs / 1000) : 0;
        system += 2 * 1e9 * (api.statsMs / 1000);
        res.write(
          JSON.stringify({
            read: new Date().toISOString(),
            pids_stats: { current: running ? 3 : 0 },
            cpu_stats: { cpu_usage: { total_usage: cpu }, system_cpu_usage: system, online_cpus: 2 },
            precpu_stats: { cpu_usage: { total_usage: pre.cpu }, system_cpu_usage: pre.system },
            memory_stats: running ? { usage: c.usage.memoryBytes + 4096, limit: 2 * 2 ** 30, stats: { inactive_file: 4096 } } : {},
          }) + '\n',
        );
      };
      sample();
      if (q.get('stream') === '0') return void res.end();
      const timer = setInterval(sample, api.statsMs);
      const set = statsFollowers.get(c.Id) ?? new Set();
      statsFollowers.set(c.Id, set);
      set.add(res);
      res.on('close', () => {
        clearInterval(timer);
        set.delete(res);
      });
      return;
    }
    if ((m = /^\/containers\/([^/]+)\/(start|stop|restart)$/.exec(p)) && req.method === 'POST') {
      const c = find(decodeURIComponent(m[1]!));
      if (!c) return notFound(res, m[1]!);
      if (m[2] === 'start' && c.State === 'running') return json(res, 304, undefined);
      if (m[2] === 'stop' && c.State !== 'running') return json(res, 304, undefined);
      api.setState(c.Id, m[2] === 'stop' ? 'exited' : 'running');
      return json(res, 204, undefined);
    }
    if ((m = /^\/containers\/([^/]+)$/.exec(p)) && req.method === 'DELETE') {
      const c = find(decodeURIComponent(m[1]!));
      if (!c) return notFound(res, m[1]!);
      if (c.State === 'running' && q.get('force') !== '1') {
        return json(res, 409, { message: `You cannot remove a running container ${c.Id}. Stop the container before attempting removal or force remove` });
      }
      api.remove(c.Id);
      return json(res, 204, undefined);
    }
    if ((m = /^\/containers\/([^/]+)\/logs$/.exec(p))) {
      const c = find(decodeURIComponent(m[1]!));
      if (!c) return notFound(res, m[1]!);
      const timestamps = q.get('timestamps') === '1';
      const tail = q.get('tail') === 'all' ? Infinity : Number(q.get('tail') ?? 'Infinity');
      res.writeHead(200, { 'content-type': c.Tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream' });
      const lines = tail === 0 ? [] : c.log.slice(-tail);
      for (const l of lines) {
        const text = timestamps ? `${l.time} ${l.text}` : l.text;
        res.write(c.Tty ? text : frame(l.source, text));
      }
      if (q.get('follow') !== '1') return void res.end();
      const set = followers.get(c.Id) ?? new Set();
      followers.set(c.Id, set);
      const f = { res, tty: c.Tty, timestamps };
      set.add(f);
      res.on('close', () => set.delete(f));
      return;
    }
    if ((m = /^\/containers\/([^/]+)\/exec$/.exec(p)) && req.method === 'POST') {
      const c = find(decodeURIComponent(m[1]!));
      if (!c) return notFound(res, m[1]!);
      if (c.State !== 'running') return json(res, 409, { message: `Container ${c.Id} is not running` });
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as { Cmd?: string[] };
        const id = hex(64);
        execs.set(id, { container: c.Id, cmd: body.Cmd ?? [], resizes: [], input: '', running: false });
        json(res, 201, { Id: id });
      });
      return;
    }
    if ((m = /^\/exec\/([^/]+)\/resize$/.exec(p))) {
      const e = execs.get(m[1]!);
      if (!e) return json(res, 404, { message: 'No such exec instance' });
      e.resizes.push(`${q.get('w')}x${q.get('h')}`);
      return json(res, 200, undefined);
    }
    if ((m = /^\/exec\/([^/]+)\/json$/.exec(p))) {
      const e = execs.get(m[1]!);
      if (!e) return json(res, 404, { message: 'No such exec instance' });
      return json(res, 200, { ID: m[1], Running: e.running, ExitCode: e.exitCode ?? null });
    }
    if (p === '/images/json') return json(res, 200, images);
    if ((m = /^\/images\/(.+)$/.exec(p)) && req.method === 'DELETE') {
      const ref = decodeURIComponent(m[1]!);
      const i = images.findIndex((x) => x.Id === ref || x.Id.startsWith(`sha256:${ref}`) || x.RepoTags.includes(ref));
      if (i < 0) return json(res, 404, { message: `No such image: ${ref}` });
      const img = images[i]!;
      if ([...containers.values()].some((c) => c.ImageID === img.Id) && q.get('force') !== '1') {
        return json(res, 409, { message: `conflict: unable to delete ${ref} (must be forced) - image is being used by stopped container` });
      }
      images.splice(i, 1);
      event({ Type: 'image', Action: 'delete', Actor: { ID: img.Id } });
      return json(res, 200, [...img.RepoTags.filter((t) => t !== '<none>:<none>').map((t) => ({ Untagged: t })), { Deleted: img.Id }]);
    }
    if (p === '/images/prune') {
      const dangling = images.filter((i) => i.RepoTags.every((t) => t === '<none>:<none>'));
      for (const d of dangling) images.splice(images.indexOf(d), 1);
      return json(res, 200, { ImagesDeleted: dangling.map((d) => ({ Deleted: d.Id })), SpaceReclaimed: dangling.reduce((a, d) => a + d.Size, 0) });
    }
    if (p === '/volumes') {
      return json(res, 200, { Volumes: volumes.map(({ size: _s, refs: _r, ...v }) => ({ ...v, UsageData: null })), Warnings: null });
    }
    if (p === '/system/df') {
      return json(res, 200, { Volumes: volumes.map((v) => ({ Name: v.Name, UsageData: { Size: v.size, RefCount: v.refs } })) });
    }
    if ((m = /^\/volumes\/([^/]+)$/.exec(p)) && req.method === 'DELETE') {
      const i = volumes.findIndex((v) => v.Name === decodeURIComponent(m![1]!));
      if (i < 0) return json(res, 404, { message: `get ${m[1]}: no such volume` });
      if (volumes[i]!.refs > 0) return json(res, 409, { message: `remove ${m[1]}: volume is in use` });
      const [v] = volumes.splice(i, 1);
      event({ Type: 'volume', Action: 'destroy', Actor: { ID: v!.Name } });
      return json(res, 204, undefined);
    }
    if (p === '/volumes/prune') {
      const unused = volumes.filter((v) => v.refs === 0);
      for (const v of unused) volumes.splice(volumes.indexOf(v), 1);
      return json(res, 200, { VolumesDeleted: unused.map((v) => v.Name), SpaceReclaimed: unused.reduce((a, v) => a + v.size, 0) });
    }
    json(res, 404, { message: `page not found: ${p}` });
  });

  // Exec start: a hijacked connection playing a tiny shell.
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://d');
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    const m = /\/exec\/([^/]+)\/start$/.exec(url.pathname);
    const e = m ? execs.get(m[1]!) : undefined;
    if (!e) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 35\r\n\r\n{"message":"No such exec instance"}');
      return;
    }
    let skip = Number(req.headers['content-length'] ?? 0);
    socket.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    e.running = true;
    socket.write('/ # ');
    let line = '';
    const onBytes = (d: Buffer) => {
      if (skip > 0) {
        const n = Math.min(skip, d.length);
        skip -= n;
        d = d.subarray(n);
      }
      const s = d.toString();
      e.input += s;
      for (const ch of s) {
        if (ch === '\r' || ch === '\n') {
          socket.write('\r\n');
          const cmd = line.trim();
          line = '';
          const ex = /^exit\s*(\d*)$/.exec(cmd);
          if (ex) {
            e.running = false;
            e.exitCode = Number(ex[1] || 0);
            socket.end();
            return;
          }
          const echo = /^echo\s+(.*)$/.exec(cmd);
          if (echo) socket.write(`${echo[1]}\r\n`);
          socket.write('/ # ');
        } else {
          line += ch;
          socket.write(ch);
        }
      }
    };
    if (head.length) onBytes(head);
    socket.on('data', onBytes);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (e.running) {
        e.running = false;
        e.exitCode = 130;
      }
    });
  });

  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(socketPath, () => r()));

  const api: FakeDockerd = {
    socketPath,
    containers,
    images,
    volumes,
    requests,
    execs,
    statsMs: 1000,
    openStats: () => [...statsFollowers.values()].reduce((n, set) => n + set.size, 0),
    addContainer(c) {
      const id = c.Id ?? hex(64);
      const full: FakeContainer = {
        Id: id,
        Names: [`/${c.name}`],
        Image: c.Image ?? 'busybox:latest',
        ImageID: c.ImageID ?? images[0]!.Id,
        State: c.State ?? 'running',
        Status: c.Status ?? (c.State === 'exited' ? 'Exited (0) 1 second ago' : 'Up 1 second'),
        Created: c.Created ?? Math.floor(Date.now() / 1000),
        Ports: c.Ports ?? [],
        Labels: c.Labels ?? {},
        Tty: c.Tty ?? false,
        log: c.log ?? [],
        Env: c.Env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        Mounts: c.Mounts ?? [],
        usage: c.usage ?? { cpuNsPerSec: 0.05e9, memoryBytes: 12 * 2 ** 20 },
      };
      containers.set(id, full);
      event({ Type: 'container', Action: 'create', Actor: { ID: id } });
      if (full.State === 'running') event({ Type: 'container', Action: 'start', Actor: { ID: id } });
      return full;
    },
    log(id, text, source = 'stdout') {
      const c = containers.get(id)!;
      const entry = { source: (source === 'stderr' ? 2 : 1) as 1 | 2, text, time: new Date().toISOString() };
      c.log.push(entry);
      for (const f of followers.get(id) ?? []) {
        const t = f.timestamps ? `${entry.time} ${text}` : text;
        f.res.write(f.tty ? t : frame(entry.source, t));
      }
    },
    setState(id, state) {
      const c = containers.get(id)!;
      c.State = state;
      c.Status = state === 'running' ? 'Up Less than a second' : 'Exited (0) Less than a second ago';
      if (state === 'running') event({ Type: 'container', Action: 'start', Actor: { ID: id } });
      else {
        event({ Type: 'container', Action: 'die', Actor: { ID: id } });
        event({ Type: 'container', Action: 'stop', Actor: { ID: id } });
        for (const f of followers.get(id) ?? []) f.res.end();
      }
    },
    remove(id) {
      containers.delete(id);
      for (const f of followers.get(id) ?? []) f.res.end();
      for (const r of statsFollowers.get(id) ?? []) r.end();
      event({ Type: 'container', Action: 'destroy', Actor: { ID: id } });
    },
    event,
    dropEvents() {
      for (const r of eventStreams) r.destroy();
      eventStreams.clear();
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
  return api;
}
