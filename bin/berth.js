#!/usr/bin/env node
// The `berth` command. The CLI is compiled from app/cli by `npm run build`.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/app/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('error: Berth is not built yet [ENGINE_START_FAILED]\nhint: run `npm run build` in the Berth folder first.\n');
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv);
