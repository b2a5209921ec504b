/**
 * What the README promises of a missing prerequisite: under CI=true the run
 * fails and names it; elsewhere every test of the skipped suite counts as
 * skipped and the run's last line says which suites and why. Checked on a
 * small test file run by the real runner (scripts/run-tests.mjs' node --test
 * with the gate), not on the gate's insides.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { ROOT } from '../helpers/run.js';
import { shortTempDir } from '../helpers/temp.js';

const t = shortTempDir('pg');
after(() => t.cleanup());

const gate = path.join(ROOT, 'test', 'helpers', 'prereq-gate.ts');
const sample = path.join(t.dir, 'sample.test.ts');
fs.writeFileSync(
  sample,
  `import { after, before, gatedSuite, needNow, test } from ${JSON.stringify(gate)};
gatedSuite('a suite that needs a frobnicator', 'frobnicator is not installed (apt-get install frobnicator)', {}, () => {
  before(() => { throw new Error('a skipped suite ran its before hook'); });
  after(() => { process.stdout.write('# cleanup ran\\n'); });
  test('one', () => { throw new Error('ran'); });
  test('two', () => { throw new Error('ran'); });
  test('three', () => { throw new Error('ran'); });
});
gatedSuite('a suite with all it needs', undefined, {}, () => {
  test('runs', () => undefined);
});
test('a test that needs a widget', { needs: 'widget is missing (apt-get install widget)' }, () => { throw new Error('ran'); });
test('a test that learns late', (t) => { if (needNow(t, 'the fixture did not build (apt-get install gcc)')) return; throw new Error('ran'); });
`,
);

/** The runner of `npm test` on just the sample file, with CI set or not. */
function runSample(ci: boolean): { code: number | null; out: string; last: string[] } {
  // scripts/run-tests.mjs picks files from test/<suite>; run its logic on the sample by pointing it at a copy of the tree.
  const fakeRoot = path.join(t.dir, ci ? 'ci' : 'dev');
  fs.mkdirSync(path.join(fakeRoot, 'scripts'), { recursive: true });
  fs.mkdirSync(path.join(fakeRoot, 'test', 'unit'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'scripts', 'run-tests.mjs'), path.join(fakeRoot, 'scripts', 'run-tests.mjs'));
  fs.copyFileSync(sample, path.join(fakeRoot, 'test', 'unit', 'sample.test.ts'));
  if (!fs.existsSync(path.join(fakeRoot, 'node_modules'))) fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(fakeRoot, 'node_modules'));
  const env = { ...process.env };
  delete env.CI;
  delete env.BERTH_TEST_SKIP_LOG;
  delete env.NODE_TEST_CONTEXT; // else the child's node --test thinks it runs inside this one
  if (ci) env.CI = 'true';
  const r = spawnSync(process.execPath, [path.join(fakeRoot, 'scripts', 'run-tests.mjs'), 'unit'], { cwd: fakeRoot, env, encoding: 'utf8', timeout: 120_000 });
  const out = r.stdout + r.stderr;
  return { code: r.status, out, last: r.stdout.trimEnd().split('\n').slice(-2) };
}

test('outside CI: every test of a skipped suite counts as skipped, hooks stay still, cleanup runs, and the last line names what and why', () => {
  const r = runSample(false);
  assert.equal(r.code, 0, r.out);
  assert.equal(r.last[0], '1 passed, 0 failed, 5 skipped', r.out);
  assert.match(r.last[1]!, /^skipped for a missing prerequisite \(\.\/scripts\/test\.sh installs them all\): /);
  assert.match(r.last[1]!, /a suite that needs a frobnicator \(frobnicator is not installed \(apt-get install frobnicator\)\)/);
  assert.match(r.last[1]!, /"a test that needs a widget" \(widget is missing \(apt-get install widget\)\)/);
  assert.match(r.last[1]!, /"a test that learns late" \(the fixture did not build \(apt-get install gcc\)\)/);
  assert.match(r.out, /# cleanup ran/);
  assert.doesNotMatch(r.out, /a skipped suite ran its before hook/);
});

test('under CI=true: a missing prerequisite fails the run and names the package; nothing is skipped', () => {
  const r = runSample(true);
  assert.notEqual(r.code, 0, r.out);
  assert.equal(r.last[1], '1 passed, 3 failed, 0 skipped', r.out);
  assert.match(r.out, /a suite that needs a frobnicator cannot run on this machine: frobnicator is not installed \(apt-get install frobnicator\)/);
  assert.match(r.out, /widget is missing \(apt-get install widget\)/);
  assert.match(r.out, /apt-get install gcc/);
  assert.doesNotMatch(r.out, /skipped for a missing prerequisite/);
});
