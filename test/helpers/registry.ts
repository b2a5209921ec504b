/**
 * A registry and a proxy on the host for the registry tests: Debian's
 * docker-registry (the Distribution registry) on a loopback port, plain
 * HTTP or TLS with a certificate from a test CA, optionally with htpasswd
 * logins; openssl for the CA and certificates; and a small forward proxy
 * (absolute-URI requests and CONNECT) that counts what it carried.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { findExecutable, freeLoopbackPort, sleep } from '../../app/base/process-util.js';

/** Why the registry tests cannot run here (with the package that fixes it), or undefined. */
export function registryToolsProblem(): string | undefined {
  if (!findExecutable('docker-registry')) return 'docker-registry is not installed (apt-get install docker-registry)';
  if (!findExecutable('htpasswd')) return 'htpasswd is not installed (apt-get install apache2-utils)';
  if (!findExecutable('openssl')) return 'openssl is not installed (apt-get install openssl)';
  return undefined;
}

const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

export interface Ca {
  cert: string;
  key: string;
}

/** A CA of its own (P-256, two days), in dir/NAME.pem and dir/NAME.key. */
export function makeCa(dir: string, name: string): Ca {
  const ca = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
  openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    ca.key,
    '-out',
    ca.cert,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
  ]);
  return ca;
}

/** A server certificate for `dnsName` (and 127.0.0.1) signed by `ca`. */
export function serverCert(dir: string, ca: Ca, name: string, dnsName: string): Ca {
  const out = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, `subjectAltName=DNS:${dnsName},IP:127.0.0.1\nextendedKeyUsage=serverAuth\n`);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', out.key, '-out', csr, '-subj', `/CN=${dnsName}`]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', out.cert, '-days', '2', '-extfile', ext]);
  return out;
}

export interface Registry {
  port: number;
  /** What it logged (requests, errors), for a failure's message. */
  log: () => string;
  stop: () => void;
}

/** docker-registry on 127.0.0.1, its storage under dir; TLS and htpasswd logins when given. */
export async function startRegistry(dir: string, o: { tls?: Ca; users?: Record<string, string> } = {}): Promise<Registry> {
  fs.mkdirSync(dir, { recursive: true });
  const port = await freeLoopbackPort();
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${path.join(dir, 'data')}`,
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
  if (o.tls) lines.push('  tls:', `    certificate: ${o.tls.cert}`, `    key: ${o.tls.key}`);
  if (o.users) {
    const file = path.join(dir, 'htpasswd');
    fs.writeFileSync(file, '');
    for (const [user, pass] of Object.entries(o.users)) execFileSync('htpasswd', ['-B', '-b', file, user, pass], { stdio: 'ignore' });
    lines.push('auth:', '  htpasswd:', '    realm: berth-test', `    path: ${file}`);
  }
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(config, lines.join('\n') + '\n');
  let out = '';
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const s of [child.stdout!, child.stderr!]) s.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const deadline = Date.now() + 30_000;
  while (!(await listening(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill();
      throw new Error(`docker-registry did not listen on ${port}: ${out.slice(-2000)}`);
    }
    await sleep(100);
  }
  return { port, log: () => out, stop: () => child.kill() };
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export interface CountingProxy {
  port: number;
  /** "GET http://host:port/path" or "CONNECT host:port", one a request carried. */
  requests: string[];
  close: () => Promise<void>;
}

/**
 * A forward proxy on 127.0.0.1: plain requests by absolute URI, TLS by
 * CONNECT. host.docker.internal is this host to the guest, so the proxy
 * takes it for 127.0.0.1, as it would be for a proxy on the host.
 */
export async function startCountingProxy(): Promise<CountingProxy> {
  const requests: string[] = [];
  const target = (host: string) => (host === 'host.docker.internal' ? '127.0.0.1' : host);
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    let u: URL;
    try {
      u = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end('absolute URI expected');
      return;
    }
    const up = http.request({ host: target(u.hostname), port: u.port || 80, path: u.pathname + u.search, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  const tunnels = new Set<net.Socket>();
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    requests.push(`CONNECT ${req.url}`);
    tunnels.add(client);
    client.on('close', () => tunnels.delete(client));
    const [host, port] = (req.url ?? '').split(':');
    const up = net.connect({ host: target(host!), port: Number(port) }, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    requests,
    close: () =>
      new Promise((resolve) => {
        for (const t of tunnels) t.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
