import { useCallback, useEffect, useId, useState, type FormEvent } from 'react';
import type { Result } from '../../../contract/contract';
import { CallError, useApi } from '../api';
import { ErrorNote } from '../components/ErrorNote';
import { useVm } from '../vm';
import { SharesPanel } from './Shares';

type SettingsView = Result<'settings.get'>;
type Key = 'cpus' | 'memoryMiB' | 'diskGiB' | 'accel' | 'driver' | 'rosetta' | 'portBind' | 'idleMinutes' | 'shareMechanism';
const KEYS: readonly Key[] = ['cpus', 'memoryMiB', 'diskGiB', 'accel', 'driver', 'rosetta', 'portBind', 'idleMinutes', 'shareMechanism'];
const NUMERIC: Key[] = ['cpus', 'memoryMiB', 'diskGiB', 'idleMinutes'];
/** Form values are strings; these are true/false. */
const BOOLEAN: Key[] = ['rosetta'];

/** Every value of the driver setting (typed by the engine's DRIVER_SETTINGS: one missing here does not compile). */
const DRIVER_LABEL: Record<SettingsView['driver'], string> = {
  auto: 'auto (pick for this host)',
  vfkit: 'vfkit (macOS Virtualization.framework)',
  qemu: 'QEMU',
  hyperv: 'Hyper-V (Windows)',
};
const DRIVERS = Object.keys(DRIVER_LABEL) as SettingsView['driver'][];

/** `check`: a checkbox's own text (the label names the row). */
const FIELDS: { key: Key; label: string; help: string; check?: string }[] = [
  { key: 'cpus', label: 'CPUs', help: 'Virtual CPUs of the VM.' },
  { key: 'memoryMiB', label: 'Memory (MiB)', help: 'At least 512; leave the host some.' },
  { key: 'diskGiB', label: 'Disk (GiB)', help: 'The data disk for images, containers and volumes; it can only grow.' },
  { key: 'accel', label: 'Accelerator', help: 'auto picks KVM or HVF when they work, else TCG (slow). QEMU only.' },
  {
    key: 'driver',
    label: 'VM driver',
    help: 'auto: vfkit on macOS 13+ (else QEMU), Hyper-V on Windows, QEMU on Linux. Troubleshoot shows which can run here.',
  },
  {
    key: 'rosetta',
    label: 'Rosetta',
    check: 'Run amd64 (x86_64) binaries with Rosetta',
    help: 'Apple silicon with the vfkit driver. Elsewhere the VM starts without it and Home says why.',
  },
  { key: 'portBind', label: 'Forwarded ports listen on', help: 'Loopback keeps them on this machine.' },
  {
    key: 'idleMinutes',
    label: 'Rest when idle (minutes)',
    help: 'With no container running and no docker, forwarded or shell connection for this long, the VM stops until the next docker command wakes it. 0: never.',
  },
  {
    key: 'shareMechanism',
    label: 'Shared folders use',
    help: 'auto: virtiofs where the VM driver has it, reverse sshfs elsewhere and as the fallback. Applies at the next start.',
  },
];

/** The form's text for a saved value (true/false for booleans; a setting older engines lack is off, or auto). */
function formValue(s: SettingsView, k: Key): string {
  const v = s[k];
  if (k === 'idleMinutes') return String(v ?? 15);
  return BOOLEAN.includes(k) ? String(v === true) : String(v ?? 'auto');
}

/** Which field an engine error is about: "invalid settings: memoryMiB: must be ..." → memoryMiB. */
export function fieldErrors(err: CallError): Partial<Record<Key, string>> {
  const out: Partial<Record<Key, string>> = {};
  if (err.code === 'DISK_SHRINK') out.diskGiB = err.message;
  const body = err.message.replace(/^(invalid settings|bad params for settings\.update):\s*/, '');
  for (const part of body.split('; ')) {
    const m = /^(?:patch\.)?(cpus|memoryMiB|diskGiB|accel|driver|rosetta|portBind|idleMinutes|shareMechanism)\b[^:]*:\s*(.*)$/.exec(part);
    if (m) out[m[1] as Key] = m[2]!;
  }
  return out;
}

