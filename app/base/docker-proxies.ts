import type { Logger } from 'pino';
import { readJsonIfExists } from './fs-util.js';
import { dockerConfigFile, writeDockerConfig } from './docker-context.js';

/**
 * The docker CLI's proxies for containers and builds (issue 17 item 4):
 * the CLI adds HTTP_PROXY, HTTPS_PROXY and NO_PROXY (both cases) to every
 * container it creates and every build it starts, from `proxies` in
 * $DOCKER_CONFIG/config.json, keyed by the daemon's address, else
 * "default" (docs.docker.com, "Use a proxy server with the Docker CLI").
 * Berth writes its own key only, the address of its instance's socket: the
 * user's "default" and every other daemon's entry stay as they are, and a
 * docker CLI pointed at another daemon sees nothing of Berth's.
 */
export interface ClientProxies {
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
}

type ProxyConfig = Record<string, ClientProxies>;

/**
 * Set the proxies for `host` (unix:///…/docker.sock), or with none given
 * remove Berth's entry; the rest of the file is kept as it was (its mode
 * too). Throws when config.json is not JSON (the file is not touched).
 */
export function syncDockerProxies(host: string, want: ClientProxies): 'set' | 'removed' | 'unchanged' {
  const cfg = ((readJsonIfExists(dockerConfigFile()) as Record<string, unknown> | undefined) ?? {}) as Record<string, unknown> & { proxies?: ProxyConfig };
  const entry: ClientProxies = {};
  if (want.httpProxy) entry.httpProxy = want.httpProxy;
  if (want.httpsProxy) entry.httpsProxy = want.httpsProxy;
  if (want.noProxy && (want.httpProxy || want.httpsProxy)) entry.noProxy = want.noProxy;
  const have = cfg.proxies?.[host];
  let outcome: 'set' | 'removed';
  if (Object.keys(entry).length) {
    if (JSON.stringify(have) === JSON.stringify(entry)) return 'unchanged';
    cfg.proxies = { ...(cfg.proxies ?? {}), [host]: entry };
    outcome = 'set';
  } else {
    if (!have) return 'unchanged';
    const rest = { ...cfg.proxies };
    delete rest[host];
    if (Object.keys(rest).length) cfg.proxies = rest;
    else delete cfg.proxies;
    outcome = 'removed';
  }
  writeDockerConfig(cfg);
  return outcome;
}

/** syncDockerProxies at a start: a config.json the CLI cannot read either is logged and left alone, never fatal. */
export function syncDockerProxiesOrWarn(host: string, want: ClientProxies, log: Pick<Logger, 'info' | 'warn'>): void {
  try {
    const outcome = syncDockerProxies(host, want);
    if (outcome !== 'unchanged') log.info({ host, outcome }, "the docker CLI's proxies for containers and builds");
  } catch (err) {
    log.warn({ err: (err as Error).message }, "could not write the docker CLI's proxies (config.json): containers and builds get none from Berth");
  }
}
