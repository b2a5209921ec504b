import type { PortViewWire, SyncViewWire, VmStatus } from '../contract/contract.js';
import { formatBootTimeline } from './boot-timeline-format.js';
import { shWord } from '../base/shell-quote.js';

type ShareViewWire = NonNullable<VmStatus['shares']>[number];
import { toErrorInfo, type ErrorInfo } from '../contract/errors.js';

/**
 * Colour is decided per stream: stdout's text is coloured when stdout is a
 * terminal, stderr's when stderr is (so `berth ... 2>file` gets no escape
 * codes), and never with NO_COLOR set (https://no-color.org) or TERM=dumb.
 */
export function colourWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return !!stream.isTTY && !env.NO_COLOR && env.TERM !== 'dumb';
}

export interface Palette {
  bold: (s: string) => string;
  dim: (s: string) => string;
  red: (s: string) => string;
  green: (s: string) => string;
  yellow: (s: string) => string;
}

export function palette(on: boolean): Palette {
  const c = (code: string) => (s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);
  return { bold: c('1'), dim: c('2'), red: c('31'), green: c('32'), yellow: c('33') };
}

/** For text written to stdout. */
export const { bold, dim, red, green, yellow } = palette(colourWanted(process.stdout));
/** For text written to stderr: errors, warnings, progress. */
export const onStderr: Palette = palette(colourWanted(process.stderr));

/** Print an error the same way everywhere: message and code, hint, details. */
export function printError(err: unknown, json: boolean): ErrorInfo {
  const info = toErrorInfo(err);
  if (json) {
    process.stdout.write(JSON.stringify({ error: info }, null, 2) + '\n');
    return info;
  }
  const e = process.stderr;
  e.write(`${onStderr.red('error:')} ${info.message} ${onStderr.dim(`[${info.code}]`)}\n`);
  e.write(`${onStderr.yellow('hint:')} ${info.hint}\n`);
  if (info.details) {
    e.write(
      info.details
        .trimEnd()
        .split('\n')
        .map((l) => `  ${onStderr.dim('|')} ${l}`)
        .join('\n') + '\n',
    );
  }
  return info;
}

