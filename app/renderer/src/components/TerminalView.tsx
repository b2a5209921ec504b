import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { useEffect, useRef, useState } from 'react';
import { CallError, useApi } from '../api';
import { ErrorNote } from './ErrorNote';

/**
 * A shell in a container (xterm.js): an exec session with a pty through the
 * engine. Typing goes in as terminal.input, the output comes back as
 * terminal.output events, the size follows the panel.
 */
export function TerminalView({ containerId, name }: { containerId: string; name: string }) {
  const api = useApi();
  const hostRef = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<CallError | null>(null);
  const [exited, setExited] = useState<number | null | undefined>(undefined);
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    const host = hostRef.current!;
    const term = new Terminal({ cursorBlink: true, fontSize: 13, fontFamily: 'ui-monospace, Menlo, Consolas, monospace', scrollback: 5000 });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host);
    try {
      fit.fit();
    } catch {
      /* not laid out yet */
    }
    let session: string | undefined;
    let off: (() => void) | undefined;
    let cancelled = false;
    let resizeTimer: ReturnType<typeof setTimeout> | undefined;
    setError(null);
    setExited(undefined);

    const input = term.onData((data) => {
      if (session) void api.call('terminal.input', { session, data }).catch((e) => setError(CallError.from(e)));
    });
    const resized = term.onResize(({ cols, rows }) => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        if (session) void api.call('terminal.resize', { session, cols, rows }).catch(() => undefined);
      }, 100);
    });
    const ro = new ResizeObserver(() => {
      try {
        fit.fit();
      } catch {
        /* hidden */
      }
    });
    ro.observe(host);

    api.call('terminal.start', { id: containerId, cols: term.cols, rows: term.rows }).then(
      (r) => {
        if (cancelled) {
          void api.call('terminal.stop', { session: r.session }).catch(() => undefined);
          return;
        }
        session = r.session;
        off = api.stream(r.session, (event, data) => {
          if (event === 'terminal.output') term.write((data as { data: string }).data);
          else if (event === 'terminal.exit') {
            const code = (data as { exitCode?: number }).exitCode;
            term.write(`\r\n\x1b[2m[the shell exited${code === undefined ? '' : ` with code ${code}`}]\x1b[0m\r\n`);
            setExited(code ?? null);
            session = undefined;
          }
        });
        term.focus();
      },
      (err) => {
        if (!cancelled) setError(CallError.from(err));
      },
    );

    return () => {
      cancelled = true;
      clearTimeout(resizeTimer);
      ro.disconnect();
      input.dispose();
      resized.dispose();
      off?.();
      if (session) void api.call('terminal.stop', { session }).catch(() => undefined);
      term.dispose();
    };
  }, [api, containerId, generation]);

  return (
    <div className="terminal-view">
      <ErrorNote error={error} />
      {exited !== undefined && (
        <div className="toolbar">
          <span className="muted">The shell exited{exited === null ? '' : ` with code ${exited}`}.</span>
          <button type="button" onClick={() => setGeneration((g) => g + 1)} aria-label={`Open a new shell in ${name}`}>
            New shell
          </button>
        </div>
      )}
      <div ref={hostRef} className="terminal-host" role="group" aria-label={`Terminal in ${name}`} data-testid="terminal" />
    </div>
  );
}
