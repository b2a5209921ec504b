/**
 * `berth dashboard`'s server and WebSocket bridge, against a real control
 * server with stand-in handlers: the token, Host and Origin checks, static
 * files, the contract passed through unchanged (results, errors with
 * hints, events), bad input refused with BAD_REQUEST, the UI working with
 * no engine, and streams closed when the page goes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startDashboard, type DashboardServer } from '../../app/cli/dashboard.js';
import { ControlClient } from '../../app/client/control-client.js';
import { ControlServer } from '../../app/engine/api/control-server.js';
import type { Handlers } from '../../app/contract/contract.js';
import type { VmStatus } from '../../app/contract/contract.js';
import { dockerHandlers } from '../../app/engine/docker/docker-handlers.js';
import { BerthError, isBerthError } from '../../app/contract/errors.js';
import { silentLogger } from '../../app/base/log.js';
import { instancePaths } from '../../app/base/paths.js';
import { waitFor } from '../../app/base/process-util.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('wsb');
const paths = instancePaths('default', path.join(t.dir, 'home'));
const root = path.join(t.dir, 'renderer');
const TOKEN = 'b'.repeat(64);
let server: ControlServer | undefined;
let dash: DashboardServer;
let engineUp = true;
let spawns = 0;
const stopped: string[] = [];

const status = (state: VmStatus['state'] = 'running'): VmStatus => ({
  instance: 'default',
  state,
  driver: 'fake',
  cpus: 2,
  memoryMiB: 2048,
  diskGiB: 64,
  dockerSocket: '/x/docker.sock',
  dockerHost: 'unix:///x/docker.sock',
  enginePid: process.pid,
});

/** The methods these tests use (a partial map: other methods are not called here). */
const handlers = (): Handlers =>
  ({
    ...dockerHandlers({
      api: () => {
        throw new BerthError('VM_NOT_RUNNING', 'the VM is not running', 'Start it.');
      },
      broadcast: () => undefined,
      signal: AbortSignal.abort(),
    }),
    'vm.status': async () => status(),
    'vm.start': async () => {
      server!.broadcast('vm.progress', { phase: 'boot', message: 'booting', at: new Date().toISOString() });
      return status();
    },
    'vm.stop': async () => status('stopped'),
    'vm.restart': async () => status(),
    'settings.get': async () => ({ cpus: 2, memoryMiB: 2048, diskGiB: 64, accel: 'auto', portBind: 'loopback', ports: [] }) as never,
    'settings.update': async () => {
      throw new BerthError('INVALID_SETTINGS', 'invalid settings: memoryMiB: must be at least 512 MiB', 'Nothing was saved.');
    },
    'guest.sshEndpoint': async () => {
      throw new BerthError('VM_NOT_RUNNING', 'the VM is not running', 'Start it.');
    },
    'guest.logs': async () => ({ lines: [] }),
    'ports.list': async () => ({ ports: [], manual: [] }),
    'ports.add': async () => ({ ports: [], manual: [] }),
    'ports.remove': async () => ({ ports: [], manual: [] }),
    'engine.shutdown': async () => ({}),
    'logs.read': async (p) => ({ source: p.source, file: 'f', lines: ['from the engine'] }),
    'diagnostics.bundle': async () => ({ path: '/x', fileName: 'x.zip', bytes: 0, base64: '', files: [] }),
    'engine.factoryReset': async () => {
      throw new BerthError('VM_BUSY', 'the VM is running', 'Stop the VM first.');
    },
    'containers.logs': async () => ({ stream: 'logs-abc', tty: false }),
    'containers.logs.stop': async (p) => {
      stopped.push(p.stream);
      return {};
    },
    'containers.stats': async () => ({ stream: 'stats-abc' }),
    'containers.stats.stop': async (p) => {
      stopped.push(p.stream);
      return {};
    },
    'terminal.start': async () => ({ session: 'term-abc' }),
    'terminal.stop': async (p) => {
      stopped.push(p.session);
      return {};
    },
  }) satisfies Partial<Handlers> as unknown as Handlers;

