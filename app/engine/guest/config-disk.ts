import fs from 'node:fs';
import path from 'node:path';
import { ensurePrivateDir, writeFileAtomic } from '../../base/fs-util.js';
import { ustar } from './ustar.js';

/**
 * The config disk: a plain tar archive attached read-only as a virtio disk
 * with serial "berth-cfg". The guest's init untars it once (only root can
 * read the device): ssh keys and a few shell variables. It works the same
 * on every hypervisor, unlike fw_cfg or cloud-init seeds.
 */
export interface ConfigDiskInput {
  authorizedKeys: string;
  hostPrivateKey: string;
  hostPublicKey: string;
  env: Record<string, string>;
  /** dockerd's extra configuration (run-dockerd): dockerd.env, a bundle of CA certificates. */
  docker?: { envFile?: string; caBundle?: string };
}

const SAFE_VALUE = /^[A-Za-z0-9_./:@,+=-]*$/;

export function renderEnv(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => {
      if (!/^BERTH_[A-Z0-9_]+$/.test(k)) throw new Error(`bad config key ${k}`);
      if (!SAFE_VALUE.test(v)) throw new Error(`bad config value for ${k}`);
      return `${k}=${v}\n`;
    })
    .join('');
}

export function writeConfigDisk(stagingDir: string, diskFile: string, input: ConfigDiskInput): void {
  ensurePrivateDir(stagingDir);
  const files: Record<string, string> = {
    authorized_keys: input.authorizedKeys.trim() + '\n',
    ssh_host_ed25519_key: input.hostPrivateKey,
    'ssh_host_ed25519_key.pub': input.hostPublicKey.trim() + '\n',
    'config.env': renderEnv(input.env),
    ...(input.docker?.envFile ? { 'dockerd.env': input.docker.envFile } : {}),
    ...(input.docker?.caBundle ? { 'ca-certificates.crt': input.docker.caBundle } : {}),
  };
  // A file of an earlier start that this one does not write must not linger in the staging folder.
  for (const old of ['dockerd.env', 'ca-certificates.crt']) if (!(old in files)) fs.rmSync(path.join(stagingDir, old), { force: true });
  for (const [name, content] of Object.entries(files)) writeFileAtomic(path.join(stagingDir, name), content, 0o600);
  writeFileAtomic(diskFile, ustar(Object.entries(files).map(([name, content]) => ({ name, content }))), 0o600);
}
