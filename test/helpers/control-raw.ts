/**
 * A raw connection to a control socket, for tests that send what no real
 * client would: lines as bytes, read back as parsed JSON lines.
 */
import assert from 'node:assert/strict';
import net from 'node:net';

export interface Raw {
  sock: net.Socket;
  lines: string[];
  closed: Promise<void>;
  isClosed: () => boolean;
  write(data: string | Buffer): void;
  /** Wait until `n` lines arrived (or the connection closed). */
  waitLines(n: number, ms?: number): Promise<unknown[]>;
}

export async function raw(socketPath: string): Promise<Raw> {
  // allowHalfOpen: a bad client keeps writing after the engine hung up its side.
  const sock = net.createConnection({ path: socketPath, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const lines: string[] = [];
  let buf = '';
  let isClosed = false;
  const wake = new Set<() => void>();
  sock.on('data', (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    for (const w of wake) w();
  });
  sock.on('error', () => undefined);
  // The engine hanging up its side counts as closed (the client is half-open).
  const closed = new Promise<void>((r) => {
    const done = () => {
      isClosed = true;
      for (const w of wake) w();
      r();
    };
    sock.on('end', done);
    sock.on('close', done);
  });
  return {
    sock,
    lines,
    closed,
    isClosed: () => isClosed,
    write: (d) => {
      if (!sock.destroyed) sock.write(d);
    },
    waitLines: (n, ms = 10_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (lines.length >= n || isClosed) {
            wake.delete(check);
            clearTimeout(timer);
            resolve(lines.map((l) => JSON.parse(l)));
          }
        };
        const timer = setTimeout(() => {
          wake.delete(check);
          reject(new Error(`only ${lines.length} of ${n} answers in ${ms} ms`));
        }, ms);
        wake.add(check);
        check();
      }),
  };
}

export async function hello(c: Raw, token: string): Promise<void> {
  c.write(JSON.stringify({ id: 'h', method: 'hello', params: { token } }) + '\n');
  const [r] = (await c.waitLines(1)) as { result?: unknown }[];
  assert.ok(r?.result, 'hello answered');
  c.lines.length = 0;
}
