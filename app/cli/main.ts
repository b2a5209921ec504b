import fs from 'node:fs';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import type { ControlClient } from '../client/control-client.js';
import { localSettings, orphanVm } from '../client/offline.js';
import { runEngineHere } from '../client/engine-here.js';
import { dockerHostUrl, useDockerContext } from '../base/docker-context.js';
import { BerthError, isBerthError } from '../contract/errors.js';
import { formatLogLine } from '../base/log-format.js';
import { BERTH_VERSION } from '../base/version.js';
import { action, callOrOffline, globals, parseInstance, positiveInt, printJson, printWarning, usage, withProgress } from './command-kit.js';
import { connectEngine } from './engine-link.js';
import { followFile, printTail } from './logs.js';
import { bold, dim, formatPorts, formatShares, formatStatus, formatSync, green, printError, usageHint, yellow } from './output.js';

const program = new Command('berth');
program
  .description('Linux containers on your desktop: a small VM, your own docker CLI, ports and files that just work.')
  .version(BERTH_VERSION, '-V, --version')
  .option('-i, --instance <name>', 'the instance to act on', (v) => parseInstance(v), process.env.BERTH_INSTANCE || 'default')
  .option('--json', 'print machine-readable JSON')
  // Every usage error prints the failing command's own usage (inherited by subcommands).
  .showHelpAfterError(true)
  .exitOverride();

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
        process.stdout.write(
          `${green('Berth is running')}${took} (${s.driver}, ${s.accel}, ${s.cpus} CPUs, ${s.memoryMiB} MiB).\n\n${usageHint(s)}\n`,
        );
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
  .description('show the VM state, accelerator, resources and socket')
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
        if (g.json) return printJson(s);
        process.stdout.write(`${bold('instance')}      ${s.instance}\n${bold('state')}         ${dim('stopped')} (the engine is not running)\n`);
        if (driver) process.stdout.write(`${bold('driver')}        ${driver}${driver === 'auto' ? dim(' (picked at start; `berth doctor` shows which)') : ''}\n`);
        if (orphan) {
          const which = orphan.pid ? `A VM (${orphan.driver}, pid ${orphan.pid}) is still running` : `A ${orphan.driver} VM may still be running`;
          process.stdout.write(`${which} without an engine; \`berth start\` reattaches to it, \`berth stop\` stops it.\n`);
        }
        return;
      }
      try {
        const s = await client.call('vm.status', {});
        if (s.settingsProblem) printWarning(s.settingsProblem);
        if (g.json) return printJson(s);
        process.stdout.write(formatStatus(s) + '\n');
      } finally {
        client.close();
      }
    }),
  );

