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
import { DockerSocketForward } from '../app/engine/forward/docker-socket.js';
import { GuestSession } from '../app/engine/guest/session.js';
import { silentLogger } from '../app/engine/log.js';
import { startFakeDockerd, startFakeGuest } from '../test/helpers/fake-guest.js';

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
}

export async function measureForwardOverhead(n = 500): Promise<OverheadResult> {
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
  const fwd = new DockerSocketForward(path.join(dir, 'f.sock'), session, silentLogger());
  await fwd.listen();
  const keep = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const r: OverheadResult = { direct: [], forwarded: [], forwardedKeepAlive: [] };
  for (let i = 0; i < 50; i++) {
    await get(path.join(dir, 'd.sock'), '/v1.41/version', false);
    await get(path.join(dir, 'f.sock'), '/v1.41/version', false);
  }
  for (let i = 0; i < n; i++) {
    r.direct.push(await get(path.join(dir, 'd.sock'), '/v1.41/version', false));
    r.forwarded.push(await get(path.join(dir, 'f.sock'), '/v1.41/version', false));
    r.forwardedKeepAlive.push(await get(path.join(dir, 'f.sock'), '/v1.41/version', keep));
  }
  keep.destroy();
  await fwd.close();
  session.close();
  await guest.close();
  dockerd.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return r;
}
