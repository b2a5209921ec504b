/**
 * A fake guest for unit tests: a real ssh2 server on loopback that accepts
 * only the engine's key, forwards streamlocal channels to unix sockets on
 * this machine (a fake dockerd), and answers exec requests with a handler.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import ssh2 from 'ssh2';

const { Server, utils } = ssh2;

export interface ExecReply {
  stdout?: string;
  code?: number;
}

export interface FakeGuestOptions {
  hostPrivateKey: string;
  clientPublicKey: string;
  port?: number;
  /** guest socket path -> host unix socket that plays it */
  sockets: Record<string, string>;
  exec?: (command: string) => ExecReply | Promise<ExecReply>;
}

export interface FakeGuest {
  port: number;
  /** Every exec command received, in order. */
  commands: string[];
  streamlocalCount(): number;
  /** Cut every client connection (as a sleep or sshd restart would). */
  dropAll(): void;
  close(): Promise<void>;
}

/** An ssh2 server's authentication handler that accepts only this public key (as the guest's sshd does). */
export function onlyKey(clientPublicKey: string): (ctx: ssh2.AuthContext) => void {
  const parsed = utils.parseKey(clientPublicKey);
  if (parsed instanceof Error) throw parsed;
  const allowed = Array.isArray(parsed) ? parsed[0]! : parsed;
  return (ctx) => {
    if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
    const want = allowed.getPublicSSH();
    const ok =
      ctx.key.algo === allowed.type &&
      ctx.key.data.length === want.length &&
      crypto.timingSafeEqual(ctx.key.data, want) &&
      (!ctx.signature || allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true);
    return ok ? ctx.accept() : ctx.reject();
  };
}

export async function startFakeGuest(o: FakeGuestOptions): Promise<FakeGuest> {
  const auth = onlyKey(o.clientPublicKey);
  const commands: string[] = [];
  const clients = new Set<ssh2.Connection>();
  let streamlocal = 0;

  const server = new Server({ hostKeys: [o.hostPrivateKey] }, (client) => {
    clients.add(client);
    client.on('close', () => clients.delete(client));
    client.on('error', () => undefined);
    client.on('authentication', auth);
    client.on('ready', () => {
      client.on('openssh.streamlocal', (accept, reject, info) => {
        const target = o.sockets[info.socketPath];
        if (!target) return reject();
        const up = net.createConnection(target);
        up.once('error', () => reject());
        up.once('connect', () => {
          streamlocal++;
          const ch = accept();
          up.removeAllListeners('error');
          up.on('error', () => ch.destroy());
          ch.on('error', () => up.destroy());
          // Carry half-closes the way sshd does: EOF becomes shutdown(SHUT_WR).
          ch.pipe(up);
          up.pipe(ch);
          up.on('close', () => ch.close());
        });
      });
      // direct-tcpip: what the port forwards open; connect on this machine.
      client.on('tcpip', (accept, reject, info) => {
        const up = net.createConnection({ host: info.destIP, port: info.destPort });
        up.once('error', () => reject());
        up.once('connect', () => {
          const ch = accept();
          up.removeAllListeners('error');
          up.on('error', () => ch.destroy());
          ch.on('error', () => up.destroy());
          ch.pipe(up);
          up.pipe(ch);
          up.on('close', () => ch.close());
        });
      });
      client.on('session', (accept) => {
        const session = accept();
        session.on('exec', async (acceptExec, _reject, info) => {
          const stream = acceptExec();
          commands.push(info.command);
          const r = (await o.exec?.(info.command)) ?? {};
          if (r.stdout) stream.write(r.stdout);
          stream.exit(r.code ?? 0);
          stream.end();
        });
      });
    });
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });

  return {
    port,
    commands,
    streamlocalCount: () => streamlocal,
    dropAll() {
      for (const c of clients) c.end();
    },
    close() {
      for (const c of clients) c.end();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** A fake dockerd: /_ping and /version over HTTP on a unix socket. */
export async function startFakeDockerd(socketPath: string): Promise<net.Server> {
  const http = await import('node:http');
  const srv = http.createServer((req, res) => {
    if (req.url === '/_ping') return res.end('OK');
    if (req.method === 'PUT') {
      // An archive upload (docker cp into a container): read it all, then 200.
      req.resume();
      return void req.on('end', () => res.end());
    }
    if (req.url?.endsWith('/version')) {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ Version: 'fake', ApiVersion: '1.41' }));
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((r) => srv.listen(socketPath, () => r()));
  // Closing it ends the connections too: one a test's engine left open (a
  // stream still being set up when it stopped) must not keep the test
  // process alive after its last test.
  const close = srv.close.bind(srv);
  srv.close = (cb?: (err?: Error) => void) => {
    srv.closeAllConnections();
    return close(cb);
  };
  return srv;
}

/**
 * A raw stream peer: reads until the client half-closes, then answers with
 * the data upper-cased and a byte count, and closes. Proves that EOF crosses
 * the forward while the reply still flows back.
 */
export async function startHalfCloseEcho(socketPath: string): Promise<net.Server> {
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('end', () => {
      const all = Buffer.concat(parts);
      const h = crypto.createHash('sha256').update(all).digest('hex');
      s.end(`len=${all.length} sha256=${h}`);
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(socketPath, () => r()));
  return srv;
}
