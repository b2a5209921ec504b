import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { BerthError } from '../contract/errors.js';
import { readJsonIfExists, writeFileAtomic } from './fs-util.js';

/**
 * The docker CLI's contexts, written the way `docker context create` writes
 * them ($DOCKER_CONFIG/contexts/meta/<sha256 of the name>/meta.json), so no
 * docker CLI is needed. Berth only touches contexts it created (their
 * description says so) and never changes another one.
 */
const MARK = 'Berth';

export function dockerConfigDir(): string {
  return process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker');
}

/** The docker CLI's config.json. */
export function dockerConfigFile(): string {
  return path.join(dockerConfigDir(), 'config.json');
}

/** Write the docker CLI's config.json whole, keeping the mode it had (0600 for a new one, in a 0700 folder). */
export function writeDockerConfig(cfg: Record<string, unknown>): void {
  const file = dockerConfigFile();
  let mode = 0o600;
  try {
    mode = fs.statSync(file).mode & 0o777;
  } catch {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  }
  writeFileAtomic(file, JSON.stringify(cfg, null, '\t') + '\n', mode);
}

export function contextName(instance: string): string {
  return instance === 'default' ? 'berth' : `berth-${instance}`;
}

/**
 * DOCKER_HOST for the socket: unix:///path, or on Windows npipe:// and the
 * pipe name with forward slashes (\\.\pipe\berth_docker ->
 * npipe:////./pipe/berth_docker), the form the docker CLI's own default
 * npipe:////./pipe/docker_engine has.
 */
export function dockerHostUrl(socketPath: string, platform: NodeJS.Platform = process.platform): string {
  return platform === 'win32' ? `npipe://${socketPath.replace(/\\/g, '/')}` : `unix://${socketPath}`;
}

function metaFile(name: string): string {
  const id = crypto.createHash('sha256').update(name).digest('hex');
  return path.join(dockerConfigDir(), 'contexts', 'meta', id, 'meta.json');
}

interface ContextMeta {
  Name: string;
  Metadata?: { Description?: string };
  Endpoints?: { docker?: { Host?: string; SkipTLSVerify?: boolean } };
}

export interface ContextResult {
  name: string;
  /** created | updated | unchanged | conflict (someone else's context has the name) */
  outcome: 'created' | 'updated' | 'unchanged' | 'conflict';
}

/** ensureDockerContext at a start: a failure or a context that is not ours is logged, never fatal. */
export function ensureDockerContextOrWarn(instance: string, socketPath: string, log: Pick<Logger, 'warn'>): ContextResult | undefined {
  try {
    const c = ensureDockerContext(instance, socketPath);
    if (c.outcome === 'conflict') log.warn({ context: c.name }, 'a docker context with our name exists and is not ours; left alone');
    return c;
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not write the docker context');
    return undefined;
  }
}

/** Create or refresh Berth's context for an instance; another owner's context wins. */
export function ensureDockerContext(instance: string, socketPath: string, platform: NodeJS.Platform = process.platform): ContextResult {
  const name = contextName(instance);
  const file = metaFile(name);
  const host = dockerHostUrl(socketPath, platform);
  let existing: ContextMeta | undefined;
  try {
    existing = readJsonIfExists(file) as ContextMeta | undefined;
  } catch {
    return { name, outcome: 'conflict' };
  }
  if (existing && !existing.Metadata?.Description?.startsWith(MARK)) return { name, outcome: 'conflict' };
  if (existing?.Endpoints?.docker?.Host === host) return { name, outcome: 'unchanged' };
  const meta: ContextMeta = {
    Name: name,
    Metadata: { Description: `${MARK} (instance ${instance})` },
    Endpoints: { docker: { Host: host, SkipTLSVerify: false } },
  };
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  writeFileAtomic(file, JSON.stringify(meta), 0o644);
  return { name, outcome: existing ? 'updated' : 'created' };
}

/** Make Berth's context the docker CLI's current one (`berth context use`). */
export function useDockerContext(instance: string): string {
  const name = contextName(instance);
  const meta = readJsonIfExists(metaFile(name)) as ContextMeta | undefined;
  if (!meta) {
    throw new BerthError('DOCKER_CONTEXT_CONFLICT', `there is no docker context "${name}" yet`, 'Run `berth start` once; it creates the context.');
  }
  if (!meta.Metadata?.Description?.startsWith(MARK)) {
    throw new BerthError(
      'DOCKER_CONTEXT_CONFLICT',
      `the docker context "${name}" was not created by Berth`,
      `Berth leaves it alone. Remove or rename it (\`docker context rm ${name}\`) and run \`berth start\` again.`,
    );
  }
  const cfgFile = dockerConfigFile();
  let cfg: Record<string, unknown> = {};
  try {
    cfg = (readJsonIfExists(cfgFile) as Record<string, unknown> | undefined) ?? {};
  } catch {
    throw new BerthError('DOCKER_CONTEXT_CONFLICT', `${cfgFile} is not valid JSON`, 'Fix the docker CLI config by hand; Berth did not change it.');
  }
  cfg.currentContext = name;
  writeDockerConfig(cfg);
  return name;
}

/**
 * Remove the instance's context when the instance goes (`berth delete`):
 * only one Berth made and only while it points at this instance's socket
 * (another BERTH_HOME's instance of the same name keeps its own). When it
 * was the docker CLI's current context, the CLI goes back to its default
 * one (a current context that does not exist breaks every docker command).
 */
export function removeDockerContext(
  instance: string,
  socketPath: string,
  platform: NodeJS.Platform = process.platform,
): { name: string; outcome: 'removed' | 'absent' | 'not-ours' | 'another-socket'; wasCurrent?: boolean } {
  const name = contextName(instance);
  const file = metaFile(name);
  let meta: ContextMeta | undefined;
  try {
    meta = readJsonIfExists(file) as ContextMeta | undefined;
  } catch {
    return { name, outcome: 'not-ours' };
  }
  if (!meta) return { name, outcome: 'absent' };
  if (!meta.Metadata?.Description?.startsWith(MARK)) return { name, outcome: 'not-ours' };
  if (meta.Endpoints?.docker?.Host !== dockerHostUrl(socketPath, platform)) return { name, outcome: 'another-socket' };
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  let wasCurrent = false;
  try {
    const cfg = readJsonIfExists(dockerConfigFile()) as Record<string, unknown> | undefined;
    if (cfg?.currentContext === name) {
      delete cfg.currentContext;
      writeDockerConfig(cfg);
      wasCurrent = true;
    }
  } catch {
    /* a config the docker CLI cannot read either: left as it is */
  }
  return { name, outcome: 'removed', wasCurrent };
}
