import http from 'node:http';

/** GET /_ping on a docker socket: the body dockerd answers ("OK"). */
export function dockerPing(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: '/_ping', agent: false }, (res) => {
        let b = '';
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve(b));
      })
      .on('error', reject);
  });
}
