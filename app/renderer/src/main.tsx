import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { Api, ApiContext } from './api';
import { App } from './App';
import { PreloadTransport, type PreloadBridge } from './transport/preload-transport';
import type { Transport } from './transport/transport';
import { WebSocketTransport, dashboardSocketUrl } from './transport/ws-transport';
import './styles.css';

declare global {
  interface Window {
    berth?: PreloadBridge;
  }
}

/** Electron's preload bridge when there is one, else the dashboard's WebSocket. */
function pickTransport(): Transport {
  if (window.berth) return new PreloadTransport(window.berth);
  const url = dashboardSocketUrl(window.location, window.sessionStorage);
  // The token is kept for reloads; the address bar shows only the screen.
  if (/token=/.test(window.location.hash)) history.replaceState(null, '', /^#\/[a-z]+/.exec(window.location.hash)?.[0] ?? '#/home');
  return new WebSocketTransport(url);
}

const api = new Api(pickTransport());
createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <ApiContext.Provider value={api}>
      <App />
    </ApiContext.Provider>
  </StrictMode>,
);