const seconds = (ms?: number) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`);

export function formatStatus(s: VmStatus): string {
  const state = s.state === 'running' ? green(s.state) : s.state === 'error' ? red(s.state) : s.state === 'stopped' ? dim(s.state) : yellow(s.state);
  const lines = [`${bold('instance')}      ${s.instance}`, `${bold('state')}         ${state}${s.phase ? ` (${s.phase})` : ''}`];
  if (s.error) {
    lines.push(`${bold('error')}         ${s.error.message} [${s.error.code}]`);
    lines.push(`${bold('hint')}          ${s.error.hint}`);
  }
  const live = s.state !== 'stopped' && s.driverReason;
  lines.push(
    `${bold('driver')}        ${s.driver}${live ? dim(` (${s.driverReason})`) : s.driver === 'auto' ? dim(' (picked at start; `berth doctor` shows which)') : ''}`,
  );
  if (s.accel) lines.push(`${bold('accelerator')}   ${s.accel}${s.accelReason ? dim(` (${s.accelReason})`) : ''}`);
  if (s.rosetta)
    lines.push(
      `${bold('rosetta')}       ${s.rosetta.active ? 'on (x86_64 binaries run through Rosetta)' : yellow(`not used: ${s.rosetta.note ?? 'see `berth doctor`'}`)}`,
    );
  lines.push(`${bold('resources')}     ${s.cpus} CPUs, ${s.memoryMiB} MiB memory, ${s.diskGiB} GiB disk`);
  if (s.disk) lines.push(`${bold('disk')}          ${diskLine(s.disk)}`);
  lines.push(`${bold('docker socket')} ${s.dockerSocket}`);
  if (s.dockerContext) {
    lines.push(
      `${bold('docker context')}${' '}${s.dockerContext.name}${s.dockerContext.outcome === 'conflict' ? red(' (name taken by another context; left alone)') : ''}`,
    );
  }
  if (s.rest) lines.push(`${bold('idle rest')}     ${restLine(s.rest)}`);
  if (s.vmPid) lines.push(`${bold('vm pid')}        ${s.vmPid}${s.attached ? dim(' (reattached)') : ''}`);
  lines.push(`${bold('engine pid')}    ${s.enginePid}`);
  if (s.lastCrash) {
    lines.push(
      `${bold('last crash')}    ${s.lastCrash.at} ${dim(`(${s.lastCrash.reason}; ${s.lastCrash.recent} in the last 10 minutes; \`berth logs --serial\` has the console)`)}`,
    );
  }
  (s.shares ?? []).forEach((x, i) => {
    const state = x.state === 'mounted' ? x.state : x.state === 'error' ? red(x.state) : yellow(x.state);
    const label = i ? ' '.repeat(14) : `${bold('shares')}        `;
    lines.push(`${label}${x.hostPath} ${x.mechanism} ${state}${x.mechanismReason ? dim(` (${x.mechanismReason})`) : ''}`);
  });
  if (s.sync?.length) {
    const conflicts = s.sync.reduce((n, x) => n + x.conflicts.length, 0);
    const states = s.sync.map((x) => x.state).join(', ');
    lines.push(
      `${bold('synced')}        ${s.sync.length} folder${s.sync.length > 1 ? 's' : ''} (${states})${conflicts ? red(` ${conflicts} conflicts: see \`berth sync\``) : ''}`,
    );
  }
  if (s.sshAgent) lines.push(`${bold('ssh agent')}     ${s.sshAgent.guestPath ?? dim(`none (${s.sshAgent.why ?? 'unknown'})`)}`);
  if (s.hostLoopback) {
    const h = s.hostLoopback;
    lines.push(
      `${bold('host loopback')} ${h.address ? `host.docker.internal is ${h.address}, relayed by Berth` : red(`not reached (${h.why ?? 'unknown'}); \`berth restart\` starts the relay again`)}`,
    );
  }
  if (s.session) lines.push(`${bold('guest link')}    ${s.session.state}${s.session.connects > 1 ? ` (${s.session.connects - 1} reconnects)` : ''}`);
  if (s.timings?.totalMs !== undefined) {
    const t = s.timings;
    lines.push(
      `${bold('start time')}    ${seconds(t.totalMs)} ${dim(`(image ${seconds(t.imageMs)}, boot→ssh ${seconds(t.guestMs)}, →dockerd ${seconds(t.dockerMs)}, →socket ${seconds(t.socketMs)})`)}`,
    );
  }
  if (s.bootTimeline?.length) {
    const rows = formatBootTimeline(s.bootTimeline, '');
    rows.forEach((r, i) => lines.push(`${i ? ' '.repeat(14) : `${bold('boot timeline')} `}${r}`));
  }
  return lines.join('\n');
}

export function usageHint(s: VmStatus): string {
  return [
    `Use it from your docker CLI:`,
    `  export DOCKER_HOST=${s.dockerHost}`,
    `or switch the docker CLI's context:`,
    `  berth context use        ${dim(`(same as: docker context use ${s.dockerContext?.name ?? 'berth'})`)}`,
  ].join('\n');
}

const hostAddr = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

/** `berth ports`: one line per forward, then manual forwards not live yet. */
export function formatPorts(ports: PortViewWire[], manual: { hostPort: number; guestPort: number; proto: string; hostIp?: string }[]): string {
  const rows: string[][] = [['HOST', 'GUEST', 'PROTO', 'SOURCE', 'STATE', 'DETAILS']];
  for (const p of ports) {
    const state = p.state === 'active' ? green(p.state) : red(p.state);
    const what = p.error ?? (p.container ? `${p.container.name} (container port ${p.container.port})` : p.connections ? `${p.connections} connections` : '');
    rows.push([p.hostIps.map((ip) => hostAddr(ip, p.hostPort)).join(', '), hostAddr(p.guestIp, p.guestPort), p.proto, p.source, state, what]);
  }
  for (const m of manual) {
    if (ports.some((p) => p.source === 'manual' && p.hostPort === m.hostPort && p.proto === m.proto)) continue;
    rows.push([hostAddr(m.hostIp ?? '127.0.0.1', m.hostPort), `guest:${m.guestPort}`, m.proto, 'manual', dim('inactive'), 'applies while the VM runs']);
  }
  if (rows.length === 1) return 'No ports are forwarded. Publish one with `docker run -p 8080:80 ...` or add one with `berth port add 8080:80`.';
  return table(rows);
}

