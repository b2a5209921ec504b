/**
 * Where a synced folder lives, and which folders may be synced.
 *
 * A synced folder is a folder inside a shared folder. Its guest copy sits
 * on the guest's data disk under /var/lib/berth/sync/ID/tree (it survives
 * VM restarts) and is bind-mounted in the guest at the folder's usual guest
 * path, over the share's sshfs mount, so `docker run -v "$PWD":/src` from
 * inside it gets the guest copy at native disk speed without the user
 * changing anything.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { shWord } from '../../base/shell-quote.js';
import { BerthError } from '../../contract/errors.js';

/** Where sync mode keeps its guest copies (the data disk; see rc.sysinit). */
export const GUEST_SYNC_ROOT = '/var/lib/berth/sync';

/** Names the sync uses for its own temporary files; never synced. */
export const SYNC_TEMP_PREFIX = '.berth-sync-';

export interface ShareLike {
  hostPath: string;
  guestPath?: string;
  readOnly?: boolean;
}

/** A stable short id for a synced host folder (names its guest copy and state file). */
export function syncId(hostPath: string): string {
  return crypto.createHash('sha256').update(path.resolve(hostPath)).digest('hex').slice(0, 16);
}

export function guestSyncDirs(id: string, root = GUEST_SYNC_ROOT): { base: string; tree: string; stage: string; token: string } {
  const base = `${root}/${id}`;
  return { base, tree: `${base}/tree`, stage: `${base}/stage`, token: `${base}/token` };
}

/** `inner` equals `outer` or lies inside it (host paths, this OS's rules). */
export function within(inner: string, outer: string, p: typeof path = path): boolean {
  const rel = p.relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !p.isAbsolute(rel));
}

/** The share a host folder lies in (the innermost one). */
export function shareOf<S extends ShareLike>(hostPath: string, shares: S[], p: typeof path = path): S | undefined {
  let best: S | undefined;
  for (const s of shares) {
    if (within(hostPath, s.hostPath, p) && (!best || s.hostPath.length > best.hostPath.length)) best = s;
  }
  return best;
}

/** The folder's path in the guest: its share's guest path plus the rest. */
export function syncGuestPath(hostPath: string, shares: ShareLike[], p: typeof path = path): string | undefined {
  const s = shareOf(hostPath, shares, p);
  if (!s) return undefined;
  const rel = p.relative(s.hostPath, hostPath).split(p.sep).filter(Boolean);
  const base = (s.guestPath ?? s.hostPath.split(p.sep).join('/')).replace(/\/+$/, '');
  return [base, ...rel].join('/') || '/';
}

/**
 * Why `hostPath` cannot be synced given the shares and the other synced
 * folders, with what to do instead; undefined when it can.
 */
export function syncPathProblem(hostPath: string, shares: ShareLike[], others: string[], p: typeof path = path): { message: string; hint: string } | undefined {
  if (!p.isAbsolute(hostPath))
    return { message: `${hostPath} is not an absolute path`, hint: 'Give the full path of the folder (the CLI resolves relative ones for you).' };
  if (hostPath.includes('\0') || hostPath.includes('\n')) return { message: 'the path contains a NUL or newline character', hint: 'Rename the folder.' };
  const share = shareOf(hostPath, shares, p);
  if (!share) {
    return {
      message: `${hostPath} is not inside a shared folder`,
      hint: `Sync mode keeps a copy of a folder the VM already sees. Share it (or a folder above it) first with \`berth share add PATH\`; \`berth shares\` lists the shared folders.`,
    };
  }
  if (share.readOnly) {
    // The sync carries what containers write to the copy back to the host.
    return {
      message: `${hostPath} is in the read-only shared folder ${share.hostPath}, and a synced folder carries containers' writes back to this computer`,
      hint: `Share it writable first (\`berth share add ${shWord(share.hostPath)}\` without --read-only), or leave it unsynced.`,
    };
  }
  if (p.parse(hostPath).root === hostPath) {
    return { message: 'the root folder cannot be synced', hint: 'Sync the project folder you build in, e.g. `berth sync add ~/src/app`.' };
  }
  for (const o of others) {
    if (o === hostPath) continue;
    if (within(hostPath, o, p) || within(o, hostPath, p)) {
      return {
        message: `${hostPath} overlaps the synced folder ${o}`,
        hint: 'Synced folders cannot be nested. Remove the other one first with `berth sync rm PATH`.',
      };
    }
  }
  return undefined;
}

/** A relative path from a scan or a peer is safe to join under a root. */
export function safeRelative(rel: string): boolean {
  if (!rel || rel.startsWith('/') || rel.includes('\0')) return false;
  return rel.split('/').every((c) => c !== '' && c !== '.' && c !== '..');
}

/**
 * Refuse a folder that cannot be synced, with the reason and what to do
 * (before it reaches the settings, whose schema checks the same rules).
 */
export function checkSyncable(hostPath: string, s: { shares: ShareLike[]; sync: { hostPath: string }[] }): void {
  if (!fs.statSync(hostPath, { throwIfNoEntry: false })?.isDirectory()) {
    throw new BerthError('INVALID_HOST_PATH', `${hostPath} is not a folder on this computer`, 'Give the path of an existing folder inside a shared folder.');
  }
  const why = syncPathProblem(
    hostPath,
    s.shares,
    s.sync.map((x) => x.hostPath),
  );
  if (why) throw new BerthError('INVALID_HOST_PATH', why.message, why.hint);
}
