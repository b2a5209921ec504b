import { EventEmitter } from 'node:events';
import { BerthError, isBerthError } from '../contract/errors.js';
import type { InstancePaths } from '../base/paths.js';
import type { VmState } from '../contract/vm-states.js';
import { checkParams, methods, type EventName, type MethodName, type Result, type VmStatus } from '../contract/contract.js';
import type { ControlClient } from './control-client.js';
import { offlineCall } from './offline.js';
import { doctorReport, type DoctorJson, type DoctorOptions } from './doctor.js';
import { SettingsStore } from '../engine/settings/store.js';
import type { DriverSetting } from '../contract/settings-values.js';
import { TOO_DEEP, nestedTooDeep } from '../contract/wire-limits.js';

/**
 * The contract as a UI sees it, whether or not the engine runs: what the
 * dashboard's WebSocket and Electron main put behind the renderer.
 *
 * - Calls are checked against the contract before they go anywhere
 *   (BAD_REQUEST, nothing changed); `hello` and `events.subscribe` belong
 *   to the gateway, not to the UI.
 * - The engine is connected lazily. With no engine, the UI still works:
 *   the VM is `stopped`, settings and logs are read from the instance
 *   folder, and `vm.start` starts the engine.
 * - Events come through as the engine sends them. When the link to the
 *   engine appears or goes, a `vm.state` event says what the state is now,
 *   so the UI never shows a state that no longer holds.
 * - Log streams and terminals a UI opened are closed when it goes.
 */

export interface GatewayOptions {
  paths: InstancePaths;
  /** Connect to the engine; start it first when `spawn` (and it is not running). */
  connect(spawn: boolean): Promise<ControlClient>;
  /** How often to look for an engine while there is none (0: only when called). Default 2000 ms. */
  watchMs?: number;
  /** `host.doctor` (default: `berth doctor`'s report on this host); tests give a fake host. */
  doctor?: (o: DoctorOptions) => Promise<{ json: DoctorJson }>;
}

/** Methods that bring the engine up when it is not running. */
const SPAWNING = new Set<MethodName>(['vm.start', 'vm.restart']);
const GATEWAY_ONLY = new Set<string>(['hello', 'events.subscribe']);