/** `berth shares`: live mounts, then configured shares that are not mounted (VM stopped). */
export function formatShares(shares: ShareViewWire[], configured: { hostPath: string; guestPath?: string; readOnly?: boolean }[]): string {
  const rows: string[][] = [['HOST FOLDER', 'IN THE VM', 'MODE', 'MECHANISM', 'STATE']];
  for (const s of shares) {
    const state = s.state === 'mounted' ? green(s.state) : s.state === 'error' ? red(s.state) : yellow(s.state);
    rows.push([s.hostPath, s.guestPath, s.readOnly ? 'ro' : 'rw', s.mechanism, `${state}${s.error ? ` ${s.error}` : ''}`]);
  }
  for (const c of configured) {
    if (shares.some((s) => s.hostPath === c.hostPath)) continue;
    rows.push([c.hostPath, c.guestPath ?? c.hostPath, c.readOnly ? 'ro' : 'rw', '-', dim('not mounted (VM stopped)')]);
  }
  if (rows.length === 1) return 'No folders are shared. Share one with `berth share add PATH`.';
  const why = shares.filter((s) => s.mechanismReason).map((s) => `${s.hostPath}: ${s.mechanism}, ${s.mechanismReason}`);
  const advice = shares.filter((s) => s.busy && s.advice).map((s) => `${yellow('Sync it:')} ${s.advice}.\n  berth sync add ${shWord(s.busy!.folder)}`);
  return [table(rows), why.length ? dim(why.join('\n')) : '', ...advice].filter(Boolean).join('\n\n');
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const size = (b: number) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(1)} GiB` : mib(b));

/** "1.2 GiB used in the VM, 1.4 GiB on this computer's disk (of 64.0 GiB)": the guest's df and the file's allocated blocks. */
export function diskLine(d: NonNullable<VmStatus['disk']>): string {
  const used = d.usedBytes === undefined ? '' : `${size(d.usedBytes)} used in the VM, `;
  return `${used}${size(d.allocatedBytes)} on this computer's disk ${dim(`(of ${size(d.sizeBytes)})`)}`;
}

/** `berth sync`: each synced folder, its state, then its conflicts; configured ones not live yet. */
export function formatSync(syncs: SyncViewWire[], configured: { hostPath: string }[]): string {
  const rows: string[][] = [['FOLDER', 'STATE', 'FILES', 'LAST SYNC', 'DETAILS']];
  const notes: string[] = [];
  for (const s of syncs) {
    const state = s.state === 'watching' ? green(s.state) : s.state === 'error' ? red(s.state) : yellow(s.state);
    let details = s.mounted ? `mounted at ${s.guestPath} in the VM` : dim('not mounted yet (containers see the shared folder)');
    if (s.initial) details = `first copy: ${s.initial.files}/${s.initial.totalFiles} files, ${mib(s.initial.bytes)} of ${mib(s.initial.totalBytes)}`;
    if (s.error) details = `${s.error}${s.hint ? ` ${dim(s.hint)}` : ''}`;
    if (s.conflicts.length) details += red(` ${s.conflicts.length} conflict${s.conflicts.length > 1 ? 's' : ''}`);
    rows.push([s.hostPath, state, String(s.entries), s.lastSyncAt ? new Date(s.lastSyncAt).toLocaleTimeString() : '-', details]);
    for (const c of s.conflicts) notes.push(`  ${c.path}\n    changed on both sides; the host's version kept the name, the VM's is ${c.guestCopy}`);
  }
  for (const c of configured) {
    if (syncs.some((s) => s.hostPath === c.hostPath)) continue;
    rows.push([c.hostPath, dim('stopped'), '-', '-', 'syncs while the VM runs']);
  }
  if (rows.length === 1) return 'No folders are synced. Sync one inside a shared folder with `berth sync add PATH`.';
  const out = table(rows);
  return notes.length ? `${out}\n\n${bold('Conflicts')} (delete or rename the copy once resolved):\n${notes.join('\n')}` : out;
}

/** Rows as aligned columns (colour codes do not count toward widths). */
function table(rows: string[][]): string {
  const strip = (x: string) => x.replace(/\x1b\[[0-9;]*m/g, '');
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => strip(r[i]!).length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - strip(c).length)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function restLine(r: NonNullable<VmStatus['rest']>): string {
  if (!r.idleMinutes) return dim('off (idleMinutes=0)');
  const parts = [`after ${r.idleMinutes} idle min`];
  if (r.restingSince) parts.push(`resting since ${r.restingSince}; the next docker command wakes it`);
  else if (r.busy) parts.push(`in use: ${r.busy}`);
  else if (r.idleSince) parts.push(`idle since ${r.idleSince}`);
  if (r.rests)
    parts.push(
      `${r.rests} rest${r.rests > 1 ? 's' : ''}, ${r.wakes} wake${r.wakes === 1 ? '' : 's'}${r.lastWakeMs !== undefined ? ` (last ${seconds(r.lastWakeMs)})` : ''}`,
    );
  return parts.join('; ');
}
