#!/usr/bin/env node
// Part of `npm run build`, after tsc: the engine process (`berth daemon`)
// bundled, dist/engine/daemon.js and the chunks it loads, with the guest
// programs beside them (guest/programs.ts reads them from next to itself):
// a handful of files instead of some 270 modules (ours and the packages'),
// each kept with its own scope and source, since the engine holds
// what it loads for as long as it runs (issue 16). Packages with native or
// WebAssembly parts, or files they read next to themselves, stay outside
// and load from node_modules as before.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist', 'engine');

// zod's messages in every language it has, built into the schema API's
// namespace so that no bundler can leave them out: the engine speaks
// English only (zod's default), and the other 70-odd locales were a fifth
// of the engine's code (364 of 1,715 KB). Its locale index is replaced by
// one that has English alone (z.locales.en).
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (a) =>
      a.importer.includes(`${path.sep}node_modules${path.sep}zod${path.sep}`)
        ? { path: path.join(path.dirname(a.importer), a.path), namespace: 'zod-locales' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (a) => ({
      contents: `export { default as en } from ${JSON.stringify(path.join(path.dirname(a.path), 'en.js'))};`,
      resolveDir: path.dirname(a.path),
    }));
  },
};

fs.rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: { daemon: path.join(root, 'dist', 'app', 'cli', 'daemon-main.js') },
  outdir: out,
  bundle: true,
  // What the engine imports only when used (sync, the SFTP server, diagnostics) stays in chunks of its own.
  splitting: true,
  chunkNames: 'chunk-[hash]',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['ssh2', 'cpu-features', '@parcel/watcher'],
  // The CommonJS packages inside (commander, pino, ws) call require() for Node's own modules.
  banner: { js: "import { createRequire as __berthRequire } from 'node:module'; const require = __berthRequire(import.meta.url);" },
  // V8 keeps each script's source for as long as it runs: without the
  // layout and comments the engine's is a quarter smaller. Names stay, so
  // stack traces still say which function (issue 16: with both changes
  // the code is 975 KB instead of 1,715, and an idle engine 1.3 MiB less).
  minifyWhitespace: true,
  plugins: [zodEnglishOnly],
  logLevel: 'warning',
});
fs.cpSync(path.join(root, 'app', 'engine', 'guest', 'programs'), path.join(out, 'programs'), { recursive: true });
