import { useCallback, useEffect, useId, useState, type FormEvent } from 'react';
import type { Result } from '../../../engine/api/contract';
import { CallError, useApi, useEvent } from '../api';
import { ErrorNote } from '../components/ErrorNote';

type SharesResult = Result<'shares.list'>;

/** Shared folders: host paths visible in the VM (the home folder by default), with their mount state. */
export function SharesPanel() {
  const api = useApi();
  const id = useId();
  const [data, setData] = useState<SharesResult | null>(null);
  const [error, setError] = useState<CallError | null>(null);
  const [formError, setFormError] = useState<CallError | null>(null);
  const [hostPath, setHostPath] = useState('');
  const [guestPath, setGuestPath] = useState('');
  const [readOnly, setReadOnly] = useState(false);
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    try {
      setData(await api.call('shares.list', {}));
      setError(null);
    } catch (err) {
      setError(CallError.from(err));
    }
  }, [api]);
  useEffect(() => void load(), [load]);
  useEvent('shares.changed', (e) => setData((d) => (d ? { ...d, shares: e.shares } : d)));
  useEvent('vm.state', () => void load());

  const add = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    setBusy(true);
    try {
      setData(await api.call('shares.add', { hostPath: hostPath.trim(), ...(guestPath.trim() ? { guestPath: guestPath.trim() } : {}), ...(readOnly ? { readOnly } : {}) }));
      setHostPath('');
      setGuestPath('');
      setReadOnly(false);
    } catch (err) {
      setFormError(CallError.from(err));
    } finally {
      setBusy(false);
    }
  };
  const remove = async (p: string) => {
    setError(null);
    try {
      setData(await api.call('shares.remove', { hostPath: p }));
    } catch (err) {
      setError(CallError.from(err));
    }
  };

  const live = new Map((data?.shares ?? []).map((s) => [s.hostPath, s]));
  return (
    <section className="card" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Shared folders</h2>
      <p className="muted small">Host folders visible in the VM (at the same path unless you say otherwise), so `docker run -v "$PWD":/src` works.</p>
      <ErrorNote error={error} />
      {data && (
        <table className="list" aria-label="Shared folders">
          <thead>
            <tr>
              <th scope="col">Host folder</th>
              <th scope="col">In the VM</th>
              <th scope="col">State</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
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
                    <button type="button" className="danger" onClick={() => void remove(c.hostPath)} aria-label={`Stop sharing ${c.hostPath}`}>
                      Remove
                    </button>
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
          </tbody>
        </table>
      )}
      <form className="form-inline" onSubmit={(e) => void add(e)} aria-label="Share a folder">
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
        <ErrorNote error={formError} />
      </form>
    </section>
  );
}
