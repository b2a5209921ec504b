import type { Command } from 'commander';
import { action, callOrOffline, printJson, printWarning, usage } from '../command-kit.js';
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
        for (const [k, v] of Object.entries(s)) if (k !== 'problem') process.stdout.write(`${k.padEnd(10)} ${JSON.stringify(v)}\n`);
      }),
    );
  settings
    .command('set')
    .description('change settings, e.g. `berth settings set cpus=4 memoryMiB=4096 rosetta=true`')
    .argument('<key=value...>', 'settings to change')
    .action(
      action(async (g, paths, pairs: string[]) => {
        const patch: Record<string, unknown> = {};
        for (const p of pairs) {
          const m = /^([A-Za-z]+)=(.*)$/.exec(p);
          if (!m) throw usage(`"${p}" is not KEY=VALUE`);
          // Numbers and true/false as JSON would have them; the schema says whether they fit the key.
          const v = m[2]!;
          patch[m[1]!] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v === 'true' ? true : v === 'false' ? false : v;
        }
        const r = await callOrOffline(paths, 'settings.update', { patch });
        if (r.notice) process.stderr.write(`${onStderr.yellow('note:')} ${r.notice}\n`);
        if (g.json) return printJson(r);
        if (!r.changed.length) return void process.stdout.write(r.notice ? 'Saved.\n' : 'Nothing changed.\n');
        process.stdout.write(`Saved: ${r.changed.map((k) => `${k}=${(r.settings as Record<string, unknown>)[k]}`).join(', ')}.\n`);
        if (r.restartRequired) process.stdout.write('Run `berth restart` to apply them to a running VM.\n');
      }),
    );
}
