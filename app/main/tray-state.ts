import type { VmState } from '../contract/vm-states.js';

/** The four looks of the tray icon. */
export type TrayIcon = 'stopped' | 'starting' | 'running' | 'error';

export interface TrayView {
  icon: TrayIcon;
  /** The tooltip: the state at a glance. */
  tooltip: string;
  /** The first (disabled) line of the tray menu. */
  statusLine: string;
}

const PHASES: Record<string, string> = {
  prepare: 'preparing',
  image: 'checking the guest image',
  boot: 'booting the VM',
  guest: 'waiting for the guest',
  docker: 'starting Docker',
  shares: 'sharing your home folder',
  socket: 'forwarding the Docker socket',
};

/**
 * The tray's look for a VM state. Stopping shows the busy icon, like
 * starting; an engine that cannot be reached is an error, with its reason.
 */
export function trayView(s: { state?: VmState; phase?: string; error?: { message: string }; engine: 'up' | 'down' | 'connecting' }): TrayView {
  if (s.engine === 'connecting') return { icon: 'starting', tooltip: 'Berth: connecting to the engine…', statusLine: 'Connecting to the engine…' };
  if (s.engine === 'down' && s.state !== 'stopped') {
    return { icon: 'error', tooltip: 'Berth: the engine is not running', statusLine: 'Engine not running' };
  }
  switch (s.state) {
    case 'running':
      return { icon: 'running', tooltip: 'Berth: running', statusLine: 'Berth is running' };
    case 'starting': {
      const what = s.phase ? (PHASES[s.phase] ?? s.phase) : 'starting';
      return { icon: 'starting', tooltip: `Berth: starting (${what})`, statusLine: `Starting: ${what}…` };
    }
    case 'stopping':
      return { icon: 'starting', tooltip: 'Berth: stopping', statusLine: 'Stopping…' };
    case 'resting':
      return { icon: 'stopped', tooltip: 'Berth: resting (the next docker command wakes it)', statusLine: 'Resting: wakes on the next docker command' };
    case 'error':
      return {
        icon: 'error',
        tooltip: `Berth: error${s.error ? ` (${s.error.message})` : ''}`.slice(0, 120),
        statusLine: `Error: ${s.error?.message ?? 'see Troubleshoot'}`.slice(0, 80),
      };
    default:
      return { icon: 'stopped', tooltip: 'Berth: stopped', statusLine: 'Berth is stopped' };
  }
}
