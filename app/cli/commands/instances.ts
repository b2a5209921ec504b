import fs from 'node:fs';
import readline from 'node:readline/promises';
import type { Command } from 'commander';
import { describeInstance, listInstances, type InstanceEntry } from '../../client/instances.js';
import { dockerHostUrl, removeDockerContext } from '../../base/docker-context.js';
import { syncDockerProxies } from '../../base/docker-proxies.js';
import { InstanceLock } from '../../base/lock.js';
import { instancePaths, type InstancePaths } from '../../base/paths.js';
import { sleep } from '../../base/process-util.js';
import { BerthError, isBerthError } from '../../contract/errors.js';
import { action, callOrOffline, printJson } from '../command-kit.js';
import { connectEngine } from '../engine-link.js';
import { bold, dim, green } from '../output.js';

/** Ask before something that cannot be undone; with no terminal to ask on, only --force says yes. */
async function confirm(question: string, force: boolean | undefined, forceCommand: string): Promise<boolean> {
  if (force) return true;
  if (!process.stdin.isTTY) {
    throw new BerthError(
      'CONFIRMATION_NEEDED',
      'this cannot be undone, and there is no terminal to ask for a yes',
      `Run \`${forceCommand}\` to go ahead without asking.`,
    );
  }
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

const forceCmd = (paths: InstancePaths, cmd: string) => `berth ${paths.name === 'default' ? '' : `--instance ${paths.name} `}${cmd} --force`;

/** The live state of an instance whose engine runs; else stopped (or a VM left without its engine). */
async function stateOf(e: InstanceEntry, paths: InstancePaths): Promise<{ state: string; driver?: string }> {
  if (!e.enginePid) return { state: e.orphanVm ? 'running (no engine)' : 'stopped', driver: e.orphanVm?.driver ?? e.driver };
  try {
    const c = await connectEngine(paths, false);
    try {
      const s = await c.call('vm.status', {});
      return { state: s.state, driver: s.driver || e.driver };
    } finally {
      c.close();
    }
  } catch {
    return { state: 'unknown', driver: e.driver };
  }
}

/** Stop an instance's VM and engine (an engine takes over a VM left without one), and wait for the engine to exit. */
async function stopAll(paths: InstancePaths): Promise<void> {
  const e = describeInstance(paths);
  if (!e.enginePid && !e.orphanVm) return;
  const client = await connectEngine(paths, !!e.orphanVm && !e.enginePid);
  try {
    await client.call('engine.shutdown', { stopVm: true });
  } catch (err) {
    if (!isBerthError(err, 'ENGINE_NOT_RUNNING')) throw err;
  } finally {
    client.close();
  }
  for (let i = 0; i < 600 && InstanceLock.holder(paths.lock); i++) await sleep(100);
  if (InstanceLock.holder(paths.lock))
    throw new BerthError('VM_BUSY', `the engine of ${paths.name} did not exit`, 'Stop it with `berth stop` (or quit the desktop app) and try again.');
}

/** `berth list`, `berth delete`, `berth reset`: the instances under BERTH_HOME. */
export function instanceCommands(program: Command): void {
  program
    .command('list')
    .alias('ls')
    .description('list the instances under BERTH_HOME with their state, driver and resources')
    .action(
      action(async (g) => {
        const rows = await Promise.all(
          listInstances().map(async (e) => {
            const s = await stateOf(e, instancePaths(e.name));
            return { ...e, ...s, current: e.name === g.instance };
          }),
        );
        if (g.json) return printJson({ instances: rows });
        if (!rows.length) return void process.stdout.write('No instances yet. `berth start` creates the default one.\n');
        const table = [
          ['NAME', 'STATE', 'DRIVER', 'CPUS', 'MEMORY', 'DISK'],
          ...rows.map((r) => [
            `${r.name}${r.current ? ' *' : ''}`,
            r.state,
            r.driver ?? '-',
            String(r.cpus ?? '-'),
            r.memoryMiB ? `${r.memoryMiB} MiB` : '-',
            r.diskGiB ? `${r.diskGiB} GiB` : '-',
          ]),
        ];
        const w = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
        const paint = (c: string, i: number, row: number) => (row && i === 1 ? (c === 'running' ? green(c) : c === 'stopped' ? dim(c) : c) : row ? c : bold(c));
        process.stdout.write(
          table.map((r, row) => r.map((c, i) => paint(c, i, row) + (i < r.length - 1 ? ' '.repeat(w[i]! - c.length) : '')).join('  ')).join('\n') + '\n',
        );
      }),
    );

  program
    .command('delete')
    .alias('rm')
    .description('delete an instance: stop its VM and engine, then remove its folder (disk, containers, images, volumes, settings); asks first unless --force')
    .option('-f, --force', 'do not ask (needed where there is no terminal to ask on)')
    .action(
      action(async (g, paths, opts: { force?: boolean }) => {
        if (!fs.existsSync(paths.dir))
          throw new BerthError('BAD_REQUEST', `there is no instance "${paths.name}" (${paths.dir})`, '`berth list` lists the instances.');
        if (!(await confirm(`Delete the instance "${paths.name}" and everything in ${paths.dir}?`, opts.force, forceCmd(paths, 'delete')))) {
          process.stderr.write('Nothing was deleted.\n');
          return 1;
        }
        await stopAll(paths);
        fs.rmSync(paths.dir, { recursive: true, force: true });
        // Its docker context goes too (only Berth's own, pointing at this instance).
        const context = removeDockerContext(paths.name, paths.dockerSocket);
        // And the docker CLI's proxies for its socket, if the settings had any.
        try {
          syncDockerProxies(dockerHostUrl(paths.dockerSocket), {});
        } catch {
          /* a config.json the docker CLI cannot read either: left as it is */
        }
        if (g.json) return printJson({ instance: paths.name, deleted: paths.dir, context });
        process.stdout.write(`Deleted the instance "${paths.name}" (${paths.dir}).\n`);
        if (context.outcome === 'removed') {
          process.stdout.write(`Removed its docker context "${context.name}"${context.wasCurrent ? '; the docker CLI uses its default context again' : ''}.\n`);
        }
      }),
    );

  program
    .command('reset')
    .description(
      'factory reset: delete the data disk (containers, images, volumes) and go back to the default settings; the VM must be stopped; asks first unless --force',
    )
    .option('-f, --force', 'do not ask (needed where there is no terminal to ask on)')
    .action(
      action(async (g, paths, opts: { force?: boolean }) => {
        if (
          !(await confirm(
            `Reset "${paths.name}": delete every container, image and volume and go back to the default settings?`,
            opts.force,
            forceCmd(paths, 'reset'),
          ))
        ) {
          process.stderr.write('Nothing was reset.\n');
          return 1;
        }
        const r = await callOrOffline(paths, 'engine.factoryReset', { confirm: true });
        if (g.json) return printJson(r);
        process.stdout.write(
          `Reset "${paths.name}": ${r.removed.length ? `removed ${r.removed.join(', ')}` : 'there was no disk yet'}; the settings are the defaults.\n`,
        );
        for (const k of r.kept) process.stdout.write(`${dim(`kept: ${k}`)}\n`);
      }),
    );
}
