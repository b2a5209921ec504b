import { useId, useState, type FormEvent } from 'react';
import { useApi, useEvent, type Api } from '../api';
import { ErrorNote } from '../components/ErrorNote';
import { ListTable, RemoveButton } from '../components/ListTable';
import { useList } from '../list';

const listShares = (api: Api) => api.call('shares.list', {});

/** Shared folders: host paths visible in the VM (the home folder by default), with their mount state. */
export function SharesPanel() {
  const api = useApi();
  const id = useId();
  const { data, setData, loadError, busy, errorOf, run } = useList(listShares, { reloadOn: ['vm.state'] });
  const [hostPath, setHostPath] = useState('');
  const [guestPath, setGuestPath] = useState('');
  const [readOnly, setReadOnly] = useState(false);
  useEvent('shares.changed', (e) => setData((d) => (d ? { ...d, shares: e.shares } : d)));

  const add = (e: FormEvent) => {
    e.preventDefault();
    void run(async () => {
      const added = await api.call('shares.add', { hostPath: hostPath.trim(), ...(guestPath.trim() ? { guestPath: guestPath.trim() } : {}), ...(readOnly ? { readOnly } : {}) });
      setHostPath('');
      setGuestPath('');
      setReadOnly(false);
      return { data: added };
    }, 'add');
  };
  const remove = (p: string) => void run(async () => ({ data: await api.call('shares.remove', { hostPath: p }) }), 'remove');

  const live = new Map((data?.shares ?? []).map((s) => [s.hostPath, s]));
  return (
    <section className="card" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Shared folders</h2>
      <p className="muted small">Host folders visible in the VM (at the same path unless you say otherwise), so `docker run -v "$PWD":/src` works.</p>
      <ErrorNote error={errorOf('remove') ?? loadError} />
      {data && (
        <ListTable label="Shared folders" columns={['Host folder', 'In the VM', 'State']}>
          {data.configured.map((c) => {
            const s = live.get(c.hostPath);
            return (
              <tr key={c.hostPath} data-testid="share-row">
                <td>
                  <code>{c.hostPath}</code>
                  {c.readOnly ? <span className="muted small"> (read-only)</span> : null}
                </td>
                <td>
                  <code>{s?.guestPath ?? c.guestPath ?? c.hostPath}</code>
                </td>
                <td>
                  {s ? <span className={`pill port-${s.state === 'mounted' ? 'active' : s.state === 'error' ? 'error' : 'conflict'}`}>{s.state}</span> : <span className="muted">when the VM runs</span>}
                  {s && (
                    <div className="small muted" data-testid="share-mechanism" title={s.mechanismReason}>
                      {s.mechanism}
                      {s.mechanism === 'reverse-sshfs' && s.mechanismReason ? `: ${s.mechanismReason}` : ''}
                    </div>
                  )}
                  {s?.error && <div className="small warn">{s.error}</div>}
                  {s?.hint && <div className="small muted">{s.hint}</div>}
                </td>
                <td className="row-actions">
                  <RemoveButton label={`Stop sharing ${c.hostPath}`} onClick={() => remove(c.hostPath)} />
                </td>
              </tr>
            );
          })}
          {data.configured.length === 0 && (
            <tr>
              <td colSpan={4} className="empty">
                No folder is shared.
              </td>
            </tr>
          )}
        </ListTable>
      )}
      <form className="form-inline" onSubmit={add} aria-label="Share a folder">
        <label htmlFor={`${id}-host`}>Host folder</label>
        <input id={`${id}-host`} value={hostPath} onChange={(e) => setHostPath(e.target.value)} required placeholder="/home/you/src" style={{ width: 220 }} />
        <label htmlFor={`${id}-guest`}>Path in the VM</label>
        <input id={`${id}-guest`} value={guestPath} onChange={(e) => setGuestPath(e.target.value)} placeholder="same as on the host" style={{ width: 180 }} />
        <label>
          <input type="checkbox" checked={readOnly} onChange={(e) => setReadOnly(e.target.checked)} /> Read-only
        </label>
        <button type="submit" className="primary" disabled={busy || !hostPath.trim()}>
          Share folder
        </button>
        <ErrorNote error={errorOf('add')} />
      </form>
    </section>
  );
}
