import { useEffect, useRef } from 'react';
import type { ContainerView } from '../../../../contract/contract-docker';
import type { PortViewWire } from '../../../../contract/contract';
import { shortId } from '../../format';
import { Icon } from './icons';
import { isRunning, type Action } from './useContainers';

/** Containers of one Compose project, or the ones in none (project undefined). */
export interface Group {
  project?: string;
  containers: ContainerView[];
}

/** Compose projects first (by name), then the containers in no project. */
export function groupByProject(list: ContainerView[]): Group[] {
  const byProject = new Map<string, ContainerView[]>();
  const loose: ContainerView[] = [];
  for (const c of list) {
    if (!c.project) loose.push(c);
    else byProject.set(c.project, [...(byProject.get(c.project) ?? []), c]);
  }
  const groups: Group[] = [...byProject.keys()].sort().map((project) => ({ project, containers: byProject.get(project)! }));
  if (loose.length) groups.push({ containers: loose });
  return groups;
}

const BUSY_LABELS: Record<Action, string> = { start: 'starting…', stop: 'stopping…', restart: 'restarting…', remove: 'removing…' };

interface TableProps {
  groups: Group[];
  selected: Set<string>;
  setSelected: (ids: string[], on: boolean) => void;
  collapsed: Set<string>;
  toggleCollapsed: (project: string) => void;
  busy: Record<string, Action>;
  conflicts: Map<number, PortViewWire>;
  openId?: string;
  onOpen: (c: ContainerView) => void;
  onAct: (c: ContainerView, action: Action) => void;
  onRemove: (cs: ContainerView[], label: string) => void;
  onGroupAct: (g: Group, action: 'start' | 'stop') => void;
}

/** A checkbox that can show "some of them" (indeterminate). */
function TriCheckbox({ checked, some, label, onChange }: { checked: boolean; some: boolean; label: string; onChange: (on: boolean) => void }) {
  const ref = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (ref.current) ref.current.indeterminate = some && !checked;
  }, [some, checked]);
  return <input ref={ref} type="checkbox" checked={checked} aria-label={label} onChange={(e) => onChange(e.target.checked)} />;
}

/**
 * The container list: one section per Compose project with its own
 * start/stop/remove and a checkbox for all of it, then the containers in no
 * project; per row a checkbox, the name (opens the detail drawer) and
 * compact icon actions.
 */
export function ContainerTable(p: TableProps) {
  const all = p.groups.flatMap((g) => g.containers.map((c) => c.id));
  const nSel = all.filter((id) => p.selected.has(id)).length;
  return (
    <table className="list containers-table" aria-label="Containers">
      <thead>
        <tr>
          <th scope="col" className="select">
            <TriCheckbox
              checked={all.length > 0 && nSel === all.length}
              some={nSel > 0}
              label="Select every container shown"
              onChange={(on) => p.setSelected(all, on)}
            />
          </th>
          <th scope="col">Name</th>
          <th scope="col">Image</th>
          <th scope="col" className="col-state">
            State
          </th>
          <th scope="col" className="col-ports">
            Ports
          </th>
          <th scope="col" className="col-actions">
            <span className="visually-hidden">Actions</span>
          </th>
        </tr>
      </thead>
      {p.groups.map((g) => (
        <GroupBody key={g.project ?? ''} g={g} {...p} />
      ))}
    </table>
  );
}

