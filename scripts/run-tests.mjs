#!/usr/bin/env node
// `npm test`: every test file in one `node --test` run (unit first, then the
// VM integration tests), the spec report on stdout, and a last line
// "N passed, N failed, N skipped" for CI. `node scripts/run-tests.mjs unit`
// runs only the unit tests. A suite or test whose prerequisite is missing
// (test/helpers/prereq-gate.ts) fails under CI=true; elsewhere it is skipped,
// each of its tests is counted, and one more line after the count names what
// was skipped and why.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const suites = process.argv.slice(2).length ? process.argv.slice(2) : ['unit', 'integration', 'e2e'];
const files = suites.flatMap((s) => {
  const dir = path.join(root, 'test', s);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => path.join('test', s, f));
});
if (!files.length) {
  console.error(`no test files in ${suites.join(', ')}`);
  process.exit(1);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-tests-'));
const tap = path.join(work, 'results.tap');
const skipLog = path.join(work, 'skipped.jsonl');
const args = [
  '--import',
  'tsx',
  '--test',
  // VM tests boot a VM each; on 2 cores they must not overlap.
  '--test-concurrency=1',
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=tap',
  `--test-reporter-destination=${tap}`,
  ...files,
];
const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit', env: { ...process.env, BERTH_TEST_SKIP_LOG: skipLog } });
child.on('close', (code, signal) => {
  let counts = { pass: 0, fail: 0, skipped: 0, cancelled: 0, todo: 0 };
  try {
    const text = fs.readFileSync(tap, 'utf8');
    for (const k of Object.keys(counts)) {
      const m = new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text);
      if (m) counts[k] = Number(m[1]);
    }
  } catch {
    counts.fail = Math.max(counts.fail, 1);
  }
  const skips = skippedPrereqs();
  fs.rmSync(work, { recursive: true, force: true });
  const failed = counts.fail + counts.cancelled;
  console.log(`\n${counts.pass} passed, ${failed} failed, ${counts.skipped + counts.todo} skipped`);
  if (skips) console.log(`skipped for a missing prerequisite (./scripts/test.sh installs them all): ${skips}`);
  process.exit(code ?? (signal ? 1 : 0));
});

/** "suite (why); other suite (why)" from the gate's log, or '' when nothing was skipped for a prerequisite. */
function skippedPrereqs() {
  let lines = [];
  try {
    lines = fs.readFileSync(skipLog, 'utf8').split('\n').filter(Boolean);
  } catch {
    return '';
  }
  const seen = new Set();
  for (const line of lines) {
    try {
      const { what, why } = JSON.parse(line);
      seen.add(`${what} (${why})`);
    } catch {
      /* a line cut short by a killed test process */
    }
  }
  return [...seen].join('; ');
}
