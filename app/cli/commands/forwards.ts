import path from 'node:path';
import type { Command } from 'commander';
import { BerthError, isBerthError } from '../../contract/errors.js';
import { action, callOrOffline, listsAlone, printJson, usage } from '../command-kit.js';
import { formatPorts, formatShares, formatSync } from '../output.js';

/** What crosses between host and VM: forwarded ports, shared and synced folders. */
export function forwardCommands(program: Command): void {
  // One scheme: a singular noun lists, its subcommands change (`berth port`,
  // `berth port add`), as `berth sync` does; the plural is an alias.
  const port = program
    .command('port')
    .alias('ports')
    .description('list forwarded ports (automatic: containers, guest processes; manual: `port add`) with their state; add or remove manual ones')
    .action(
      action(async (g, paths) => {
        const r = await callOrOffline(paths, 'ports.list', {});
        if (g.json) return printJson(r);
        process.stdout.write(formatPorts(r.ports, r.manual) + '\n');
      }),
    );
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
        process.stdout.write(
          `Forwarding host port ${p.hostPort}/${p.proto} to guest port ${p.guestPort}${live ? ` (${live.state}${live.error ? `: ${live.error}` : ''})` : ' when the VM runs'}.\n`,
        );
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

  const share = program
    .command('share')
    .alias('shares')
    .description('list the shared folders, how they are mounted in the VM and their state; add or remove one')
    .action(
      action(async (g, paths) => {
        const r = await callOrOffline(paths, 'shares.list', {});
        if (g.json) return printJson(r);
        process.stdout.write(formatShares(r.shares, r.configured) + '\n');
      }),
    );
  share
    .command('add')
    .description('share a host folder with the VM (at the same path unless --guest-path)')
    .argument('<path>', 'the host folder')
    .option('--guest-path <path>', 'where it appears in the VM')
    .option('--read-only', 'containers can read but not change it')
    .option('--sync', "and keep it in sync with a copy on the VM's disk (as `berth sync add`): builds in containers at the disk's speed")
    .action(
      action(async (g, paths, dir: string, opts: { guestPath?: string; readOnly?: boolean; sync?: boolean }) => {
        if (opts.sync && opts.readOnly)
          throw usage('--sync and --read-only do not go together: a synced folder carries what containers write back to the host');
        const p = { hostPath: path.resolve(dir), ...(opts.guestPath ? { guestPath: opts.guestPath } : {}), ...(opts.readOnly ? { readOnly: true } : {}) };
        const r = await callOrOffline(paths, 'shares.add', p);
        const live = r.shares.find((x) => x.hostPath === p.hostPath);
        const shared = `Sharing ${p.hostPath} at ${p.guestPath ?? p.hostPath} in the VM${p.readOnly ? ' (read-only)' : ''}${live ? ` (${live.state}${live.error ? `: ${live.error}` : ''})` : ' when it runs'}.\n`;
        if (!opts.sync) return g.json ? printJson(r) : void process.stdout.write(shared);
        // The share stays whatever the sync says: the error tells what to do next.
        if (!g.json) process.stdout.write(shared);
        const s = await callOrOffline(paths, 'sync.add', { hostPath: p.hostPath }).catch((err: unknown) => {
          if (!isBerthError(err)) throw err;
          throw new BerthError(err.code, `${p.hostPath} is shared, but cannot be synced: ${err.message}`, err.hint, err.details);
        });
        if (g.json) return printJson({ ...r, syncs: s.syncs, syncConfigured: s.configured });
        const syncing = s.syncs.find((x) => x.hostPath === p.hostPath);
        process.stdout.write(
          syncing
            ? `Syncing it with a copy on the VM's disk (${syncing.state}${syncing.error ? `: ${syncing.error}` : ''}). \`berth sync\` shows its progress.\n`
            : "Syncing it with a copy on the VM's disk once the VM runs.\n",
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
    .description("folders kept in sync with a copy on the VM's disk (builds in containers at native disk speed): list them with their state and conflicts")
    .action(
      action(async (g, paths) => {
        const r = await callOrOffline(paths, 'sync.list', {});
        if (g.json) return printJson(r);
        process.stdout.write(formatSync(r.syncs, r.configured) + '\n');
      }),
    );
  sync
    .command('add')
    .description("keep a folder inside a shared folder in sync with a copy on the VM's disk; `docker run -v` of it (or of a folder in it) then uses the copy")
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
    .description("stop syncing a folder: a last sync, then the VM's copy is deleted (the host folder stays as it is)")
    .argument('<path>', 'the host folder')
    .action(
      action(async (g, paths, dir: string) => {
        const hostPath = path.resolve(dir);
        const r = await callOrOffline(paths, 'sync.remove', { hostPath });
        if (g.json) return printJson(r);
        process.stdout.write(`Stopped syncing ${hostPath}; containers see it through the shared folder again.\n`);
      }),
    );
  // After the subcommands: they must not inherit the group's excess arguments.
  for (const group of [port, share, sync]) listsAlone(group);
}
