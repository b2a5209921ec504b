import { useCallback, useEffect, useState } from 'react';
import type { VolumeView } from '../../../engine/api/contract-docker';
import { CallError, useApi, useEvent } from '../api';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { ErrorNote } from '../components/ErrorNote';
import { formatBytes } from '../format';
import { useVm } from '../vm';
import { NotRunning } from './Containers';

export function Volumes() {
  const api = useApi();
  const running = useVm().status?.state === 'running';
  const [list, setList] = useState<VolumeView[] | null>(null);
  const [error, setError] = useState<CallError | null>(null);
  const [actionError, setActionError] = useState<CallError | null>(null);
  const [removing, setRemoving] = useState<VolumeView | null>(null);
  const [pruning, setPruning] = useState(false);
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState('');

  const load = useCallback(async () => {
    if (!running) return setList(null);
    try {
      setList((await api.call('volumes.list', {})).volumes);
      setError(null);
    } catch (err) {
      setError(CallError.from(err));
    }
  }, [api, running]);
  useEffect(() => void load(), [load]);
  useEvent('volumes.changed', () => void load());

  const run = async (what: () => Promise<string>) => {
    setBusy(true);
    setActionError(null);
    setNote('');
    try {
      setNote(await what());
      await load();
    } catch (err) {
      setActionError(CallError.from(err));
    } finally {
      setBusy(false);
    }
  };

  if (!running) return <NotRunning what="volumes" />;
  return (
    <div>
      <div className="toolbar">
        <span className="muted">{list ? `${list.length} volumes` : 'Loading…'}</span>
        <button type="button" className="danger" onClick={() => setPruning(true)} disabled={busy}>
          Remove unused volumes
        </button>
      </div>
      <ErrorNote error={error} />
      <ErrorNote error={actionError} onDismiss={() => setActionError(null)} />
      {note && (
        <p className="note" role="status">
          {note}
        </p>
      )}
      {list && list.length === 0 && <p className="empty">No volumes. `docker volume create` or `docker run -v name:/path` make one.</p>}
      {list && list.length > 0 && (
        <table className="list" aria-label="Volumes">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Driver</th>
              <th scope="col">Size</th>
              <th scope="col">Used by</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.map((v) => (
              <tr key={v.name} data-testid="volume-row">
                <td>{v.name}</td>
                <td>{v.driver}</td>
                <td>{formatBytes(v.size)}</td>
                <td>{v.refCount === undefined ? '—' : `${v.refCount} container${v.refCount === 1 ? '' : 's'}`}</td>
                <td className="row-actions">
                  <button type="button" className="danger" onClick={() => setRemoving(v)} disabled={busy} aria-label={`Remove volume ${v.name}`}>
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ConfirmDialog
        open={!!removing}
        title={`Remove volume ${removing?.name ?? ''}?`}
        confirmLabel="Remove volume"
        danger
        onCancel={() => setRemoving(null)}
        onConfirm={() => {
          const v = removing!;
          setRemoving(null);
          void run(async () => {
            await api.call('volumes.remove', { name: v.name });
            return `Removed volume ${v.name}.`;
          });
        }}
      >
        <p>Its data is deleted for good.</p>
      </ConfirmDialog>
      <ConfirmDialog
        open={pruning}
        title="Remove every volume no container uses?"
        confirmLabel="Remove unused volumes"
        danger
        onCancel={() => setPruning(false)}
        onConfirm={() => {
          setPruning(false);
          void run(async () => {
            const r = await api.call('volumes.prune', {});
            return `Removed ${r.deleted} volumes, freed ${formatBytes(r.reclaimedBytes)}.`;
          });
        }}
      >
        <p>Their data is deleted for good, named volumes included.</p>
      </ConfirmDialog>
    </div>
  );
}
