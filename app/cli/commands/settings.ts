import type { Command } from 'commander';
import { settingsKeys } from '../../client/settings-keys.js';
import { action, callOrOffline, printJson, printWarning } from '../command-kit.js';
import { formatSettings, keysHelp, parsePairs } from '../settings-input.js';
import { onStderr } from '../output.js';

/** `berth settings show|set`. */
export function settingsCommands(program: Command): void {
  const settings = program.command('settings').description('show or change the VM settings');
  settings
    .command('show')
    .description('show the current settings')
    .action(
      action(async (g, paths) => {
        const s = await callOrOffline(paths, 'settings.get', {});
        if (s.problem) printWarning(s.problem);
        if (g.json) return printJson(s);
        process.stdout.write(formatSettings(s) + '\n');
      }),
    );
  settings
    .command('set')
    .description('change settings, e.g. `berth settings set cpus=4 memory=4GiB rosetta=true`')
    .addHelpText('after', () => `\n${keysHelp(settingsKeys())}`)
    .argument('<key=value...>', 'settings to change')
    .action(
      action(async (g, paths, pairs: string[]) => {
        const patch = parsePairs(pairs, settingsKeys());
        const r = await callOrOffline(paths, 'settings.update', { patch });
        if (r.notice) process.stderr.write(`${onStderr.yellow('note:')} ${r.notice}\n`);
        if (g.json) return printJson(r);
        if (!r.changed.length) return void process.stdout.write(r.notice ? 'Saved.\n' : 'Nothing changed.\n');
        process.stdout.write(`Saved: ${r.changed.map((k) => `${k}=${(r.settings as Record<string, unknown>)[k]}`).join(', ')}.\n`);
        if (r.restartRequired) process.stdout.write('Run `berth restart` to apply them to a running VM.\n');
      }),
    );
}
