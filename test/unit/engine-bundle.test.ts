/**
 * The engine process runs from one bundle (scripts/bundle-engine.mjs, part
 * of `npm run build`): `berth daemon` loads dist/engine/daemon.js and its
 * chunks, with the guest programs beside them. The VM suites run the real
 * engine from it; this checks its shape on every machine.
 */
import assert from 'node:assert/strict';
import { builtinModules } from 'node:module';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { guestProgram, PROGRAMS_DIR, type GuestProgram } from '../../app/engine/guest/programs.js';
import { needNow, test } from '../helpers/prereq-gate.js';
import { ROOT } from '../helpers/run.js';

const dir = path.join(ROOT, 'dist', 'engine');
const built = () => (fs.existsSync(path.join(dir, 'daemon.js')) ? undefined : 'dist/engine/daemon.js is missing (npm run build)');

test('the engine bundle carries every guest program beside it', (t) => {
  if (needNow(t, built())) return;
  const files = fs.readdirSync(PROGRAMS_DIR).sort();
  assert.deepEqual(fs.readdirSync(path.join(dir, 'programs')).sort(), files);
  for (const f of files) assert.equal(fs.readFileSync(path.join(dir, 'programs', f), 'utf8'), guestProgram(f as GuestProgram), f);
});

test("the engine bundle loads only Node's modules, its own chunks and the packages kept outside (native or WebAssembly)", (t) => {
  if (needNow(t, built())) return;
  const outside = new Set(['ssh2', '@parcel/watcher']);
  const builtins = new Set(builtinModules);
  const seen = new Set<string>();
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.js'))) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    const specs =
      // (Statements start a line or follow a `;` or `}`: the bundle is minified.)
      /(?:^|[;}])(?:import|export)\b[^\n;]*?\bfrom ?["']([^"']+)["']|(?:^|[;}])import ?["']([^"']+)["']|\bimport\(["']([^"']+)["']\)|\brequire2?\(["']([^"']+)["']\)/gm;
    for (const m of text.matchAll(specs)) seen.add((m[1] ?? m[2] ?? m[3] ?? m[4])!);
  }
  const odd = [...seen].filter((s) => {
    if (s.startsWith('node:') || builtins.has(s)) return false;
    if (/^\.\/chunk-[A-Z0-9]+\.js$/.test(s)) return !fs.existsSync(path.join(dir, s));
    const pkg = s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!;
    return !outside.has(pkg);
  });
  assert.deepEqual(odd, [], 'nothing from dist/app or another package is loaded beside the bundle');
  // ssh2 by its own files (app/base/ssh2-parts.ts), not its index.
  assert.ok(seen.has('ssh2/lib/client.js') && !seen.has('ssh2') && seen.has('@parcel/watcher'), [...seen].join(' '));
});

test("the engine bundle has zod's English messages and no other language's (scripts/bundle-engine.mjs)", (t) => {
  if (needNow(t, built())) return;
  const text = fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.js'))
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))
    .join('\n');
  // A word of zod's German locale (de.js), and of its English one (en.js).
  assert.ok(!text.includes('Kreditkartennummer'), "zod's other locales are in the bundle: its locale index moved?");
  assert.ok(text.includes('credit card number'), "zod's English messages are missing from the bundle");
});

test('`berth daemon` runs from the bundle', (t) => {
  if (needNow(t, built())) return;
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'berth.js'), 'daemon', '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Usage: berth daemon/);
  assert.match(fs.readFileSync(path.join(ROOT, 'bin', 'berth.js'), 'utf8'), /dist\/engine\/daemon\.js/);
});
