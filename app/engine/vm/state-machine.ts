import { EventEmitter } from 'node:events';
import type { ErrorInfo } from '../../contract/errors.js';
import type { StateChange, VmState } from '../../contract/vm-states.js';

const ALLOWED: Record<VmState, readonly VmState[]> = {
  stopped: ['starting'],
  starting: ['running', 'stopping', 'error'],
  running: ['stopping', 'error'],
  stopping: ['stopped', 'resting', 'error'],
  resting: ['starting', 'stopped'],
  error: ['starting', 'stopping', 'stopped'],
};

/**
 * stopped → starting → running → stopping → stopped, plus error with a
 * reason and a hint, and resting (stopping → resting → starting on the next
 * docker connection, or → stopped). Every transition is an event; an illegal one is a bug
 * and throws.
 */
export class VmStateMachine extends EventEmitter<{ change: [StateChange] }> {
  private current: VmState = 'stopped';
  private lastError?: ErrorInfo;

  get state(): VmState {
    return this.current;
  }

  get error(): ErrorInfo | undefined {
    return this.current === 'error' ? this.lastError : undefined;
  }

  static canMove(from: VmState, to: VmState): boolean {
    return ALLOWED[from].includes(to);
  }

  to(next: VmState, error?: ErrorInfo): StateChange {
    const previous = this.current;
    if (!VmStateMachine.canMove(previous, next)) {
      throw new Error(`illegal VM state transition ${previous} → ${next}`);
    }
    this.current = next;
    this.lastError = next === 'error' ? error : undefined;
    const change: StateChange = { state: next, previous, at: new Date().toISOString() };
    if (this.lastError) change.error = this.lastError;
    this.emit('change', change);
    return change;
  }
}
