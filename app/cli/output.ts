import type { VmStatus } from '../engine/api/contract.js';
import { toErrorInfo, type ErrorInfo } from '../engine/errors.js';

const tty = process.stdout.isTTY && !process.env.NO_COLOR;
const c = (code: string) => (s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
export const bold = c('1');
export const dim = c('2');
export const red = c('31');
export const green = c('32');
export const yellow = c('33');

/** Print an error the same way everywhere: message and code, hint, details. */
export function printError(err: unknown, json: boolean): ErrorInfo {
  const info = toErrorInfo(err);
  if (json) {
    process.stdout.write(JSON.stringify({ error: info }, null, 2) + '\n');
    return info;
  }
  const e = process.stderr;
  e.write(`${red('error:')} ${info.message} ${dim(`[${info.code}]`)}\n`);
  e.write(`${yellow('hint:')} ${info.hint}\n`);
  if (info.details) {
    e.write(
      info.details
        .trimEnd()
        .split('\n')
        .map((l) => `  ${dim('|')} ${l}`)
        .join('\n') + '\n',
    );
  }
  return info;
}

const seconds = (ms?: number) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`);

export function formatStatus(s: VmStatus): string {
  const state =
    s.state === 'running' ? green(s.state) : s.state === 'error' ? red(s.state) : s.state === 'stopped' ? dim(s.state) : yellow(s.state);
  const lines = [`${bold('instance')}      ${s.instance}`, `${bold('state')}         ${state}${s.phase ? ` (${s.phase})` : ''}`];
  if (s.error) {
    lines.push(`${bold('error')}         ${s.error.message} [${s.error.code}]`);
    lines.push(`${bold('hint')}          ${s.error.hint}`);
  }
  if (s.accel) lines.push(`${bold('accelerator')}   ${s.accel}${s.accelReason ? dim(` (${s.accelReason})`) : ''}`);
  lines.push(`${bold('resources')}     ${s.cpus} CPUs, ${s.memoryMiB} MiB memory, ${s.diskGiB} GiB disk`);
  lines.push(`${bold('docker socket')} ${s.dockerSocket}`);
  if (s.dockerContext) {
    lines.push(
      `${bold('docker context')}${' '}${s.dockerContext.name}${s.dockerContext.outcome === 'conflict' ? red(' (name taken by another context; left alone)') : ''}`,
    );
  }
  if (s.vmPid) lines.push(`${bold('vm pid')}        ${s.vmPid}${s.attached ? dim(' (reattached)') : ''}`);
  lines.push(`${bold('engine pid')}    ${s.enginePid}`);
  if (s.session) lines.push(`${bold('guest link')}    ${s.session.state}${s.session.connects > 1 ? ` (${s.session.connects - 1} reconnects)` : ''}`);
  if (s.timings?.totalMs !== undefined) {
    const t = s.timings;
    lines.push(
      `${bold('start time')}    ${seconds(t.totalMs)} ${dim(`(image ${seconds(t.imageMs)}, boot→ssh ${seconds(t.guestMs)}, →dockerd ${seconds(t.dockerMs)}, →socket ${seconds(t.socketMs)})`)}`,
    );
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