function GroupBody({ g, ...p }: TableProps & { g: Group }) {
  const ids = g.containers.map((c) => c.id);
  const nSel = ids.filter((id) => p.selected.has(id)).length;
  const up = g.containers.filter(isRunning).length;
  const anyBusy = g.containers.some((c) => p.busy[c.id]);
  const project = g.project;
  const closed = project !== undefined && p.collapsed.has(project);
  return (
    <tbody data-testid="container-group" data-project={project ?? ''}>
      {project !== undefined && (
        <tr className="group-row">
          <td className="select">
            <TriCheckbox
              checked={nSel === ids.length}
              some={nSel > 0}
              label={`Select every container of ${project}`}
              onChange={(on) => p.setSelected(ids, on)}
            />
          </td>
          <th scope="rowgroup" colSpan={3}>
            <button
              type="button"
              className="group-toggle"
              aria-expanded={!closed}
              onClick={() => p.toggleCollapsed(project)}
              aria-label={`${project}: show or hide its containers`}
            >
              <span className={closed ? 'chevron closed' : 'chevron'}>
                <Icon name="chevron" />
              </span>
              <span className="project-name" title={project}>
                {project}
              </span>
            </button>
            <span className="muted small" data-testid="group-summary">
              {' '}
              Compose · {up} of {g.containers.length} running
            </span>
          </th>
          <td />
          <td className="row-actions">
            <button
              type="button"
              className="icon-button"
              onClick={() => p.onGroupAct(g, 'start')}
              disabled={anyBusy || up === g.containers.length}
              aria-label={`Start every container of ${project}`}
              title="Start all"
            >
              <Icon name="start" />
            </button>
            <button
              type="button"
              className="icon-button"
              onClick={() => p.onGroupAct(g, 'stop')}
              disabled={anyBusy || up === 0}
              aria-label={`Stop every container of ${project}`}
              title="Stop all"
            >
              <Icon name="stop" />
            </button>
            <button
              type="button"
              className="icon-button danger"
              onClick={() => p.onRemove(g.containers, `every container of ${project}`)}
              disabled={anyBusy}
              aria-label={`Remove every container of ${project}`}
              title="Remove all"
            >
              <Icon name="remove" />
            </button>
          </td>
        </tr>
      )}
      {!closed && g.containers.map((c) => <Row key={c.id} c={c} inGroup={project !== undefined} {...p} />)}
    </tbody>
  );
}

function Row({ c, inGroup, ...p }: TableProps & { c: ContainerView; inGroup: boolean }) {
  const b = p.busy[c.id];
  const on = isRunning(c);
  return (
    <tr
      data-testid="container-row"
      data-name={c.name}
      className={[p.openId === c.id ? 'selected' : '', inGroup ? 'in-group' : ''].join(' ').trim() || undefined}
    >
      <td className="select">
        <input type="checkbox" checked={p.selected.has(c.id)} onChange={(e) => p.setSelected([c.id], e.target.checked)} aria-label={`Select ${c.name}`} />
      </td>
      <td>
        <button
          type="button"
          className="link-button name"
          onClick={() => p.onOpen(c)}
          aria-label={`Details of ${c.name}`}
          aria-expanded={p.openId === c.id}
          title={c.name}
        >
          {c.name}
        </button>
        <div className="muted small">{shortId(c.id)}</div>
      </td>
      <td className="image" title={c.image}>
        {c.image}
      </td>
      <td>
        <span className={`pill state-${c.state}`} data-testid="container-state">
          {b ? BUSY_LABELS[b] : c.state}
        </span>
        <div className="muted small">{c.status}</div>
      </td>
      <td className="ports">
        {c.ports
          .filter((port) => port.publicPort)
          .map((port) => {
            const conflict = p.conflicts.get(port.publicPort!);
            return (
              <div key={`${port.publicPort}/${port.proto}`}>
                {port.url ? (
                  <a href={port.url} target="_blank" rel="noreferrer" aria-label={`Open port ${port.publicPort} of ${c.name} in the browser`}>
                    localhost:{port.publicPort}
                  </a>
                ) : (
                  <span>
                    {port.publicPort}/{port.proto}
                  </span>
                )}
                <span className="muted small"> → {port.privatePort}</span>
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
        {on ? (
          <button type="button" className="icon-button" onClick={() => p.onAct(c, 'stop')} disabled={!!b} aria-label={`Stop ${c.name}`} title="Stop">
            <Icon name="stop" />
          </button>
        ) : (
          <button type="button" className="icon-button" onClick={() => p.onAct(c, 'start')} disabled={!!b} aria-label={`Start ${c.name}`} title="Start">
            <Icon name="start" />
          </button>
        )}
        <button type="button" className="icon-button" onClick={() => p.onAct(c, 'restart')} disabled={!!b} aria-label={`Restart ${c.name}`} title="Restart">
          <Icon name="restart" />
        </button>
        <button
          type="button"
          className="icon-button danger"
          onClick={() => p.onRemove([c], c.name)}
          disabled={!!b}
          aria-label={`Remove ${c.name}`}
          title="Remove"
        >
          <Icon name="remove" />
        </button>
      </td>
    </tr>
  );
}
