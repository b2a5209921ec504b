import { Command, CommanderError } from 'commander';
import { BERTH_VERSION } from '../base/version.js';
import { invocation, parseInstance } from './command-kit.js';
import { forwardCommands } from './commands/forwards.js';
import { guestCommands } from './commands/guest.js';
import { settingsCommands } from './commands/settings.js';
import { vmCommands } from './commands/vm.js';

/** The `berth` program: its global options, then the commands, one file per job (commands/). */
const program = new Command('berth');
program
  .description('Linux containers on your desktop: a small VM, your own docker CLI, ports and files that just work.')
  .version(BERTH_VERSION, '-V, --version')
  .option('-i, --instance <name>', 'the instance to act on', (v) => parseInstance(v), process.env.BERTH_INSTANCE || 'default')
  .option('--json', 'print machine-readable JSON')
  // Every usage error prints the failing command's own usage (inherited by subcommands).
  .showHelpAfterError(true)
  .exitOverride();

vmCommands(program);
guestCommands(program);
forwardCommands(program);
settingsCommands(program);

export async function main(argv: string[]): Promise<void> {
  invocation.argv = argv;
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --version exit 0; every usage error exits 2.
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    throw err;
  }
}
