import type { Command } from 'commander';
import type { ControlClient } from '../../client/control-client.js';
import { localSettings, orphanVm } from '../../client/offline.js';
import { dockerHostUrl } from '../../base/docker-context.js';
import { isBerthError } from '../../contract/errors.js';
import { formatBootTimeline } from '../boot-timeline-format.js';
import { action, printJson, printWarning, withProgress } from '../command-kit.js';
import { connectEngine } from '../engine-link.js';
import { bold, dim, formatStatus, green, usageHint } from '../output.js';

/**
 * `berth status`'s exit code when the VM is not running (stopped, starting,
 * stopping, failed), as the LSB has it for "program is not running"; 1
 * stays for "could not tell" (an error with a hint), 2 for usage.
 */
export const NOT_RUNNING = 3;

/** The start command for an instance, as the user would type it. */
export function startCommand(instance: string): string {
  return instance === 'default' ? 'berth start' : `berth --instance ${instance} start`;
}

/** Start, stop, restart and status of the VM (the engine in the foreground is commands/daemon.ts). */
export function vmCommands(program: Command): void {
  program
    .command('start')
    .description('start the VM (and the engine) and forward the docker socket')
    .action(
      action(async (g, paths) => {
        const client = await connectEngine(paths, true);
        try {
          const before = await client.call('vm.status', {});
          if (!g.json && before.state !== 'running') process.stderr.write(`Starting Berth (instance ${paths.name})\n`);
          const s = await withProgress(client, !!g.json, () => client.call('vm.start', {}));
          if (g.json) return printJson(s);
          const took = s.timings?.totalMs !== undefined && before.state !== 'running' ? ` in ${(s.timings.totalMs / 1000).toFixed(1)} s` : '';
          process.stdout.write(`${green('Berth is running')}${took} (${s.driver}, ${s.accel}, ${s.cpus} CPUs, ${s.memoryMiB} MiB).\n\n`);
          if (before.state !== 'running' && s.bootTimeline?.length) {
            process.stdout.write(`Boot timeline (since the start began, +time after the step before):\n${formatBootTimeline(s.bootTimeline).join('\n')}\n\n`);
          }
          process.stdout.write(`${usageHint(s)}\n`);
          if (s.accel === 'tcg' && s.accelReason && /slower/.test(s.accelReason)) process.stdout.write(`\n${dim(`Note: ${s.accelReason}.`)}\n`);
        } finally {
          client.close();
        }
      }),
    );

  program
    .command('stop')
    .description('stop the VM: containers stop, data stays on the disk')
    .option('-f, --force', 'power the VM off at once instead of shutting it down cleanly')
    .action(
      action(async (g, paths, opts: { force?: boolean }) => {
        let client: ControlClient;
        try {
          client = await connectEngine(paths, false);
        } catch (err) {
          if (!isBerthError(err, 'ENGINE_NOT_RUNNING')) throw err;
          if (!orphanVm(paths)) {
            if (g.json) return printJson({ instance: paths.name, state: 'stopped' });
            process.stdout.write('Berth is not running.\n');
            return;
          }
          // A VM without an engine (the engine was killed): an engine
          // reattaches to it first so it can shut it down cleanly.
          client = await connectEngine(paths, true);
        }
        try {
          if (!g.json) process.stderr.write('Stopping Berth...\n');
          const s = await client.call('vm.stop', { force: !!opts.force });
          if (g.json) return printJson(s);
          process.stdout.write('Berth is stopped.\n');
        } finally {
          client.close();
        }
      }),
    );

  program
    .command('restart')
    .description('stop and start the VM (to apply changed settings)')
    .action(
      action(async (g, paths) => {
        const client = await connectEngine(paths, true);
        try {
          const s = await withProgress(client, !!g.json, () => client.call('vm.restart', {}));
          if (g.json) return printJson(s);
          process.stdout.write(`${green('Berth is running')} (${s.driver}, ${s.accel}, ${s.cpus} CPUs, ${s.memoryMiB} MiB).\n`);
        } finally {
          client.close();
        }
      }),
    );

  program
    .command('status')
    .description(`show the VM state, accelerator, resources and socket; exits 0 when running, ${NOT_RUNNING} when not`)
    .action(
      action(async (g, paths) => {
        let client: ControlClient;
        try {
          client = await connectEngine(paths, false);
        } catch (err) {
          if (!isBerthError(err, 'ENGINE_NOT_RUNNING')) throw err;
          const orphan = orphanVm(paths);
          const driver = await localSettings(paths).then(
            (st) => st.get().driver,
            () => undefined,
          );
          const s = {
            instance: paths.name,
            state: 'stopped' as const,
            engine: false,
            ...(driver ? { driver } : {}),
            dockerSocket: paths.dockerSocket,
            dockerHost: dockerHostUrl(paths.dockerSocket),
            ...(orphan ? { orphanVm: orphan, ...(orphan.pid ? { orphanVmPid: orphan.pid } : {}) } : {}),
          };
          if (g.json) {
            printJson(s);
            return NOT_RUNNING;
          }
          process.stdout.write(`${bold('instance')}      ${s.instance}\n${bold('state')}         ${dim('stopped')} (the engine is not running)\n`);
          if (driver)
            process.stdout.write(`${bold('driver')}        ${driver}${driver === 'auto' ? dim(' (picked at start; `berth doctor` shows which)') : ''}\n`);
          if (orphan) {
            const which = orphan.pid ? `A VM (${orphan.driver}, pid ${orphan.pid}) is still running` : `A ${orphan.driver} VM may still be running`;
            process.stdout.write(`${which} without an engine; \`berth start\` reattaches to it, \`berth stop\` stops it.\n`);
          } else process.stdout.write(`\nBerth is not running. Start it with \`${startCommand(paths.name)}\`.\n`);
          return NOT_RUNNING;
        }
        try {
          const s = await client.call('vm.status', {});
          if (s.settingsProblem) printWarning(s.settingsProblem);
          // Resting is in service: the docker socket listens and the next command wakes the VM.
          const code = s.state === 'running' || s.state === 'resting' ? 0 : NOT_RUNNING;
          if (g.json) {
            printJson(s);
            return code;
          }
          process.stdout.write(formatStatus(s) + '\n');
          if (s.state === 'stopped') process.stdout.write(`\nBerth is not running. Start it with \`${startCommand(paths.name)}\`.\n`);
          if (s.state === 'error') process.stdout.write(`\nStart it again with \`${startCommand(paths.name)}\` once the hint above is dealt with.\n`);
          return code;
        } finally {
          client.close();
        }
      }),
    );
}
