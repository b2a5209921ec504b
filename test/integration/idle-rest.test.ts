/**
 * The idle rest with a real VM (TCG here): with idleMinutes=0.25 the VM
 * rests 15 s after the last use and not before; `docker version` wakes it
 * with no error on the client's side; containers and volume data are kept;
 * a running container or an open docker connection (a `docker events`
 * stream, as `docker logs -f` or a build holds one) prevents the rest; a
 * docker command that arrives while the VM is stopping to rest is answered
 * after the wake; an open forwarded connection with no container running
 * prevents the rest, and the VM rests once it closes; several rest/wake
 * cycles lose nothing; `berth stop` while resting stops for real.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import type { VmStatus } from '../../app/contract/contract.js';
import { sleep } from '../../app/base/process-util.js';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import { busyboxRootfsTar } from '../helpers/busybox-rootfs.js';
import { ensureImage, vmPrereqProblem } from './prereqs.js';
import { vmFixture } from './vm-fixture.js';

const IDLE_S = 15;
/** A port for the guest's own echo service (forwarded to the host's loopback like any guest listener). */
const ECHO_PORT = 28561;

/**
 * A TCP connection to the host's 127.0.0.1:port that echoes: connect,
 * send a line, read it back. Refused or closed early (the forward is not
 * there yet, or the guest side is not listening yet): try again until
 * `timeoutMs`. Resolves with the open socket.
 */
async function openEcho(port: number, timeoutMs: number): Promise<net.Socket> {
  const end = Date.now() + timeoutMs;
  let lastErr = '';
  while (Date.now() < end) {
    const sock = net.connect({ host: '127.0.0.1', port });
    const echoed = await new Promise<boolean>((resolve) => {
      let got = '';
      const timer = setTimeout(() => resolve(false), 5000);
      const done = (v: boolean, why?: string) => {
        clearTimeout(timer);
        if (why) lastErr = why;
        resolve(v);
      };
      sock.on('connect', () => sock.write('ping\n'));
      sock.on('data', (d) => {
        got += d.toString();
        if (got === 'ping\n') done(true);
      });
      sock.on('error', (e) => done(false, e.message));
      sock.on('close', () => done(false, 'closed'));
    });
    if (echoed) return sock;
    sock.destroy();
    await sleep(500);
  }
  throw new Error(`no echo on 127.0.0.1:${port} within ${timeoutMs} ms (${lastErr})`);
}

/** Send a line on an open echo connection and read it back. */
function echo(sock: net.Socket, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => reject(new Error(`no echo of ${line} in 10 s`)), 10_000);
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.endsWith('\n')) {
        clearTimeout(timer);
        sock.off('data', onData);
        resolve(got);
      }
    };
    sock.on('data', onData);
    sock.write(`${line}\n`);
  });
}

