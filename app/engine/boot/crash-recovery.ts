import fs from 'node:fs';
import type { Logger } from 'pino';
import type { Driver, RunningVm, VmSpec } from '../drivers/driver.js';
import { bootModeFor } from '../drivers/features.js';
import { BerthError, type ErrorInfo } from '../../contract/errors.js';
import { readJsonIfExists, tailFile } from '../../base/fs-util.js';
import type { GuestImage, ImageStore } from '../image/image-store.js';
import type { VmStateMachine } from '../vm/state-machine.js';
import { vmSpecFor, type PlanContext, type RunState } from './boot-plan.js';

/**
 * How often a VM that went down by itself is started again: fewer than
 * `budget` unexpected exits within `windowMs`, as Docker Desktop and OrbStack
 * restart theirs; past that it stays in `error` and says why.
 */
export class CrashBudget {
  private crashes: { at: number; reason: string }[] = [];
  private timer?: NodeJS.Timeout;

  constructor(
    readonly budget = 3,
    readonly windowMs = 10 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Count an unexpected exit; true when the VM should be started again. */
  record(reason: string): boolean {
    const t = this.now();
    this.crashes = this.crashes.filter((c) => t - c.at < this.windowMs);
    this.crashes.push({ at: t, reason });
    return this.crashes.length < this.budget;
  }

  get count(): number {
    return this.crashes.length;
  }

  /** The last unexpected exit and how many fell in the window, for status. */
  last(): { at: string; reason: string; recent: number } | undefined {
    const last = this.crashes.at(-1);
    if (!last) return undefined;
    const t = this.now();
    return { at: new Date(last.at).toISOString(), reason: last.reason, recent: this.crashes.filter((c) => t - c.at < this.windowMs).length };
  }

  /** The sentence a hint gets when the budget is spent. */
  spentNote(): string {
    return `It stopped ${this.budget} times within ${this.windowMs / 60_000} minutes, so Berth does not restart it by itself.`;
  }

  /** Run `restart` after `delayMs` (once; a new crash or a stop replaces or cancels it). */
  schedule(restart: () => void, delayMs: number): void {
    this.cancel();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      restart();
    }, delayMs);
    this.timer.unref();
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

export interface CrashRecoveryOptions {
  sm: VmStateMachine;
  log: Logger;
  serialLog: string;
  recoveryDelayMs: number;
  /** Take down what ran on the dead VM's session (the socket, ports, sync, shares). */
  teardown: () => Promise<void>;
  /** Start again after a crash, unless a start or stop came first (the engine decides). */
  restart: () => void;
}

/**
 * A VM that went down by itself. A running one is in `error` at once, with
 * the console's last lines, before anything is taken down: no status ever
 * says `running` for a VM that is gone. Its teardown runs in the background;
 * a start or stop waits for it (`settled`), so a new run's docker socket is
 * never closed by the old run's teardown. Then, within the budget, the VM
 * is started again, as Docker Desktop and OrbStack do: the data disk holds
 * the containers, images and volumes, and containers with a restart policy
 * come back with dockerd. `berth stop` in the meantime cancels it.
 */
export class CrashRecovery {
  readonly budget = new CrashBudget();
  private down?: Promise<void>;

  constructor(private readonly o: CrashRecoveryOptions) {}

  /** The VM process exited while the engine did not stop it. */
  vmExited(reason: string): void {
    this.o.log.error({ reason }, 'VM exited unexpectedly');
    // Booting, the start in flight reports its own failure.
    const restart = this.o.sm.state === 'running' && this.budget.record(reason);
    if (this.o.sm.state === 'running') this.o.sm.to('error', vmExitedInfo(this.o.serialLog, reason, restart ? undefined : this.budget.spentNote()));
    const down = this.o
      .teardown()
      .catch((err: Error) => this.o.log.error({ err: err.message }, 'taking down what ran on the VM failed'))
      .finally(() => {
        if (this.down === down) this.down = undefined;
      });
    this.down = down;
    if (restart)
      void down.then(() =>
        this.budget.schedule(() => {
          if (this.o.sm.state !== 'error') return;
          this.o.log.warn({ crashes: this.budget.count }, 'starting the VM again after it stopped unexpectedly');
          this.o.restart();
        }, this.o.recoveryDelayMs),
      );
  }

  /** Resolves once what ran on a crashed VM is taken down (at once when nothing is). */
  settled(): Promise<void> {
    return this.down ?? Promise.resolve();
  }

  /** A stop: no automatic restart. */
  cancel(): void {
    this.budget.cancel();
  }
}

/** A VM an earlier engine left running, with what the new engine needs to take it over. */
export interface LeftVm {
  run: RunState;
  image: GuestImage;
  driver: Driver;
  spec: VmSpec;
  vm: RunningVm;
}

/**
 * The VM an engine that died (SIGKILL, crash) left running, found from its
 * state file: the driver it names, the image it booted (verified again) and
 * the hypervisor process. Undefined, and the stale state file removed, when
 * any of them is gone.
 */
export async function findLeftVm(c: PlanContext, images: ImageStore, driverFor: (run: RunState) => Driver): Promise<LeftVm | undefined> {
  const run = readJsonIfExists(c.paths.state) as RunState | undefined;
  const driver = run ? driverFor(run) : undefined;
  const image =
    run?.sshPort && run.imageDir && driver
      ? await images.verify(run.imageDir, undefined, bootModeFor(driver.features, c.tuning.boot)).catch(() => undefined)
      : undefined;
  const spec = run && image && driver ? vmSpecFor(c, run, image, driver) : undefined;
  const vm = driver && spec ? await driver.attach(spec) : null;
  if (!run || !image || !vm || !driver || !spec) {
    fs.rmSync(c.paths.state, { force: true });
    return undefined;
  }
  return { run, image, driver, spec, vm };
}

/** The VM went away while booting: the error carries the serial console's last lines. */
export function guestDied(serialLog: string, message: string): BerthError {
  return new BerthError(
    'GUEST_BOOT_FAILED',
    message,
    'The serial console below shows what the guest printed last (`berth logs --serial` has all of it).',
    tailFile(serialLog, 25).join('\n'),
  );
}

/** The error a running VM that went down by itself leaves (with the restart budget's note once it is spent). */
export function vmExitedInfo(serialLog: string, reason: string, budgetSpent?: string): ErrorInfo {
  const hint =
    'Containers and volumes are on the data disk and are kept. `berth start` starts the VM again; `berth logs --serial` shows its last console output.';
  return {
    code: 'VM_EXITED',
    message: `the VM stopped unexpectedly (${reason})`,
    hint: budgetSpent ? `${budgetSpent} ${hint}` : hint,
    details: tailFile(serialLog, 25).join('\n'),
  };
}
