import { useEffect, useState } from 'react';
import type { ErrorInfo } from '../../contract/errors';
import { useApi } from './api';
import { STATE_LABELS } from './format';
import { Containers } from './screens/Containers';
import { Home } from './screens/Home';
import { Images } from './screens/Images';
import { Ports } from './screens/Ports';
import { Settings } from './screens/Settings';
import { FileSharing } from './screens/Shares';
import { Troubleshoot } from './screens/Troubleshoot';
import { Volumes } from './screens/Volumes';
import { VmProvider, useVm } from './vm';

export const SCREENS = [
  { id: 'home', title: 'Home', view: Home },
  { id: 'containers', title: 'Containers', view: Containers },
  { id: 'images', title: 'Images', view: Images },
  { id: 'volumes', title: 'Volumes', view: Volumes },
  { id: 'ports', title: 'Ports', view: Ports },
  { id: 'shares', title: 'File sharing', view: FileSharing },
  { id: 'settings', title: 'Settings', view: Settings },
  { id: 'troubleshoot', title: 'Troubleshoot', view: Troubleshoot },
] as const;
type ScreenId = (typeof SCREENS)[number]['id'];

function screenFromHash(): ScreenId {
  const id = /^#\/([a-z]+)/.exec(window.location.hash)?.[1];
  return SCREENS.some((s) => s.id === id) ? (id as ScreenId) : 'home';
}

export function App() {
  const [screen, setScreen] = useState<ScreenId>(screenFromHash);
  useEffect(() => {
    const on = () => setScreen(screenFromHash());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  const current = SCREENS.find((s) => s.id === screen)!;
  // In a narrow window the sidebar collapses to a bar with a menu button; choosing a screen closes it.
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => {
    document.title = `${current.title} · Berth`;
    setMenuOpen(false);
    document.getElementById('main')?.focus({ preventScroll: true });
  }, [current]);
  const View = current.view;
  return (
    <VmProvider>
      <a className="skip-link" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <div className="layout">
        <nav className={`sidebar${menuOpen ? ' open' : ''}`} aria-label="Screens">
          <div className="brand" aria-hidden="true">
            Berth
          </div>
          <button type="button" className="menu-button" aria-expanded={menuOpen} aria-controls="screen-list" onClick={() => setMenuOpen((o) => !o)}>
            <span aria-hidden="true">☰</span> {current.title}
            <span className="visually-hidden"> (screens menu)</span>
          </button>
          <ul id="screen-list">
            {SCREENS.map((s) => (
              <li key={s.id}>
                <a href={`#/${s.id}`} aria-current={s.id === screen ? 'page' : undefined}>
                  {s.title}
                </a>
              </li>
            ))}
          </ul>
          <VmBadge />
        </nav>
        <main id="main" tabIndex={-1}>
          <LinkBanner />
          <h1>{current.title}</h1>
          <View />
        </main>
      </div>
    </VmProvider>
  );
}

/** The VM state, on every screen. */
function VmBadge() {
  const { status } = useVm();
  const state = status?.state ?? 'unknown';
  return (
    <div className={`vm-badge state-${state}`} role="status" aria-live="polite" aria-label={`VM ${STATE_LABELS[state] ?? 'state unknown'}`}>
      <span className="dot" aria-hidden="true" /> VM {STATE_LABELS[state]?.toLowerCase() ?? '…'}
    </div>
  );
}

/** Says so when the page cannot reach the engine side at all (dashboard server gone). */
function LinkBanner() {
  const api = useApi();
  const [problem, setProblem] = useState<ErrorInfo | null>(null);
  useEffect(() => api.transport.onLink((up, p) => setProblem(up ? null : (p ?? null))), [api]);
  if (!problem) return null;
  return (
    <div className="link-banner" role="alert">
      <strong>{problem.message}.</strong> {problem.hint}
    </div>
  );
}
