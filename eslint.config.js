// ESLint: typescript-eslint's recommended rules and the layer rule that holds
// the shape of app/ (see app/README.md). An import only goes down the layers;
// the renderer and preload see only the wire contract.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layers, lowest first. A file may import its own layer and any lower
 * one. `contract` is the wire contract (app/contract/, a leaf); `base` is
 * the host helpers every process uses (app/base/: paths, fs and process
 * helpers, logging, the lock, ssh keys, shell quoting, the docker context)
 * and the VM state machine; `client` is what the front ends use to reach
 * an engine, or to do the offline work when none runs (app/client/).
 */
const LAYERS = [
  ['contract', ['app/contract/**']],
  ['base', ['app/base/**', 'app/engine/vm/**']],
  ['settings+guest', ['app/engine/settings/**', 'app/engine/guest/**']],
  [
    'drivers+forward+share+docker+image',
    ['app/engine/drivers/**', 'app/engine/forward/**', 'app/engine/share/**', 'app/engine/docker/**', 'app/engine/image/**'],
  ],
  ['boot+runtime', ['app/engine/boot/**', 'app/engine/runtime/**']],
  ['engine', ['app/engine/engine.ts']],
  ['api', ['app/engine/api/**']],
  ['daemon', ['app/engine/daemon.ts']],
  ['client', ['app/client/**']],
  ['cli+main', ['app/cli/**', 'app/main/**']],
];

/** How an import of each layer's files is written, seen from anywhere in app/. */
const IMPORT_OF = {
  'settings+guest': '(^|/)(settings|guest)/',
  'drivers+forward+share+docker+image': '(^|/)(drivers|forward|share|docker|image)/',
  'boot+runtime': '(^|/)(boot|runtime)/',
  engine: '(^|/)engine\\.js$',
  api: '(^|/)api/',
  daemon: '(^|/)daemon\\.js$',
  client: '(^|/)client/',
  'cli+main': '(^|/)(cli|main)/',
};

/**
 * Imports that run the wrong way today: remove a line here when its import
 * is gone, never add one. (Empty since issue 15's client layer.)
 */
const KNOWN_WRONG_WAY = [];

function restrictedAbove(index) {
  return LAYERS.slice(index + 1)
    .map(([name]) => IMPORT_OF[name])
    .filter(Boolean)
    .map((regex) => ({ regex, message: 'imports only go down the layers (app/README.md): move the shared part to a lower layer' }));
}

const layerRules = LAYERS.map(([name, files, ignores], i) => ({
  name: `berth/layer-${name}`,
  files,
  ...(ignores ? { ignores } : {}),
  rules: { 'no-restricted-imports': ['error', { patterns: restrictedAbove(i) }] },
})).filter((c) => c.rules['no-restricted-imports'][1].patterns.length);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test-artifacts/**', 'app/renderer/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    name: 'berth/defaults',
    languageOptions: { ecmaVersion: 2023, sourceType: 'module' },
    rules: {
      // Unused names are already errors in tsc (noUnusedLocals, noUnusedParameters).
      '@typescript-eslint/no-unused-vars': 'off',
      // Tests and fakes stand in for typed things (ssh2 channels, electron) on purpose.
      '@typescript-eslint/no-explicit-any': 'off',
      // Empty catch blocks say why in a comment; an empty function is a no-op callback.
      'no-empty': ['error', { allowEmptyCatch: true }],
      '@typescript-eslint/no-empty-function': 'off',
      // The guest's and QEMU's protocols are full of control characters.
      'no-control-regex': 'off',
      // `let x = default; try { x = read() } catch { ... }` is how we read what may be missing.
      'no-useless-assignment': 'off',
      // A BerthError is a diagnosis with its own message and hint, not a wrapper of what was caught.
      'preserve-caught-error': 'off',
    },
  },
  {
    name: 'berth/node-scripts',
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly' } },
  },
  ...layerRules,
  {
    name: 'berth/contract-is-a-leaf',
    files: ['app/contract/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^\\.\\./', message: 'the contract imports nothing of ours outside app/contract/' }] }],
    },
  },
  {
    name: 'berth/front-ends-use-the-client',
    files: ['app/cli/**', 'app/main/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [{ regex: '(^|/)engine/', message: 'the CLI and Electron main reach the engine through app/client/ and app/contract/, never app/engine/' }],
        },
      ],
    },
  },
  {
    name: 'berth/ui-sees-only-the-contract',
    files: ['app/renderer/**', 'app/preload/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { regex: '(^|/)(engine|base|client)/', message: 'the renderer and preload see only the wire contract (app/contract/)' },
            { regex: '(^|/)(cli|main)/', message: 'the renderer and preload see only the wire contract' },
          ],
        },
      ],
    },
  },
  ...(KNOWN_WRONG_WAY.length ? [{ name: 'berth/known-wrong-way-imports', files: KNOWN_WRONG_WAY, rules: { 'no-restricted-imports': 'off' } }] : []),
);
