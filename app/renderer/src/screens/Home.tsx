import { useEffect, useState } from 'react';
import type { Result } from '../../../contract/contract';
import { CallError, useApi, useEvent } from '../api';
import { CopyButton } from '../components/CopyButton';
import { ErrorNote } from '../components/ErrorNote';
import { PHASE_LABELS, START_PHASES, STATE_LABELS, formatBytes } from '../format';
import { useVm } from '../vm';

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
            Resting after {status?.rest?.idleMinutes ?? 15} idle minutes: the VM is stopped and uses no memory or CPU. The next docker command wakes it; containers that
            ran are kept (stopped, as after Stop).
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
        {(state === 'starting' || (busy === 'vm.start' && progress.length > 0)) && <StartProgress seen={progress.map((p) => p.phase)} current={status?.phase} />}
        {status?.timings?.totalMs !== undefined && state === 'running' && (
          <p className="muted">Started in {(status.timings.totalMs / 1000).toFixed(1)} s{status.accel ? ` (${status.accel})` : ''}.</p>
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

function StartProgress({ seen, current }: { seen: string[]; current?: string }) {
  const idx = current ? START_PHASES.indexOf(current) : -1;
  return (
    <ol className="phases" aria-label="Start progress">
      {START_PHASES.map((p, i) => {
        const st = p === current ? 'current' : i < idx || (idx < 0 && seen.includes(p)) ? 'done' : 'pending';
        return (
          <li key={p} className={`phase-${st}`} aria-current={st === 'current' ? 'step' : undefined}>
            <span aria-hidden="true">{st === 'done' ? '✓' : st === 'current' ? '…' : '○'}</span> {PHASE_LABELS[p] ?? p}
            <span className="visually-hidden">{st === 'done' ? ' (done)' : st === 'current' ? ' (in progress)' : ''}</span>
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