export class EngineGateway extends EventEmitter<{ event: [EventName, unknown]; link: [boolean] }> {
  private client?: ControlClient;
  private connecting?: Promise<ControlClient>;
  private lastState: VmState = 'stopped';
  private ownLogs = new Set<string>();
  private ownTerms = new Set<string>();
  private ownStats = new Set<string>();
  private watchTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly o: GatewayOptions) {
    super();
    this.watch();
  }

  get connected(): boolean {
    return !!this.client;
  }

  get state(): VmState {
    return this.lastState;
  }

  /** One contract call, from an untrusted UI: any method name, any params. */
  async call(method: string, params: unknown): Promise<unknown> {
    if (typeof method !== 'string' || !Object.hasOwn(methods, method) || GATEWAY_ONLY.has(method)) {
      throw new BerthError(
        'BAD_REQUEST',
        `unknown method "${String(method).slice(0, 64)}"`,
        `Known methods: ${Object.keys(methods)
          .filter((m) => !GATEWAY_ONLY.has(m))
          .join(', ')}.`,
      );
    }
    const m = method as MethodName;
    if (nestedTooDeep(params)) throw new BerthError(TOO_DEEP.code, TOO_DEEP.message, TOO_DEEP.hint);
    const data = checkParams(m, params ?? {});
    if (m === 'host.doctor') return this.doctor();
    const client = await this.link(SPAWNING.has(m));
    const result = client ? await client.call(m, data as never) : await this.offline(m, data as Record<string, unknown>);
    this.track(m, result);
    return result;
  }

  /** The engine's client, connecting (or starting the engine) as needed; undefined when none runs. */
  private async link(spawn: boolean): Promise<ControlClient | undefined> {
    if (this.client) return this.client;
    if (this.closed) throw new BerthError('ENGINE_NOT_RUNNING', 'this connection is closed', 'Reload the page.');
    try {
      return await this.connectOnce(false);
    } catch (err) {
      if (!isBerthError(err, 'ENGINE_NOT_RUNNING')) throw err;
      if (!spawn) return undefined;
    }
    return this.connectOnce(true);
  }

  private connectOnce(spawn: boolean): Promise<ControlClient> {
    if (this.client) return Promise.resolve(this.client);
    if (this.connecting) return this.connecting;
    this.connecting = (async () => {
      const c = await this.o.connect(spawn);
      if (this.closed) {
        c.close();
        throw new BerthError('ENGINE_NOT_RUNNING', 'this connection is closed', 'Reload the page.');
      }
      c.on('close', () => this.onClose(c));
      await c.subscribe((event, data) => this.onEvent(event, data));
      this.client = c;
      const s = await c.call('vm.status', {});
      this.setState(s.state);
      this.emit('link', true);
      return c;
    })().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private onEvent(event: EventName, data: unknown): void {
    if (event === 'vm.state') this.lastState = (data as { state: VmState }).state;
    if (event === 'containers.logs.end') this.ownLogs.delete((data as { stream: string }).stream);
    if (event === 'terminal.exit') this.ownTerms.delete((data as { session: string }).session);
    if (event === 'containers.stats.end') this.ownStats.delete((data as { stream: string }).stream);
    this.emit('event', event, data);
  }

  /** Tell the UI the state after a link change (a `vm.state` event, as the engine would). */
  private setState(state: VmState, error?: { code: string; message: string; hint: string }): void {
    const previous = this.lastState;
    this.lastState = state;
    const data: Record<string, unknown> = { state, previous, at: new Date().toISOString() };
    if (error) data.error = error;
    this.emit('event', 'vm.state', data);
  }

  private onClose(c: ControlClient): void {
    if (this.client !== c) return;
    this.client = undefined;
    this.ownLogs.clear();
    this.ownTerms.clear();
    this.ownStats.clear();
    this.emit('link', false);
    if (this.closed) return;
    if (this.lastState === 'stopped') {
      // The engine exits by itself once the VM is stopped: nothing to report.
    } else {
      this.setState('error', {
        code: 'ENGINE_NOT_RUNNING',
        message: 'the connection to the Berth engine closed',
        hint: 'A VM that still runs is picked up again by Start. `berth logs --engine` shows why the engine stopped.',
      });
    }
    this.watch();
  }

  /** While there is no engine, look for one now and then (someone may run `berth start`). */
  private watch(): void {
    const every = this.o.watchMs ?? 2000;
    if (!every || this.closed || this.watchTimer) return;
    const tick = async () => {
      this.watchTimer = undefined;
      if (this.closed || this.client) return;
      await this.connectOnce(false).catch(() => undefined);
      if (!this.client && !this.closed) {
        this.watchTimer = setTimeout(() => void tick(), every);
        this.watchTimer.unref();
      }
    };
    this.watchTimer = setTimeout(() => void tick(), every);
    this.watchTimer.unref();
  }

  private track(m: MethodName, result: unknown): void {
    if (m === 'containers.logs') this.ownLogs.add((result as { stream: string }).stream);
    if (m === 'terminal.start') this.ownTerms.add((result as { session: string }).session);
    if (m === 'containers.stats') this.ownStats.add((result as { stream: string }).stream);
    if (m === 'vm.status' || m === 'vm.start' || m === 'vm.stop' || m === 'vm.restart') this.lastState = (result as VmStatus).state;
  }

  /** Close the log streams and terminals this UI opened (it reloaded or went away). */
  async releaseStreams(): Promise<void> {
    const c = this.client;
    const logs = [...this.ownLogs];
    const terms = [...this.ownTerms];
    const stats = [...this.ownStats];
    this.ownLogs.clear();
    this.ownTerms.clear();
    this.ownStats.clear();
    if (!c) return;
    await Promise.all([
      ...stats.map((stream) => c.call('containers.stats.stop', { stream }).catch(() => undefined)),
      ...logs.map((stream) => c.call('containers.logs.stop', { stream }).catch(() => undefined)),
      ...terms.map((session) => c.call('terminal.stop', { session }).catch(() => undefined)),
    ]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.releaseStreams().catch(() => undefined);
    this.closed = true;
    if (this.watchTimer) clearTimeout(this.watchTimer);
    this.watchTimer = undefined;
    const c = this.client;
    this.client = undefined;
    c?.close();
  }

  /** `berth doctor` for the UI: the host's verdict, with the instance's settings and the engine's live driver. */
  private async doctor(): Promise<Result<'host.doctor'>> {
    let settings: { driver?: DriverSetting; rosetta?: boolean } = {};
    try {
      settings = new SettingsStore(this.o.paths.settings).get();
    } catch {
      /* a broken settings file with no good copy: judge the host for auto */
    }
    let live: DoctorOptions['live'];
    const c = this.client;
    if (c) {
      const st = await c.call('vm.status', {}).catch(() => undefined);
      if (st && st.state !== 'stopped' && st.driverReason) live = { driver: st.driver, reason: st.driverReason, state: st.state };
    }
    const run = this.o.doctor ?? doctorReport;
    return (await run({ setting: settings.driver, rosetta: settings.rosetta, live })).json;
  }

  /** What the contract answers when no engine runs (offline.ts, as for the CLI). */
  private offline(m: MethodName, p: Record<string, unknown>): Promise<unknown> {
    return offlineCall(this.o.paths, m, p, () => this.connectOnce(true));
  }
}
