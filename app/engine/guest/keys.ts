import crypto from 'node:crypto';
import fs from 'node:fs';
import ssh2 from 'ssh2';
import { ensurePrivateDir, writeFileAtomic } from '../fs-util.js';

const { utils } = ssh2;

export interface GuestKeys {
  /** The engine's client key (OpenSSH private key text). */
  clientPrivate: string;
  clientPublic: string;
  /** The guest sshd's host key: generated here so it is pinned before first boot. */
  hostPrivate: string;
  hostPublic: string;
}

function ensurePair(file: string, comment: string): { priv: string; pub: string } {
  const pubFile = `${file}.pub`;
  if (fs.existsSync(file) && fs.existsSync(pubFile)) {
    return { priv: fs.readFileSync(file, 'utf8'), pub: fs.readFileSync(pubFile, 'utf8').trim() };
  }
  const pair = utils.generateKeyPairSync('ed25519', { comment });
  writeFileAtomic(file, pair.private, 0o600);
  writeFileAtomic(pubFile, pair.public.trim() + '\n', 0o600);
  return { priv: pair.private, pub: pair.public.trim() };
}

/** ed25519 keys of an instance, generated on first start, owner-only. */
export function ensureGuestKeys(keysDir: string, clientKey: string, hostKey: string, instance: string): GuestKeys {
  ensurePrivateDir(keysDir);
  const client = ensurePair(clientKey, `berth-engine@${instance}`);
  const host = ensurePair(hostKey, `berth-guest@${instance}`);
  return { clientPrivate: client.priv, clientPublic: client.pub, hostPrivate: host.priv, hostPublic: host.pub };
}

/** The SSH wire-format blob of a public key, as sshd presents it. */
export function publicKeyBlob(publicKey: string): Buffer {
  const parsed = utils.parseKey(publicKey);
  if (parsed instanceof Error) throw parsed;
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  return key.getPublicSSH();
}

/** "SHA256:..." as ssh-keygen -l prints it. */
export function fingerprint(publicKey: string): string {
  const hash = crypto.createHash('sha256').update(publicKeyBlob(publicKey)).digest('base64');
  return `SHA256:${hash.replace(/=+$/, '')}`;
}

