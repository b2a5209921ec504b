/**
 * The layer rule in eslint.config.js (app/README.md): an import only goes
 * down the layers, and the renderer and preload see only the wire contract.
 * Deliberately wrong imports, linted as if they stood in those files, must
 * be refused; the right ones must pass.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ESLint } from 'eslint';
import { ROOT } from '../helpers/run.js';

const eslint = new ESLint({ cwd: ROOT });

async function layerErrors(file: string, code: string): Promise<string[]> {
  const [res] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return res!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

const wrong: [string, string][] = [
  ['app/renderer/src/probe.tsx', "import { QemuDriver } from '../../engine/drivers/qemu.js';\nexport const x = QemuDriver;\n"],
  ['app/preload/probe.ts', "import { Engine } from '../engine/engine.js';\nexport const x = Engine;\n"],
  ['app/renderer/src/probe.tsx', "import { main } from '../../cli/main.js';\nexport const x = main;\n"],
  ['app/engine/guest/probe.ts', "import { ShareManager } from '../share/share-manager.js';\nexport const x = ShareManager;\n"],
  ['app/engine/settings/probe.ts', "import { Engine } from '../engine.js';\nexport const x = Engine;\n"],
  ['app/engine/share/probe.ts', "import { ControlServer } from '../api/control-server.js';\nexport const x = ControlServer;\n"],
  ['app/base/probe.ts', "import { startDaemon } from '../engine/daemon.js';\nexport const x = startDaemon;\n"],
  ['app/base/probe.ts', "import { ControlClient } from '../client/control-client.js';\nexport const x = ControlClient;\n"],
  ['app/cli/probe.ts', "import { Engine } from '../engine/engine.js';\nexport const x = Engine;\n"],
  ['app/cli/probe.ts', "import { SettingsStore } from '../engine/settings/store.js';\nexport const x = SettingsStore;\n"],
  ['app/main/probe.ts', "import { QemuDriver } from '../engine/drivers/qemu.js';\nexport const x = QemuDriver;\n"],
  ['app/client/probe.ts', "import { main } from '../cli/main.js';\nexport const x = main;\n"],
  ['app/renderer/src/probe.tsx', "import { berthHome } from '../../base/paths.js';\nexport const x = berthHome;\n"],
  ['app/preload/probe.ts', "import { ControlClient } from '../client/control-client.js';\nexport const x = ControlClient;\n"],
  ['app/engine/share/probe.ts', "import { GuestRuntime } from '../runtime/guest-runtime.js';\nexport const x = GuestRuntime;\n"],
  ['app/engine/runtime/probe.ts', "import { Engine } from '../engine.js';\nexport const x = Engine;\n"],
  ['app/contract/contract-docker.ts', "import { Engine } from '../engine/engine.js';\nexport const x = Engine;\n"],
  ['app/contract/probe.ts', "import { berthHome } from '../engine/paths.js';\nexport const x = berthHome;\n"],
  ['app/renderer/src/probe.tsx', "import { BerthError } from '../../engine/errors';\nexport const x = BerthError;\n"],
];

for (const [file, code] of wrong) {
  test(`refused: ${code.split('\n')[0]} in ${file}`, async () => {
    const errs = await layerErrors(file, code);
    assert.equal(errs.length, 1, `expected the layer rule to refuse it, got ${JSON.stringify(errs)}`);
  });
}

const right: [string, string][] = [
  [
    'app/renderer/src/probe.tsx',
    "import { METHODS } from '../../contract/contract';\nimport { BerthError } from '../../contract/errors';\nexport const x = [METHODS, BerthError];\n",
  ],
  [
    'app/engine/share/probe.ts',
    "import { GuestSession } from '../guest/session.js';\nimport { BerthError } from '../../contract/errors.js';\nexport const x = [GuestSession, BerthError];\n",
  ],
  [
    'app/engine/api/probe.ts',
    "import { Engine } from '../engine.js';\nimport { METHODS } from '../../contract/contract.js';\nexport const x = [Engine, METHODS];\n",
  ],
  [
    'app/cli/probe.ts',
    "import { ControlClient } from '../client/control-client.js';\nimport { berthHome } from '../base/paths.js';\nexport const x = [ControlClient, berthHome];\n",
  ],
  [
    'app/main/probe.ts',
    "import { connectOrLaunch } from '../client/engine-launcher.js';\nimport { METHODS } from '../contract/contract.js';\nexport const x = [connectOrLaunch, METHODS];\n",
  ],
  ['app/client/probe.ts', "import { SettingsStore } from '../engine/settings/store.js';\nexport const x = SettingsStore;\n"],
  [
    'app/engine/daemon.ts',
    "import { Engine } from './engine.js';\nimport { ControlServer } from './api/control-server.js';\nexport const x = [Engine, ControlServer];\n",
  ],
];

for (const [file, code] of right) {
  test(`allowed: imports that go down, in ${file}`, async () => {
    assert.deepEqual(await layerErrors(file, code), []);
  });
}

test('the front ends import nothing from app/engine/, dynamic imports included', () => {
  const offenders: string[] = [];
  for (const dir of ['cli', 'main', 'renderer', 'preload']) {
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.tsx?$/.test(e.name)) {
          const src = fs.readFileSync(p, 'utf8');
          for (const m of src.matchAll(/(?:from\s+|import\s*\(\s*)['"]([^'"]+)['"]/g)) {
            if (/(^|\/)engine\//.test(m[1]!)) offenders.push(`${path.relative(ROOT, p)}: ${m[1]}`);
          }
        }
      }
    };
    walk(path.join(ROOT, 'app', dir));
  }
  assert.deepEqual(offenders, [], 'the CLI and Electron main use app/client/ and app/contract/ (the renderer and preload only the contract)');
});

test('app/engine/ holds only engine.ts and daemon.ts at its top: helpers live in app/base/, where the layer rule sees them', () => {
  const top = fs
    .readdirSync(path.join(ROOT, 'app', 'engine'), { withFileTypes: true })
    .filter((e) => e.isFile() && /\.tsx?$/.test(e.name))
    .map((e) => e.name)
    .sort();
  assert.deepEqual(top, ['daemon.ts', 'engine.ts']);
});

/** Every .ts/.tsx file under app/, with the files of ours it imports (types too). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.tsx?$/.test(e.name)) {
        const src = fs.readFileSync(p, 'utf8');
        const deps: string[] = [];
        for (const m of src.matchAll(/^(?:import|export)\s[^;]*?from\s+['"](\.[^'"]+)['"]/gms)) {
          const base = path.resolve(path.dirname(p), m[1]!).replace(/\.js$/, '');
          const hit = ['.ts', '.tsx', '/index.ts'].map((x) => base + x).find((f) => fs.existsSync(f));
          if (hit) deps.push(hit);
        }
        graph.set(p, deps);
      }
    }
  };
  walk(path.join(ROOT, 'app'));
  return graph;
}

test('no import cycle in app/, type imports included', () => {
  const graph = importGraph();
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const stack: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    stack.push(f);
    for (const d of graph.get(f) ?? []) {
      if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].map((x) => path.relative(ROOT, x)).join(' -> '));
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of [...graph.keys()].sort()) if (!state.has(f)) visit(f);
  assert.deepEqual(cycles, []);
});

test("no code outside app/engine/drivers/ compares driver names (it asks the driver's features)", () => {
  const found: string[] = [];
  for (const f of importGraph().keys()) {
    if (f.startsWith(path.join(ROOT, 'app', 'engine', 'drivers') + path.sep)) continue;
    fs.readFileSync(f, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (/[!=]==?\s*['"](qemu|vfkit|hyperv)['"]|['"](qemu|vfkit|hyperv)['"]\s*[!=]==?|case\s+['"](qemu|vfkit|hyperv)['"]/.test(line))
          found.push(`${path.relative(ROOT, f)}:${i + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(found, []);
});

test('no source file under app/ is over 500 lines (split it by job first)', () => {
  const over: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && e.name !== 'dist') walk(p);
      } else if (/\.tsx?$/.test(e.name)) {
        const lines = fs.readFileSync(p, 'utf8').split('\n').length - 1;
        if (lines > 500) over.push(`${path.relative(ROOT, p)}: ${lines}`);
      }
    }
  };
  walk(path.join(ROOT, 'app'));
  assert.deepEqual(over, []);
});
