/**
 * The README says only what runs produced, and names what checks it.
 *
 * Numbers from the bench. Convention: a README block (a paragraph, a list
 * item or a table row) that links a results file in bench/ quotes numbers
 * from that file only; each number in the block must appear in the file,
 * the same figure, or for a time the same time rounded as the README
 * rounds it (the README's "17.4 s" is the file's "17392.0 ms").
 *
 * Tests behind claims. Every row of the Reliability table names in its
 * last column the tests that check it, as `test/<folder>/<file>` "name",
 * where the name is the test's name or a part of it (names carrying a seed
 * or a size are quoted without it); the file must exist and have a test
 * with that name. The soak is a bench: its row names `bench/soak.ts`.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/run.js';

const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** Paragraphs, list items and table rows, each as one string. */
function blocks(md: string): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  const flush = () => {
    if (cur.length) out.push(cur.join(' '));
    cur = [];
  };
  for (const line of md.split('\n')) {
    if (!line.trim() || line.startsWith('#') || line.startsWith('```')) flush();
    else if (line.startsWith('|')) {
      flush();
      out.push(line);
    } else if (/^\s*[-*] /.test(line)) {
      flush();
      cur.push(line);
    } else cur.push(line);
  }
  flush();
  return out;
}

interface Figure {
  value: number;
  /** Digits after the point, as written. */
  decimals: number;
  unit: string;
}

