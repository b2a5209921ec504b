import { useState } from 'react';
import type { VolumeView } from '../../../contract/contract-docker';
import { useApi, type Api } from '../api';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { ErrorNote } from '../components/ErrorNote';
import { ListTable, RemoveButton } from '../components/ListTable';
import { Note } from '../components/Note';
import { formatBytes } from '../format';
import { useList } from '../list';
import { useVm } from '../vm';
import { NotRunning } from './Containers';

const listVolumes = async (api: Api) => (await api.call('volumes.list', {})).volumes;

export function Volumes() {
  const api = useApi();
  const running = useVm().status?.state === 'running';
  const { data: list, loadError, busy, note, actionError, clearActionError, run } = useList(listVolumes, { enabled: running, reloadOn: ['volumes.changed'] });
  const [removing, setRemoving] = useState<VolumeView | null>(null);
  const [pruning, setPruning] = useState(false);

  if (!running) return <NotRunning what="volumes" />;
  return (
    <div>
      <div className="toolbar">
        <span className="muted">{list ? `${list.length} volumes` : 'Loading…'}</span>
        <button type="button" className="danger" onClick={() => setPruning(true)} disabled={busy}>
          Remove unused volumes
        </button>
      </div>
      <ErrorNote error={loadError} />
      <ErrorNote error={actionError} onDismiss={clearActionError} />
      <Note text={note} />
      {list && list.length === 0 && <p className="empty">No volumes. `docker volume create` or `docker run -v name:/path` make one.</p>}
      {list && list.length > 0 && (
        <ListTable label="Volumes" columns={['Name', 'Driver', 'Size', 'Used by']}>
          {list.map((v) => (
            <tr key={v.name} data-testid="volume-row">
              <td>{v.name}</td>
              <td>{v.driver}</td>
              <td>{formatBytes(v.size)}</td>
              <td>{v.refCount === undefined ? '—' : `${v.refCount} container${v.refCount === 1 ? '' : 's'}`}</td>
              <td className="row-actions">
                <RemoveButton label={`Remove volume ${v.name}`} onClick={() => setRemoving(v)} disabled={busy} />
              </td>
            </tr>
          ))}
        </ListTable>
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
            return { note: `Removed volume ${v.name}.` };
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
            return { note: `Removed ${r.deleted} volumes, freed ${formatBytes(r.reclaimedBytes)}.` };
          });
        }}
      >
        <p>Their data is deleted for good, named volumes included.</p>
      </ConfirmDialog>
    </div>
  );
}
