import path from 'node:path';
import { BerthError } from '../../contract/errors.js';

/**
 * Windows host paths <-> guest paths, for shares and bind mounts.
 *
 *   C:\Users\me\src          <->  /mnt/host/c/Users/me/src
 *   \\server\share\dir       <->  /mnt/host/unc/server/share/dir
 *
 * The convention is Docker Desktop's: its VM sees drive C: at
 * /run/desktop/mnt/host/c and its WSL integration at /mnt/host/c, with the
 * drive letter in lower case, the rest of the path as the user typed it and
 * forward slashes. (WSL itself mounts drives at /mnt/c; we keep the `host`
 * level so drives cannot clash with anything else the guest has under /mnt.)
 * UNC shares go under /mnt/host/unc/<server>/<share>: `unc` cannot be a
 * drive letter, so the two never meet. A `docker run -v C:\src:/src` from a
 * Windows docker CLI reaches the engine as the bind "C:\src:/src", which
 * translateBindSpec rewrites the same way.
 */

export const GUEST_HOST_ROOT = '/mnt/host';

export type WindowsPath = { kind: 'drive'; /** lower case */ drive: string; parts: string[] } | { kind: 'unc'; server: string; share: string; parts: string[] };

function invalid(p: string, why: string, hint: string): BerthError {
  return new BerthError('INVALID_HOST_PATH', `"${p}" ${why}`, hint);
}

const ABSOLUTE_HINT = 'Use a full path such as C:\\Users\\me\\src or \\\\server\\share\\dir.';

