import { daemonCommand } from './commands/daemon.js';
import { berthProgram, runProgram } from './program.js';

/**
 * `berth daemon ...` as the engine launcher spawns it (bin/berth.js comes
 * here when the first argument is `daemon`): the program with only that
 * command, so the engine process does not load every other command, the
 * offline path and what they import (it holds them for as long as it
 * runs). Its options and errors are main.ts's.
 */
export async function main(argv: string[]): Promise<void> {
  await runProgram(berthProgram(daemonCommand), argv);
}
