/**
 * Registries on the host with a real VM (issue 17 item 4): Debian's
 * docker-registry on the host's loopback, reached from the guest's dockerd
 * as host.docker.internal. One plain-HTTP registry named in
 * insecureRegistries and one that is not; one TLS registry whose
 * certificate comes from a CA given in caCertificates (with a login), and
 * one from a CA that is not. httpProxy/httpsProxy name a counting proxy on
 * the host's 127.0.0.1, which the engine points the guest at, for dockerd
 * and, through the docker CLI's config, for containers and builds.
 *
 * This instance reaches the host's loopback the way vfkit and Hyper-V
 * guests do (BERTH_HOST_RELAY=1: the guest's own address for the host,
 * relayed by the engine over ssh, forward/host-relay.ts), so the relay is
 * proven on a real guest kernel with its iptables; ports.test.ts proves
 * QEMU's own way (10.0.2.2).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import { busyboxRootfsTar } from '../helpers/busybox-rootfs.js';
import { makeCa, registryToolsProblem, serverCert, startCountingProxy, startRegistry, type CountingProxy, type Registry } from '../helpers/registry.js';
import { ensureImage, vmPrereqProblem } from './prereqs.js';
import { vmFixture } from './vm-fixture.js';
import { freeLoopbackPort } from '../../app/base/process-util.js';
import { HOST_RELAY_ADDRESS } from '../../app/engine/drivers/driver.js';
import { startHostServer } from '../helpers/host-server.js';

const problem = vmPrereqProblem() ?? registryToolsProblem();
const HDI = 'host.docker.internal';

gatedSuite('registries on the host with a real VM', problem, { timeout: 30 * 60_000 }, () => {
  const vm = vmFixture('brg', { BERTH_HOST_RELAY: '1' });
  const { ok } = vm;
  const regs: Record<'plain' | 'plainUnlisted' | 'tls' | 'tlsUntrusted', Registry> = {} as never;
  let proxy: CountingProxy;

  before(async () => {
    await ensureImage();
    const pki = path.join(vm.dir, 'pki');
    fs.mkdirSync(path.join(pki, 'trusted'), { recursive: true });
    // The trusted CA is given as a folder (its .pem inside); the other CA is not given at all.
    const ca = makeCa(path.join(pki, 'trusted'), 'Berth Test CA');
    const other = makeCa(pki, 'Unknown CA');
    regs.plain = await startRegistry(path.join(vm.dir, 'r-plain'));
    regs.plainUnlisted = await startRegistry(path.join(vm.dir, 'r-plain2'));
    regs.tls = await startRegistry(path.join(vm.dir, 'r-tls'), { tls: serverCert(pki, ca, 'tls', HDI), users: { berth: 'harbour-pass' } });
    regs.tlsUntrusted = await startRegistry(path.join(vm.dir, 'r-tls2'), { tls: serverCert(pki, other, 'tls2', HDI) });
    fs.rmSync(ca.key);
    proxy = await startCountingProxy();
    const set = await vm.berth([
      'settings',
      'set',
      `insecureRegistries=${HDI}:${regs.plain.port}`,
      `caCertificates=${path.join(pki, 'trusted')}`,
      `httpProxy=http://127.0.0.1:${proxy.port}`,
      `httpsProxy=http://127.0.0.1:${proxy.port}`,
    ]);
    assert.equal(set.code, 0, set.stderr);
    const r = await vm.berth(['start'], { timeoutMs: 10 * 60_000 });
    assert.equal(r.code, 0, r.stderr);
    await ok(['import', busyboxRootfsTar(vm.dir), 'bbr:1']);
  });

  after(async () => {
    await vm.cleanup();
    for (const r of Object.values(regs)) r.stop();
    await proxy?.close();
  });

  test("host.docker.internal through the engine's relay: a server on the host's loopback answers from containers (default bridge, a user network, --add-host host-gateway) and from the guest; status says so", async () => {
    const server = await startHostServer();
    const { port } = server;
    const fromContainer = async (args: string[], name: string) =>
      (await ok(['run', '--rm', ...args, 'bbr:1', 'sh', '-c', server.viaDns(name)])).trim().split('\n');
    try {
      for (const name of [HDI, 'gateway.docker.internal']) assert.deepEqual(await fromContainer([], name), [HOST_RELAY_ADDRESS, 'from the host'], name);
      await ok(['network', 'create', 'hdi']);
      try {
        assert.deepEqual(await fromContainer(['--network', 'hdi'], HDI), [HOST_RELAY_ADDRESS, 'from the host'], 'on a user network');
      } finally {
        await ok(['network', 'rm', 'hdi']);
      }
      const hosts = await ok(['run', '--rm', '--add-host', 'laptop:host-gateway', 'bbr:1', 'sh', '-c', `awk '$2 == "laptop" { print $1 }' /etc/hosts`]);
      assert.equal(hosts.trim(), HOST_RELAY_ADDRESS, 'host-gateway is the relay address');
      const guest = await vm.berth(['shell', '--', 'curl', '-sS', '--max-time', '10', `http://${HDI}:${port}/`], { timeoutMs: 60_000 });
      assert.equal(guest.stdout.trim(), 'from the host', guest.stderr);
      // A port where nothing listens on the host closes at once, not hung.
      const free = await freeLoopbackPort();
      const closed = await vm.berth(['shell', '--', 'curl', '-sS', '--max-time', '10', `http://${HDI}:${free}/`], { timeoutMs: 60_000 });
      assert.notEqual(closed.code, 0);
      assert.doesNotMatch(closed.stderr, /timed out/i, closed.stderr);
      const st = JSON.parse((await vm.berth(['status', '--json'])).stdout);
      assert.deepEqual(st.hostLoopback, { address: HOST_RELAY_ADDRESS });
      assert.match(
        (await vm.berth(['status'])).stdout,
        new RegExp(`host loopback +host\\.docker\\.internal is ${HOST_RELAY_ADDRESS.replace(/\./g, '\\.')}, relayed by Berth`),
      );
    } finally {
      server.close();
    }
  });

  /** Push IMAGE as NAME, remove it here, pull it back and run it. */
  const roundTrip = async (name: string) => {
    await ok(['tag', 'bbr:1', name]);
    await ok(['push', name], { timeoutMs: 300_000 });
    await ok(['rmi', name]);
    assert.equal((await vm.docker(['image', 'inspect', name])).code, 1, 'gone before the pull');
    await ok(['pull', name], { timeoutMs: 300_000 });
    assert.equal((await ok(['run', '--rm', name, 'echo', 'pulled back'])).trim(), 'pulled back');
  };

  test('an insecure registry from the settings: push over plain HTTP, rmi, pull back, run; through the proxy', async () => {
    const name = `${HDI}:${regs.plain.port}/berth/bb:http`;
    await roundTrip(name);
    assert.ok(
      proxy.requests.some((r) => r.startsWith(`GET http://${HDI}:${regs.plain.port}/v2/`)),
      `the proxy carried the pull: ${proxy.requests.slice(-10).join(', ')}\n${regs.plain.log().slice(-1500)}`,
    );
  });

  test('a plain-HTTP registry not in insecureRegistries is refused by dockerd', async () => {
    const name = `${HDI}:${regs.plainUnlisted.port}/berth/bb:no`;
    await ok(['tag', 'bbr:1', name]);
    const r = await vm.docker(['push', name], { timeoutMs: 300_000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /server gave HTTP response to HTTPS client/);
  });

  test('a TLS registry with a CA from caCertificates: docker login, push, rmi, pull back, run; tunnelled by the proxy', async () => {
    const host = `${HDI}:${regs.tls.port}`;
    const denied = await vm.docker(['pull', `${host}/berth/bb:tls`]);
    assert.match(denied.stderr, /no basic auth credentials|unauthorized/, 'logins are required');
    const login = await vm.docker(['login', host, '-u', 'berth', '--password-stdin'], { input: 'harbour-pass\n' });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /Login Succeeded/);
    await roundTrip(`${host}/berth/bb:tls`);
    assert.ok(proxy.requests.includes(`CONNECT ${host}`), `the proxy tunnelled the TLS registry: ${proxy.requests.slice(-10).join(', ')}`);
  });

  test('a TLS registry whose CA was not given: the pull fails on the certificate', async () => {
    const r = await vm.docker(['pull', `${HDI}:${regs.tlsUntrusted.port}/berth/bb:x`], { timeoutMs: 120_000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /x509: certificate signed by unknown authority/);
  });

  test("containers and builds get the proxies through the docker CLI's config, for Berth's socket only", async () => {
    const want = `http://${HOST_RELAY_ADDRESS}:${proxy.port}`;
    const env = await ok(['run', '--rm', 'bbr:1', 'env']);
    for (const name of ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy']) assert.match(env, new RegExp(`^${name}=${want}$`, 'm'), env);
    const ctx = path.join(vm.dir, 'build-ctx');
    fs.mkdirSync(ctx, { recursive: true });
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM bbr:1\nRUN echo "proxy=$HTTPS_PROXY" > /built-with\n');
    await ok(['build', '-t', 'bbr-built:1', ctx], { timeoutMs: 300_000 });
    assert.equal((await ok(['run', '--rm', 'bbr-built:1', 'cat', '/built-with'])).trim(), `proxy=${want}`);
    const cfg = JSON.parse(fs.readFileSync(path.join(vm.env.DOCKER_CONFIG!, 'config.json'), 'utf8'));
    assert.deepEqual(Object.keys(cfg.proxies), [`unix://${vm.sock}`], "Berth's socket is the only key");
  });

  test("the guest's dockerd has the proxy at the host's loopback as the guest reaches it, and the settings say restart", async () => {
    const env = (await vm.berth(['shell', '--', 'sh', '-c', '/bin/busybox tr "\\0" "\\n" < /proc/$(/bin/busybox pidof dockerd)/environ'])).stdout;
    assert.match(env, new RegExp(`^HTTP_PROXY=http://${HOST_RELAY_ADDRESS.replace(/\./g, '\\.')}:${proxy.port}$`, 'm'));
    assert.match(env, /^SSL_CERT_FILE=\/run\/berth\/ca-bundle\.crt$/m);
    const r = await vm.berth(['settings', 'set', 'noProxy=localhost']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /restart/i);
  });
});
