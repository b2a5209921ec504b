/**
 * The guest's listening sockets, from the text of /proc/net/{tcp,tcp6,udp,udp6}
 * (format: proc(5), "/proc/net/tcp"). Addresses are hex in host byte order
 * per 32-bit word: "0100007F:1F90" is 127.0.0.1:8080.
 */
export type Proto = 'tcp' | 'udp';

export interface ListeningSocket {
  proto: Proto;
  /** Dotted IPv4 or compressed IPv6 ("::", "::1", "::ffff:10.0.2.15"). */
  ip: string;
  port: number;
  family: 4 | 6;
}

const TCP_LISTEN = '0A';
const UDP_UNCONNECTED = '07';
/** Linux's default ip_local_port_range starts here: UDP sockets above it are clients. */
export const EPHEMERAL_START = 32768;

function hexIpv4(h: string): string {
  // One little-endian 32-bit word.
  const n = parseInt(h, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join('.');
}

function hexIpv6(h: string): string {
  // Four 32-bit words, each little-endian.
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = h.slice(w * 8, w * 8 + 8);
    for (let b = 3; b >= 0; b--) bytes.push(parseInt(word.slice(b * 2, b * 2 + 2), 16));
  }
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `::ffff:${bytes.slice(12).join('.')}`;
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Decode "ADDR:PORT" as found in the local_address column. */
export function decodeAddress(field: string): { ip: string; port: number; family: 4 | 6 } | undefined {
  const m = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/.exec(field);
  if (!m) return undefined;
  const family = m[1]!.length === 8 ? 4 : 6;
  return { ip: family === 4 ? hexIpv4(m[1]!) : hexIpv6(m[1]!), port: parseInt(m[2]!, 16), family };
}

/**
 * Sockets that accept traffic: TCP in LISTEN, UDP bound and unconnected
 * below the ephemeral range (above it they are some client's reply port).
 */
export function parseProcNet(proto: Proto, text: string): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const line of text.split('\n')) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 4 || !/^\d+:$/.test(cols[0]!)) continue;
    const st = cols[3];
    if (proto === 'tcp' ? st !== TCP_LISTEN : st !== UDP_UNCONNECTED) continue;
    const a = decodeAddress(cols[1]!);
    if (!a || a.port === 0) continue;
    if (proto === 'udp' && a.port >= EPHEMERAL_START) continue;
    out.push({ proto, ...a });
  }
  return out;
}

/** True for 127.0.0.0/8, ::1 and their v4-mapped forms. */
export function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip.startsWith('::ffff:127.');
}

export function isWildcard(ip: string): boolean {
  return ip === '0.0.0.0' || ip === '::';
}
