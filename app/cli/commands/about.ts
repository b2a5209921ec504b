import http from 'node:http';
import { Argument, type Command } from 'commander';
import { BERTH_VERSION } from '../../base/version.js';
import { PROTOCOL_VERSION } from '../../contract/contract.js';
import { action, printJson } from '../command-kit.js';
import { bashCompletion, fishCompletion, zshCompletion } from '../completion.js';
import { connectEngine } from '../engine-link.js';
import { bold } from '../output.js';

/** Docker's version from its socket, when it answers within a moment. */
function dockerVersion(socketPath: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: '/version', timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        try {
          resolve((JSON.parse(body) as { Version?: string }).Version);
        } catch {
          resolve(undefined);
        }
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/** `berth version` and `berth completion`: about the tool itself. */
export function aboutCommands(program: Command): void {
  program
    .command('version')
    .description("this CLI's version and control protocol; the engine's, the guest image's and Docker's when it runs")
    .action(
      action(async (g, paths) => {
        const v: Record<string, unknown> = { cli: BERTH_VERSION, protocol: PROTOCOL_VERSION, instance: paths.name };
        try {
          const c = await connectEngine(paths, false);
          try {
            v.engine = c.engine?.version;
            v.enginePid = c.engine?.pid;
            const s = await c.call('vm.status', {});
            if (s.image) v.guestImage = { recipe: s.image.recipeHash, kernel: s.image.kernelRelease };
            if (s.state === 'running') v.docker = await dockerVersion(s.dockerSocket);
          } finally {
            c.close();
          }
        } catch {
          // No engine: the CLI's own versions are still worth printing.
        }
        if (g.json) return printJson(v);
        const img = v.guestImage as { recipe: string; kernel: string } | undefined;
        const rows: [string, string][] = [
          ['berth', String(v.cli)],
          ['protocol', String(v.protocol)],
          ['engine', v.engine ? `${String(v.engine)} (pid ${String(v.enginePid)})` : 'not running'],
          ...(img ? [['guest image', `${img.recipe.slice(0, 12)}, kernel ${img.kernel}`] as [string, string]] : []),
          ...(v.docker ? [['docker', String(v.docker)] as [string, string]] : []),
        ];
        process.stdout.write(rows.map(([k, x]) => `${bold(k.padEnd(11))} ${x}`).join('\n') + '\n');
      }),
    );

  program
    .command('completion')
    .description('print a shell completion script: `source <(berth completion bash)`, or zsh, or `berth completion fish | source`')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh', 'fish']))
    .action((shell: 'bash' | 'zsh' | 'fish') => {
      const make = { bash: bashCompletion, zsh: zshCompletion, fish: fishCompletion }[shell];
      process.stdout.write(make(program));
    });
}
