import type { KeyboardEvent } from 'react';
import type { Result, SettingsLimits } from '../../../contract/contract';
import { rangeText, unusable, type Field } from './fields';
import { NUMBER_UNIT, stepped, type Key } from './form';

type Doctor = Result<'host.doctor'>;

const STEP_NAMES: Partial<Record<Key, [string, string]>> = {
  cpus: ['One CPU fewer', 'One CPU more'],
  memoryMiB: ['Less memory', 'More memory'],
  diskGiB: ['A smaller disk', 'A larger disk'],
  idleMinutes: ['Rest sooner', 'Rest later'],
};

/**
 * One row of the Settings form: its label, the control (a stepper for
 * numbers, a select, a checkbox, a text field), the help with the host's range, the
 * choices this host cannot use and why, and the engine's error for it.
 */
export function SettingField(p: {
  field: Field;
  fid: string;
  value: string;
  error?: string;
  limits?: SettingsLimits;
  doctor: Doctor | null;
  onChange(v: string): void;
}) {
  const { field: f, fid, value, error } = p;
  const range = rangeText(f.key, p.limits);
  const off = f.options
    ? Object.keys(f.options).flatMap((v) => (v !== value && unusable(p.doctor, f.key, v) ? [[v, unusable(p.doctor, f.key, v)!] as const] : []))
    : [];
  const rosettaOff = f.key === 'rosetta' ? unusable(p.doctor, 'rosetta', 'true') : undefined;
  const describedBy = [`${fid}-help`, off.length || rosettaOff ? `${fid}-off` : '', error ? `${fid}-err` : ''].filter(Boolean).join(' ');
  const common = { id: fid, name: f.key, 'aria-describedby': describedBy, 'aria-invalid': !!error };
  const unit = NUMBER_UNIT[f.key];
  const limit = p.limits && unit ? (p.limits[f.key as 'cpus'] as { min: number; max: number }) : undefined;
  const step = (dir: 1 | -1) => p.onChange(stepped(value, f.key, dir, limit));
  const onKey = (e: KeyboardEvent) => {
    if (e.key === 'ArrowUp' || e.key === 'ArrowDown') {
      e.preventDefault();
      step(e.key === 'ArrowUp' ? 1 : -1);
    }
  };

  let control;
  if (f.check) {
    control = (
      <label htmlFor={fid} className="check">
        {/* Disabled only while off: a setting on where it cannot apply can still be turned off. */}
        <input
          {...common}
          type="checkbox"
          checked={value === 'true'}
          disabled={!!rosettaOff && value !== 'true'}
          onChange={(e) => p.onChange(String(e.target.checked))}
        />{' '}
        {f.check}
      </label>
    );
  } else if (f.options) {
    control = (
      <select {...common} value={value} onChange={(e) => p.onChange(e.target.value)}>
        {Object.entries(f.options).map(([v, text]) => {
          const why = v !== value ? unusable(p.doctor, f.key, v) : undefined;
          return (
            <option key={v} value={v} disabled={!!why} title={why}>
              {text}
              {why ? ' — not on this host' : ''}
            </option>
          );
        })}
      </select>
    );
  } else if (f.text) {
    control = (
      <input
        {...common}
        type="text"
        value={value}
        placeholder={f.text.placeholder}
        onChange={(e) => p.onChange(e.target.value)}
        autoComplete="off"
        spellCheck={false}
      />
    );
  } else {
    const [less, more] = STEP_NAMES[f.key] ?? ['Less', 'More'];
    control = (
      <div className="stepper">
        <button type="button" onClick={() => step(-1)} aria-label={less} aria-controls={fid}>
          −
        </button>
        <input {...common} inputMode="decimal" value={value} onChange={(e) => p.onChange(e.target.value)} onKeyDown={onKey} autoComplete="off" />
        <button type="button" onClick={() => step(1)} aria-label={more} aria-controls={fid}>
          +
        </button>
      </div>
    );
  }

  return (
    <div className={`field${error ? ' invalid' : ''}`} data-testid={`field-${f.key}`}>
      {f.check ? <span className="field-name">{f.label}</span> : <label htmlFor={fid}>{f.label}</label>}
      {control}
      <div className="help muted small" id={`${fid}-help`}>
        {f.help}
        {range && <span data-testid={`range-${f.key}`}> Here: {range}.</span>}
      </div>
      {(off.length > 0 || rosettaOff) && (
        <ul className="help small unavailable" id={`${fid}-off`} data-testid={`unavailable-${f.key}`}>
          {rosettaOff && <li>Not on this host: {rosettaOff}.</li>}
          {off.map(([v, why]) => (
            <li key={v}>
              {f.options![v]?.replace(/ \(.*$/, '')}: {why}.
            </li>
          ))}
        </ul>
      )}
      {error && (
        <div className="field-error" id={`${fid}-err`} data-testid={`error-${f.key}`}>
          {error}
        </div>
      )}
    </div>
  );
}