/** Characters Windows does not allow in a file name (besides the separators). */
const WINDOWS_FORBIDDEN = /[<>:"|?*\x00-\x1f]/;

/** Collapse `.` and `..` without going above the root. */
function resolveParts(original: string, segments: string[]): string[] {
  const parts: string[] = [];
  for (const s of segments) {
    if (s === '' || s === '.') continue;
    if (s === '..') {
      if (!parts.length) throw invalid(original, 'goes above its drive or share root', ABSOLUTE_HINT);
      parts.pop();
      continue;
    }
    parts.push(s);
  }
  return parts;
}

/**
 * Parse an absolute Windows path: `C:\x`, `c:/x`, `\\server\share\x`,
 * `//server/share/x`, and the long forms `\\?\C:\x` and `\\?\UNC\server\share\x`.
 * Relative paths (`src`, `.\src`), drive-relative ones (`C:src`) and
 * root-relative ones (`\src`) depend on a current directory the engine does
 * not have, so they are refused; so are device paths (`\\.\pipe\x`).
 */
export function parseWindowsPath(p: string): WindowsPath {
  if (typeof p !== 'string' || p.trim() === '') throw invalid(String(p), 'is empty', ABSOLUTE_HINT);
  let rest = p;
  let forceUnc = false;
  const long = /^[\\/]{2}\?[\\/](.*)$/.exec(rest);
  if (long) {
    rest = long[1]!;
    if (/^unc[\\/]/i.test(rest)) {
      rest = rest.slice(4);
      forceUnc = true;
    } else if (!/^[A-Za-z]:([\\/]|$)/.test(rest)) {
      throw invalid(p, 'is a device path, not a file or folder', ABSOLUTE_HINT);
    }
  } else if (/^[\\/]{2}\.[\\/]/.test(rest)) {
    throw invalid(p, 'is a device path (pipe or device), not a file or folder', ABSOLUTE_HINT);
  }

  const drive = /^([A-Za-z]):(.*)$/.exec(rest);
  if (drive && !forceUnc) {
    const tail = drive[2]!;
    if (!/^[\\/]/.test(tail)) {
      throw invalid(p, `is relative to the current folder of drive ${drive[1]!.toUpperCase()}:`, ABSOLUTE_HINT);
    }
    const parts = resolveParts(p, tail.split(/[\\/]+/));
    const bad = parts.find((s) => WINDOWS_FORBIDDEN.test(s));
    if (bad) throw invalid(p, `has a character Windows does not allow in "${bad}"`, ABSOLUTE_HINT);
    return { kind: 'drive', drive: drive[1]!.toLowerCase(), parts };
  }

  if (forceUnc || /^[\\/]{2}[^\\/]/.test(rest)) {
    const segs = rest.replace(/^[\\/]+/, '').split(/[\\/]+/);
    const [server, share, ...tail] = segs;
    if (!server || !share || server === '.' || server === '?' || share === '.' || share === '..') {
      throw invalid(p, 'is not a complete UNC path (\\\\server\\share)', ABSOLUTE_HINT);
    }
    const parts = resolveParts(p, tail);
    const bad = [server, share, ...parts].find((s) => WINDOWS_FORBIDDEN.test(s));
    if (bad) throw invalid(p, `has a character Windows does not allow in "${bad}"`, ABSOLUTE_HINT);
    return { kind: 'unc', server, share, parts };
  }
  if (/^[\\/]/.test(rest)) throw invalid(p, 'has no drive letter (it is relative to the current drive)', ABSOLUTE_HINT);
  throw invalid(p, 'is a relative path', ABSOLUTE_HINT);
}

/** True for the paths parseWindowsPath accepts. */
export function isWindowsAbsolutePath(p: string): boolean {
  try {
    parseWindowsPath(p);
    return true;
  } catch {
    return false;
  }
}

/** C:\Users\me\src -> /mnt/host/c/Users/me/src */
export function windowsToGuestPath(p: string): string {
  const w = parseWindowsPath(p);
  const head = w.kind === 'drive' ? [w.drive] : ['unc', w.server, w.share];
  return path.posix.join(GUEST_HOST_ROOT, ...head, ...w.parts);
}

/** Is this guest path one of the host's (under /mnt/host/<drive> or /mnt/host/unc/<server>/<share>)? */
export function isGuestHostPath(p: string): boolean {
  try {
    guestToWindowsPath(p);
    return true;
  } catch {
    return false;
  }
}

/** /mnt/host/c/Users/me/src -> C:\Users\me\src */
export function guestToWindowsPath(p: string): string {
  if (typeof p !== 'string' || !p.startsWith('/')) {
    throw invalid(String(p), 'is not an absolute guest path', `Host folders appear in the guest under ${GUEST_HOST_ROOT}/<drive>/...`);
  }
  const norm = path.posix.normalize(p);
  const rel = path.posix.relative(GUEST_HOST_ROOT, norm);
  if (rel === '' || rel.startsWith('..') || path.posix.isAbsolute(rel)) {
    throw invalid(p, `is not under ${GUEST_HOST_ROOT}/<drive>, so it has no Windows path`, 'Only folders shared from Windows have a Windows path.');
  }
  const [head, ...parts] = rel.split('/').filter(Boolean);
  const bad = parts.find((s) => s.includes('\\') || WINDOWS_FORBIDDEN.test(s));
  if (bad !== undefined) throw invalid(p, `has a name Windows cannot hold ("${bad}")`, 'Rename it inside the guest.');
  if (/^[a-z]$/i.test(head!)) {
    return `${head!.toUpperCase()}:\\${parts.join('\\')}`;
  }
  if (head === 'unc') {
    const [server, share, ...tail] = parts;
    if (!server || !share) throw invalid(p, 'is not a complete UNC share path', `Use ${GUEST_HOST_ROOT}/unc/<server>/<share>/...`);
    return `\\\\${[server, share, ...tail].join('\\')}`;
  }
  throw invalid(
    p,
    `is under ${GUEST_HOST_ROOT} but not in a drive or UNC share`,
    `Use ${GUEST_HOST_ROOT}/<drive letter>/... or ${GUEST_HOST_ROOT}/unc/<server>/<share>/...`,
  );
}

/**
 * A docker bind ("SOURCE:TARGET[:OPTIONS]", HostConfig.Binds) from a
 * Windows client, with a Windows source rewritten to its guest path. Named
 * volumes and Linux paths pass unchanged.
 */
export function translateBindSpec(bind: string): string {
  // The source ends at the first colon after a drive letter's own.
  const m = /^([A-Za-z]:[\\/][^:]*|(?:\\\\|\/\/)[^:]*)(:.*)?$/.exec(bind);
  if (!m) return bind;
  return `${windowsToGuestPath(m[1]!)}${m[2] ?? ''}`;
}
