import type { Settings } from '../settings/schema.js';
import { readCaCertificates } from '../settings/ca-certificates.js';
import { shq } from '../../base/shell-quote.js';
import type { ClientProxies } from '../../base/docker-proxies.js';

/**
 * What the registry and proxy settings make of the guest's dockerd:
 * dockerd.env, which run-dockerd in the guest reads before it starts dockerd
 * (the proxies as dockerd's environment, the insecure registries as
 * `--insecure-registry` arguments; the image's own /etc/docker/daemon.json
 * stays as it is), and a bundle of extra CA certificates that dockerd trusts
 * beside the public ones. Both go on the config disk; with the settings at
 * their defaults neither exists and dockerd starts as before.
 */
export interface GuestDockerConfig {
  envFile?: string;
  caBundle?: string;
}

type RegistrySettings = Pick<Settings, 'insecureRegistries' | 'caCertificates' | 'httpProxy' | 'httpsProxy' | 'noProxy'>;

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * A proxy on the host's loopback is the host's, not the guest's: where the
 * driver reaches the host's loopback (`hostLoopback`, QEMU's 10.0.2.2), the
 * URL is pointed there, as host.docker.internal is.
 */
export function guestProxyUrl(url: string, hostLoopback: string | undefined): string {
  if (!url || !hostLoopback) return url;
  const u = new URL(url);
  if (!LOOPBACK_NAMES.has(u.hostname)) return url;
  u.hostname = hostLoopback;
  return u.toString().replace(/\/$/, '');
}

/** The config for one start; CA files are read now and a bad one throws INVALID_SETTINGS with a hint. */
export function guestDockerConfig(s: RegistrySettings, hostLoopback?: string): GuestDockerConfig {
  const lines: string[] = [];
  const proxy = (name: string, v: string) => {
    // Both spellings: Go reads the upper case, curl and others the lower.
    for (const n of [name, name.toLowerCase()]) lines.push(`export ${n}=${shq(v)}`);
  };
  if (s.httpProxy) proxy('HTTP_PROXY', guestProxyUrl(s.httpProxy, hostLoopback));
  if (s.httpsProxy) proxy('HTTPS_PROXY', guestProxyUrl(s.httpsProxy, hostLoopback));
  if (s.noProxy && (s.httpProxy || s.httpsProxy)) proxy('NO_PROXY', s.noProxy);
  if (s.insecureRegistries.length) lines.push(`set -- ${s.insecureRegistries.map((r) => `--insecure-registry ${shq(r)}`).join(' ')}`);
  const out: GuestDockerConfig = {};
  if (lines.length) out.envFile = lines.join('\n') + '\n';
  if (s.caCertificates.length) out.caBundle = readCaCertificates(s.caCertificates).pem;
  return out;
}

/**
 * The proxies containers and builds get through the docker CLI
 * (base/docker-proxies.ts): the same as dockerd's, as the VM reaches them,
 * since containers run there.
 */
export function clientProxies(s: RegistrySettings, hostLoopback?: string): ClientProxies {
  return { httpProxy: guestProxyUrl(s.httpProxy, hostLoopback), httpsProxy: guestProxyUrl(s.httpsProxy, hostLoopback), noProxy: s.noProxy };
}