export function Settings() {
  const api = useApi();
  const { status, act, busy, refresh } = useVm();
  const [saved, setSaved] = useState<SettingsView | null>(null);
  const [form, setForm] = useState<Record<Key, string>>({
    cpus: '',
    memoryMiB: '',
    diskGiB: '',
    accel: 'auto',
    driver: 'auto',
    rosetta: 'false',
    portBind: 'loopback',
    idleMinutes: '15',
    shareMechanism: 'auto',
  });
  const [error, setError] = useState<CallError | null>(null);
  const [fields, setFields] = useState<Partial<Record<Key, string>>>({});
  const [result, setResult] = useState<Result<'settings.update'> | null>(null);
  const [saving, setSaving] = useState(false);
  const id = useId();

  const load = useCallback(async () => {
    try {
      const s = await api.call('settings.get', {});
      setSaved(s);
      setForm(Object.fromEntries(KEYS.map((k) => [k, formValue(s, k)])) as Record<Key, string>);
    } catch (err) {
      setError(CallError.from(err));
    }
  }, [api]);
  useEffect(() => void load(), [load]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!saved) return;
    setError(null);
    setFields({});
    setResult(null);
    const patch: Record<string, unknown> = {};
    const local: Partial<Record<Key, string>> = {};
    for (const f of FIELDS) {
      const v = form[f.key].trim();
      if (NUMERIC.includes(f.key)) {
        if (!/^\d+$/.test(v)) local[f.key] = 'must be a whole number';
        else if (Number(v) !== saved[f.key]) patch[f.key] = Number(v);
      } else if (BOOLEAN.includes(f.key)) {
        if (v !== formValue(saved, f.key)) patch[f.key] = v === 'true';
      } else if (v !== formValue(saved, f.key)) patch[f.key] = v;
    }
    if (Object.keys(local).length) {
      setFields(local);
      setError(new CallError({ code: 'INVALID_SETTINGS', message: 'some values are not valid', hint: 'Nothing was saved. Fix the fields marked below.' }));
      return;
    }
    // A broken file on disk is saved anew (and moved aside) even with
    // nothing changed: that is how the user gets rid of the warning.
    if (!Object.keys(patch).length && !saved.problem) {
      setResult({ settings: saved, changed: [], restartRequired: false });
      return;
    }
    setSaving(true);
    try {
      const r = await api.call('settings.update', { patch });
      setResult(r);
      setSaved(r.settings);
      if (saved.problem) void refresh(); // the status's settingsProblem is gone too
    } catch (err) {
      const ce = CallError.from(err);
      setError(ce);
      setFields(fieldErrors(ce));
    } finally {
      setSaving(false);
    }
  };

  return (
    <>
    <form className="settings card" onSubmit={(e) => void submit(e)} noValidate aria-describedby={error ? `${id}-error` : undefined}>
      {saved?.problem && (
        <>
          <ErrorNote warning testId="settings-problem" error={CallError.from(saved.problem)} />
          <p className="muted small">Save writes the settings below anew; the broken file is moved aside, not deleted.</p>
        </>
      )}
      {FIELDS.map((f) => {
        const fid = `${id}-${f.key}`;
        const ferr = fields[f.key];
        const describedBy = [`${fid}-help`, ferr ? `${fid}-err` : ''].filter(Boolean).join(' ');
        return (
          <div className={`field${ferr ? ' invalid' : ''}`} key={f.key}>
            {f.check ? <span className="field-name">{f.label}</span> : <label htmlFor={fid}>{f.label}</label>}
            {f.check ? (
              <label htmlFor={fid} className="check">
                <input
                  id={fid}
                  type="checkbox"
                  name={f.key}
                  checked={form[f.key] === 'true'}
                  onChange={(e) => setForm({ ...form, [f.key]: String(e.target.checked) })}
                  aria-describedby={describedBy}
                  aria-invalid={!!ferr}
                />{' '}
                {f.check}
              </label>
            ) : f.key === 'accel' ? (
              <select id={fid} value={form.accel} onChange={(e) => setForm({ ...form, accel: e.target.value })} aria-describedby={describedBy} aria-invalid={!!ferr}>
                {['auto', 'kvm', 'hvf', 'tcg'].map((a) => (
                  <option key={a} value={a}>
                    {a}
                  </option>
                ))}
              </select>
            ) : f.key === 'driver' ? (
              <select id={fid} value={form.driver} onChange={(e) => setForm({ ...form, driver: e.target.value })} aria-describedby={describedBy} aria-invalid={!!ferr}>
                {DRIVERS.map((d) => (
                  <option key={d} value={d}>
                    {DRIVER_LABEL[d]}
                  </option>
                ))}
              </select>
            ) : f.key === 'portBind' ? (
              <select id={fid} value={form.portBind} onChange={(e) => setForm({ ...form, portBind: e.target.value })} aria-describedby={describedBy} aria-invalid={!!ferr}>
                <option value="loopback">loopback only (127.0.0.1, ::1)</option>
                <option value="all">every interface</option>
              </select>
            ) : f.key === 'shareMechanism' ? (
              <select id={fid} value={form.shareMechanism} onChange={(e) => setForm({ ...form, shareMechanism: e.target.value })} aria-describedby={describedBy} aria-invalid={!!ferr}>
                <option value="auto">auto (virtiofs where available)</option>
                <option value="virtiofs">virtiofs</option>
                <option value="sshfs">reverse sshfs</option>
              </select>
            ) : (
              <input
                id={fid}
                name={f.key}
                inputMode="numeric"
                value={form[f.key]}
                onChange={(e) => setForm({ ...form, [f.key]: e.target.value })}
                aria-describedby={describedBy}
                aria-invalid={!!ferr}
              />
            )}
            <div className="help muted small" id={`${fid}-help`}>
              {f.help}
            </div>
            {ferr && (
              <div className="field-error" id={`${fid}-err`} data-testid={`error-${f.key}`}>
                {ferr}
              </div>
            )}
          </div>
        );
      })}
      <ErrorNote error={error} id={`${id}-error`} />
      <div className="actions">
        <button type="submit" className="primary" disabled={saving || !saved}>
          {saving ? 'Saving…' : 'Save'}
        </button>
        <button type="button" onClick={() => void load().then(() => (setFields({}), setError(null), setResult(null)))}>
          Revert
        </button>
      </div>
      {result && (
        <div className="note" role="status" data-testid="settings-result">
          {result.changed.length ? `Saved ${result.changed.join(', ')}.` : result.notice ? 'Saved.' : 'Nothing changed.'}
          {result.notice && ` ${result.notice}`}
          {result.restartRequired && status?.state === 'running' && (
            <>
              {' '}
              The VM uses the new values after a restart.{' '}
              <button type="button" onClick={() => void act('vm.restart')} disabled={!!busy}>
                Restart now
              </button>
            </>
          )}
          {result.restartRequired && status?.state !== 'running' && ' They apply when the VM starts.'}
        </div>
      )}
    </form>
    <SharesPanel />
    </>
  );
}
