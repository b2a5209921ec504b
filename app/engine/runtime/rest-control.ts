import type { Logger } from 'pino';
import type { VmStatus } from '../../contract/contract.js';
import type { VmState } from '../../contract/vm-states.js';
import type { InstancePaths } from '../../base/paths.js';
import { DockerSocketListener } from '../forward/docker-socket-listener.js';
import { IdleRest } from './idle-rest.js';

export interface RestControlOptions {
  paths: InstancePaths;
  log: Logger;
  /** The `idleMinutes` setting now. */
  idleMinutes: () => number;
  /** Why the running VM is in use now (the runtime's check). */
  busyReason: () => Promise<string | undefined>;
  /** The VM's state. */
  state: () => VmState;
  /** A start, stop or reattach is in flight. */
  inFlight: () => boolean;
  /** Start the VM (the engine's start: joins one in flight). */
  start: () => Promise<unknown>;
  /** Stop the running VM cleanly and end in `resting` (the socket stays). */
  toRest: () => Promise<unknown>;
}

/**
 * The idle rest around the engine's life cycle: the host's docker socket
 * (which keeps listening while the VM rests and holds connections until it
 * is back), the idle watch while it runs, and the counts `berth status`
 * shows. The engine tells it when the VM runs, leaves, and has rested.
 */
export class RestControl {
  readonly socket: DockerSocketListener;
  private readonly idle: IdleRest;
  private rests = 0;
  private wakes = 0;
  private lastWakeMs?: number;
  private restingSince?: number;
  /** When the first connection of this wake started waiting. */
  private wakeAskedAt?: number;

  constructor(private readonly o: RestControlOptions) {
    this.socket = new DockerSocketListener(o.paths.dockerSocket, o.log, () => {
      this.wakeAskedAt ??= Date.now();
      this.wake();
    });
    this.idle = new IdleRest({ log: o.log, idleMinutes: o.idleMinutes, busyReason: o.busyReason, rest: () => this.goToRest() });
  }

  /** The idle time passed with nothing in use: stop cleanly, keep the socket listening. */
  private goToRest(): void {
    if (this.o.state() !== 'running' || this.o.inFlight()) return;
    this.o.toRest().catch((err: Error) => this.o.log.error({ err: err.message }, 'putting the VM to rest failed'));
  }

  /**
   * A docker connection waits on the resting VM: start it (the connection
   * is served once dockerd answers). The engine's start joins a start in
   * flight and waits for the stop that put the VM to rest.
   */
  private wake(): void {
    if (this.o.state() !== 'resting') return;
    this.o.log.info('a docker connection wakes the VM');
    this.o.start().catch((err: Error) => this.o.log.error({ err: err.message }, 'waking the VM failed'));
  }

  /** The VM runs and its socket forward is attached: count a finished wake, watch for idleness. */
  running(): void {
    if (this.wakeAskedAt !== undefined && this.restingSince !== undefined) {
      this.wakes++;
      this.lastWakeMs = Date.now() - this.wakeAskedAt;
      this.o.log.info({ wakeMs: this.lastWakeMs }, 'woke from rest');
    }
    this.wakeAskedAt = undefined;
    this.restingSince = undefined;
    this.idle.arm();
  }

  /** The VM goes (a stop, a rest, a crash): no more idle checks. */
  leaving(): void {
    this.idle.disarm();
  }

  /** The VM has rested: a connection that came while it went to rest wakes it now. */
  rested(): void {
    this.rests++;
    this.restingSince = Date.now();
    if (this.socket.waiting) this.wake();
    else this.wakeAskedAt = undefined;
  }

  /** A real stop, a crash or a failed start: the socket goes, waiting connections end. */
  async closeSocket(): Promise<void> {
    this.restingSince = undefined;
    this.wakeAskedAt = undefined;
    await this.socket.close();
  }

  view(): NonNullable<VmStatus['rest']> {
    const v: NonNullable<VmStatus['rest']> = { idleMinutes: this.o.idleMinutes(), rests: this.rests, wakes: this.wakes, ...this.idle.view() };
    if (this.restingSince !== undefined) v.restingSince = new Date(this.restingSince).toISOString();
    if (this.lastWakeMs !== undefined) v.lastWakeMs = this.lastWakeMs;
    return v;
  }
}
