import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import type { EventData, VmStatus } from '../../contract/contract';
import { CallError, useApi, useEvent } from './api';

export type Progress = EventData<'vm.progress'>;

interface VmContextValue {
  status: VmStatus | null;
  /** Why vm.status failed (the transport is down, the engine refused). */
  statusError: CallError | null;
  /** Start phases seen since the last start began. */
  progress: Progress[];
  /** A start/stop/restart is under way from this page. */
  busy: string | null;
  actionError: CallError | null;
  clearActionError(): void;
  refresh(): Promise<void>;
  act(method: 'vm.start' | 'vm.stop' | 'vm.restart'): Promise<void>;
}

const VmContext = createContext<VmContextValue | null>(null);

/** The VM's status for every screen: fetched once, then kept current by vm.state and vm.progress events. */
export function VmProvider({ children }: { children: ReactNode }) {
  const api = useApi();
  const [status, setStatus] = useState<VmStatus | null>(null);
  const [statusError, setStatusError] = useState<CallError | null>(null);
  const [progress, setProgress] = useState<Progress[]>([]);
  const [busy, setBusy] = useState<string | null>(null);
  const [actionError, setActionError] = useState<CallError | null>(null);

  const refresh = useCallback(async () => {
    try {
      setStatus(await api.call('vm.status', {}));
      setStatusError(null);
    } catch (err) {
      setStatusError(CallError.from(err));
    }
  }, [api]);

  useEffect(() => {
    void refresh();
    return api.transport.onLink((up) => {
      if (up) void refresh();
    });
  }, [api, refresh]);

  useEvent('vm.state', (e) => {
    if (e.state === 'starting' && e.previous !== 'starting') setProgress([]);
    setStatus((s) => (s ? { ...s, state: e.state, ...(e.error ? { error: e.error } : {}) } : s));
    void refresh();
  });
  useEvent('vm.progress', (p) => {
    // A phase keeps its place and the time it began; its message is the latest
    // (the image build sends a counter about once a second).
    setProgress((list) => {
      const had = list.find((x) => x.phase === p.phase);
      return had ? list.map((x) => (x === had ? { ...p, at: had.at } : x)) : [...list, p];
    });
    setStatus((s) => (s && s.state === 'starting' ? { ...s, phase: p.phase } : s));
  });

  const act = useCallback(
    async (method: 'vm.start' | 'vm.stop' | 'vm.restart') => {
      setBusy(method);
      setActionError(null);
      if (method !== 'vm.stop') setProgress([]);
      try {
        setStatus(await api.call(method, {}));
      } catch (err) {
        setActionError(CallError.from(err));
        void refresh();
      } finally {
        setBusy(null);
      }
    },
    [api, refresh],
  );

  const value = useMemo(
    () => ({ status, statusError, progress, busy, actionError, clearActionError: () => setActionError(null), refresh, act }),
    [status, statusError, progress, busy, actionError, refresh, act],
  );
  return <VmContext.Provider value={value}>{children}</VmContext.Provider>;
}

export function useVm(): VmContextValue {
  const v = useContext(VmContext);
  if (!v) throw new Error('no VmProvider');
  return v;
}
