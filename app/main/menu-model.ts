import type { VmState } from '../contract/vm-states.js';
import type { TrayView } from './tray-state.js';

export type MenuAction =
  | 'start'
  | 'stop'
  | 'restart'
  | 'open-dashboard'
  | 'open-terminal'
  | 'open-settings'
  | 'open-troubleshoot'
  | 'toggle-open-at-login'
  | 'quit-stop-vm'
  | 'quit-keep-running';

/** A menu item as data: the Electron menu is built from it, tests read it. */
export interface MenuItemModel {
  label?: string;
  action?: MenuAction;
  enabled?: boolean;
  type?: 'normal' | 'separator' | 'checkbox' | 'submenu';
  checked?: boolean;
  submenu?: MenuItemModel[];
}

/** The tray menu for a VM state: status line, VM actions, windows, login item, quit. */
export function trayMenu(view: TrayView, state: VmState | undefined, prefs: { openAtLogin: boolean }): MenuItemModel[] {
  const running = state === 'running';
  const idle = state === 'stopped' || state === 'resting' || state === 'error' || state === undefined;
  return [
    { label: view.statusLine, enabled: false },
    { type: 'separator' },
    { label: 'Start', action: 'start', enabled: idle },
    { label: 'Stop', action: 'stop', enabled: running || state === 'starting' || state === 'resting' },
    { label: 'Restart', action: 'restart', enabled: running },
    { type: 'separator' },
    { label: 'Open Dashboard', action: 'open-dashboard', enabled: true },
    { label: 'Open Terminal (VM shell)', action: 'open-terminal', enabled: running },
    { label: 'Settings…', action: 'open-settings', enabled: true },
    { label: 'Troubleshoot…', action: 'open-troubleshoot', enabled: true },
    { type: 'separator' },
    { label: 'Start Berth at Login', action: 'toggle-open-at-login', type: 'checkbox', checked: prefs.openAtLogin, enabled: true },
    { type: 'separator' },
    {
      label: 'Quit Berth',
      type: 'submenu',
      enabled: true,
      submenu: [
        { label: 'Quit and Stop the VM', action: 'quit-stop-vm', enabled: true },
        { label: 'Quit, Keep Containers Running', action: 'quit-keep-running', enabled: true },
      ],
    },
  ];
}

export interface MenuActionDeps {
  call(method: 'vm.start' | 'vm.stop' | 'vm.restart', params: Record<string, never>): Promise<unknown>;
  showWindow(screen: 'home' | 'settings' | 'troubleshoot'): void;
  openTerminal(): Promise<void>;
  setOpenAtLogin(on: boolean): void;
  openAtLogin(): boolean;
  quit(stopVm: boolean): Promise<void>;
  /** Report a failure to the user (a notification or dialog with message and hint). */
  report(err: unknown, what: string): void;
}

/** Carry out a tray menu action. */
export async function runMenuAction(action: MenuAction, d: MenuActionDeps): Promise<void> {
  try {
    switch (action) {
      case 'start':
        return void (await d.call('vm.start', {}));
      case 'stop':
        return void (await d.call('vm.stop', {}));
      case 'restart':
        return void (await d.call('vm.restart', {}));
      case 'open-dashboard':
        return d.showWindow('home');
      case 'open-settings':
        return d.showWindow('settings');
      case 'open-troubleshoot':
        return d.showWindow('troubleshoot');
      case 'open-terminal':
        return await d.openTerminal();
      case 'toggle-open-at-login':
        return d.setOpenAtLogin(!d.openAtLogin());
      case 'quit-stop-vm':
        return await d.quit(true);
      case 'quit-keep-running':
        return await d.quit(false);
    }
  } catch (err) {
    d.report(err, action);
  }
}
