#!/usr/bin/env node
// Part of `npm run build`: tsc compiles only TypeScript, so the programs the
// engine runs in the guest (app/engine/guest/programs/*.pl, *.sh) are copied
// next to the compiled guest/programs.js, which reads them from there.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const from = path.join(root, 'app', 'engine', 'guest', 'programs');
const to = path.join(root, 'dist', 'app', 'engine', 'guest', 'programs');
fs.rmSync(to, { recursive: true, force: true });
fs.cpSync(from, to, { recursive: true });
