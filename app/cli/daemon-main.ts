import { CommanderError } from 'commander';
import { daemonCommand } from './commands/daemon.js';
import { berthProgram } from './program.js';

/**
 * `berth daemon ...` as the engine launcher spawns it (bin/berth.js comes
 * here when the first argument is `daemon`): the program with only that
 * command, so the engine process does not load every other command, the
 * offline path and what they import (it holds them for as long as it
 * runs). Its options and errors are main.ts's.
 */
export async function main(argv: string[]): Promise<void> {
  const program = berthProgram(daemonCommand);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    throw err;
  }
}
