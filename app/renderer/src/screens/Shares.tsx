import { useId, useState, type FormEvent } from 'react';
import type { Result } from '../../../contract/contract';
import { useApi, useEvent, type Api } from '../api';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { ErrorNote } from '../components/ErrorNote';
import { ListTable } from '../components/ListTable';
import { Note } from '../components/Note';
import { useList } from '../list';
import { useVm } from '../vm';

type Shares = Result<'shares.list'> & { syncs: Result<'sync.list'> };

const listShares = async (api: Api): Promise<Shares> => {
  const [shares, syncs] = await Promise.all([api.call('shares.list', {}), api.call('sync.list', {})]);
  return { ...shares, syncs };
};

/** A user's home folder (the share Berth makes by default, which `docker run -v "$PWD":…` relies on). */
export function isHomeFolder(p: string): boolean {
  return /^(\/home\/[^/]+|\/Users\/[^/]+|\/root|[A-Za-z]:\\Users\\[^\\]+)[/\\]?$/.test(p);
}

/**
 * File sharing: the host folders the VM sees (at the same path unless said
 * otherwise), how each is mounted and its state, and a folder kept in sync
 * with a copy on the VM's disk. The engine checks a new folder exists.
 */
export function FileSharing() {
  const api = useApi();
  const id = useId();
  const { status } = useVm();
  const { data, setData, loadError, busy, note, errorOf, run } = useList(listShares, { reloadOn: ['vm.state', 'sync.changed'] });
  const [hostPath, setHostPath] = useState('');
  const [guestPath, setGuestPath] = useState('');
  const [readOnly, setReadOnly] = useState(false);
  const [removing, setRemoving] = useState<string | null>(null);
  useEvent('shares.changed', (e) => setData((d) => (d ? { ...d, shares: e.shares } : d)));
  const pick = api.transport.pickFolder?.bind(api.transport);

  const add = (e: FormEvent) => {
    e.preventDefault();
    const p = hostPath.trim();
    void run(async () => {
      await api.call('shares.add', { hostPath: p, ...(guestPath.trim() ? { guestPath: guestPath.trim() } : {}), ...(readOnly ? { readOnly } : {}) });
      setHostPath('');
      setGuestPath('');
      setReadOnly(false);
      return { note: `${p} is shared${status?.state === 'running' ? '' : '; it is mounted when the VM starts'}.` };
    }, 'add');
  };
  const browse = () =>
    void run(async () => {
      const p = await pick!();
      if (p) setHostPath(p);
      return { data: data ?? undefined };
    }, 'add');
  const setShareReadOnly = (c: Shares['configured'][number], ro: boolean) =>
    void run(async () => {
      await api.call('shares.add', { hostPath: c.hostPath, ...(c.guestPath ? { guestPath: c.guestPath } : {}), ...(ro ? { readOnly: true } : {}) });
      return { note: `${c.hostPath} is now ${ro ? 'read-only' : 'writable'} in the VM.` };
    }, c.hostPath);
  const setSync = (hostPath: string, on: boolean) =>
    void run(async () => {
      await api.call(on ? 'sync.add' : 'sync.remove', { hostPath });
      return { note: on ? `${hostPath} is kept in sync with a copy on the VM's disk.` : `${hostPath} is no longer synced; the VM's copy is deleted.` };
    }, hostPath);
  const remove = (p: string) => {
    setRemoving(null);
    void run(async () => (await api.call('shares.remove', { hostPath: p }), { note: `${p} is no longer shared.` }), p);
  };

  const live = new Map((data?.shares ?? []).map((s) => [s.hostPath, s]));
  const synced = new Map((data?.syncs.syncs ?? []).map((s) => [s.hostPath, s]));
  const syncedPaths = new Set((data?.syncs.configured ?? []).map((s) => s.hostPath));
  const inside = [...syncedPaths].filter((p) => !data?.configured.some((c) => c.hostPath === p));
  return (
    <div className="file-sharing">
      <section className="card" aria-labelledby={`${id}-h`}>
        <h2 id={`${id}-h`}>Shared folders</h2>
        <p className="muted small">
          Host folders the VM sees (at the same path unless you say otherwise), so `docker run -v "$PWD":/src` works. Sync keeps a copy on the VM&apos;s disk:
          faster builds, changes copied both ways.
        </p>
        <ErrorNote error={loadError} />
        <Note text={note} />
        {data && (
          <div className="table-wrap">
            <ListTable label="Shared folders" columns={['Host folder', 'In the VM', 'Mounted with', 'State', 'Read-only', 'Sync']}>
              {data.configured.map((c) => {
                const s = live.get(c.hostPath);
                const sy = synced.get(c.hostPath);
                const guest = s?.guestPath ?? c.guestPath ?? c.hostPath;
                return (
                  <tr key={c.hostPath} data-testid="share-row" data-path={c.hostPath}>
                    <td className="truncate" title={c.hostPath}>
                      <code>{c.hostPath}</code>
                    </td>
                    <td className="truncate" title={guest}>
                      <code>{guest}</code>
                    </td>
                    <td data-testid="share-mechanism" title={s?.mechanismReason}>
                      {s ? s.mechanism : <span className="muted">—</span>}
                      {s?.mechanism === 'reverse-sshfs' && s.mechanismReason ? <div className="small muted">{s.mechanismReason}</div> : null}
                      {s?.busy && s.advice ? (
                        <div className="small warn" data-testid="share-advice">
                          {s.advice}.{' '}
                          <button
                            type="button"
                            onClick={() => setSync(s.busy!.folder, true)}
                            disabled={busy}
                            aria-label={`Sync the busy folder ${s.busy.folder}`}
                          >
                            Sync it
                          </button>
                        </div>
                      ) : null}
                    </td>
                    <td>
                      {s ? (
                        <span className={`pill port-${s.state === 'mounted' ? 'active' : s.state === 'error' ? 'error' : 'conflict'}`}>{s.state}</span>
                      ) : (
                        <span className="muted small">when the VM runs</span>
                      )}
                      {s?.error && <div className="small warn">{s.error}</div>}
                      {s?.hint && <div className="small muted">{s.hint}</div>}
                    </td>
                    <td>
                      <input
                        type="checkbox"
                        checked={!!c.readOnly}
                        disabled={busy}
                        onChange={(e) => setShareReadOnly(c, e.target.checked)}
                        aria-label={`${c.hostPath} read-only`}
                      />
                    </td>
                    <td>
                      <input
                        type="checkbox"
                        checked={syncedPaths.has(c.hostPath)}
                        // A sync writes containers' changes back: not for a read-only share.
                        disabled={busy || (!!c.readOnly && !syncedPaths.has(c.hostPath))}
                        title={c.readOnly ? 'A read-only folder cannot be synced: the sync carries what containers write back to this computer.' : undefined}
                        onChange={(e) => setSync(c.hostPath, e.target.checked)}
                        aria-label={`Sync ${c.hostPath}`}
                      />
                      {sy && (
                        <div className="small muted">
                          {sy.state}
                          {sy.conflicts.length ? `, ${sy.conflicts.length} conflicts` : ''}
                        </div>
                      )}
                    </td>
                    <td className="row-actions">
                      <button
                        type="button"
                        className="danger"
                        onClick={() => setRemoving(c.hostPath)}
                        disabled={busy}
                        aria-label={`Stop sharing ${c.hostPath}`}
                      >
                        Remove
                      </button>
                      <ErrorNote error={errorOf(c.hostPath)} />
                    </td>
                  </tr>
                );
              })}
              {data.configured.length === 0 && (
                <tr>
                  <td colSpan={7} className="empty">
                    No folder is shared: bind mounts of host folders will be empty in containers.
                  </td>
                </tr>
              )}
            </ListTable>
          </div>
        )}
        {inside.length > 0 && (
          <div className="small muted" data-testid="synced-inside">
            Also synced (inside a share):
            <ul className="plain-list">
              {inside.map((p) => (
                <li key={p}>
                  <code>{p}</code>{' '}
                  <button type="button" onClick={() => setSync(p, false)} disabled={busy} aria-label={`Stop syncing ${p}`}>
                    Stop syncing
                  </button>
                  <ErrorNote error={errorOf(p)} />
                </li>
              ))}
            </ul>
          </div>
        )}
      </section>
      <section className="card" aria-labelledby={`${id}-add-h`}>
        <h2 id={`${id}-add-h`}>Share a folder</h2>
        <form className="form-inline share-form" onSubmit={add} aria-labelledby={`${id}-add-h`}>
          <label htmlFor={`${id}-host`}>Host folder</label>
          <input
            id={`${id}-host`}
            value={hostPath}
            onChange={(e) => setHostPath(e.target.value)}
            required
            placeholder="/home/you/src"
            className="path-input"
            aria-describedby={`${id}-host-help`}
          />
          {pick && (
            <button type="button" onClick={browse} disabled={busy}>
              Choose folder…
            </button>
          )}
          <label htmlFor={`${id}-guest`}>Path in the VM</label>
          <input id={`${id}-guest`} value={guestPath} onChange={(e) => setGuestPath(e.target.value)} placeholder="same as on the host" className="path-input" />
          <label>
            <input type="checkbox" checked={readOnly} onChange={(e) => setReadOnly(e.target.checked)} /> Read-only
          </label>
          <button type="submit" className="primary" disabled={busy || !hostPath.trim()}>
            Share folder
          </button>
          <p className="muted small" id={`${id}-host-help`}>
            The full path of a folder that exists on this computer{pick ? ', or choose one' : ''}.
          </p>
          <ErrorNote error={errorOf('add')} testId="share-add-error" />
        </form>
      </section>
      <ConfirmDialog
        open={removing !== null}
        title={removing && isHomeFolder(removing) ? 'Stop sharing your home folder?' : `Stop sharing ${removing ?? ''}?`}
        confirmLabel="Stop sharing"
        danger
        busy={busy}
        onCancel={() => setRemoving(null)}
        onConfirm={() => removing && remove(removing)}
      >
        {removing && isHomeFolder(removing) ? (
          <p>
            Containers then see an empty folder where they mount a path under <code>{removing}</code>: <code>docker run -v &quot;$PWD&quot;:/src</code> and
            Compose bind mounts stop working until you share it again.
          </p>
        ) : (
          <p>Containers that mount a path inside it see an empty folder. The folder on this computer is not touched.</p>
        )}
      </ConfirmDialog>
    </div>
  );
}
