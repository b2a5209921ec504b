#!/usr/bin/env node
// The `berth` command. The CLI is compiled from app/cli by `npm run build`.
// `berth daemon` (the engine, spawned as `berth daemon --instance NAME`)
// runs the engine's bundle (scripts/bundle-engine.mjs): only that command,
// bundled with its chunks, since the engine process keeps what it loads.
import { existsSync } from 'node:fs';

const entry = new URL(process.argv[2] === 'daemon' ? '../dist/engine/daemon.js' : '../dist/app/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('error: Berth is not built yet [ENGINE_START_FAILED]\nhint: run `npm run build` in the Berth folder first.\n');
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv);
