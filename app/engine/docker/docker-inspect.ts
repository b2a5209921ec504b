import type { ContainerDetails } from '../../contract/contract-docker.js';
import { compareText } from '../../base/text-order.js';

/**
 * `GET /containers/{id}/json` turned into the contract's ContainerDetails.
 * The answer comes from the guest, so every field is checked for its type
 * and anything odd is left out rather than trusted; long lists are cut.
 */

const MAX_ITEMS = 500;
const MAX_TEXT = 16 * 1024;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v.slice(0, MAX_TEXT) : undefined);
const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v.slice(0, MAX_ITEMS) : []);

function pairs(entries: Iterable<[string, unknown]>): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  for (const [name, value] of entries) {
    const v = str(value);
    if (v !== undefined && out.length < MAX_ITEMS) out.push({ name: name.slice(0, MAX_TEXT), value: v });
  }
  return out.sort((a, b) => compareText(a.name, b.name));
}

/** "KEY=value" lines as pairs (a line without "=" is a name with an empty value). */
function envPairs(env: unknown): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  for (const line of arr(env)) {
    const s = str(line);
    if (s === undefined) continue;
    const eq = s.indexOf('=');
    out.push(eq < 0 ? { name: s, value: '' } : { name: s.slice(0, eq), value: s.slice(eq + 1) });
  }
  return out;
}

function portList(ports: unknown): ContainerDetails['ports'] {
  const out: ContainerDetails['ports'] = [];
  const seen = new Set<string>();
  for (const [spec, bindings] of Object.entries(obj(ports)).slice(0, MAX_ITEMS)) {
    const m = /^(\d{1,5})\/(tcp|udp|sctp)$/.exec(spec);
    if (!m) continue;
    const privatePort = Number(m[1]);
    const proto = m[2] as 'tcp' | 'udp' | 'sctp';
    const bound = arr(bindings).map(obj);
    if (!bound.length) out.push({ privatePort, proto });
    for (const b of bound) {
      const publicPort = Number(str(b.HostPort));
      if (!Number.isInteger(publicPort) || publicPort < 1 || publicPort > 65535) continue;
      const key = `${privatePort}/${proto}/${publicPort}`;
      if (seen.has(key)) continue; // once per address family
      seen.add(key);
      const p: ContainerDetails['ports'][number] = { privatePort, proto, publicPort };
      const ip = str(b.HostIp);
      if (ip) p.hostIp = ip;
      if (proto === 'tcp') p.url = `http://localhost:${publicPort}`;
      out.push(p);
    }
  }
  return out.sort((a, b) => a.privatePort - b.privatePort || (a.publicPort ?? 0) - (b.publicPort ?? 0));
}

export function containerDetails(raw: unknown): ContainerDetails {
  const c = obj(raw);
  const config = obj(c.Config);
  const state = obj(c.State);
  const host = obj(c.HostConfig);
  const net = obj(c.NetworkSettings);
  const labels = pairs(Object.entries(obj(config.Labels)));
  const restart = str(obj(host.RestartPolicy).Name);
  const d: ContainerDetails = {
    id: str(c.Id) ?? '',
    name: (str(c.Name) ?? '').replace(/^\//, ''),
    image: str(config.Image) ?? str(c.Image) ?? '',
    state: str(state.Status) ?? 'unknown',
    created: str(c.Created) ?? '',
    command: [str(c.Path), ...arr(c.Args).map(str)].filter((x): x is string => !!x),
    tty: config.Tty === true,
    env: envPairs(config.Env),
    labels,
    mounts: arr(c.Mounts)
      .map(obj)
      .map((m) => ({
        type: str(m.Type) ?? 'bind',
        source: str(m.Type) === 'volume' ? (str(m.Name) ?? str(m.Source) ?? '') : (str(m.Source) ?? ''),
        destination: str(m.Destination) ?? '',
        readOnly: m.RW === false,
      })),
    ports: portList(net.Ports),
    networks: Object.entries(obj(net.Networks))
      .slice(0, MAX_ITEMS)
      .map(([name, n]) => {
        const ip = str(obj(n).IPAddress);
        return ip ? { name, ipAddress: ip } : { name };
      }),
  };
  const wd = str(config.WorkingDir);
  if (wd) d.workingDir = wd;
  if (restart && restart !== 'no') d.restartPolicy = restart;
  const project = labels.find((l) => l.name === 'com.docker.compose.project')?.value;
  if (project) d.project = project;
  return d;
}
