import { useEffect, useId, useMemo, useState } from 'react';
import type { ContainerView } from '../../../../contract/contract-docker';
import { CallError } from '../../api';
import { ConfirmDialog } from '../../components/ConfirmDialog';
import { ErrorNote } from '../../components/ErrorNote';
import { useVm } from '../../vm';
import { NotRunning } from '../../components/NotRunning';
import { ContainerDrawer, type DrawerTab } from './ContainerDrawer';
import { ContainerTable, groupByProject, type Group } from './ContainerTable';
import { isRunning, useContainers, type Action, type ActionProblem } from './useContainers';
import './containers.css';

const DONE: Record<Action, string> = { start: 'start', stop: 'stop', restart: 'restart', remove: 'remove' };

/** A failed group or bulk action as one error: which containers, and the first reason. */
function problemError(p: ActionProblem): CallError {
  const first = p.failed[0]!.error;
  const names = p.failed.map((f) => f.name).join(', ');
  return new CallError({
    code: first.code,
    message: `could not ${DONE[p.action]} ${p.failed.length} of ${p.total} containers (${names}): ${first.message}`,
    hint: first.hint,
  });
}

/**
 * Containers, live: grouped by Compose project (each group started,
 * stopped or removed as one), filtered by text and by running-only,
 * selected for bulk actions, and opened in a drawer with logs, a terminal,
 * inspect and live CPU and memory.
 */
export function Containers() {
  const { status } = useVm();
  const vmRunning = status?.state === 'running';
  const { list, loadError, reload, busy, conflicts, actOne, actMany } = useContainers(vmRunning);
  const [filter, setFilter] = useState('');
  const [runningOnly, setRunningOnly] = useState(false);
  const [selected, setSelectedSet] = useState<Set<string>>(new Set());
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const [open, setOpen] = useState<{ id: string; tab: DrawerTab } | null>(null);
  const [removing, setRemoving] = useState<{ cs: ContainerView[]; label: string } | null>(null);
  const [problem, setProblem] = useState<CallError | null>(null);
  const filterId = useId();

  const shown = useMemo(() => {
    const q = filter.trim().toLowerCase();
    let l = list ?? [];
    if (runningOnly) l = l.filter(isRunning);
    if (q)
      l = l.filter(
        (c) => c.name.toLowerCase().includes(q) || c.image.toLowerCase().includes(q) || c.id.startsWith(q) || (c.project ?? '').toLowerCase().includes(q),
      );
    return l;
  }, [list, filter, runningOnly]);
  const groups = useMemo(() => groupByProject(shown), [shown]);

  // Selection and the drawer follow the list: a removed container leaves both.
  useEffect(() => {
    if (!list) return;
    const ids = new Set(list.map((c) => c.id));
    setSelectedSet((s) => ([...s].every((id) => ids.has(id)) ? s : new Set([...s].filter((id) => ids.has(id)))));
    setOpen((o) => (o && !ids.has(o.id) ? null : o));
  }, [list]);

  if (!vmRunning) return <NotRunning what="containers" />;

  const setSelected = (ids: string[], on: boolean) =>
    setSelectedSet((s) => {
      const n = new Set(s);
      for (const id of ids) {
        if (on) n.add(id);
        else n.delete(id);
      }
      return n;
    });
  const chosen = (list ?? []).filter((c) => selected.has(c.id));
  const many = async (cs: ContainerView[], action: Action) => {
    setProblem(null);
    const p = await actMany(cs, action);
    if (p) setProblem(problemError(p));
  };
  const one = (c: ContainerView, action: Action) => {
    setProblem(null);
    actOne(c, action).catch((err) => setProblem(CallError.from(err)));
  };
  const openC = list?.find((c) => c.id === open?.id);
  const nRunning = list?.filter(isRunning).length ?? 0;

  return (
    <div className={openC ? 'containers with-drawer' : 'containers'}>
      <div className="toolbar">
        <label htmlFor={filterId}>Filter</label>
        <input id={filterId} type="search" value={filter} onChange={(e) => setFilter(e.target.value)} placeholder="Name, image, project or id" />
        <label>
          <input type="checkbox" checked={runningOnly} onChange={(e) => setRunningOnly(e.target.checked)} /> Running only
        </label>
        <span className="muted" aria-live="polite" data-testid="containers-summary">
          {list ? `${nRunning} running, ${list.length} in all` : 'Loading…'}
        </span>
        <button type="button" onClick={() => void reload()}>
          Refresh
        </button>
      </div>
      {chosen.length > 0 && (
        <div className="bulk-bar" role="region" aria-label="Selected containers" data-testid="bulk-bar">
          <span>{chosen.length} selected</span>
          <button type="button" onClick={() => void many(chosen, 'start')} disabled={!chosen.some((c) => !isRunning(c))}>
            Start
          </button>
          <button type="button" onClick={() => void many(chosen, 'stop')} disabled={!chosen.some(isRunning)}>
            Stop
          </button>
          <button type="button" onClick={() => void many(chosen, 'restart')}>
            Restart
          </button>
          <button
            type="button"
            className="danger"
            onClick={() => setRemoving({ cs: chosen, label: `${chosen.length} selected container${chosen.length === 1 ? '' : 's'}` })}
          >
            Remove…
          </button>
          <button type="button" onClick={() => setSelectedSet(new Set())}>
            Clear selection
          </button>
        </div>
      )}
      <ErrorNote error={loadError} />
      <ErrorNote error={problem} onDismiss={() => setProblem(null)} testId="containers-problem" />
      {list && list.length === 0 && (
        <p className="empty">
          No containers yet. Run one with <code>docker run</code>; it shows up here at once.
        </p>
      )}
      {list && list.length > 0 && shown.length === 0 && <p className="empty">No container matches{runningOnly ? ' (only running ones are shown)' : ''}.</p>}
      {shown.length > 0 && (
        <ContainerTable
          groups={groups}
          selected={selected}
          setSelected={setSelected}
          collapsed={collapsed}
          toggleCollapsed={(p) =>
            setCollapsed((s) => {
              const n = new Set(s);
              if (!n.delete(p)) n.add(p);
              return n;
            })
          }
          busy={busy}
          conflicts={conflicts}
          openId={openC?.id}
          onOpen={(c) => setOpen((o) => (o?.id === c.id ? null : { id: c.id, tab: o?.tab ?? 'logs' }))}
          onAct={one}
          onRemove={(cs, label) => setRemoving({ cs, label })}
          onGroupAct={(g: Group, action) => void many(g.containers, action)}
        />
      )}
      {openC && <ContainerDrawer c={openC} tab={open!.tab} onTab={(tab) => setOpen({ id: openC.id, tab })} onClose={() => setOpen(null)} />}
      <ConfirmDialog
        open={!!removing}
        title={`Remove ${removing?.label ?? ''}?`}
        confirmLabel={removing && removing.cs.length > 1 ? `Remove ${removing.cs.length} containers` : 'Remove container'}
        danger
        onCancel={() => setRemoving(null)}
        onConfirm={() => {
          const r = removing!;
          setRemoving(null);
          if (r.cs.length === 1) one(r.cs[0]!, 'remove');
          else void many(r.cs, 'remove');
        }}
      >
        <p>
          {removing && removing.cs.length > 1 ? `${removing.cs.map((c) => c.name).join(', ')}: each ` : 'The container '}
          {removing?.cs.some(isRunning) ? 'is stopped and ' : ''}is deleted with its writable layer. Images and named volumes stay.
        </p>
      </ConfirmDialog>
    </div>
  );
}
