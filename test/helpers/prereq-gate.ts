/**
 * Suites and tests that need something on this machine (QEMU, a guest
 * image, Chromium, sshfs, root...). Import `describe`, `test`, `before`,
 * `after` from here instead of node:test, and say what is missing:
 *
 *   gatedSuite('VM tests', problem, { timeout }, () => { test(...) ... });
 *   test('...', { needs: sshfsProblem }, async () => { ... });
 *   needNow(t, echoProblem)   // inside a test, for what is found out late
 *
 * Under CI (CI=true) a missing prerequisite is a failure that names it: CI
 * installs everything (scripts/test.sh), so a gap there is a bug in the
 * install step, never a green run. Elsewhere the suite is skipped, but every
 * test in it is still registered as skipped, so the closing count says how
 * many did not run, and the reason goes to the file scripts/run-tests.mjs
 * names in BERTH_TEST_SKIP_LOG for the last line of the run.
 */
import fs from 'node:fs';
import * as nt from 'node:test';

export const IN_CI = /^(1|true|yes)$/i.test(process.env.CI ?? '');

type Fn = (t: nt.TestContext) => void | Promise<void>;
type Hook = Parameters<typeof nt.before>[0];
type HookOpts = Parameters<typeof nt.before>[1];
export type GatedTestOptions = nt.TestOptions & { needs?: string | undefined };

/** The reason while the body of a skipped suite registers its tests. */
let skipping: string | undefined;

function logSkip(what: string, why: string): void {
  process.stdout.write(`# ${what} skipped: ${why}\n`);
  const file = process.env.BERTH_TEST_SKIP_LOG;
  if (file) fs.appendFileSync(file, JSON.stringify({ what, why }) + '\n');
}

function missing(what: string, why: string): Error {
  return new Error(`${what} cannot run on this machine: ${why}. CI installs every prerequisite (scripts/test.sh); install it, or fix that script.`);
}

/** A describe() whose tests all need `problem` to be undefined. */
export function gatedSuite(name: string, problem: string | undefined, opts: nt.TestOptions, fn: () => void): void {
  if (!problem || skipping) {
    nt.describe(name, opts, fn);
    return;
  }
  if (IN_CI) {
    nt.describe(name, opts, () => {
      nt.test('its prerequisites are installed', () => {
        throw missing(name, problem);
      });
    });
    return;
  }
  logSkip(name, problem);
  nt.describe(name, opts, () => {
    skipping = problem;
    try {
      fn();
    } finally {
      skipping = undefined;
    }
  });
}

/** node:test's describe, inside which a skipped suite's tests stay skipped. */
export function describe(name: string, opts: nt.TestOptions, fn: () => void): void {
  nt.describe(name, opts, fn);
}

/** node:test's test, plus `needs`: what is missing for this one test. */
export function test(name: string, fn: Fn): void;
export function test(name: string, opts: GatedTestOptions, fn: Fn): void;
export function test(name: string, a: GatedTestOptions | Fn, b?: Fn): void {
  const [opts, fn] = typeof a === 'function' ? [{} as GatedTestOptions, a] : [a, b!];
  const { needs, ...rest } = opts;
  if (skipping) {
    nt.test(name, { ...rest, skip: skipping });
    return;
  }
  if (needs && IN_CI) {
    nt.test(name, rest, () => {
      throw missing(`"${name}"`, needs);
    });
    return;
  }
  if (needs) {
    logSkip(`"${name}"`, needs);
    nt.test(name, { ...rest, skip: needs });
    return;
  }
  nt.test(name, rest, fn);
}

/** Inside a test: a prerequisite found missing only now (a fixture that did not build). */
export function needNow(t: nt.TestContext, problem: string | undefined): boolean {
  if (!problem) return false;
  if (IN_CI) throw missing(`"${t.name}"`, problem);
  logSkip(`"${t.name}"`, problem);
  t.skip(problem);
  return true;
}

// Hooks of a skipped suite do not run, but its `after` hooks (cleanup of
// what the suite's body made, such as temporary folders) still do.
export function before(fn: Hook, opts?: HookOpts): void {
  if (!skipping) nt.before(fn, opts);
}
export function beforeEach(fn: Hook, opts?: HookOpts): void {
  if (!skipping) nt.beforeEach(fn, opts);
}
export function afterEach(fn: Hook, opts?: HookOpts): void {
  if (!skipping) nt.afterEach(fn, opts);
}
export function after(fn: Hook, opts?: HookOpts): void {
  nt.after(fn, opts);
}