program
  .command('shell')
  .description('open a shell in the VM (or run a command there)')
  .argument('[command...]', 'command to run instead of an interactive shell (put it after `--`)')
  .allowUnknownOption()
  .action(
    action(async (_g, paths, command: string[]) => {
      // Options before the command are Berth's: an unknown one is a typo, not a guest command.
      const raw = argvSeen;
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
      const { runShell } = await import('./shell.js'); // ssh2 loads only here
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
  .command('daemon')
  .description('run the engine in the foreground (the desktop app and `berth start` use this)')
  .option('--exit-on-stop', 'exit once the VM has been stopped')
  .action(async (opts: { exitOnStop?: boolean }, cmd: Command) => {
    const g = globals(cmd);
    try {
      await runEngineHere({ instance: g.instance, exitOnStop: !!opts.exitOnStop });
    } catch (err) {
      printError(err, !!g.json);
      process.exitCode = 1;
    }
  });

program
  .command('ports')
  .description('list forwarded ports: automatic (containers, guest processes) and manual, with their state')
  .action(
    action(async (g, paths) => {
      const r = await callOrOffline(paths, 'ports.list', {});
      if (g.json) return printJson(r);
      process.stdout.write(formatPorts(r.ports, r.manual) + '\n');
    }),
  );

const port = program.command('port').description('add or remove a manual port forward');
port
  .command('add')
  .description('forward a host port to a guest port, e.g. `berth port add 8080:80` or `berth port add 5353:53/udp`')
  .argument('<host:guest[/udp]>', 'host port, guest port, optional protocol')
  .option('--host-ip <ip>', 'listen on this host address instead of loopback')
  .action(
    action(async (g, paths, spec: string, opts: { hostIp?: string }) => {
      const m = /^(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(spec);
      if (!m) throw usage(`"${spec}" is not HOST:GUEST or HOST:GUEST/udp`);
      const p = { hostPort: Number(m[1]), guestPort: Number(m[2]), proto: (m[3] ?? 'tcp') as 'tcp' | 'udp', ...(opts.hostIp ? { hostIp: opts.hostIp } : {}) };
      const r = await callOrOffline(paths, 'ports.add', p);
      if (g.json) return printJson(r);
      const live = r.ports.find((x) => x.hostPort === p.hostPort && x.proto === p.proto);
      process.stdout.write(`Forwarding host port ${p.hostPort}/${p.proto} to guest port ${p.guestPort}${live ? ` (${live.state}${live.error ? `: ${live.error}` : ''})` : ' when the VM runs'}.\n`);
    }),
  );
port
  .command('rm')
  .description('remove a manual port forward, e.g. `berth port rm 8080`')
  .argument('<host[/udp]>', 'host port, optional protocol')
  .action(
    action(async (g, paths, spec: string) => {
      const m = /^(\d+)(?:\/(tcp|udp))?$/.exec(spec);
      if (!m) throw usage(`"${spec}" is not a port or PORT/udp`);
      const p = { hostPort: Number(m[1]), proto: (m[2] ?? 'tcp') as 'tcp' | 'udp' };
      const r = await callOrOffline(paths, 'ports.remove', p);
      if (g.json) return printJson(r);
      process.stdout.write(`Removed the forward of host port ${p.hostPort}/${p.proto}.\n`);
    }),
  );

program
  .command('dashboard')
  .description('open the dashboard in your browser (served on loopback, with a per-start token)')
  .option('--no-open', 'print the addresses instead of opening a browser')
  .option('--port <n>', 'loopback port to serve on (default: a free one)', (v) => positiveInt(v))
  .action(
    action(async (g, paths, opts: { open: boolean; port?: number }) => {
      const { runDashboard } = await import('./dashboard.js');
      return runDashboard({ paths, json: !!g.json, open: opts.open, port: opts.port });
    }),
  );

program
  .command('doctor')
  .description('which VM drivers work on this host, and what to do about the others')
  .action(
    action(async (g, paths) => {
      const { doctorReport } = await import('../client/doctor.js');
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

program
  .command('shares')
  .description('list the shared folders, how they are mounted in the VM and their state')
  .action(
    action(async (g, paths) => {
      const r = await callOrOffline(paths, 'shares.list', {});
      if (g.json) return printJson(r);
      process.stdout.write(formatShares(r.shares, r.configured) + '\n');
    }),
  );

const share = program.command('share').description('add or remove a shared folder');
share
  .command('add')
  .description('share a host folder with the VM (at the same path unless --guest-path)')
  .argument('<path>', 'the host folder')
  .option('--guest-path <path>', 'where it appears in the VM')
  .option('--read-only', 'containers can read but not change it')
  .action(
    action(async (g, paths, dir: string, opts: { guestPath?: string; readOnly?: boolean }) => {
      const p = { hostPath: path.resolve(dir), ...(opts.guestPath ? { guestPath: opts.guestPath } : {}), ...(opts.readOnly ? { readOnly: true } : {}) };
      const r = await callOrOffline(paths, 'shares.add', p);
      if (g.json) return printJson(r);
      const live = r.shares.find((x) => x.hostPath === p.hostPath);
      process.stdout.write(
        `Sharing ${p.hostPath} at ${p.guestPath ?? p.hostPath} in the VM${p.readOnly ? ' (read-only)' : ''}${live ? ` (${live.state}${live.error ? `: ${live.error}` : ''})` : ' when it runs'}.\n`,
      );
    }),
  );
share
  .command('rm')
  .description('stop sharing a host folder')
  .argument('<path>', 'the host folder')
  .action(
    action(async (g, paths, dir: string) => {
      const hostPath = path.resolve(dir);
      const r = await callOrOffline(paths, 'shares.remove', { hostPath });
      if (g.json) return printJson(r);
      process.stdout.write(`Stopped sharing ${hostPath}.\n`);
    }),
  );

const sync = program
  .command('sync')
  .description('folders kept in sync with a copy on the VM\'s disk (builds in containers at native disk speed): list them with their state and conflicts')
  .action(
    action(async (g, paths) => {
      const r = await callOrOffline(paths, 'sync.list', {});
      if (g.json) return printJson(r);
      process.stdout.write(formatSync(r.syncs, r.configured) + '\n');
    }),
  );
sync
  .command('add')
  .description('keep a folder inside a shared folder in sync with a copy on the VM\'s disk; `docker run -v` of it (or of a folder in it) then uses the copy')
  .argument('<path>', 'the host folder')
  .action(
    action(async (g, paths, dir: string) => {
      const hostPath = path.resolve(dir);
      const r = await callOrOffline(paths, 'sync.add', { hostPath });
      if (g.json) return printJson(r);
      const live = r.syncs.find((x) => x.hostPath === hostPath);
      process.stdout.write(
        live
          ? `Syncing ${hostPath} with a copy on the VM's disk (${live.state}${live.error ? `: ${live.error}` : ''}). \`berth sync\` shows its progress.\n`
          : `Syncing ${hostPath} with a copy on the VM's disk once the VM runs.\n`,
      );
    }),
  );
sync
  .command('rm')
  .description('stop syncing a folder: a last sync, then the VM\'s copy is deleted (the host folder stays as it is)')
  .argument('<path>', 'the host folder')
  .action(
    action(async (g, paths, dir: string) => {
      const hostPath = path.resolve(dir);
      const r = await callOrOffline(paths, 'sync.remove', { hostPath });
      if (g.json) return printJson(r);
      process.stdout.write(`Stopped syncing ${hostPath}; containers see it through the shared folder again.\n`);
    }),
  );

const context = program.command('context').description("the docker CLI's context for Berth");
context
  .command('use')
  .description("make Berth the docker CLI's current context")
  .action(
    action(async (g, paths) => {
      const name = useDockerContext(paths.name);
      if (g.json) return printJson({ context: name });
      process.stdout.write(`The docker CLI now uses the context "${name}" (${dockerHostUrl(paths.dockerSocket)}).\n`);
    }),
  );

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
      if (r.notice) process.stderr.write(`${yellow('note:')} ${r.notice}\n`);
      if (g.json) return printJson(r);
      if (!r.changed.length) return void process.stdout.write(r.notice ? 'Saved.\n' : 'Nothing changed.\n');
      process.stdout.write(`Saved: ${r.changed.map((k) => `${k}=${(r.settings as Record<string, unknown>)[k]}`).join(', ')}.\n`);
      if (r.restartRequired) process.stdout.write('Run `berth restart` to apply them to a running VM.\n');
    }),
  );

/** The arguments `main` was called with (shell needs to know where `--` was). */
let argvSeen: string[] = [];

export async function main(argv: string[]): Promise<void> {
  argvSeen = argv;
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
