import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import { BerthError } from '../../contract/errors.js';
import { sleep, waitFor } from '../../base/process-util.js';
import { HOST_RELAY_ADDRESS, type Driver, type GuestArch, type GuestTraits, type RunningVm, type SshEndpoint, type VmExit, type VmSpec } from './driver.js';
import { DRIVER_FEATURES } from './features.js';
import {
  buildAddressScript,
  buildCreateScript,
  buildProbeScript,
  buildStateScript,
  buildStopScript,
  buildCompactScript,
  comPipePath,
  HYPERV_NOTE,
  hypervVmName,
} from './hyperv-scripts.js';
import { hypervError, parsePsResult, powershellBinary, spawnPowerShell, type PowerShellRunner, type PsResult } from './powershell.js';

/**
 * Windows Hyper-V (Windows 10/11 Pro, Enterprise, Education; Windows
 * Server): a generation 2 VM created, started, queried and stopped through
 * the Hyper-V PowerShell module. Every operation is one script, built as
 * text by a pure function (hyperv-scripts.ts), run by (powershell.ts)
 * `powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -Command -`
 * with the script on stdin, answering one `BERTH-RESULT:{json}` line.
 *
 * Hyper-V generation 2 boots only through UEFI: the spec must carry an EFI
 * boot disk (VHDX). Disks sit on SCSI controller 0, each at the LUN
 * HYPERV_DISK_LUNS gives its name (SCSI disks carry no serial we could set,
 * so the guest finds them by LUN; see guestTraits). The NIC is on the "Default
 * Switch" (NAT with DHCP); the guest's address comes from the adapter's
 * IPAddresses (reported by the guest's KVP daemon), else from the host's
 * neighbour table by the MAC we assign. COM1 is a named pipe that the engine
 * reads into the serial log.
 */

export interface HypervDriverOptions {
  /** powershell.exe (default), pwsh.exe, or what BERTH_POWERSHELL names. */
  powershell?: string;
  /** Runs scripts; replaces `powershell` (tests). */
  run?: PowerShellRunner;
  /** Virtual switch (BERTH_HYPERV_SWITCH); default "Default Switch". */
  switchName?: string;
  /** State poll interval while running. */
  pollMs?: number;
  /** COM1 pipe path for a spec (tests use a unix socket). */
  comPipe?: (spec: VmSpec) => string;
  /** The guest's sshd port (22; tests point it at a fake guest). */
  sshPort?: number;
}

type Options = Required<Omit<HypervDriverOptions, 'powershell'>>;

const GONE_STATES = new Set(['Off', 'OffCritical', 'Saved', 'SavedCritical']);

async function runScript(o: Options, script: string, doing: string, timeoutMs?: number): Promise<Extract<PsResult, { ok: true }>> {
  const run = await o.run(script, timeoutMs);
  const r = parsePsResult(run);
  if (!r.ok) throw hypervError(r, doing, o.switchName, `${script}\n--- stderr ---\n${run.stderr.trim()}`);
  return r;
}

/** Copies the VM's COM1 pipe into the serial log for as long as the VM runs. */
class SerialPump {
  private sock?: net.Socket;
  private stopped = false;

  constructor(
    private readonly pipe: string,
    private readonly logFile: string,
  ) {
    void this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      await new Promise<void>((resolve) => {
        const sock = net.connect(this.pipe);
        this.sock = sock;
        sock.on('data', (d) => {
          try {
            fs.appendFileSync(this.logFile, d, { mode: 0o600 });
          } catch {
            /* log folder gone: nothing to keep */
          }
        });
        sock.on('error', () => undefined);
        sock.on('close', () => resolve());
      });
      if (!this.stopped) await sleep(500);
    }
  }

  stop(): void {
    this.stopped = true;
    this.sock?.destroy();
  }
}

class HypervVm extends EventEmitter<{ exit: [VmExit] }> implements RunningVm {
  private exited = false;
  private poll?: NodeJS.Timeout;
  private polling = false;
  private compacted = false;
  private readonly pump: SerialPump;

  constructor(
    readonly pid: number,
    private readonly spec: VmSpec,
    private readonly o: Options,
  ) {
    super();
    this.pump = new SerialPump(o.comPipe(spec), spec.serialLog);
    this.poll = setInterval(() => void this.check(), o.pollMs);
    this.poll.unref();
  }

  private markExited(reason: string): void {
    if (this.exited) return;
    this.exited = true;
    if (this.poll) clearInterval(this.poll);
    this.pump.stop();
    this.emit('exit', { reason });
  }

  /** Polls Get-VM; a VM that is off, saved or gone has exited. */
  private async check(): Promise<string | undefined> {
    if (this.exited || this.polling) return undefined;
    this.polling = true;
    try {
      const r = await runScript(this.o, buildStateScript(this.spec), 'query the VM', 30_000);
      if (!r.exists) this.markExited('the Hyper-V VM is gone');
      else if (GONE_STATES.has(String(r.state))) this.markExited(`the Hyper-V VM is ${String(r.state)}`);
      return r.exists ? String(r.state) : 'Missing';
    } catch {
      return undefined; // a failed poll says nothing about the VM
    } finally {
      this.polling = false;
    }
  }

