import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VM_STATES, type StateChange, type VmState } from '../../app/contract/vm-states.js';
import { VmStateMachine } from '../../app/engine/vm/state-machine.js';

test('the happy path emits one event per transition', () => {
  const sm = new VmStateMachine();
  const seen: StateChange[] = [];
  sm.on('change', (c) => seen.push(c));
  for (const s of ['starting', 'running', 'stopping', 'stopped'] as const) sm.to(s);
  assert.deepEqual(
    seen.map((c) => `${c.previous}>${c.state}`),
    ['stopped>starting', 'starting>running', 'running>stopping', 'stopping>stopped'],
  );
  assert.ok(seen.every((c) => !Number.isNaN(Date.parse(c.at))));
});

test('error carries its reason and hint until the next transition', () => {
  const sm = new VmStateMachine();
  sm.to('starting');
  sm.to('error', { code: 'GUEST_TIMEOUT', message: 'slow', hint: 'wait' });
  assert.equal(sm.error?.code, 'GUEST_TIMEOUT');
  sm.to('starting');
  assert.equal(sm.error, undefined);
});

test('every illegal transition throws and changes nothing', () => {
  const legal: Record<VmState, VmState[]> = {
    stopped: ['starting'],
    starting: ['running', 'stopping', 'error'],
    running: ['stopping', 'error'],
    stopping: ['stopped', 'resting', 'error'],
    resting: ['starting', 'stopped'],
    error: ['starting', 'stopping', 'stopped'],
  };
  for (const from of VM_STATES) {
    for (const to of VM_STATES) {
      assert.equal(VmStateMachine.canMove(from, to), legal[from].includes(to), `${from} -> ${to}`);
    }
  }
  const sm = new VmStateMachine();
  assert.throws(() => sm.to('running'), /illegal VM state transition stopped → running/);
  assert.equal(sm.state, 'stopped');
});
