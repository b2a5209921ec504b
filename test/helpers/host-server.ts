/**
 * A server on the host's loopback for the host.docker.internal tests
 * (ports.test.ts: QEMU's own way; registries.test.ts: the engine's relay),
 * and how a container of the busybox test image asks for it by name: its
 * static busybox cannot load glibc's resolver modules (its wget crashes),
 * so its own nslookup asks the container's DNS, as any libc does, and nc
 * speaks HTTP to the address.
 */
import http from 'node:http';
import type net from 'node:net';

export interface HostServer {
  port: number;
  /** A `sh -c` script for a container: prints the address NAME resolves to, then the body the server sent. */
  viaDns(name: string): string;
  close(): void;
}

/** An HTTP server on 127.0.0.1 that answers every request with "from the host". */
export async function startHostServer(): Promise<HostServer> {
  const server = http.createServer((_req, res) => res.end('from the host\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    viaDns: (name) =>
      `a=$(nslookup -type=a ${name} | awk '/^Address: / { a = $2 } END { print a }'); echo "$a"; ` +
      `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 "$a" ${port} | tail -n 1`,
    close: () => server.close(),
  };
}
