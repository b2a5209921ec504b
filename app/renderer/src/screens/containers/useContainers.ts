import { useCallback, useEffect, useState } from 'react';
import type { ContainerView } from '../../../../contract/contract-docker';
import type { PortViewWire } from '../../../../contract/contract';
import { CallError, useApi } from '../../api';

export type Action = 'start' | 'stop' | 'restart' | 'remove';

/** What a group or bulk action left: the containers it failed on, and why. */
export interface ActionProblem {
  action: Action;
  failed: { name: string; error: CallError }[];
  total: number;
}

/** At most this many container calls at once, so a bulk action on 50 containers is no storm. */
const PARALLEL = 4;

/**
 * The live container list: loaded once, then patched by Docker's events
 * (containers.changed); the ports in conflict from ports.changed; and the
 * actions on one container or many, with the ids under way.
 */
export function useContainers(running: boolean) {
  const api = useApi();
  const [list, setList] = useState<ContainerView[] | null>(null);
  const [loadError, setLoadError] = useState<CallError | null>(null);
  const [busy, setBusy] = useState<Record<string, Action>>({});
  const [conflicts, setConflicts] = useState<Map<number, PortViewWire>>(new Map());

  const load = useCallback(async () => {
    if (!running) {
      setList(null);
      return;
    }
    try {
      setList((await api.call('containers.list', { all: true })).containers);
      setLoadError(null);
    } catch (err) {
      setLoadError(CallError.from(err));
    }
  }, [api, running]);

  const setPortMap = (ports: PortViewWire[]) => setConflicts(new Map(ports.filter((p) => p.state !== 'active').map((p) => [p.hostPort, p])));

  useEffect(() => {
    void load();
    if (running)
      void api.call('ports.list', {}).then(
        (r) => setPortMap(r.ports),
        () => undefined,
      ); // ports are an extra
  }, [api, load, running]);

  useEffect(
    () =>
      api.on('containers.changed', (e) =>
        setList((old) => {
          if (!old) return old;
          const i = old.findIndex((c) => c.id === e.id);
          if (!e.container) return i < 0 ? old : old.filter((c) => c.id !== e.id);
          if (i < 0) return [e.container, ...old];
          const copy = [...old];
          copy[i] = e.container;
          return copy;
        }),
      ),
    [api],
  );
  useEffect(() => api.on('ports.changed', (e) => setPortMap(e.ports)), [api]);

  /** One action on one container; throws the contract's error. */
  const actOne = useCallback(
    async (c: ContainerView, action: Action) => {
      setBusy((b) => ({ ...b, [c.id]: action }));
      try {
        if (action === 'remove') {
          await api.call('containers.remove', { id: c.id, force: true });
          setList((old) => old?.filter((x) => x.id !== c.id) ?? old);
        } else {
          const r = await api.call(`containers.${action}`, { id: c.id });
          if (r.container) setList((old) => old?.map((x) => (x.id === c.id ? r.container! : x)) ?? old);
        }
      } finally {
        setBusy((b) => {
          const { [c.id]: _, ...rest } = b;
          return rest;
        });
      }
    },
    [api],
  );

  /**
   * One action on many containers (a Compose group, a selection), a few at a
   * time; those it does not apply to (starting a running one) are left out.
   */
  const actMany = useCallback(
    async (cs: ContainerView[], action: Action): Promise<ActionProblem | null> => {
      const todo = cs.filter((c) => appliesTo(action, c));
      const failed: ActionProblem['failed'] = [];
      const queue = [...todo];
      const worker = async () => {
        for (let c = queue.shift(); c; c = queue.shift()) {
          await actOne(c, action).catch((err) => failed.push({ name: c!.name, error: CallError.from(err) }));
        }
      };
      await Promise.all(Array.from({ length: Math.min(PARALLEL, todo.length) }, worker));
      return failed.length ? { action, failed, total: todo.length } : null;
    },
    [actOne],
  );

  return { list, loadError, reload: load, busy, conflicts, actOne, actMany };
}

export function isRunning(c: ContainerView): boolean {
  return c.state === 'running' || c.state === 'restarting';
}

/** Whether `action` does anything to `c` (Start on a running container does not). */
export function appliesTo(action: Action, c: ContainerView): boolean {
  if (action === 'start') return !isRunning(c);
  if (action === 'stop') return isRunning(c) || c.state === 'paused';
  return true;
}
