/**
 * The guest command line for a reverse-sshfs mount, and the sshfs options
 * it uses (the engine's side of it is sftp-server.ts).
 */
import { BerthError } from '../../contract/errors.js';
import { shWord } from '../../base/shell-quote.js';

/**
 * sshfs options for a Berth share (besides `slave`), and why:
 *
 * - allow_other: containers run as any uid, not as the sshfs process (root in
 *   the guest). Without it FUSE lets only the mounting user in.
 * - no default_permissions (deliberately absent): the guest kernel then does
 *   not check mode bits against the uids it is shown; the host decides, as
 *   the host user, as on Docker Desktop. A container's non-root user can read
 *   and write whatever the host user can, and a file the host user may not
 *   write (mode 0444) is refused to everyone. The executable bit still counts:
 *   sshfs refuses exec of a file without any x bit.
 * - idmap=user: files owned by the host user show as owned by the sshfs user
 *   in the guest (root), as Docker Desktop shows them; others keep their host
 *   uid. Root in a container then owns the project (git's safe.directory
 *   check passes, chown -R on it is a no-op). sshfs learns the host uid by
 *   STAT "." (= the share root), so a root folder owned by someone else
 *   (Linux /tmp) maps that user instead, and host-user files there keep their
 *   host uid.
 * - no_contain_symlinks: Debian's sshfs (3.7.3-1.2, CVE-2026-47187) refuses by
 *   default to show symlinks that are absolute or contain `..`, which would
 *   break node_modules/.bin and any absolute link into the share; the server
 *   here is the trusted host and the share is mounted at its host path.
 *   Upstream sshfs does not know the option and would fail with
 *   "unknown option": the guest image is Debian, whose sshfs has it.
 * - dcache_timeout=1: sshfs caches names, attributes and symlink targets
 *   for 20 s by default, hiding host-side edits (a grown file read at its old
 *   size) that long. One second is what the guest kernel caches attributes
 *   for anyway; dir_cache=no instead would make a tree walk (git status,
 *   watchers' scans) 2-3 times slower, since the attributes READDIR returns
 *   then go unused and every lookup is a round trip (bench/sftp.ts).
 * - max_read, max_write=65536: sshfs's largest requests (default 32 KiB),
 *   half the round trips for big files.
 */
export const SSHFS_OPTIONS: string[] = ['allow_other', 'idmap=user', 'no_contain_symlinks', 'dcache_timeout=1', 'max_read=65536', 'max_write=65536'];

/**
 * The guest command line that mounts `remotePath` (the host folder as the
 * server knows it: the host path on macOS/Linux, the guest path on Windows)
 * at `mountPoint`, speaking SFTP on stdin/stdout. The mount point must exist.
 */
export function sshfsCommand(remotePath: string, mountPoint: string, opts: { readOnly?: boolean } = {}): string {
  for (const [name, p] of [
    ['remote path', remotePath],
    ['mount point', mountPoint],
  ] as const) {
    if (!p.startsWith('/') || p.includes('\0') || p.includes('\n')) {
      throw new BerthError('INVALID_HOST_PATH', `sshfs ${name} "${p}" is not an absolute guest path`, 'Shares need absolute paths.');
    }
  }
  const o = ['slave', ...SSHFS_OPTIONS, ...(opts.readOnly ? ['ro'] : [])];
  // sshfs splits -o on commas: a path never goes in -o, and a path with a
  // comma or a colon is fine as the positional source/target.
  return ['sshfs', '-o', o.join(','), shWord(`:${remotePath}`), shWord(mountPoint)].join(' ');
}
