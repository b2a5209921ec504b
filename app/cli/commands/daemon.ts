import type { Command } from 'commander';
import { runEngineHere } from '../../client/engine-here.js';
import type { Globals } from '../command-kit.js';
import { printError } from '../output.js';

/** `berth daemon`: the engine in the foreground (what the desktop app and `berth start` spawn). */
export function daemonCommand(program: Command): void {
  program
    .command('daemon')
    .description('run the engine in the foreground (the desktop app and `berth start` use this)')
    .option('--exit-on-stop', 'exit once the VM has been stopped')
    .action(async (opts: { exitOnStop?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals() as Globals;
      try {
        await runEngineHere({ instance: g.instance, exitOnStop: !!opts.exitOnStop });
      } catch (err) {
        printError(err, !!g.json);
        process.exitCode = 1;
      }
    });
}
