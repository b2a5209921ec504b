import { useEffect, useState } from 'react';
import type { ContainerDetails } from '../../../../contract/contract-docker';
import { CallError, useApi } from '../../api';
import { ErrorNote } from '../../components/ErrorNote';

/** A name/value table (env, labels), or a line saying there is none. */
function Pairs({ label, rows }: { label: string; rows: { name: string; value: string }[] }) {
  if (!rows.length) return <p className="muted">None.</p>;
  return (
    <table className="kv" aria-label={label}>
      <tbody>
        {rows.map((r, i) => (
          <tr key={`${r.name}-${i}`}>
            <th scope="row">{r.name}</th>
            <td>{r.value}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/**
 * What `docker inspect` says that a user reads: the command, ports,
 * mounts, environment, labels and networks. Loaded again when the
 * container's state changes (ports and addresses change with it).
 */
export function InspectView({ containerId, name, state }: { containerId: string; name: string; state: string }) {
  const api = useApi();
  const [d, setD] = useState<ContainerDetails | null>(null);
  const [error, setError] = useState<CallError | null>(null);
  useEffect(() => {
    let cancelled = false;
    api.call('containers.inspect', { id: containerId }).then(
      (r) => !cancelled && (setD(r), setError(null)),
      (err) => !cancelled && setError(CallError.from(err)),
    );
    return () => {
      cancelled = true;
    };
  }, [api, containerId, state]);

  if (error) return <ErrorNote error={error} />;
  if (!d) return <p className="muted">Loading…</p>;
  return (
    <div className="inspect" data-testid="inspect">
      <dl className="facts">
        <dt>Image</dt>
        <dd>{d.image}</dd>
        <dt>Command</dt>
        <dd>
          <code>{d.command.join(' ')}</code>
        </dd>
        {d.workingDir && (
          <>
            <dt>Working directory</dt>
            <dd>{d.workingDir}</dd>
          </>
        )}
        <dt>Created</dt>
        <dd>{d.created}</dd>
        {d.restartPolicy && (
          <>
            <dt>Restart policy</dt>
            <dd>{d.restartPolicy}</dd>
          </>
        )}
        <dt>Networks</dt>
        <dd>{d.networks.map((n) => (n.ipAddress ? `${n.name} (${n.ipAddress})` : n.name)).join(', ') || 'none'}</dd>
      </dl>
      <h3>Ports</h3>
      {d.ports.length ? (
        <ul className="plain">
          {d.ports.map((p) => (
            <li key={`${p.privatePort}/${p.proto}/${p.publicPort ?? ''}`}>
              {p.privatePort}/{p.proto}
              {p.publicPort ? ` → localhost:${p.publicPort}` : ' (not published)'}
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted">None.</p>
      )}
      <h3>Mounts</h3>
      {d.mounts.length ? (
        <table className="kv" aria-label={`Mounts of ${name}`}>
          <tbody>
            {d.mounts.map((m, i) => (
              <tr key={`${m.destination}-${i}`}>
                <th scope="row">{m.destination}</th>
                <td>
                  {m.type} {m.source}
                  {m.readOnly ? ' (read-only)' : ''}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p className="muted">None.</p>
      )}
      <h3>Environment</h3>
      <Pairs label={`Environment of ${name}`} rows={d.env} />
      <h3>Labels</h3>
      <Pairs label={`Labels of ${name}`} rows={d.labels} />
    </div>
  );
}