async function startEngine(): Promise<void> {
  fs.mkdirSync(paths.dir, { recursive: true });
  fs.writeFileSync(paths.token, TOKEN + '\n', { mode: 0o600 });
  server = new ControlServer(paths.controlSocket, TOKEN, handlers(), { version: 't', instance: 'default' }, silentLogger());
  await server.listen();
}

before(async () => {
  fs.mkdirSync(path.join(root, 'assets'), { recursive: true });
  fs.writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>Berth</title>');
  fs.writeFileSync(path.join(root, 'assets', 'app.js'), 'console.log(1)');
  fs.writeFileSync(path.join(t.dir, 'secret.txt'), 'secret');
  await startEngine();
  dash = await startDashboard({
    paths,
    root,
    connect: async (spawn) => {
      if (!engineUp) {
        if (!spawn) throw new BerthError('ENGINE_NOT_RUNNING', 'the Berth engine is not running', 'Start it.');
        spawns++;
        engineUp = true;
        await startEngine();
      }
      return ControlClient.connect(paths, 'test');
    },
  });
});
after(async () => {
  await dash.close();
  await server?.close();
  t.cleanup();
});

function get(p: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: dash.port, path: p, headers, agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      })
      .on('error', reject);
  });
}

interface Page {
  ws: WebSocket;
  call(method: string, params?: unknown): Promise<any>;
  sendRaw(s: string): void;
  next(pred: (m: any) => boolean, ms?: number): Promise<any>;
  messages: any[];
}

/** Open the bridge as a page would; resolves once open, rejects with the refusal's status and body. */
function open(opts: { token?: string | null; origin?: string; host?: string } = {}): Promise<Page> {
  const token = opts.token === undefined ? dash.token : opts.token;
  const url = `ws://127.0.0.1:${dash.port}/ws${token === null ? '' : `?token=${encodeURIComponent(token)}`}`;
  const headers: Record<string, string> = {};
  if (opts.host) headers.host = opts.host;
  const ws = new WebSocket(url, { headers, origin: opts.origin ?? `http://127.0.0.1:${dash.port}` });
  const messages: any[] = [];
  const waiters: { pred: (m: any) => boolean; resolve: (m: any) => void }[] = [];
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    messages.push(m);
    for (const w of [...waiters])
      if (w.pred(m)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
  });
  let nextId = 1;
  const page: Page = {
    ws,
    messages,
    sendRaw: (s) => ws.send(s),
    next: (pred, ms = 5000) =>
      new Promise((resolve, reject) => {
        const found = messages.find(pred);
        if (found) return resolve(found);
        const timer = setTimeout(() => reject(new Error('no such message in time')), ms);
        waiters.push({ pred, resolve: (m) => (clearTimeout(timer), resolve(m)) });
      }),
    call: async (method, params = {}) => {
      const id = nextId++;
      ws.send(JSON.stringify({ id, method, params }));
      return page.next((m) => m.id === id);
    },
  };
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve(page));
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => reject(Object.assign(new Error(`refused ${res.statusCode}`), { status: res.statusCode, body })));
    });
    ws.on('error', () => undefined);
  });
}

describe('static files', () => {
  test('the page, with a strict content security policy and no caching of index.html', async () => {
    const r = await get('/');
    assert.equal(r.status, 200);
    assert.match(r.body, /<title>Berth/);
    assert.match(String(r.headers['content-security-policy']), /default-src 'self'/);
    assert.match(String(r.headers['content-security-policy']), /frame-ancestors 'none'/);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.equal((await get('/assets/app.js')).headers['content-type'], 'text/javascript; charset=utf-8');
  });
  test('only / is the page (its screens are hash routes); other missing paths, missing assets and paths outside the folder are 404', async () => {
    assert.equal((await get('/containers')).status, 404);
    assert.equal((await get('/assets/missing.js')).status, 404);
    assert.equal((await get('/../secret.txt')).status, 404);
    assert.equal((await get('/%2e%2e/secret.txt')).status, 404);
  });
  test('a foreign Host (DNS rebinding) is refused', async () => {
    assert.equal((await get('/', { host: `evil.example:${dash.port}` })).status, 403);
    assert.equal((await get('/', { host: `localhost:${dash.port}` })).status, 200);
  });
  test('loopback only, and the URL carries the token in the fragment (never sent to the server)', () => {
    assert.match(dash.url, new RegExp(`^http://127\\.0\\.0\\.1:${dash.port}/#token=[A-Za-z0-9_-]{32}$`));
  });
  test('not built: DASHBOARD_NOT_BUILT with a hint', async () => {
    await assert.rejects(
      startDashboard({ paths, root: path.join(t.dir, 'nothing') }),
      (e: unknown) => isBerthError(e, 'DASHBOARD_NOT_BUILT') && /npm run build/.test(e.hint),
    );
  });
  test('a port in use: PORT_IN_USE with a hint', async () => {
    await assert.rejects(startDashboard({ paths, root, port: dash.port }), (e: unknown) => isBerthError(e, 'PORT_IN_USE') && /--port/.test(e.hint));
  });
});

