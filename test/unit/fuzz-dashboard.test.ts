/**
 * Bad input on the dashboard's port: random and malformed messages, wrong
 * types, binary frames, a 64 MiB message, deep nesting, broken WebSocket
 * frames, HTTP garbage and odd paths, forged handshakes and a hundred
 * pages at once, against `berth dashboard`'s real server and bridge in
 * front of the fake engine (no VM). Every message gets one clear error or
 * the socket a clean close; the server never dies and still serves a good
 * page afterwards.
 *
 * Seeded: the seed is printed; BERTH_FUZZ_SEED=<seed> replays a run.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { waitFor } from '../../app/base/process-util.js';
import { startDashboard, type DashboardServer } from '../../app/cli/dashboard.js';
import { ControlClient } from '../../app/client/control-client.js';
import { RequestSchema } from '../../app/contract/contract.js';
import { startFakeEngine, type FakeEngine } from '../helpers/fake-engine.js';
import { fuzzSeed, malformedJson, randomJson, randomString, rng } from '../helpers/fuzz.js';
import { checkErrorShape, randomRequest } from '../helpers/fuzz-requests.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('fzd');
const SEED = fuzzSeed('dashboard');
let eng: FakeEngine;
let dash: DashboardServer;

before(async () => {
  eng = await startFakeEngine(path.join(t.dir, 'home'), { running: true, phaseMs: 2 });
  const root = path.join(t.dir, 'renderer');
  fs.mkdirSync(path.join(root, 'assets'), { recursive: true });
  fs.writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>Berth</title>');
  fs.writeFileSync(path.join(root, 'assets', 'app.js'), 'console.log(1)');
  dash = await startDashboard({ paths: eng.paths, root, connect: () => ControlClient.connect(eng.paths, 'dashboard') });
});
after(async () => {
  await dash.close();
  await eng.close();
  t.cleanup();
});

const origin = () => `http://127.0.0.1:${dash.port}`;
/** encodeURIComponent that takes any string (a lone surrogate becomes U+FFFD). */
const enc = (s: string) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, '\ufffd'));

interface Page {
  ws: WebSocket;
  messages: any[];
  closed: Promise<{ code: number }>;
  waitMessages(n: number, ms?: number): Promise<any[]>;
}

function open(): Promise<Page> {
  const ws = new WebSocket(`ws://127.0.0.1:${dash.port}/ws?token=${dash.token}`, { origin: origin() });
  const messages: any[] = [];
  const wake = new Set<() => void>();
  let isClosed = false;
  ws.on('message', (d) => {
    messages.push(JSON.parse(d.toString()));
    for (const w of wake) w();
  });
  ws.on('error', () => undefined);
  const closed = new Promise<{ code: number }>((r) =>
    ws.on('close', (code) => {
      isClosed = true;
      for (const w of wake) w();
      r({ code });
    }),
  );
  const page: Page = {
    ws,
    messages,
    closed,
    waitMessages: (n, ms = 15_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const answers = messages.filter((m) => 'id' in m);
          if (answers.length >= n || isClosed) {
            wake.delete(check);
            clearTimeout(timer);
            resolve(answers);
          }
        };
        const timer = setTimeout(() => {
          wake.delete(check);
          reject(new Error(`only ${messages.filter((m) => 'id' in m).length} of ${n} answers in ${ms} ms (seed ${SEED})`));
        }, ms);
        wake.add(check);
        check();
      }),
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(page));
    ws.once('unexpected-response', (_q, res) => reject(new Error(`refused ${res.statusCode}`)));
  });
}

/** The dashboard still serves the page and a good call. */
async function stillServes(): Promise<void> {
  const res = await fetch(`${origin()}/`);
  assert.equal(res.status, 200);
  const p = await open();
  try {
    p.ws.send(JSON.stringify({ id: 'ok', method: 'vm.status', params: {} }));
    const [a] = await p.waitMessages(1);
    assert.equal(a.result.instance, 'default');
  } finally {
    p.ws.close();
  }
}

/** One raw HTTP exchange; resolves with the status line (or '' when the server just closed). */
function rawHttp(data: string | Buffer, ms = 3000): Promise<string> {
  return new Promise((resolve) => {
    const c = net.createConnection(dash.port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => c.destroy(), ms);
    c.on('data', (d) => {
      out += d.toString('latin1');
      if (out.includes('\r\n')) c.destroy(); // the status line is all we need (keep-alive would hold it open)
    });
    c.on('error', () => undefined);
    c.on('close', () => {
      clearTimeout(timer);
      resolve(out.split('\r\n')[0] ?? '');
    });
    c.write(data);
  });
}

