import type { ErrorInfo } from './errors.js';

/** The VM's states and the phases of a start, as every side of the contract sees them. */
/**
 * `resting`: stopped by the engine after `idleMinutes` with nothing in use;
 * unlike `stopped`, the docker socket still listens and the next connection
 * wakes the VM (it waits, it is not refused).
 */
export const VM_STATES = ['stopped', 'starting', 'running', 'stopping', 'resting', 'error'] as const;
export type VmState = (typeof VM_STATES)[number];

/** What `starting` is doing right now, in order. */
export const START_PHASES = ['prepare', 'image', 'boot', 'guest', 'docker', 'shares', 'socket'] as const;
export type StartPhase = (typeof START_PHASES)[number];

export interface StateChange {
  state: VmState;
  previous: VmState;
  at: string;
  /** Why the VM is in `error` (also kept while it is in `error`). */
  error?: ErrorInfo;
}
