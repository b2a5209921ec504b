import { Command, CommanderError } from 'commander';
import { BERTH_VERSION } from '../base/version.js';
import { invocation, parseInstance } from './command-kit.js';
import { aboutCommands } from './commands/about.js';
import { forwardCommands } from './commands/forwards.js';
import { guestCommands } from './commands/guest.js';
import { instanceCommands } from './commands/instances.js';
import { settingsCommands } from './commands/settings.js';
import { vmCommands } from './commands/vm.js';

/** The `berth` program: its global options, then the commands, one file per job (commands/). */
const program = new Command('berth');
program
  .description('Linux containers on your desktop: a small VM, your own docker CLI, ports and files that just work.')
  .version(BERTH_VERSION, '-V, --version')
  .option('-i, --instance <name>', 'the instance to act on', (v) => parseInstance(v), process.env.BERTH_INSTANCE || 'default')
  .option('--json', 'print machine-readable JSON')
  // Every command's help shows --instance and --json too (inherited by subcommands).
  .configureHelp({ showGlobalOptions: true })
  // Every usage error prints the failing command's own usage (inherited by subcommands).
  .showHelpAfterError(true)
  .exitOverride();

vmCommands(program);
guestCommands(program);
forwardCommands(program);
settingsCommands(program);
instanceCommands(program);
aboutCommands(program);

// The program's own usage errors (an unknown command: "Did you mean start?")
// get one line pointing at the help, not the whole command list.
program.showHelpAfterError('Usage: berth [options] <command>   (`berth --help` lists the commands)');

/** What `berth` alone prints: what it is, the commands by name, where to start. */
function shortHelp(): string {
  const names = program.commands.map((c) => c.name()).filter((n) => n !== 'daemon');
  return [
    `berth ${BERTH_VERSION}: ${program.description()}`,
    '',
    'Usage: berth [options] <command>',
    '',
    `Commands: ${names.join(', ')}`,
    '',
    'Start here: `berth start`, then use your docker CLI.',
    'Run `berth --help` for every command and option, `berth <command> --help` for one.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<void> {
  invocation.argv = argv;
  if (argv.length <= 2) {
    process.stdout.write(shortHelp() + '\n');
    return;
  }
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