test(`random messages on a page's WebSocket: one clear answer each (seed ${SEED})`, async () => {
  const r = rng(SEED);
  const p = await open();
  const ids: unknown[] = [];
  const N = 400;
  for (let i = 0; i < N; i++) {
    const kind = r.int(3);
    const text =
      kind === 0 ? JSON.stringify(randomJson(r, 3)) : kind === 1 ? malformedJson(r, JSON.stringify(randomRequest(r, i))) : JSON.stringify(randomRequest(r, i));
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const req = RequestSchema.safeParse(parsed);
    ids.push(req.success ? req.data.id : null);
    p.ws.send(text);
  }
  const answers = await p.waitMessages(N, 30_000);
  assert.equal(p.ws.readyState, WebSocket.OPEN, 'the page stays connected');
  assert.deepEqual(answers.map((a) => JSON.stringify(a.id)).sort(), ids.map((id) => JSON.stringify(id)).sort(), 'one answer per message');
  for (const a of answers) {
    if (a.error) checkErrorShape(a.error, `answer to ${JSON.stringify(a.id)} (seed ${SEED})`);
    else assert.ok('result' in a);
  }
  p.ws.close();
  await stillServes();
});

test('binary frames, deep nesting and empty messages: BAD_REQUEST, the page stays connected', async () => {
  const p = await open();
  p.ws.send(crypto.randomBytes(300));
  p.ws.send(Buffer.from(JSON.stringify({ id: 1, method: 'vm.status', params: {} })), { binary: true });
  p.ws.send('');
  p.ws.send(`{"id":2,"method":"settings.update","params":{"patch":{"ports":${'['.repeat(200_000)}${']'.repeat(200_000)}}}}`);
  p.ws.send(`{"id":3,"method":"settings.update","params":{"patch":{"shares":[${'{"a":'.repeat(40)}1${'}'.repeat(40)}]}}}`);
  const answers = await p.waitMessages(5);
  assert.equal(answers.length, 5);
  for (const a of answers) assert.equal(checkErrorShape(a.error, `message ${JSON.stringify(a.id)}`).code, 'BAD_REQUEST');
  assert.equal(p.ws.readyState, WebSocket.OPEN);
  p.ws.close();
  await stillServes();
});

test('a 64 MiB message: the WebSocket is closed (1009, too big), the server goes on', async () => {
  const p = await open();
  p.ws.send(Buffer.alloc(64 << 20, 0x61).toString());
  const { code } = await p.closed;
  assert.equal(code, 1009, 'the close frame says: message too big');
  await stillServes();
});

/**
 * A raw handshake, then `tail` as the client's frames; resolves with the
 * status line and the code in the server's close frame (undefined when the
 * server sent none before the connection ended or `ms` passed).
 */
function rawFrames(tail: Buffer, o: { end?: boolean; ms?: number } = {}): Promise<{ status: string; closeCode?: number; ended: boolean }> {
  const key = crypto.randomBytes(16).toString('base64');
  const handshake = `GET /ws?token=${dash.token} HTTP/1.1\r\nHost: 127.0.0.1:${dash.port}\r\nOrigin: ${origin()}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`;
  return new Promise((resolve) => {
    const c = net.createConnection(dash.port, '127.0.0.1');
    let out = Buffer.alloc(0);
    let sent = false;
    let ended = false;
    c.on('data', (d) => {
      out = Buffer.concat([out, d]);
      const head = out.indexOf('\r\n\r\n');
      if (head >= 0 && !sent) {
        sent = true;
        c.write(tail);
        if (o.end) c.end();
      }
    });
    c.on('end', () => (ended = true));
    c.on('error', () => undefined);
    const timer = setTimeout(() => c.destroy(), o.ms ?? 3000);
    c.on('close', () => {
      clearTimeout(timer);
      const head = out.indexOf('\r\n\r\n');
      const frames = head >= 0 ? out.subarray(head + 4) : Buffer.alloc(0);
      // The server's frames are unmasked; a close frame is 0x88, a length, the code.
      const at = frames.indexOf(0x88);
      const closeCode = at >= 0 && frames.length >= at + 4 ? frames.readUInt16BE(at + 2) : undefined;
      resolve({ status: out.toString('latin1').split('\r\n')[0] ?? '', closeCode, ended });
    });
    c.write(handshake);
  });
}

