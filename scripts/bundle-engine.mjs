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
  logLevel: 'warning',
});
fs.cpSync(path.join(root, 'app', 'engine', 'guest', 'programs'), path.join(out, 'programs'), { recursive: true });
