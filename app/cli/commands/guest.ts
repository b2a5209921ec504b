import fs from 'node:fs';
import type { Command } from 'commander';
import { localSettings } from '../../client/offline.js';
import { dockerHostUrl, ensureDockerContext, useDockerContext } from '../../base/docker-context.js';
import { BerthError } from '../../contract/errors.js';
import { formatLogLine } from '../../base/log-format.js';
import { action, invocation, positiveInt, printJson, usage } from '../command-kit.js';
import { connectEngine } from '../engine-link.js';
import { followFile, printTail } from '../logs.js';

/** Reaching into the VM and looking at it: shell, logs, doctor, the dashboard, the docker context. */
export function guestCommands(program: Command): void {
  program
    .command('shell')
    .description('open a shell in the VM (or run a command there)')
    .argument('[command...]', 'command to run instead of an interactive shell (put it after `--`)')
    .allowUnknownOption()
    .action(
      action(async (_g, paths, command: string[]) => {
        // Options before the command are Berth's: an unknown one is a typo, not a guest command.
        const raw = invocation.argv;
        const dashdash = raw.indexOf('--');
        const first = command[0];
        if (first?.startsWith('-') && (dashdash < 0 || raw.indexOf(first) < dashdash)) {
          throw usage(`unknown option '${first}' (put a command for the VM after \`--\`: berth shell -- ${command.join(' ')})`);
        }
        const client = await connectEngine(paths, false);
        let ep;
        try {
          ep = await client.call('guest.sshEndpoint', {});
        } finally {
          client.close();
        }
        const { runShell } = await import('../shell.js'); // ssh2 loads only here
        return runShell(ep, command);
      }),
    );

  program
    .command('logs')
    .description('show logs: the engine (default), the VM serial console, or the guest system log')
    .option('--engine', "the engine's log (default)")
    .option('--serial', "the VM's serial console")
    .option('--guest', "the guest's system log (sshd, dockerd)")
    .option('-n, --lines <n>', 'how many lines', (v) => positiveInt(v), 100)
    .option('-f, --follow', 'keep printing new lines')
    .action(
      action(async (g, paths, opts: { serial?: boolean; guest?: boolean; engine?: boolean; lines: number; follow?: boolean }) => {
        const picked = [opts.engine, opts.serial, opts.guest].filter(Boolean).length;
        if (picked > 1) throw usage('pick one of --engine, --serial and --guest');
        if (opts.guest) {
          if (opts.follow) throw usage('--follow works with --engine and --serial');
          const client = await connectEngine(paths, false);
          try {
            const r = await client.call('guest.logs', { lines: opts.lines });
            if (g.json) return printJson(r);
            process.stdout.write(r.lines.join('\n') + '\n');
          } finally {
            client.close();
          }
          return;
        }
        const file = opts.serial ? paths.serialLog : paths.engineLog;
        const fmt = opts.serial ? (l: string) => l : formatLogLine;
        if (!fs.existsSync(file)) {
          throw new BerthError('VM_NOT_RUNNING', `there is no log yet at ${file}`, 'Logs appear once Berth has been started.');
        }
        printTail(file, opts.lines, fmt);
        if (opts.follow) await followFile(file, fmt);
      }),
    );

  program
    .command('dashboard')
    .description('open the dashboard in your browser (served on loopback, with a per-start token)')
    .option('--no-open', 'print the addresses instead of opening a browser')
    .option('--port <n>', 'loopback port to serve on (default: a free one)', (v) => positiveInt(v))
    .action(
      action(async (g, paths, opts: { open: boolean; port?: number }) => {
        const { runDashboard } = await import('../dashboard.js');
        return runDashboard({ paths, json: !!g.json, open: opts.open, port: opts.port });
      }),
    );

  program
    .command('doctor')
    .description('which VM drivers work on this host, and what to do about the others')
    .action(
      action(async (g, paths) => {
        const { doctorReport } = await import('../../client/doctor.js');
        // The instance's setting, and the live driver when its engine runs.
        const settings = await localSettings(paths).then(
          (st) => st.get(),
          () => undefined,
        );
        const setting = settings?.driver;
        let live: { driver: string; reason?: string; state: string } | undefined;
        try {
          const client = await connectEngine(paths, false);
          try {
            const st = await client.call('vm.status', {});
            if (st.state !== 'stopped' && st.driverReason) live = { driver: st.driver, reason: st.driverReason, state: st.state };
          } finally {
            client.close();
          }
        } catch {
          // No engine (or one we may not talk to): doctor still judges the host.
        }
        const r = await doctorReport({ setting, live, rosetta: settings?.rosetta });
        if (g.json) printJson(r.json);
        else process.stdout.write(r.text + '\n');
        return r.json.ok ? 0 : 1;
      }),
    );

  const context = program.command('context').description("the docker CLI's context for Berth");
  context
    .command('use')
    .description("make this instance the docker CLI's current context (`berth` for the default instance, `berth-<instance>` for another)")
    .action(
      action(async (g, paths) => {
        // Written (or pointed) at this instance's socket first: another BERTH_HOME's
        // or an older start's context must not be the one the docker CLI ends up using.
        const made = ensureDockerContext(paths.name, paths.dockerSocket);
        if (made.outcome === 'conflict') {
          throw new BerthError(
            'DOCKER_CONTEXT_CONFLICT',
            `the docker context "${made.name}" was not created by Berth`,
            `Berth leaves it alone. Remove or rename it (\`docker context rm ${made.name}\`) and try again.`,
          );
        }
        const name = useDockerContext(paths.name);
        if (g.json) return printJson({ context: name });
        process.stdout.write(`The docker CLI now uses the context "${name}" (${dockerHostUrl(paths.dockerSocket)}).\n`);
      }),
    );
}
