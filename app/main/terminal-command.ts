import { shWord } from '../base/shell-quote.js';

/**
 * "Open Terminal": the system's terminal app running `berth shell`, as a
 * command line per platform (data, so it is tested without a desktop).
 */
export interface TerminalLaunch {
  command: string;
  args: string[];
}

/** `berthCmd`: how to run the berth CLI here, e.g. [node, /app/bin/berth.js] (plus the instance flag). */
export function terminalLaunch(platform: NodeJS.Platform, berthCmd: string[], env: NodeJS.ProcessEnv = {}): TerminalLaunch[] {
  const shell = [...berthCmd, 'shell'];
  const line = shell.map(shWord).join(' ');
  if (platform === 'darwin') {
    const script = `tell application "Terminal" to do script "${line.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
    return [{ command: 'osascript', args: ['-e', script, '-e', 'tell application "Terminal" to activate'] }];
  }
  if (platform === 'win32') {
    return [{ command: 'cmd.exe', args: ['/c', 'start', '"Berth"', 'cmd.exe', '/k', ...shell.map((a) => (/\s/.test(a) ? `"${a}"` : a))] }];
  }
  // Linux and the rest: the user's terminal first, then the usual ones.
  const candidates: TerminalLaunch[] = [];
  if (env.TERMINAL) candidates.push({ command: env.TERMINAL, args: ['-e', ...shell] });
  candidates.push(
    { command: 'x-terminal-emulator', args: ['-e', ...shell] },
    { command: 'gnome-terminal', args: ['--', ...shell] },
    { command: 'konsole', args: ['-e', ...shell] },
    { command: 'xfce4-terminal', args: ['-x', ...shell] },
    { command: 'xterm', args: ['-e', ...shell] },
  );
  return candidates;
}
