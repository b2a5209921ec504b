import net from 'node:net';
import path from 'node:path';
import { z } from 'zod';

/**
 * The settings that reach the guest's dockerd for registries (issue 17):
 * registries it may reach over plain HTTP, CA certificates it trusts beyond
 * the public ones (a corporate CA, a registry's own), and the proxies its
 * pulls and pushes go through. Checked here as text; the CA files are read
 * when the setting changes (settings/ca-certificates.ts) and at every start.
 */

const HOST_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

/** A host name (labels of letters, digits and hyphens) or an IP address. */
function isHost(h: string): boolean {
  if (net.isIP(h.replace(/^\[(.*)\]$/, '$1'))) return true;
  return h.length <= 253 && h.split('.').every((l) => HOST_LABEL.test(l));
}

/**
 * What dockerd's insecure-registries takes: host:port (or a host alone,
 * port 443/80) or an address range in CIDR form. Not a URL: no scheme, no path.
 */
export function registryHostProblem(v: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v))
    return `"${v}" must be host:port without a scheme (write ${v.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/.*$/, '')})`;
  const cidr = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(v);
  if (cidr) {
    const family = net.isIP(cidr[1]!);
    return family && Number(cidr[2]) <= (family === 4 ? 32 : 128) ? undefined : `"${v}" is not an address range (CIDR such as 10.0.0.0/8)`;
  }
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:/\s]+)(?::(\d{1,5}))?$/.exec(v);
  const port = m?.[2] === undefined ? undefined : Number(m[2]);
  if (!m || !isHost(m[1]!) || (port !== undefined && (port < 1 || port > 65535)))
    return `"${v}" is not host:port (such as host.docker.internal:5000 or registry.example.com:5000)`;
  return undefined;
}

const RegistryHost = z
  .string()
  .max(300)
  .superRefine((v, ctx) => {
    const why = registryHostProblem(v);
    if (why) ctx.addIssue({ code: 'custom', message: why });
  });

const PROXY_SCHEMES = ['http:', 'https:', 'socks5:'];

/** A proxy as dockerd takes it: http://, https:// or socks5:// URL of a host (and port); '' for none. */
export function proxyUrlProblem(v: string): string | undefined {
  if (v === '') return undefined;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return `"${v}" is not a URL (write it as http://proxy.example.com:3128)`;
  }
  if (!PROXY_SCHEMES.includes(u.protocol)) return `"${v}" must start with http://, https:// or socks5://`;
  if (!u.hostname) return `"${v}" names no host`;
  if ((u.pathname && u.pathname !== '/') || u.search || u.hash) return `"${v}" must be only scheme, host and port (no path)`;
  return undefined;
}

const ProxyUrl = z
  .string()
  .max(2048)
  .superRefine((v, ctx) => {
    const why = proxyUrlProblem(v);
    if (why) ctx.addIssue({ code: 'custom', message: why });
  });

/** NO_PROXY: hosts, .domains, *.domains, addresses, CIDR ranges, host:port, comma-separated; '' for none. */
export function noProxyProblem(v: string): string | undefined {
  const bad = v
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '' && !/^[A-Za-z0-9.*:/[\]_-]+$/.test(x));
  return bad.length
    ? `${bad.map((x) => JSON.stringify(x)).join(', ')} cannot be in noProxy: hosts, .domains, addresses or CIDR ranges, comma-separated`
    : undefined;
}

const NoProxy = z
  .string()
  .max(4096)
  .superRefine((v, ctx) => {
    const why = noProxyProblem(v);
    if (why) ctx.addIssue({ code: 'custom', message: why });
  });

const CaPath = z
  .string()
  .min(1)
  .refine((p) => path.isAbsolute(p), { message: 'must be an absolute path (a PEM file, or a folder of them)' })
  .refine((p) => !/[\0\n]/.test(p), { message: 'must not contain a NUL or newline' });

/** The registry and proxy keys of SettingsSchema. */
export const registrySettingsShape = {
  insecureRegistries: z
    .array(RegistryHost)
    .max(64)
    .default([])
    .refine((xs) => new Set(xs).size === xs.length, { message: 'lists a registry twice' })
    .describe('registries dockerd reaches over plain HTTP, host:port (comma-separated)'),
  caCertificates: z
    .array(CaPath)
    .max(64)
    .default([])
    .describe("CA certificates dockerd trusts for registries: PEM files or folders of them (comma-separated); the host's own CAs are not taken"),
  httpProxy: ProxyUrl.default('').describe('proxy for http:// requests of dockerd (pulls, pushes), e.g. http://proxy:3128; empty for none'),
  httpsProxy: ProxyUrl.default('').describe('proxy for https:// requests of dockerd; empty for none'),
  noProxy: NoProxy.default('').describe('hosts dockerd reaches without the proxy, comma-separated'),
};

/** The patch's types for them (the full rules are checked on the merged settings). */
export const registryPatchShape = {
  insecureRegistries: z.array(z.string()),
  caCertificates: z.array(z.string()),
  httpProxy: z.string(),
  httpsProxy: z.string(),
  noProxy: z.string(),
};

/** They reach dockerd when the VM starts. */
export const REGISTRY_RESTART_KEYS = ['insecureRegistries', 'caCertificates', 'httpProxy', 'httpsProxy', 'noProxy'] as const;
