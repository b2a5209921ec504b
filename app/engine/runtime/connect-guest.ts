/**
 * Bring a booted VM's guest up to a working docker socket: find where its
 * sshd answers, open the guest runtime (the session and all that lives on
 * it), wait for dockerd, mount the shares, start the sync and the socket,
 * and read the guest's boot stamps. Shared by a fresh start and a reattach.
 * The engine owns the runtime from the moment it exists (`adopt`), so a
 * failure anywhere here is torn down by the engine's one teardown list.
 */
import type { Logger } from 'pino';
import type { VmStatus } from '../../contract/contract.js';
import type { StartPhase } from '../../contract/vm-states.js';
import { BerthError } from '../../contract/errors.js';
import type { InstancePaths } from '../../base/paths.js';
import { tailFile } from '../../base/fs-util.js';
import type { GuestKeys } from '../../base/ssh-keys.js';
import type { BootTimeline } from '../boot/boot-timeline.js';
import type { EngineTuning, RunState } from '../boot/boot-plan.js';
import { guestDied } from '../boot/crash-recovery.js';
import { sshEndpointOf, type RunningVm, type VmSpec } from '../drivers/driver.js';
import type { DockerSocketListener } from '../forward/docker-socket-listener.js';
import type { Settings } from '../settings/schema.js';
import { GuestRuntime } from './guest-runtime.js';

type Timings = NonNullable<VmStatus['timings']>;

export interface ConnectGuestOptions {
  vm: RunningVm;
  spec: VmSpec;
  keys: GuestKeys;
  /** The run's record: its `ssh` endpoint is filled in here. */
  run: RunState;
  paths: InstancePaths;
  log: Logger;
  tuning: EngineTuning;
  settings: () => Settings;
  dockerSocket: DockerSocketListener;
  /** Emulated CPU: the guest gets longer to answer. */
  slow: boolean;
  /** A reattach: the boot was not watched, so its stamps are not read. */
  attached: boolean;
  /** When the VM was started (ms), for the timings. */
  tBoot: number;
  timings: Timings;
  boot: BootTimeline;
  progress: (phase: StartPhase, message: string) => void;
  /** The runtime exists: the engine owns it (and its teardown) from here. */
  adopt: (rt: GuestRuntime) => void;
}

/** ssh, then dockerd, then the host socket. */
export async function connectGuest(o: ConnectGuestOptions): Promise<void> {
  const { vm, paths } = o;
  const bootTimeout = o.tuning.bootTimeoutMs ?? (o.slow ? 240_000 : 60_000);
  const bootFailed = () => {
    if (!vm.alive()) throw guestDied(paths.serialLog, 'the VM exited while booting');
  };
  o.progress('guest', 'waiting for the guest to answer on ssh');
  // QEMU forwards a loopback port; vfkit and Hyper-V guests are reached at
  // the address their NAT's DHCP gave them, which the driver finds.
  const endpoint = await sshEndpointOf(vm, o.spec, bootTimeout).catch((err: unknown) => {
    bootFailed();
    throw err;
  });
  o.run.ssh = endpoint;
  if (endpoint.host !== '127.0.0.1') o.log.info({ endpoint }, 'guest address');
  const rt = new GuestRuntime({
    endpoint,
    keys: o.keys,
    vm,
    paths,
    log: o.log,
    settings: o.settings,
    sharePlan: o.run.sharePlan,
    hostRelay: o.run.hostRelay,
    dockerSocket: o.dockerSocket,
  });
  o.adopt(rt);
  await rt.connect(bootTimeout, bootFailed).catch((err) => {
    if (err instanceof BerthError && err.code === 'GUEST_TIMEOUT') {
      throw new BerthError(err.code, err.message, err.hint, tailFile(paths.serialLog, 25).join('\n'));
    }
    throw err;
  });
  o.timings.guestMs = Date.now() - o.tBoot;
  o.boot.mark('ssh-connected');
  // The guest's stamps are read while the rest comes up.
  let guestStamps: Promise<void> | undefined;
  await rt.bringUp({
    dockerTimeoutMs: o.tuning.dockerTimeoutMs ?? (o.slow ? 240_000 : 60_000),
    syncTimeoutMs: o.tuning.syncStartTimeoutMs,
    bootFailed,
    progress: o.progress,
    reached: (mark) => {
      o.timings[mark] = Date.now() - o.tBoot;
      if (mark === 'dockerMs') {
        o.boot.mark('docker-ready');
        if (!o.attached) guestStamps = o.boot.readGuest(rt.session);
      }
      if (mark === 'socketMs') o.boot.mark('socket-ready');
    },
  });
  await guestStamps;
}
