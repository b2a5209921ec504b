/**
 * Faults and load with a real VM and the real docker CLI (issue 7): each
 * test injects one thing that goes wrong on a developer's laptop and checks
 * that Berth recovers by itself and that nothing is lost (containers,
 * images, volumes). Load: 200 concurrent API requests, 100 forwarded
 * connections at once, `docker cp` both ways with checksums.
 * Times are printed, not asserted (`npm run bench` measures).
 *
 * Covered elsewhere: the engine killed with SIGKILL (vm.test.ts), a host
 * port already in use (ports.test.ts), stopping in a write storm
 * (shares.test.ts).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, gatedSuite, needNow, test } from '../helpers/prereq-gate.js';
import { pidAlive, sleep, waitFor } from '../../app/base/process-util.js';
import { busyboxRootfsTar } from '../helpers/busybox-rootfs.js';
import { buildFixture, echoRoundTrip, timeUntil } from '../helpers/net-probe.js';
import { ensureImage, vmPrereqProblem } from './prereqs.js';
import { vmFixture } from './vm-fixture.js';

const problem = vmPrereqProblem();

const GiB = 2 ** 30;
/**
 * 2 GiB each way, as the issue asks: under TCG this test takes ~17 minutes.
 * BERTH_CP_BYTES sets a smaller size for a quick local run.
 */
const CP_BYTES = Number(process.env.BERTH_CP_BYTES || 2 * GiB);

/** GET path on the docker socket; the status code (0 when the request failed). */
function dockerGet(socketPath: string, p: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: p, agent: false, timeout: 120_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
  });
}

