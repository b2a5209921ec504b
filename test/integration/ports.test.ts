/**
 * Automatic port forwarding with a real VM and the real docker CLI:
 * published ports appear on the host's loopback and go with their
 * container, guest processes are forwarded too, conflicts are reported and
 * retried, UDP works, many connections and many ports at once hold. And
 * the way back: host.docker.internal reaches a server on the host's loopback.
 * Times are printed, not asserted: `npm run bench` measures them.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, gatedSuite, needNow, test } from '../helpers/prereq-gate.js';
import { sleep, waitFor } from '../../app/base/process-util.js';
import { busyboxRootfsTar } from '../helpers/busybox-rootfs.js';
import { buildFixture, echoRoundTrip, timeUntil } from '../helpers/net-probe.js';
import { run } from '../helpers/run.js';
import { ensureImage, vmPrereqProblem } from './prereqs.js';
import { vmFixture } from './vm-fixture.js';
import { startHostServer } from '../helpers/host-server.js';

const problem = vmPrereqProblem();

/** GET / on a host port; the status code, or undefined when nothing answers. */
function httpStatus(port: number, host = '127.0.0.1'): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/', agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/** True once a TCP connect to host:port is refused. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection({ host: '127.0.0.1', port });
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
}

/** A busybox applet run in the background in the guest, its pid in /tmp/NAME.pid. */
function guestDaemon(name: string, applet: string): string {
  return `/bin/busybox ${applet} </dev/null >/dev/null 2>&1 & echo $! > /tmp/${name}.pid`;
}

