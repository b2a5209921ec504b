/**
 * The programs the engine runs in the guest (app/engine/guest/programs/)
 * are files, so they are checked as programs: every Perl one compiles
 * (`perl -c`), every shell one parses in each shell it may meet (`sh -n`
 * under dash and busybox sh), and `npm run build` carries all of them
 * into dist/ where the built engine reads them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { guestProgram, PROGRAMS_DIR, type GuestProgram } from '../../app/engine/guest/programs.js';
import { guestShells } from '../helpers/guest-shells.js';
import { needNow, test } from '../helpers/prereq-gate.js';
import { ROOT } from '../helpers/run.js';

const files = fs.readdirSync(PROGRAMS_DIR).sort();
const perl = spawnSync('perl', ['-e', '1']).status === 0 ? undefined : 'perl is not on PATH (it is in every Debian guest; apt-get install perl-base)';

test('the programs folder holds Perl and shell programs only, each one the engine can load', () => {
  assert.ok(files.length >= 5, files.join(' '));
  for (const f of files) {
    assert.match(f, /^[a-z0-9-]+\.(pl|sh)$/, f);
    assert.ok(guestProgram(f as GuestProgram).length > 0, f);
  }
});

for (const f of files.filter((n) => n.endsWith('.pl'))) {
  test(`${f} compiles (perl -c)`, { needs: perl }, () => {
    const r = spawnSync('perl', ['-c', path.join(PROGRAMS_DIR, f)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });
}

test('the guest image installs perl, not only perl-base: the programs use modules perl-base lacks', () => {
  const uses = files.filter((n) => n.endsWith('.pl')).flatMap((f) => [...guestProgram(f as GuestProgram).matchAll(/\buse ([A-Z][\w:]+)/g)].map((m) => m[1]!));
  assert.ok(uses.includes('Time::HiRes'), 'the sync agent stats with sub-second times');
  const packages = fs.readFileSync(path.join(ROOT, 'vm-images/packages.txt'), 'utf8');
  assert.match(packages, /^perl$/m, 'Time::HiRes is in libperl, which perl brings; perl-base has no copy');
});

for (const shell of guestShells()) {
  for (const f of files.filter((n) => n.endsWith('.sh'))) {
    test(`${f} parses under ${shell.name} (sh -n)`, { needs: shell.problem }, () => {
      const r = spawnSync(shell.argv[0]!, [...shell.argv.slice(1), '-n', path.join(PROGRAMS_DIR, f)], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    });
  }
}

test('npm run build copies every guest program next to the compiled engine', (t) => {
  const dist = path.join(ROOT, 'dist', 'app', 'engine', 'guest');
  if (needNow(t, fs.existsSync(path.join(dist, 'programs.js')) ? undefined : 'dist/app/engine/guest/programs.js is missing (npm run build)')) return;
  assert.deepEqual(fs.readdirSync(path.join(dist, 'programs')).sort(), files);
  for (const f of files) assert.equal(fs.readFileSync(path.join(dist, 'programs', f), 'utf8'), guestProgram(f as GuestProgram), f);
});
