import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import type { ControlClient } from '../client/control-client.js';
import { EngineGateway, type GatewayOptions } from '../client/engine-gateway.js';
import { WsBridge, hostProblem } from '../client/ws-bridge.js';
import { BerthError } from '../contract/errors.js';
import { packageRoot } from '../base/package-root.js';
import type { InstancePaths } from '../base/paths.js';
import { writeOpenFile, type OpenFile } from './dashboard-open-file.js';
import { connectEngine } from './engine-link.js';

export interface DashboardOptions {
  paths: InstancePaths;
  json: boolean;
  /** Open the default browser (false: only print the URL). */
  open: boolean;
  port?: number;
}

export interface DashboardServer {
  url: string;
  port: number;
  token: string;
  bridge: WsBridge;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

/** Where `npm run build` puts the renderer. */
export function rendererDir(): string {
  return process.env.BERTH_RENDERER_DIR || path.join(packageRoot(), 'dist', 'renderer');
}

/**
 * The dashboard: the built renderer served on 127.0.0.1 (never beyond
 * loopback) and the contract over a WebSocket with a per-start token. The
 * engine is connected lazily, so the page works (showing the VM stopped,
 * with a Start button) when no engine runs.
 */
export async function startDashboard(o: {
  paths: InstancePaths;
  port?: number;
  /** How the bridge reaches the engine (default: the instance's control socket, starting the engine on vm.start). */
  connect?: (spawn: boolean) => Promise<ControlClient>;
  root?: string;
  /** `host.doctor` for the page (default: `berth doctor`'s report on this host); tests give a fake host. */
  doctor?: GatewayOptions['doctor'];
}): Promise<DashboardServer> {
  const root = path.resolve(o.root ?? rendererDir());
  if (!fs.existsSync(path.join(root, 'index.html'))) {
    throw new BerthError(
      'DASHBOARD_NOT_BUILT',
      `the dashboard is not built (no ${path.join(root, 'index.html')})`,
      'Run `npm run build` in the Berth folder first.',
    );
  }
  const token = crypto.randomBytes(24).toString('base64url');
  const connect = o.connect ?? ((spawnEngine: boolean) => connectEngine(o.paths, spawnEngine));
  let port = 0;

  const server = http.createServer((req, res) => {
    try {
      serveStatic(root, port, req, res);
    } catch {
      // A path the file system refuses (a NUL byte, a name too long, a file
      // used as a folder): the page is not there. Never take the server down.
      if (!res.headersSent) res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  });
  const bridge = new WsBridge(server, {
    token,
    port: () => port,
    gateway: () => new EngineGateway({ paths: o.paths, connect, ...(o.doctor ? { doctor: o.doctor } : {}) }),
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new BerthError('PORT_IN_USE', `port ${o.port} on 127.0.0.1 is already in use`, 'Pick another with --port, or leave it out to use a free one.')
          : err,
      ),
    );
    server.listen(o.port ?? 0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as net.AddressInfo).port;
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  return {
    url: `http://127.0.0.1:${port}/#token=${token}`,
    port,
    token,
    bridge,
    async close() {
      await bridge.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function serveStatic(root: string, port: number, req: http.IncomingMessage, res: http.ServerResponse): void {
  const problem = hostProblem(req, port);
  if (problem) {
    res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' });
    return void res.end(`Refused: ${problem}. Open the address \`berth dashboard\` printed.\n`);
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' });
    return void res.end();
  }
  let rel: string;
  try {
    rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  } catch {
    res.writeHead(400);
    return void res.end();
  }
  let file = path.join(root, path.normalize(rel));
  if ((!file.startsWith(root + path.sep) && file !== root) || file.includes('\0')) {
    res.writeHead(404);
    return void res.end();
  }
  if (rel === '/') file = path.join(root, 'index.html');
  let stat: fs.Stats | undefined;
  try {
    stat = fs.statSync(file, { throwIfNoEntry: false });
  } catch (err) {
    // A name past the file system's limit is the request's fault: 414.
    // ENOTDIR (a file used as a folder), EACCES: not a file we serve.
    if ((err as NodeJS.ErrnoException).code === 'ENAMETOOLONG') {
      res.writeHead(414, { 'content-type': 'text/plain' });
      return void res.end('name too long\n');
    }
    stat = undefined;
  }
  // The UI is one page whose screens are hash routes (#/containers), so
  // only `/` is the page; any other path must be a file in the build.
  if (!stat || !stat.isFile()) {
    res.writeHead(404, { 'content-type': 'text/plain' });
    return void res.end('not found\n');
  }
  const isIndex = path.basename(file) === 'index.html';
  res.writeHead(200, {
    'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
    'content-length': stat.size,
    'cache-control': isIndex ? 'no-store' : 'public, max-age=31536000, immutable',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'content-security-policy': [
      "default-src 'self'",
      `connect-src 'self' ws://127.0.0.1:${port} ws://localhost:${port}`,
      // xterm.js sizes its rows with inline styles.
      "style-src 'self' 'unsafe-inline'",
      "img-src 'self' data:",
      "frame-ancestors 'none'",
      "base-uri 'none'",
      "form-action 'none'",
    ].join('; '),
  });
  if (req.method === 'HEAD') return void res.end();
  fs.createReadStream(file)
    .on('error', () => res.destroy())
    .pipe(res);
}

/**
 * Open an address in the default browser; false when there is no way to.
 * The address lands on command lines (the opener's, then the browser's),
 * which every local user can read: never pass a secret here.
 */
export function openBrowser(url: string): Promise<boolean> {
  const [cmd, args] =
    process.platform === 'darwin'
      ? ['open', [url]]
      : process.platform === 'win32'
        ? ['cmd', ['/c', 'start', '""', url.replace(/&/g, '^&')]]
        : ['xdg-open', [url]];
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
    child.once('error', () => resolve(false));
    child.once('spawn', () => {
      child.unref();
      resolve(true);
    });
  });
}

/** How long after opening the browser to say what to do when no page has connected. */
const NO_PAGE_HINT_MS = 20_000;

/**
 * `berth dashboard`: the renderer on loopback with a per-start token, bridged
 * to the engine. The browser is handed the owner-only open file, never the
 * token address; the token address is printed on this process's own stdout
 * (for the owner to paste, or for scripts with --json).
 */
export async function runDashboard(o: DashboardOptions): Promise<number> {
  const d = await startDashboard({ paths: o.paths, port: o.port });
  let openFile: OpenFile;
  try {
    openFile = writeOpenFile(path.join(o.paths.dir, 'dashboard'), d.url);
  } catch (err) {
    await d.close();
    throw err;
  }
  const removeOpenFile = () => openFile.remove();
  process.once('exit', removeOpenFile);
  if (o.json) process.stdout.write(JSON.stringify({ url: d.url, openUrl: openFile.url }) + '\n');
  else {
    process.stdout.write(
      `Berth dashboard (instance ${o.paths.name}) on http://127.0.0.1:${d.port}/\n` +
        `Open: ${openFile.url}\n` +
        `  or paste into a browser: ${d.url}\n` +
        '  (this address holds the token: keep it off command lines, which other users can read)\n' +
        'Press Ctrl+C to stop it.\n',
    );
  }
  if (o.open) {
    if (!(await openBrowser(openFile.url))) {
      if (!o.json) process.stderr.write('Could not open a browser here; open one of the addresses above yourself.\n');
    } else if (!o.json) {
      setTimeout(() => {
        if (d.bridge.pagesOpened === 0) {
          process.stderr.write(
            'No dashboard page has connected yet. If the browser could not open the file (a snap-confined browser cannot read hidden folders), paste the address above into it.\n',
          );
        }
      }, NO_PAGE_HINT_MS).unref();
    }
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await d.close();
  removeOpenFile();
  process.removeListener('exit', removeOpenFile);
  return 0;
}