/** A file of `bytes` pseudo-random bytes, written in 4 MiB blocks; its SHA-256. */
async function randomFile(file: string, bytes: number): Promise<string> {
  const hash = crypto.createHash('sha256');
  const out = fs.createWriteStream(file);
  const block = 4 << 20;
  let seed = crypto.randomBytes(32);
  for (let done = 0; done < bytes; done += block) {
    // A cheap stream of distinct blocks (random data does not compress, so
    // nothing on the way can cheat by compressing).
    seed = crypto.createHash('sha256').update(seed).digest();
    const cipher = crypto.createCipheriv('aes-256-ctr', seed, Buffer.alloc(16));
    const buf = cipher.update(Buffer.alloc(Math.min(block, bytes - done)));
    hash.update(buf);
    if (!out.write(buf)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return hash.digest('hex');
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = crypto.createHash('sha256');
    fs.createReadStream(file)
      .on('data', (d) => hash.update(d))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}

gatedSuite('reliability: faults and load with a real VM', problem, { timeout: 60 * 60_000 }, () => {
  const vm = vmFixture('br');
  const { ok } = vm;
  let echoServer: string | undefined;
  let echoProblem: string | undefined;

  const status = async () => JSON.parse((await vm.berth(['status', '--json'])).stdout);
  /** Wait until the engine runs a new VM (not `oldQemu`) by itself. */
  const runningAgain = (after: string, oldQemu: number) =>
    timeUntil(
      `running again ${after}`,
      async () => {
        const s = await status().catch(() => undefined);
        // A new VM: between the old VM's exit and the error that follows, the status says running with no VM pid.
        return s?.state === 'running' && s.vmPid !== undefined && s.vmPid !== oldQemu;
      },
      5 * 60_000,
    );
  const guestNow = async () => Number((await vm.berth(['shell', '--', 'date', '+%s'])).stdout.trim());

  /** What must survive every fault: an image, a volume's data, a container that restarts. */
  const assertNothingLost = async (what: string) => {
    assert.equal((await ok(['run', '--rm', '-v', 'keep:/data', 'bbr:1', 'cat', '/data/f'])).trim(), 'persisted', `${what}: the volume`);
    assert.match(await ok(['images', '--format', '{{.Repository}}:{{.Tag}}']), /bbr:1/, `${what}: the image`);
    const running = await waitFor(async () => (await vm.docker(['inspect', '-f', '{{.State.Running}}', 'always'])).stdout.trim() === 'true', 60_000, 250);
    assert.ok(running, `${what}: the container with --restart=always runs again`);
  };

  before(async () => {
    await ensureImage();
    // A small data disk, so that filling it up is quick (a sparse file on the host).
    assert.equal((await vm.berth(['settings', 'set', 'diskGiB=8'])).code, 0);
    const r = await vm.berth(['start'], { timeoutMs: 10 * 60_000 });
    assert.equal(r.code, 0, r.stderr);
    ({ bin: echoServer, problem: echoProblem } = buildFixture('echo-server', vm.dir));
    const tarFile = busyboxRootfsTar(vm.dir, undefined, echoServer ? { 'bin/echo-server': echoServer } : {});
    await ok(['import', tarFile, 'bbr:1'], { timeoutMs: 180_000 });
    await ok(['run', '--rm', '-v', 'keep:/data', 'bbr:1', 'sh', '-c', 'echo persisted > /data/f && sync']);
    await ok(['run', '-d', '--name', 'always', '--restart', 'always', 'bbr:1', 'sleep', '1d']);
  });

  after(() => vm.cleanup());

  // ---- load ---------------------------------------------------------------

  test('200 concurrent docker API requests through the forwarded socket: none fails', async () => {
    const paths = ['/_ping', '/version', '/info', '/containers/json?all=1', '/images/json', '/volumes', '/networks'];
    const t0 = performance.now();
    const codes = await Promise.all(Array.from({ length: 200 }, (_, i) => dockerGet(vm.sock, paths[i % paths.length]!)));
    const failed = codes.filter((c) => c !== 200);
    process.stdout.write(`# 200 concurrent API requests in ${Math.round(performance.now() - t0)} ms\n`);
    assert.deepEqual(failed, [], `${failed.length} of 200 failed`);
    // And the forward counted them all without a failure.
    const s = await status();
    assert.equal(s.forward.failed, 0);
  });

  test('100 connections at once through a forwarded port, 256 KiB each way, arrive intact', async (t) => {
    if (needNow(t, echoProblem)) return;
    await ok(['run', '-d', '--name', 'echo', '-p', '18185:7', 'bbr:1', 'echo-server', 'tcp', '7']);
    await timeUntil('echo port forwarded', async () => (await echoRoundTrip(18185, Buffer.from('x')).catch(() => Buffer.alloc(0))).toString() === 'x');
    const t0 = performance.now();
    const results = await Promise.allSettled(
      Array.from({ length: 100 }, async () => {
        const data = crypto.randomBytes(256 << 10);
        const back = await echoRoundTrip(18185, data);
        assert.ok(back.equals(data), `echoed ${back.length} bytes, not the ${data.length} sent`);
      }),
    );
    const bad = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    process.stdout.write(`# 100 x 256 KiB echoed in ${Math.round(performance.now() - t0)} ms\n`);
    assert.deepEqual(bad, []);
  });

  test(`docker cp of ${CP_BYTES / GiB} GiB into a container and back, checksums equal`, async () => {
    const src = path.join(vm.dir, 'big.bin');
    const back = path.join(vm.dir, 'back');
    fs.mkdirSync(back);
    try {
      const want = await randomFile(src, CP_BYTES);
      await ok(['run', '-d', '--name', 'cp', 'bbr:1', 'sleep', '1d']);
      let t0 = performance.now();
      await ok(['cp', src, 'cp:/big.bin'], { timeoutMs: 40 * 60_000 });
      const inMs = performance.now() - t0;
      t0 = performance.now();
      const inGuest = (await ok(['exec', 'cp', 'sha256sum', '/big.bin'], { timeoutMs: 20 * 60_000 })).split(' ')[0];
      const hashMs = performance.now() - t0;
      assert.equal(inGuest, want, 'the copy in the container');
      t0 = performance.now();
      await ok(['cp', 'cp:/big.bin', back], { timeoutMs: 40 * 60_000 });
      const outMs = performance.now() - t0;
      assert.equal(await sha256File(path.join(back, 'big.bin')), want, 'the copy back on the host');
      const mbs = (ms: number) => (CP_BYTES / 1e6 / (ms / 1000)).toFixed(1);
      process.stdout.write(
        `# docker cp ${CP_BYTES / GiB} GiB: in ${Math.round(inMs / 1000)} s (${mbs(inMs)} MB/s), out ${Math.round(outMs / 1000)} s (${mbs(outMs)} MB/s), sha256 in the container ${Math.round(hashMs / 1000)} s\n`,
      );
    } finally {
      fs.rmSync(src, { force: true });
      fs.rmSync(back, { recursive: true, force: true });
      await vm.docker(['rm', '-f', 'cp']);
    }
  });

  // ---- faults -------------------------------------------------------------

  test('the ssh link cut under docker logs -f, docker exec -it and an open forwarded connection: those end, a new connection and the next docker logs and exec work', async (t) => {
    if (needNow(t, echoProblem)) return;
    await ok(['run', '-d', '--name', 'talker', 'bbr:1', 'sh', '-c', 'i=0; while true; do echo line$i; i=$((i+1)); sleep 0.2; done']);
    const logs = spawn('docker', ['logs', '-f', 'talker'], { env: vm.env });
    let logOut = '';
    logs.stdout.on('data', (d) => (logOut += d));
    // A real terminal for `docker exec -it` (script(1) gives it a pty).
    const exec = spawn('script', ['-qfec', 'docker exec -it talker sh', '/dev/null'], { env: vm.env });
    let execOut = '';
    exec.stdout.on('data', (d) => (execOut += d));
    exec.stdin.write('echo exec-$((6*7))\n');
    assert.ok(await waitFor(() => /exec-42/.test(execOut) && /line3/.test(logOut), 60_000), `before: exec ${execOut} / logs ${logOut.slice(-100)}`);
    // A forwarded connection open across the cut, answering before it.
    const held = net.createConnection({ host: '127.0.0.1', port: 18185 });
    let heldEcho = '';
    held.on('data', (d) => (heldEcho += d));
    held.on('error', () => undefined);
    const heldClosed = new Promise<void>((r) => held.once('close', () => r()));
    held.write('held');
    assert.ok(await waitFor(() => heldEcho === 'held', 30_000), `the held connection echoes before the cut (${JSON.stringify(heldEcho)})`);
    const before = (await status()).session.connects as number;

    const cutAt = performance.now();
    await vm.berth(['shell', '--', 'sh', '-c', '/bin/busybox killall sshd sshd-session']).catch(() => undefined);
    const logsEnded = new Promise((r) => logs.once('close', r));
    const execEnded = new Promise((r) => exec.once('close', r));
    // The streams in flight end (their channel went with the link) rather than hang...
    const ENDS_WITHIN_MS = 60_000;
    await Promise.race([Promise.all([logsEnded, execEnded, heldClosed]), sleep(ENDS_WITHIN_MS)]);
    assert.ok(logs.exitCode !== null && exec.exitCode !== null, 'docker logs -f and docker exec -it end instead of hanging');
    assert.ok(held.destroyed || held.readableEnded, `the forwarded connection open across the cut ends within ${ENDS_WITHIN_MS / 1000} s`);
    process.stdout.write(`# ssh link cut: the streams in flight ended ${((performance.now() - cutAt) / 1000).toFixed(1)} s later\n`);
    held.destroy();
    // ...and everything the user does next works.
    await timeUntil(
      'port forward answers after the link dropped',
      async () => (await echoRoundTrip(18185, Buffer.from('again')).catch(() => Buffer.alloc(0))).toString() === 'again',
      60_000,
    );
    assert.match(await ok(['logs', '--tail', '1', 'talker']), /line\d+/);
    assert.equal((await ok(['exec', 'talker', 'sh', '-c', 'echo $((6*7))'])).trim(), '42');
    const after = (await status()).session.connects as number;
    assert.ok(after > before, `reconnected (${before} -> ${after})`);
    await ok(['rm', '-f', 'talker']);
  });

  test('the QEMU process killed: the engine starts the VM again by itself, nothing lost', async () => {
    const qemu = vm.qemuPid();
    process.kill(qemu, 'SIGKILL');
    assert.ok(await waitFor(() => !pidAlive(qemu), 10_000));
    await runningAgain('after QEMU was killed', qemu);
    const s = await status();
    assert.equal(s.lastCrash.reason, 'the QEMU process was killed or crashed');
    await assertNothingLost('after QEMU was killed');
    assert.equal((await ok(['run', '--rm', 'bbr:1', 'echo', 'back'])).trim(), 'back');
  });

  test('the guest kernel panics: the engine starts the VM again, the panic is in the serial log, nothing lost', async () => {
    const qemu = vm.qemuPid();
    await vm.berth(['shell', '--', 'sh', '-c', 'echo c > /proc/sysrq-trigger'], { timeoutMs: 30_000 }).catch(() => undefined);
    await runningAgain('after a kernel panic', qemu);
    const crash = (await status()).lastCrash;
    assert.match(crash.reason, /panicked/);
    assert.equal(crash.recent, 2);
    const serial = fs.readdirSync(vm.inst).filter((f) => f.startsWith('serial.log'));
    const text = serial.map((f) => fs.readFileSync(path.join(vm.inst, f), 'utf8')).join('\n');
    assert.match(text, /Kernel panic|sysrq: Trigger a crash/);
    await assertNothingLost('after a kernel panic');
  });

  test('the data disk fills up: a clear error, dockerd still answers, prune frees the space', async () => {
    // Take every free block of the data disk, the blocks ext4 keeps for root
    // included (containers run as root): fallocate in shrinking pieces until
    // nothing fits. Instant, and no data is written to the host's disk.
    const fill = await vm.docker(
      [
        'run',
        '--name',
        'filler',
        '-v',
        'fill:/f',
        'bbr:1',
        'sh',
        '-c',
        'n=0; for s in 1073741824 134217728 16777216 1048576 65536 4096; do while fallocate -l $s /f/b$n 2>/dev/null; do n=$((n+1)); done; done; stat -f -c "%f free blocks" /f',
      ],
      { timeoutMs: 10 * 60_000 },
    );
    process.stdout.write(`# disk full: filler exit ${fill.code}, ${fill.stdout.trim()}\n`);
    const w = await vm.docker(['run', '--rm', '-v', 'keep:/data', 'bbr:1', 'sh', '-c', 'head -c 10485760 /dev/zero > /data/more']);
    assert.notEqual(w.code, 0, 'a write on a full disk fails');
    assert.match(w.stdout + w.stderr, /No space left on device|no space left on device/);
    // dockerd still answers the API and lists what it has.
    assert.match(await ok(['version', '--format', '{{.Server.Version}}']), /\d+\.\d+/);
    assert.match(await ok(['ps', '-a', '--format', '{{.Names}}']), /filler/);
    // The user frees the space the way Docker tells them to.
    await ok(['rm', '-f', 'filler']);
    await ok(['volume', 'rm', 'fill']);
    await ok(['run', '--rm', '-v', 'keep:/data', 'bbr:1', 'sh', '-c', 'rm -f /data/more']);
    assert.equal((await ok(['run', '--rm', 'bbr:1', 'sh', '-c', 'head -c 10485760 /dev/zero > /tmp/x && echo wrote'])).trim(), 'wrote');
    await assertNothingLost('after the disk was full');
  });

  test('the host sleeps (engine and VM frozen) and the guest clock fell behind: it is set right on wake-up', async () => {
    // What a laptop's sleep looks like from here: the engine's timers fire
    // far too late, and the guest's clock stood still (set it an hour back).
    await vm.berth(['shell', '--', 'sh', '-c', 'date -u -s @$(( $(date +%s) - 3600 )) >/dev/null']);
    const behind = Math.round(Date.now() / 1000) - (await guestNow());
    assert.ok(behind > 3000, `the guest clock is an hour behind (${behind} s)`);
    const engine = (await status()).enginePid as number;
    const qemu = vm.qemuPid();
    process.kill(engine, 'SIGSTOP');
    process.kill(qemu, 'SIGSTOP');
    await sleep(10_000);
    process.kill(qemu, 'SIGCONT');
    process.kill(engine, 'SIGCONT');
    await timeUntil('guest clock set right after the wake-up', async () => Math.abs(Math.round(Date.now() / 1000) - (await guestNow())) <= 2, 60_000);
    assert.equal((await ok(['run', '--rm', 'bbr:1', 'echo', 'awake'])).trim(), 'awake');
  });
});
