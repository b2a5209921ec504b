import { useEffect, useState } from 'react';
import type { ContainerStatsSample } from '../../../../contract/contract-docker';
import { CallError, useApi } from '../../api';

/** How many samples the sparkline keeps (about a minute). */
const KEEP = 60;

/**
 * Live CPU and memory of one container while `enabled` (the drawer is open
 * and the container runs): one engine stats stream, stopped when the view
 * goes or the container stops. No polling: the engine sends a sample about
 * once a second.
 */
export function useStats(containerId: string, enabled: boolean) {
  const api = useApi();
  const [samples, setSamples] = useState<ContainerStatsSample[]>([]);
  const [error, setError] = useState<CallError | null>(null);

  useEffect(() => {
    setSamples([]);
    setError(null);
    if (!enabled) return;
    let cancelled = false;
    let stream: string | undefined;
    let off: (() => void) | undefined;
    api.call('containers.stats', { id: containerId }).then(
      (r) => {
        if (cancelled) {
          void api.call('containers.stats.stop', { stream: r.stream }).catch(() => undefined);
          return;
        }
        stream = r.stream;
        off = api.stream(r.stream, (event, data) => {
          if (event === 'containers.stats.data') setSamples((old) => [...old.slice(-(KEEP - 1)), data as ContainerStatsSample]);
          else if (event === 'containers.stats.end') {
            const e = (data as { error?: { code: string; message: string; hint: string } }).error;
            if (e) setError(CallError.from(e));
            stream = undefined;
          }
        });
      },
      (err) => !cancelled && setError(CallError.from(err)),
    );
    return () => {
      cancelled = true;
      off?.();
      if (stream) void api.call('containers.stats.stop', { stream }).catch(() => undefined);
    };
  }, [api, containerId, enabled]);

  return { samples, latest: samples.at(-1), error };
}
