// ESLint: typescript-eslint's recommended rules and the layer rule that holds
// the shape of app/ (see app/README.md). An import only goes down the layers;
// the renderer and preload see only the wire contract.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layers, lowest first. A file may import its own layer and any lower
 * one. `contract` is the wire contract (app/contract/, a leaf); `base` is
 * the engine's plain helpers (paths, fs and process helpers, logging, the
 * lock, the VM state machine).
 */
const LAYERS = [
  ['contract', ['app/contract/**']],
  ['base', ['app/engine/*.ts', 'app/engine/vm/**'], ['app/engine/engine.ts', 'app/engine/daemon.ts']],
  ['settings+guest', ['app/engine/settings/**', 'app/engine/guest/**']],
  ['drivers+forward+share+docker+image', ['app/engine/drivers/**', 'app/engine/forward/**', 'app/engine/share/**', 'app/engine/docker/**', 'app/engine/image/**']],
  ['boot+runtime', ['app/engine/boot/**', 'app/engine/runtime/**']],
  ['engine', ['app/engine/engine.ts']],
  ['api', ['app/engine/api/**']],
  ['daemon', ['app/engine/daemon.ts']],
];

/** How an import of each layer's files is written, seen from anywhere in app/. */
const IMPORT_OF = {
  'settings+guest': '(^|/)(settings|guest)/',
  'drivers+forward+share+docker+image': '(^|/)(drivers|forward|share|docker|image)/',
  'boot+runtime': '(^|/)(boot|runtime)/',
  engine: '(^|/)engine\\.js$',
  api: '(^|/)api/',
  daemon: '(^|/)daemon\\.js$',
};

/**
 * Imports that run the wrong way today, each a step of issue 15 ("one clear
 * house"): remove a line here when its import is gone, never add one.
 */
const KNOWN_WRONG_WAY = [
  'app/engine/settings/schema.ts', // settings -> share (sync path rules)
  'app/engine/settings/edits.ts', // settings -> share (sync paths)
  'app/engine/docker/docker-handlers.ts', // docker -> api (the Handlers type of the control server)
];

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
    name: 'berth/ui-sees-only-the-contract',
    files: ['app/renderer/**', 'app/preload/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { regex: '(^|/)engine/', message: 'the renderer and preload see only the wire contract (app/contract/)' },
            { regex: '(^|/)(cli|main)/', message: 'the renderer and preload see only the wire contract' },
          ],
        },
      ],
    },
  },
  {
    name: 'berth/known-wrong-way-imports (issue 15)',
    files: KNOWN_WRONG_WAY,
    rules: { 'no-restricted-imports': 'off' },
  },
);
