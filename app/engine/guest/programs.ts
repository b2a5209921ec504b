/**
 * The programs the engine runs in the guest (Perl and shell), kept as files
 * of their own in programs/ so that the tests can check them (`perl -c`,
 * `sh -n`: test/unit/guest-programs.test.ts) and read them at run time. The
 * folder sits next to this module: in the sources, and in dist/ where
 * `npm run build` copies it (scripts/copy-guest-programs.mjs).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sh } from '../../base/shell-quote.js';

export const PROGRAMS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'programs');

export type GuestProgram = 'sync-agent.pl' | 'nudge.pl' | 'socket-watch.pl' | 'udp-relay.pl' | 'host-relay.pl' | 'mounts.sh';

const loaded = new Map<GuestProgram, string>();

/** The text of a guest program, read once. */
export function guestProgram(name: GuestProgram): string {
  let text = loaded.get(name);
  if (text === undefined) {
    text = fs.readFileSync(path.join(PROGRAMS_DIR, name), 'utf8');
    loaded.set(name, text);
  }
  return text;
}

/** The guest command that runs a Perl program with these arguments (the image installs perl: vm-images/packages.txt). */
export function perlCommand(name: GuestProgram & `${string}.pl`, args: readonly (string | number)[] = []): string {
  return sh`exec perl -e ${guestProgram(name)} ${args.map(String)}`;
}

/** The guest command that runs a shell program with these arguments ($0 is the program's name). */
export function shellCommand(name: GuestProgram & `${string}.sh`, args: readonly string[]): string {
  return sh`sh -c ${guestProgram(name)} ${name.replace(/\.sh$/, '')} ${args}`;
}
