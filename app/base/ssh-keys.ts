import crypto from 'node:crypto';
import fs from 'node:fs';
import { ensurePrivateDir, writeFileAtomic } from './fs-util.js';
import { generateKeyPairSync, parseKey } from './ssh2-parts.js';

export interface GuestKeys {
  /** The engine's client key (OpenSSH private key text). */
  clientPrivate: string;
  clientPublic: string;
  /** The guest sshd's host key: generated here so it is pinned before first boot. */
  hostPrivate: string;
  hostPublic: string;
}

/** Both halves parse as OpenSSH keys. */
function parses(priv: string, pub: string): boolean {
  return !(parseKey(priv) instanceof Error) && !(parseKey(pub) instanceof Error);
}

/**
 * ssh2's generateKeyPairSync('ed25519') writes about one key in 170 with its
 * 32-byte public half cut to 31 bytes when it starts with a zero byte
 * (`AAAAH...` instead of `AAAAI...`); ssh2 itself then refuses that key as
 * "Malformed OpenSSH public key". Such a pair is made again, and one already
 * on disk is replaced (the guest learns both keys from the config disk at
 * every start, so nothing else holds them).
 */
function ensurePair(file: string, comment: string): { priv: string; pub: string } {
  const pubFile = `${file}.pub`;
  if (fs.existsSync(file) && fs.existsSync(pubFile)) {
    const priv = fs.readFileSync(file, 'utf8');
    const pub = fs.readFileSync(pubFile, 'utf8').trim();
    if (parses(priv, pub)) return { priv, pub };
  }
  const pair = newEd25519Pair(comment);
  writeFileAtomic(file, pair.private, 0o600);
  writeFileAtomic(pubFile, pair.public + '\n', 0o600);
  return { priv: pair.private, pub: pair.public };
}

/** An ed25519 pair that ssh2 can parse back (see ensurePair); `public` without a trailing newline. */
export function newEd25519Pair(comment = ''): { private: string; public: string } {
  for (let i = 0; ; i++) {
    const pair = generateKeyPairSync('ed25519', { comment });
    if (parses(pair.private, pair.public.trim())) return { private: pair.private, public: pair.public.trim() };
    if (i >= 20) throw new Error('ssh2 keeps generating ed25519 keys it cannot parse');
  }
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
  const parsed = parseKey(publicKey);
  if (parsed instanceof Error) throw parsed;
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  return key.getPublicSSH();
}

/** "SHA256:..." as ssh-keygen -l prints it. */
export function fingerprint(publicKey: string): string {
  const hash = crypto.createHash('sha256').update(publicKeyBlob(publicKey)).digest('base64');
  return `SHA256:${hash.replace(/=+$/, '')}`;
}
