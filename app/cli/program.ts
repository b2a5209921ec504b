import { Command, CommanderError, InvalidArgumentError } from 'commander';
import type { BerthError } from '../contract/errors.js';
import { validateInstanceName } from '../base/paths.js';
import { BERTH_VERSION } from '../base/version.js';

/**
 * The `berth` program with its global options and habits, and the commands
 * `addCommands` adds: main.ts adds them all, daemon-main.ts only `daemon`.
 */
export function berthProgram(addCommands: (program: Command) => void): Command {
  const program = new Command('berth')
    .description('Linux containers on your desktop: a small VM, your own docker CLI, ports and files that just work.')
    .version(BERTH_VERSION, '-V, --version')
    .option('-i, --instance <name>', 'the instance to act on', (v) => parseInstance(v), process.env.BERTH_INSTANCE || 'default')
    .option('--json', 'print machine-readable JSON')
    // Every command's help shows --instance and --json too (inherited by subcommands).
    .configureHelp({ showGlobalOptions: true })
    // Every usage error prints the failing command's own usage (inherited by subcommands).
    .showHelpAfterError(true)
    .exitOverride();
  addCommands(program);
  // The program's own usage errors (an unknown command: "Did you mean start?")
  // get one line pointing at the help, not the whole command list.
  program.showHelpAfterError('Usage: berth [options] <command>   (`berth --help` lists the commands)');
  return program;
}

export function parseInstance(v: string): string {
  try {
    return validateInstanceName(v);
  } catch (err) {
    throw new InvalidArgumentError((err as BerthError).message);
  }
}

/** Parse and run: help and --version exit 0, every usage error exits 2 (commander has printed it). */
export async function runProgram(program: Command, argv: string[]): Promise<void> {
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
