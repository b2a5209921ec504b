import { useEffect, useState } from 'react';
import type { Result, VmStatus } from '../../../contract/contract';
import { CallError, useApi, useEvent } from '../api';
import { CopyButton } from '../components/CopyButton';
import { ErrorNote } from '../components/ErrorNote';
import { PHASE_LABELS, START_PHASES, STATE_LABELS, formatBytes } from '../format';
import { useVm, type Progress } from '../vm';

export function Home() {
  const { status, statusError, progress, busy, actionError, clearActionError, act, refresh } = useVm();
  // Events keep the state current, not the settings file's health: read it anew each time Home shows.
  useEffect(() => void refresh(), [refresh]);
  const state = status?.state;
  const transitional = state === 'starting' || state === 'stopping' || !!busy;
  return (
    <div className="home">
      <section aria-labelledby="vm-heading" className="card">
        <h2 id="vm-heading">Virtual machine</h2>
        <p className={`big-state state-${state ?? 'unknown'}`} data-testid="vm-state">
          {state ? STATE_LABELS[state] : statusError ? 'Unknown' : 'Loading…'}
          {state === 'starting' && status?.phase ? ` — ${PHASE_LABELS[status.phase] ?? status.phase}` : ''}
        </p>
        <ErrorNote error={statusError} />
        {state === 'error' && status?.error && <ErrorNote error={CallError.from(status.error)} />}
        {state === 'resting' && (
          <p className="note" data-testid="resting-note">
            Resting after {status?.rest?.idleMinutes ?? 15} idle minutes: the VM is stopped and uses no memory or CPU. The next docker command wakes it;
            containers that ran are kept (stopped, as after Stop).
          </p>
        )}
        {status?.settingsProblem && <ErrorNote warning testId="settings-problem" error={CallError.from(status.settingsProblem)} />}
        <div className="actions">
          {(state === 'stopped' || state === 'resting' || state === 'error' || !state) && (
            <button type="button" className="primary" onClick={() => void act('vm.start')} disabled={transitional || !state}>
              {busy === 'vm.start' ? 'Starting…' : 'Start'}
            </button>
          )}
          {(state === 'running' || state === 'starting' || state === 'resting') && (
            <button type="button" onClick={() => void act('vm.stop')} disabled={state === 'starting' || !!busy}>
              {busy === 'vm.stop' ? 'Stopping…' : 'Stop'}
            </button>
          )}
          {state === 'running' && (
            <button type="button" onClick={() => void act('vm.restart')} disabled={!!busy}>
              Restart
            </button>
          )}
        </div>
        <ErrorNote error={actionError} onDismiss={clearActionError} />
        {(state === 'starting' || (busy === 'vm.start' && progress.length > 0)) && (
          <StartProgress progress={progress} current={status?.phase} expected={status?.expected} />
        )}
        {status?.timings?.totalMs !== undefined && state === 'running' && (
          <p className="muted">
            Started in {(status.timings.totalMs / 1000).toFixed(1)} s{status.accel ? ` (${status.accel})` : ''}.
          </p>
        )}
        {status?.accel === 'tcg' && (state === 'running' || state === 'starting') && (
          <div className="error-note warning" role="status" data-testid="tcg-warning">
            <div className="error-message">Slow: the VM runs under TCG, QEMU&apos;s software emulation</div>
            <div className="error-hint">
              {status.accelReason ? `${status.accelReason}. ` : ''}Every instruction is emulated, so starts and builds take many times longer than with KVM or
              HVF. <a href="#/troubleshoot">The doctor says what this host lacks</a>.
            </div>
          </div>
        )}
      </section>

      {status && (
        <section aria-labelledby="docker-heading" className="card">
          <h2 id="docker-heading">Use Docker</h2>
          <p>Point your docker CLI, Compose and IDE at Berth:</p>
          <div className="copy-row">
            <code data-testid="docker-host">export DOCKER_HOST={status.dockerHost}</code>
            <CopyButton text={`export DOCKER_HOST=${status.dockerHost}`} label="Copy the DOCKER_HOST command" />
          </div>
          {status.dockerContext && (
            <div className="copy-row">
              <code>docker context use {status.dockerContext.name}</code>
              <CopyButton text={`docker context use ${status.dockerContext.name}`} label="Copy the docker context command" />
            </div>
          )}
          <p className="muted">
            Socket: <code>{status.dockerSocket}</code>
          </p>
        </section>
      )}

      {status && <Resources />}
    </div>
  );
}

