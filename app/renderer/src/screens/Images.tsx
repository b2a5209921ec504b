import { useState } from 'react';
import type { ImageView } from '../../../contract/contract-docker';
import { useApi, type Api } from '../api';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { ErrorNote } from '../components/ErrorNote';
import { ListTable, RemoveButton } from '../components/ListTable';
import { Note } from '../components/Note';
import { formatBytes, shortId, timeAgo } from '../format';
import { useList } from '../list';
import { useVm } from '../vm';
import { NotRunning } from './Containers';

const listImages = async (api: Api) => (await api.call('images.list', {})).images;

export function Images() {
  const api = useApi();
  const running = useVm().status?.state === 'running';
  const {
    data: list,
    loadError,
    busy,
    note,
    actionError,
    clearActionError,
    run,
  } = useList(listImages, { enabled: running, reloadOn: ['images.changed', 'containers.changed'] });
  const [removing, setRemoving] = useState<ImageView | null>(null);
  const [pruning, setPruning] = useState<'dangling' | 'unused' | null>(null);

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
      <ErrorNote error={loadError} />
      <ErrorNote error={actionError} onDismiss={clearActionError} />
      <Note text={note} />
      {list && list.length === 0 && <p className="empty">No images. `docker pull`, `docker build` or `docker import` make some.</p>}
      {list && list.length > 0 && (
        <ListTable label="Images" columns={['Image', 'Id', 'Size', 'Created', 'In use']}>
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
                  <RemoveButton label={`Remove image ${label}`} onClick={() => setRemoving(i)} disabled={busy} />
                </td>
              </tr>
            );
          })}
        </ListTable>
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
            return { note: `Removed: ${r.untagged.length} tags, ${r.deleted.length} layers.` };
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
            return { note: `Removed ${r.deleted} images, freed ${formatBytes(r.reclaimedBytes)}.` };
          });
        }}
      >
        <p>
          {pruning === 'unused'
            ? 'Images you pulled or built but no container uses are deleted; pulling them again needs a registry.'
            : 'Untagged images left behind by builds and pulls are deleted.'}
        </p>
      </ConfirmDialog>
    </div>
  );
}
