import type { DockerApi } from '../docker/docker-api.js';
import type { GuestSession } from '../guest/session.js';

/**
 * Why the VM cannot rest now, or undefined when nothing is in use: no
 * connection to the host's docker socket (docker logs -f, builds and
 * attach are connections), no forwarded connection, no running container,
 * no shell (a terminal in the guest). A check that fails counts as busy.
 */
export async function busyReason(o: {
  /** Connections open on the host's docker socket. */
  dockerConnections: number;
  /** TCP connections open through the port forwards. */
  forwardedConnections: number;
  docker: DockerApi;
  session: GuestSession;
}): Promise<string | undefined> {
  const docker = o.dockerConnections;
  if (docker) return `${docker} docker connection${docker > 1 ? 's' : ''} open`;
  const fwd = o.forwardedConnections;
  if (fwd) return `${fwd} forwarded connection${fwd > 1 ? 's' : ''} open`;
  try {
    const running = await o.docker.request('GET', '/containers/json', undefined, 15_000);
    if (!Array.isArray(running)) return 'cannot tell whether containers run';
    if (running.length) return 'a container is running';
    // berth shell (and any ssh login) holds a terminal; the engine's own channels have none.
    const r = await o.session.exec("ls /dev/pts | grep -c '^[0-9]'", { timeoutMs: 15_000 });
    const shells = Number.parseInt(r.stdout.trim(), 10);
    if (!Number.isSafeInteger(shells)) return 'cannot tell whether a shell is open';
    if (shells > 0) return `${shells} shell${shells > 1 ? 's' : ''} open in the VM`;
  } catch (err) {
    return `cannot tell whether the VM is in use (${(err as Error).message.slice(0, 200)})`;
  }
  return undefined;
}
