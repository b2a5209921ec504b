/**
 * The real thing: `berth start` boots the guest under QEMU (TCG here), and
 * the real docker CLI talks to it through the forwarded socket. One VM for
 * the whole file; the tests run in order and build on each other.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import { formatBootTimeline } from '../../app/cli/boot-timeline-format.js';
import { BOOT_STEPS } from '../../app/contract/boot-timeline.js';
import type { VmStatus } from '../../app/contract/contract.js';
import { pidAlive, sleep, waitFor } from '../../app/base/process-util.js';
import { configuredGuestArch, debianArch } from '../../app/engine/image/recipe.js';
import { busyboxRootfsTar } from '../helpers/busybox-rootfs.js';
import { run } from '../helpers/run.js';
import { ensureImage, vmPrereqProblem } from './prereqs.js';
import { vmFixture } from './vm-fixture.js';

const problem = vmPrereqProblem();

gatedSuite('berth with a real VM', problem, { timeout: 30 * 60_000 }, () => {
  const vm = vmFixture('bi');
  const { env, inst, sock, ok, qemuPid } = vm;
  const berth = vm.berth;
  const t = { dir: vm.dir };

  before(async () => {
    await ensureImage();
    // No SSH agent on this "host" (ports.test.ts starts one).
    delete env.SSH_AUTH_SOCK;
  });

  after(() => vm.cleanup());

  test('berth start boots the VM and prints how to use the docker socket', async () => {
    // A usual login umask: the engine and QEMU must not rely on it (the walk below).
    const umask = process.umask(0o022);
    const r = await berth(['start'], { timeoutMs: 10 * 60_000 }).finally(() => process.umask(umask));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Berth is running/);
    assert.ok(r.stdout.includes(`export DOCKER_HOST=unix://${sock}`), r.stdout);
    assert.match(r.stderr, /booting the VM/);
    assert.match(r.stdout, /Boot timeline[^\n]*\n(.*\n)*.*Docker API listening +guest\n/, 'the start says where its time went');
    assert.equal(fs.statSync(sock).mode & 0o777, 0o600, 'the docker socket is owner-only');
  });

  test('a start with a 022 umask; every path under BERTH_HOME walked: all folders 0700, all files and sockets 0600', () => {
    const home = path.dirname(inst);
    const seen: string[] = [];
    const bad: string[] = [];
    const walk = (p: string) => {
      const st = fs.lstatSync(p);
      if (st.isSymbolicLink()) return;
      seen.push(path.relative(home, p));
      const mode = st.mode & 0o777;
      if (mode !== (st.isDirectory() ? 0o700 : 0o600)) bad.push(`${path.relative(home, p) || '.'} ${mode.toString(8)}`);
      if (st.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
    };
    walk(home);
    // What QEMU and virtiofsd made themselves is in the walk, not only the engine's own files.
    for (const f of ['qemu.pid', 'qmp.sock', 'serial.log', 'docker.sock', 'control.sock', 'engine.log', 'data.img']) {
      assert.ok(seen.includes(path.join('default', f)), `${f} is in the walk`);
    }
    const vfs = seen.filter((f) => f.startsWith(path.join('default', 'virtiofs') + path.sep));
    process.stdout.write(`# umask walk: ${seen.length} paths, ${vfs.length} of virtiofs (${vfs.join(', ') || 'no virtiofs share here'})\n`);
    assert.deepEqual(bad, [], 'paths others can read or enter, or files not 0600');
  });

  test("status --json has the start's boot timeline: every step, each after the ones it needs", async () => {
    const r = await berth(['status', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const tl = (JSON.parse(r.stdout) as VmStatus).bootTimeline ?? [];
    process.stdout.write(`# boot timeline:\n${formatBootTimeline(tl, '#   ').join('\n')}\n`);
    const at = new Map(tl.map((x) => [x.step, x]));
    for (const step of Object.keys(BOOT_STEPS)) assert.ok(at.has(step), `${step} is in the timeline: ${JSON.stringify(tl)}`);
    const times = tl.map((x) => x.atMs);
    assert.deepEqual(
      [...times].sort((a, b) => a - b),
      times,
      'listed in the order they happened',
    );
    // The guest's clock is placed on the engine's by one reading over ssh:
    // between the two clocks allow that reading's error; on one clock, none.
    const tolerance = (a: string, b: string) => (at.get(a)!.source === at.get(b)!.source ? 0 : 500);
    const after = (a: string, b: string) =>
      assert.ok(at.get(a)!.atMs <= at.get(b)!.atMs + tolerance(a, b), `${a} (${at.get(a)!.atMs} ms) before ${b} (${at.get(b)!.atMs} ms)`);
    const chain = (...steps: string[]) => steps.slice(1).forEach((s, i) => after(steps[i]!, s));
    chain(
      'vm-spawn',
      'vm-process-up',
      'kernel',
      'init',
      'root-mounted',
      'sysinit',
      'network-up',
      'data-disk-ready',
      'sysinit-done',
      'sshd-listening',
      'ssh-connected',
      'docker-ready',
      'socket-ready',
    );
    chain('sysinit-done', 'dockerd-launched', 'containerd-ready', 'docker-api-listening', 'docker-ready');
    assert.ok(
      tl.every((x) => x.atMs >= 0),
      'nothing before the start began',
    );
  });

  test('docker version shows both client and server: the guest runs Docker Engine 26 (API 1.45), containerd 1.7, Linux 6.12, and has the docker CLI', async () => {
    const out = await ok(['version', '--format', '{{.Client.Version}} / {{.Server.Version}} / {{.Server.APIVersion}} / {{.Server.Os}}']);
    assert.match(out.trim(), /^\S+ \/ 26\.\S+ \/ 1\.45 \/ linux$/);
    const guest = await berth([
      'shell',
      '--',
      'sh',
      '-c',
      "uname -r; containerd --version; . /etc/os-release; echo $VERSION_CODENAME; docker version --format '{{.Client.Version}} {{.Server.Version}}'",
    ]);
    // The guest's kernel package is Debian's for its architecture (BERTH_GUEST_ARCH=aarch64: arm64).
    const kernelArch = debianArch(configuredGuestArch());
    assert.match(
      guest.stdout,
      new RegExp(String.raw`^6\.12\.\S+-cloud-${kernelArch}\ncontainerd \S+ 1\.7\.\S+.*\ntrixie\n26\.\S+ 26\.\S+\n$`, 's'),
      guest.stdout,
    );
  });

  test('docker import of a busybox rootfs, then docker run --rm echo hi', async () => {
    const tarFile = busyboxRootfsTar(t.dir);
    const r = await run('docker', ['import', tarFile, 'bb:1'], { env, timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await ok(['run', '--rm', 'bb:1', 'echo', 'hi'])).trim(), 'hi');
  });

  test('stdin through docker run -i reaches the container and EOF ends it', async () => {
    assert.equal((await ok(['run', '--rm', '-i', 'bb:1', 'sh', '-c', 'cat; echo done'], { input: 'from-stdin\n' })).trim(), 'from-stdin\ndone');
  });

  test('docker run -t gets a terminal', async () => {
    assert.match(await ok(['run', '--rm', '-t', 'bb:1', 'tty']), /\/dev\/pts\/\d+/);
  });

  test('docker run -d, then docker logs -f streams', async () => {
    const id = (await ok(['run', '-d', '--name', 'ticker', 'bb:1', 'sh', '-c', 'i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done'])).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    const child = spawn('docker', ['logs', '-f', 'ticker'], { env });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const seen = await waitFor(() => /tick5/.test(out), 60_000, 100);
    child.kill();
    assert.ok(seen, `logs -f did not stream: ${out}`);
  });

  test('docker exec, and docker exec -i with stdin', async () => {
    assert.equal((await ok(['exec', 'ticker', 'echo', 'exec-ok'])).trim(), 'exec-ok');
    assert.equal((await ok(['exec', '-i', 'ticker', 'wc', '-c'], { input: '12345' })).trim(), '5');
  });

  test('docker build of a small Dockerfile on that image', async () => {
    const ctx = path.join(t.dir, 'ctx');
    fs.mkdirSync(ctx);
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM bb:1\nCOPY hello.txt /hello.txt\nRUN echo built >> /hello.txt\nCMD ["cat", "/hello.txt"]\n');
    fs.writeFileSync(path.join(ctx, 'hello.txt'), 'from the build context\n');
    await ok(['build', '-t', 'bb-built:1', ctx], { timeoutMs: 300_000 });
    assert.equal((await ok(['run', '--rm', 'bb-built:1'])).trim(), 'from the build context\nbuilt');
  });

  test('docker volume create, and data written into it', async () => {
    await ok(['volume', 'create', 'keep']);
    await ok(['run', '--rm', '-v', 'keep:/data', 'bb:1', 'sh', '-c', 'echo persisted > /data/f && sync']);
  });

  test('berth start again is harmless: same VM, exit 0', async () => {
    const pid = qemuPid();
    const r = await berth(['start'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(qemuPid(), pid);
  });

  test('berth status shows state, accelerator, resources and socket', async () => {
    const s = JSON.parse((await berth(['status', '--json'])).stdout);
    assert.equal(s.state, 'running');
    assert.ok(['kvm', 'tcg'].includes(s.accel));
    assert.ok(s.cpus >= 1 && s.memoryMiB >= 512);
    assert.equal(s.dockerSocket, sock);
    assert.equal(s.dockerContext.name, 'berth');
    const human = (await berth(['status'])).stdout;
    assert.match(human, /state\s+running/);
    assert.match(human, /docker socket/);
    // No agent on the host: no agent socket in the guest, and the status says why.
    assert.deepEqual(s.sshAgent, {
      why: 'no SSH agent on the host: SSH_AUTH_SOCK is not set; to give containers your agent, run `berth stop` and `berth start` where SSH_AUTH_SOCK names it',
    });
    assert.match(human, /ssh agent\s+none \(no SSH agent on the host: SSH_AUTH_SOCK is not set; .*`berth start` where SSH_AUTH_SOCK names it\)/);
    const sockThere = await berth(['shell', '--', 'test', '-e', '/run/host-services/ssh-auth.sock']);
    assert.equal(sockThere.code, 1, 'no agent socket in the guest');
  });

  test('berth shell runs commands in the VM and passes the exit status', async () => {
    const r = await berth(['shell', '--', 'uname', '-s']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'Linux');
    assert.equal((await berth(['shell', '--', 'sh', '-c', 'exit 3'])).code, 3);
    const i = await berth(['shell'], { input: 'echo interactive-$((40+2))\nexit\n' });
    assert.match(i.stdout, /interactive-42/);
  });

  test("the guest loads no driver for hardware it does not use (q35's SATA, PS/2 raw, Hyper-V's SCSI), and has br_netfilter", async () => {
    const r = await berth(['shell', '--', 'cat', '/proc/modules']);
    assert.equal(r.code, 0, r.stderr);
    const loaded = new Set(r.stdout.split('\n').map((l) => l.split(' ')[0]));
    for (const m of ['ahci', 'libata', 'serio_raw', 'hv_vmbus', 'hv_storvsc', 'scsi_mod', 'sd_mod']) {
      assert.ok(!loaded.has(m), `${m} is not loaded`);
    }
    for (const m of ['virtio_net', 'br_netfilter', 'berth_notify']) assert.ok(loaded.has(m), `${m} is loaded`);
  });

  test('berth logs shows the engine, the serial console and the guest log', async () => {
    assert.match((await berth(['logs', '-n', '50'])).stdout, /VM running/);
    assert.match((await berth(['logs', '--serial'])).stdout, /berth-init: ready/);
    assert.match((await berth(['logs', '--guest', '-n', '500'])).stdout, /dockerd/);
  });

  test('the engine killed with SIGKILL: berth start reattaches, the running container survives', async () => {
    const vm = qemuPid();
    const engine = Number(fs.readFileSync(path.join(inst, 'engine.lock'), 'utf8'));
    process.kill(engine, 'SIGKILL');
    await waitFor(() => !pidAlive(engine), 5000);
    assert.ok(fs.existsSync(path.join(inst, 'engine.lock')), 'a stale lock is left behind');
    assert.ok(fs.existsSync(sock), 'a stale socket is left behind');
    const r = await berth(['start'], { timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(qemuPid(), vm, 'same VM, reattached');
    const s = JSON.parse((await berth(['status', '--json'])).stdout);
    assert.equal(s.attached, true);
    assert.notEqual(s.enginePid, engine);
    assert.equal((await ok(['inspect', '-f', '{{.State.Running}}', 'ticker'])).trim(), 'true');
  });

  test('disk space comes back: 1 GiB written in a volume and removed, the host file shrinks within 60 s; berth status shows both sides', async () => {
    const MiB = 2 ** 20;
    const disk = async () => (JSON.parse((await berth(['status', '--json'])).stdout) as VmStatus).disk!;
    const mib = (b?: number) => `${((b ?? NaN) / MiB).toFixed(0)} MiB`;
    const before = await disk();
    assert.ok(before.sizeBytes >= 4 * 2 ** 30 && before.allocatedBytes > 0, JSON.stringify(before));
    await ok(['volume', 'create', 'big']);
    // 1 GiB that is not zeros (QEMU would not store zeros: detect-zeroes=unmap).
    const fill = 'head -c 1048576 /dev/urandom > /tmp/b && i=0 && while [ $i -lt 1024 ]; do cat /tmp/b; i=$((i+1)); done > /big/f && sync';
    await ok(['run', '--rm', '-v', 'big:/big', 'bb:1', 'sh', '-c', fill], { timeoutMs: 600_000 });
    await sleep(5500); // the guest's df is asked at most every 5 s
    const full = await disk();
    assert.ok(
      full.allocatedBytes - before.allocatedBytes > 900 * MiB,
      `the host file grew by the 1 GiB: ${mib(before.allocatedBytes)} → ${mib(full.allocatedBytes)}`,
    );
    assert.ok(full.usedBytes! - (before.usedBytes ?? 0) > 900 * MiB, `the guest's df counts it: ${mib(before.usedBytes)} → ${mib(full.usedBytes)}`);
    assert.match(
      (await berth(['status'])).stdout,
      /^disk {10}\d+\.\d (GiB|MiB) used in the VM, \d+\.\d (GiB|MiB) on this computer's disk \(of \d+\.\d GiB\)$/m,
    );
    await ok(['volume', 'rm', 'big']);
    const t0 = Date.now();
    let last = full;
    const back = await waitFor(
      async () => {
        last = await disk();
        const used = last.usedBytes ?? Infinity;
        return last.allocatedBytes < full.allocatedBytes - 900 * MiB && last.allocatedBytes - used <= Math.max(0.1 * used, 256 * MiB);
      },
      60_000,
      1000,
    );
    console.log(
      `data disk: ${mib(before.allocatedBytes)} on the host before, ${mib(full.allocatedBytes)} with 1 GiB written (df ${mib(full.usedBytes)}), ${mib(last.allocatedBytes)} (df ${mib(last.usedBytes)}) ${((Date.now() - t0) / 1000).toFixed(1)} s after docker volume rm`,
    );
    assert.ok(back, `within 60 s the host file is back within 10 % (or 256 MiB) of the guest's use: ${JSON.stringify(last)}\n${vm.logTail()}`);
  });

  test('berth stop leaves no qemu, engine or socket behind', async () => {
    const vm = qemuPid();
    const engine = Number(fs.readFileSync(path.join(inst, 'engine.lock'), 'utf8'));
    const r = await berth(['stop'], { timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await waitFor(() => !pidAlive(vm), 10_000), 'qemu exited');
    assert.ok(await waitFor(() => !pidAlive(engine), 10_000), 'engine exited');
    for (const f of ['docker.sock', 'control.sock', 'qmp.sock', 'engine.lock', 'qemu.pid', 'state.json']) {
      assert.ok(!fs.existsSync(path.join(inst, f)), `${f} removed`);
    }
    const ps = await run('ps', ['-eo', 'args']);
    assert.ok(!ps.stdout.includes(inst), `no process still refers to the instance:\n${ps.stdout}`);
    assert.match(fs.readFileSync(path.join(inst, 'serial.log'), 'utf8'), /data disk flushed/);
  });

  test('after stop and start: the volume, the images and the containers are still there', async () => {
    const r = await berth(['start'], { timeoutMs: 10 * 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await ok(['run', '--rm', '-v', 'keep:/data', 'bb:1', 'cat', '/data/f'])).trim(), 'persisted');
    assert.match(await ok(['images', '--format', '{{.Repository}}:{{.Tag}}']), /bb-built:1/);
    assert.match(await ok(['ps', '-a', '--format', '{{.Names}}']), /ticker/);
  });

  test('docker requests keep working after the guest ssh connection is cut', async () => {
    // Killing sshd and every connection's process (sshd-session since
    // OpenSSH 9.8) drops the engine's connection (as a host sleep would).
    await berth(['shell', '--', 'sh', '-c', '/bin/busybox killall sshd sshd-session']).catch(() => undefined);
    await sleep(500);
    assert.equal((await ok(['run', '--rm', 'bb:1', 'echo', 'after-reconnect'])).trim(), 'after-reconnect');
    const s = JSON.parse((await berth(['status', '--json'])).stdout);
    assert.ok(s.session.connects >= 2, `reconnected (${s.session.connects} connects)`);
  });

  test("sshd answers the engine only: a container gets a reset on the guest's port 22, and the rules are set once though sshd respawned", async () => {
    const rules = (await berth(['shell', '--', 'sh', '-c', 'iptables -S INPUT; ip6tables -S INPUT'])).stdout
      .split('\n')
      .filter((l) => l.includes('--dport 22'));
    assert.deepEqual(rules, [
      '-A INPUT -i lo -p tcp -m tcp --dport 22 -j ACCEPT',
      '-A INPUT -s 10.0.2.2/32 -p tcp -m tcp --dport 22 -j ACCEPT',
      '-A INPUT -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset',
      '-A INPUT -i lo -p tcp -m tcp --dport 22 -j ACCEPT',
      '-A INPUT -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset',
    ]);
    for (const addr of ['172.17.0.1', '10.0.2.15']) {
      const out = await ok(['run', '--rm', 'bb:1', 'sh', '-c', `nc -w 5 ${addr} 22 </dev/null; echo "exit=$?"`]);
      assert.doesNotMatch(out, /SSH-2\.0/, `no ssh banner from ${addr}`);
      assert.match(out, /exit=[1-9]/, `the connection to ${addr}:22 fails`);
    }
  });

  test("containers reach out through the guest's NAT, from the default bridge and from a network of their own; two networks cannot reach each other", async () => {
    // The host's loopback is 10.0.2.2 from the guest (QEMU user networking).
    const server = http.createServer((_req, res) => res.end('from-the-host\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      await ok(['network', 'create', 'net-a']);
      await ok(['network', 'create', 'net-b']);
      // busybox-static's wget crashes in glibc's resolver; nc speaks HTTP/1.0 just as well.
      const get = (host: string, port: number, file: string) => `printf 'GET ${file} HTTP/1.0\\r\\n\\r\\n' | nc -w 10 ${host} ${port}`;
      for (const net of ['bridge', 'net-a']) {
        const out = await ok(['run', '--rm', '--network', net, 'bb:1', 'sh', '-c', get('10.0.2.2', port, '/')]);
        assert.match(out, /from-the-host/, `out of ${net}: ${out}`);
      }
      await ok(['run', '-d', '--name', 'web-b', '--network', 'net-b', 'bb:1', 'sh', '-c', 'mkdir -p /w && echo in-b > /w/i && httpd -f -p 80 -h /w']);
      const ipB = (await ok(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'web-b'])).trim();
      assert.match(ipB, /^\d+\.\d+\.\d+\.\d+$/);
      const same = await ok(['run', '--rm', '--network', 'net-b', 'bb:1', 'sh', '-c', get(ipB, 80, '/i')]);
      assert.match(same, /in-b/, `within one network containers reach each other: ${same}`);
      for (const net of ['net-a', 'bridge']) {
        const other = await ok(['run', '--rm', '--network', net, 'bb:1', 'sh', '-c', `${get(ipB, 80, '/i')}; echo "exit=$?"`]);
        assert.doesNotMatch(other, /in-b/, `${net} cannot reach net-b`);
      }
    } finally {
      server.close();
      await ok(['rm', '-f', 'web-b']).catch(() => undefined);
      await ok(['network', 'rm', 'net-a', 'net-b']).catch(() => undefined);
    }
  });
});