gatedSuite('idle rest with a real VM', vmPrereqProblem(), { timeout: 30 * 60_000 }, () => {
  const vm = vmFixture('ir');
  const { env, sock, ok } = vm;

  const status = async (): Promise<VmStatus> => {
    const r = await vm.berth(['status', '--json'], { timeoutMs: 30_000 });
    return JSON.parse(r.stdout) as VmStatus;
  };
  /** Poll until the state is `state`; returns when it was first seen. */
  const until = async (state: string, timeoutMs: number): Promise<number> => {
    const end = Date.now() + timeoutMs;
    let last: VmStatus | undefined;
    while (Date.now() < end) {
      last = await status();
      if (last.state === state) return Date.now();
      await sleep(500);
    }
    throw new Error(`no ${state} within ${timeoutMs} ms: ${JSON.stringify(last?.rest)} (state ${last?.state})\n${vm.logTail()}`);
  };

  before(async () => {
    await ensureImage();
  });
  after(() => vm.cleanup());

  let lastUse = 0;

  test('set up: idleMinutes=0.25, start, an image, a volume with data, a stopped container', async () => {
    const set = await vm.berth(['settings', 'set', `idleMinutes=${IDLE_S / 60}`]);
    assert.equal(set.code, 0, set.stderr);
    const r = await vm.berth(['start'], { timeoutMs: 10 * 60_000 });
    assert.equal(r.code, 0, r.stderr);
    await ok(['import', busyboxRootfsTar(vm.dir), 'bb:1']);
    await ok(['run', '--rm', '-v', 'keep:/data', 'bb:1', 'sh', '-c', 'echo persisted > /data/f']);
    await ok(['create', '--name', 'kept', 'bb:1', 'true']);
    lastUse = Date.now();
  });

  test(`rests ${IDLE_S} s after the last use, not before, and the socket stays`, async () => {
    const rested = await until('resting', 3 * 60_000);
    assert.ok(rested - lastUse >= IDLE_S * 1000, `rested ${rested - lastUse} ms after the last docker command`);
    const s = await status();
    assert.equal(s.rest?.rests, 1);
    assert.equal(s.vmPid, undefined, 'no VM process while resting');
    assert.ok(fs.existsSync(sock), 'the docker socket still listens');
    const human = await vm.berth(['status']);
    assert.equal(human.code, 0, 'resting is in service: status exits 0');
    assert.match(human.stdout, /resting since .*the next docker command wakes it/);
  });

  test('docker version wakes it and succeeds; the container and the volume data are still there', async () => {
    const out = await ok(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 10 * 60_000 });
    assert.match(out.trim(), /^\d+\.\d+/);
    const s = await status();
    assert.equal(s.state, 'running');
    assert.equal(s.rest?.wakes, 1);
    assert.ok(s.rest?.lastWakeMs !== undefined && s.rest.lastWakeMs > 0);
    assert.match(await ok(['ps', '-a', '--filter', 'name=kept', '--format', '{{.Names}} {{.State}}']), /kept (exited|created)/);
    assert.equal((await ok(['run', '--rm', '-v', 'keep:/data', 'bb:1', 'cat', '/data/f'])).trim(), 'persisted');
  });

  test('a running container prevents the rest', async () => {
    await ok(['run', '-d', '--name', 'sleeper', 'bb:1', 'sleep', '3600']);
    await sleep((IDLE_S + 15) * 1000);
    const s = await status();
    assert.equal(s.state, 'running');
    assert.match(s.rest?.busy ?? '', /container is running/);
    await ok(['rm', '-f', 'sleeper']);
  });

  test('an open docker connection (a docker events stream) prevents the rest', async () => {
    const events = spawn('docker', ['events'], { env, stdio: 'ignore' });
    try {
      await sleep((IDLE_S + 15) * 1000);
      const s = await status();
      assert.equal(s.state, 'running');
      assert.match(s.rest?.busy ?? '', /docker connection/);
    } finally {
      events.kill();
    }
  });

  test('a docker command that arrives while the VM stops to rest is answered after the wake', async () => {
    await until('stopping', 3 * 60_000);
    const out = await ok(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 10 * 60_000 });
    assert.match(out.trim(), /^\d+\.\d+/);
    const s = await status();
    assert.equal(s.state, 'running');
    assert.equal(s.rest?.rests, 2);
    assert.equal(s.rest?.wakes, 2);
  });

  test('an open forwarded connection with no container running prevents the rest; once it closes the VM rests', async () => {
    assert.equal((await ok(['ps', '-q'])).trim(), '', 'no container runs');
    const restsBefore = (await status()).rest?.rests ?? 0;
    // While the service is set up, a docker events stream keeps the VM up;
    // it closes before the forwarded connection is the only thing open.
    const events = spawn('docker', ['events'], { env, stdio: 'ignore' });
    // An echo service in the guest itself, not in a container: the engine
    // forwards it from the guest's socket table. Detached (its own session,
    // no terminal, stdio closed), so the shell that starts it ends at once.
    const server =
      'use strict; use IO::Socket::IP; use POSIX (); exit 0 if fork; POSIX::setsid(); ' +
      `my $s = IO::Socket::IP->new(LocalHost => "127.0.0.1", LocalPort => ${ECHO_PORT}, Listen => 8, ReuseAddr => 1) or die "listen: $!"; ` +
      'while (my $c = $s->accept) { if (!fork) { my $b; while (sysread($c, $b, 4096)) { syswrite($c, $b) } exit 0 } close $c }';
    let conn: net.Socket;
    try {
      const started = await vm.berth(['shell', '--', 'sh', '-c', `perl -e '${server}' </dev/null >/dev/null 2>&1`], { timeoutMs: 60_000 });
      assert.equal(started.code, 0, started.stderr);
      conn = await openEcho(ECHO_PORT, 60_000);
    } finally {
      events.kill();
    }
    let closedAt = 0;
    try {
      await sleep((IDLE_S + 15) * 1000);
      const s = await status();
      assert.equal(s.state, 'running', `rested with a forwarded connection open (${JSON.stringify(s.rest)})`);
      assert.match(s.rest?.busy ?? '', /^1 forwarded connection open$/);
      assert.equal(await echo(conn, 'still here'), 'still here\n', 'the connection was open all along');
    } finally {
      conn.destroy();
      closedAt = Date.now();
    }
    const rested = await until('resting', 3 * 60_000);
    // Idle is counted from the last check that saw the connection (a
    // quarter of the idle time at most before the close), not from when
    // it was opened: the rest comes the idle time after the close.
    assert.ok(rested - closedAt >= (IDLE_S * 1000 * 3) / 4, `rested ${rested - closedAt} ms after the connection closed`);
    assert.equal((await status()).rest?.rests, restsBefore + 1);
  });

  test('two more rest/wake cycles lose nothing', async () => {
    for (let i = 0; i < 2; i++) {
      await until('resting', 3 * 60_000);
      assert.equal((await ok(['run', '--rm', '-v', 'keep:/data', 'bb:1', 'cat', '/data/f'], { timeoutMs: 10 * 60_000 })).trim(), 'persisted');
    }
    const s = await status();
    assert.equal(s.rest?.wakes, 4);
  });

  test('berth stop while resting: stopped, the socket and the engine gone', async () => {
    await until('resting', 3 * 60_000);
    const r = await vm.berth(['stop'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    await sleep(2000);
    assert.ok(!fs.existsSync(sock), 'docker socket removed');
    const st = await vm.berth(['status', '--json']);
    assert.equal(JSON.parse(st.stdout).state, 'stopped');
  });
});
