import { spawn } from 'node:child_process';
import os from 'node:os';
import { BerthError } from '../../contract/errors.js';
import { RESULT_MARK } from './hyperv-scripts.js';

/**
 * Running a Hyper-V script: `powershell.exe -NoProfile -NonInteractive
 * -ExecutionPolicy Bypass -Command -` with the script on stdin, its
 * `BERTH-RESULT:` line parsed, and a failure mapped to the error the user
 * sees (Hyper-V off, not an administrator, no switch, ...).
 */

export type PsResult = { ok: true; [k: string]: unknown } | { ok: false; kind: string; message: string; category?: string; errorId?: string };

export interface PsRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one script; injectable so tests and host-detect can stand in. */
export type PowerShellRunner = (script: string, timeoutMs?: number) => Promise<PsRun>;

/** The PowerShell to run: `explicit` (BERTH_POWERSHELL), else Windows PowerShell. */
export function powershellBinary(explicit?: string): string {
  return explicit || 'powershell.exe';
}

/** The command line every script runs under (script on stdin). */
export const POWERSHELL_ARGS = ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-Command', '-'];

export function spawnPowerShell(binary = powershellBinary()): PowerShellRunner {
  return (script, timeoutMs = 120_000) =>
    new Promise((resolve, reject) => {
      const child = spawn(binary, POWERSHELL_ARGS, { stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8');
      child.stderr.setEncoding('utf8');
      child.stdout.on('data', (d: string) => (stdout = (stdout + d).slice(-262_144)));
      child.stderr.on('data', (d: string) => (stderr = (stderr + d).slice(-65_536)));
      const timer = setTimeout(() => child.kill(), timeoutMs);
      child.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (err.code === 'ENOENT') {
          reject(
            new BerthError(
              'POWERSHELL_MISSING',
              `${binary} was not found`,
              'Windows PowerShell ships with Windows; check that %SystemRoot%\\System32\\WindowsPowerShell\\v1.0 is on PATH, or set BERTH_POWERSHELL to powershell.exe or pwsh.exe.',
            ),
          );
        } else reject(err);
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(script);
    });
}

/** The script's result line, or an error built from what PowerShell said instead. */
export function parsePsResult(run: PsRun): PsResult {
  const line = run.stdout
    .split(/\r?\n/)
    .reverse()
    .find((l) => l.startsWith(RESULT_MARK));
  if (line) {
    try {
      return JSON.parse(line.slice(RESULT_MARK.length)) as PsResult;
    } catch {
      /* fall through */
    }
  }
  const text = `${run.stderr}\n${run.stdout}`.trim();
  if (/is not recognized as (the name of )?a cmdlet|CommandNotFoundException/i.test(text)) {
    return { ok: false, kind: 'disabled', message: 'the Hyper-V PowerShell cmdlets are not available' };
  }
  if (/required permission|PermissionDenied|Access is denied/i.test(text)) {
    return { ok: false, kind: 'not-admin', message: 'this user may not manage Hyper-V' };
  }
  return {
    ok: false,
    kind: 'error',
    message:
      text
        .split('\n')
        .find((l) => l.trim())
        ?.trim() || `PowerShell exited with status ${run.code}`,
  };
}

/** The Windows account name for the hint (DOMAIN\user when Windows tells). */
function accountName(): string {
  const user = process.env.USERNAME || os.userInfo().username;
  return process.env.USERDOMAIN ? `${process.env.USERDOMAIN}\\${user}` : user;
}

/** A failed script result as the error the user sees. */
export function hypervError(r: Extract<PsResult, { ok: false }>, doing: string, switchName: string, details?: string): BerthError {
  const kind =
    r.category === 'PermissionDenied' || /required permission/i.test(r.message)
      ? 'not-admin'
      : r.errorId === 'CommandNotFoundException' || /is not recognized as (the name of )?a cmdlet/i.test(r.message)
        ? 'disabled' // the Hyper-V module is not there
        : r.kind;
  switch (kind) {
    case 'disabled':
      return new BerthError(
        'HYPERV_DISABLED',
        `Hyper-V is not available: ${r.message}`,
        'Turn Hyper-V on: in PowerShell run as administrator, `Enable-WindowsOptionalFeature -Online -FeatureName Microsoft-Hyper-V -All`, then restart Windows. Windows Home has no Hyper-V; virtualization must also be enabled in the firmware (BIOS/UEFI).',
        details,
      );
    case 'not-admin':
      return new BerthError(
        'HYPERV_NOT_ADMIN',
        `you may not manage Hyper-V VMs: ${r.message}`,
        `Add your account to the Hyper-V Administrators group: in PowerShell run as administrator, \`Add-LocalGroupMember -SID S-1-5-32-578 -Member '${accountName()}'\`, then sign out and back in.`,
        details,
      );
    case 'no-switch':
      return new BerthError(
        'HYPERV_SWITCH_MISSING',
        `Hyper-V has no virtual switch named "${switchName}"`,
        'Windows 10/11 creates "Default Switch" with Hyper-V; on Windows Server create a NAT switch (`New-VMSwitch -Name Berth -SwitchType Internal` plus `New-NetNat`) and set BERTH_HYPERV_SWITCH to its name.',
        details,
      );
    case 'disk-shrink': {
      const have = /is (\d+) GiB/.exec(r.message)?.[1];
      return new BerthError(
        'DISK_SHRINK',
        r.message,
        `A Hyper-V disk (VHDX) only grows: Resize-VHD cannot shrink it below the file system on it, and that takes the whole disk. To keep your images, containers and volumes, set the size back: \`berth settings set diskGiB=${have ?? '<its size>'}\`. To start over with a smaller disk, \`berth stop\`, then Troubleshoot > Factory reset (or delete that file): everything Docker kept on it is lost.`,
        details,
      );
    }
    default:
      return new BerthError(
        'HYPERV_FAILED',
        `Hyper-V could not ${doing}: ${r.message}`,
        kind === 'name-taken'
          ? 'Rename or remove that VM in Hyper-V Manager, or use another Berth instance name.'
          : 'Hyper-V Manager and the event log (Applications and Services Logs > Microsoft > Windows > Hyper-V-VMMS) show more; `berth logs --engine` has the script.',
        details,
      );
  }
}
