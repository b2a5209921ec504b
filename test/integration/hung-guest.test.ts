/**
 * A guest that stops answering while QEMU runs (a kernel hung in an RCU
 * stall, as one CI run under TCG showed): every sshd in the guest is
 * stopped (SIGSTOP), so QEMU, its network stack and the forwarded ssh port
 * stay up and a connection is accepted, but nothing answers on it. (QMP's
 * `stop` would be closer, but QEMU serves one QMP client and the engine is
 * it.) The engine's watchdog
 * (runtime/guest-watchdog.ts; BERTH_HUNG_GUEST_MS, 20 s here) stops the VM
 * like a crash and starts it again; the data disk keeps what was written.
 */
import assert from 'node:assert/strict';
import { waitFor } from '../../app/base/process-util.js';
import { after, before, gatedSuite, test } from '../helpers/prereq-gate.js';
import { busyboxRootfsTar } from '../helpers/busybox-rootfs.js';
import { ensureImage, vmPrereqProblem } from './prereqs.js';
import { vmFixture } from './vm-fixture.js';

gatedSuite('a hung guest with a real VM', vmPrereqProblem(), { timeout: 20 * 60_000 }, () => {
  const vm = vmFixture('bhg');
  const { ok } = vm;
  const status = async () => JSON.parse((await vm.berth(['status', '--json'])).stdout);

  before(async () => {
    await ensureImage();
    vm.env.BERTH_HUNG_GUEST_MS = '20000';
    const r = await vm.berth(['start'], { timeoutMs: 10 * 60_000 });
    assert.equal(r.code, 0, r.stderr);
    await ok(['import', busyboxRootfsTar(vm.dir), 'bhg:1'], { timeoutMs: 180_000 });
    await ok(['run', '--rm', '-v', 'keep:/data', 'bhg:1', 'sh', '-c', 'echo persisted > /data/f && sync']);
  });
  after(() => vm.cleanup());

  test('the guest frozen while QEMU runs: the VM is stopped and started again by itself, saying why; the volume is kept', async () => {
    const qemu = vm.qemuPid();
    // The shell's own sshd stops too, so this command never returns.
    await vm.berth(['shell', '--', 'sh', '-c', 'kill -STOP $(pidof sshd sshd-session)'], { timeoutMs: 15_000 }).catch(() => undefined);
    const back = await waitFor(
      async () => {
        const s = await status().catch(() => undefined);
        // A new VM: the status between the old VM's exit and the error that follows says running with no VM at all.
        return s?.state === 'running' && s.vmPid !== undefined && s.vmPid !== qemu;
      },
      8 * 60_000,
      2000,
    );
    const s = await status();
    assert.ok(back, `running again in a new VM (state ${s.state}, ${JSON.stringify(s.lastCrash)})`);
    assert.match(s.lastCrash?.reason ?? '', /the guest stopped answering for 20 s while its VM ran/);
    assert.equal((await ok(['run', '--rm', '-v', 'keep:/data', 'bhg:1', 'cat', '/data/f'])).trim(), 'persisted');
  });
});
