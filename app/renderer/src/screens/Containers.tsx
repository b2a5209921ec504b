import { useCallback, useEffect, useId, useMemo, useState } from 'react';
import type { ContainerView } from '../../../contract/contract-docker';
import type { PortViewWire } from '../../../contract/contract';
import { CallError, useApi, useEvent } from '../api';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { ErrorNote } from '../components/ErrorNote';
import { ListTable } from '../components/ListTable';
import { LogViewer } from '../components/LogViewer';
import { TerminalView } from '../components/TerminalView';
import { shortId } from '../format';
import { useVm } from '../vm';

type Action = 'start' | 'stop' | 'restart' | 'remove';

/** Containers, live: Docker's events patch the list as containers come, change and go. */
export function Containers() {
  const api = useApi();
  const { status } = useVm();
  const running = status?.state === 'running';
  const [list, setList] = useState<ContainerView[] | null>(null);
  const [loadError, setLoadError] = useState<CallError | null>(null);
  const [filter, setFilter] = useState('');
  const [busy, setBusy] = useState<Record<string, Action>>({});
  const [rowError, setRowError] = useState<{ id: string; error: CallError } | null>(null);
  const [panel, setPanel] = useState<{ id: string; name: string; tab: 'logs' | 'terminal' } | null>(null);
  const [removing, setRemoving] = useState<ContainerView | null>(null);
  const [conflicts, setConflicts] = useState<Map<number, PortViewWire>>(new Map());
  const filterId = useId();

  const load = useCallback(async () => {
    if (!running) {
      setList(null);
      return;
    }
    try {
      const r = await api.call('containers.list', { all: true });
      setList(r.containers);
      setLoadError(null);
    } catch (err) {
      setLoadError(CallError.from(err));
    }
  }, [api, running]);

  const loadPorts = useCallback(async () => {
    if (!running) return;
    try {
      setPortMap((await api.call('ports.list', {})).ports);
    } catch {
      /* ports are an extra */
    }
  }, [api, running]);
  const setPortMap = (ports: PortViewWire[]) => setConflicts(new Map(ports.filter((p) => p.state !== 'active').map((p) => [p.hostPort, p])));

  useEffect(() => {
    void load();
    void loadPorts();
  }, [load, loadPorts]);

  useEvent('containers.changed', (e) => {
    setList((old) => {
      if (!old) return old;
      const rest = old.filter((c) => c.id !== e.id);
      if (!e.container) return rest;
      const i = old.findIndex((c) => c.id === e.id);
      if (i < 0) return [e.container, ...rest];
      const copy = [...old];
      copy[i] = e.container;
      return copy;
    });
    if (!e.container && panel?.id === e.id) setPanel(null);
  });
  useEvent('ports.changed', (e) => setPortMap(e.ports));

  const act = async (c: ContainerView, action: Action) => {
    setBusy((b) => ({ ...b, [c.id]: action }));
    setRowError(null);
    try {
      if (action === 'remove') {
        await api.call('containers.remove', { id: c.id, force: true });
        setList((old) => old?.filter((x) => x.id !== c.id) ?? old);
        if (panel?.id === c.id) setPanel(null);
      } else {
        const r = await api.call(`containers.${action}`, { id: c.id });
        if (r.container) setList((old) => old?.map((x) => (x.id === c.id ? r.container! : x)) ?? old);
      }
    } catch (err) {
      setRowError({ id: c.id, error: CallError.from(err) });
    } finally {
      setBusy((b) => {
        const { [c.id]: _, ...rest } = b;
        return rest;
      });
    }
  };

  const shown = useMemo(() => {
    const q = filter.trim().toLowerCase();
    if (!list) return [];
    return q ? list.filter((c) => c.name.toLowerCase().includes(q) || c.image.toLowerCase().includes(q) || c.id.startsWith(q)) : list;
  }, [list, filter]);

  if (!running) return <NotRunning what="containers" />;

  return (
    <div className="containers">
      <div className="toolbar">
        <label htmlFor={filterId}>Filter</label>
        <input id={filterId} type="search" value={filter} onChange={(e) => setFilter(e.target.value)} placeholder="Name, image or id" />
        <span className="muted" aria-live="polite" data-testid="containers-summary">
          {list ? `${list.filter((c) => c.state === 'running').length} running, ${list.length} in all` : 'Loading…'}
        </span>
        <button type="button" onClick={() => void load()}>
          Refresh
        </button>
      </div>
      <ErrorNote error={loadError} />
      {list && list.length === 0 && (
        <p className="empty">
          No containers yet. Run one with <code>docker run</code>; it shows up here at once.
        </p>
      )}
      {shown.length > 0 && (
        <ListTable label="Containers" columns={['Name', 'Image', 'State', 'Ports']}>
          {shown.map((c) => {
            const b = busy[c.id];
            const isRunning = c.state === 'running';
            return (
              <tr key={c.id} data-testid="container-row" data-name={c.name} className={panel?.id === c.id ? 'selected' : undefined}>
                <td>
                  <div className="name">{c.name}</div>
                  <div className="muted small">
                    {shortId(c.id)}
                    {c.project ? ` · ${c.project}` : ''}
                  </div>
                </td>
                <td className="image">{c.image}</td>
                <td>
                  <span className={`pill state-${c.state}`} data-testid="container-state">
                    {c.state}
                  </span>
                  <div className="muted small">{c.status}</div>
                </td>
                <td className="ports">
                  {c.ports
                    .filter((p) => p.publicPort)
                    .map((p) => {
                      const conflict = conflicts.get(p.publicPort!);
                      return (
                        <div key={`${p.publicPort}/${p.proto}`}>
                          {p.url ? (
                            <a href={p.url} target="_blank" rel="noreferrer" aria-label={`Open port ${p.publicPort} of ${c.name} in the browser`}>
                              localhost:{p.publicPort}
                            </a>
                          ) : (
                            <span>
                              {p.publicPort}/{p.proto}
                            </span>
                          )}
                          <span className="muted small"> → {p.privatePort}</span>
                          {conflict && (
                            <span className="warn small" title={conflict.error}>
                              {' '}
                              ({conflict.state}
                              {conflict.holder?.command ? `: held by ${conflict.holder.command}` : ''})
                            </span>
                          )}
                        </div>
                      );
                    })}
                </td>
                <td className="row-actions">
                  {isRunning ? (
                    <button type="button" onClick={() => void act(c, 'stop')} disabled={!!b} aria-label={`Stop ${c.name}`}>
                      {b === 'stop' ? 'Stopping…' : 'Stop'}
                    </button>
                  ) : (
                    <button type="button" onClick={() => void act(c, 'start')} disabled={!!b} aria-label={`Start ${c.name}`}>
                      {b === 'start' ? 'Starting…' : 'Start'}
                    </button>
                  )}
                  <button type="button" onClick={() => void act(c, 'restart')} disabled={!!b} aria-label={`Restart ${c.name}`}>
                    {b === 'restart' ? 'Restarting…' : 'Restart'}
                  </button>
                  <button
                    type="button"
                    onClick={() => setPanel({ id: c.id, name: c.name, tab: 'logs' })}
                    aria-label={`Logs of ${c.name}`}
                    aria-pressed={panel?.id === c.id && panel.tab === 'logs'}
                  >
                    Logs
                  </button>
                  <button
                    type="button"
                    onClick={() => setPanel({ id: c.id, name: c.name, tab: 'terminal' })}
                    disabled={!isRunning}
                    aria-label={`Terminal in ${c.name}`}
                    aria-pressed={panel?.id === c.id && panel.tab === 'terminal'}
                  >
                    Terminal
                  </button>
                  <button type="button" className="danger" onClick={() => setRemoving(c)} disabled={!!b} aria-label={`Remove ${c.name}`}>
                    {b === 'remove' ? 'Removing…' : 'Remove'}
                  </button>
                  {rowError?.id === c.id && <ErrorNote error={rowError.error} onDismiss={() => setRowError(null)} />}
                </td>
              </tr>
            );
          })}
        </ListTable>
      )}

      {panel && (
        <section className="panel card" aria-labelledby="panel-heading">
          <div className="panel-head">
            <h2 id="panel-heading">{panel.name}</h2>
            <div role="tablist" aria-label={`Views of ${panel.name}`}>
              {(['logs', 'terminal'] as const).map((tab) => (
                <button
                  key={tab}
                  type="button"
                  role="tab"
                  aria-selected={panel.tab === tab}
                  onClick={() => setPanel({ ...panel, tab })}
                >
                  {tab === 'logs' ? 'Logs' : 'Terminal'}
                </button>
              ))}
            </div>
            <button type="button" onClick={() => setPanel(null)} aria-label={`Close the panel of ${panel.name}`}>
              Close
            </button>
          </div>
          <div role="tabpanel" aria-label={panel.tab === 'logs' ? 'Logs' : 'Terminal'}>
            {panel.tab === 'logs' ? (
              <LogViewer key={`l-${panel.id}`} containerId={panel.id} name={panel.name} />
            ) : (
              <TerminalView key={`t-${panel.id}`} containerId={panel.id} name={panel.name} />
            )}
          </div>
        </section>
      )}

      <ConfirmDialog
        open={!!removing}
        title={`Remove ${removing?.name ?? ''}?`}
        confirmLabel="Remove container"
        danger
        onCancel={() => setRemoving(null)}
        onConfirm={() => {
          const c = removing!;
          setRemoving(null);
          void act(c, 'remove');
        }}
      >
        <p>
          The container {removing?.state === 'running' ? 'is stopped and ' : ''}is deleted with its writable layer. Its image and named volumes stay.
        </p>
      </ConfirmDialog>
    </div>
  );
}

export function NotRunning({ what }: { what: string }) {
  const { status, act, busy } = useVm();
  return (
    <div className="card empty">
      <p>
        The VM is {status?.state ?? 'not reachable'}: {what} live in it.
      </p>
      {(status?.state === 'stopped' || status?.state === 'error') && (
        <button type="button" className="primary" onClick={() => void act('vm.start')} disabled={!!busy}>
          Start the VM
        </button>
      )}
    </div>
  );
}
