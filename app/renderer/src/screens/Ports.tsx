import { useId, useState, type FormEvent } from 'react';
import type { PortViewWire, Result } from '../../../contract/contract';
import { CallError, useApi, useEvent, type Api } from '../api';
import { ErrorNote } from '../components/ErrorNote';
import { ListTable, RemoveButton } from '../components/ListTable';
import { useList } from '../list';

const listPorts = (api: Api) => api.call('ports.list', {});

/** Forwarded ports: automatic (containers, guest processes) and manual, with their state and conflicts. */
export function Ports() {
  const api = useApi();
  const { data, setData, loadError, errorOf, run } = useList(listPorts, { reloadOn: ['vm.state'] });
  useEvent('ports.changed', (e) => setData((d) => (d ? { ...d, ports: e.ports } : d)));

  const remove = (hostPort: number, proto: 'tcp' | 'udp') =>
    void run(async () => ({ data: await api.call('ports.remove', { hostPort, proto }) }), `${proto}/${hostPort}`);

  const live = new Map((data?.ports ?? []).map((p) => [`${p.proto}/${p.hostPort}`, p]));
  const manualOnly = (data?.manual ?? []).filter((m) => !live.has(`${m.proto}/${m.hostPort}`));
  return (
    <div>
      <ErrorNote error={loadError} />
      <ListTable label="Forwarded ports" columns={['Host port', 'To', 'Source', 'State']}>
        {(data?.ports ?? []).map((p) => (
          <PortRow
            key={`${p.proto}/${p.hostPort}`}
            p={p}
            onRemove={p.source === 'manual' ? () => remove(p.hostPort, p.proto) : undefined}
            error={errorOf(`${p.proto}/${p.hostPort}`)}
          />
        ))}
        {manualOnly.map((m) => (
          <tr key={`m-${m.proto}/${m.hostPort}`} data-testid="port-row">
            <td>
              {m.hostPort}/{m.proto}
            </td>
            <td>guest port {m.guestPort}</td>
            <td>manual</td>
            <td className="muted">when the VM runs</td>
            <td className="row-actions">
              <RemoveButton label={`Remove the forward of host port ${m.hostPort}/${m.proto}`} onClick={() => remove(m.hostPort, m.proto)} />
              <ErrorNote error={errorOf(`${m.proto}/${m.hostPort}`)} />
            </td>
          </tr>
        ))}
        {data && data.ports.length + manualOnly.length === 0 && (
          <tr>
            <td colSpan={5} className="empty">
              Nothing is forwarded. Published container ports (<code>docker run -p 8080:80</code>) appear here by themselves.
            </td>
          </tr>
        )}
      </ListTable>
      <AddForward onAdded={setData} />
    </div>
  );
}

function PortRow({ p, onRemove, error }: { p: PortViewWire; onRemove?: () => void; error: CallError | null }) {
  const target = p.container ? `${p.container.name}:${p.container.port}` : `guest ${p.guestIp}:${p.guestPort}`;
  return (
    <tr data-testid="port-row">
      <td>
        {p.proto === 'tcp' ? (
          <a href={`http://localhost:${p.hostPort}`} target="_blank" rel="noreferrer" aria-label={`Open host port ${p.hostPort} in the browser`}>
            {p.hostPort}
          </a>
        ) : (
          p.hostPort
        )}
        /{p.proto}
        <div className="muted small">{p.hostIps.join(', ')}</div>
      </td>
      <td>{target}</td>
      <td>{p.source === 'docker' ? 'container' : p.source === 'guest' ? 'guest process' : 'manual'}</td>
      <td>
        <span className={`pill port-${p.state}`}>{p.state}</span>
        {p.error && <div className="small warn">{p.error}</div>}
        {p.holder && (
          <div className="small muted">
            held by {p.holder.command ?? 'a process'}
            {p.holder.pid ? ` (pid ${p.holder.pid})` : ''}
          </div>
        )}
      </td>
      <td className="row-actions">
        {onRemove && <RemoveButton label={`Remove the forward of host port ${p.hostPort}/${p.proto}`} onClick={onRemove} />}
        <ErrorNote error={error} />
      </td>
    </tr>
  );
}

function AddForward({ onAdded }: { onAdded: (r: Result<'ports.add'>) => void }) {
  const api = useApi();
  const id = useId();
  const [host, setHost] = useState('');
  const [guest, setGuest] = useState('');
  const [proto, setProto] = useState<'tcp' | 'udp'>('tcp');
  const [error, setError] = useState<CallError | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const hostPort = Number(host);
    const guestPort = Number(guest);
    setBusy(true);
    try {
      onAdded(await api.call('ports.add', { hostPort, guestPort, proto }));
      setHost('');
      setGuest('');
    } catch (err) {
      setError(CallError.from(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="card form-inline" onSubmit={(e) => void submit(e)} aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Add a manual forward</h2>
      <label htmlFor={`${id}-host`}>Host port</label>
      <input
        id={`${id}-host`}
        inputMode="numeric"
        value={host}
        onChange={(e) => setHost(e.target.value)}
        required
        aria-describedby={error ? `${id}-err` : undefined}
      />
      <label htmlFor={`${id}-guest`}>Guest port</label>
      <input id={`${id}-guest`} inputMode="numeric" value={guest} onChange={(e) => setGuest(e.target.value)} required />
      <label htmlFor={`${id}-proto`}>Protocol</label>
      <select id={`${id}-proto`} value={proto} onChange={(e) => setProto(e.target.value as 'tcp' | 'udp')}>
        <option value="tcp">TCP</option>
        <option value="udp">UDP</option>
      </select>
      <button type="submit" className="primary" disabled={busy}>
        Add forward
      </button>
      <ErrorNote error={error} id={`${id}-err`} />
    </form>
  );
}
