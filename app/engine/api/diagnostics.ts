import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { zipSync, strToU8 } from 'fflate';
import { tailFile, writeFileAtomic } from '../../base/fs-util.js';
import type { InstancePaths } from '../../base/paths.js';
import { DockerApi } from '../docker/docker-api.js';
import { BERTH_VERSION } from '../../base/version.js';
import { tuningInEffect, type Tuning } from '../../base/tuning.js';
import { BerthError } from '../../contract/errors.js';

/**
 * `diagnostics.bundle`: one zip to attach to a bug report: the engine and
 * serial logs, settings, the engine's status, ports and what the caller adds
 * (guest log, Docker info), with private keys, tokens and public keys
 * removed. Saved owner-only in the instance folder (the last five are
 * kept) and returned as base64 so a browser can download it.
 */

const KEEP_BUNDLES = 5;

/** The process's own environment worth a bug report; the BERTH_* overrides come from the tuning. */
const PROCESS_ENV = ['BERTH_HOME', 'BERTH_CACHE', 'BERTH_INSTANCE', 'DOCKER_HOST'];

export interface DiagnosticsInput {
  paths: InstancePaths;
  /** The environment overrides in effect (or why they were refused): listed in system.json. */
  tuning?: Tuning | BerthError;
  /** Extra files: name -> JSON value or text (status.json, ports.json, guest.log...). */
  extra?: Record<string, unknown>;
}

export interface DiagnosticsBundle {
  path: string;
  fileName: string;
  bytes: number;
  base64: string;
  files: string[];
}

/** Names of fields whose values are secrets (also as a suffix: access_token, X-Registry-Auth). */
const SECRET_KEY = '(?:token|password|passwd|secret|auth|authorization|api[_-]?key)';
/** HTTP authentication schemes that come before the credentials in an Authorization value. */
const AUTH_SCHEME = '(?:Bearer|Basic|Digest|Token|Negotiate|NTLM|AWS4-HMAC-SHA256)';

/** Remove what must never leave the machine: private keys, tokens, key material. */
export function redact(text: string, secrets: string[] = []): string {
  let out = text;
  for (const s of secrets) if (s.length >= 8) out = out.split(s).join('<redacted>');
  return (
    out
      .replace(/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g, '<private key redacted>')
      // A log tail can start inside a key: an END with no BEGIN before it
      // takes everything from the start of the text with it.
      .replace(/^[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----/, (m) => (m.includes('<private key redacted>') ? m : '<private key redacted>'))
      .replace(/\b(ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp\d+)\s+AAAA[A-Za-z0-9+/=]+/g, '$1 <key redacted>')
      // JSON logged inside a JSON string: \"token\":\"...\" (any depth of escaping). The value
      // ends at the first quote escaped exactly like the opening one, not at a deeper one.
      .replace(new RegExp(`(\\\\+)"([\\w-]*${SECRET_KEY})\\1"(\\s*:\\s*)\\1"[\\s\\S]*?(?<!\\\\)\\1"`, 'gi'), '$1"$2$1"$3$1"<redacted>$1"')
      // key: value, key=value, "key": "value"; an Authorization value with its scheme (Bearer, Basic...).
      .replace(new RegExp(`("?${SECRET_KEY}"?\\s*[:=]\\s*)("[^"]*"|(?:${AUTH_SCHEME}\\s+)?[^\\s,}&]+)`, 'gi'), '$1<redacted>')
      .replace(/\b(Bearer\s+)[A-Za-z0-9._~+/-]{8,}=*/g, '$1<redacted>')
      .replace(/([?&#]token=)[^&\s"']+/gi, '$1<redacted>')
  );
}

function readSecrets(paths: InstancePaths): string[] {
  const out: string[] = [];
  try {
    const t = fs.readFileSync(paths.token, 'utf8').trim();
    if (t) out.push(t);
  } catch {
    /* no engine */
  }
  return out;
}

function tailBytes(file: string, maxBytes: number): string | undefined {
  if (!fs.existsSync(file)) return undefined;
  return tailFile(file, Number.MAX_SAFE_INTEGER, maxBytes).join('\n') + '\n';
}

export function buildDiagnostics(input: DiagnosticsInput): DiagnosticsBundle {
  const { paths } = input;
  const secrets = readSecrets(paths);
  const files: Record<string, string> = {};
  const add = (name: string, text: string | undefined) => {
    if (text !== undefined) files[name] = redact(text, secrets);
  };
  add('engine.log', tailBytes(paths.engineLog, 4 << 20));
  add('engine.log.1', tailBytes(`${paths.engineLog}.1`, 1 << 20));
  add('serial.log', tailBytes(paths.serialLog, 1 << 20));
  add('serial.log.1', tailBytes(`${paths.serialLog}.1`, 1 << 20));
  add('daemon.out', tailBytes(paths.daemonOut, 256 << 10));
  for (const f of [paths.settings, paths.state]) {
    try {
      add(path.basename(f), fs.readFileSync(f, 'utf8'));
    } catch {
      /* absent */
    }
  }
  add(
    'system.json',
    JSON.stringify(
      {
        berth: BERTH_VERSION,
        node: process.version,
        platform: process.platform,
        arch: process.arch,
        release: os.release(),
        cpus: os.cpus().length,
        totalMemMiB: Math.round(os.totalmem() / 2 ** 20),
        freeMemMiB: Math.round(os.freemem() / 2 ** 20),
        uptimeSeconds: Math.round(os.uptime()),
        instance: paths.name,
        env: Object.fromEntries(PROCESS_ENV.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]])),
        ...(input.tuning ? { overrides: input.tuning instanceof BerthError ? { refused: input.tuning.message } : tuningInEffect(input.tuning) } : {}),
        createdAt: new Date().toISOString(),
      },
      null,
      2,
    ),
  );
  for (const [name, value] of Object.entries(input.extra ?? {})) {
    add(name, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  }
  const zip = Buffer.from(zipSync(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, strToU8(v)])), { level: 6 }));
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
  const fileName = `berth-diagnostics-${paths.name}-${stamp}.zip`;
  const out = path.join(paths.dir, fileName);
  fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(out, zip, 0o600);
  pruneOld(paths.dir, paths.name);
  return { path: out, fileName, bytes: zip.length, base64: zip.toString('base64'), files: Object.keys(files) };
}

function pruneOld(dir: string, name: string): void {
  const prefix = `berth-diagnostics-${name}-`;
  const all = fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.zip'))
    .sort();
  for (const f of all.slice(0, Math.max(0, all.length - KEEP_BUNDLES))) fs.rmSync(path.join(dir, f), { force: true });
}

/** What a running engine adds to the bundle: its status, ports, the guest's log and Docker's info. */
export async function engineExtras(
  engine: {
    status(): unknown;
    edits: { portsList(): unknown };
    guestLogs(lines: number): Promise<string[]>;
    sm: { state: string };
  },
  dockerSocket: string,
): Promise<Record<string, unknown>> {
  const extra: Record<string, unknown> = { 'status.json': engine.status() };
  try {
    extra['ports.json'] = engine.edits.portsList();
  } catch (err) {
    extra['ports.json'] = { error: (err as Error).message };
  }
  if (engine.sm.state === 'running') {
    extra['guest.log'] = await engine
      .guestLogs(2000)
      .then((l) => l.join('\n') + '\n')
      .catch((err: Error) => `cannot read the guest log: ${err.message}\n`);
    extra['docker-info.json'] = await new DockerApi(dockerSocket).request('GET', '/info', undefined, 10_000).catch((err: Error) => ({ error: err.message }));
  }
  return extra;
}
