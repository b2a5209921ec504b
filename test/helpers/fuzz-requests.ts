/**
 * Requests a bad client would send to the contract: unknown methods,
 * missing, wrong-typed, out-of-range and extra params, generated from the
 * contract's own schemas so every method is covered.
 */
import { methods } from '../../app/contract/contract.js';
import { ERROR_CODES } from '../../app/contract/errors.js';
import { randomJson, randomString, wrongType, type Rng } from './fuzz.js';

export const METHOD_NAMES = Object.keys(methods);

function shapeOf(method: string): string[] {
  const s = (methods as Record<string, { params: { shape?: Record<string, unknown> } }>)[method]?.params;
  return s?.shape ? Object.keys(s.shape) : [];
}

const SETTINGS_KEYS = ['cpus', 'memoryMiB', 'diskGiB', 'accel', 'driver', 'rosetta', 'portBind', 'shareMechanism', 'ports', 'shares'];

/** A plausible but probably bad settings patch. */
export function randomPatch(r: Rng): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  for (let i = 1 + r.int(3); i > 0; i--) {
    const k = r.bool(0.85) ? r.pick(SETTINGS_KEYS) : randomString(r, 10);
    p[k] = r.pick([
      () => randomJson(r, 2),
      () => r.pick([-1, 0, 1, 3, 511, 100_000_000, 1.5, 2 ** 40]),
      () => r.pick(['kvm', 'warp', 'all', 'loopback', '', 'auto', 'vfkit', 'hyperv', 'true']),
      () => r.pick([true, false, null]),
      () => [{ hostPort: r.pick([0, 80, 70000]), guestPort: r.pick([80, -1, '80']), proto: r.pick(['tcp', 'udp', 'sctp']) }],
      () => [{ hostPath: r.pick(['relative', '/', '/etc', '/tmp/x', '']), guestPath: r.pick([undefined, '/var/lib/docker', 'x']) }],
    ])();
  }
  return p;
}

/** Params for `method`: missing, random, wrong types, or the right keys with odd values plus extras. */
export function randomParams(r: Rng, method: string): unknown {
  const keys = shapeOf(method);
  switch (r.int(6)) {
    case 0:
      return undefined;
    case 1:
      return randomJson(r, 2);
    case 2:
      return {};
    case 3: {
      const o: Record<string, unknown> = {};
      for (const k of keys) if (r.bool(0.7)) o[k] = wrongType(r, r.pick([0, 'x', true, null, [], {}]));
      return o;
    }
    case 4: {
      const o: Record<string, unknown> = {};
      for (const k of keys) o[k] = k === 'patch' ? randomPatch(r) : randomJson(r, 1);
      if (r.bool(0.5)) o[randomString(r, 8) || 'extra'] = randomJson(r, 1);
      return o;
    }
    default:
      return method === 'settings.update' ? { patch: randomPatch(r) } : Object.fromEntries(keys.map((k) => [k, randomJson(r, 0)]));
  }
}

/** Methods a fuzz run must not call with valid params: they end the engine or wipe it. */
export const DESTRUCTIVE = new Set(['engine.shutdown', 'engine.factoryReset', 'vm.stop', 'vm.restart']);

/**
 * A random request (as an object), or a method name a client made up.
 * (No `hello`: a wrong hello ends the connection, tested on its own.)
 */
export function randomRequest(r: Rng, id: number | string): { id: unknown; method: unknown; params?: unknown } {
  const method = r.bool(0.15)
    ? r.pick([randomString(r, 20), 'events.subscribe', '__proto__', 'constructor', 'vm', 'vm.status.x', 42, null, ['vm.status']])
    : r.pick(METHOD_NAMES.filter((m) => !DESTRUCTIVE.has(m) && m !== 'hello'));
  const req: { id: unknown; method: unknown; params?: unknown } = { id, method };
  const params = typeof method === 'string' ? randomParams(r, method) : randomJson(r, 1);
  if (params !== undefined) req.params = params;
  return req;
}

/** What every error the engine sends must look like. */
export function checkErrorShape(e: unknown, what: string): { code: string; message: string; hint: string } {
  const err = e as { code?: unknown; message?: unknown; hint?: unknown };
  if (typeof err !== 'object' || err === null) throw new Error(`${what}: error is not an object: ${JSON.stringify(e)}`);
  if (!(ERROR_CODES as readonly unknown[]).includes(err.code)) throw new Error(`${what}: unknown error code ${String(err.code)}`);
  if (err.code === 'INTERNAL') throw new Error(`${what}: the engine failed inside (INTERNAL): ${String(err.message)}`);
  if (typeof err.message !== 'string' || !err.message) throw new Error(`${what}: error without a message`);
  if (typeof err.hint !== 'string' || !err.hint) throw new Error(`${what}: error without a hint`);
  if (err.message.length > 4096) throw new Error(`${what}: a ${err.message.length}-character error message (echoing the input?)`);
  return err as { code: string; message: string; hint: string };
}
