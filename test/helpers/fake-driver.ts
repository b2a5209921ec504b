/**
 * A fake hypervisor driver for engine unit tests: "booting" starts a fake
 * guest (ssh2 server) on the spec's ssh port; `poweroff` in the guest makes
 * the VM exit. Modes let a test make the guest never answer or die early.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import type { Driver, DriverFeatures, RunningVm, VmExit, VmSpec } from '../../app/engine/drivers/driver.js';
import { startFakeGuest, type FakeGuest } from './fake-guest.js';

export type FakeMode = 'ok' | 'silent' | 'dies';

export class FakeVm extends EventEmitter<{ exit: [VmExit] }> implements RunningVm {
  readonly pid = 999_999;
  private up = true;
  guest?: FakeGuest;
  private shareLost?: (tag: string, reason: string) => void;

  alive(): boolean {
    return this.up;
  }
  async requestPowerOff(): Promise<void> {
    await this.exit('acpi power off');
  }
  async kill(): Promise<void> {
    await this.exit('killed');
  }
  async waitExit(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.up && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return !this.up;
  }
  detach(): void {
    this.up = false;
  }
  onShareLost(cb: (tag: string, reason: string) => void): void {
    this.shareLost = cb;
  }
  /** A virtiofsd exited while the VM runs (QEMU's driver sees it on a poll). */
  loseShare(tag: string, reason: string): void {
    this.shareLost?.(tag, reason);
  }
  async exit(reason: string): Promise<void> {
    if (!this.up) return;
    this.up = false;
    await this.guest?.close();
    this.emit('exit', { reason });
  }
}

export class FakeDriver implements Driver {
  readonly name = 'fake';
  /** As QEMU: it chooses its accelerator, boots the kernel, attaches raw disks. */
  readonly features: DriverFeatures = {
    label: 'fake',
    accelerator: 'choose',
    bootModes: ['kernel', 'efi'],
    diskFormat: 'raw',
    rosetta: false,
    ownProcess: true,
  };
  specs: VmSpec[] = [];
  vms: FakeVm[] = [];

  constructor(
    private readonly o: {
      mode: FakeMode;
      hostKeyFile: string;
      clientPubFile: string;
      dockerSocket: string;
      /** Answer guest commands first (e.g. the socket watcher's); undefined falls through. */
      exec?: (command: string) => { stdout?: string; code?: number } | undefined;
    },
  ) {}

  async start(spec: VmSpec): Promise<RunningVm> {
    this.specs.push(spec);
    const vm = new FakeVm();
    this.vms.push(vm);
    fs.writeFileSync(spec.serialLog, 'SeaBIOS\nLinux version 6.1 fake\nberth-init: waiting for the root disk\n');
    if (this.o.mode === 'dies') {
      setTimeout(() => {
        fs.appendFileSync(spec.serialLog, 'Kernel panic - not syncing: fake\n');
        void vm.exit('the QEMU process is gone');
      }, 200);
      return vm;
    }
    if (this.o.mode === 'silent') return vm;
    vm.guest = await startFakeGuest({
      port: spec.sshHostPort,
      hostPrivateKey: fs.readFileSync(this.o.hostKeyFile, 'utf8'),
      clientPublicKey: fs.readFileSync(this.o.clientPubFile, 'utf8'),
      sockets: { '/var/run/docker.sock': this.o.dockerSocket },
      exec: (cmd) => {
        const own = this.o.exec?.(cmd);
        if (own) return own;
        if (cmd.includes('poweroff')) {
          // As with QEMU: the guest's virtio-fs devices go first, so each
          // virtiofsd exits a moment before the VM process does.
          for (const s of spec.shares ?? []) setTimeout(() => vm.loseShare(s.tag, 'its virtiofsd (pid 42) exited'), 10);
          setTimeout(() => void vm.exit('the VM powered off'), 50);
        }
        return { code: 0 };
      },
    });
    return vm;
  }

  async attach(): Promise<RunningVm | null> {
    return null;
  }
}
