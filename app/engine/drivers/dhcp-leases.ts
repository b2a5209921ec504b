import { BerthError } from '../../contract/errors.js';

/**
 * macOS's DHCP leases (bootpd, /var/db/dhcpd_leases): where a vfkit guest on
 * the NAT network finds its address, matched by the MAC Berth gave it.
 */
export const DHCP_LEASES_FILE = '/var/db/dhcpd_leases';

/** A MAC as aa:bb:cc:dd:ee:ff; anything else is VM_SPEC_UNSUPPORTED. */
export function normalizeMacColons(mac: string): string {
  const parts = mac.toLowerCase().split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-f]{1,2}$/.test(p))) {
    throw new BerthError('VM_SPEC_UNSUPPORTED', `"${mac}" is not a MAC address`, 'Use six hex pairs, for example 52:54:00:12:34:56.');
  }
  return parts.map((p) => p.padStart(2, '0')).join(':');
}

/** bootpd writes MACs without leading zeros per octet ("52:54:0:a:b:c"). */
export function leaseMac(mac: string): string {
  return normalizeMacColons(mac)
    .split(':')
    .map((p) => p.replace(/^0(?=[0-9a-f])/, ''))
    .join(':');
}

export interface DhcpLease {
  name?: string;
  ip: string;
  /** As bootpd wrote it, minus the "1," hardware type. */
  hwAddress: string;
  /** Expiry, seconds since the epoch. */
  lease: number;
}

/**
 * /var/db/dhcpd_leases (macOS bootpd): `{ key=value ... }` blocks with
 * name, ip_address, hw_address=1,<mac>, identifier and lease=0x<hex expiry>.
 */
export function parseDhcpLeases(text: string): DhcpLease[] {
  const leases: DhcpLease[] = [];
  for (const block of text.split('{').slice(1)) {
    const body = block.split('}')[0] ?? '';
    const kv = new Map<string, string>();
    for (const line of body.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) kv.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
    }
    const ip = kv.get('ip_address');
    const hw = kv.get('hw_address');
    if (!ip || !hw) continue;
    leases.push({
      name: kv.get('name'),
      ip,
      hwAddress: hw.replace(/^\d+,/, '').toLowerCase(),
      lease: Number.parseInt(kv.get('lease') ?? '0', 16) || 0,
    });
  }
  return leases;
}

/** The address bootpd gave this MAC most recently, if any. */
export function leaseIpFor(text: string, mac: string): string | undefined {
  const want = leaseMac(mac);
  const mine = parseDhcpLeases(text).filter((l) => {
    try {
      return leaseMac(l.hwAddress) === want;
    } catch {
      return false;
    }
  });
  mine.sort((a, b) => b.lease - a.lease);
  return mine[0]?.ip;
}
