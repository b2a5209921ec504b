import { useCallback, useEffect, useState } from 'react';
import type { Result } from '../../../contract/contract';
import { CallError, useApi } from '../api';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { ErrorNote } from '../components/ErrorNote';
import { Note } from '../components/Note';
import { formatBytes } from '../format';
import { useVm } from '../vm';
import { DoctorPanel } from './DoctorPanel';

export function Troubleshoot() {
  return (
    <div className="troubleshoot">
      <DoctorPanel />
      <LogPanel source="engine" title="Engine log" />
      <LogPanel source="serial" title="VM console (serial log)" />
      <LogPanel source="guest" title="Guest system log" />
      <Diagnostics />
      <Maintenance />
    </div>
  );
}

type Log = { file?: string; lines: string[] };

/** The last lines of a log: the engine's and the serial console's (host files), or the guest's own (sshd, dockerd; while the VM runs). */
function LogPanel({ source, title }: { source: 'engine' | 'serial' | 'guest'; title: string }) {
  const api = useApi();
  const { status } = useVm();
  const [log, setLog] = useState<Log | null>(null);
  const [error, setError] = useState<CallError | null>(null);
  const running = status?.state === 'running';
  const load = useCallback(async () => {
    try {
      setLog(source === 'guest' ? await api.call('guest.logs', { lines: 300 }) : await api.call('logs.read', { source, lines: 300 }));
      setError(null);
    } catch (err) {
      setError(CallError.from(err));
    }
  }, [api, source]);
  // The guest's log is read in the VM: again whenever it starts running.
  useEffect(() => void (source !== 'guest' || running ? load() : setLog(null)), [load, source, running]);
  if (source === 'guest' && !running) {
    return (
      <section className="card" aria-labelledby={`log-${source}`}>
        <h2 id={`log-${source}`}>{title}</h2>
        <p className="muted">The guest&apos;s log (sshd, dockerd, the init) is read in the VM: start it to see it.</p>
      </section>
    );
  }
  return (
    <section className="card" aria-labelledby={`log-${source}`}>
      <div className="panel-head">
        <h2 id={`log-${source}`}>{title}</h2>
        <button type="button" onClick={() => void load()} aria-label={`Reload the ${title.toLowerCase()}`}>
          Reload
        </button>
      </div>
      <ErrorNote error={error} />
      {log && (
        <>
          {log.file && <p className="muted small">{log.file}</p>}
          <pre className="log-lines short" tabIndex={0} role="log" aria-label={title}>
            {log.lines.length ? log.lines.join('\n') : '(empty)'}
          </pre>
        </>
      )}
    </section>
  );
}

function Diagnostics() {
  const api = useApi();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<CallError | null>(null);
  const [done, setDone] = useState<Result<'diagnostics.bundle'> | null>(null);
  const make = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await api.call('diagnostics.bundle', {});
      setDone(r);
      const bytes = Uint8Array.from(atob(r.base64), (c) => c.charCodeAt(0));
      const url = URL.createObjectURL(new Blob([bytes], { type: 'application/zip' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = r.fileName;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setError(CallError.from(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="card" aria-labelledby="diag-h">
      <h2 id="diag-h">Diagnostics bundle</h2>
      <p>A zip of the logs, settings and status to attach to a bug report. Keys and tokens are removed.</p>
      <button type="button" className="primary" onClick={() => void make()} disabled={busy}>
        {busy ? 'Collecting…' : 'Create diagnostics bundle'}
      </button>
      <ErrorNote error={error} />
      {done && (
        <p className="note" role="status" data-testid="diag-result">
          Saved {done.fileName} ({formatBytes(done.bytes)}, {done.files.length} files) to <code>{done.path}</code> and downloaded it.
        </p>
      )}
    </section>
  );
}

function Maintenance() {
  const api = useApi();
  const { status, act, busy, actionError } = useVm();
  const [confirm, setConfirm] = useState(false);
  const [resetting, setResetting] = useState(false);
  const [error, setError] = useState<CallError | null>(null);
  const [note, setNote] = useState('');
  const stopped = status?.state === 'stopped';
  const reset = async () => {
    setConfirm(false);
    setResetting(true);
    setError(null);
    setNote('');
    try {
      const r = await api.call('engine.factoryReset', { confirm: true });
      setNote(`Reset done: ${r.removed.length} files removed, settings back to their defaults${r.kept.length ? ` (kept ${r.kept.join(', ')})` : ''}.`);
    } catch (err) {
      setError(CallError.from(err));
    } finally {
      setResetting(false);
    }
  };
  return (
    <section className="card" aria-labelledby="maint-h">
      <h2 id="maint-h">Restart and reset</h2>
      <div className="actions">
        <button
          type="button"
          onClick={() => void act(status?.state === 'running' ? 'vm.restart' : 'vm.start')}
          disabled={!!busy || status?.state === 'starting' || status?.state === 'stopping'}
        >
          {status?.state === 'running' ? 'Restart the VM' : 'Start the VM'}
        </button>
        <button type="button" className="danger" onClick={() => setConfirm(true)} disabled={!stopped || resetting} aria-describedby="reset-help">
          Factory reset…
        </button>
      </div>
      <p id="reset-help" className="muted small">
        {stopped ? 'Deletes every container, image and volume, and puts the settings back to their defaults.' : 'Stop the VM first to reset it.'}
      </p>
      <ErrorNote error={actionError} />
      <ErrorNote error={error} />
      <Note text={note} />
      <ConfirmDialog
        open={confirm}
        title="Factory reset?"
        confirmLabel="Delete everything and reset"
        danger
        busy={resetting}
        onCancel={() => setConfirm(false)}
        onConfirm={() => void reset()}
      >
        <p>All containers, images and volumes in the VM are deleted, and the settings go back to their defaults. This cannot be undone.</p>
      </ConfirmDialog>
    </section>
  );
}
