import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BerthError } from '../contract/errors.js';
import { ensurePrivateDir } from '../base/fs-util.js';
import { pidAlive } from '../base/process-util.js';

/**
 * The dashboard's open file: a small HTML page, readable only by the
 * owner, that sends the browser on to the dashboard's address with this
 * start's token. `berth dashboard` hands the browser this file's
 * `file://` address instead of the token address, because every local
 * user can read a process's command line (`/proc/<pid>/cmdline`, `ps`):
 * the opener's (`xdg-open`, `open`, `start`) and then the browser's own.
 * The file's path gives nothing away; its content needs the owner's
 * rights (0600 in a 0700 folder). Jupyter opens its notebook server the
 * same way, for the same reason.
 *
 * One file per running `berth dashboard` (named by its pid), removed when
 * it stops; a file left by a process that is gone is removed at the next
 * start (its token died with that process anyway).
 */
export interface OpenFile {
  /** The file on disk. */
  path: string;
  /** Its `file://` address: safe to put on a command line. */
  url: string;
  remove(): void;
}

const NAME_RE = /^open-(\d+)\.html$/;

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** The page: a refresh to `target` right away, a script doing the same, and a link for a browser that does neither. */
export function openFileHtml(target: string): string {
  const href = escapeHtml(target);
  // In a script a "</script" inside the string would end it: JSON with "<" escaped cannot.
  const js = JSON.stringify(target).replace(/</g, '\\u003c');
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="referrer" content="no-referrer">',
    `<meta http-equiv="refresh" content="0;url=${href}">`,
    '<title>Opening the Berth dashboard</title>',
    '</head>',
    '<body>',
    `<p>Opening the Berth dashboard&hellip; If nothing happens, <a href="${href}">open it here</a>.</p>`,
    `<script>location.replace(${js});</script>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/** Refuse a folder another user could read or swap: it must be a real folder, ours, and owner-only. */
function checkPrivateDir(dir: string): void {
  if (process.platform === 'win32') return; // the profile's ACL keeps other users out
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o077) !== 0) {
    throw new BerthError(
      'PATH_NOT_PRIVATE',
      `${dir} is not a folder only you can open`,
      'Remove it (Berth makes it again, owner-only) and run `berth dashboard` again.',
    );
  }
}

function removeStale(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    const m = NAME_RE.exec(name);
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) fs.rmSync(path.join(dir, name), { force: true });
  }
}

/** Write this process's open file for `target` into `dir` (made owner-only). */
export function writeOpenFile(dir: string, target: string): OpenFile {
  ensurePrivateDir(dir);
  checkPrivateDir(dir);
  removeStale(dir);
  const file = path.join(dir, `open-${process.pid}.html`);
  fs.rmSync(file, { force: true });
  // O_EXCL: created here, now, with mode 0600 (never a file or link someone else left).
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    fs.writeFileSync(fd, openFileHtml(target));
  } finally {
    fs.closeSync(fd);
  }
  return { path: file, url: pathToFileURL(file).href, remove: () => fs.rmSync(file, { force: true }) };
}
