import { useCallback, useEffect, useId, useState, type FormEvent } from 'react';
import type { Result } from '../../../contract/contract';
import { CallError, useApi } from '../api';
import { ErrorNote } from '../components/ErrorNote';
import { SettingField } from '../settings/SettingField';
import { FIELDS, SECTIONS } from '../settings/fields';
import { EMPTY_FORM, fieldErrors, formOf, patchOf, type Form, type Key, type SettingsView } from '../settings/form';
import { useVm } from '../vm';

/**
 * The VM's settings, checked by the engine (every field in one round, in
 * the words the CLI uses), with the host's limits beside the numbers and
 * the choices this host cannot use disabled with doctor's reason.
 */
export function Settings() {
  const api = useApi();
  const { status, act, busy, refresh } = useVm();
  const [saved, setSaved] = useState<SettingsView | null>(null);
  const [doctor, setDoctor] = useState<Result<'host.doctor'> | null>(null);
  const [form, setForm] = useState<Form>(EMPTY_FORM);
  const [error, setError] = useState<CallError | null>(null);
  const [fields, setFields] = useState<Partial<Record<Key, string>>>({});
  const [result, setResult] = useState<Result<'settings.update'> | null>(null);
  const [saving, setSaving] = useState(false);
  const id = useId();
  const running = status?.state === 'running';

  const load = useCallback(async () => {
    try {
      const s = await api.call('settings.get', {});
      setSaved(s);
      setForm(formOf(s));
    } catch (err) {
      setError(CallError.from(err));
    }
  }, [api]);
  useEffect(() => void load(), [load]);
  // Doctor runs the host's checks (a few commands): the form does not wait for it.
  useEffect(() => void api.call('host.doctor', {}).then(setDoctor, () => setDoctor(null)), [api]);

  const apply = async (restart: boolean) => {
    if (!saved) return;
    setError(null);
    setFields({});
    setResult(null);
    const patch = patchOf(form, saved);
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
      setForm(formOf(r.settings));
      if (saved.problem) void refresh(); // the status's settingsProblem is gone too
      if (restart && r.restartRequired && running) void act('vm.restart');
    } catch (err) {
      const ce = CallError.from(err);
      setError(ce);
      setFields(fieldErrors(ce));
    } finally {
      setSaving(false);
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const submitter = (e.nativeEvent as SubmitEvent).submitter as HTMLButtonElement | null;
    void apply(submitter?.value === 'restart');
  };

  const invalid = FIELDS.filter((f) => fields[f.key]);
  return (
    <form className="settings card" onSubmit={submit} noValidate aria-describedby={error ? `${id}-error` : undefined} aria-busy={!saved && !error}>
      {error && (
        <div className="error-note" role="alert" id={`${id}-error`} data-testid="settings-summary">
          <div className="error-message">
            {invalid.length ? `${invalid.length === 1 ? 'One value is' : `${invalid.length} values are`} not valid.` : error.message}
          </div>
          {invalid.length > 0 && (
            <ul className="summary-list">
              {invalid.map((f) => (
                <li key={f.key}>
                  <a href={`#${id}-${f.key}`} onClick={(e) => (e.preventDefault(), document.getElementById(`${id}-${f.key}`)?.focus())}>
                    {f.label}
                  </a>
                  : {fields[f.key]}
                </li>
              ))}
            </ul>
          )}
          {error.hint && <div className="error-hint">{error.hint}</div>}
          <div className="error-code">{error.code}</div>
        </div>
      )}
      {saved?.problem && (
        <>
          <ErrorNote warning testId="settings-problem" error={CallError.from(saved.problem)} />
          <p className="muted small">Apply writes the settings below anew; the broken file is moved aside, not deleted.</p>
        </>
      )}
      {/* Disabled until the saved values are in: what is typed before would be replaced by them and never sent. */}
      {SECTIONS.map((sec) => (
        <fieldset key={sec.id} className="settings-fields" disabled={!saved}>
          {sec.legend && <legend>{sec.legend}</legend>}
          {FIELDS.filter((f) => (f.section ?? 'vm') === sec.id).map((f) => (
            <SettingField
              key={f.key}
              field={f}
              fid={`${id}-${f.key}`}
              value={form[f.key]}
              error={fields[f.key]}
              limits={saved?.limits}
              doctor={doctor}
              onChange={(v) => setForm((cur) => ({ ...cur, [f.key]: v }))}
            />
          ))}
        </fieldset>
      ))}
      <div className="actions">
        <button type="submit" className="primary" value="apply" disabled={saving || !saved}>
          {saving ? 'Applying…' : 'Apply'}
        </button>
        {running && (
          <button type="submit" value="restart" disabled={saving || !saved || !!busy} aria-describedby={`${id}-restart-help`}>
            Apply &amp; restart
          </button>
        )}
        <button type="button" onClick={() => void load().then(() => (setFields({}), setError(null), setResult(null)))}>
          Revert
        </button>
      </div>
      {running && (
        <p className="muted small" id={`${id}-restart-help`}>
          Apply &amp; restart restarts the VM when a changed value needs it (CPUs, memory, disk, driver, accelerator, Rosetta, shared folders, registries and
          proxy); containers are kept.
        </p>
      )}
      {result && (
        <div className="note" role="status" data-testid="settings-result">
          {result.changed.length ? `Saved ${result.changed.join(', ')}.` : result.notice ? 'Saved.' : 'Nothing changed.'}
          {result.notice && ` ${result.notice}`}
          {result.restartRequired && running && (
            <>
              {' '}
              The VM uses the new values after a restart.{' '}
              <button type="button" onClick={() => void act('vm.restart')} disabled={!!busy}>
                Restart now
              </button>
            </>
          )}
          {result.restartRequired && busy === 'vm.restart' && ' Restarting the VM…'}
          {result.restartRequired && !running && busy !== 'vm.restart' && ' They apply when the VM starts.'}
        </div>
      )}
    </form>
  );
}