/** Seconds for the checklist: "4.2 s", "1 min 05 s". */
function secs(ms: number): string {
  const s = ms / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, '0')} s`;
}

/**
 * The start checklist: each phase with the time it took (or has taken so
 * far), the time it took over the last starts, and the current phase's
 * latest message (the image build reports its steps there).
 */
function StartProgress({ progress, current, expected }: { progress: Progress[]; current?: string; expected?: VmStatus['expected'] }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, []);
  const idx = current ? START_PHASES.indexOf(current) : -1;
  const seen = new Map(progress.map((p) => [p.phase as string, p]));
  const order = progress.map((p) => p.phase as string);
  const elapsed = (p: string): number | undefined => {
    const at = seen.get(p)?.at;
    if (!at) return undefined;
    const next = order.slice(order.indexOf(p) + 1).map((q) => seen.get(q)!.at)[0];
    return Math.max(0, (next ? Date.parse(next) : now) - Date.parse(at));
  };
  return (
    <ol className="phases" aria-label="Start progress">
      {START_PHASES.map((p, i) => {
        const st = p === current ? 'current' : i < idx || (idx < 0 && seen.has(p)) ? 'done' : 'pending';
        const took = st === 'pending' ? undefined : elapsed(p);
        const usual = expected?.phases[p as keyof NonNullable<VmStatus['expected']>['phases']];
        return (
          <li key={p} className={`phase-${st}`} aria-current={st === 'current' ? 'step' : undefined} data-testid={`phase-${p}`}>
            <span aria-hidden="true">{st === 'done' ? '✓' : st === 'current' ? '…' : '○'}</span> {PHASE_LABELS[p] ?? p}
            <span className="visually-hidden">{st === 'done' ? ' (done)' : st === 'current' ? ' (in progress)' : ''}</span>
            {(took !== undefined || usual !== undefined) && (
              <span className="phase-time muted small" data-testid={`phase-time-${p}`}>
                {took !== undefined ? ` ${secs(took)}` : ''}
                {usual !== undefined ? ` (usually ${secs(usual)})` : ''}
              </span>
            )}
            {st === 'current' && seen.get(p)?.message && (
              <div className="phase-message small muted">
                {seen.get(p)!.message}
                {seen.get(p)!.fraction !== undefined && (
                  <progress className="phase-bar" max={1} value={seen.get(p)!.fraction} aria-label={seen.get(p)!.message} />
                )}
              </div>
            )}
          </li>
        );
      })}
    </ol>
  );
}

function Resources() {
  const api = useApi();
  const { status } = useVm();
  const [info, setInfo] = useState<Result<'docker.info'> | null>(null);
  const running = status?.state === 'running';
  const load = () => {
    if (!running) return setInfo(null);
    api.call('docker.info', {}).then(setInfo, () => setInfo(null));
  };
  useEffect(load, [api, running]);
  useEvent('containers.changed', load);
  useEvent('images.changed', load);
  if (!status) return null;
  return (
    <section aria-labelledby="res-heading" className="card">
      <h2 id="res-heading">Resources</h2>
      <dl className="facts">
        <dt>CPUs</dt>
        <dd>{status.cpus}</dd>
        <dt>Memory</dt>
        <dd>{status.memoryMiB} MiB</dd>
        <dt>Disk</dt>
        <dd>{status.diskGiB} GiB</dd>
        {status.accel && (
          <>
            <dt>Accelerator</dt>
            <dd title={status.accelReason}>{status.accel}</dd>
          </>
        )}
        {status.rosetta && (
          <>
            <dt>Rosetta</dt>
            <dd data-testid="rosetta-state">{status.rosetta.active ? 'on: x86_64 binaries run through Rosetta' : `not used. ${status.rosetta.note ?? ''}`}</dd>
          </>
        )}
        {info && (
          <>
            <dt>Containers</dt>
            <dd data-testid="containers-count">
              {info.running} running of {info.containers}
            </dd>
            <dt>Images</dt>
            <dd>{info.images}</dd>
            <dt>Docker</dt>
            <dd>
              {info.serverVersion} ({formatBytes(info.memTotal)} memory in the VM)
            </dd>
          </>
        )}
      </dl>
    </section>
  );
}