test('broken and oversized WebSocket frames: closed with 1002 and 1009, the server goes on', async () => {
  const garbage = crypto.randomBytes(64);
  garbage[0] = garbage[0]! | 0x70; // reserved bits set: no frame a client may send
  for (const [what, tail, code] of [
    ['garbage instead of frames', garbage, 1002],
    ['unmasked from a client', Buffer.from([0x81, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]), 1002],
    ['a reserved opcode', Buffer.from([0x8f, 0x80, 0, 0, 0, 0]), 1002],
    ['a 2^64-1 byte length', Buffer.from([0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 1009],
    ['a length past the message limit', Buffer.from([0x81, 0xff, 0, 0, 0, 0, 0x10, 0, 0, 0]), 1009],
  ] as const) {
    const r = await rawFrames(tail);
    assert.match(r.status, /^HTTP\/1.1 101/, what);
    assert.equal(r.closeCode, code, `${what}: the close frame's code`);
    assert.ok(r.ended, `${what}: the server ended the connection`);
  }
  await stillServes();
});

test('half-written WebSocket frames: the connection is closed when the client goes, the server goes on', async () => {
  for (const [what, tail] of [
    ['a frame header cut short', Buffer.from([0x81, 0xfe])],
    ['a masked frame with half its mask', Buffer.from([0x81, 0x85, 1, 2, 3])],
  ] as const) {
    const r = await rawFrames(tail, { end: true });
    assert.match(r.status, /^HTTP\/1.1 101/, what);
    assert.ok(r.ended, `${what}: the server ended the connection`);
  }
  assert.ok(await waitFor(() => dash.bridge.clients === 0, 3000), 'no page left open');
  await stillServes();
});

test(`HTTP garbage and odd paths: 4xx or a close, never a crash (seed ${SEED})`, async () => {
  const r = rng(SEED + 2);
  const host = `Host: 127.0.0.1:${dash.port}\r\n`;
  const fixed = [
    `GET /%00 HTTP/1.1\r\n${host}\r\n`,
    `GET /index.html/x HTTP/1.1\r\n${host}\r\n`,
    `GET /assets/app.js/ HTTP/1.1\r\n${host}\r\n`,
    `GET /${'a'.repeat(5000)} HTTP/1.1\r\n${host}\r\n`,
    `GET /${'a/'.repeat(3000)} HTTP/1.1\r\n${host}\r\n`,
    `GET /%E0%A4%A HTTP/1.1\r\n${host}\r\n`,
    `GET /..%2f..%2f..%2fetc%2fpasswd HTTP/1.1\r\n${host}\r\n`,
    `GET http://[ HTTP/1.1\r\n${host}Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
    `GET //ws HTTP/1.1\r\n${host}Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
    `GET /ws?token=%ZZ HTTP/1.1\r\n${host}Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
    `POST / HTTP/1.1\r\n${host}Content-Length: 99999999\r\n\r\nabc`,
    `GET / HTTP/1.1\r\nHost: ${'h'.repeat(20000)}\r\n\r\n`,
    `\r\n\r\n\r\n`,
    `GET / HTTP/9.9\r\n\r\n`,
  ];
  // Well-formed, only large: any answer but a crash (Node takes 3,000 headers).
  assert.match(await rawHttp(`GET / HTTP/1.1\r\n${host}${'X-A: b\r\n'.repeat(3000)}\r\n`), /^$|^HTTP\/1\.1 [2-4]\d\d/);
  for (const req of fixed) {
    const status = await rawHttp(req);
    assert.ok(status === '' || /^HTTP\/1\.1 4\d\d/.test(status), `4xx or a close: ${JSON.stringify(req.slice(0, 60))} -> ${JSON.stringify(status)}`);
  }
  // The row's four by name: each is answered 4xx (the bad upgrade URL may be a close).
  assert.match(await rawHttp(`GET /%00 HTTP/1.1\r\n${host}\r\n`), /^HTTP\/1\.1 4\d\d/, '/%00');
  assert.match(await rawHttp(`GET /index.html/x HTTP/1.1\r\n${host}\r\n`), /^HTTP\/1\.1 4\d\d/, 'a file used as a folder');
  assert.match(await rawHttp(`GET /${'a'.repeat(5000)} HTTP/1.1\r\n${host}\r\n`), /^HTTP\/1\.1 4\d\d/, 'a 5,000-byte name');
  assert.match(await rawHttp(`GET http://[ HTTP/1.1\r\n${host}Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n`), /^$|^HTTP\/1\.1 4\d\d/, 'a bad upgrade URL');
  for (const p of ['/..%2f..%2f..%2f..%2fetc%2fpasswd', '/%2e%2e/%2e%2e/etc/passwd', '/assets/..%2f..%2f..%2fetc/passwd']) {
    const res = await fetch(`${origin()}${p}`);
    assert.doesNotMatch(await res.text(), /root:/, `${p} stays inside the renderer folder`);
  }
  for (let i = 0; i < 120; i++) {
    const method = r.pick(['GET', 'POST', 'HEAD', 'OPTIONS', 'PUT', 'G\u0000T', randomString(r, 8)]);
    const target = r.pick(['/', '/ws', `/ws?token=${randomString(r, 30)}`, `/${enc(randomString(r, 30))}`, `/${randomString(r, 30)}`, '*']);
    const headers = Array.from({ length: r.int(4) }, () => `${randomString(r, 10)}: ${randomString(r, 20)}\r\n`).join('');
    const upgrade = r.bool() ? 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' : '';
    const req = Buffer.from(`${method} ${target} HTTP/1.1\r\n${r.bool(0.8) ? host : ''}${headers}${upgrade}\r\n`, 'latin1');
    const status = await rawHttp(req, 1500);
    assert.ok(!/^HTTP\/1\.1 101/.test(status), `a forged request was upgraded: ${JSON.stringify(req.toString('latin1').slice(0, 200))} (seed ${SEED})`);
  }
  await stillServes();
});

test(`forged handshakes: no token, a wrong one, a foreign Origin or Host: 403, never 101 (seed ${SEED})`, async () => {
  const r = rng(SEED + 3);
  const good = { token: dash.token, host: `127.0.0.1:${dash.port}`, origin: origin() };
  for (let i = 0; i < 80; i++) {
    const h = { ...good };
    const spoil = r.int(3);
    if (spoil === 0)
      h.token = r.pick([
        '',
        dash.token.slice(1),
        dash.token + 'x',
        dash.token.toUpperCase() === dash.token ? 'x' : dash.token.toUpperCase(),
        randomString(r, 32),
      ]);
    if (spoil === 1)
      h.host = r.pick([
        `evil.example:${dash.port}`,
        `127.0.0.1:${dash.port + 1}`,
        `127.0.0.1.nip.io:${dash.port}`,
        `0.0.0.0:${dash.port}`,
        `localhost.:${dash.port}`,
        '',
      ]);
    if (spoil === 2)
      h.origin = r.pick([
        'http://evil.example',
        'null',
        `https://127.0.0.1:${dash.port}`,
        `http://127.0.0.1:${dash.port}.evil.example`,
        `http://localhost:${dash.port + 1}`,
        'file://',
      ]);
    const status = await rawHttp(
      `GET /ws?token=${enc(h.token)} HTTP/1.1\r\nHost: ${h.host}\r\nOrigin: ${h.origin}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
    assert.match(status, /^HTTP\/1\.1 (403|400)/, `${JSON.stringify(h)} (seed ${SEED})`);
  }
  assert.equal(dash.bridge.clients, 0);
});

test('a hundred pages at once, each with good and bad calls: all answered', async () => {
  const pages = await Promise.all(Array.from({ length: 100 }, () => open()));
  try {
    await Promise.all(
      pages.map(async (p, i) => {
        p.ws.send(JSON.stringify({ id: i, method: 'vm.status', params: {} }));
        p.ws.send(JSON.stringify({ id: `bad${i}`, method: 'vm.stop', params: { force: 'yes' } }));
        p.ws.send('{nope');
        const answers = await p.waitMessages(3, 30_000);
        assert.equal(answers.find((a) => a.id === i)?.result?.instance, 'default');
        for (const a of answers.filter((x) => x.error)) checkErrorShape(a.error, 'concurrent');
      }),
    );
  } finally {
    for (const p of pages) p.ws.close();
  }
  await stillServes();
});