/** Numbers with their units: "17.4 s", "5,000", "500 MiB", "3.6 MB/s". Code spans and links are left out. */
function figures(text: string): Figure[] {
  const plain = text.replace(/`[^`]*`/g, ' ').replace(/\]\([^)]*\)/g, ']');
  const out: Figure[] = [];
  for (const m of plain.matchAll(/(?<![\w.-])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?:\s?(ms|s|min|MiB|GiB|KiB|MB\/s|%))?(?![\w])/g)) {
    out.push({ value: Number(`${m[1]!.replace(/,/g, '')}${m[2] ? `.${m[2]}` : ''}`), decimals: m[2]?.length ?? 0, unit: m[3] ?? '' });
  }
  return out;
}

/** Does the results file hold this figure (a time in any unit, rounded as the README rounds it)? */
function holds(file: Figure[], f: Figure): boolean {
  const round = (x: number) => Math.round(x * 10 ** f.decimals) / 10 ** f.decimals;
  const seconds = (x: Figure) => (x.unit === 'ms' ? x.value / 1000 : x.unit === 's' ? x.value : x.unit === 'min' ? x.value * 60 : undefined);
  if (f.unit === 's' || f.unit === 'ms') {
    const want = f.unit === 'ms' ? f.value / 1000 : f.value;
    return file.some(
      (x) => seconds(x) !== undefined && round(f.unit === 'ms' ? seconds(x)! * 1000 : seconds(x)!) === round(f.unit === 'ms' ? want * 1000 : want),
    );
  }
  return file.some((x) => x.value === f.value);
}

test('every number a README block quotes from a bench results file is in that file', () => {
  let checked = 0;
  for (const block of blocks(README)) {
    const linked = [...block.matchAll(/\]\((bench\/[\w.-]+\.md)\)/g)].map((m) => m[1]!);
    if (!linked.length) continue;
    const file = linked.flatMap((f) => {
      const p = path.join(ROOT, f);
      assert.ok(fs.existsSync(p), `the README links ${f}, which is not committed`);
      return figures(fs.readFileSync(p, 'utf8'));
    });
    for (const f of figures(block)) {
      checked++;
      assert.ok(
        holds(file, f),
        `the README quotes ${f.value}${f.unit ? ` ${f.unit}` : ''} next to a link to ${linked.join(', ')}, and no such figure is in it:\n${block.slice(0, 300)}`,
      );
    }
  }
  assert.ok(checked >= 15, `only ${checked} figures checked: did the convention change?`);
});

test('the check catches a figure that is not in the results file', () => {
  const file = figures('| create | 17392.0 ms | 5,000 files | 3.1 MiB |');
  assert.ok(holds(file, figures('17.4 s')[0]!));
  assert.ok(holds(file, figures('5,000')[0]!));
  assert.ok(!holds(file, figures('17.5 s')[0]!));
  assert.ok(!holds(file, figures('2 s')[0]!));
  assert.ok(!holds(file, figures('3.2 MiB')[0]!));
});

/** The names of the tests in a test file: the first string of each test(...) call (a template's ${...} kept as written). */
function testNames(text: string): string[] {
  const names: string[] = [];
  for (const m of text.matchAll(/(?:\b[a-zA-Z]*[tT]est|\))\(\s*(['"`])/g)) {
    const q = m[1]!;
    const from = m.index! + m[0].length;
    let to = from;
    while (to < text.length && (text[to] !== q || text[to - 1] === '\\')) to++;
    names.push(text.slice(from, to).replace(/\\(['"`])/g, '$1'));
  }
  return names;
}

test('every Reliability row names tests that exist, by file and name', () => {
  const lines = README.split('\n');
  const head = lines.findIndex((l) => l.startsWith('| fault, load or bad input |'));
  assert.ok(head > 0, 'the Reliability table');
  assert.match(lines[head]!, /\| test \(file: name\) \|$/);
  let rows = 0;
  for (const line of lines.slice(head + 2)) {
    if (!line.startsWith('|')) break;
    if (/^\|[^|]*\*\*[^|]*(\|\s*)+$/.test(line)) continue; // a section heading: | **Faults** ... | | | |
    const cells = line.slice(1, -1).split(' | ');
    rows++;
    const refs = [...cells[cells.length - 1]!.matchAll(/`((?:test|bench)\/[\w./-]+\.ts)` "([^"]+)"/g)];
    assert.ok(refs.length > 0, `a row names no test: ${cells[0]!.slice(0, 80)}`);
    for (const [, file, name] of refs) {
      const p = path.join(ROOT, file!);
      assert.ok(fs.existsSync(p), `${file} (named for "${cells[0]!.slice(0, 60)}") does not exist`);
      const text = fs.readFileSync(p, 'utf8');
      const found = file!.startsWith('bench/') ? new RegExp(`function ${name}\\b`).test(text) : testNames(text).some((n) => n.includes(name!));
      assert.ok(found, `${file} has no test named "${name}" (named for "${cells[0]!.slice(0, 60)}")`);
    }
  }
  assert.ok(rows >= 40, `${rows} rows`);
});

/** Number literals in a test's code, `60_000` read as 60000. */
function literals(text: string): Set<number> {
  return new Set([...text.matchAll(/(?<![\w.])(\d[\d_]*)(?:\.\d+)?(?![\w])/g)].map((m) => Number(m[1]!.replace(/_/g, ''))));
}

/** A Reliability row's times are bounds or parameters its tests hold, never a measurement of one run: those belong to the bench. */
function unheldTimes(row: string, testTexts: string[]): string[] {
  const cells = row.slice(1, -1).split(' | ');
  const claim = cells.slice(0, -1).join(' | ');
  const held = new Set(testTexts.flatMap((t) => [...literals(t)]));
  const out: string[] = [];
  for (const f of figures(claim)) {
    if (f.unit === 'MB/s') out.push(`${f.value} ${f.unit}`);
    else if (f.unit === 's' || f.unit === 'ms' || f.unit === 'min') {
      const ms = f.value * (f.unit === 's' ? 1000 : f.unit === 'min' ? 60_000 : 1);
      if (!held.has(ms) && !held.has(f.value)) out.push(`${f.value} ${f.unit}`);
    }
  }
  return out;
}

test('a time in a Reliability row is a bound or parameter of its tests, not a number from one run', () => {
  const lines = README.split('\n');
  const head = lines.findIndex((l) => l.startsWith('| fault, load or bad input |'));
  let checked = 0;
  for (const line of lines.slice(head + 2)) {
    if (!line.startsWith('|')) break;
    const files = [...line.matchAll(/`((?:test|bench)\/[\w./-]+\.ts)` "/g)].map((m) => m[1]!);
    if (!files.length) continue;
    const texts = [...new Set(files)].map((f) => fs.readFileSync(path.join(ROOT, f), 'utf8'));
    checked++;
    assert.deepEqual(
      unheldTimes(line, texts),
      [],
      `a Reliability row quotes a time its tests do not hold (a measurement belongs in a bench results file): ${line.slice(0, 200)}`,
    );
  }
  assert.ok(checked >= 40, `${checked} rows`);
});

test('the time check catches a measured time in a row', () => {
  const row = '| 200 requests | all answered (15.6 s under TCG), within 60 s | nothing | `test/x.ts` "y" |';
  assert.deepEqual(unheldTimes(row, ['await waitFor(ok, 60_000);']), ['15.6 s']);
  assert.deepEqual(unheldTimes('| cp | in 594 s (3.6 MB/s) | nothing | `test/x.ts` "y" |', ['t(594)']), ['3.6 MB/s']);
  assert.deepEqual(unheldTimes(row.replace(' (15.6 s under TCG)', ''), ['await waitFor(ok, 60_000);']), []);
});
