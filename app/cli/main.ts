import { BERTH_VERSION } from '../base/version.js';
import { invocation } from './command-kit.js';
import { aboutCommands } from './commands/about.js';
import { daemonCommand } from './commands/daemon.js';
import { forwardCommands } from './commands/forwards.js';
import { guestCommands } from './commands/guest.js';
import { instanceCommands } from './commands/instances.js';
import { settingsCommands } from './commands/settings.js';
import { vmCommands } from './commands/vm.js';
import { berthProgram, runProgram } from './program.js';

/** The `berth` program: its global options (program.ts), then the commands, one file per job (commands/). */
const program = berthProgram((p) => {
  vmCommands(p);
  daemonCommand(p);
  guestCommands(p);
  forwardCommands(p);
  settingsCommands(p);
  instanceCommands(p);
  aboutCommands(p);
});

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
  await runProgram(program, argv);
}
