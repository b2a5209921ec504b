import { useCallback, useEffect, useState } from 'react';
import type { ImageView } from '../../../engine/api/contract-docker';
import { CallError, useApi, useEvent } from '../api';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { ErrorNote } from '../components/ErrorNote';
import { formatBytes, shortId, timeAgo } from '../format';
import { useVm } from '../vm';
import { NotRunning } from './Containers';

export function Images() {
  const api = useApi();
  const running = useVm().status?.state === 'running';
  const [list, setList] = useState<ImageView[] | null>(null);
  const [error, setError] = useState<CallError | null>(null);
  const [actionError, setActionError] = useState<CallError | null>(null);
  const [removing, setRemoving] = useState<ImageView | null>(null);
  const [pruning, setPruning] = useState<'dangling' | 'unused' | null>(null);
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState('');

  const load = useCallback(async () => {
    if (!running) return setList(null);
    try {
      setList((await api.call('images.list', {})).images);
      setError(null);
    } catch (err) {
      setError(CallError.from(err));
    }
  }, [api, running]);
  useEffect(() => void load(), [load]);
  useEvent('images.changed', () => void load());
  useEvent('containers.changed', () => void load());

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

  if (!running) return <NotRunning what="images" />;
  const total = list?.reduce((a, i) => a + i.size, 0) ?? 0;
  return (
    <div>
      <div className="toolbar">
        <span className="muted">{list ? `${list.length} images, ${formatBytes(total)}` : 'Loading…'}</span>
        <button type="button" onClick={() => setPruning('dangling')} disabled={busy}>
          Remove dangling images
        </button>
        <button type="button" className="danger" onClick={() => setPruning('unused')} disabled={busy}>
          Remove unused images
        </button>
      </div>
      <ErrorNote error={error} />
      <ErrorNote error={actionError} onDismiss={() => setActionError(null)} />
      {note && (
        <p className="note" role="status">
          {note}
        </p>
      )}
      {list && list.length === 0 && <p className="empty">No images. `docker pull`, `docker build` or `docker import` make some.</p>}
      {list && list.length > 0 && (
        <table className="list" aria-label="Images">
          <thead>
            <tr>
              <th scope="col">Image</th>
              <th scope="col">Id</th>
              <th scope="col">Size</th>
              <th scope="col">Created</th>
              <th scope="col">In use</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.map((i) => {
              const label = i.tags[0] ?? shortId(i.id);
              return (
                <tr key={i.id} data-testid="image-row">
                  <td>{i.tags.length ? i.tags.join(', ') : <span className="muted">&lt;none&gt;</span>}</td>
                  <td>
                    <code>{shortId(i.id)}</code>
                  </td>
                  <td>{formatBytes(i.size)}</td>
                  <td>{timeAgo(i.created)}</td>
                  <td>{i.inUse ? 'yes' : 'no'}</td>
                  <td className="row-actions">
                    <button type="button" className="danger" onClick={() => setRemoving(i)} disabled={busy} aria-label={`Remove image ${label}`}>
                      Remove
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <ConfirmDialog
        open={!!removing}
        title={`Remove image ${removing?.tags[0] ?? shortId(removing?.id ?? '')}?`}
        confirmLabel="Remove image"
        danger
        onCancel={() => setRemoving(null)}
        onConfirm={() => {
          const i = removing!;
          setRemoving(null);
          void run(async () => {
            const r = await api.call('images.remove', { id: i.tags[0] ?? i.id });
            return `Removed: ${r.untagged.length} tags, ${r.deleted.length} layers.`;
          });
        }}
      >
        <p>{removing?.inUse ? 'A container uses this image: Docker refuses until that container is removed.' : 'No container uses it.'}</p>
      </ConfirmDialog>
      <ConfirmDialog
        open={!!pruning}
        title={pruning === 'unused' ? 'Remove every image no container uses?' : 'Remove dangling images?'}
        confirmLabel={pruning === 'unused' ? 'Remove unused images' : 'Remove dangling images'}
        danger
        onCancel={() => setPruning(null)}
        onConfirm={() => {
          const all = pruning === 'unused';
          setPruning(null);
          void run(async () => {
            const r = await api.call('images.prune', { all });
            return `Removed ${r.deleted} images, freed ${formatBytes(r.reclaimedBytes)}.`;
          });
        }}
      >
        <p>{pruning === 'unused' ? 'Images you pulled or built but no container uses are deleted; pulling them again needs a registry.' : 'Untagged images left behind by builds and pulls are deleted.'}</p>
      </ConfirmDialog>
    </div>
  );
}
