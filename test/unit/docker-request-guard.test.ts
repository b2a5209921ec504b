/**
 * The docker request guard: only a container create that bind-mounts an
 * unshared host folder is refused; every other byte passes untouched,
 * whatever the framing (Content-Length, chunked, pipelined, upgraded).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DockerRequestGuard, bindSource, makeBindCheck } from '../../app/engine/forward/docker-request-guard.js';

const check = makeBindCheck(
  () => ['/home/me', '/Users/me/'],
  (p) => ['/srv/data', '/tmp/x', '/opt/y', '/etc/localtime'].some((h) => p === h || p.startsWith(`${h}/`)),
);

/** Push `input` through a guard in pieces of `step` bytes; what came out, and any answer. */
async function through(input: Buffer, step: number): Promise<{ out: Buffer; answer?: string }> {
  let answer: string | undefined;
  const g = new DockerRequestGuard(check, (r) => (answer = r));
  const parts: Buffer[] = [];
  g.on('data', (d: Buffer) => parts.push(d));
  for (let i = 0; i < input.length; i += step) g.write(input.subarray(i, i + step));
  g.end();
  await new Promise((r) => g.on('end', r));
  return { out: Buffer.concat(parts), answer };
}

const req = (method: string, p: string, body = '', headers: Record<string, string> = {}) => {
  const h = { Host: 'docker', ...headers, ...(body && !headers['Transfer-Encoding'] ? { 'Content-Length': String(Buffer.byteLength(body)) } : {}) };
  return Buffer.from(
    `${method} ${p} HTTP/1.1\r\n${Object.entries(h)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')}\r\n${body}`,
  );
};

test("the rule: shared folders and VM paths pass, unshared host folders do not, the rest is Docker's", () => {
  assert.equal(check('/home/me/src'), undefined);
  assert.equal(check('/Users/me'), undefined);
  assert.equal(check('/var/run/docker.sock'), undefined);
  assert.equal(check('/etc/localtime'), undefined, 'the VM has its own /etc');
  assert.equal(check('/made/up'), undefined, 'not on the host: Docker makes a folder in the VM, as usual');
  const r = check('/srv/data/x');
  assert.match(r!.message, /\/srv\/data\/x is not shared with the Berth VM/);
  assert.match(r!.hint, /berth share add \/srv\/data\/x/);
  assert.ok(check('/tmp/x'));
  assert.equal(bindSource('/a:/b:ro'), '/a');
  assert.equal(bindSource('vol:/b'), 'vol');
});

test('every framing passes byte for byte, in any chunking', async () => {
  const chunkedBody = '5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n';
  const input = Buffer.concat([
    req('HEAD', '/_ping'),
    req('POST', '/v1.41/containers/create?name=a', JSON.stringify({ Image: 'x', HostConfig: { Binds: ['/home/me/src:/src', 'vol:/v'] } })),
    req('POST', '/v1.41/build', chunkedBody, { 'Transfer-Encoding': 'chunked' }),
    req('GET', '/v1.41/containers/json'),
    req('POST', '/v1.41/containers/abc/attach?stream=1', '', { Connection: 'Upgrade', Upgrade: 'tcp' }),
    Buffer.from('raw bytes after the upgrade \r\n\r\n POST /containers/create HTTP/1.1\r\n\r\n'),
  ]);
  for (const step of [1, 7, 64, input.length]) {
    const r = await through(input, step);
    assert.equal(r.answer, undefined);
    assert.ok(r.out.equals(input), `step ${step}`);
  }
});

test('a create that binds an unshared host folder is answered 400 with the hint, and nothing reaches dockerd', async () => {
  for (const spec of [{ HostConfig: { Binds: ['/srv/data:/data'] } }, { HostConfig: { Mounts: [{ Type: 'bind', Source: '/opt/y/z', Target: '/z' }] } }]) {
    const input = Buffer.concat([req('HEAD', '/_ping'), req('POST', '/containers/create', JSON.stringify({ Image: 'x', ...spec }))]);
    const r = await through(input, 13);
    assert.match(r.answer!, /^HTTP\/1\.1 400 Bad Request\r\n/);
    const json = JSON.parse(r.answer!.split('\r\n\r\n')[1]!);
    assert.match(json.message, /is not shared with the Berth VM.*berth share add/);
    assert.ok(r.out.equals(req('HEAD', '/_ping')), 'only the ping went through');
  }
});

test('a body it cannot parse, or a head it cannot frame, is passed on untouched', async () => {
  const bad = Buffer.concat([req('POST', '/containers/create', '{not json'), req('GET', '/info')]);
  assert.ok((await through(bad, 5)).out.equals(bad));
  const weird = Buffer.from('POST /x HTTP/1.1\r\nContent-Length: banana\r\n\r\nwhatever follows');
  assert.ok((await through(weird, 3)).out.equals(weird));
});
