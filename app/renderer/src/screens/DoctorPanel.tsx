import { useCallback, useEffect, useState } from 'react';
import type { Result } from '../../../contract/contract';
import { CallError, useApi } from '../api';
import { ErrorNote } from '../components/ErrorNote';
import { useVm } from '../vm';

type Doctor = Result<'host.doctor'>;

const DRIVER_NAMES: Record<string, string> = { qemu: 'QEMU', vfkit: 'vfkit', hyperv: 'Hyper-V' };

/** `berth doctor` on the Troubleshoot screen: every driver's verdict for this host, the accelerator and why. */
export function DoctorPanel() {
  const api = useApi();
  const { status } = useVm();
  const [doctor, setDoctor] = useState<Doctor | null>(null);
  const [error, setError] = useState<CallError | null>(null);
  const [checking, setChecking] = useState(false);
  const load = useCallback(async () => {
    setChecking(true);
    try {
      setDoctor(await api.call('host.doctor', {}));
      setError(null);
    } catch (err) {
      setError(CallError.from(err));
    } finally {
      setChecking(false);
    }
  }, [api]);
  useEffect(() => void load(), [load]);

  return (
    <section className="card" aria-labelledby="doctor-h" data-testid="doctor-panel">
      <div className="panel-head">
        <h2 id="doctor-h">Doctor: what can run the VM here</h2>
        <button type="button" onClick={() => void load()} disabled={checking} aria-label="Check the host again">
          {checking ? 'Checking…' : 'Check again'}
        </button>
      </div>
      <ErrorNote error={error} />
      {doctor && (
        <>
          <p>
            Host: <strong data-testid="doctor-host">{doctor.host.os}</strong> ({doctor.host.arch}).{' '}
            {doctor.selected ? (
              <span data-testid="doctor-verdict">
                The next start uses <strong>{DRIVER_NAMES[doctor.selected] ?? doctor.selected}</strong>
                {doctor.setting === 'auto' ? ' (picked by auto)' : ' (the driver setting)'}.
              </span>
            ) : (
              <span className="warn" data-testid="doctor-verdict">
                No driver can run the VM {doctor.setting === 'auto' ? 'on this host' : `with the driver setting (${doctor.setting})`}.
              </span>
            )}
          </p>
          <div className="table-wrap">
            <table className="list" aria-label="VM drivers on this host">
              <thead>
                <tr>
                  <th scope="col">Driver</th>
                  <th scope="col">Usable</th>
                  <th scope="col">Why</th>
                </tr>
              </thead>
              <tbody>
                {doctor.drivers.map((c) => (
                  <tr key={c.driver} data-testid="doctor-driver" data-driver={c.driver}>
                    <td className="name">{DRIVER_NAMES[c.driver] ?? c.driver}</td>
                    <td>
                      <span className={`pill ${c.usable ? 'port-active' : 'port-error'}`}>
                        {c.usable ? (c.driver === doctor.selected ? 'yes (used)' : 'yes') : 'no'}
                      </span>
                    </td>
                    <td>
                      {c.summary}
                      {c.problem && c.problem.code !== 'UNSUPPORTED_OS' && <div className="small muted">{c.problem.hint}</div>}
                      {c.warnings.map((w) => (
                        <div key={w} className="small warn">
                          {w}
                        </div>
                      ))}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <dl className="facts" data-testid="doctor-accel">
            <dt>Accelerator</dt>
            <dd>
              {status?.accel ? (
                <>
                  <strong>{status.accel}</strong>
                  {status.accelReason ? `: ${status.accelReason}` : ''}
                  {status.accel === 'tcg' ? ' (software emulation, much slower than KVM or HVF)' : ''}
                </>
              ) : doctor.lastProbe ? (
                <>
                  last probe: <strong>{doctor.lastProbe.accel}</strong>: {doctor.lastProbe.reason}
                </>
              ) : (
                'decided at the next start'
              )}
            </dd>
            {doctor.live && (
              <>
                <dt>Running now</dt>
                <dd>
                  {DRIVER_NAMES[doctor.live.driver] ?? doctor.live.driver}
                  {doctor.live.reason ? ` (${doctor.live.reason})` : ''}
                </dd>
              </>
            )}
            {doctor.rosetta && (
              <>
                <dt>Rosetta</dt>
                <dd>
                  {doctor.rosetta.usable
                    ? 'on: x86_64 binaries run through it'
                    : (doctor.rosetta.note ?? (doctor.rosetta.setting ? 'on in settings, not usable here' : 'off'))}
                </dd>
              </>
            )}
            {doctor.overrides && (
              <>
                <dt>Overrides</dt>
                <dd>
                  <code>
                    {Object.entries(doctor.overrides)
                      .map(([k, v]) => `${k}=${v}`)
                      .join(' ')}
                  </code>
                </dd>
              </>
            )}
          </dl>
        </>
      )}
    </section>
  );
}
