/**
 * What the docker socket forward itself costs, without a VM in the way: an
 * HTTP request straight to a unix socket vs. the same request through
 * Berth's forward (host socket → ssh2 channel → ssh server on loopback →
 * the unix socket). Under TCG the guest's own slowness hides this cost, so
 * it is measured here on its own.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { forwardDockerSocket } from '../app/engine/forward/docker-socket.js';
import { GuestSession } from '../app/engine/guest/session.js';
import { silentLogger } from '../app/base/log.js';
import { startFakeDockerd, startFakeGuest } from '../test/helpers/fake-guest.js';

/** PUT `bytes` (Content-Length body, as `docker cp` sends an archive); resolves to MB/s. */
function put(socketPath: string, bytes: number): Promise<number> {
  const t0 = performance.now();
  const chunk = Buffer.alloc(256 * 1024, 7);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath,
        method: 'PUT',
        path: '/v1.41/containers/x/archive?path=%2Ftmp',
        agent: false,
        headers: { 'content-type': 'application/x-tar', 'content-length': bytes },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(bytes / 1e6 / ((performance.now() - t0) / 1000)));
      },
    );
    req.on('error', reject);
    let left = bytes;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

function get(socketPath: string, p: string, agent: http.Agent | false): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: p, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(performance.now() - t0));
      })
      .on('error', reject);
  });
}

export interface OverheadResult {
  direct: number[];
  forwarded: number[];
  forwardedKeepAlive: number[];
  /** The same forward with the bind guard that the engine puts on it (every request framed). */
  guarded: number[];
  /** MB/s of a bulk upload (`docker cp` into a container), per path. */
  bulk: { bytes: number; direct: number[]; forwarded: number[]; guarded: number[] };
}

export async function measureForwardOverhead(n = 500, bulkBytes = 256 * 1024 * 1024, bulkRuns = 3): Promise<OverheadResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bo-'));
  const { utils } = ssh2;
  const client = utils.generateKeyPairSync('ed25519');
  const host = utils.generateKeyPairSync('ed25519');
  const dockerd = await startFakeDockerd(path.join(dir, 'd.sock'));
  const guest = await startFakeGuest({
    hostPrivateKey: host.private,
    clientPublicKey: client.public,
    sockets: { '/var/run/docker.sock': path.join(dir, 'd.sock') },
  });
  const session = new GuestSession({
    host: '127.0.0.1',
    port: guest.port,
    privateKey: client.private,
    hostPublicKey: host.public,
    log: silentLogger(),
    vmAlive: () => true,
  });
  await session.connect(5000);
  const fwd = await forwardDockerSocket(path.join(dir, 'f.sock'), session, silentLogger());
  const guardedFwd = await forwardDockerSocket(path.join(dir, 'g.sock'), session, silentLogger(), () => undefined);
  const [d, f, g] = ['d.sock', 'f.sock', 'g.sock'].map((s) => path.join(dir, s)) as [string, string, string];
  const keep = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const r: OverheadResult = {
    direct: [],
    forwarded: [],
    forwardedKeepAlive: [],
    guarded: [],
    bulk: { bytes: bulkBytes, direct: [], forwarded: [], guarded: [] },
  };
  for (let i = 0; i < 50; i++) {
    await get(d, '/v1.41/version', false);
    await get(f, '/v1.41/version', false);
    await get(g, '/v1.41/version', false);
  }
  for (let i = 0; i < n; i++) {
    r.direct.push(await get(d, '/v1.41/version', false));
    r.forwarded.push(await get(f, '/v1.41/version', false));
    r.forwardedKeepAlive.push(await get(f, '/v1.41/version', keep));
    r.guarded.push(await get(g, '/v1.41/version', false));
  }
  for (let i = 0; i < bulkRuns; i++) {
    r.bulk.direct.push(await put(d, bulkBytes));
    r.bulk.forwarded.push(await put(f, bulkBytes));
    r.bulk.guarded.push(await put(g, bulkBytes));
  }
  keep.destroy();
  await fwd.close();
  await guardedFwd.close();
  session.close();
  await guest.close();
  dockerd.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return r;
}