gatedSuite('port forwarding with a real VM', problem, { timeout: 30 * 60_000 }, () => {
  const vm = vmFixture('bp');
  const { ok } = vm;
  let echoServer: string | undefined;
  let echoProblem: string | undefined;
  let agentList: string | undefined;
  let agentProblem: string | undefined;
  let agentPid: number | undefined;

  before(async () => {
    await ensureImage();
    // The host's SSH agent, with one key, for the engine to forward.
    const agentSock = path.join(vm.dir, 'agent.sock');
    const key = path.join(vm.dir, 'agent-key');
    const tool = (cmd: string, args: string[], env?: NodeJS.ProcessEnv) =>
      run(cmd, args, { env }).catch((err: Error) => ({ code: 1, stdout: '', stderr: `${cmd}: ${err.message}` }));
    const agent = await tool('ssh-agent', ['-a', agentSock, '-s']);
    agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(agent.stdout)?.[1]) || undefined;
    const keygen = await tool('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'berth-test-key', '-f', key]);
    const add = await tool('ssh-add', ['-q', key], { ...process.env, SSH_AUTH_SOCK: agentSock });
    if (agent.code || keygen.code || add.code) agentProblem = `no SSH agent with a key on this host: ${agent.stderr}${keygen.stderr}${add.stderr}`.trim();
    else vm.env.SSH_AUTH_SOCK = agentSock;
    const r = await vm.berth(['start'], { timeoutMs: 10 * 60_000 });
    assert.equal(r.code, 0, r.stderr);
    // The test image: busybox, plus a static TCP/UDP echo server and an
    // `ssh-add -l` (agent-list) built here.
    ({ bin: echoServer, problem: echoProblem } = buildFixture('echo-server', vm.dir));
    const built = buildFixture('agent-list', vm.dir);
    agentList = built.bin;
    agentProblem ??= built.problem;
    const tarFile = busyboxRootfsTar(vm.dir, undefined, {
      ...(echoServer ? { 'bin/echo-server': echoServer } : {}),
      ...(agentList ? { 'bin/agent-list': agentList } : {}),
    });
    const imp = await run('docker', ['import', tarFile, 'bbp:1'], { env: vm.env, timeoutMs: 180_000 });
    assert.equal(imp.code, 0, imp.stderr);
  });

  after(async () => {
    await vm.cleanup();
    if (agentPid) process.kill(agentPid, 'SIGTERM');
  });

  const portsJson = async () =>
    JSON.parse((await vm.berth(['ports', '--json'])).stdout) as {
      ports: { proto: string; hostPort: number; hostIps: string[]; state: string; source: string; error?: string; holder?: { pid?: number } }[];
    };

  test('docker run -p: the port answers on the host, and closes when the container goes', async () => {
    await ok(['run', '-d', '--name', 'web', '-p', '18080:80', 'bbp:1', 'httpd', '-f', '-p', '80', '-h', '/www']);
    await timeUntil('first answer on 127.0.0.1:18080 after docker run returned', async () => (await httpStatus(18080)) === 200);
    assert.equal(await httpStatus(18080, '::1'), 200, 'IPv6 loopback too');
    const p = (await portsJson()).ports.find((x) => x.hostPort === 18080)!;
    assert.equal(p.source, 'docker');
    assert.deepEqual(p.hostIps, ['127.0.0.1', '::1'], 'loopback only by default');
    await ok(['rm', '-f', 'web']);
    await timeUntil('port 18080 closed after docker rm -f returned', () => refused(18080));
  });

  test('a port opened in the guest without Docker is forwarded, and released when it closes', async () => {
    const r = await vm.berth(['shell', '--', 'sh', '-c', guestDaemon('h1', 'httpd -f -p 18081 -h /etc')]);
    assert.equal(r.code, 0, r.stderr);
    await timeUntil('guest httpd on 18081 reachable from the host', async () => (await httpStatus(18081)) !== undefined);
    const p = (await portsJson()).ports.find((x) => x.hostPort === 18081)!;
    assert.equal(p.source, 'guest');
    await vm.berth(['shell', '--', 'sh', '-c', 'kill $(cat /tmp/h1.pid)']);
    await timeUntil('port 18081 closed after the guest process exited', () => refused(18081));
  });

  test('a host port already in use is reported with its holder, and taken once it frees up', async () => {
    const holder = spawn(process.execPath, ['-e', "require('net').createServer().listen(18082, '127.0.0.1', () => console.log('up'))"]);
    await new Promise((r) => holder.stdout.once('data', r));
    try {
      await ok(['run', '-d', '--name', 'busy', '-p', '18082:80', 'bbp:1', 'httpd', '-f', '-p', '80', '-h', '/www']);
      await timeUntil('conflict reported', async () => (await portsJson()).ports.some((x) => x.hostPort === 18082 && x.state === 'conflict'));
      const p = (await portsJson()).ports.find((x) => x.hostPort === 18082)!;
      assert.match(p.error ?? '', /already in use/);
      assert.equal(p.holder?.pid, holder.pid, 'the holding process is named');
      const human = (await vm.berth(['ports'])).stdout;
      assert.match(human, /18082.*conflict.*already in use/);
    } finally {
      holder.kill();
    }
    await timeUntil('port 18082 taken over after the holder exited', async () => (await httpStatus(18082)) === 200);
    await ok(['rm', '-f', 'busy']);
  });

  test('-p 127.0.0.1:X:Y stays on loopback even when ports may listen on all interfaces', async () => {
    assert.equal((await vm.berth(['settings', 'set', 'portBind=all'])).code, 0);
    try {
      await ok(['run', '-d', '--name', 'two', '-p', '127.0.0.1:18083:80', '-p', '18086:80', 'bbp:1', 'httpd', '-f', '-p', '80', '-h', '/www']);
      await timeUntil('both ports forwarded', async () => {
        const ps = (await portsJson()).ports;
        return ps.some((x) => x.hostPort === 18083 && x.state === 'active') && ps.some((x) => x.hostPort === 18086 && x.state === 'active');
      });
      const ps = (await portsJson()).ports;
      assert.deepEqual(ps.find((x) => x.hostPort === 18083)!.hostIps, ['127.0.0.1', '::1']);
      assert.deepEqual(ps.find((x) => x.hostPort === 18086)!.hostIps, ['0.0.0.0', '::']);
      assert.equal(await httpStatus(18083), 200);
    } finally {
      assert.equal((await vm.berth(['settings', 'set', 'portBind=loopback'])).code, 0);
    }
    await timeUntil('back on loopback only', async () => (await portsJson()).ports.find((x) => x.hostPort === 18086)?.hostIps[0] === '127.0.0.1');
    await ok(['rm', '-f', 'two']);
  });

  test('-p X:Y/udp: datagrams reach the container and the replies come back', async (t) => {
    if (needNow(t, echoProblem)) return;
    await ok(['run', '-d', '--name', 'udp', '-p', '18084:5353/udp', 'bbp:1', 'echo-server', 'udp', '5353']);
    await timeUntil('udp port forwarded', async () => (await portsJson()).ports.some((x) => x.hostPort === 18084 && x.proto === 'udp' && x.state === 'active'));
    const sock = dgram.createSocket('udp4');
    try {
      const replies: string[] = [];
      sock.on('message', (m) => replies.push(m.toString()));
      await timeUntil(
        'a UDP reply arrives',
        async () => {
          sock.send(`ping-${replies.length}`, 18084, '127.0.0.1');
          await sleep(200);
          return replies.length > 0;
        },
        30_000,
      );
      // Pings sent while the forward came up may still be answered late
      // (UDP neither drops nor orders them for us); only the burst counts.
      const burst = () => replies.filter((r) => r.startsWith('echo:n'));
      for (let i = 0; i < 20; i++) sock.send(`n${i}`, 18084, '127.0.0.1');
      await waitFor(() => burst().length >= 20, 10_000);
      await sleep(200);
      assert.deepEqual(burst().sort(), Array.from({ length: 20 }, (_, i) => `echo:n${i}`).sort());
    } finally {
      sock.close();
    }
    await ok(['rm', '-f', 'udp']);
  });

  test('50 concurrent connections with 1 MiB each way arrive intact', async (t) => {
    // busybox nc's listen backlog drops a burst of 50 connects inside the
    // container (SYN cookies), which would test nc, not Berth.
    if (needNow(t, echoProblem)) return;
    await ok(['run', '-d', '--name', 'echo', '-p', '18085:7', 'bbp:1', 'echo-server', 'tcp', '7']);
    await timeUntil('echo port forwarded', async () => (await echoRoundTrip(18085, Buffer.from('x')).catch(() => Buffer.alloc(0))).toString() === 'x');
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        const data = crypto.randomBytes(1 << 20);
        const back = await echoRoundTrip(18085, data);
        assert.equal(back.length, data.length);
        assert.ok(back.equals(data), 'echoed bytes differ');
      }),
    );
    process.stdout.write(`# 50 x 1 MiB echoed in ${Math.round(performance.now() - t0)} ms\n`);
  });

  test('a container publishing 20 ports at once: all 20 answer', async () => {
    await ok([
      'run',
      '-d',
      '--name',
      'many',
      '-p',
      '18100-18119:8000-8019',
      'bbp:1',
      'sh',
      '-c',
      'for p in $(seq 8000 8019); do httpd -p $p -h /www; done; exec sleep 100000',
    ]);
    await timeUntil(
      'all 20 ports answer',
      async () => (await Promise.all(Array.from({ length: 20 }, (_, i) => httpStatus(18100 + i)))).every((s) => s === 200),
      30_000,
    );
    await ok(['rm', '-f', 'many']);
    await timeUntil('all 20 released', async () => (await Promise.all(Array.from({ length: 20 }, (_, i) => refused(18100 + i)))).every(Boolean));
  });

  test('manual forwards: berth port add and rm, kept in settings', async () => {
    // A guest service on 18091 (auto-forwarded as 18091), and by hand host 18090 -> guest 18091.
    assert.equal((await vm.berth(['shell', '--', 'sh', '-c', guestDaemon('h2', 'httpd -f -p 18091 -h /etc')])).code, 0);
    const r = await vm.berth(['port', 'add', '18090:18091']);
    assert.equal(r.code, 0, r.stderr);
    const settings = JSON.parse(fs.readFileSync(path.join(vm.inst, 'settings.json'), 'utf8'));
    assert.deepEqual(settings.ports, [{ hostPort: 18090, guestPort: 18091, proto: 'tcp' }]);
    const p = (await portsJson()).ports.find((x) => x.hostPort === 18090)!;
    assert.equal(p.source, 'manual');
    assert.equal(p.state, 'active');
    await timeUntil('manual forward answers', async () => (await httpStatus(18090)) !== undefined);
    assert.equal((await vm.berth(['port', 'rm', '18090'])).code, 0);
    await timeUntil('manual forward removed', () => refused(18090));
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(vm.inst, 'settings.json'), 'utf8')).ports, []);
    const bad = await vm.berth(['port', 'add', '70000:1']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /BAD_REQUEST|INVALID_SETTINGS/);
    assert.equal((await vm.berth(['port', 'add', 'nonsense'])).code, 2);
    assert.equal((await vm.berth(['port', 'rm', '18090'])).code, 1, 'removing what is not there is an error');
    await vm.berth(['shell', '--', 'sh', '-c', 'kill $(cat /tmp/h2.pid)']);
  });

  test("host.docker.internal, gateway.docker.internal and --add-host NAME:host-gateway reach the host's loopback, from containers and the guest", async () => {
    const server = await startHostServer();
    const { port } = server;
    const fromContainer = async (args: string[], name: string) =>
      (await ok(['run', '--rm', ...args, 'bbp:1', 'sh', '-c', server.viaDns(name)])).trim().split('\n');
    try {
      for (const name of ['host.docker.internal', 'gateway.docker.internal']) {
        const [addr, body] = await fromContainer([], name);
        assert.match(addr ?? '', /^\d+\.\d+\.\d+\.\d+$/, `${name} resolves in a container on the default bridge`);
        assert.equal(body, 'from the host', `${name}: the host's server answers`);
      }
      // A user network's containers ask Docker's embedded DNS, which asks the guest's.
      await ok(['network', 'create', 'hdi']);
      try {
        assert.equal((await fromContainer(['--network', 'hdi'], 'host.docker.internal'))[1], 'from the host', 'on a user network');
      } finally {
        await ok(['network', 'rm', 'hdi']);
      }
      // host-gateway is the same address, written into the container's /etc/hosts.
      const hosts = await ok(['run', '--rm', '--add-host', 'laptop:host-gateway', 'bbp:1', 'sh', '-c', `awk '$2 == "laptop" { print $1 }' /etc/hosts`]);
      const [addr] = await fromContainer([], 'host.docker.internal');
      assert.equal(hosts.trim(), addr, 'host-gateway is the address host.docker.internal has');
      // The guest itself, with its own resolver (/etc/hosts).
      const guest = await vm.berth(['shell', '--', 'curl', '-sS', '--max-time', '10', `http://host.docker.internal:${port}/`], { timeoutMs: 60_000 });
      assert.equal(guest.stdout.trim(), 'from the host', guest.stderr);
    } finally {
      server.close();
    }
  });

  test('forwards survive the ssh connection dropping while one is in use', async (t) => {
    if (needNow(t, echoProblem)) return;
    // A connection in use when the link drops ends; the forward itself stays
    // and the next connection works after the automatic reconnect.
    const inUse = net.createConnection({ host: '127.0.0.1', port: 18085 });
    await new Promise((r) => inUse.once('connect', r));
    inUse.on('error', () => undefined);
    const before = JSON.parse((await vm.berth(['status', '--json'])).stdout).session.connects as number;
    await vm.berth(['shell', '--', 'sh', '-c', '/bin/busybox killall sshd sshd-session']).catch(() => undefined);
    await timeUntil(
      'echo through the forward after the reconnect',
      async () => {
        const back = await echoRoundTrip(18085, Buffer.from('after')).catch(() => Buffer.alloc(0));
        return back.toString() === 'after';
      },
      60_000,
    );
    const after = JSON.parse((await vm.berth(['status', '--json'])).stdout).session.connects as number;
    assert.ok(after > before, `reconnected (${before} -> ${after})`);
    inUse.destroy();
    await ok(['rm', '-f', 'echo']);
  });
  test("the host's SSH agent at /run/host-services/ssh-auth.sock: owner-only, lists the host's keys in a container, and again after an ssh reconnect", async (t) => {
    if (needNow(t, agentProblem)) return;
    const mode = await vm.berth(['shell', '--', 'stat', '-c', '%a %U', '/run/host-services/ssh-auth.sock'], { timeoutMs: 60_000 });
    assert.equal(mode.stdout.trim(), '600 root', mode.stderr);
    assert.deepEqual(JSON.parse((await vm.berth(['status', '--json'])).stdout).sshAgent, { guestPath: '/run/host-services/ssh-auth.sock' });
    const list = () => ok(['run', '--rm', '-v', '/run/host-services/ssh-auth.sock:/agent.sock', '-e', 'SSH_AUTH_SOCK=/agent.sock', 'bbp:1', 'agent-list']);
    assert.equal((await list()).trim(), 'berth-test-key');
    const before = JSON.parse((await vm.berth(['status', '--json'])).stdout).session.connects as number;
    await vm.berth(['shell', '--', 'sh', '-c', '/bin/busybox killall sshd sshd-session']).catch(() => undefined);
    assert.ok(
      await waitFor(async () => JSON.parse((await vm.berth(['status', '--json'])).stdout).session.connects > before, 60_000, 500),
      'the engine reconnected',
    );
    await timeUntil('the agent listed again after the reconnect', async () => (await list().catch(() => '')).trim() === 'berth-test-key', 60_000);
  });
});
