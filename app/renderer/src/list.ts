import { useCallback, useEffect, useState, type Dispatch, type SetStateAction } from 'react';
import type { EventName } from '../../contract/contract';
import { CallError, useApi, type Api } from './api';

/** What an action leaves: a note for the user, and the list as the engine's reply has it (without one the list is loaded again). */
export interface Done<T> {
  note?: string;
  data?: T;
}

export interface List<T> {
  /** Null until loaded, and while the hook is not enabled. */
  data: T | null;
  setData: Dispatch<SetStateAction<T | null>>;
  loadError: CallError | null;
  reload(): Promise<void>;
  /** An action is under way. */
  busy: boolean;
  /** What the last action did ('' for nothing to say). */
  note: string;
  /** Why the last action failed. */
  actionError: CallError | null;
  /** The same, if that action ran under `key` (a row, a form): for errors shown where the user acted. */
  errorOf(key: string): CallError | null;
  clearActionError(): void;
  run(action: () => Promise<Done<T>>, key?: string): Promise<void>;
}

/**
 * A list screen's data: loaded with `load` (a stable function: module-level
 * or memoised, as the list is loaded again when it changes), loaded again on
 * the `reloadOn` events, null while not `enabled` (the VM is not running),
 * and a runner for the actions on it: a busy flag while one runs, then its
 * note or its error.
 */
export function useList<T>(
  load: (api: Api) => Promise<T>,
  { enabled = true, reloadOn = [] }: { enabled?: boolean; reloadOn?: readonly EventName[] } = {},
): List<T> {
  const api = useApi();
  const [data, setData] = useState<T | null>(null);
  const [loadError, setLoadError] = useState<CallError | null>(null);
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState('');
  const [failed, setFailed] = useState<{ key: string; error: CallError } | null>(null);

  const reload = useCallback(async () => {
    if (!enabled) return setData(null);
    try {
      setData(await load(api));
      setLoadError(null);
    } catch (err) {
      setLoadError(CallError.from(err));
    }
  }, [api, enabled, load]);
  useEffect(() => void reload(), [reload]);

  const events = reloadOn.join(' '); // a new array each render, the same names
  useEffect(() => {
    const names = new Set(events.split(' '));
    return api.onAny((event) => {
      if (names.has(event)) void reload();
    });
  }, [api, events, reload]);

  const run = useCallback(
    async (action: () => Promise<Done<T>>, key = '') => {
      setBusy(true);
      setFailed(null);
      setNote('');
      try {
        const done = await action();
        setNote(done.note ?? '');
        if (done.data !== undefined) setData(done.data);
        else await reload();
      } catch (err) {
        setFailed({ key, error: CallError.from(err) });
      } finally {
        setBusy(false);
      }
    },
    [reload],
  );
  const clearActionError = useCallback(() => setFailed(null), []);
  const errorOf = (key: string) => (failed?.key === key ? failed.error : null);

  return { data, setData, loadError, reload, busy, note, actionError: failed?.error ?? null, errorOf, clearActionError, run };
}
