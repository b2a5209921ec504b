import type { VmStatus } from '../../contract/contract.js';
import type { Driver, RunningVm, VmSpec } from '../drivers/driver.js';
import { BootTimeline } from './boot-timeline.js';
import { runStatus, type DriverChoiceView, type RunState } from './boot-plan.js';

type Timings = NonNullable<VmStatus['timings']>;

/**
 * The facts of the VM run the engine has now: set by a start or a
 * reattach, cleared by a stop or a rest, shown by status.
 */
export class CurrentRun {
  vm?: RunningVm;
  /** What the state file keeps (ports, accelerator, image), so a new engine can reattach. */
  run?: RunState;
  /** The driver of the VM that runs or starts, and why it was chosen. */
  driver?: Driver;
  driverChoice?: DriverChoiceView;
  spec?: VmSpec;
  /** Taken over from an engine that died, not booted by this one. */
  attached = false;
  timings: Timings = {};
  /** The last start's steps, the engine's and the guest's. */
  readonly boot = new BootTimeline();

  clear(): void {
    this.vm = undefined;
    this.run = undefined;
    this.driver = undefined;
    this.driverChoice = undefined;
    this.spec = undefined;
    this.attached = false;
    this.timings = {};
    this.boot.clear();
  }

  /** Its part of `berth status`. */
  addTo(st: VmStatus): void {
    const why = this.driver ? this.driverChoice?.reason : undefined;
    if (why) st.driverReason = why;
    if (this.run) Object.assign(st, runStatus(this.run));
    if (this.vm) st.vmPid = this.vm.pid;
    if (this.attached) st.attached = true;
    if (Object.keys(this.timings).length) st.timings = { ...this.timings };
    const timeline = this.boot.view();
    if (timeline) st.bootTimeline = timeline;
  }
}
