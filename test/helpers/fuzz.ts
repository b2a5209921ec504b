/**
 * A small seeded generator for fuzz tests: the same seed gives the same
 * inputs, so a failure printed with its seed reproduces with
 * BERTH_FUZZ_SEED=<seed>. No property-testing library needed.
 */

export interface Rng {
  seed: number;
  /** A float in [0, 1). */
  next(): number;
  int(maxExclusive: number): number;
  pick<T>(xs: readonly T[]): T;
  bool(p?: number): boolean;
}

/** mulberry32: tiny, fast, good enough to pick test inputs. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    seed,
    next,
    int: (n) => Math.floor(next() * n),
    pick: (xs) => xs[Math.floor(next() * xs.length)]!,
    bool: (p = 0.5) => next() < p,
  };
}

/** The seed for this run: BERTH_FUZZ_SEED when set, else a fresh one. Printed so a failure can be replayed. */
export function fuzzSeed(what: string): number {
  const env = process.env.BERTH_FUZZ_SEED;
  const seed = env && /^\d+$/.test(env) ? Number(env) : Math.floor(Math.random() * 2 ** 31);
  process.stdout.write(`# ${what}: fuzz seed ${seed} (replay with BERTH_FUZZ_SEED=${seed})\n`);
  return seed;
}

const ODD_STRINGS = [
  '',
  ' ',
  '\u0000',
  '\u202e',
  '../../etc/passwd',
  '__proto__',
  'constructor',
  'toString',
  '😀',
  '\ud800',
  'a'.repeat(300),
  '%s%n',
  '"; rm -rf / #',
  '$(reboot)',
  'null',
  '-1',
  'NaN',
];

const ODD_NUMBERS = [0, -0, -1, 1, 1.5, 2 ** 31, 2 ** 53 + 2, -(2 ** 53), 1e308, -1e308, 5e-324, 65535, 65536, 511, 512, 4096];

export function randomString(r: Rng, maxLen = 40): string {
  if (r.bool(0.3)) return r.pick(ODD_STRINGS);
  const len = r.int(maxLen);
  let s = '';
  for (let i = 0; i < len; i++) {
    const k = r.int(10);
    s += k < 6 ? String.fromCharCode(0x20 + r.int(95)) : k < 8 ? String.fromCharCode(r.int(0x20)) : String.fromCharCode(0x80 + r.int(0xfff0));
  }
  return s;
}

/** Any JSON value, nested up to `depth`. */
export function randomJson(r: Rng, depth = 3): unknown {
  const k = r.int(depth > 0 ? 8 : 5);
  switch (k) {
    case 0:
      return null;
    case 1:
      return r.bool();
    case 2:
      return r.bool(0.5) ? r.pick(ODD_NUMBERS) : (r.next() - 0.5) * 10 ** r.int(12);
    case 3:
    case 4:
      return randomString(r);
    case 5:
      return Array.from({ length: r.int(4) }, () => randomJson(r, depth - 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = r.int(4); i > 0; i--) o[randomString(r, 12)] = randomJson(r, depth - 1);
      return o;
    }
  }
}

/** A value of some other JSON type than `v` (for "wrong type" cases). */
export function wrongType(r: Rng, v: unknown): unknown {
  for (;;) {
    const w = randomJson(r, 1);
    if (typeof w !== typeof v || Array.isArray(w) !== Array.isArray(v) || (w === null) !== (v === null)) return w;
  }
}

/** A JSON text broken in one of the ways a bad client breaks it (one line: no newline in it). */
export function malformedJson(r: Rng, good: string): string {
  const s = brokenJson(r, good).replace(/\n/g, ' ');
  return s.trim() ? s : `{${s}`;
}

function brokenJson(r: Rng, good: string): string {
  switch (r.int(7)) {
    case 0:
      return good.slice(0, Math.max(1, r.int(good.length))); // truncated
    case 1: {
      const i = r.int(good.length);
      return good.slice(0, i) + r.pick(['{', '}', '"', ',', ':', '[', '\\', '\u0000']) + good.slice(i); // a stray byte
    }
    case 2:
      return good.replace(/"/g, "'");
    case 3:
      return good + '}';
    case 4:
      return `${good}, ${good}`;
    case 5:
      return good.replace(/:/, '');
    default:
      return randomString(r, 60) || '{';
  }
}

/** Random bytes without a newline (one "line" of garbage). */
export function garbageLine(r: Rng, max = 200): Buffer {
  const b = Buffer.alloc(1 + r.int(max));
  for (let i = 0; i < b.length; i++) {
    let x = r.int(256);
    if (x === 0x0a) x = 0x0b;
    b[i] = x;
  }
  // A line of only whitespace is skipped by the reader (no answer), so make sure there is something.
  b[0] = 0x21 + r.int(90);
  return b;
}
