import { useEffect, useId, useRef, type KeyboardEvent } from 'react';
import type { ContainerStatsSample, ContainerView } from '../../../../contract/contract-docker';
import { ErrorNote } from '../../components/ErrorNote';
import { LogViewer } from '../../components/LogViewer';
import { TerminalView } from '../../components/TerminalView';
import { formatBytes, shortId } from '../../format';
import { Icon } from './icons';
import { InspectView } from './InspectView';
import { isRunning } from './useContainers';
import { useStats } from './useStats';

export type DrawerTab = 'logs' | 'terminal' | 'inspect';
const TABS: { id: DrawerTab; label: string }[] = [
  { id: 'logs', label: 'Logs' },
  { id: 'terminal', label: 'Terminal' },
  { id: 'inspect', label: 'Inspect' },
];

/** A line of the last minute's values (decoration: the numbers beside it say the same). */
function Sparkline({ values, max }: { values: number[]; max: number }) {
  if (values.length < 2) return null;
  const top = Math.max(max, ...values, 1e-9);
  const pts = values.map((v, i) => `${((i / (values.length - 1)) * 100).toFixed(1)},${(20 - (v / top) * 18).toFixed(1)}`).join(' ');
  return (
    <svg className="sparkline" viewBox="0 0 100 20" preserveAspectRatio="none" aria-hidden="true" focusable="false">
      <polyline points={pts} fill="none" stroke="currentColor" strokeWidth="1.5" vectorEffect="non-scaling-stroke" />
    </svg>
  );
}

function Stats({ samples, latest, running }: { samples: ContainerStatsSample[]; latest?: ContainerStatsSample; running: boolean }) {
  if (!running) return <div className="stats muted">Not running: no CPU or memory use.</div>;
  return (
    <div className="stats" aria-live="off">
      <div className="stat">
        <span className="stat-label">CPU</span>
        <span className="stat-value" data-testid="stats-cpu">
          {latest ? `${latest.cpuPercent.toFixed(1)} %` : '…'}
        </span>
        <Sparkline values={samples.map((s) => s.cpuPercent)} max={100} />
      </div>
      <div className="stat">
        <span className="stat-label">Memory</span>
        <span className="stat-value" data-testid="stats-memory">
          {latest ? `${formatBytes(latest.memoryBytes)}${latest.memoryLimitBytes ? ` of ${formatBytes(latest.memoryLimitBytes)}` : ''}` : '…'}
        </span>
        <Sparkline values={samples.map((s) => s.memoryBytes)} max={latest?.memoryLimitBytes ?? 0} />
      </div>
    </div>
  );
}

/**
 * One container's detail view, beside the list: its state and live CPU and
 * memory on top, then Logs, Terminal and Inspect. It takes the window's
 * full height, so the log is in view whatever the list's length. Escape
 * closes it (except in the terminal, where Escape belongs to the shell)
 * and focus goes back where it was.
 */
export function ContainerDrawer({ c, tab, onTab, onClose }: { c: ContainerView; tab: DrawerTab; onTab: (t: DrawerTab) => void; onClose: () => void }) {
  const running = isRunning(c);
  const stats = useStats(c.id, running);
  const headingId = useId();
  const tabIds = useId();
  const headingRef = useRef<HTMLHeadingElement>(null);
  const openerRef = useRef<Element | null>(null);

  // Focus moves into the drawer when it opens or shows another container, and back to what opened it last when it closes.
  useEffect(() => {
    const a = document.activeElement;
    if (a && !a.closest('.drawer')) openerRef.current = a;
    headingRef.current?.focus();
  }, [c.id]);
  useEffect(() => () => (openerRef.current as HTMLElement | null)?.focus?.({ preventScroll: true }), []);

  const onKey = (e: KeyboardEvent) => {
    if (e.key === 'Escape' && !(e.target as HTMLElement).closest('.xterm')) {
      e.stopPropagation();
      onClose();
    }
  };
  const current = tab === 'terminal' && !running ? 'logs' : tab;

  return (
    <section className="drawer" aria-labelledby={headingId} onKeyDown={onKey} data-testid="container-drawer">
      <div className="drawer-head">
        <div className="drawer-title">
          <h2 id={headingId} ref={headingRef} tabIndex={-1} title={c.name}>
            {c.name}
          </h2>
          <div className="muted small">
            <span className={`pill state-${c.state}`}>{c.state}</span> {c.status} · {c.image} · {shortId(c.id)}
            {c.project ? ` · Compose ${c.project}` : ''}
          </div>
        </div>
        <button type="button" className="icon-button" onClick={onClose} aria-label={`Close the details of ${c.name}`} title="Close (Esc)">
          <Icon name="close" />
        </button>
      </div>
      <Stats samples={stats.samples} latest={stats.latest} running={running} />
      <ErrorNote error={stats.error} />
      <div role="tablist" aria-label={`Views of ${c.name}`} className="drawer-tabs">
        {TABS.map((t) => (
          <button
            key={t.id}
            id={`${tabIds}-${t.id}`}
            type="button"
            role="tab"
            aria-selected={current === t.id}
            aria-controls={`${tabIds}-panel`}
            disabled={t.id === 'terminal' && !running}
            title={t.id === 'terminal' && !running ? 'Start the container to open a terminal' : undefined}
            onClick={() => onTab(t.id)}
          >
            {t.label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`${tabIds}-panel`} aria-labelledby={`${tabIds}-${current}`} className="drawer-body">
        {current === 'logs' && <LogViewer key={`l-${c.id}`} containerId={c.id} name={c.name} fill />}
        {current === 'terminal' && <TerminalView key={`t-${c.id}`} containerId={c.id} name={c.name} />}
        {current === 'inspect' && <InspectView key={`i-${c.id}`} containerId={c.id} name={c.name} state={c.state} />}
      </div>
    </section>
  );
}
