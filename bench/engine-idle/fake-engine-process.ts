/**
 * The engine of engine-idle.ts's `--vm fake` run: the real daemon
 * (startDaemon) with a driver whose "VM" is fake-guest-process.ts, a
 * process of its own, so that this process holds only what an engine
 * holds. BERTH_HOME, BERTH_CACHE and BERTH_IMAGE_DIR come from the parent.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon } from '../../app/engine/daemon.js';
import type { Driver, DriverFeatures, RunningVm, VmExit, VmSpec } from '../../app/engine/drivers/driver.js';
import { instancePaths } from '../../app/base/paths.js';

const guestScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fake-guest-process.js');

class GuestProcessVm extends EventEmitter<{ exit: [VmExit] }> implements RunningVm {
  private up = true;
  constructor(private readonly child: ChildProcess) {
    super();
    child.on('exit', () => {
      this.up = false;
      this.emit('exit', { reason: 'the fake guest exited' });
    });
  }
  get pid(): number {
    return this.child.pid!;
  }
  alive(): boolean {
    return this.up;
  }
  async requestPowerOff(): Promise<void> {
    this.child.kill('SIGTERM');
  }
  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
  }
  async waitExit(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.up && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return !this.up;
  }
  detach(): void {}
}

const paths = instancePaths('default');
const driver: Driver = {
  name: 'fake',
  features: {
    label: 'fake',
    accelerator: 'choose',
    bootModes: ['kernel', 'efi'],
    diskFormat: 'raw',
    rosetta: false,
    ownProcess: true,
  } satisfies DriverFeatures,
  async start(spec: VmSpec): Promise<RunningVm> {
    const child = spawn(process.execPath, [guestScript, String(spec.sshHostPort), paths.hostKey, `${paths.clientKey}.pub`, paths.dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`the fake guest exited (${code})`)));
    });
    return new GuestProcessVm(child);
  },
  async attach(): Promise<RunningVm | null> {
    return null;
  },
};

const d = await startDaemon({ instance: 'default', exitOnStop: false, driver });
process.on('SIGTERM', () => void d.shutdown(true));
await d.done;
process.exit(0);