  alive(): boolean {
    return !this.exited;
  }

  async state(): Promise<string> {
    const r = await runScript(this.o, buildStateScript(this.spec), 'query the VM', 30_000);
    return r.exists ? String(r.state) : 'Missing';
  }

  async requestPowerOff(): Promise<void> {
    await runScript(this.o, buildStopScript(this.spec, false), 'shut the VM down', 30_000).catch(() => undefined);
  }

  async waitExit(timeoutMs: number): Promise<boolean> {
    const off = await waitFor(
      async () => {
        await this.check();
        return this.exited;
      },
      timeoutMs,
      Math.min(1000, this.o.pollMs),
    );
    if (off) await this.compactDisks();
    return off;
  }

  /** Once off after a stop: the writable (dynamic VHDX) disks compacted, so what the guest freed leaves the host's disk. Best effort. */
  private async compactDisks(): Promise<void> {
    if (this.compacted) return;
    this.compacted = true;
    const files = this.spec.disks.filter((d) => d.sizeBytes !== undefined && !d.readonly).map((d) => d.path);
    if (files.length) await runScript(this.o, buildCompactScript(files), 'compact the data disk', 300_000).catch(() => undefined);
  }

  async kill(graceMs = 3000): Promise<void> {
    if (this.exited) return;
    const r = await runScript(this.o, buildStopScript(this.spec, true), 'turn the VM off', 60_000);
    if (!r.exists || GONE_STATES.has(String(r.state))) {
      this.markExited('the VM was turned off');
      await this.compactDisks();
    } else await this.waitExit(graceMs + 10_000);
  }

  detach(): void {
    this.exited = true;
    if (this.poll) clearInterval(this.poll);
    this.pump.stop();
  }

  async sshEndpoint(timeoutMs = 90_000): Promise<SshEndpoint> {
    let ip: string | undefined;
    await waitFor(
      async () => {
        if (this.exited) return true;
        const r = await runScript(this.o, buildAddressScript(this.spec), 'read the VM address', 30_000).catch(() => undefined);
        const list = (v: unknown) => (Array.isArray(v) ? v : v ? [v] : []).map(String);
        ip = r ? [...list(r.ips), ...list(r.neighbors)][0] : undefined;
        return ip !== undefined;
      },
      timeoutMs,
      2000,
    );
    if (ip) return { host: ip, port: this.o.sshPort };
    if (this.exited) throw new BerthError('VM_EXITED', 'the VM exited before it got a network address', 'The serial log may say why: `berth logs --serial`.');
    throw new BerthError(
      'GUEST_UNREACHABLE',
      `Hyper-V reported no address for ${hypervVmName(this.spec)} within ${Math.round(timeoutMs / 1000)} s`,
      `The guest gets its address by DHCP on "${this.o.switchName}"; \`berth logs --serial\` shows whether it asked for one. VPN software can break the Default Switch.`,
    );
  }
}

export class HypervDriver implements Driver {
  readonly name = 'hyperv';
  readonly features = DRIVER_FEATURES.hyperv;
  private readonly o: Options;

  constructor(options: HypervDriverOptions = {}) {
    this.o = {
      run: options.run ?? spawnPowerShell(powershellBinary(options.powershell)),
      switchName: options.switchName || 'Default Switch',
      pollMs: options.pollMs ?? 3000,
      comPipe: options.comPipe ?? comPipePath,
      sshPort: options.sshPort ?? 22,
    };
  }

  guestTraits(arch: GuestArch): GuestTraits {
    return {
      console: arch === 'aarch64' ? 'ttyAMA0' : 'ttyS0',
      network: 'dhcp',
      hostLoopback: { address: HOST_RELAY_ADDRESS, via: 'relay' },
      disks: 'scsi-lun',
    };
  }

  async start(spec: VmSpec): Promise<RunningVm> {
    const script = buildCreateScript(spec, { switchName: this.o.switchName });
    const r = await runScript(this.o, script, 'create and start the VM', 180_000);
    if (r.notes !== HYPERV_NOTE) {
      throw new BerthError('HYPERV_FAILED', "Hyper-V started a VM that does not carry Berth's note", 'This is a bug in Berth; please report it.');
    }
    const state = await runScript(this.o, buildStateScript(spec), 'query the VM', 30_000).catch(() => undefined);
    return new HypervVm(Number(state?.processId) || 0, spec, this.o);
  }

  async attach(spec: VmSpec): Promise<RunningVm | null> {
    const r = await runScript(this.o, buildStateScript(spec), 'query the VM', 30_000).catch(() => undefined);
    if (!r?.exists || r.notes !== HYPERV_NOTE || GONE_STATES.has(String(r.state))) return null;
    return new HypervVm(Number(r.processId) || 0, spec, this.o);
  }

  /** Is Hyper-V usable here, and if not why (for `berth doctor`). */
  async probe(): Promise<Extract<PsResult, { ok: true }>> {
    return runScript(this.o, buildProbeScript(this.o.switchName), 'be queried', 60_000);
  }
}