describe('websocket upgrades', () => {
  test('without the token, with a wrong one, a foreign Origin or a foreign Host: refused with 403', async () => {
    for (const [opts, why] of [
      [{ token: null }, /token is missing or wrong/],
      [{ token: 'x'.repeat(32) }, /token is missing or wrong/],
      [{ origin: 'http://evil.example' }, /Origin "http:\/\/evil\.example"/],
      [{ origin: `http://127.0.0.1:${dash.port + 1}` }, /Origin/],
      [{ host: `rebind.example:${dash.port}` }, /Host "rebind\.example/],
    ] as const) {
      await assert.rejects(open(opts), (e: any) => {
        assert.equal(e.status, 403, JSON.stringify(opts));
        const body = JSON.parse(e.body);
        assert.equal(body.error.code, 'UNAUTHORIZED');
        assert.match(body.error.message, why);
        assert.ok(body.error.hint);
        return true;
      });
    }
    assert.equal(dash.bridge.clients, 0);
  });

  test('the right token from the page itself: the contract passes through, results and errors with hints', async () => {
    const p = await open();
    try {
      const s = await p.call('vm.status');
      assert.equal(s.result.state, 'running');
      const bad = await p.call('settings.update', { patch: { memoryMiB: 100 } });
      assert.deepEqual(bad.error, { code: 'INVALID_SETTINGS', message: 'invalid settings: memoryMiB: must be at least 512 MiB', hint: 'Nothing was saved.' });
      const notRunning = await p.call('containers.list', {});
      assert.equal(notRunning.error.code, 'VM_NOT_RUNNING');
      assert.equal((await p.call('logs.read', { source: 'engine' })).result.lines[0], 'from the engine');
    } finally {
      p.ws.close();
    }
  });

  test('bad input: BAD_REQUEST, and the connection stays usable', async () => {
    const p = await open();
    try {
      p.sendRaw('not json');
      const e1 = await p.next((m) => m.id === null);
      assert.equal(e1.error.code, 'BAD_REQUEST');
      p.messages.length = 0;
      p.sendRaw(JSON.stringify({ method: 'vm.status' }));
      assert.equal((await p.next((m) => m.id === null)).error.code, 'BAD_REQUEST');
      for (const [method, params, why] of [
        ['nope.nothing', {}, /unknown method/],
        ['hello', { token: 'x' }, /unknown method/],
        ['events.subscribe', {}, /unknown method/],
        ['settings.update', { patch: 'x' }, /bad params for settings.update/],
        ['containers.stop', { id: '../../x' }, /bad params for containers.stop: id:/],
        ['vm.stop', { force: true, extra: 1 }, /bad params/],
      ] as const) {
        const r = await p.call(method, params);
        assert.equal(r.error?.code, 'BAD_REQUEST', method);
        assert.match(r.error.message, why);
        assert.ok(r.error.hint);
      }
      assert.equal((await p.call('vm.status')).result.state, 'running');
    } finally {
      p.ws.close();
    }
  });

  test('engine events reach the page', async () => {
    const p = await open();
    try {
      await p.call('vm.status');
      await p.call('vm.start');
      const ev = await p.next((m) => m.event === 'vm.progress');
      assert.equal(ev.data.phase, 'boot');
    } finally {
      p.ws.close();
    }
  });

  test('log streams, stats streams and terminals a page opened are closed when it goes', async () => {
    const p = await open();
    await p.call('containers.logs', { id: 'web' });
    await p.call('containers.stats', { id: 'web' });
    await p.call('terminal.start', { id: 'web', cols: 80, rows: 24 });
    stopped.length = 0;
    p.ws.close();
    assert.ok(await waitFor(() => stopped.length === 3, 3000), `stopped: ${stopped}`);
    assert.deepEqual(stopped.sort(), ['logs-abc', 'stats-abc', 'term-abc']);
  });
});

describe('without an engine', () => {
  before(async () => {
    await server!.close();
    server = undefined;
    engineUp = false;
  });

  test('the page sees the VM stopped, reads settings and logs from the instance folder, and Start starts the engine', async () => {
    fs.mkdirSync(paths.dir, { recursive: true });
    fs.writeFileSync(paths.settings, JSON.stringify({ cpus: 1, memoryMiB: 1024 }));
    fs.writeFileSync(paths.engineLog, JSON.stringify({ level: 30, time: 0, msg: 'engine stopped' }) + '\n');
    const p = await open();
    try {
      const s = await p.call('vm.status');
      assert.equal(s.result.state, 'stopped');
      assert.equal(s.result.memoryMiB, 1024);
      assert.equal(s.result.enginePid, 0);
      assert.equal((await p.call('settings.get')).result.memoryMiB, 1024);
      const before = fs.readFileSync(paths.settings, 'utf8');
      const bad = await p.call('settings.update', { patch: { memoryMiB: 100 } });
      assert.equal(bad.error.code, 'INVALID_SETTINGS');
      assert.match(bad.error.message, /memoryMiB: must be at least 512 MiB/);
      assert.equal(fs.readFileSync(paths.settings, 'utf8'), before, 'nothing saved');
      const good = await p.call('settings.update', { patch: { memoryMiB: 1536 } });
      assert.deepEqual(good.result.changed, ['memoryMiB']);
      assert.equal(good.result.restartRequired, true);
      assert.match((await p.call('logs.read', { source: 'engine', lines: 5 })).result.lines[0], /INFO engine stopped/);
      // Shares and manual forwards are settings: edited while stopped, as the CLI does.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-offline-share-'));
      try {
        const added = await p.call('shares.add', { hostPath: dir, readOnly: true });
        assert.ok(added.result.configured.some((x: { hostPath: string; readOnly?: boolean }) => x.hostPath === dir && x.readOnly));
        assert.equal((await p.call('shares.remove', { hostPath: '/not/shared' })).error.code, 'BAD_REQUEST');
        assert.ok(!(await p.call('shares.remove', { hostPath: dir })).result.configured.some((x: { hostPath: string }) => x.hostPath === dir));
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      assert.deepEqual((await p.call('ports.add', { hostPort: 18999, guestPort: 80 })).result.manual, [{ hostPort: 18999, guestPort: 80, proto: 'tcp' }]);
      assert.deepEqual((await p.call('ports.remove', { hostPort: 18999 })).result.manual, []);
      const nr = await p.call('containers.list', {});
      assert.equal(nr.error.code, 'ENGINE_NOT_RUNNING');
      assert.match(nr.error.hint, /Start/);
      const diag = await p.call('diagnostics.bundle');
      assert.ok(diag.result.files.includes('settings.json'));
      assert.ok(fs.existsSync(diag.result.path));
      assert.equal(spawns, 0);
      const started = await p.call('vm.start');
      assert.equal(started.result.state, 'running');
      assert.equal(spawns, 1, 'vm.start started the engine');
    } finally {
      p.ws.close();
    }
  });

  test('the engine going away while the VM runs: the page gets vm.state error with a hint', async () => {
    const p = await open();
    try {
      assert.equal((await p.call('vm.status')).result.state, 'running');
      p.messages.length = 0;
      await server!.close();
      server = undefined;
      engineUp = false;
      const ev = await p.next((m) => m.event === 'vm.state' && m.data.state === 'error');
      assert.equal(ev.data.previous, 'running');
      assert.equal(ev.data.error.code, 'ENGINE_NOT_RUNNING');
      assert.match(ev.data.error.hint, /Start/);
      assert.equal((await p.call('vm.status')).result.state, 'stopped');
    } finally {
      p.ws.close();
    }
  });
});
