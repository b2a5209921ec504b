import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { pidAlive, waitFor } from '../../base/process-util.js';
import type { RunningVm, VmExit, VmSpec } from './driver.js';

/**
 * A VM that is one hypervisor process of ours with a pid file and a control
 * socket (QEMU, vfkit): noticing that it exited (a pid poll, plus whatever
 * the hypervisor says first), cleaning its files up once, and stopping it
 * with escalation: the hypervisor's own hard stop, then SIGTERM, then
 * SIGKILL. Each driver says how to ask its hypervisor.
 */
export abstract class ProcessVm extends EventEmitter<{ exit: [VmExit] }> implements RunningVm {
  protected exited = false;
  private poll?: NodeJS.Timeout;

  constructor(
    readonly pid: number,
    protected readonly spec: VmSpec,
    pollMs: number,
  ) {
    super();
    this.poll = setInterval(() => this.onPoll(), pollMs);
    this.poll.unref();
  }

  /**
   * Every poll: see whether the process is gone (drivers add their own
   * checks). A process that runs only gets stillAlive (one look at its
   * monitor); the grace wait of checkExit is for one that seems gone: run
   * on every poll, it polled the pid at 20 Hz for half of all idle time.
   */
  protected onPoll(): void {
    if (this.exited) return;
    if (pidAlive(this.pid)) return void this.stillAlive();
    void this.checkExit(this.goneReason());
  }

  /** Why the VM went, when nothing better was heard. */
  protected abstract goneReason(): string;

  /** The process still runs after something said it went (QEMU: reconnect its monitor). */
  protected async stillAlive(): Promise<void> {}

  /** Once the process is gone, before `exit` (QEMU: its monitor and virtiofsd). */
  protected async cleanup(): Promise<void> {}

  /** Ask the hypervisor to stop at once; true when it was asked. */
  protected abstract askHardStop(graceMs: number): Promise<boolean>;

  /** How long SIGTERM gets, or undefined to go straight to SIGKILL. */
  protected abstract termGraceMs(asked: boolean, graceMs: number): number | undefined;

  abstract requestPowerOff(): Promise<void>;

  protected async checkExit(reason: string): Promise<void> {
    if (this.exited) return;
    // Give a closing hypervisor a moment to finish exiting before we call it gone.
    if (!(await waitFor(() => !pidAlive(this.pid), 1000, 50))) return void (await this.stillAlive());
    if (this.exited) return;
    this.exited = true;
    if (this.poll) clearInterval(this.poll);
    fs.rmSync(this.spec.pidFile, { force: true });
    fs.rmSync(this.spec.controlSocket, { force: true });
    await this.cleanup();
    this.emit('exit', { reason });
  }

  alive(): boolean {
    return !this.exited && pidAlive(this.pid);
  }

  async waitExit(timeoutMs: number): Promise<boolean> {
    const ok = await waitFor(() => !pidAlive(this.pid), timeoutMs, 50);
    if (ok) await this.checkExit('the VM powered off');
    return ok;
  }

  async kill(graceMs = 3000): Promise<void> {
    const gone = (ms: number) => waitFor(() => !pidAlive(this.pid), ms, 50);
    if (pidAlive(this.pid)) {
      const asked = await this.askHardStop(graceMs);
      if (!asked || !(await gone(graceMs))) {
        const term = this.termGraceMs(asked, graceMs);
        let down = false;
        if (term !== undefined) {
          this.signal('SIGTERM');
          down = await gone(term);
        }
        if (!down) {
          this.signal('SIGKILL');
          await gone(5000);
        }
      }
    }
    await this.checkExit('the VM was stopped');
  }

  detach(): void {
    this.exited = true;
    if (this.poll) clearInterval(this.poll);
  }

  private signal(s: NodeJS.Signals): void {
    try {
      process.kill(this.pid, s);
    } catch {
      /* already gone */
    }
  }
}
