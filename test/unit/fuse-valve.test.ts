/**
 * The valve that keeps the guest's FUSE cache under virtiofsd's open-files
 * limit (share/fuse-valve.ts): its mark, its output, and the guest program
 * itself, run here on a count file and a drop file the test controls.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseValveLine, valveMark } from '../../app/engine/share/fuse-valve.js';
import { PROGRAMS_DIR } from '../../app/engine/guest/programs.js';
import { test } from '../helpers/prereq-gate.js';

const perl = spawnSync('perl', ['-e', '1']).status === 0 ? undefined : 'perl is not on PATH (apt-get install perl-base)';
const PROGRAM = path.join(PROGRAMS_DIR, 'fuse-valve.pl');

test('the mark leaves room for a fast walk while the valve looks and drops, and stays a share of small limits', () => {
  assert.equal(valveMark(20_000), 8_000, '40 % of this machine’s limit');
  assert.equal(valveMark(99_999), 39_999);
  assert.equal(valveMark(6_000), 1_000, 'at least 5,000 files of room');
  assert.equal(valveMark(1_024), 102, 'never below a tenth');
  for (const l of [1_024, 4_096, 6_000, 20_000, 65_536, 99_999]) assert.ok(valveMark(l) > 0 && valveMark(l) < l, String(l));
});

test('the guest side’s lines: drops and why it cannot run; anything else is ignored', () => {
  assert.deepEqual(parseValveLine('drop 8514 574 272'), { drop: { before: 8514, after: 574, ms: 272 } });
  assert.deepEqual(parseValveLine('none cannot write /proc/sys/vm/drop_caches: Permission denied'), {
    none: 'cannot write /proc/sys/vm/drop_caches: Permission denied',
  });
  for (const bad of ['drop 1 2', 'drop -1 2 3', 'drop 1 2 3 4', `drop ${'9'.repeat(12)} 1 1`, 'none ', 'none \u0007', `none ${'x'.repeat(300)}`, '', 'hello'])
    assert.equal(parseValveLine(bad), undefined, JSON.stringify(bad));
});

/** Run the program on files in a temp folder; `steps` change the count while it runs, then stdin closes. */
async function runValve(mark: number, steps: { count: string; ms: number }[]): Promise<{ out: string[]; drops: string; code: number | null }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-valve-'));
  const count = path.join(dir, 'objects');
  const drop = path.join(dir, 'drop_caches');
  fs.writeFileSync(count, steps[0]!.count);
  fs.writeFileSync(drop, '');
  const child = spawn('perl', [PROGRAM, String(mark), '0.02', '0.05', count, drop], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  for (const s of steps) {
    // Whole at once, as sysfs gives it: a read between truncate and write would see no count.
    fs.writeFileSync(`${count}.new`, s.count);
    fs.renameSync(`${count}.new`, count);
    await new Promise((r) => setTimeout(r, s.ms));
  }
  child.stdin.end();
  const code = await new Promise<number | null>((r) => child.on('close', r));
  const drops = fs.readFileSync(drop, 'utf8');
  fs.rmSync(dir, { recursive: true, force: true });
  return { out: out.split('\n').filter(Boolean), drops, code };
}

test('fuse-valve.pl: below the mark it never drops; EOF on stdin ends it', { needs: perl }, async () => {
  const r = await runValve(1000, [{ count: '999 N0=999\n', ms: 300 }]);
  assert.equal(r.code, 0);
  assert.deepEqual(r.out, []);
  assert.equal(r.drops, '');
});

test('fuse-valve.pl: past the mark it writes 2 to drop_caches and says so; once under, it stops', { needs: perl }, async () => {
  const r = await runValve(1000, [
    { count: '10 N0=10\n', ms: 150 },
    { count: '1500 N0=1500\n', ms: 80 },
    { count: '40 N0=40\n', ms: 300 },
  ]);
  assert.equal(r.code, 0);
  assert.equal(r.drops, '2\n', 'drop_caches got "2": names and inodes, not file data of files in use');
  assert.ok(r.out.length >= 1, r.out.join('\n'));
  for (const l of r.out) assert.ok(parseValveLine(l) && 'drop' in parseValveLine(l)!, l);
  assert.ok(r.out.length <= 3, `the count stood for 80 ms, and a drop that freed nothing waits 40 ms, then 80: ${r.out.join(' | ')}`);
});

test('fuse-valve.pl: a drop that frees nothing (files in use) backs off instead of dropping 50 times a second', { needs: perl }, async () => {
  const r = await runValve(1000, [{ count: '1500 N0=1500\n', ms: 1000 }]);
  assert.equal(r.code, 0);
  // At 20 ms a look, a second without back-off would be ~50 drops; doubling from 40 ms: 40+80+160+320 → 5.
  assert.ok(r.out.length >= 2 && r.out.length <= 7, `${r.out.length} drops: ${r.out.join(' | ')}`);
});

test('fuse-valve.pl: a count that grows after a drop (a walk going on) gets a drop at once, never a back-off', { needs: perl }, async () => {
  // CI: the C virtiofsd passed its limit of 6,000 during a walk while the
  // valve waited out a back-off: a drop during a walk leaves the count above
  // half the mark, which looked like files in use. Each step grows it by a
  // quarter of the mark and stands 60 ms; a back-off (40, 80, 160 ms …)
  // would skip some of them.
  const counts = [1500, 1800, 2100, 2400, 2700, 3000, 3300, 3600];
  const r = await runValve(
    1000,
    counts.map((c) => ({ count: `${c} N0=${c}\n`, ms: 60 })),
  );
  assert.equal(r.code, 0);
  const before = new Set(r.out.map((l) => (parseValveLine(l) as { drop: { before: number } }).drop.before));
  for (const c of counts) assert.ok(before.has(c), `a drop at ${c}: ${r.out.join(' | ')}`);
});

test('fuse-valve.pl: while the count grows it looks five times as often, so a short pass over the mark is caught', { needs: perl }, async () => {
  // FAST_S is 0.02 here (runValve); growing by a twentieth of the mark each
  // step, it looks every 4 ms, and the 10 ms above the mark cannot fall
  // between two looks (at 20 ms they could: about one time in two).
  const steps = [
    { count: '100 N0=100\n', ms: 150 },
    ...[200, 300, 400, 500, 600, 700, 800, 900].map((c) => ({ count: `${c} N0=${c}\n`, ms: 12 })),
    { count: '1600 N0=1600\n', ms: 10 },
    { count: '100 N0=100\n', ms: 200 },
  ];
  for (let round = 0; round < 5; round++) {
    const r = await runValve(1000, steps);
    assert.equal(r.code, 0);
    assert.ok(
      r.out.some((l) => /^drop 1600 /.test(l)),
      `round ${round}: the pass over the mark was caught: ${r.out.join(' | ') || 'no drop'}`,
    );
  }
});

test('fuse-valve.pl: with nothing to count it says why and ends', { needs: perl }, () => {
  const r = spawnSync('perl', [PROGRAM, '1000', '0.02', '0.05', '/nonexistent/objects', '/nonexistent/drop'], { encoding: 'utf8', input: '' });
  assert.equal(r.status, 0);
  const line = parseValveLine(r.stdout.trim());
  assert.ok(line && 'none' in line, r.stdout);
  assert.match(r.stdout, /\/nonexistent\/objects/);
  const bad = spawnSync('perl', [PROGRAM, 'lots'], { encoding: 'utf8', input: '' });
  assert.notEqual(bad.status, 0, 'a mark that is not a number is refused');
});
